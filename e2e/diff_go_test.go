package e2e

import (
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/stream"
)

// Go-client scenarios of the differential run: RFC 6120 behaviour that is
// cheap to normalise. Both servers are driven with SCRAM-SHA-1 (the
// mechanism RFC 6120 makes mandatory, and the only SCRAM Prosody's
// internal_hashed store offers) over STARTTLS.

const diffNobody = "nobody-diff" // a local account that does not exist

// diffLogin logs in user with SCRAM-SHA-1 and binds resource.
func diffLogin(t *testing.T, srv *Server, u User, resource string) *Client {
	t.Helper()
	return srv.LoginWith(t, ClientOptions{JID: u.JID + "/" + resource, Password: u.Password, Mechanism: ScramSha1})
}

// diffSummary describes a stanza that self received, for comparison:
// name, type, addresses, error type and condition, payload. A 'to' equal
// to self is left out: RFC 6120 8.1.1.1 makes a stanza without 'to' on a
// client's stream addressed to that client, so both forms are the same;
// so is a 'from' equal to self's bare JID (8.1.2.1: what the server sends
// on behalf of the account has no 'from' or the bare JID).
func diffSummary(e *Element, self string) string {
	var b strings.Builder
	b.WriteString("<" + e.Name.Local)
	if e.Name.Space != NSClient {
		b.WriteString(" xmlns='" + e.Name.Space + "'")
	}
	for _, a := range []string{"type", "from", "to"} {
		if v := e.Get(a); v != "" && !(a == "to" && v == self) && !(a == "from" && v == bareJID(self)) {
			fmt.Fprintf(&b, " %s='%s'", a, v)
		}
	}
	b.WriteString(">")
	if typ, cond, ok := e.StanzaError(); ok {
		fmt.Fprintf(&b, " error %s/%s", typ, cond)
		return normString(b.String())
	}
	var kids []string
	for _, c := range e.Children {
		switch {
		case c.Is(NSClient, "body"):
			kids = append(kids, "body="+strings.TrimSpace(c.Text))
		case c.Name.Space == NSClient:
			kids = append(kids, c.Name.Local)
		default:
			kids = append(kids, "{"+c.Name.Space+"}"+c.Name.Local)
		}
	}
	sort.Strings(kids)
	if len(kids) > 0 {
		b.WriteString(" " + strings.Join(kids, " "))
	}
	return normString(b.String())
}

func bareJID(j string) string {
	b, _, _ := strings.Cut(j, "/")
	return b
}

// diffExchange sends raw, then pings the server and returns the summaries
// of everything c received before the ping's answer: the server handles a
// session's stanzas in order, so an immediate answer to raw has arrived
// by then.
func diffExchange(t *testing.T, c *Client, domain, raw string) []string {
	t.Helper()
	if raw != "" {
		c.MustSend(raw)
	}
	id := c.NewID("diff-barrier")
	c.Sendf("<iq type='get' id='%s' to='%s'><ping xmlns='%s'/></iq>", id, Esc(domain), NSPing)
	got := []string{}
	deadline := time.Now().Add(IOTimeout)
	for {
		el, err := c.Next(time.Until(deadline))
		if err != nil {
			t.Fatalf("%s: waiting for the answer to ping %s: %v (received %v)", c.JID, id, err, got)
		}
		if el.Is(NSClient, "iq") && el.Get("id") == id {
			sort.Strings(got)
			return got
		}
		got = append(got, diffSummary(el, c.JID.String()))
	}
}

// errorIs reports whether the summaries are exactly one error of this
// condition.
func errorIs(got []string, cond string) bool {
	return len(got) == 1 && strings.HasSuffix(got[0], "/"+cond)
}

// ---------------------------------------------------------------------

// diffStreamNegotiation: stream headers and features at every stage,
// SASL failure, bind with and without a resource, the RFC 3921 session
// request, and the closing handshake.
func diffStreamNegotiation(t *testing.T, side string) *diffSideResult {
	d := startDiffTarget(t, side, []User{rfcAlice})
	srv := d.Server()
	rec := newDiffRec()
	alice := strings.Split(rfcAlice.JID, "@")[0]

	header := func(stage string, r *Raw) {
		h := map[string]any{}
		for _, a := range r.Header.Attr {
			if a.Name.Space == "xmlns" || a.Name.Local == "xmlns" {
				continue
			}
			name := a.Name.Local
			if a.Name.Space == "http://www.w3.org/XML/1998/namespace" {
				name = "xml:" + name
			}
			v := a.Value
			if name == "id" && v != "" {
				v = "<id>"
			}
			h[name] = v
		}
		rec.check("stream header "+stage+": from the domain, with an id, version 1.0", h,
			h["from"] == srv.Domain && h["id"] == "<id>" && h["version"] == "1.0", "RFC 6120 4.7.1, 4.7.3, 4.7.5")
	}
	features := func(f *Element) []string {
		var out []string
		for _, c := range f.Children {
			s := "{" + c.Name.Space + "}" + c.Name.Local
			for _, cc := range c.Children {
				if cc.Name.Local == "required" || cc.Name.Local == "optional" {
					s += " (" + cc.Name.Local + ")"
				}
			}
			out = append(out, s)
		}
		sort.Strings(out)
		return out
	}
	has := func(f *Element, space, local string) bool { return f.Child(space, local) != nil }

	r := srv.DialRaw(t)
	f := r.Open()
	header("before TLS", r)
	rec.check("features before TLS: STARTTLS offered (and required)", features(f),
		has(f, NSTLS, "starttls") && f.Child(NSTLS, "starttls").Child(NSTLS, "required") != nil,
		"RFC 6120 5.3.1, 5.4.1 (TLS required by configuration on both)")
	f = r.StartTLS()
	header("after STARTTLS", r)
	rec.check("features after STARTTLS: SASL offered, STARTTLS not again", features(withoutMechanisms(f)),
		has(f, NSSASL, "mechanisms") && !has(f, NSTLS, "starttls"), "RFC 6120 5.4.3.3, 6.4.1")
	mechs := r.Mechanisms()
	sort.Strings(mechs)
	rec.observe("features after STARTTLS: SASL mechanisms", mechs, "RFC 6120 6.3.3")
	rec.check("features after STARTTLS: SCRAM-SHA-1 offered", contains(mechs, ScramSha1), contains(mechs, ScramSha1),
		"RFC 6120 13.8 (SCRAM-SHA-1 mandatory to implement)")
	if cond := r.Auth(ScramSha1, alice, rfcAlice.Password); cond != "" {
		t.Fatalf("SASL SCRAM-SHA-1 as %s: %s", alice, cond)
	}
	f = r.Features
	header("after SASL", r)
	rec.check("features after SASL: bind offered", has(f, NSBind, "bind"), has(f, NSBind, "bind"), "RFC 6120 7.2, 7.4")
	rec.check("features after SASL: neither STARTTLS nor SASL offered again", has(f, NSTLS, "starttls") || has(f, NSSASL, "mechanisms"),
		!has(f, NSTLS, "starttls") && !has(f, NSSASL, "mechanisms"), "RFC 6120 5.3.1, 6.4.6")
	var rfc6121, session, ext []string
	for _, s := range features(f) {
		switch {
		case strings.HasPrefix(s, "{"+NSBind+"}"):
		case strings.HasPrefix(s, "{urn:xmpp:features:rosterver}"), strings.HasPrefix(s, "{urn:xmpp:features:pre-approval}"):
			rfc6121 = append(rfc6121, s)
		case strings.HasPrefix(s, "{urn:ietf:params:xml:ns:xmpp-session}"):
			session = append(session, s)
		default:
			ext = append(ext, s)
		}
	}
	rec.observe("features after SASL: roster versioning and subscription pre-approval", rfc6121, "RFC 6121 2.6, 3.4")
	rec.observe("features after SASL: session establishment (RFC 3921, optional)", session, "RFC 6121 Appendix E")
	rec.observe("features after SASL: bind feature children", features(onlyChild(f, NSBind, "bind")), "RFC 6120 7.4")
	rec.observe("features after SASL: extension features", ext, "XEPs; each server's choice")
	jid := r.Bind("diff-res")
	rec.check("bind with resource 'diff-res': the full JID", jid, jid == rfcAlice.JID+"/diff-res", "RFC 6120 7.6.1, 7.7.1")
	r.MustWrite("<iq type='set' id='diff-session'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>")
	el := r.MustNext()
	rec.observe("session request (RFC 3921 compatibility): answer", diffSummary(el, jid), "RFC 6121 Appendix E")
	r.MustWrite("</stream:stream>")
	data, err := r.ReadAll(IOTimeout)
	closed := err == nil
	rec.check("closing: the server closes the stream in turn",
		map[string]any{"closed": closed, "with </stream:stream>": strings.Contains(string(data), "</stream:stream>")},
		closed, "RFC 6120 4.4")

	// bind without a resource: the server generates one
	r2 := srv.DialRaw(t)
	r2.Open()
	r2.StartTLS()
	if cond := r2.Auth(ScramSha1, alice, rfcAlice.Password); cond != "" {
		t.Fatalf("SASL SCRAM-SHA-1 as %s: %s", alice, cond)
	}
	jid = r2.Bind("")
	bare, res, _ := strings.Cut(jid, "/")
	rec.check("bind without a resource: the server generates one", map[string]any{"bare": bare, "resource generated": res != ""},
		bare == rfcAlice.JID && res != "", "RFC 6120 7.6.2.1")

	// a wrong password
	r3 := srv.DialRaw(t)
	r3.Open()
	r3.StartTLS()
	cond := r3.Auth(ScramSha1, alice, "wrong password")
	rec.check("SASL SCRAM-SHA-1 with a wrong password: failure condition", cond, cond == "not-authorized", "RFC 6120 6.5.10")
	// an unknown account
	r4 := srv.DialRaw(t)
	r4.Open()
	r4.StartTLS()
	cond = r4.Auth(ScramSha1, diffNobody, "whatever")
	rec.check("SASL SCRAM-SHA-1 for an account that does not exist: failure condition", cond, cond == "not-authorized",
		"RFC 6120 6.5.10 (not-authorized; revealing no more)")
	return &rec.res
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// withoutMechanisms drops the mechanism list (observed on its own) and
// XEP-0440's channel-binding advertisement from features.
func withoutMechanisms(f *Element) *Element {
	out := &Element{Name: f.Name}
	for _, c := range f.Children {
		if c.Is(NSSASL, "mechanisms") {
			out.Children = append(out.Children, &Element{Name: c.Name})
			continue
		}
		out.Children = append(out.Children, c)
	}
	return out
}

func onlyChild(f *Element, space, local string) *Element {
	if c := f.Child(space, local); c != nil {
		return c
	}
	return &Element{}
}

// ---------------------------------------------------------------------

// diffIQErrors: the answers to IQs the server cannot deliver or does not
// understand.
func diffIQErrors(t *testing.T, side string) *diffSideResult {
	d := startDiffTarget(t, side, rfcUsers())
	srv := d.Server()
	rec := newDiffRec()
	a := diffLogin(t, srv, rfcAlice, "diff")
	b := diffLogin(t, srv, rfcBob, "home")
	b.MustSend("<presence/>")
	diffExchange(t, b, srv.Domain, "")
	nobody := diffNobody + "@" + srv.Domain
	bob := rfcBob.JID
	level := "must"
	iq := func(key, raw, rfc string, want func([]string) bool) {
		got := diffExchange(t, a, srv.Domain, raw)
		if want == nil {
			rec.observe(key, got, rfc)
			return
		}
		rec.checkLevel(level, key, got, want(got), rfc)
	}
	svc := func(got []string) bool { return errorIs(got, "service-unavailable") }
	none := func(got []string) bool { return len(got) == 0 }
	iq("iq get disco#info to a nonexistent account's bare JID",
		"<iq type='get' id='q1' to='"+nobody+"'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
		"RFC 6121 8.5.1 (IQ: MUST service-unavailable)", svc)
	iq("iq get version to a nonexistent account's full JID",
		"<iq type='get' id='q2' to='"+nobody+"/r'><query xmlns='jabber:iq:version'/></iq>",
		"RFC 6121 8.5.1 (IQ: MUST service-unavailable)", svc)
	iq("iq get version to an unknown resource of an existing account",
		"<iq type='get' id='q3' to='"+bob+"/nosuchresource'><query xmlns='jabber:iq:version'/></iq>",
		"RFC 6121 8.5.3.2.1 (IQ, no such resource: MUST service-unavailable)", svc)
	level = "should" // RFC 6120 8.4 recommends service-unavailable
	iq("iq get with an unknown payload namespace to the server",
		"<iq type='get' id='q4' to='"+srv.Domain+"'><query xmlns='urn:example:diff:unknown'/></iq>",
		"RFC 6120 8.4 (service-unavailable for an unknown payload)", svc)
	iq("iq set with an unknown payload namespace to the own bare JID",
		"<iq type='set' id='q5' to='"+rfcAlice.JID+"'><query xmlns='urn:example:diff:unknown'/></iq>",
		"RFC 6120 8.4, 10.5.4 (the server answers for the account)", svc)
	iq("iq get with an unknown payload namespace to another account's bare JID",
		"<iq type='get' id='q6' to='"+bob+"'><query xmlns='urn:example:diff:unknown'/></iq>",
		"RFC 6120 8.4, RFC 6121 8.5.2.1.3 (the server answers for the account)", svc)
	iq("iq get with an unknown payload namespace without 'to' (the own account)",
		"<iq type='get' id='q7'><query xmlns='urn:example:diff:unknown'/></iq>",
		"RFC 6120 8.4, 10.3.3 (no 'to': the server answers for the account)", svc)
	level = "must"
	iq("iq get to a remote domain (neither server federates)",
		"<iq type='get' id='q8' to='remote.example'><query xmlns='jabber:iq:version'/></iq>",
		"RFC 6120 10.4 (an error, e.g. remote-server-not-found)",
		func(got []string) bool { return len(got) == 1 && strings.Contains(got[0], " error cancel/") })
	iq("iq get with two payload children to the server",
		"<iq type='get' id='q9' to='"+srv.Domain+"'><ping xmlns='urn:xmpp:ping'/><query xmlns='jabber:iq:version'/></iq>",
		"RFC 6120 8.2.3 (a get has exactly one payload; the reaction is not specified)", nil)
	iq("iq type result to a nonexistent account: no answer",
		"<iq type='result' id='q10' to='"+nobody+"'/>", "RFC 6120 8.2.3 (no answer to a result)", none)
	iq("iq type error to a nonexistent account: no answer",
		"<iq type='error' id='q11' to='"+nobody+"'><error type='cancel'><service-unavailable xmlns='"+NSStanzas+"'/></error></iq>",
		"RFC 6120 8.3.1 (no error in answer to an error)", none)
	iq("iq type result to an unknown resource of an existing account: no answer",
		"<iq type='result' id='q12' to='"+bob+"/nosuchresource'/>", "RFC 6120 8.2.3, RFC 6121 8.5.3.2.1", none)
	got := diffExchange(t, b, srv.Domain, "")
	rec.check("the other account received none of these", got, len(got) == 0, "RFC 6121 8.5.2.1.3, 8.5.3.2.1")
	return &rec.res
}

// diffUnknownRecipients: messages and presence the server cannot deliver.
func diffUnknownRecipients(t *testing.T, side string) *diffSideResult {
	d := startDiffTarget(t, side, rfcUsers())
	srv := d.Server()
	rec := newDiffRec()
	a := diffLogin(t, srv, rfcAlice, "diff")
	b := diffLogin(t, srv, rfcBob, "home")
	b.MustSend("<presence/>")
	diffExchange(t, b, srv.Domain, "")
	nobody := diffNobody + "@" + srv.Domain
	bob := rfcBob.JID
	none := func(got []string) bool { return len(got) == 0 }
	send := func(key, raw, rfc string, want func([]string) bool) {
		got := diffExchange(t, a, srv.Domain, raw)
		bgot := diffExchange(t, b, srv.Domain, "")
		v := map[string]any{"sender receives": got, "bob receives": bgot}
		if want == nil {
			rec.observe(key, v, rfc)
			return
		}
		rec.check(key, v, want(got) && len(bgot) == 0, rfc)
	}
	ignoreOrBounce := func(got []string) bool { return none(got) || errorIs(got, "service-unavailable") }
	for _, typ := range []string{"headline", "groupchat"} {
		send("message type "+typ+" to a nonexistent account",
			"<message type='"+typ+"' id='m-"+typ+"' to='"+nobody+"'><body>hello</body></message>",
			"RFC 6121 8.5.1 (message: ignore or service-unavailable)", ignoreOrBounce)
	}
	send("message type error to a nonexistent account",
		"<message type='error' id='m-error' to='"+nobody+"'><error type='cancel'><service-unavailable xmlns='"+NSStanzas+"'/></error></message>",
		"RFC 6120 8.3.1, RFC 6121 8.5.1 (no error in answer to an error)", none)
	for _, typ := range []string{"", "unavailable", "subscribed", "unsubscribe", "unsubscribed"} {
		attr, name := "", "available"
		if typ != "" {
			attr, name = " type='"+typ+"'", typ
		}
		send("presence "+name+" to a nonexistent account: silently ignored",
			"<presence"+attr+" to='"+nobody+"'/>", "RFC 6121 8.5.1 (presence: MUST silently ignore)", none)
	}
	send("presence probe to a nonexistent account",
		"<presence type='probe' to='"+nobody+"'/>", "RFC 6121 8.5.1 (probe: ignore or 'unsubscribed')",
		func(got []string) bool {
			return none(got) || len(got) == 1 && strings.Contains(got[0], "type='unsubscribed'")
		})
	// bob has one available resource, 'home'
	send("message type chat to an unknown resource of an available account",
		"<message type='chat' id='m-res-chat' to='"+bob+"/nosuchresource'><body>to a resource</body></message>",
		"RFC 6121 8.5.3.2.1 (chat: ignore, deliver as to the bare JID, or service-unavailable)", nil)
	send("message type headline to an unknown resource of an available account",
		"<message type='headline' id='m-res-headline' to='"+bob+"/nosuchresource'><body>a headline</body></message>",
		"RFC 6121 8.5.3.2.1 (headline: ignore or deliver as to the bare JID)", nil)
	send("message type groupchat to an unknown resource of an available account",
		"<message type='groupchat' id='m-res-groupchat' to='"+bob+"/nosuchresource'><body>groupchat</body></message>",
		"RFC 6121 8.5.3.2.1 (groupchat: MUST service-unavailable)",
		func(got []string) bool { return errorIs(got, "service-unavailable") })
	send("presence available to an unknown resource of an available account",
		"<presence to='"+bob+"/nosuchresource'/>", "RFC 6121 8.5.3.2.3 (presence to an unknown resource: ignore)", nil)
	return &rec.res
}

// diffPing: XEP-0199 pings to the server, the own account and another
// account (bare and full JID).
func diffPing(t *testing.T, side string) *diffSideResult {
	d := startDiffTarget(t, side, rfcUsers())
	srv := d.Server()
	rec := newDiffRec()
	a := diffLogin(t, srv, rfcAlice, "diff")
	b := diffLogin(t, srv, rfcBob, "home")
	b.MustSend("<presence/>")
	diffExchange(t, b, srv.Domain, "")
	ping := func(id, to string) string {
		attr := ""
		if to != "" {
			attr = " to='" + to + "'"
		}
		return "<iq type='get' id='" + id + "'" + attr + "><ping xmlns='urn:xmpp:ping'/></iq>"
	}
	result := func(from string) func([]string) bool {
		return func(got []string) bool {
			return len(got) == 1 && strings.HasPrefix(got[0], "<iq type='result' from='"+from+"'")
		}
	}
	for i, p := range []struct {
		key, to, rfc string
		want         func([]string) bool
	}{
		{"ping to the server", srv.Domain, "XEP-0199 4.2 (client-to-server: result)", result(srv.Domain)},
		{"ping without 'to'", "", "XEP-0199, RFC 6120 10.3.3 (handled by the server for the account)", nil},
		{"ping to the own bare JID", rfcAlice.JID, "XEP-0199, RFC 6120 10.5.4 (handled by the server for the account)", nil},
		{"ping to another account's bare JID", rfcBob.JID, "XEP-0199, RFC 6121 8.5.2.1.3 (handled by the server for the account)", nil},
	} {
		got := diffExchange(t, a, srv.Domain, ping(fmt.Sprintf("p-%d", i), p.to))
		if p.want == nil {
			rec.observe(p.key, got, p.rfc)
		} else {
			rec.check(p.key, got, p.want(got), p.rfc)
		}
	}
	// to bob's full JID: routed to bob's client, which answers
	a.MustSend(ping("p-full", rfcBob.JID+"/home"))
	el := b.Expect(IOTimeout, "the routed ping", func(e *Element) bool { return e.Is(NSClient, "iq") && e.Get("id") == "p-full" })
	rec.check("ping to another account's full JID: routed to that resource", diffSummary(el, b.JID.String()),
		el.Get("from") == a.JID.String(), "XEP-0199 4.3 (client-to-client), RFC 6121 8.5.3.1")
	b.Sendf("<iq type='result' id='p-full' to='%s'/>", Esc(el.Get("from")))
	diffExchange(t, b, srv.Domain, "") // bob's answer has been routed
	got := diffExchange(t, a, srv.Domain, "")
	rec.check("ping to another account's full JID: its answer reaches the sender", got,
		len(got) == 1 && strings.HasPrefix(got[0], "<iq type='result' from='"+rfcBob.JID+"/home'"), "RFC 6121 8.5.3.1")
	// the server pings nobody unasked within this exchange
	got = diffExchange(t, b, srv.Domain, "")
	rec.check("the pinged account received nothing else", got, len(got) == 0, "XEP-0199")
	return &rec.res
}

// ---------------------------------------------------------------------

// diffStreamErrors: stream errors for bad stream headers, bad XML and
// stanzas sent too early. Where a server may keep the stream, the client
// follows up with a step that has a definite answer (stream features,
// <proceed/>, a SASL failure), so nothing waits for a timeout.
func diffStreamErrors(t *testing.T, side string) *diffSideResult {
	d := startDiffTarget(t, side, rfcUsers())
	srv := d.Server()
	rec := newDiffRec()
	header := func(ns, streamNS, to string) string {
		return "<?xml version='1.0'?><stream:stream xmlns='" + ns + "' xmlns:stream='" + streamNS + "' to='" + to + "' version='1.0'>"
	}
	message := "<message type='chat' to='" + rfcBob.JID + "'><body>too early</body></message>"
	features := func(e *Element) bool { return e.Name.Local == "features" }
	plain := "<auth xmlns='" + NSSASL + "' mechanism='PLAIN'>" + b64([]byte("\x00"+diffNobody+"\x00x")) + "</auth>"
	for _, c := range []struct {
		key, rfc string
		send     func(r *Raw) bool // true: the stream is already open
		stop     func(e *Element) bool
		want     []string // the stream error expected; nil: observed only
	}{
		{"stream header to a domain the server does not serve", "RFC 6120 4.9.3.6 (host-unknown)",
			func(r *Raw) bool { r.MustWrite(header(NSClient, NSStream, "unknown.example")); return false }, features, []string{"host-unknown"}},
		{"stream header with a wrong stream namespace", "RFC 6120 4.9.3.10 (invalid-namespace)",
			func(r *Raw) bool { r.MustWrite(header(NSClient, "urn:example:wrong", srv.Domain)); return false }, features, []string{"invalid-namespace"}},
		{"stream header with the content namespace jabber:server on the c2s port", "RFC 6120 4.8.3, 4.9.3.10",
			func(r *Raw) bool { r.MustWrite(header("jabber:server", NSStream, srv.Domain)); return false }, features, nil},
		{"XML that is not well-formed after the stream header", "RFC 6120 4.9.3.13 (not-well-formed)",
			func(r *Raw) bool { r.Open(); r.MustWrite("<message><body>x</message>"); return true }, nil, []string{"not-well-formed"}},
		{"a stanza before STARTTLS (TLS required), then <starttls/>", "RFC 6120 4.9.3.12 (not-authorized), 5.3.1, 4.9.3.18 (policy-violation)",
			func(r *Raw) bool { r.Open(); r.MustWrite(message + "<starttls xmlns='" + NSTLS + "'/>"); return true },
			func(e *Element) bool { return e.Name.Space == NSTLS }, []string{"not-authorized", "policy-violation"}},
		{"a stanza after STARTTLS, before authentication, then a SASL PLAIN attempt", "RFC 6120 4.9.3.12 (not-authorized)",
			func(r *Raw) bool { r.Open(); r.StartTLS(); r.MustWrite(message + plain); return true },
			func(e *Element) bool { return e.Name.Space == NSSASL }, []string{"not-authorized"}},
	} {
		r := srv.DialRaw(t)
		open := c.send(r)
		got, se, ended := rawOutcome(r, !open, c.stop)
		v := map[string]any{"received": got, "stream error": se, "stream closed": ended}
		if c.want == nil {
			rec.observe(c.key, v, c.rfc)
			continue
		}
		rec.check(c.key, v, ended && contains(c.want, se), c.rfc)
	}
	return &rec.res
}

// rawOutcome reads what the server sends on r until an element matches
// stop, the stream or the connection ends, or IOTimeout passes. It returns
// the elements received (stream errors and the stream header excluded),
// the stream error condition ("" for none), and whether the stream or the
// connection ended. fresh: no stream was read yet (the server's header
// comes first).
func rawOutcome(r *Raw, fresh bool, stop func(*Element) bool) (got []string, streamError string, ended bool) {
	dec := r.Decoder(fresh)
	got = []string{}
	_ = r.Conn.SetReadDeadline(time.Now().Add(IOTimeout))
	defer func() { _ = r.Conn.SetReadDeadline(time.Time{}) }()
	for {
		tok, err := dec.Token()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return got, streamError, false
			}
			return got, streamError, true // closed, reset, or bad XML from the server
		}
		switch x := tok.(type) {
		case xml.StartElement:
			if x.Name.Local == "stream" {
				continue // the server's stream header
			}
			el, err := ReadElement(dec, x.Copy())
			if err != nil {
				return got, streamError, true
			}
			if el.Name.Local == "error" && len(el.ChildrenIn(NSStreams)) > 0 {
				for _, c := range el.ChildrenIn(NSStreams) {
					if c.Name.Local != "text" {
						streamError = c.Name.Local
						break
					}
				}
				continue
			}
			got = append(got, rawSummary(el))
			if stop != nil && stop(el) {
				return got, streamError, false
			}
		case xml.EndElement:
			return got, streamError, true
		}
	}
}

// rawSummary names a negotiation element ({ns}name and its first child's
// name, e.g. a SASL failure condition) or summarises a stanza.
func rawSummary(e *Element) string {
	if e.Name.Space == NSClient {
		return diffSummary(e, "")
	}
	s := "{" + e.Name.Space + "}" + e.Name.Local
	if len(e.Children) > 0 && e.Name.Local != "features" {
		s += " " + e.Children[0].Name.Local
	}
	return s
}

// diffExchangeEnd is diffExchange for a stanza that may end the stream:
// it returns the stream error condition instead of failing.
func diffExchangeEnd(t *testing.T, c *Client, domain, raw string) (got []string, streamError string) {
	t.Helper()
	c.MustSend(raw)
	id := c.NewID("diff-barrier")
	_ = c.Send(fmt.Sprintf("<iq type='get' id='%s' to='%s'><ping xmlns='%s'/></iq>", id, Esc(domain), NSPing))
	got = []string{}
	deadline := time.Now().Add(IOTimeout)
	for {
		el, err := c.Next(time.Until(deadline))
		if err != nil {
			if errors.Is(err, ErrTimeout) {
				t.Fatalf("%s: waiting for the answer to ping %s: %v (received %v)", c.JID, id, err, got)
			}
			var se stream.Error
			if errors.As(err, &se) {
				return got, se.Err
			}
			return got, "(stream ended: " + err.Error() + ")"
		}
		if el.Is(NSClient, "iq") && el.Get("id") == id {
			sort.Strings(got)
			return got, ""
		}
		got = append(got, diffSummary(el, c.JID.String()))
	}
}

// diffFromStamping: the 'from' the server puts on a client's stanzas.
func diffFromStamping(t *testing.T, side string) *diffSideResult {
	d := startDiffTarget(t, side, rfcUsers())
	srv := d.Server()
	rec := newDiffRec()
	b := diffLogin(t, srv, rfcBob, "home")
	b.MustSend("<presence/>")
	diffExchange(t, b, srv.Domain, "")
	for i, c := range []struct {
		key, from string
		spoof     bool // the 'from' is not the sender's
	}{
		{"message without 'from'", "", false},
		{"message with 'from' the sender's bare JID", rfcAlice.JID, false},
		{"message with 'from' the sender's full JID", rfcAlice.JID + "/diff", false},
		{"message with 'from' another resource of the sender's account", rfcAlice.JID + "/elsewhere", true},
		{"message with 'from' another account", rfcCarol.JID + "/x", true},
		{"message with 'from' the server's domain", srv.Domain, true},
	} {
		a := diffLogin(t, srv, rfcAlice, "diff")
		attr := ""
		if c.from != "" {
			attr = " from='" + c.from + "'"
		}
		body := fmt.Sprintf("from test %d", i)
		got, se := diffExchangeEnd(t, a, srv.Domain, "<message type='chat' id='f"+strconv.Itoa(i)+"' to='"+rfcBob.JID+"'"+attr+"><body>"+body+"</body></message>")
		bgot := diffExchange(t, b, srv.Domain, "")
		v := map[string]any{"sender receives": got, "sender's stream error": se, "recipient receives": bgot}
		stamped := len(bgot) == 1 && strings.Contains(bgot[0], "from='"+rfcAlice.JID+"/diff'")
		ok := stamped
		if c.spoof {
			ok = stamped || se == "invalid-from" && len(bgot) == 0
		}
		rec.check(c.key, v, ok, "RFC 6120 8.1.2.1 (the server stamps the full JID), 4.9.3.9 (invalid-from)")
		a.Close()
	}
	return &rec.res
}
