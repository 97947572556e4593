package e2e

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"image"
	"image/png"
	"strings"
	"testing"
)

const (
	vcNS           = "vcard-temp"
	vcNSUpdate     = "vcard-temp:x:update"
	vcNSConversion = "urn:xmpp:pep-vcard-conversion:0"
	vcNSDiscoInfo  = "http://jabber.org/protocol/disco#info"
	vcNSPubsub     = "http://jabber.org/protocol/pubsub"
)

// vcDiscoFeatures returns the disco#info features of to.
func vcDiscoFeatures(t *testing.T, c *Client, to string) []string {
	t.Helper()
	id := c.NewID("disco")
	res := c.IQ(id, "<iq type='get' id='"+id+"' to='"+Esc(to)+"'><query xmlns='"+vcNSDiscoInfo+"'/></iq>")
	var out []string
	for _, f := range res.Child(vcNSDiscoInfo, "query").ChildrenIn(vcNSDiscoInfo) {
		if f.Name.Local == "feature" {
			out = append(out, f.Get("var"))
		}
	}
	return out
}

// vcardIQ sends a vCard get (to "" for one's own) or set and returns the
// answer.
func vcardIQ(c *Client, typ, to, inner string) *Element {
	id := c.NewID("vc")
	attr := ""
	if to != "" {
		attr = " to='" + Esc(to) + "'"
	}
	return c.IQ(id, "<iq type='"+typ+"' id='"+id+"'"+attr+"><vCard xmlns='"+vcNS+"'>"+inner+"</vCard></iq>")
}

// TestVCard drives XEP-0054, XEP-0153 and (when compiled in) XEP-0398 on
// the real server: a vCard with a photo set by one user is read by others,
// its hash appears in the user's presence, and both survive a restart.
func TestVCard(t *testing.T) {
	s := Start(t, Options{Users: users()})
	probe := s.Login(t, alice.JID, alice.Password)
	feats := vcDiscoFeatures(t, probe, s.Domain)
	if !contains(feats, vcNS) {
		t.Skip("the server does not advertise vcard-temp: the vcard module is not wired in xmppmap/xeps")
	}
	conversion := contains(vcDiscoFeatures(t, probe, alice.JID), vcNSConversion)
	t.Logf("XEP-0398 conversion advertised: %t", conversion)
	probe.Close()

	a := online(t, s, alice, "a", "")
	b := online(t, s, bob, "b", "")
	subscribeBoth(t, a, b)
	c := s.Login(t, carol.JID, carol.Password)

	if el := vcardIQ(a, "get", "", ""); el.Get("type") != "result" || el.Child(vcNS, "vCard") == nil || len(el.Child(vcNS, "vCard").Children) != 0 {
		t.Fatalf("own vCard before any is not empty: %s", el)
	}
	var img bytes.Buffer
	if err := png.Encode(&img, image.NewGray(image.Rect(0, 0, 8, 8))); err != nil {
		t.Fatal(err)
	}
	sum := sha1.Sum(img.Bytes())
	hash := hex.EncodeToString(sum[:])
	photo := "<PHOTO><TYPE>image/png</TYPE><BINVAL>" + base64.StdEncoding.EncodeToString(img.Bytes()) + "</BINVAL></PHOTO>"
	if el := vcardIQ(a, "set", "", "<FN>Alice</FN><NICKNAME>al</NICKNAME>"+photo); el.Get("type") != "result" {
		t.Fatalf("set: %s", el)
	}

	// readBack checks what reader sees of alice's vCard.
	readBack := func(reader *Client, to string, wantPhoto bool) {
		t.Helper()
		el := vcardIQ(reader, "get", to, "")
		vc := el.Child(vcNS, "vCard")
		if el.Get("type") != "result" || vc == nil || vc.Child(vcNS, "FN") == nil || vc.Child(vcNS, "FN").Text != "Alice" {
			t.Fatalf("%s reading %q: %s", reader.JID, to, el)
		}
		if !wantPhoto {
			return
		}
		p := vc.Child(vcNS, "PHOTO")
		bin := p.Child(vcNS, "BINVAL")
		if bin == nil {
			t.Fatalf("%s reading %q: no PHOTO/BINVAL in %s", reader.JID, to, el)
		}
		data, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(bin.Text), ""))
		if err != nil || !bytes.Equal(data, img.Bytes()) || p.Child(vcNS, "TYPE").Text != "image/png" {
			t.Fatalf("%s reading %q: photo differs (%v): %s", reader.JID, to, err, el)
		}
	}
	readBack(a, "", true)
	readBack(b, alice.JID, true)
	readBack(c, alice.JID, false) // the photo depends on the avatar node's access model

	for _, tc := range []struct{ name, typ, to, cond string }{
		{"no such account", "get", "nobody@" + s.Domain, "service-unavailable"},
		{"another's vCard", "set", alice.JID, "forbidden"},
	} {
		if _, cond, _ := vcardIQ(c, tc.typ, tc.to, "").StanzaError(); cond != tc.cond {
			t.Errorf("%s: condition %q, want %q", tc.name, cond, tc.cond)
		}
	}

	// XEP-0153 (XEP-0398 §4): the server puts the hash into presence.
	a.MustSend("<presence><show>chat</show></presence>")
	pres := b.Expect(IOTimeout, "alice's presence with her avatar hash", func(e *Element) bool {
		return e.Is(NSClient, "presence") && e.Get("from") == a.JID.String() && e.Child(NSClient, "show") != nil
	})
	if x := pres.Child(vcNSUpdate, "x"); x == nil || x.Child(vcNSUpdate, "photo") == nil || x.Child(vcNSUpdate, "photo").Text != hash {
		t.Fatalf("presence without the avatar hash %s: %s", hash, pres)
	}

	if conversion {
		// XEP-0398 §3.2: the photo is alice's XEP-0084 avatar now.
		id := b.NewID("pep")
		res := b.IQ(id, "<iq type='get' id='"+id+"' to='"+alice.JID+"'><pubsub xmlns='"+vcNSPubsub+"'><items node='urn:xmpp:avatar:metadata'/></pubsub></iq>")
		if !strings.Contains(res.String(), "id='"+hash+"'") || !strings.Contains(res.String(), "type='image/png'") {
			t.Fatalf("avatar metadata: %s", res)
		}
	}

	s.Restart(t)
	b2 := s.Login(t, bob.JID, bob.Password)
	readBack(b2, alice.JID, true)
}
