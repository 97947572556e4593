package xmppmap_test

import (
	"github.com/imppd/imppd/xmppmap"

	"strings"
	"testing"
)

func TestCarbons(t *testing.T) {
	s := newServer(t)
	a1 := s.Connect(t, "alice@localhost/one")
	a2 := s.Connect(t, "alice@localhost/two")
	a3 := s.Connect(t, "alice@localhost/nocarbons")
	b := s.Connect(t, "bob@localhost/b")
	for _, c := range []*xmppmap.TestClient{a1, a2, a3, b} {
		c.Send(`<presence/>`)
	}
	for _, c := range []*xmppmap.TestClient{a1, a2} {
		if el := c.Request(`<iq type='set' id='c'><enable xmlns='urn:xmpp:carbons:2'/></iq>`); el.Get("type") != "result" {
			t.Fatalf("enable: %s", el)
		}
	}
	// sync drains the presence traffic and returns the next message stanza.
	nextMessage := func(c *xmppmap.TestClient) string {
		t.Helper()
		for {
			el := c.Next()
			if el.Name.Local == "message" {
				return el.String()
			}
		}
	}
	b.Send(`<message to='alice@localhost/one' type='chat' id='m1'><body>to one</body></message>`)
	if got := nextMessage(a1); !strings.Contains(got, "to one") || strings.Contains(got, "received") {
		t.Fatalf("a1 got %s", got)
	}
	got := nextMessage(a2)
	if !strings.Contains(got, "<received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client'") ||
		!strings.Contains(got, "from='alice@localhost' to='alice@localhost/two'") || !strings.Contains(got, "to one") || !strings.Contains(got, "from='bob@localhost/b'") {
		t.Fatalf("a2 received copy: %s", got)
	}
	a1.Send(`<message to='bob@localhost/b' type='chat' id='m2'><body>from one</body></message>`)
	if got := nextMessage(b); !strings.Contains(got, "from one") {
		t.Fatalf("bob got %s", got)
	}
	if got := nextMessage(a2); !strings.Contains(got, "<sent xmlns='urn:xmpp:carbons:2'>") || !strings.Contains(got, "from one") {
		t.Fatalf("a2 sent copy: %s", got)
	}
	// Private messages are not copied; the next thing a2 sees is the marker.
	a1.Send(`<message to='bob@localhost/b' type='chat' id='m3'><body>secret</body><private xmlns='urn:xmpp:carbons:2'/></message>`)
	// §9: the recipient gets it without the marker.
	if got := nextMessage(b); !strings.Contains(got, "secret") || strings.Contains(got, "private") {
		t.Fatalf("bob got %s", got)
	}
	b.Send(`<message to='alice@localhost/one' type='chat' id='m4'><body>marker</body></message>`)
	if got := nextMessage(a2); strings.Contains(got, "secret") || !strings.Contains(got, "marker") {
		t.Fatalf("a2 after private: %s", got)
	}
	// The resource without carbons got none of the copies.
	a3.Send(`<message to='alice@localhost/nocarbons' type='chat' id='m5'><body>self</body></message>`)
	if got := nextMessage(a3); !strings.Contains(got, "self") {
		t.Fatalf("a3 got %s before its own message", got)
	}
}
