package vcard

import (
	"bytes"
	"encoding/base64"
	"image"
	"image/gif"
	"testing"

	"github.com/imppd/imppd/xmppmap"
)

// The server-level tests are in xmppmap/vcard_test.go (they need the
// xmppmap test server); these cover the parsing on its own.

func TestReadPhoto(t *testing.T) {
	var g bytes.Buffer
	if err := gif.Encode(&g, image.NewGray(image.Rect(0, 0, 6, 4)), nil); err != nil {
		t.Fatal(err)
	}
	gifB64 := base64.StdEncoding.EncodeToString(g.Bytes())
	for _, tc := range []struct {
		name, vcard string
		err         bool
		typ         string // "" for no photo
		w, h        int
	}{
		{"no PHOTO", "<vCard xmlns='vcard-temp'><FN>x</FN></vCard>", false, "", 0, 0},
		{"empty PHOTO", "<vCard xmlns='vcard-temp'><PHOTO/></vCard>", false, "", 0, 0},
		{"empty BINVAL", "<vCard xmlns='vcard-temp'><PHOTO><TYPE>image/png</TYPE><BINVAL>\n</BINVAL></PHOTO></vCard>", false, "", 0, 0},
		{"EXTVAL only", "<vCard xmlns='vcard-temp'><PHOTO><EXTVAL>https://example.org/a.png</EXTVAL></PHOTO></vCard>", false, "", 0, 0},
		{"not base64", "<vCard xmlns='vcard-temp'><PHOTO><BINVAL>a*b</BINVAL></PHOTO></vCard>", true, "", 0, 0},
		{"image type wins over TYPE", "<vCard xmlns='vcard-temp'><PHOTO><TYPE>image/png</TYPE><BINVAL>" + gifB64[:10] + "\r\n " + gifB64[10:] + "</BINVAL></PHOTO></vCard>", false, "image/gif", 6, 4},
		{"unknown format keeps TYPE", "<vCard xmlns='vcard-temp'><PHOTO><TYPE>image/webp</TYPE><BINVAL>AAEC</BINVAL></PHOTO></vCard>", false, "image/webp", 0, 0},
		{"no type at all", "<vCard xmlns='vcard-temp'><PHOTO><BINVAL>AAEC</BINVAL></PHOTO></vCard>", false, "application/octet-stream", 0, 0},
		{"other namespace ignored", "<vCard xmlns='vcard-temp'><PHOTO xmlns='urn:other'><BINVAL>AAEC</BINVAL></PHOTO></vCard>", false, "", 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vc, err := xmppmap.ParseElement([]byte(tc.vcard), 8)
			if err != nil {
				t.Fatal(err)
			}
			ph, err := readPhoto(vc)
			if (err != nil) != tc.err {
				t.Fatalf("err %v", err)
			}
			if tc.typ == "" {
				if ph != nil {
					t.Fatalf("photo %+v", ph)
				}
				return
			}
			if ph == nil || ph.typ != tc.typ || ph.w != tc.w || ph.h != tc.h || len(ph.hash) != 40 {
				t.Fatalf("photo %+v", ph)
			}
		})
	}
}

func TestMetadataAvatar(t *testing.T) {
	const h = "0123456789abcdef0123456789abcdef01234567"
	for _, tc := range []struct {
		name, payload string
		want          avatar
	}{
		{"one info", "<metadata xmlns='urn:xmpp:avatar:metadata'><info bytes='1' id='" + h + "' type='image/png'/></metadata>", avatar{h, true}},
		{"upper-case id", "<metadata xmlns='urn:xmpp:avatar:metadata'><info bytes='1' id='0123456789ABCDEF0123456789ABCDEF01234567' type='image/png'/></metadata>", avatar{h, true}},
		{"url info skipped", "<metadata xmlns='urn:xmpp:avatar:metadata'><info id='ffff' url='https://x/y'/><info bytes='1' id='" + h + "'/></metadata>", avatar{h, true}},
		{"url only", "<metadata xmlns='urn:xmpp:avatar:metadata'><info bytes='1' id='" + h + "' url='https://x/y'/></metadata>", avatar{"", true}},
		{"disabled", "<metadata xmlns='urn:xmpp:avatar:metadata'/>", avatar{"", true}},
		{"id not a SHA-1", "<metadata xmlns='urn:xmpp:avatar:metadata'><info bytes='1' id='x&apos;y'/></metadata>", avatar{"", true}},
		{"not metadata", "<data xmlns='urn:xmpp:avatar:data'>AAEC</data>", avatar{"", true}},
		{"not XML", "<metadata", avatar{"", true}},
	} {
		if got := metadataAvatar([]byte(tc.payload)); got != tc.want {
			t.Errorf("%s: got %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

func TestXEPs(t *testing.T) {
	mods := New(nil, nil)
	if len(mods) != 2 {
		t.Fatalf("without PEP: %d modules", len(mods))
	}
	seen := map[int]bool{}
	for _, m := range append(mods, conversionModule{}) {
		x := m.XEP()
		if x.Number == 0 || x.Title == "" || x.Version == "" || x.Status == "" || seen[x.Number] {
			t.Errorf("XEP %+v", x)
		}
		seen[x.Number] = true
	}
	if !seen[54] || !seen[153] || !seen[398] {
		t.Errorf("XEPs %v", seen)
	}
}
