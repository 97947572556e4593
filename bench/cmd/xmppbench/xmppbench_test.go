package main

import (
	"bufio"
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
