package caps

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/xml"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/imppd/imppd/xmppmap"
	"github.com/imppd/imppd/xmppmap/disco"
)

// The worked example of XEP-0115 §5.2.
func TestVerExample(t *testing.T) {
	info := &disco.NodeInfo{
		Identities: []disco.Identity{{Category: "client", Type: "pc", Name: "Exodus 0.9.1"}},
		Features:   []string{"http://jabber.org/protocol/disco#info", "http://jabber.org/protocol/disco#items", "http://jabber.org/protocol/muc", "http://jabber.org/protocol/caps"},
	}
	if got := Ver(info); got != "QgayPKawpkPSDYmwT/WM94uAlu0=" {
		t.Fatalf("ver = %s", got)
	}
}

// oldVer is Ver as it was before the client cache shared its computation:
// the server's own ver must not change.
func oldVer(info *disco.NodeInfo) string {
	ids := make([]string, 0, len(info.Identities))
	for _, id := range info.Identities {
		ids = append(ids, id.Category+"/"+id.Type+"//"+id.Name)
	}
	sort.Strings(ids)
	feats := append([]string(nil), info.Features...)
	sort.Strings(feats)
	var b strings.Builder
	for _, id := range ids {
		b.WriteString(id + "<")
	}
	for _, f := range feats {
		b.WriteString(f + "<")
	}
	sum := sha1.Sum([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(sum[:])
}

func TestServerVerUnchanged(t *testing.T) {
	for _, info := range []*disco.NodeInfo{
		{Identities: []disco.Identity{{Category: "server", Type: "im", Name: "imppd"}}},
		{Identities: []disco.Identity{{Category: "server", Type: "im", Name: "imppd"}},
			Features: []string{"urn:xmpp:ping", "http://jabber.org/protocol/disco#info", "jabber:iq:version", "urn:xmpp:time"}},
		{Identities: []disco.Identity{{Category: "server", Type: "im", Name: "imppd"}, {Category: "pubsub", Type: "pep"}},
			Features: []string{"b", "a"}},
	} {
		if got, want := Ver(info), oldVer(info); got != want {
			t.Errorf("Ver(%+v) = %s, was %s", info, got, want)
		}
	}
}

// parse decodes XML written in a test into an element.
func parse(t *testing.T, s string) *xmppmap.Element {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(s))
	var stack []*xmppmap.Element
	for {
		tok, err := d.Token()
		if err != nil {
			t.Fatalf("parse %q: %v", s, err)
		}
		switch tk := tok.(type) {
		case xml.StartElement:
			e := &xmppmap.Element{Name: tk.Name}
			for _, a := range tk.Attr {
				if a.Name.Space != "xmlns" && a.Name.Local != "xmlns" {
					e.Attr = append(e.Attr, a)
				}
			}
			if len(stack) > 0 {
				stack[len(stack)-1].Append(e)
			}
			stack = append(stack, e)
		case xml.CharData:
			if len(stack) > 0 {
				stack[len(stack)-1].AppendText(string(tk))
			}
		case xml.EndElement:
			e := stack[len(stack)-1]
			if stack = stack[:len(stack)-1]; len(stack) == 0 {
				return e
			}
		}
	}
}

// The disco#info answers of XEP-0115 §5.2 (simple) and §5.3 (complex).
const (
	simpleInfo = `<query xmlns='http://jabber.org/protocol/disco#info' node='http://code.google.com/p/exodus#QgayPKawpkPSDYmwT/WM94uAlu0='>
  <identity category='client' name='Exodus 0.9.1' type='pc'/>
  <feature var='http://jabber.org/protocol/caps'/>
  <feature var='http://jabber.org/protocol/disco#info'/>
  <feature var='http://jabber.org/protocol/disco#items'/>
  <feature var='http://jabber.org/protocol/muc'/>
</query>`
	complexInfo = `<query xmlns='http://jabber.org/protocol/disco#info' node='http://psi-im.org#q07IKJEyjvHSyhy//CH0CxmKi8w='>
  <identity xml:lang='en' category='client' name='Psi 0.11' type='pc'/>
  <identity xml:lang='el' category='client' name='&#936; 0.11' type='pc'/>
  <feature var='http://jabber.org/protocol/caps'/>
  <feature var='http://jabber.org/protocol/disco#info'/>
  <feature var='http://jabber.org/protocol/disco#items'/>
  <feature var='http://jabber.org/protocol/muc'/>
  <x xmlns='jabber:x:data' type='result'>
    <field var='FORM_TYPE' type='hidden'>
      <value>urn:xmpp:dataforms:softwareinfo</value>
    </field>
    <field var='ip_version'>
      <value>ipv4</value>
      <value>ipv6</value>
    </field>
    <field var='os'>
      <value>Mac</value>
    </field>
    <field var='os_version'>
      <value>10.5.1</value>
    </field>
    <field var='software'>
      <value>Psi</value>
    </field>
    <field var='software_version'>
      <value>0.11</value>
    </field>
  </x>
</query>`
	complexS = "client/pc/el/\u03a8 0.11<client/pc/en/Psi 0.11<http://jabber.org/protocol/caps<http://jabber.org/protocol/disco#info<" +
		"http://jabber.org/protocol/disco#items<http://jabber.org/protocol/muc<urn:xmpp:dataforms:softwareinfo<" +
		"ip_version<ipv4<ipv6<os<Mac<os_version<10.5.1<software<Psi<software_version<0.11<"
)

func TestVerification(t *testing.T) {
	sha256Of := func(s string) string {
		sum := sha256.Sum256([]byte(s))
		return base64.StdEncoding.EncodeToString(sum[:])
	}
	// A form whose FORM_TYPE is not hidden, or that has none, is ignored
	// (§5.4 step 3.6): the ver is the simple example's.
	ignoredForms := strings.Replace(simpleInfo, "</query>", `<x xmlns='jabber:x:data' type='result'>
    <field var='FORM_TYPE'><value>urn:example:a</value></field><field var='f'><value>v</value></field></x>
  <x xmlns='jabber:x:data' type='result'><field var='f'><value>v</value></field></x></query>`, 1)
	for _, tc := range []struct {
		name, xml, hash, ver string
		wellFormed           bool
	}{
		{"simple §5.2", simpleInfo, "sha-1", "QgayPKawpkPSDYmwT/WM94uAlu0=", true},
		{"complex §5.3", complexInfo, "sha-1", "q07IKJEyjvHSyhy//CH0CxmKi8w=", true},
		{"complex sha-256", complexInfo, "sha-256", sha256Of(complexS), true},
		{"forms without hidden FORM_TYPE ignored", ignoredForms, "sha-1", "QgayPKawpkPSDYmwT/WM94uAlu0=", true},
		{"duplicate feature", strings.Replace(simpleInfo, "<feature var='http://jabber.org/protocol/muc'/>",
			"<feature var='http://jabber.org/protocol/muc'/><feature var='http://jabber.org/protocol/muc'/>", 1), "sha-1", "", false},
		{"duplicate identity", strings.Replace(simpleInfo, "<identity category='client' name='Exodus 0.9.1' type='pc'/>",
			"<identity category='client' name='Exodus 0.9.1' type='pc'/><identity type='pc' category='client' name='Exodus 0.9.1'/>", 1), "sha-1", "", false},
		{"duplicate FORM_TYPE", strings.Replace(complexInfo, "</query>", `<x xmlns='jabber:x:data' type='result'>
    <field var='FORM_TYPE' type='hidden'><value>urn:xmpp:dataforms:softwareinfo</value></field></x></query>`, 1), "sha-1", "", false},
		{"FORM_TYPE with different values", strings.Replace(complexInfo, "<value>urn:xmpp:dataforms:softwareinfo</value>",
			"<value>urn:xmpp:dataforms:softwareinfo</value><value>urn:other</value>", 1), "sha-1", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in, ok := parseInfo(parse(t, tc.xml))
			if ok != tc.wellFormed {
				t.Fatalf("well-formed = %t, want %t", ok, tc.wellFormed)
			}
			if !ok {
				return
			}
			got, supported := verification(tc.hash, in)
			if !supported || got != tc.ver {
				t.Errorf("ver = %q (%t), want %q", got, supported, tc.ver)
			}
		})
	}
	in, _ := parseInfo(parse(t, complexInfo))
	if s := string(verificationString(in)); s != complexS {
		t.Errorf("S =\n%q, want\n%q", s, complexS)
	}
	if _, ok := verification("md5", in); ok {
		t.Error("md5 accepted")
	}
	// A response with the right content does not verify another ver.
	if v, _ := verification("sha-1", in); v == "QgayPKawpkPSDYmwT/WM94uAlu0=" {
		t.Error("complex info verified the simple ver")
	}
}

func TestCacheBounds(t *testing.T) {
	m := New(disco.New())
	for i := range maxCacheEntries + 10 {
		m.addLocked(cacheKey("sha-1", strconv.Itoa(i)), []string{"f"})
	}
	if len(m.cache) != maxCacheEntries || len(m.order) != maxCacheEntries {
		t.Fatalf("%d entries, %d in order", len(m.cache), len(m.order))
	}
	if _, ok := m.cache[cacheKey("sha-1", "0")]; ok {
		t.Error("the oldest entry was kept")
	}
	big := make([]string, 0, maxCacheBytes/1024)
	for i := range cap(big) {
		big = append(big, strings.Repeat("y", 1000)+string(rune(i)))
	}
	m.addLocked("sha-1 big", big)
	if _, ok := m.cache["sha-1 big"]; ok {
		t.Error("an entry beyond the byte bound was cached")
	}
	if m.bytes > maxCacheBytes {
		t.Errorf("%d bytes cached", m.bytes)
	}
}
