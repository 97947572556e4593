package e2e

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Where a bad-input connection is when it misbehaves.
type stage int

const (
	preHeader stage = iota // nothing sent yet
	opened                 // stream header exchanged, before TLS
	secured                // after STARTTLS, before SASL
	bound                  // authenticated (as carol) and bound
)

func (st stage) String() string {
	return [...]string{"before the header", "after the header", "after STARTTLS", "after binding"}[st]
}

// badInputTimeout bounds how long a server may take to answer bad input.
const badInputTimeout = 5 * time.Second

func header(attrs string) string {
	return "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' " + attrs + ">"
}

func nested(levels int) string {
	return strings.Repeat("<x xmlns='urn:example:nest'>", levels) + strings.Repeat("</x>", levels)
}

type badCase struct {
	name    string
	stage   stage
	payload string
	want    []string // acceptable stream error conditions (RFC 6120 §4.9.3)
}

// badCases are the bad inputs of TestBadInput, run against a server with
// max_stanza_size 8192, max_preauth_size 4096 and max_depth 16.
var badCases = []badCase{
	// RFC 6120 §11.1: no DTDs, comments or processing instructions.
	{"DOCTYPE", preHeader, "<?xml version='1.0'?><!DOCTYPE stream:stream [<!ENTITY boom 'boom'>]>" + StreamHeader("localhost")[len("<?xml version='1.0'?>"):], []string{"restricted-xml"}},
	{"processing instruction before the header", preHeader, "<?xml version='1.0'?><?xml-stylesheet href='x.xsl'?>" + header("to='localhost' version='1.0'"), []string{"restricted-xml"}},
	{"comment before the header", preHeader, "<!-- hello -->" + header("to='localhost' version='1.0'"), []string{"restricted-xml"}},
	{"processing instruction after the header", opened, "<?foo bar?>", []string{"restricted-xml"}},
	{"comment after the header", opened, "<!-- hello -->", []string{"restricted-xml"}},
	{"DOCTYPE after the header", opened, "<!DOCTYPE foo>", []string{"restricted-xml", "not-well-formed"}},
	{"comment inside a stanza", bound, "<message to='bob@localhost/bad'><!-- x --><body>x</body></message>", []string{"restricted-xml"}},
	{"processing instruction inside a stanza", bound, "<message to='bob@localhost/bad'><?pi x?><body>x</body></message>", []string{"restricted-xml"}},

	// RFC 6120 §4.9.3.13 not-well-formed (XML and XML namespaces).
	{"invalid UTF-8 in the header", preHeader, header("to='local\xffhost' version='1.0'"), []string{"not-well-formed"}},
	{"invalid UTF-8 before authentication", opened, "<x xmlns='urn:example'>\xc3\x28</x>", []string{"not-well-formed"}},
	{"invalid UTF-8 in a stanza", bound, "<message to='bob@localhost/bad'><body>bad \xff\xfe bytes</body></message>", []string{"not-well-formed"}},
	{"unquoted attribute in the header", preHeader, header("to='localhost' version=1.0"), []string{"not-well-formed"}},
	{"text before the header", preHeader, "hello" + header("to='localhost' version='1.0'"), []string{"not-well-formed"}},
	{"mismatched end tag before authentication", opened, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'></stattls>", []string{"not-well-formed"}},
	{"mismatched end tag in a stanza", bound, "<message to='bob@localhost/bad'><body>x</message>", []string{"not-well-formed"}},
	{"undefined entity", bound, "<message to='bob@localhost/bad'><body>&nbsp;</body></message>", []string{"not-well-formed"}},
	{"undeclared prefix", bound, "<message to='bob@localhost/bad'><x:body>hi</x:body></message>", []string{"not-well-formed"}},
	{"duplicate attribute", bound, "<message to='bob@localhost/bad' to='bob@localhost/phone' type='chat'><body>dup</body></message>", []string{"not-well-formed"}},

	// RFC 6120 §4.8 and §4.9.3: the stream header.
	{"wrong stream namespace", preHeader, "<stream:stream xmlns='jabber:client' xmlns:stream='http://example.com/streams' to='localhost' version='1.0'>", []string{"invalid-namespace"}},
	{"wrong content namespace", preHeader, "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>", []string{"invalid-namespace"}},
	{"no content namespace", preHeader, "<stream:stream xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>", []string{"invalid-namespace"}},
	{"stream prefix not 'stream'", preHeader, "<foo:stream xmlns:foo='http://etherx.jabber.org/streams' xmlns='jabber:client' to='localhost' version='1.0'>", []string{"bad-namespace-prefix"}},
	{"unknown 'to' domain", preHeader, header("to='example.net' version='1.0'"), []string{"host-unknown"}},
	{"missing version", preHeader, header("to='localhost'"), []string{"unsupported-version"}},
	{"encoding ISO-8859-1", preHeader, "<?xml version='1.0' encoding='ISO-8859-1'?>" + header("to='localhost' version='1.0'"), []string{"unsupported-encoding"}},

	// Limits (RFC 6120 §13.12, DESIGN §6): policy-violation.
	{"pre-auth byte budget", opened, "<x xmlns='urn:example' a='" + strings.Repeat("A", 6000) + "'/>", []string{"policy-violation"}},
	{"pre-auth byte budget after STARTTLS", secured, "<x xmlns='urn:example' a='" + strings.Repeat("A", 6000) + "'/>", []string{"policy-violation"}},
	{"pre-auth nesting", opened, nested(20), []string{"policy-violation"}},
	{"stanza larger than max_stanza_size", bound, "<message to='bob@localhost/bad'><body>" + strings.Repeat("A", 9000) + "</body></message>", []string{"policy-violation"}},
	{"nesting deeper than max_depth", bound, "<message to='bob@localhost/bad'>" + nested(20) + "</message>", []string{"policy-violation"}},

	// RFC 6120 §4.9.3.12 and §4.9.3.24.
	{"stanza before authentication", opened, "<message to='bob@localhost/phone'><body>hi</body></message>", []string{"not-authorized"}},
	{"stanza after STARTTLS before authentication", secured, "<message to='bob@localhost/phone'><body>hi</body></message>", []string{"not-authorized"}},
	{"unknown top-level element", bound, "<foo xmlns='jabber:client'/>", []string{"unsupported-stanza-type"}},
	{"top-level element in another namespace", bound, "<foo xmlns='urn:example'/>", []string{"unsupported-stanza-type"}},
}

// TestBadInput sends each bad input on a fresh connection and checks the
// stream error on the wire (header first if none was sent yet, the error,
// </stream:stream>, then the TCP close), and that two well-behaved
// sessions connected all along still exchange messages.
func TestBadInput(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{Users: users(), MaxStanzaSize: 8192, MaxPreauthSize: 4096, MaxDepth: 16})
	a := s.LoginWith(t, ClientOptions{JID: alice.JID + "/desk", Password: alice.Password})
	b := s.LoginWith(t, ClientOptions{JID: bob.JID + "/phone", Password: bob.Password})

	for i, tc := range badCases {
		t.Run(tc.name, func(t *testing.T) {
			r := s.DialRaw(t)
			switch tc.stage {
			case opened:
				r.Open()
			case secured:
				r.Open()
				r.StartTLS()
			case bound:
				r.Login("carol", carol.Password, fmt.Sprintf("raw-%d", i))
			}
			// The server may close before reading everything: a failed
			// write is fine, what it sent back is what counts.
			_ = r.Write([]byte(tc.payload))
			checkStreamError(t, r, tc.stage == preHeader, tc.want...)
			strictExchange(t, a, b)
		})
	}

	t.Run("limits are not too strict", func(t *testing.T) {
		// Controls for the limit cases above: just under the limits, the
		// same stanzas are delivered and the session stays up.
		r := s.DialRaw(t)
		carolJID := r.Login("carol", carol.Password, "under-limits")
		for _, payload := range []string{
			strings.Repeat("A", 7000),
			nested(12),
		} {
			body := uniqueBody("under limits")
			r.MustWrite("<message type='chat' to='bob@localhost/phone'><body>" + body + "</body>" + payload + "</message>")
			m := b.MustNext(IOTimeout)
			if !MessageWithBody(body)(m) || m.Get("from") != carolJID {
				t.Errorf("bob got %s, want carol's message %q", m, body)
			}
		}
	})
	exchange(t, a, b)
}

// checkStreamError reads what the server sends until it closes, and checks
// it is a stream error with one of the conditions want, preceded by the
// server's stream header when wantHeader, followed by </stream:stream> and
// the closing of the TCP connection (RFC 6120 §4.9.1.1 and §4.9.1.2).
func checkStreamError(t *testing.T, r *Raw, wantHeader bool, want ...string) {
	t.Helper()
	out, err := r.ReadAll(badInputTimeout)
	if err != nil {
		t.Errorf("reading the server's answer: %v\nreceived: %q", err, out)
	}
	se, ok := ParseStreamError(out)
	switch {
	case !ok:
		t.Errorf("no stream error (want %s); the server sent %q", strings.Join(want, " or "), out)
		return
	case !slices.Contains(want, se.Condition):
		t.Errorf("stream error <%s/> (text %q), want <%s/>; the server sent %q", se.Condition, se.Text, strings.Join(want, "/> or <"), out)
	}
	if wantHeader && !se.Header {
		t.Errorf("the stream error was not preceded by the server's stream header (RFC 6120 §4.9.1.2): %q", out)
	}
	if !se.Closed {
		t.Errorf("the stream error was not followed by </stream:stream> (RFC 6120 §4.9.1.1): %q", out)
	}
	if err := r.waitClosed(badInputTimeout); err != nil {
		t.Errorf("after the stream error: %v", err)
	}
}

// waitClosed checks that the server closes the connection without sending
// anything more.
func (r *Raw) waitClosed(timeout time.Duration) error {
	_ = r.Conn.SetReadDeadline(time.Now().Add(timeout))
	defer func() { _ = r.Conn.SetReadDeadline(time.Time{}) }()
	var extra []byte
	buf := make([]byte, 512)
	for {
		n, err := r.Conn.Read(buf)
		extra = append(extra, buf[:n]...)
		if err != nil {
			var ne interface{ Timeout() bool }
			switch {
			case errors.As(err, &ne) && ne.Timeout():
				return fmt.Errorf("the server did not close the TCP connection within %v", timeout)
			case len(extra) > 0:
				return fmt.Errorf("data after </stream:stream>: %q", extra)
			case errors.Is(err, syscall.ECONNRESET):
				return nil
			}
			return nil // EOF (or a TLS close_notify)
		}
	}
}

// strictExchange checks that a and b exchange messages and that each
// message is the very next thing the recipient sees: nothing from a bad
// connection reached them.
func strictExchange(t *testing.T, a, b *Client) {
	t.Helper()
	for _, p := range [][2]*Client{{a, b}, {b, a}} {
		from, to := p[0], p[1]
		body := uniqueBody("strict exchange")
		from.Sendf("<message type='chat' to='%s'><body>%s</body></message>", Esc(to.JID.String()), Esc(body))
		m, err := to.Next(IOTimeout)
		if err != nil {
			t.Fatalf("%s: waiting for %q: %v", to.JID, body, err)
		}
		if !MessageWithBody(body)(m) || m.Get("from") != from.JID.String() {
			t.Errorf("%s received %s, want the message %q from %s", to.JID, m, body, from.JID)
		}
	}
}

// TestConnectionsPerIP checks c2s.max_connections_per_ip: the connection
// over the limit gets policy-violation, the others keep working.
func TestConnectionsPerIP(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{Users: users(), MaxConnectionsPerIP: 3})
	a := s.Login(t, alice.JID, alice.Password)
	b := s.Login(t, bob.JID, bob.Password)
	third := s.DialRaw(t)
	third.Open() // admitted: its features arrived

	over := s.DialRaw(t)
	_ = over.Write([]byte(StreamHeader("localhost")))
	checkStreamError(t, over, true, "policy-violation")
	strictExchange(t, a, b)

	// The admitted third connection still negotiates.
	third.StartTLS()
	if cond := third.Auth(ScramSha256Plus, "carol", carol.Password); cond != "" {
		t.Errorf("third connection: SASL %s", cond)
	}
}

// TestShutdown checks that SIGTERM closes every stream with
// <system-shutdown/> (RFC 6120 §4.9.3.17) and that the server exits 0.
func TestShutdown(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{Users: users()})
	a := s.Login(t, alice.JID, alice.Password)
	b := s.LoginWith(t, ClientOptions{JID: bob.JID, Password: bob.Password, DirectTLS: true})
	exchange(t, a, b)
	pre := s.DialRaw(t)
	pre.Open()
	pre.StartTLS()

	if err := s.Stop(); err != nil {
		t.Errorf("imppd exit after SIGTERM: %v", err)
	}
	for _, c := range []*Client{a, b} {
		cond, err := c.StreamErrorCondition(IOTimeout)
		if err != nil || cond != "system-shutdown" {
			t.Errorf("%s: stream ended with %q (%v), want <system-shutdown/>", c.JID, cond, err)
		}
	}
	t.Run("unauthenticated stream", func(t *testing.T) {
		checkStreamError(t, pre, false, "system-shutdown")
	})
}
