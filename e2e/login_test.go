package e2e

import (
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"slices"
	"strings"
	"testing"

	"mellium.im/xmpp/stanza"
)

// loginLogged waits for the server's "authenticated" log line for account
// with mechanism, logged at or after line from.
func loginLogged(t *testing.T, s *Server, from int, account, mech string) {
	t.Helper()
	_, err := s.WaitLog(from, IOTimeout, func(e LogEntry) bool {
		return e.Msg() == "authenticated" && e.Str("account") == account && e.Str("mechanism") == mech
	})
	if err != nil {
		t.Errorf("server log: no \"authenticated\" line for %s with mechanism %s: %v", account, mech, err)
	}
}

func TestLogin(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{Users: users()})

	for _, tc := range []struct {
		mech   string
		direct bool
	}{
		{ScramSha256Plus, false},
		{ScramSha256, false},
		{ScramSha1Plus, false},
		{ScramSha1, false},
		{Plain, false},
		{ScramSha256Plus, true},
		{ScramSha1, true},
	} {
		name := tc.mech
		if tc.direct {
			name += "/direct-TLS"
		} else {
			name += "/STARTTLS"
		}
		t.Run(name, func(t *testing.T) {
			from := s.Log().Len()
			c := s.LoginWith(t, ClientOptions{JID: alice.JID, Password: alice.Password, Mechanism: tc.mech, DirectTLS: tc.direct})
			if c.JID.Bare().String() != alice.JID || c.JID.Resourcepart() == "" {
				t.Errorf("bound JID %s, want a full JID of %s", c.JID, alice.JID)
			}
			if c.TLS.Version != tls.VersionTLS13 {
				// -PLUS here binds with tls-exporter, which RFC 9266 defines for TLS 1.3.
				t.Errorf("TLS version %#x, want TLS 1.3 (%#x)", c.TLS.Version, tls.VersionTLS13)
			}
			if tc.direct && c.TLS.NegotiatedProtocol != "xmpp-client" {
				t.Errorf("ALPN protocol %q, want xmpp-client (XEP-0368)", c.TLS.NegotiatedProtocol)
			}
			loginLogged(t, s, from, alice.JID, tc.mech)
			// The session works: the server answers a ping (XEP-0199).
			id := c.NewID("ping")
			res := c.IQ(id, "<iq type='get' id='"+id+"' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
			if res.Get("type") != "result" {
				t.Errorf("ping to the server: %s", res)
			}
		})
	}

	t.Run("wrong password/mellium", func(t *testing.T) {
		_, err := s.Connect(t, ClientOptions{JID: alice.JID, Password: "wrong", Mechanism: ScramSha256Plus})
		if err == nil {
			t.Fatal("login with a wrong password succeeded")
		}
		if !strings.Contains(err.Error(), "not-authorized") {
			t.Errorf("error %q does not name not-authorized", err)
		}
	})

	for _, mech := range []string{ScramSha256Plus, ScramSha256, ScramSha1, Plain} {
		t.Run("wrong password/"+mech, func(t *testing.T) {
			r := s.DialRaw(t)
			r.Open()
			r.StartTLS()
			if cond := r.Auth(mech, "alice", "wrong"); cond != "not-authorized" {
				t.Errorf("SASL failure %q, want not-authorized (RFC 6120 §6.5.10)", cond)
			}
			// RFC 6120 §6.4.5: the client may retry on the same stream.
			if cond := r.Auth(mech, "alice", alice.Password); cond != "" {
				t.Errorf("retry with the right password failed: %s", cond)
			}
		})
	}

	t.Run("unknown user", func(t *testing.T) {
		for _, mech := range []string{ScramSha256, Plain} {
			r := s.DialRaw(t)
			r.Open()
			r.StartTLS()
			if cond := r.Auth(mech, "nobody", "whatever"); cond != "not-authorized" {
				t.Errorf("%s for an unknown user: failure %q, want not-authorized", mech, cond)
			}
		}
	})

	t.Run("too many failures", func(t *testing.T) {
		// auth.max_failures_per_stream = 3 (default): the third wrong
		// password ends the stream.
		r := s.DialRaw(t)
		r.Open()
		r.StartTLS()
		for i := 0; i < 2; i++ {
			if cond := r.Auth(ScramSha256, "carol", "wrong"); cond != "not-authorized" {
				t.Fatalf("attempt %d: %q", i+1, cond)
			}
		}
		if cond := r.Auth(ScramSha256, "carol", "wrong"); cond != "not-authorized" {
			t.Fatalf("attempt 3: %q", cond)
		}
		out, err := r.ReadAll(IOTimeout)
		if err != nil {
			t.Fatal(err)
		}
		se, ok := ParseStreamError(out)
		if !ok || se.Condition != "policy-violation" {
			t.Errorf("after 3 failures: stream error %+v (found %t), want policy-violation; received %q", se, ok, out)
		}
	})
}

// TestChannelBinding checks the server side of SCRAM channel binding with
// hand-made exchanges: the right binding data is accepted, wrong data and
// the downgrade flag 'y' (RFC 5802 §6) are refused.
func TestChannelBinding(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{Users: users()})
	open := func(t *testing.T) *Raw {
		r := s.DialRaw(t)
		r.Open()
		r.StartTLS()
		return r
	}
	t.Run("features", func(t *testing.T) {
		r := open(t)
		cb := r.Features.Child("urn:xmpp:sasl-cb:0", "sasl-channel-binding")
		var types []string
		for _, c := range cb.Children {
			types = append(types, c.Get("type"))
		}
		if !slices.Contains(types, "tls-exporter") {
			t.Errorf("XEP-0440 channel-binding types %v lack tls-exporter; features: %s", types, r.Features)
		}
	})
	t.Run("tls-exporter", func(t *testing.T) {
		r := open(t)
		if cond := manualSCRAM(t, r, ScramSha256Plus, sha256.New, "p=tls-exporter,,", tlsExporter(t, r), "bob", bob.Password); cond != "" {
			t.Errorf("correct tls-exporter binding refused: %s", cond)
		}
	})
	t.Run("tls-server-end-point", func(t *testing.T) {
		r := open(t)
		if cond := manualSCRAM(t, r, ScramSha256Plus, sha256.New, "p=tls-server-end-point,,", tlsServerEndPoint(t, r), "bob", bob.Password); cond != "" {
			t.Errorf("correct tls-server-end-point binding refused: %s", cond)
		}
	})
	t.Run("no binding", func(t *testing.T) {
		r := open(t)
		if cond := manualSCRAM(t, r, ScramSha1, sha1.New, "n,,", nil, "bob", bob.Password); cond != "" {
			t.Errorf("SCRAM-SHA-1 with 'n' refused: %s", cond)
		}
	})
	t.Run("other connection's exporter", func(t *testing.T) {
		other := open(t)
		r := open(t)
		if cond := manualSCRAM(t, r, ScramSha256Plus, sha256.New, "p=tls-exporter,,", tlsExporter(t, other), "bob", bob.Password); cond != "not-authorized" {
			t.Errorf("binding data of another TLS connection: %q, want not-authorized", cond)
		}
	})
	t.Run("downgrade flag y", func(t *testing.T) {
		// The client says it supports channel binding but believes the
		// server does not; the server advertised -PLUS, so this is a
		// downgrade and RFC 5802 §6 requires failure.
		r := open(t)
		if cond := manualSCRAM(t, r, ScramSha256, sha256.New, "y,,", nil, "bob", bob.Password); cond == "" {
			t.Errorf("gs2 flag 'y' accepted although -PLUS was advertised")
		}
	})
	t.Run("binding with a non-PLUS mechanism", func(t *testing.T) {
		r := open(t)
		if cond := manualSCRAM(t, r, ScramSha256, sha256.New, "p=tls-exporter,,", tlsExporter(t, r), "bob", bob.Password); cond == "" {
			t.Errorf("gs2 flag 'p' accepted with SCRAM-SHA-256 (without -PLUS)")
		}
	})
	t.Run("PLUS without binding", func(t *testing.T) {
		r := open(t)
		if cond := manualSCRAM(t, r, ScramSha256Plus, sha256.New, "n,,", nil, "bob", bob.Password); cond == "" {
			t.Errorf("SCRAM-SHA-256-PLUS accepted with gs2 flag 'n'")
		}
	})
}

// TestMechanismsOffered checks RFC 6120 §6 and the defaults of DESIGN §6:
// PLAIN is never offered before TLS.
func TestMechanismsOffered(t *testing.T) {
	t.Parallel()
	t.Run("require_tls=true", func(t *testing.T) {
		t.Parallel()
		s := Start(t, Options{Users: users()})
		r := s.DialRaw(t)
		f := r.Open()
		st := f.Child(NSTLS, "starttls")
		if st == nil || st.Child(NSTLS, "required") == nil {
			t.Errorf("pre-TLS features lack <starttls><required/></starttls>: %s", f)
		}
		if m := Mechanisms(f); len(m) != 0 {
			t.Errorf("pre-TLS mechanisms %v offered although TLS is required", m)
		}
		// Trying anyway: RFC 6120 §6.5.4 encryption-required.
		r.MustWrite("<auth xmlns='" + NSSASL + "' mechanism='PLAIN'>" + b64([]byte("\x00alice\x00"+alice.Password)) + "</auth>")
		if el := r.MustNext(); !el.Is(NSSASL, "failure") || saslCondition(t, el) != "encryption-required" {
			t.Errorf("PLAIN before TLS: got %s, want <failure><encryption-required/></failure>", el)
		}

		f = r.StartTLS()
		m := Mechanisms(f)
		for _, want := range []string{Plain, ScramSha256Plus, ScramSha256, ScramSha1Plus, ScramSha1} {
			if !slices.Contains(m, want) {
				t.Errorf("after STARTTLS mechanisms %v lack %s", m, want)
			}
		}
		if f.Child(NSTLS, "starttls") != nil {
			t.Errorf("STARTTLS offered again over TLS: %s", f)
		}
		// PLAIN has no additional data with success: RFC 6120 §6.4.6 wants
		// an empty <success/> ("=" would be zero-length additional data).
		r.MustWrite("<auth xmlns='" + NSSASL + "' mechanism='PLAIN'>" + b64([]byte("\x00alice\x00"+alice.Password)) + "</auth>")
		if el := r.MustNext(); !el.Is(NSSASL, "success") || strings.TrimSpace(el.Text) != "" {
			t.Errorf("PLAIN after STARTTLS: got %s, want an empty <success/>", el)
		}
	})
	t.Run("require_tls=false", func(t *testing.T) {
		t.Parallel()
		s := Start(t, Options{Users: users(), NoRequireTLS: true})
		r := s.DialRaw(t)
		f := r.Open()
		m := Mechanisms(f)
		if len(m) == 0 {
			t.Fatalf("no mechanisms before TLS with require_tls=false: %s", f)
		}
		if slices.Contains(m, Plain) {
			t.Errorf("PLAIN offered before TLS: %v", m)
		}
		for _, name := range m {
			if strings.HasSuffix(name, "-PLUS") {
				t.Errorf("%s offered without TLS, where there is no channel to bind", name)
			}
		}
		st := f.Child(NSTLS, "starttls")
		if st == nil || st.Child(NSTLS, "required") != nil {
			t.Errorf("want optional <starttls/> in %s", f)
		}
		// PLAIN is refused in the clear even when asked for.
		r.MustWrite("<auth xmlns='" + NSSASL + "' mechanism='PLAIN'>" + b64([]byte("\x00alice\x00"+alice.Password)) + "</auth>")
		if el := r.MustNext(); !el.Is(NSSASL, "failure") {
			t.Errorf("PLAIN in the clear: got %s, want <failure/>", el)
		}
		// (This stream has begun SASL in the clear; STARTTLS on a new one.)
		r = s.DialRaw(t)
		r.Open()
		f = r.StartTLS()
		if m := Mechanisms(f); !slices.Contains(m, Plain) || !slices.Contains(m, ScramSha256Plus) {
			t.Errorf("after STARTTLS mechanisms %v lack PLAIN or SCRAM-SHA-256-PLUS", m)
		}

		// SCRAM in the clear works when TLS is optional.
		r2 := s.DialRaw(t)
		r2.Open()
		if cond := r2.Auth(ScramSha256, "bob", bob.Password); cond != "" {
			t.Fatalf("SCRAM-SHA-256 without TLS: %s", cond)
		}
		// RFC 6120 §7.2: after SASL the features offer binding, not SASL or
		// STARTTLS again.
		if f := r2.Features; f.Child(NSBind, "bind") == nil || f.Child(NSSASL, "mechanisms") != nil || f.Child(NSTLS, "starttls") != nil {
			t.Errorf("features after SASL in the clear: %s, want <bind/> and neither <mechanisms/> nor <starttls/>", f)
		}
		if j := r2.Bind("clear"); j != "bob@localhost/clear" {
			t.Errorf("bound %q", j)
		}
	})
	t.Run("allow_plain=false", func(t *testing.T) {
		t.Parallel()
		s := Start(t, Options{Users: users(), DisablePlain: true})
		r := s.DialRaw(t)
		r.Open()
		f := r.StartTLS()
		if m := Mechanisms(f); slices.Contains(m, Plain) {
			t.Errorf("PLAIN offered with allow_plain=false: %v", m)
		}
		if cond := r.Auth(Plain, "alice", alice.Password); cond == "" {
			t.Errorf("PLAIN accepted with allow_plain=false")
		}
	})
}

func TestDirectTLS(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{Users: users()})
	r := s.DialRawDirectTLS(t)
	st, _ := r.TLSState()
	if st.NegotiatedProtocol != "xmpp-client" {
		t.Errorf("ALPN %q, want xmpp-client", st.NegotiatedProtocol)
	}
	f := r.Open()
	if f.Child(NSTLS, "starttls") != nil {
		t.Errorf("STARTTLS offered on direct TLS: %s", f)
	}
	if m := Mechanisms(f); !slices.Contains(m, ScramSha256Plus) || !slices.Contains(m, Plain) {
		t.Errorf("mechanisms on direct TLS %v lack SCRAM-SHA-256-PLUS or PLAIN", m)
	}
	if cond := r.Auth(ScramSha256Plus, "alice", alice.Password); cond != "" {
		t.Fatalf("SCRAM-SHA-256-PLUS on direct TLS: %s", cond)
	}
	if j := r.Bind("direct"); j != "alice@localhost/direct" {
		t.Errorf("bound %q", j)
	}

	// A mellium client over direct TLS, messaging a STARTTLS client.
	a := s.LoginWith(t, ClientOptions{JID: alice.JID + "/d", Password: alice.Password, DirectTLS: true})
	b := s.Login(t, bob.JID, bob.Password)
	exchange(t, a, b)
}

func TestResourceConflict(t *testing.T) {
	t.Parallel()
	t.Run("replace", func(t *testing.T) {
		t.Parallel()
		s := Start(t, Options{Users: users()})
		first := s.LoginWith(t, ClientOptions{JID: alice.JID + "/phone", Password: alice.Password})
		second := s.LoginWith(t, ClientOptions{JID: alice.JID + "/phone", Password: alice.Password})
		if second.JID.String() != "alice@localhost/phone" {
			t.Errorf("second session bound %s, want alice@localhost/phone", second.JID)
		}
		cond, err := first.StreamErrorCondition(IOTimeout)
		if err != nil || cond != "conflict" {
			t.Errorf("first session: stream error %q (%v), want conflict (RFC 6120 §7.7.2.2)", cond, err)
		}
		b := s.Login(t, bob.JID, bob.Password)
		exchange(t, second, b)
	})
	t.Run("refuse", func(t *testing.T) {
		t.Parallel()
		s := Start(t, Options{Users: users(), ResourceConflict: "refuse"})
		first := s.LoginWith(t, ClientOptions{JID: alice.JID + "/phone", Password: alice.Password})
		_, err := s.Connect(t, ClientOptions{JID: alice.JID + "/phone", Password: alice.Password})
		var se *stanza.Error
		if !errors.As(err, &se) || se.Condition != stanza.Conflict {
			t.Errorf("second bind: error %v, want a stanza error <conflict/>", err)
		}
		// On the wire: an IQ error of type cancel (RFC 6120 §7.7.2.2).
		r := s.DialRaw(t)
		r.Open()
		r.StartTLS()
		r.Auth(ScramSha256Plus, "alice", alice.Password)
		r.MustWrite("<iq type='set' id='b1'><bind xmlns='" + NSBind + "'><resource>phone</resource></bind></iq>")
		el := r.MustNext()
		if typ, cond, ok := el.StanzaError(); !ok || typ != "cancel" || cond != "conflict" || el.Get("id") != "b1" || el.Get("type") != "error" {
			t.Errorf("bind of a taken resource: %s, want <iq type='error' id='b1'> with <error type='cancel'><conflict/>", el)
		}
		// The same stream may bind another resource.
		r.MustWrite("<iq type='set' id='b2'><bind xmlns='" + NSBind + "'><resource>laptop</resource></bind></iq>")
		if el := r.MustNext(); el.Get("type") != "result" {
			t.Errorf("binding another resource after a conflict: %s", el)
		}
		// The first session was not disturbed.
		b := s.Login(t, bob.JID, bob.Password)
		exchange(t, first, b)
	})
}

// TestStreamHeader checks the server's response stream header (RFC 6120
// §4.7) on every stream of a login.
func TestStreamHeader(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{Users: users()})
	check := func(t *testing.T, r *Raw, stage, wantTo string) string {
		t.Helper()
		h := map[string]string{}
		for _, a := range r.Header.Attr {
			key := a.Name.Local
			if a.Name.Space == "http://www.w3.org/XML/1998/namespace" {
				key = "xml:" + key
			} else if a.Name.Space != "" {
				continue
			}
			h[key] = a.Value
		}
		if h["from"] != "localhost" {
			t.Errorf("%s: from=%q, want localhost (§4.7.1)", stage, h["from"])
		}
		if h["id"] == "" || h["version"] != "1.0" || h["xml:lang"] == "" {
			t.Errorf("%s: header lacks id, version='1.0' or xml:lang: %v", stage, h)
		}
		if h["to"] != wantTo {
			t.Errorf("%s: to=%q, want %q (§4.7.2: 'to' is the bare JID of the client's 'from', absent without one)", stage, h["to"], wantTo)
		}
		return h["id"]
	}
	t.Run("without from", func(t *testing.T) {
		r := s.DialRaw(t)
		r.Open()
		check(t, r, "initial", "")
	})
	t.Run("with from", func(t *testing.T) {
		r := s.DialRaw(t)
		open := func() *Element {
			r.MustWrite("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' from='alice@localhost' to='localhost' version='1.0' xml:lang='en'>")
			return r.ReadOpen()
		}
		open()
		id1 := check(t, r, "initial", "alice@localhost")
		r.MustWrite("<starttls xmlns='" + NSTLS + "'/>")
		if p := r.MustNext(); !p.Is(NSTLS, "proceed") {
			t.Fatalf("expected <proceed/>, got %s", p)
		}
		r.handshake(nil)
		open()
		id2 := check(t, r, "after STARTTLS", "alice@localhost")
		if id1 == id2 {
			t.Errorf("stream id %q reused after the restart", id1)
		}
	})
}
