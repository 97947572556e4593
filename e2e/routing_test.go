package e2e

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
)

var bodySeq atomic.Uint64

// uniqueBody returns a message body no other test sends.
func uniqueBody(what string) string {
	return fmt.Sprintf("%s #%d", what, bodySeq.Add(1))
}

// exchange checks that a and b can still message each other (full JID to
// full JID), both ways.
func exchange(t *testing.T, a, b *Client) {
	t.Helper()
	for _, p := range [][2]*Client{{a, b}, {b, a}} {
		from, to := p[0], p[1]
		body := uniqueBody("exchange")
		from.Sendf("<message type='chat' to='%s' id='%s'><body>%s</body></message>", Esc(to.JID.String()), from.NewID("x"), Esc(body))
		m := to.Expect(IOTimeout, "message "+body, MessageWithBody(body))
		if m.Get("from") != from.JID.String() {
			t.Errorf("message from %s arrived with from=%q", from.JID, m.Get("from"))
		}
	}
}

// expectStanzaError waits for an error reply to id and checks its type and
// condition.
func expectStanzaError(t *testing.T, c *Client, id, wantFrom, wantType, wantCond string) {
	t.Helper()
	el := c.Expect(IOTimeout, "an error reply to "+id, HasID(id))
	typ, cond, ok := el.StanzaError()
	if el.Get("type") != "error" || !ok || cond != wantCond || typ != wantType {
		t.Errorf("reply to %s: %s\nwant type='error' with <error type='%s'><%s/>", id, el, wantType, wantCond)
	}
	if wantFrom != "" && el.Get("from") != wantFrom {
		t.Errorf("error reply to %s has from=%q, want %q", id, el.Get("from"), wantFrom)
	}
	if to := el.Get("to"); to != "" && to != c.JID.String() {
		t.Errorf("error reply to %s has to=%q, want %s", id, to, c.JID)
	}
}

func TestMessaging(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{Users: users()})
	a := s.LoginWith(t, ClientOptions{JID: alice.JID + "/desk", Password: alice.Password})
	b := s.LoginWith(t, ClientOptions{JID: bob.JID + "/phone", Password: bob.Password})
	c := s.LoginWith(t, ClientOptions{JID: carol.JID + "/tab", Password: carol.Password})

	t.Run("message to full JID", func(t *testing.T) {
		body := uniqueBody("hello bob")
		a.Sendf("<message type='chat' to='bob@localhost/phone' id='m1'><body>%s</body></message>", Esc(body))
		m := b.Expect(IOTimeout, "alice's message", MessageWithBody(body))
		if m.Get("from") != "alice@localhost/desk" {
			t.Errorf("from=%q, want alice@localhost/desk (RFC 6120 §8.1.2.1 stamping)", m.Get("from"))
		}
		if m.Get("to") != "bob@localhost/phone" || m.Get("id") != "m1" || m.Get("type") != "chat" {
			t.Errorf("to, id or type changed: %s", m)
		}
		var ids []*Element
		for _, e := range m.ChildrenIn(NSStanzaID) {
			if e.Name.Local == "stanza-id" {
				ids = append(ids, e)
			}
		}
		if len(ids) != 1 || ids[0].Get("by") != "bob@localhost" || ids[0].Get("id") == "" {
			t.Errorf("want exactly one <stanza-id xmlns='urn:xmpp:sid:0' by='bob@localhost' id='…'/> (XEP-0359), got %s", m)
		}
	})

	t.Run("forged stanza-id is replaced", func(t *testing.T) {
		// XEP-0359 §5: the server must remove stanza-ids claiming to be by
		// the recipient's account before adding its own.
		body := uniqueBody("forged")
		a.Sendf("<message type='chat' to='bob@localhost/phone'><body>%s</body><stanza-id xmlns='urn:xmpp:sid:0' by='bob@localhost' id='forged'/></message>", Esc(body))
		m := b.Expect(IOTimeout, "alice's message", MessageWithBody(body))
		n := 0
		for _, e := range m.ChildrenIn(NSStanzaID) {
			if e.Name.Local == "stanza-id" && e.Get("by") == "bob@localhost" {
				n++
				if e.Get("id") == "forged" {
					t.Errorf("the sender's stanza-id got through: %s", m)
				}
			}
		}
		if n != 1 {
			t.Errorf("%d stanza-ids by bob@localhost, want 1: %s", n, m)
		}
	})

	t.Run("ping between clients", func(t *testing.T) {
		a.MustSend("<iq type='get' id='ping1' to='bob@localhost/phone'><ping xmlns='urn:xmpp:ping'/></iq>")
		req := b.Expect(IOTimeout, "alice's ping", HasID("ping1"))
		if req.Get("from") != "alice@localhost/desk" || req.Get("type") != "get" || req.Child(NSPing, "ping") == nil {
			t.Errorf("ping delivered as %s", req)
		}
		b.MustSend("<iq type='result' id='ping1' to='alice@localhost/desk'/>")
		res := a.Expect(IOTimeout, "bob's pong", HasID("ping1"))
		if res.Get("type") != "result" || res.Get("from") != "bob@localhost/phone" {
			t.Errorf("pong arrived as %s, want type='result' from='bob@localhost/phone'", res)
		}
	})

	t.Run("IQ to offline full JID", func(t *testing.T) {
		// RFC 6121 §8.5.3.2.2 / RFC 6120 §10.5.3.2.
		a.MustSend("<iq type='get' id='iq-gone' to='bob@localhost/nope'><ping xmlns='urn:xmpp:ping'/></iq>")
		expectStanzaError(t, a, "iq-gone", "bob@localhost/nope", "cancel", "service-unavailable")
	})

	t.Run("IQ with unknown namespace to the server", func(t *testing.T) {
		// RFC 6120 §8.4 / §10.3.3.
		a.MustSend("<iq type='get' id='iq-unknown' to='localhost'><query xmlns='urn:example:no-such-feature'/></iq>")
		expectStanzaError(t, a, "iq-unknown", "localhost", "cancel", "service-unavailable")
	})

	t.Run("IQ with unknown namespace to own account", func(t *testing.T) {
		a.MustSend("<iq type='get' id='iq-self'><query xmlns='urn:example:no-such-feature'/></iq>")
		expectStanzaError(t, a, "iq-self", "", "cancel", "service-unavailable")
	})

	t.Run("message to unknown local user", func(t *testing.T) {
		// RFC 6121 §8.5.2.2.1 / §8.5.1 (the brief asks for the error, not silence).
		a.MustSend("<message type='chat' to='nobody@localhost' id='m-nobody'><body>anyone?</body></message>")
		expectStanzaError(t, a, "m-nobody", "nobody@localhost", "cancel", "service-unavailable")
	})

	t.Run("message to remote domain", func(t *testing.T) {
		// RFC 6120 §10.4.3 without s2s: remote-server-not-found.
		a.MustSend("<message type='chat' to='someone@example.org' id='m-remote'><body>hi</body></message>")
		expectStanzaError(t, a, "m-remote", "someone@example.org", "cancel", "remote-server-not-found")
	})

	t.Run("IQ to remote domain", func(t *testing.T) {
		a.MustSend("<iq type='get' id='iq-remote' to='example.org'><ping xmlns='urn:xmpp:ping'/></iq>")
		expectStanzaError(t, a, "iq-remote", "example.org", "cancel", "remote-server-not-found")
	})

	t.Run("malformed to", func(t *testing.T) {
		// RFC 6120 §8.3.3.8 jid-malformed, type modify.
		a.MustSend("<message type='chat' to='a@b@c' id='m-bad-to'><body>hi</body></message>")
		expectStanzaError(t, a, "m-bad-to", "", "modify", "jid-malformed")
	})

	t.Run("spoofed from", func(t *testing.T) {
		// RFC 6120 §8.1.2.1 and §4.9.3.9: a client claiming another 'from'
		// gets <invalid-from/>; the stanza goes nowhere.
		spoofer := s.LoginWith(t, ClientOptions{JID: alice.JID + "/spoofer", Password: alice.Password})
		spoofer.MustSend("<message type='chat' from='bob@localhost/x' to='bob@localhost/phone' id='spoof'><body>I am bob</body></message>")
		cond, err := spoofer.StreamErrorCondition(IOTimeout)
		if err != nil || cond != "invalid-from" {
			t.Errorf("spoofing session: stream error %q (%v), want invalid-from", cond, err)
		}
		marker := uniqueBody("marker after spoof")
		c.Sendf("<message type='chat' to='bob@localhost/phone' id='marker'><body>%s</body></message>", Esc(marker))
		next := b.MustNext(IOTimeout)
		if !MessageWithBody(marker)(next) {
			t.Errorf("bob's next stanza after the spoof attempt is %s, want carol's marker", next)
		}
		if next.Get("from") != "carol@localhost/tab" {
			t.Errorf("marker from=%q", next.Get("from"))
		}
	})

	t.Run("from own bare or full JID is accepted", func(t *testing.T) {
		for _, from := range []string{"alice@localhost/desk", "alice@localhost"} {
			body := uniqueBody("from " + from)
			a.Sendf("<message type='chat' from='%s' to='bob@localhost/phone'><body>%s</body></message>", from, Esc(body))
			m := b.Expect(IOTimeout, "alice's message", MessageWithBody(body))
			if m.Get("from") != "alice@localhost/desk" {
				t.Errorf("from=%q, want alice@localhost/desk", m.Get("from"))
			}
		}
	})

	t.Run("large stanza under the limit", func(t *testing.T) {
		body := uniqueBody(strings.Repeat("x", 100<<10))
		a.Sendf("<message type='chat' to='bob@localhost/phone'><body>%s</body></message>", body)
		b.Expect(IOTimeout, "a 100 KiB message", MessageWithBody(body))
	})

	exchange(t, a, b)
	exchange(t, b, c)
}
