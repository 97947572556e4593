package xmppmap_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/imppd/imppd/xmppmap"
	"github.com/imppd/imppd/xmppmap/ping"
)

// await returns the next value from ch, failing after 5 s.
func await[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
	var zero T
	return zero
}

// nextIQGet returns the next IQ request the client receives, skipping
// presence.
func nextIQGet(t *testing.T, c *xmppmap.TestClient) *xmppmap.Element {
	t.Helper()
	for {
		el := c.Next()
		if el.Name.Local == "iq" && (el.Get("type") == "get" || el.Get("type") == "set") {
			return el
		}
		if el.Name.Local != "presence" {
			t.Fatalf("expected an IQ request, got %s", el)
		}
	}
}

// roundTrip pings the server and returns the stanzas the client received
// before the answer: everything the server queued before handling it.
func roundTrip(t *testing.T, c *xmppmap.TestClient, id string) []*xmppmap.Element {
	t.Helper()
	c.Send("<iq type='get' id='" + id + "' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
	var before []*xmppmap.Element
	for {
		el := c.Next()
		if el.Name.Local == "iq" && el.Get("id") == id {
			return before
		}
		before = append(before, el)
	}
}

// connectServing binds full and waits until its session serves the stream (and
// writes through its writer, not synchronously on the pipe).
func connectServing(t *testing.T, s *xmppmap.TestServer, full string) (*xmppmap.TestClient, xmppmap.Session) {
	t.Helper()
	c := s.Connect(t, full)
	roundTrip(t, c, "start")
	sess, ok := s.Session(full)
	if !ok {
		t.Fatalf("no session %s", full)
	}
	return c, sess
}

func requestServer(t *testing.T) *xmppmap.TestServer {
	s := xmppmap.NewTestServer(t, "alice@localhost", "bob@localhost")
	s.Use(ping.Module{})
	return s
}

func TestRequestAnswered(t *testing.T) {
	for _, tc := range []struct {
		name, answer, typ string
	}{
		{"result to the domain", "<iq type='result' id='%s' to='localhost'><x xmlns='urn:test'/></iq>", "result"},
		{"result without to", "<iq type='result' id='%s'/>", "result"},
		{"error", "<iq type='error' id='%s' to='localhost'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>", "error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := requestServer(t)
			a, sess := connectServing(t, s, "alice@localhost/a")
			got := make(chan *xmppmap.Element, 2)
			sess.Request("get", []byte("<query xmlns='urn:test'/>"), time.Minute, func(res *xmppmap.Element) { got <- res })
			req := nextIQGet(t, a)
			if req.Get("from") != "localhost" || req.Get("to") != "alice@localhost/a" || req.Get("id") == "" || req.Child("urn:test", "query") == nil {
				t.Fatalf("request %s", req)
			}
			a.Send(fmt.Sprintf(tc.answer, req.Get("id")))
			res := await(t, got, "the answer")
			if res == nil || res.Get("type") != tc.typ || res.Get("id") != req.Get("id") || res.Get("from") != "alice@localhost/a" {
				t.Fatalf("answer %v", res)
			}
			// A second answer with the same id is not dispatched again, and
			// nothing comes back to the client for it.
			a.Send(fmt.Sprintf(tc.answer, req.Get("id")))
			if before := roundTrip(t, a, "rt"); len(before) != 0 {
				t.Errorf("client got %v", before)
			}
			select {
			case res := <-got:
				t.Errorf("f called again with %v", res)
			default:
			}
		})
	}
}

func TestRequestAnswerElsewhereIgnored(t *testing.T) {
	s := requestServer(t)
	a, sess := connectServing(t, s, "alice@localhost/a")
	got := make(chan *xmppmap.Element, 2)
	sess.Request("set", []byte("<query xmlns='urn:test'/>"), time.Minute, func(res *xmppmap.Element) { got <- res })
	req := nextIQGet(t, a)
	if req.Get("type") != "set" {
		t.Fatalf("request %s", req)
	}
	id := req.Get("id")
	// Addressed to the account or to another domain: not an answer to
	// the server; nor is an unknown id.
	a.Send("<iq type='error' id='" + id + "' to='alice@localhost'/>")
	a.Send("<iq type='error' id='" + id + "' to='elsewhere.example'/>")
	a.Send("<iq type='error' id='" + id + "x' to='localhost'/>")
	roundTrip(t, a, "rt")
	select {
	case res := <-got:
		t.Fatalf("dispatched %v", res)
	default:
	}
	a.Send("<iq type='result' id='" + id + "' to='localhost'/>")
	if res := await(t, got, "the answer"); res == nil || res.Get("type") != "result" {
		t.Fatalf("answer %v", res)
	}
}

func TestRequestTimeout(t *testing.T) {
	s := requestServer(t)
	a, sess := connectServing(t, s, "alice@localhost/a")
	got := make(chan *xmppmap.Element, 2)
	sess.Request("get", []byte("<query xmlns='urn:test'/>"), time.Millisecond, func(res *xmppmap.Element) { got <- res })
	req := nextIQGet(t, a)
	if res := await(t, got, "the timeout"); res != nil {
		t.Fatalf("got %v", res)
	}
	// A late answer goes nowhere.
	a.Send("<iq type='result' id='" + req.Get("id") + "' to='localhost'/>")
	roundTrip(t, a, "rt")
	select {
	case res := <-got:
		t.Fatalf("f called again with %v", res)
	default:
	}
}

func TestRequestSessionEnd(t *testing.T) {
	s := requestServer(t)
	ended := make(chan struct{}, 1)
	s.OnSessionEnd(func(xmppmap.Session) { ended <- struct{}{} })
	a, sess := connectServing(t, s, "alice@localhost/a")
	got := make(chan *xmppmap.Element, 2)
	sess.Request("get", []byte("<query xmlns='urn:test'/>"), time.Hour, func(res *xmppmap.Element) { got <- res })
	nextIQGet(t, a)
	a.Close()
	if res := await(t, got, "f at session end"); res != nil {
		t.Fatalf("got %v", res)
	}
	await(t, ended, "the session end")
	// After the end, a request fails at once.
	called := false
	sess.Request("get", []byte("<query xmlns='urn:test'/>"), time.Hour, func(res *xmppmap.Element) { called = res == nil })
	if !called {
		t.Error("request on an ended session not refused")
	}
}

func TestRequestPendingBound(t *testing.T) {
	s := requestServer(t)
	a, sess := connectServing(t, s, "alice@localhost/a")
	got := make(chan *xmppmap.Element, 64)
	f := func(res *xmppmap.Element) { got <- res }
	const bound = 16
	for range bound {
		sess.Request("get", []byte("<query xmlns='urn:test'/>"), time.Hour, f)
	}
	var ids []string
	for range bound {
		ids = append(ids, nextIQGet(t, a).Get("id"))
	}
	// Beyond the bound, f(nil) before Request returns, and nothing is sent.
	refused := false
	sess.Request("get", []byte("<query xmlns='urn:test'/>"), time.Hour, func(res *xmppmap.Element) { refused = res == nil })
	if !refused {
		t.Fatal("request beyond the bound not refused")
	}
	if before := roundTrip(t, a, "rt"); len(before) != 0 {
		t.Fatalf("client got %v", before)
	}
	// An answer frees a place.
	a.Send("<iq type='result' id='" + ids[0] + "'/>")
	if res := await(t, got, "the answer"); res == nil {
		t.Fatal("nil answer")
	}
	sess.Request("get", []byte("<query xmlns='urn:test'/>"), time.Hour, f)
	if id := nextIQGet(t, a).Get("id"); id == "" || id == ids[0] {
		t.Fatalf("id %q reused or empty", id)
	}
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			t.Fatalf("duplicate id %s", id)
		}
		seen[id] = true
	}
}

func TestOnPresence(t *testing.T) {
	s := requestServer(t)
	events := make(chan string, 8)
	s.OnPresence(func(ev *xmppmap.PresenceEvent) {
		events <- ev.Session.JID().String()
		ev.Stanza.Append(xmppmap.NewElement("urn:test", "mark"))
	})
	a := s.Connect(t, "alice@localhost/a")
	b := s.Connect(t, "alice@localhost/b")
	a.Send("<presence/>")
	if ev := await(t, events, "a's presence"); ev != "alice@localhost/a" {
		t.Fatalf("event %+v", ev)
	}
	roundTrip(t, a, "rt0")
	for i := range 2 {
		b.Send("<presence><show>away</show></presence>")
		if ev := await(t, events, "b's presence"); ev != "alice@localhost/b" {
			t.Fatalf("presence %d: event %+v", i, ev)
		}
		// a, available, gets b's presence with the child the hook added.
		for {
			el := a.Next()
			if el.Name.Local == "presence" && el.Get("from") == "alice@localhost/b" {
				if el.Child("urn:test", "mark") == nil || el.Child("", "show") == nil {
					t.Fatalf("published %s", el)
				}
				break
			}
		}
	}
	// Unavailable and directed presence are not broadcast available presence.
	b.Send("<presence to='bob@localhost'/>")
	b.Send("<presence type='unavailable'/>")
	roundTrip(t, b, "rt1")
	select {
	case ev := <-events:
		t.Fatalf("hook ran for %+v", ev)
	default:
	}
}
