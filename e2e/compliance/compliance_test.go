package main

import (
	"crypto/sha1"
	"encoding/base64"
	"testing"
)

// The simple example of XEP-0115 §5.2.
func TestCapsString(t *testing.T) {
	d := &discoInfo{
		Identities: []identity{{Category: "client", Type: "pc", Name: "Exodus 0.9.1"}},
		Features: map[string]bool{
			"http://jabber.org/protocol/caps":        true,
			"http://jabber.org/protocol/disco#info":  true,
			"http://jabber.org/protocol/disco#items": true,
			"http://jabber.org/protocol/muc":         true,
		},
	}
	sum := sha1.Sum([]byte(capsString(d)))
	if got := base64.StdEncoding.EncodeToString(sum[:]); got != "QgayPKawpkPSDYmwT/WM94uAlu0=" {
		t.Errorf("ver %s, want QgayPKawpkPSDYmwT/WM94uAlu0= (S = %q)", got, capsString(d))
	}
}

func TestMdCell(t *testing.T) {
	for in, want := range map[string]string{
		"no <c/> here":        "no &lt;c/&gt; here",
		"`<c/>` kept | piped": "`<c/>` kept \\| piped",
		"two\nlines":          "two lines",
		"`a` <b> `<c>`":       "`a` &lt;b&gt; `<c>`",
	} {
		if got := mdCell(in); got != want {
			t.Errorf("mdCell(%q) = %q, want %q", in, got, want)
		}
	}
}
