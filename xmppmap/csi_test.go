package xmppmap_test

import (
	"context"
	"strings"
	"testing"
)

// TestCSI: while alice's client is inactive, bob's presence changes are
// held and coalesced to the latest; a message flushes them first, in
// order; becoming active flushes too.
func TestCSI(t *testing.T) {
	s := newServer(t)
	ctx := context.Background()
	if _, err := s.Rosters().Subscribe(ctx, "alice@localhost", "bob@localhost", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Rosters().Approve(ctx, "bob@localhost", "alice@localhost"); err != nil {
		t.Fatal(err)
	}
	a := s.Connect(t, "alice@localhost/phone")
	b := s.Connect(t, "bob@localhost/pc")
	a.Send(`<presence/>`)
	a.Request(`<iq type='get' id='sync1'><ping xmlns='urn:xmpp:ping'/></iq>`)
	a.Send(`<inactive xmlns='urn:xmpp:csi:0'/>`)
	for _, show := range []string{"away", "xa", "dnd"} {
		b.Send(`<presence><show>` + show + `</show></presence>`)
	}
	b.Request(`<iq type='get' id='sync2'><ping xmlns='urn:xmpp:ping'/></iq>`)
	b.Send(`<message to='alice@localhost/phone' type='chat' id='m'><body>wake up</body></message>`)
	// The first thing alice sees after going inactive is bob's latest
	// presence, then the message: earlier presences were coalesced away.
	var seen []string
	for len(seen) < 2 {
		el := a.Next()
		x := el.String()
		if el.Name.Local == "iq" {
			continue
		}
		seen = append(seen, x)
	}
	if !strings.Contains(seen[0], "<show>dnd</show>") || !strings.Contains(seen[1], "wake up") {
		t.Fatalf("inactive client saw %q", seen)
	}
	// Presence is held again until the client becomes active.
	b.Send(`<presence><show>chat</show></presence>`)
	b.Request(`<iq type='get' id='sync3'><ping xmlns='urn:xmpp:ping'/></iq>`)
	a.Send(`<active xmlns='urn:xmpp:csi:0'/>`)
	if x := a.Next().String(); !strings.Contains(x, "<show>chat</show>") {
		t.Fatalf("after active: %s", x)
	}
}
