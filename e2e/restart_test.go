package e2e

import (
	"bytes"
	"testing"
)

// TestRestart exercises the harness's Restart and Kill9 on a real server:
// accounts, the generated certificate and an offline message (stored with
// synchronous = "full") survive a clean restart and a SIGKILL.
func TestRestart(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{Users: users()})
	cert := bytes.Clone(s.CACertPEM)

	a := s.Login(t, alice.JID, alice.Password)
	from := s.Log().Len()
	body := uniqueBody("offline for bob")
	a.Sendf("<message type='chat' to='bob@localhost' id='off1'><body>%s</body></message>", Esc(body))
	// The server logs the routing decision once the message is committed
	// to bob's offline store.
	if _, err := s.WaitLog(from, IOTimeout, func(e LogEntry) bool {
		return e.Msg() == "message routed" && e.Str("stanza") == "off1" && e.Str("stored") == "true"
	}); err != nil {
		t.Fatalf("message to offline bob not stored: %v", err)
	}

	s.Kill9()
	if s.Running() {
		t.Fatal("still running after Kill9")
	}
	s.Restart(t)
	if !bytes.Equal(cert, s.CACertPEM) {
		t.Errorf("the self-signed certificate changed across restarts (same domains)")
	}

	b := s.Login(t, bob.JID, bob.Password)
	b.MustSend("<presence/>") // initial presence: offline messages follow (XEP-0160)
	m := b.Expect(IOTimeout, "the offline message", MessageWithBody(body))
	if m.Get("from") != a.JID.String() {
		t.Errorf("offline message from=%q, want %s", m.Get("from"), a.JID)
	}
	if m.Child("urn:xmpp:delay", "delay") == nil {
		t.Errorf("offline message without a XEP-0203 <delay/>: %s", m)
	}

	s.Restart(t) // clean stop (SIGTERM, exit 0) and start
	c := s.Login(t, carol.JID, carol.Password)
	d := s.LoginWith(t, ClientOptions{JID: alice.JID + "/again", Password: alice.Password, DirectTLS: true})
	exchange(t, c, d)
}
