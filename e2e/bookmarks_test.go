package e2e

import (
	"strings"
	"testing"
)

const (
	bmNSPrivate   = "jabber:iq:private"
	bmNS          = "urn:xmpp:bookmarks:1"
	bmNSLegacy    = "storage:bookmarks"
	bmNSPubsub    = "http://jabber.org/protocol/pubsub"
	bmNSDiscoInfo = "http://jabber.org/protocol/disco#info"
	bmPrivGet     = "<query xmlns='" + bmNSPrivate + "'><storage xmlns='" + bmNSLegacy + "'/></query>"
	bmItemsOf0402 = "<pubsub xmlns='" + bmNSPubsub + "'><items node='" + bmNS + "'/></pubsub>"
)

// bmIQ sends an IQ of type typ with payload and returns the answer,
// failing the test on an error answer.
func bmIQ(t *testing.T, c *Client, typ, to, payload string) *Element {
	t.Helper()
	id := c.NewID("bm")
	if to != "" {
		to = " to='" + Esc(to) + "'"
	}
	el := c.IQ(id, "<iq type='"+typ+"' id='"+id+"'"+to+">"+payload+"</iq>")
	if _, cond, ok := el.StanzaError(); ok || el.Get("type") != "result" {
		t.Fatalf("%s: %s answered %s: %s", c.JID, payload, cond, el)
	}
	return el
}

// bmConferences returns the XEP-0402 items by id.
func bmConferences(t *testing.T, c *Client) map[string]*Element {
	t.Helper()
	items := bmIQ(t, c, "get", "", bmItemsOf0402).Child(bmNSPubsub, "pubsub").Child(bmNSPubsub, "items")
	out := map[string]*Element{}
	for _, it := range items.ChildrenIn(bmNSPubsub) {
		if cf := it.Child(bmNS, "conference"); cf != nil {
			out[it.Get("id")] = cf
		}
	}
	return out
}

// bmLegacy returns XEP-0048 conferences read through private XML by JID,
// and the <url/> elements.
func bmLegacy(t *testing.T, c *Client) (map[string]*Element, []*Element) {
	t.Helper()
	st := bmIQ(t, c, "get", "", bmPrivGet).Child(bmNSPrivate, "query").Child(bmNSLegacy, "storage")
	if st == nil {
		t.Fatalf("private XML get without <storage/>")
	}
	confs := map[string]*Element{}
	var urls []*Element
	for _, e := range st.ChildrenIn(bmNSLegacy) {
		switch e.Name.Local {
		case "conference":
			confs[e.Get("jid")] = e
		case "url":
			urls = append(urls, e)
		}
	}
	return confs, urls
}

func bmText(e *Element, space, local string) string {
	if c := e.Child(space, local); c != nil {
		return c.Text
	}
	return ""
}

// TestBookmarks: XEP-0048 bookmarks stored through private XML (XEP-0049)
// are read as XEP-0402 items, and XEP-0402 items published by a modern
// client are read through private XML, both ways for changes and
// removals.
func TestBookmarks(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{Users: []User{{"alice@localhost", "pw-a"}, {"bob@localhost", "pw-b"}}})
	legacy := s.Login(t, "alice@localhost/legacy", "pw-a")
	modern := s.Login(t, "alice@localhost/modern", "pw-a")

	info := bmIQ(t, modern, "get", "alice@localhost", "<query xmlns='"+bmNSDiscoInfo+"'/>").Child(bmNSDiscoInfo, "query")
	features := map[string]bool{}
	for _, f := range info.ChildrenIn(bmNSDiscoInfo) {
		if f.Name.Local == "feature" {
			features[f.Get("var")] = true
		}
	}
	if !features[bmNS+"#compat"] {
		t.Skip("the account's disco#info lacks urn:xmpp:bookmarks:1#compat: bookmarks conversion is not compiled in")
	}
	for _, f := range []string{bmNS + "#compat-pep", "urn:xmpp:bookmarks-conversion:0", bmNSPubsub + "#publish-options"} {
		if !features[f] {
			t.Errorf("account disco#info lacks %s", f)
		}
	}

	// XEP-0048 over XEP-0049 → XEP-0402.
	bmIQ(t, legacy, "set", "", "<query xmlns='"+bmNSPrivate+"'><storage xmlns='"+bmNSLegacy+"'>"+
		"<conference jid='council@conference.underhill.org' name='Council of Oberon' autojoin='true'><nick>Puck</nick><password>s3cret</password></conference>"+
		"<conference jid='tea@conference.localhost' autojoin='0'/>"+
		"<url name='Home' url='https://underhill.org/'/></storage></query>")
	got := bmConferences(t, modern)
	if len(got) != 2 {
		t.Fatalf("XEP-0402 items: %v", got)
	}
	c := got["council@conference.underhill.org"]
	if c == nil || c.Get("name") != "Council of Oberon" || (c.Get("autojoin") != "true" && c.Get("autojoin") != "1") ||
		bmText(c, bmNS, "nick") != "Puck" || bmText(c, bmNS, "password") != "s3cret" {
		t.Fatalf("council: %s", c)
	}
	if c := got["tea@conference.localhost"]; c == nil || c.Get("autojoin") == "true" || c.Get("autojoin") == "1" {
		t.Fatalf("tea: %s", c)
	}
	// XEP-0411 §3: the set reached the legacy PEP node before the answer.
	leg := bmIQ(t, legacy, "get", "", "<pubsub xmlns='"+bmNSPubsub+"'><items node='"+bmNSLegacy+"'/></pubsub>").String()
	if !strings.Contains(leg, "<item id='current'>") || !strings.Contains(leg, "council@conference.underhill.org") || !strings.Contains(leg, "https://underhill.org/") {
		t.Fatalf("storage:bookmarks PEP node: %s", leg)
	}

	// XEP-0402 → XEP-0048: a modern client publishes as XEP-0402 §3.2
	// shows, and retracts a room.
	bmIQ(t, modern, "set", "", "<pubsub xmlns='"+bmNSPubsub+"'><publish node='"+bmNS+"'><item id='theplay@conference.shakespeare.lit'>"+
		"<conference xmlns='"+bmNS+"' name='The Play&apos;s the Thing' autojoin='true'><nick>JC</nick>"+
		"<extensions><state xmlns='http://myclient.example/bookmark/state' minimized='true'/></extensions></conference></item></publish>"+
		"<publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>"+bmNSPubsub+"#publish-options</value></field>"+
		"<field var='pubsub#persist_items'><value>true</value></field><field var='pubsub#max_items'><value>max</value></field>"+
		"<field var='pubsub#send_last_published_item'><value>never</value></field><field var='pubsub#access_model'><value>whitelist</value></field>"+
		"</x></publish-options></pubsub>")
	bmIQ(t, modern, "set", "", "<pubsub xmlns='"+bmNSPubsub+"'><retract node='"+bmNS+"' notify='true'><item id='tea@conference.localhost'/></retract></pubsub>")
	confs, urls := bmLegacy(t, legacy)
	if len(confs) != 2 || confs["tea@conference.localhost"] != nil {
		t.Fatalf("XEP-0048 conferences: %v", confs)
	}
	p := confs["theplay@conference.shakespeare.lit"]
	if p == nil || p.Get("name") != "The Play's the Thing" || (p.Get("autojoin") != "true" && p.Get("autojoin") != "1") || bmText(p, bmNSLegacy, "nick") != "JC" {
		t.Fatalf("theplay: %s", p)
	}
	if c := confs["council@conference.underhill.org"]; c == nil || bmText(c, bmNSLegacy, "password") != "s3cret" {
		t.Fatalf("council: %s", c)
	}
	if len(urls) != 1 || urls[0].Get("url") != "https://underhill.org/" {
		t.Fatalf("URL bookmarks: %v", urls)
	}

	// A legacy client's full set removes and changes rooms; the XEP-0402
	// extensions it cannot see are kept.
	bmIQ(t, legacy, "set", "", "<query xmlns='"+bmNSPrivate+"'><storage xmlns='"+bmNSLegacy+"'>"+
		"<conference jid='theplay@conference.shakespeare.lit' name='Renamed' autojoin='false'><nick>JC</nick></conference></storage></query>")
	got = bmConferences(t, modern)
	p = got["theplay@conference.shakespeare.lit"]
	if len(got) != 1 || p == nil || p.Get("name") != "Renamed" || p.Get("autojoin") == "true" ||
		p.Child(bmNS, "extensions").Child("http://myclient.example/bookmark/state", "state") == nil {
		t.Fatalf("XEP-0402 items after the legacy set: %v %s", got, p)
	}

	// Nobody else reads them (XEP-0049 §2.3; XEP-0402's whitelist node).
	bob := s.Login(t, "bob@localhost", "pw-b")
	id := bob.NewID("bm")
	if _, cond, _ := bob.IQ(id, "<iq type='get' id='"+id+"' to='alice@localhost'>"+bmPrivGet+"</iq>").StanzaError(); cond != "forbidden" {
		t.Errorf("bob reading alice's private XML: %q, want forbidden", cond)
	}
	id = bob.NewID("bm")
	if el := bob.IQ(id, "<iq type='get' id='"+id+"' to='alice@localhost'>"+bmItemsOf0402+"</iq>"); el.Get("type") != "error" || strings.Contains(el.String(), "theplay") {
		t.Errorf("bob reading alice's XEP-0402 node: %s", el)
	}
}
