package xmppmap

import (
	"encoding/xml"
	"errors"
	"strings"
	"testing"

	"mellium.im/xmpp/stream"
)

// parseOne decodes the first element inside a jabber:client stream.
func parseOne(t *testing.T, inner string, depth int) (*Element, error) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader("<stream:stream xmlns='jabber:client' xmlns:stream='" + nsStream + "' xmlns:p='urn:prefixed'>" + inner))
	d.Strict = true
	if _, err := d.Token(); err != nil {
		t.Fatal(err)
	}
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, err
		}
		if s, ok := tok.(xml.StartElement); ok {
			return readElement(d, s, depth, append(append([]string(nil), streamNS...), "urn:prefixed"))
		}
	}
}

func TestElementRoundTrip(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`<message to='a@b'><body>hi</body></message>`, `<message to='a@b'><body>hi</body></message>`},
		{`<message><body>a &amp; b &lt;c&gt; "q" 'a'</body></message>`, `<message><body>a &amp; b &lt;c&gt; "q" 'a'</body></message>`},
		{`<iq id="x&apos;y" type='get'><query xmlns='jabber:iq:roster'/></iq>`, `<iq id='x&apos;y' type='get'><query xmlns='jabber:iq:roster'/></iq>`},
		{`<presence><c xmlns='http://jabber.org/protocol/caps' node='n'><x/></c></presence>`, `<presence><c xmlns='http://jabber.org/protocol/caps' node='n'><x/></c></presence>`},
		// A child back in jabber:client after a foreign parent is declared again.
		{`<message><x xmlns='urn:x'><body xmlns='jabber:client'>b</body></x></message>`, `<message><x xmlns='urn:x'><body xmlns='jabber:client'>b</body></x></message>`},
		// Prefixes declared on the stream resolve to namespaces.
		{`<message><p:e>t</p:e></message>`, `<message><e xmlns='urn:prefixed'>t</e></message>`},
		{`<message xml:lang='de'><body>x</body></message>`, `<message xml:lang='de'><body>x</body></message>`},
		{`<message><e xmlns='urn:a' p:attr='v'/></message>`, `<message><e xmlns='urn:a' xmlns:ns1='urn:prefixed' ns1:attr='v'/></message>`},
		{"<message><body>line1\r\nline2\ttab</body></message>", "<message><body>line1\nline2\ttab</body></message>"},
		{`<message><body>a<![CDATA[<b>]]>c</body></message>`, `<message><body>a&lt;b&gt;c</body></message>`},
	} {
		el, err := parseOne(t, tc.in, 16)
		if err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		if got := el.String(); got != tc.want {
			t.Errorf("%s\n got %s\nwant %s", tc.in, got, tc.want)
		}
		// Serializing is a fixed point: what we write parses back the same.
		again, err := parseOne(t, tc.want, 16)
		if err != nil || again.String() != tc.want {
			t.Errorf("%s does not round-trip: %v %s", tc.want, err, again)
		}
	}
}

func TestReadElementRefuses(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want error
	}{
		{`<message><!-- hi --></message>`, errRestricted},
		{`<message><?pi x?></message>`, errRestricted},
		{`<a><a><a><a><a></a></a></a></a></a>`, errDepth},
		{`<message to='a' to='b'/>`, errDupAttr},
		{`<message><x:body>hi</x:body></message>`, errPrefix},
		{`<message><body q:attr='1'>hi</body></message>`, errPrefix},
		// A prefix goes out of scope with its element.
		{`<message><y:a xmlns:y='urn:y'/><y:b/></message>`, errPrefix},
	} {
		if _, err := parseOne(t, tc.in, 4); !errors.Is(err, tc.want) {
			t.Errorf("%s: err %v, want %v", tc.in, err, tc.want)
		}
	}
	for _, ok := range []string{
		`<a><a><a><a></a></a></a></a>`,
		`<message><y:a xmlns:y='urn:y'><y:b/></y:a></message>`,
		`<message xmlns:z='urn:z'><body z:attr='1'>x</body></message>`,
	} {
		if _, err := parseOne(t, ok, 4); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
}

func TestElementAccessors(t *testing.T) {
	el := NewElement(nsClient, "message", "to", "a@b", "type", "chat")
	el.Append(NewElement(nsClient, "body")).AppendText("x")
	el.Set("type", "")
	el.Set("id", "1")
	if el.Get("type") != "" || el.Get("id") != "1" || el.Child(nsClient, "body").Text() != "x" || el.Children() != 1 {
		t.Fatalf("accessors: %s", el)
	}
	if got := el.String(); got != `<message to='a@b' id='1'><body>x</body></message>` {
		t.Fatal(got)
	}
}

func TestHeaderChecks(t *testing.T) {
	const ok = `<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>`
	for _, tc := range []struct {
		in   string
		want string // stream error condition, "" for accepted
	}{
		{ok, ""},
		{`<?xml version='1.0'?>` + ok, ""},
		{`<?xml version='1.0' encoding='UTF-8'?>` + ok, ""},
		{"\n  " + ok, ""},
		{strings.Replace(ok, "version='1.0'", "version='2.3'", 1), ""},
		{strings.Replace(ok, " version='1.0'", "", 1), "unsupported-version"},
		{strings.Replace(ok, "version='1.0'", "version='0.9'", 1), "unsupported-version"},
		{strings.Replace(ok, " to='localhost'", "", 1), "host-unknown"},
		{strings.Replace(ok, "jabber:client", "jabber:server", 1), "invalid-namespace"},
		{strings.Replace(ok, "http://etherx.jabber.org/streams", "urn:wrong", 1), "invalid-namespace"},
		{`<s:stream xmlns='jabber:client' xmlns:s='http://etherx.jabber.org/streams' to='localhost' version='1.0'>`, "bad-namespace-prefix"},
		{`<!DOCTYPE foo>` + ok, "restricted-xml"},
		{`<!-- c -->` + ok, "restricted-xml"},
		{`<?other x?>` + ok, "restricted-xml"},
		{`text` + ok, "not-well-formed"},
		{`<?xml version='1.0' encoding='ISO-8859-1'?>` + ok, "unsupported-encoding"},
	} {
		d := xml.NewDecoder(strings.NewReader(tc.in))
		d.Strict = true
		_, err := readHeader(d)
		got := ""
		if err != nil {
			se, ok := classify(err)
			if !ok {
				t.Errorf("%q: unclassified error %v", tc.in, err)
				continue
			}
			got = se.Err
		}
		if got != tc.want {
			t.Errorf("%q: got %q, want %q (%v)", tc.in, got, tc.want, err)
		}
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
		ok   bool
	}{
		{errBudget, "policy-violation", true},
		{errDepth, "policy-violation", true},
		{errRestricted, "restricted-xml", true},
		{&xml.SyntaxError{Msg: "invalid UTF-8"}, "not-well-formed", true},
		{&xml.SyntaxError{Msg: "unexpected EOF"}, "", false},
		{streamError(stream.HostUnknown, "x"), "host-unknown", true},
		{errClosed, "", false},
	} {
		se, ok := classify(tc.err)
		if ok != tc.ok || se.Err != tc.want {
			t.Errorf("%v: got %q %v, want %q %v", tc.err, se.Err, ok, tc.want, tc.ok)
		}
	}
}

func TestParseElement(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{`<data xmlns='urn:xmpp:avatar:data'>QUJD</data>`, `<data xmlns='urn:xmpp:avatar:data'>QUJD</data>`, true},
		{` <a xmlns='urn:a'><b xmlns='urn:b' x='1'/>t</a>`, `<a xmlns='urn:a'><b xmlns='urn:b' x='1'/>t</a>`, true},
		{`<a xmlns='urn:a' xml:lang='en'/>`, `<a xmlns='urn:a' xml:lang='en'/>`, true},
		{`<p:a/>`, ``, false},                       // undeclared prefix
		{`<!-- c --><a xmlns='urn:a'/>`, ``, false}, // restricted XML
		{`text<a xmlns='urn:a'/>`, ``, false},
		{`<a xmlns='urn:a'><b><c/></b></a>`, ``, false}, // deeper than 2
		{`<a xmlns='urn:a'>`, ``, false},
	} {
		el, err := ParseElement([]byte(tc.in), 2)
		if (err == nil) != tc.ok {
			t.Errorf("%q: err %v", tc.in, err)
			continue
		}
		if tc.ok {
			if got := string(el.AppendXML(nil, "")); got != tc.want {
				t.Errorf("%q: got %s", tc.in, got)
			}
		}
	}
}
