package e2e

import (
	"strings"
	"testing"
	"time"
)

const nsSM = "urn:xmpp:sm:3"

// messagesFrom reads r until n messages with the given body prefix arrived,
// skipping anything else, and returns their bodies.
func messagesFrom(t *testing.T, r *Raw, n int, prefix string) []string {
	t.Helper()
	var got []string
	for len(got) < n {
		el := r.MustNext()
		if b := el.Child(NSClient, "body"); el.Is(NSClient, "message") && b != nil && strings.HasPrefix(b.Text, prefix) {
			got = append(got, b.Text)
		}
	}
	return got
}

// TestStreamManagementResume drops the TCP connection under a client with
// stanzas in flight and resumes: nothing acknowledged is resent, nothing
// unacknowledged or sent meanwhile is lost (XEP-0198 §5).
func TestStreamManagementResume(t *testing.T) {
	s := Start(t, Options{Users: []User{{"alice@localhost", "pw-a"}, {"bob@localhost", "pw-b"}}})
	bob := s.Login(t, "bob@localhost", "pw-b")

	r := s.DialRaw(t)
	full := r.Login("alice", "pw-a", "phone")
	if r.Features == nil || r.Features.Child(nsSM, "sm") == nil {
		t.Fatalf("no <sm/> stream feature after authentication: %v", r.Features)
	}
	r.MustWrite("<enable xmlns='" + nsSM + "' resume='true'/>")
	en := r.MustNext()
	if !en.Is(nsSM, "enabled") || en.Get("resume") != "true" || en.Get("id") == "" {
		t.Fatalf("enable: %s", en)
	}
	id := en.Get("id")
	for i := 1; i <= 3; i++ {
		bob.Sendf("<message to='%s' type='chat' id='m%d'><body>msg %d</body></message>", full, i, i)
	}
	if got := messagesFrom(t, r, 3, "msg "); len(got) != 3 || got[0] != "msg 1" {
		t.Fatalf("received %v", got)
	}
	// Acknowledge only the first, then lose the connection.
	r.MustWrite("<a xmlns='" + nsSM + "' h='1'/>")
	mark := s.Log().Len()
	r.TCP.Close()
	if _, err := s.WaitLog(mark, IOTimeout, func(e LogEntry) bool { return e.Msg() == "connection lost; session kept for resumption" }); err != nil {
		t.Fatalf("server did not detach the session: %v", err)
	}
	// Sent while the client is away: kept for it.
	bob.Sendf("<message to='%s' type='chat' id='m4'><body>msg 4</body></message>", full)

	r2 := s.DialRaw(t)
	r2.Open()
	r2.StartTLS()
	if cond := r2.Auth(ScramSha256Plus, "alice", "pw-a"); cond != "" {
		t.Fatalf("auth: %s", cond)
	}
	r2.MustWrite("<resume xmlns='" + nsSM + "' h='1' previd='" + id + "'/>")
	res := r2.MustNext()
	if !res.Is(nsSM, "resumed") || res.Get("previd") != id || res.Get("h") != "0" {
		t.Fatalf("resume: %s", res)
	}
	if got := messagesFrom(t, r2, 3, "msg "); strings.Join(got, ",") != "msg 2,msg 3,msg 4" {
		t.Fatalf("after resumption got %v, want msg 2, msg 3, msg 4", got)
	}
	// The resumed session is the old one: same JID, still reachable.
	bob.Sendf("<message to='%s' type='chat' id='m5'><body>msg 5</body></message>", full)
	messagesFrom(t, r2, 1, "msg 5")
	// Acks: our count of what the server sent after resumption is 4
	// (retransmitted 2, 3, 4 count again from the acked 1, then 5).
	r2.MustWrite("<r xmlns='" + nsSM + "'/>")
	for {
		el := r2.MustNext()
		if el.Is(nsSM, "r") {
			r2.MustWrite("<a xmlns='" + nsSM + "' h='5'/>")
			continue
		}
		if el.Is(nsSM, "a") {
			if el.Get("h") != "0" {
				t.Fatalf("server counted %s stanzas from us, want 0", el.Get("h"))
			}
			break
		}
	}
	// An unknown id fails and the client can bind normally.
	r3 := s.DialRaw(t)
	r3.Open()
	r3.StartTLS()
	r3.Auth(ScramSha256Plus, "alice", "pw-a")
	r3.MustWrite("<resume xmlns='" + nsSM + "' h='0' previd='nope'/>")
	if f := r3.MustNext(); !f.Is(nsSM, "failed") || f.Child("urn:ietf:params:xml:ns:xmpp-stanzas", "item-not-found") == nil {
		t.Fatalf("resume with an unknown id: %s", f)
	}
	r3.Bind("laptop")
}

// TestStreamManagementTimeout: when no resumption comes, the messages the
// client never acknowledged go to offline storage and reach its next
// session, and its contacts see it go.
func TestStreamManagementTimeout(t *testing.T) {
	s := Start(t, Options{Users: []User{{"alice@localhost", "pw-a"}, {"bob@localhost", "pw-b"}}})
	bob := s.Login(t, "bob@localhost", "pw-b")
	r := s.DialRaw(t)
	full := r.Login("alice", "pw-a", "phone")
	r.MustWrite("<enable xmlns='" + nsSM + "' resume='true' max='1'/>")
	if en := r.MustNext(); en.Get("max") != "1" {
		t.Fatalf("enable with max=1: %s", en)
	}
	bob.Sendf("<message to='%s' type='chat' id='u1'><body>unacked</body></message>", full)
	messagesFrom(t, r, 1, "unacked")
	mark := s.Log().Len()
	r.TCP.Close()
	if _, err := s.WaitLog(mark, 30*time.Second, func(e LogEntry) bool { return e.Msg() == "unacknowledged messages routed again" }); err != nil {
		t.Fatalf("unacknowledged message not routed again: %v", err)
	}
	r2 := s.DialRaw(t)
	r2.Login("alice", "pw-a", "laptop")
	r2.MustWrite("<presence/>")
	for {
		el := r2.MustNext()
		if el.Is(NSClient, "message") {
			if b := el.Child(NSClient, "body"); b == nil || b.Text != "unacked" || el.Child("urn:xmpp:delay", "delay") == nil {
				t.Fatalf("offline copy: %s", el)
			}
			break
		}
	}
}

// TestStreamManagementCounts: the server acknowledges what it received and
// refuses an acknowledgement of more than it sent.
func TestStreamManagementCounts(t *testing.T) {
	s := Start(t, Options{Users: []User{{"alice@localhost", "pw-a"}}})
	r := s.DialRaw(t)
	r.Login("alice", "pw-a", "x")
	r.MustWrite("<enable xmlns='" + nsSM + "'/>")
	if en := r.MustNext(); !en.Is(nsSM, "enabled") || en.Get("resume") != "" {
		t.Fatalf("enable without resume: %s", en)
	}
	r.MustWrite("<enable xmlns='" + nsSM + "'/>")
	if f := r.MustNext(); !f.Is(nsSM, "failed") {
		t.Fatalf("second enable: %s", f)
	}
	r.MustWrite("<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq><iq type='get' id='p2' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq><r xmlns='" + nsSM + "'/>")
	for {
		el := r.MustNext()
		if el.Is(nsSM, "a") {
			if el.Get("h") != "2" {
				t.Fatalf("server acknowledged %s stanzas, want 2", el.Get("h"))
			}
			break
		}
	}
	r.MustWrite("<a xmlns='" + nsSM + "' h='99'/>")
	out, _ := r.ReadAll(IOTimeout)
	if se, ok := ParseStreamError(out); !ok || se.Condition != "undefined-condition" {
		t.Fatalf("ack of more than was sent: %q", out)
	}
}
