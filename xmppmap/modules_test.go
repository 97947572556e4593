package xmppmap_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/imppd/imppd/core"
	"github.com/imppd/imppd/xmppmap"
	"github.com/imppd/imppd/xmppmap/xeps"
)

func newServer(t *testing.T) *xmppmap.TestServer {
	s := xmppmap.NewTestServer(t, "alice@localhost", "bob@localhost", "carol@localhost")
	s.Use(xeps.Modules(xeps.Options{Version: "1.2.3", Started: time.Now().Add(-90 * time.Second),
		Blocklists: &memBlocklists{m: map[core.PrincipalID][]string{}}})...)
	return s
}

// condition returns the stanza error condition of an error reply, or "".
func condition(el *xmppmap.Element) string {
	e := el.Child("", "error")
	if e == nil {
		return ""
	}
	for _, n := range e.Nodes {
		if n.Elem != nil && n.Elem.Name.Space == "urn:ietf:params:xml:ns:xmpp-stanzas" && n.Elem.Name.Local != "text" {
			return n.Elem.Name.Local
		}
	}
	return ""
}

func TestModuleIQs(t *testing.T) {
	s := newServer(t)
	a := s.Connect(t, "alice@localhost/a")
	for _, tc := range []struct {
		name, iq string
		check    func(t *testing.T, el *xmppmap.Element)
	}{
		{"ping server", `<iq type='get' id='1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`, func(t *testing.T, el *xmppmap.Element) {
			if el.Get("type") != "result" || el.Get("from") != "localhost" {
				t.Errorf("got %s", el)
			}
		}},
		{"ping own account without to", `<iq type='get' id='2'><ping xmlns='urn:xmpp:ping'/></iq>`, func(t *testing.T, el *xmppmap.Element) {
			if el.Get("type") != "result" {
				t.Errorf("got %s", el)
			}
		}},
		{"ping set is bad-request", `<iq type='set' id='3' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`, func(t *testing.T, el *xmppmap.Element) {
			if condition(el) != "bad-request" {
				t.Errorf("got %s", el)
			}
		}},
		{"version", `<iq type='get' id='4' to='localhost'><query xmlns='jabber:iq:version'/></iq>`, func(t *testing.T, el *xmppmap.Element) {
			q := el.Child("jabber:iq:version", "query")
			if q == nil || q.Child("", "name").Text() != "imppd" || q.Child("", "version").Text() != "1.2.3" {
				t.Errorf("got %s", el)
			}
		}},
		{"time", `<iq type='get' id='5' to='localhost'><time xmlns='urn:xmpp:time'/></iq>`, func(t *testing.T, el *xmppmap.Element) {
			q := el.Child("urn:xmpp:time", "time")
			if q == nil {
				t.Fatalf("got %s", el)
			}
			if _, err := time.Parse("2006-01-02T15:04:05.000Z", q.Child("", "utc").Text()); err != nil {
				t.Errorf("utc: %v in %s", err, el)
			}
		}},
		{"uptime", `<iq type='get' id='6' to='localhost'><query xmlns='jabber:iq:last'/></iq>`, func(t *testing.T, el *xmppmap.Element) {
			q := el.Child("jabber:iq:last", "query")
			if q == nil || q.Get("seconds") < "90" || len(q.Get("seconds")) > 3 {
				t.Errorf("got %s", el)
			}
		}},
		{"unknown namespace to server", `<iq type='get' id='7' to='localhost'><query xmlns='urn:nothing'/></iq>`, func(t *testing.T, el *xmppmap.Element) {
			if condition(el) != "service-unavailable" {
				t.Errorf("got %s", el)
			}
		}},
		{"disco info server", `<iq type='get' id='8' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`, func(t *testing.T, el *xmppmap.Element) {
			x := el.String()
			for _, f := range []string{"category='server'", "urn:xmpp:ping", "jabber:iq:version", "urn:xmpp:time", "jabber:iq:last", "http://jabber.org/protocol/commands", "urn:xmpp:sid:0"} {
				if !strings.Contains(x, f) {
					t.Errorf("disco#info lacks %s: %s", f, x)
				}
			}
		}},
		{"disco info own account", `<iq type='get' id='9' to='alice@localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`, func(t *testing.T, el *xmppmap.Element) {
			if x := el.String(); !strings.Contains(x, "category='account'") || strings.Contains(x, "jabber:iq:version") {
				t.Errorf("got %s", x)
			}
		}},
		{"disco info of a non-contact reveals nothing", `<iq type='get' id='10' to='bob@localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`, func(t *testing.T, el *xmppmap.Element) {
			if condition(el) != "service-unavailable" {
				t.Errorf("got %s", el)
			}
		}},
		{"last activity of a non-contact is forbidden", `<iq type='get' id='11' to='bob@localhost'><query xmlns='jabber:iq:last'/></iq>`, func(t *testing.T, el *xmppmap.Element) {
			if condition(el) != "forbidden" {
				t.Errorf("got %s", el)
			}
		}},
		{"disco node unknown", `<iq type='get' id='12' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items' node='nope'/></iq>`, func(t *testing.T, el *xmppmap.Element) {
			if condition(el) != "item-not-found" {
				t.Errorf("got %s", el)
			}
		}},
		{"commands listed", `<iq type='get' id='13' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items' node='http://jabber.org/protocol/commands'/></iq>`, func(t *testing.T, el *xmppmap.Element) {
			if !strings.Contains(el.String(), "urn:imppd:watcher-info") {
				t.Errorf("got %s", el)
			}
		}},
		{"unknown command", `<iq type='set' id='14' to='localhost'><command xmlns='http://jabber.org/protocol/commands' node='nope' action='execute'/></iq>`, func(t *testing.T, el *xmppmap.Element) {
			if condition(el) != "item-not-found" {
				t.Errorf("got %s", el)
			}
		}},
		{"bad command session", `<iq type='set' id='15' to='localhost'><command xmlns='http://jabber.org/protocol/commands' node='urn:imppd:watcher-info' sessionid='forged'/></iq>`, func(t *testing.T, el *xmppmap.Element) {
			if condition(el) != "bad-request" {
				t.Errorf("got %s", el)
			}
		}},
		{"iq with two payloads", `<iq type='get' id='16' to='localhost'><ping xmlns='urn:xmpp:ping'/><ping xmlns='urn:xmpp:ping'/></iq>`, func(t *testing.T, el *xmppmap.Element) {
			if condition(el) != "bad-request" {
				t.Errorf("got %s", el)
			}
		}},
	} {
		t.Log(tc.name)
		tc.check(t, a.Request(tc.iq))
	}
}

// TestContactVisibility: once bob is subscribed to alice, disco and last
// activity on alice are answered for bob; carol still learns nothing.
func TestContactVisibility(t *testing.T) {
	s := newServer(t)
	ctx := context.Background()
	if _, err := s.Rosters().Subscribe(ctx, "bob@localhost", "alice@localhost", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Rosters().Approve(ctx, "alice@localhost", "bob@localhost"); err != nil {
		t.Fatal(err)
	}
	a := s.Connect(t, "alice@localhost/a")
	a.Send(`<presence><status>here</status></presence>`)
	a.Request(`<iq type='get' id='sync'><ping xmlns='urn:xmpp:ping'/></iq>`)
	b := s.Connect(t, "bob@localhost/b")
	c := s.Connect(t, "carol@localhost/c")

	if el := b.Request(`<iq type='get' id='1' to='alice@localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`); el.Get("type") != "result" {
		t.Errorf("bob disco on alice: %s", el)
	}
	if el := b.Request(`<iq type='get' id='2' to='alice@localhost'><query xmlns='jabber:iq:last'/></iq>`); el.Child("jabber:iq:last", "query").Get("seconds") != "0" {
		t.Errorf("bob last on online alice: %s", el)
	}
	if el := c.Request(`<iq type='get' id='3' to='alice@localhost'><query xmlns='jabber:iq:last'/></iq>`); condition(el) != "forbidden" {
		t.Errorf("carol last on alice: %s", el)
	}
	if el := b.Request(`<iq type='get' id='4' to='nobody@localhost'><query xmlns='jabber:iq:last'/></iq>`); condition(el) != "service-unavailable" {
		t.Errorf("last on nobody: %s", el)
	}
}

// TestWatcherInfoCommand: a probe by a non-subscriber is refused and
// recorded; the command shows it to alice only.
func TestWatcherInfoCommand(t *testing.T) {
	s := newServer(t)
	a := s.Connect(t, "alice@localhost/a")
	c := s.Connect(t, "carol@localhost/c")
	c.Send(`<presence type='probe' to='alice@localhost'/>`)
	if el := c.Next(); el.Get("type") != "unsubscribed" || el.Get("from") != "alice@localhost" {
		t.Fatalf("probe answer: %s", el)
	}
	el := a.Request(`<iq type='set' id='w' to='localhost'><command xmlns='http://jabber.org/protocol/commands' node='urn:imppd:watcher-info' action='execute'/></iq>`)
	x := el.String()
	if el.Get("type") != "result" || !strings.Contains(x, "status='completed'") || !strings.Contains(x, "<value>carol@localhost</value>") || !strings.Contains(x, "<value>refused</value>") {
		t.Fatalf("watcher info: %s", x)
	}
	recs, err := s.Engine().WatcherInfo(context.Background(), "carol@localhost", "alice@localhost")
	if err == nil || recs != nil {
		t.Fatalf("carol read alice's watcher information: %v %v", recs, err)
	}
}
