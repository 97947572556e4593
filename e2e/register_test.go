package e2e

import (
	"strings"
	"testing"
)

const nsReg = "jabber:iq:register"

func TestInBandRegistration(t *testing.T) {
	s := Start(t, Options{Extra: "[registration]\nenabled = true"})
	r := s.DialRaw(t)
	r.Open()
	r.StartTLS()
	if r.Features.Child("http://jabber.org/features/iq-register", "register") == nil {
		t.Fatalf("no register feature after STARTTLS: %s", r.Features)
	}
	r.MustWrite("<iq type='get' id='g'><query xmlns='" + nsReg + "'/></iq>")
	if el := r.MustNext(); el.Get("type") != "result" || el.Child(nsReg, "query").Child(nsReg, "password") == nil {
		t.Fatalf("registration form: %s", el)
	}
	r.MustWrite("<iq type='set' id='s1'><query xmlns='" + nsReg + "'><username>dave</username></query></iq>")
	if el := r.MustNext(); !strings.Contains(el.String(), "not-acceptable") {
		t.Fatalf("missing password: %s", el)
	}
	r.MustWrite("<iq type='set' id='s2'><query xmlns='" + nsReg + "'><username>dave</username><password>pw-d</password></query></iq>")
	if el := r.MustNext(); el.Get("type") != "result" {
		t.Fatalf("register: %s", el)
	}
	// The same address may not create another account at once.
	r.MustWrite("<iq type='set' id='s3'><query xmlns='" + nsReg + "'><username>eve</username><password>pw-e</password></query></iq>")
	if el := r.MustNext(); !strings.Contains(el.String(), "resource-constraint") {
		t.Fatalf("second registration from one address: %s", el)
	}
	if cond := r.Auth(ScramSha256Plus, "dave", "pw-d"); cond != "" {
		t.Fatalf("login as the new account: %s", cond)
	}
	r.Bind("x")
	// Logged in: change the password, then remove the account.
	r.MustWrite("<iq type='set' id='p'><query xmlns='" + nsReg + "'><username>dave</username><password>pw-new</password></query></iq>")
	if el := r.MustNext(); el.Get("type") != "result" {
		t.Fatalf("password change: %s", el)
	}
	s.Login(t, "dave@localhost", "pw-new")
	// XEP-0077 §3.3's examples address the server, as Conversations does.
	r.MustWrite("<iq type='set' id='p2' to='localhost'><query xmlns='" + nsReg + "'><username>dave</username><password>pw-2</password></query></iq>")
	if el := r.MustNext(); el.Get("type") != "result" || el.Get("from") != "localhost" {
		t.Fatalf("password change addressed to the server: %s", el)
	}
	s.Login(t, "dave@localhost", "pw-2")
	r.MustWrite("<iq type='set' id='rm'><query xmlns='" + nsReg + "'><remove/></query></iq>")
	if el := r.MustNext(); el.Get("type") != "result" {
		t.Fatalf("remove: %s", el)
	}
	out, _ := r.ReadAll(IOTimeout)
	if se, ok := ParseStreamError(out); !ok || se.Condition != "not-authorized" {
		t.Fatalf("after removal: %q", out)
	}
}

func TestRegistrationOffByDefault(t *testing.T) {
	s := Start(t, Options{})
	r := s.DialRaw(t)
	r.Open()
	r.StartTLS()
	if r.Features.Child("http://jabber.org/features/iq-register", "register") != nil {
		t.Fatalf("register offered while off: %s", r.Features)
	}
	r.MustWrite("<iq type='set' id='s'><query xmlns='" + nsReg + "'><username>x</username><password>y</password></query></iq>")
	out, _ := r.ReadAll(IOTimeout)
	if se, ok := ParseStreamError(out); !ok || se.Condition != "not-authorized" {
		t.Fatalf("registration attempt while off: %q", out)
	}
}
