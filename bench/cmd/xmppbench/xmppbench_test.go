package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
)

func TestFramer(t *testing.T) {
	in := "<?xml version='1.0'?><stream:stream xmlns='jabber:client' id='x'>" +
		"<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>" +
		" \n<message from='a@b/c' to=\"d@e\" type='chat' id='1'><body>12 345</body><x a='&gt;/>'/></message>" +
		"<!-- c > --><presence from='h@b/r'/><iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>" +
		"<message><body>&lt;b&gt;</body><![CDATA[</message>]]></message></stream:stream>"
	f := newFramer(bufio.NewReader(strings.NewReader(in)))
	want := []struct {
		kind int
		name string
	}{{frameOpen, "stream:stream"}, {frameStanza, "stream:features"}, {frameStanza, "message"},
		{frameStanza, "presence"}, {frameStanza, "iq"}, {frameStanza, "message"}, {frameClose, ""}}
	var els []string
	for i, w := range want {
		kind, el, err := f.next()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if kind != w.kind || (w.name != "" && elName(el) != w.name) {
			t.Fatalf("frame %d: kind %d name %q (%s), want %d %q", i, kind, elName(el), el, w.kind, w.name)
		}
		els = append(els, string(el))
	}
	msg := []byte(els[2])
	if attr(msg, "type") != "chat" || attr(msg, "to") != "d@e" || attr(msg, "id") != "1" || attr(msg, "from") != "a@b/c" {
		t.Errorf("attributes of %s", msg)
	}
	if b, ok := childText(msg, "body"); !ok || b != "12 345" {
		t.Errorf("body %q %v", b, ok)
	}
	if b, _ := childText([]byte(els[5]), "body"); b != "<b>" {
		t.Errorf("escaped body %q", b)
	}
	if !hasChild([]byte(els[1]), "starttls") || hasChild([]byte(els[1]), "mechanisms") {
		t.Errorf("hasChild on %s", els[1])
	}
	if seq, ts, ok := parseBody("12 345"); !ok || seq != 12 || ts != 345 {
		t.Errorf("parseBody")
	}
}

// RFC 5802 §5 example exchange.
func TestSCRAMProof(t *testing.T) {
	h := scramHashes["SCRAM-SHA-1"]
	salt, _ := base64.StdEncoding.DecodeString("QSXCR+Q6sek8bf92")
	k := loadKeyCache("")
	salted := k.salted(h, "user", "pencil", salt, 4096)
	authMsg := "n=user,r=fyko+d2lbbFgONRv9qkxdawL," +
		"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096," +
		"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j"
	proof, sig := scramProof(h, salted, authMsg)
	if got := base64.StdEncoding.EncodeToString(proof); got != "v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=" {
		t.Errorf("proof %s", got)
	}
	if got := base64.StdEncoding.EncodeToString(sig); got != "rmF9pqV8S7suAoZWja4dJRkFsKQ=" {
		t.Errorf("server signature %s", got)
	}
	k.salted(h, "user", "pencil", salt, 4096)
	if k.misses.Load() != 1 {
		t.Errorf("cache misses %d, want 1", k.misses.Load())
	}
}

func TestCheckLoopback(t *testing.T) {
	for addr, ok := range map[string]bool{"127.0.0.1:5222": true, "[::1]:5222": true, "localhost:1": true,
		"10.0.0.1:5222": false, "192.168.1.2:5222": false, "example.org:5222": false} {
		if err := checkLoopback(addr); (err == nil) != ok {
			t.Errorf("%s: %v", addr, err)
		}
	}
}

// XEP-0115 §5.2's simple example.
func TestCapsVer(t *testing.T) {
	ci := capsInfo{
		identities: []capsIdentity{{category: "client", typ: "pc", name: "Exodus 0.9.1"}},
		features: []string{"http://jabber.org/protocol/muc", "http://jabber.org/protocol/disco#info",
			"http://jabber.org/protocol/caps", "http://jabber.org/protocol/disco#items"},
	}
	if got := ci.ver(); got != "QgayPKawpkPSDYmwT/WM94uAlu0=" {
		t.Errorf("ver %s", got)
	}
}

// The disco#info answer echoes the node, and hashing what it says gives
// the ver advertised in <c/> (what a verifying server computes).
func TestCapsAnswer(t *testing.T) {
	ci := capsInfo{
		identities: []capsIdentity{{category: "client", typ: "pc", name: "xmppbench 0a1b"}},
		features:   []string{nsCaps, nsDiscoInfo, pepNode + "+notify"},
	}
	ver := ci.ver()
	if c := []byte(ci.c(capsNode)); attr(c, "ver") != ver || attr(c, "node") != capsNode || attr(c, "hash") != "sha-1" {
		t.Fatalf("<c/> %s", c)
	}
	for _, q := range []string{
		// imppd and ejabberd ask from the server; Prosody from the contact's bare JID, id 'disco'.
		`<iq type='get' id='i1' from='localhost' to='u1@localhost/pep'><query xmlns='http://jabber.org/protocol/disco#info' node='` + capsNode + `#` + ver + `'/></iq>`,
		`<iq type="get" id="disco" from="hub@localhost" to="u1@localhost/pep"><query xmlns="http://jabber.org/protocol/disco#info" node="` + capsNode + `#` + ver + `"/></iq>`,
	} {
		a := []byte(ci.answer([]byte(q)))
		if attr(a, "type") != "result" || attr(a, "id") != attr([]byte(q), "id") || attr(a, "to") != attr([]byte(q), "from") {
			t.Fatalf("answer %s", a)
		}
		qi := bytes.Index(a, []byte("<query"))
		if attr(startTag(a[qi:]), "node") != capsNode+"#"+ver {
			t.Errorf("node not echoed: %s", a)
		}
		var back capsInfo
		for s := a; ; {
			i := bytes.IndexByte(s[1:], '<')
			if i < 0 {
				break
			}
			s = s[i+1:]
			switch elName(s) {
			case "identity":
				back.identities = append(back.identities, capsIdentity{category: attr(s, "category"), typ: attr(s, "type"), name: attr(s, "name")})
			case "feature":
				back.features = append(back.features, attr(s, "var"))
			}
		}
		if back.ver() != ver {
			t.Errorf("answer hashes to %s, <c/> says %s: %s", back.ver(), ver, a)
		}
	}
	if ci.answer([]byte(`<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>`)) != "" {
		t.Error("answered a ping")
	}
	if ci.answer([]byte(`<iq type='get' id='p'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>`)) != "" {
		t.Error("answered disco#items")
	}
}

// Notifications as imppd, Prosody and ejabberd serialise them.
func TestPEPEvent(t *testing.T) {
	for _, c := range []struct {
		el      string
		ok, dly bool
	}{
		{`<message from='hub@localhost' id='a' to='u1@localhost/pep' type='headline'><event xmlns='http://jabber.org/protocol/pubsub#event'><items node='urn:xmpp:bench:pep'><item id='current'><m xmlns='urn:xmpp:bench:pep' run='r1'>5 123</m></item></items></event></message>`, true, false},
		{`<message type='headline' from='hub@localhost' to='u1@localhost/pep' id='b'><event xmlns='http://jabber.org/protocol/pubsub#event'><items node='urn:xmpp:bench:pep'><item id='current'><m run='r1' xmlns='urn:xmpp:bench:pep'>5 123</m></item></items></event></message>`, true, false},
		{`<message from="hub@localhost" type="headline" to="u1@localhost/pep" xml:lang="en" id="c"><event xmlns="http://jabber.org/protocol/pubsub#event"><items node="urn:xmpp:bench:pep"><item id="current"><m xmlns="urn:xmpp:bench:pep" run="r1">5 123</m></item></items></event><addresses xmlns="http://jabber.org/protocol/address"><address type="replyto" jid="hub@localhost/pep"/></addresses></message>`, true, false},
		{`<message from='hub@localhost' type='headline'><event xmlns='http://jabber.org/protocol/pubsub#event'><items node='urn:xmpp:bench:pep'><item id='current'><m xmlns='urn:xmpp:bench:pep' run='r1'>5 123</m></item></items></event><delay xmlns='urn:xmpp:delay' stamp='2026-11-22T00:00:00Z'/></message>`, true, true},
		{`<message from='hub@localhost' type='headline'><event xmlns='http://jabber.org/protocol/pubsub#event'><items node='urn:xmpp:other'><item id='current'><m xmlns='urn:xmpp:bench:pep' run='r1'>5 123</m></item></items></event></message>`, false, false},
		{`<message from='hub@localhost' type='headline'><event xmlns='http://jabber.org/protocol/pubsub#event'><items node='urn:xmpp:bench:pep'><retract id='current'/></items></event></message>`, false, false},
		{`<message from='hub@localhost' type='chat'><body>5 123</body></message>`, false, false},
	} {
		run, seq, ts, dly, ok := pepEvent([]byte(c.el), pepNode)
		if ok != c.ok || (ok && (run != "r1" || seq != 5 || ts != 123 || dly != c.dly)) {
			t.Errorf("pepEvent(%s) = %q %d %d %v %v", c.el, run, seq, ts, dly, ok)
		}
	}
	iq := publishIQ(nil, "pub7", "r1", 7, 99)
	if attr(iq, "id") != "pub7" || attr(iq, "type") != "set" || !bytes.Contains(iq, []byte("<publish node='urn:xmpp:bench:pep'><item id='current'><m xmlns='urn:xmpp:bench:pep' run='r1'>7 99</m>")) {
		t.Errorf("publish %s", iq)
	}
}

func TestDerivePEP(t *testing.T) {
	r := map[string]any{"scenario": "pep", "k": 200.0, "notifications": 20000.0, "server_cpu_s": 3.0,
		"server_cpu_phase_s": 0.2, "server_cpu_ready_s": 0.1}
	derive(r)
	if r["server_us_per_notif"] != 10.0 || r["server_ms_per_contact_ready"] != 0.5 {
		t.Errorf("server_us_per_notif %v, server_ms_per_contact_ready %v", r["server_us_per_notif"], r["server_ms_per_contact_ready"])
	}
	if scenarioOrder("pep") != scenarioOrder("presence")+1 {
		t.Error("pep not listed after presence")
	}
}
