package e2e

import (
	"fmt"
	"strings"
	"testing"
)

const nsMAM = "urn:xmpp:mam:2"

// mamQuery sends an archive query and returns the forwarded bodies in
// order and the <fin/> element.
func mamQuery(t *testing.T, c *Client, id, inner string) ([]string, *Element) {
	t.Helper()
	c.MustSend("<iq type='set' id='" + id + "'><query xmlns='" + nsMAM + "' queryid='q-" + id + "'>" + inner + "</query></iq>")
	var bodies []string
	for {
		el := c.MustNext(IOTimeout)
		if r := el.Child(nsMAM, "result"); el.Is(NSClient, "message") && r != nil {
			if r.Get("queryid") != "q-"+id || r.Get("id") == "" {
				t.Fatalf("result without the query's id: %s", el)
			}
			fw := r.Child("urn:xmpp:forward:0", "forwarded")
			if fw == nil || fw.Child("urn:xmpp:delay", "delay") == nil {
				t.Fatalf("result without forwarded/delay: %s", el)
			}
			m := fw.Child(NSClient, "message")
			if m == nil || m.Child(NSClient, "body") == nil {
				t.Fatalf("forwarded stanza is not a jabber:client message: %s", el)
			}
			bodies = append(bodies, m.Child(NSClient, "body").Text)
			continue
		}
		if el.Is(NSClient, "iq") && el.Get("id") == id {
			if el.Get("type") != "result" {
				t.Fatalf("query %s: %s", id, el)
			}
			return bodies, el.Child(nsMAM, "fin")
		}
	}
}

func form(fields ...string) string {
	var b strings.Builder
	b.WriteString("<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>" + nsMAM + "</value></field>")
	for i := 0; i+1 < len(fields); i += 2 {
		b.WriteString("<field var='" + fields[i] + "'><value>" + fields[i+1] + "</value></field>")
	}
	b.WriteString("</x>")
	return b.String()
}

// TestMAM: messages both ways land in both archives in order; paging with
// RSM walks forwards and backwards; 'with' filters; a stale after-id is
// item-not-found; preferences turn archiving off for a contact.
func TestMAM(t *testing.T) {
	s := Start(t, Options{Users: []User{{"alice@localhost", "pw-a"}, {"bob@localhost", "pw-b"}, {"carol@localhost", "pw-c"}}})
	alice := s.Login(t, "alice@localhost", "pw-a")
	bob := s.Login(t, "bob@localhost", "pw-b")
	carol := s.Login(t, "carol@localhost", "pw-c")
	// Available before anything is sent to their bare JIDs: the server
	// reflects each one's initial presence back (RFC 6121 §4.2.2).
	for _, c := range []*Client{alice, bob, carol} {
		c.MustSend("<presence/>")
		self := c.JID.String()
		c.Expect(IOTimeout, "own presence", func(e *Element) bool { return e.Is(NSClient, "presence") && e.Get("from") == self })
	}
	for i := 1; i <= 6; i++ {
		from, to := alice, bob
		if i%2 == 0 {
			from, to = bob, alice
		}
		from.Sendf("<message to='%s' type='chat' id='c%d'><body>chat %d</body></message>", to.JID.Bare(), i, i)
		to.Expect(IOTimeout, "chat message", func(e *Element) bool { return e.Is(NSClient, "message") && e.Get("id") == fmt.Sprintf("c%d", i) })
	}
	carol.Sendf("<message to='alice@localhost' type='chat' id='x'><body>from carol</body></message>")
	alice.Expect(IOTimeout, "carol's message", func(e *Element) bool { return e.Get("id") == "x" })
	// A chat state alone is not archived.
	bob.Sendf("<message to='alice@localhost' type='chat' id='cs'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>")
	alice.Expect(IOTimeout, "chat state", func(e *Element) bool { return e.Get("id") == "cs" })

	all, fin := mamQuery(t, alice, "all", "")
	if strings.Join(all, "|") != "chat 1|chat 2|chat 3|chat 4|chat 5|chat 6|from carol" || fin.Get("complete") != "true" {
		t.Fatalf("alice's archive: %q fin %s", all, fin)
	}
	if b, _ := mamQuery(t, bob, "bob", ""); len(b) != 6 {
		t.Fatalf("bob's archive: %q", b)
	}
	page1, fin1 := mamQuery(t, alice, "p1", form("with", "bob@localhost")+"<set xmlns='http://jabber.org/protocol/rsm'><max>4</max></set>")
	if strings.Join(page1, "|") != "chat 1|chat 2|chat 3|chat 4" || fin1.Get("complete") == "true" {
		t.Fatalf("page 1: %q %s", page1, fin1)
	}
	set := fin1.Child("http://jabber.org/protocol/rsm", "set")
	if set.Child("http://jabber.org/protocol/rsm", "count").Text != "6" {
		t.Fatalf("count: %s", fin1)
	}
	last := set.Child("http://jabber.org/protocol/rsm", "last").Text
	page2, fin2 := mamQuery(t, alice, "p2", form("with", "bob@localhost")+"<set xmlns='http://jabber.org/protocol/rsm'><max>4</max><after>"+last+"</after></set>")
	if strings.Join(page2, "|") != "chat 5|chat 6" || fin2.Get("complete") != "true" {
		t.Fatalf("page 2: %q %s", page2, fin2)
	}
	back, _ := mamQuery(t, alice, "back", "<set xmlns='http://jabber.org/protocol/rsm'><max>2</max><before/></set>")
	if strings.Join(back, "|") != "chat 6|from carol" {
		t.Fatalf("last page: %q", back)
	}
	alice.MustSend("<iq type='set' id='bad'><query xmlns='" + nsMAM + "'><set xmlns='http://jabber.org/protocol/rsm'><after>nope</after></set></query></iq>")
	if el := alice.Expect(IOTimeout, "error", func(e *Element) bool { return e.Get("id") == "bad" }); !strings.Contains(el.String(), "item-not-found") {
		t.Fatalf("stale after-id: %s", el)
	}
	// Preferences: never archive carol.
	if el := alice.IQ("pr", "<iq type='set' id='pr'><prefs xmlns='"+nsMAM+"' default='always'><always/><never><jid>carol@localhost</jid></never></prefs></iq>"); el.Get("type") != "result" || !strings.Contains(el.String(), "carol@localhost") {
		t.Fatalf("prefs: %s", el)
	}
	carol.Sendf("<message to='alice@localhost' type='chat' id='y'><body>unarchived</body></message>")
	alice.Expect(IOTimeout, "carol's second message", func(e *Element) bool { return e.Get("id") == "y" })
	if got, _ := mamQuery(t, alice, "after-prefs", form("with", "carol@localhost")); strings.Join(got, "|") != "from carol" {
		t.Fatalf("with carol after prefs: %q", got)
	}
	// Disco on the account advertises MAM.
	info := alice.IQ("d", "<iq type='get' id='d' to='alice@localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
	if !strings.Contains(info.String(), "urn:xmpp:mam:2") {
		t.Fatalf("account disco lacks mam:2: %s", info)
	}
}

const nsMAM0 = "urn:xmpp:mam:0"

// mam0Query sends an archive query in the legacy namespace (XEP-0313 0.3)
// and returns the forwarded bodies in order and the <fin/> element, which
// arrives in a message after the results; the IQ result, empty, comes
// before them.
func mam0Query(t *testing.T, c *Client, id, inner string) ([]string, *Element) {
	t.Helper()
	qid := "q0-" + id
	c.MustSend("<iq type='set' id='" + id + "'><query xmlns='" + nsMAM0 + "' queryid='" + qid + "'>" + inner + "</query></iq>")
	iq := c.Expect(IOTimeout, "the IQ result of "+id, func(e *Element) bool { return e.Is(NSClient, "iq") && e.Get("id") == id })
	if iq.Get("type") != "result" || len(iq.Children) != 0 {
		t.Fatalf("mam:0 query %s: expected an empty IQ result before the results, got %s", id, iq)
	}
	var bodies []string
	for {
		el := c.MustNext(IOTimeout)
		if !el.Is(NSClient, "message") {
			t.Fatalf("mam:0 query %s: unexpected %s", id, el)
		}
		if fin := el.Child(nsMAM0, "fin"); fin != nil {
			if fin.Get("queryid") != qid {
				t.Fatalf("fin of another query: %s", el)
			}
			return bodies, fin
		}
		r := el.Child(nsMAM0, "result")
		if r == nil || r.Get("queryid") != qid || r.Get("id") == "" {
			t.Fatalf("mam:0 query %s: not a result of it: %s", id, el)
		}
		fw := r.Child("urn:xmpp:forward:0", "forwarded")
		if fw == nil || fw.Child("urn:xmpp:delay", "delay") == nil || fw.Child(NSClient, "message") == nil {
			t.Fatalf("result without forwarded/delay/message: %s", el)
		}
		bodies = append(bodies, fw.Child(NSClient, "message").Child(NSClient, "body").Text)
	}
}

// TestMAM0: the legacy namespace Conversations uses when a server offers
// neither mam:2 nor mam:1 (its MessageArchiveService picks the highest
// advertised): advertised on the account, queried with a mam:0 form and
// RSM paging, results in order, <fin/> in a message with the query id.
func TestMAM0(t *testing.T) {
	s := Start(t, Options{Users: []User{{"alice@localhost", "pw-a"}, {"bob@localhost", "pw-b"}}})
	alice := s.Login(t, "alice@localhost", "pw-a")
	bob := s.Login(t, "bob@localhost", "pw-b")
	for _, c := range []*Client{alice, bob} {
		c.MustSend("<presence/>")
		self := c.JID.String()
		c.Expect(IOTimeout, "own presence", func(e *Element) bool { return e.Is(NSClient, "presence") && e.Get("from") == self })
	}
	for i := 1; i <= 5; i++ {
		bob.Sendf("<message to='alice@localhost' type='chat' id='l%d'><body>legacy %d</body></message>", i, i)
		alice.Expect(IOTimeout, "chat message", func(e *Element) bool { return e.Is(NSClient, "message") && e.Get("id") == fmt.Sprintf("l%d", i) })
	}
	info := alice.IQ("d0", "<iq type='get' id='d0' to='alice@localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
	if !strings.Contains(info.String(), "var='"+nsMAM0+"'") {
		t.Fatalf("account disco lacks mam:0: %s", info)
	}
	form0 := "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>" + nsMAM0 + "</value></field>" +
		"<field var='with'><value>bob@localhost</value></field></x>"
	rsm := func(fin *Element, name string) string {
		if c := fin.Child("http://jabber.org/protocol/rsm", "set").Child("http://jabber.org/protocol/rsm", name); c != nil {
			return c.Text
		}
		return ""
	}
	page1, fin1 := mam0Query(t, alice, "m0a", form0+"<set xmlns='http://jabber.org/protocol/rsm'><max>3</max></set>")
	if strings.Join(page1, "|") != "legacy 1|legacy 2|legacy 3" || fin1.Get("complete") == "true" || rsm(fin1, "count") != "5" {
		t.Fatalf("page 1: %q %s", page1, fin1)
	}
	page2, fin2 := mam0Query(t, alice, "m0b", form0+"<set xmlns='http://jabber.org/protocol/rsm'><max>3</max><after>"+rsm(fin1, "last")+"</after></set>")
	if strings.Join(page2, "|") != "legacy 4|legacy 5" || fin2.Get("complete") != "true" {
		t.Fatalf("page 2: %q %s", page2, fin2)
	}
	// XEP-0313 0.2's filter syntax, still accepted in mam:0.
	if got, _ := mam0Query(t, alice, "m0c", "<with>carol@localhost</with>"); len(got) != 0 {
		t.Fatalf("legacy with filter: %q", got)
	}
	// bob's archive holds his outgoing messages, in the same namespace.
	if got, fin := mam0Query(t, bob, "m0d", ""); len(got) != 5 || fin.Get("complete") != "true" {
		t.Fatalf("bob's archive: %q %s", got, fin)
	}
}
