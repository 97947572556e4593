package xmppmap

import (
	"bufio"
	"encoding/xml"
	"errors"
	"io"
	"strconv"
	"strings"

	"mellium.im/xmpp/stream"
)

// Namespaces of RFC 6120 and RFC 6121 that the stream layer speaks.
const (
	nsStream  = "http://etherx.jabber.org/streams"
	nsClient  = "jabber:client"
	nsStreamE = "urn:ietf:params:xml:ns:xmpp-streams"
	nsTLS     = "urn:ietf:params:xml:ns:xmpp-tls"
	nsSASL    = "urn:ietf:params:xml:ns:xmpp-sasl"
	nsBind    = "urn:ietf:params:xml:ns:xmpp-bind"
	nsSession = "urn:ietf:params:xml:ns:xmpp-session"
	nsStanza  = "urn:ietf:params:xml:ns:xmpp-stanzas"
	nsSASLCB  = "urn:xmpp:sasl-cb:0"
)

// errBudget is returned by budgetReader when an element exceeds its size
// limit.
var errBudget = errors.New("size limit exceeded")

// budgetReader bounds the bytes one top-level element may take (RFC 6120
// §13.12: a server must limit stanza size). The XML decoder reads through
// it byte by byte (it is an io.ByteReader, so encoding/xml adds no buffer of
// its own); the session resets the budget before each top-level element.
type budgetReader struct {
	r    *bufio.Reader
	left int
}

func (b *budgetReader) ReadByte() (byte, error) {
	if b.left <= 0 {
		return 0, errBudget
	}
	b.left--
	return b.r.ReadByte()
}

func (b *budgetReader) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, errBudget
	}
	if len(p) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= n
	return n, err
}

// streamError is a stream error to send before closing (RFC 6120 §4.9), as
// mellium's stream.Error with an optional human-readable text.
func streamError(e stream.Error, text string) stream.Error {
	if text != "" {
		e.Text = []struct {
			Lang  string
			Value string
		}{{Lang: "en", Value: text}}
	}
	return e
}

// appendStreamError serializes a stream error element.
func appendStreamError(b []byte, e stream.Error) []byte {
	b = append(b, "<stream:error><"...)
	b = append(b, e.Err...)
	b = append(b, " xmlns='"+nsStreamE+"'/>"...)
	for _, t := range e.Text {
		b = append(b, "<text xmlns='"+nsStreamE+"' xml:lang='"...)
		b = appendEscaped(b, t.Lang, true)
		b = append(b, "'>"...)
		b = appendEscaped(b, t.Value, false)
		b = append(b, "</text>"...)
	}
	return append(b, "</stream:error>"...)
}

// header is what a client's stream header says (RFC 6120 §4.7).
type header struct {
	to, from, lang string
	scope          []string // namespaces declared on the header, for readElement
}

// readHeader reads the client's stream header, skipping an XML declaration
// and whitespace, and checks it against RFC 6120 §4.7-4.8. It returns a
// stream.Error naming what is wrong.
func readHeader(d *xml.Decoder) (header, error) {
	var h header
	first := true
	for {
		tok, err := d.Token()
		if err != nil {
			return h, err
		}
		switch t := tok.(type) {
		case xml.ProcInst:
			if !first || t.Target != "xml" {
				return h, streamError(stream.RestrictedXML, "processing instructions are not allowed")
			}
			if enc := procInstAttr(string(t.Inst), "encoding"); enc != "" && !strings.EqualFold(enc, "utf-8") {
				return h, streamError(stream.UnsupportedEncoding, "only UTF-8 is supported")
			}
		case xml.CharData:
			if len(strings.TrimLeft(string(t), " \t\r\n")) > 0 {
				return h, streamError(stream.NotWellFormed, "text before the stream header")
			}
		case xml.Comment, xml.Directive:
			return h, streamError(stream.RestrictedXML, "comments and DTDs are not allowed")
		case xml.StartElement:
			return checkHeader(t)
		default:
			return h, streamError(stream.NotWellFormed, "")
		}
		first = false
	}
}

func checkHeader(t xml.StartElement) (header, error) {
	var h header
	if t.Name.Space != nsStream || t.Name.Local != "stream" {
		return h, streamError(stream.InvalidNamespace, "expected a stream element in "+nsStream)
	}
	var defaultNS, version string
	prefixOK := false
	for _, a := range t.Attr {
		switch {
		case a.Name.Space == "xmlns" && a.Value == nsStream:
			prefixOK = a.Name.Local == "stream"
		case a.Name.Space == "" && a.Name.Local == "xmlns":
			defaultNS = a.Value
		case a.Name.Space == "" && a.Name.Local == "to":
			h.to = a.Value
		case a.Name.Space == "" && a.Name.Local == "from":
			h.from = a.Value
		case a.Name.Space == "" && a.Name.Local == "version":
			version = a.Value
		case a.Name.Space == nsXML && a.Name.Local == "lang":
			h.lang = a.Value
		}
		if a.Name.Space == "xmlns" && a.Value != nsStream {
			h.scope = append(h.scope, a.Value)
		}
	}
	if !prefixOK {
		return h, streamError(stream.BadNamespacePrefix, "the stream namespace must use the prefix 'stream'")
	}
	if defaultNS != nsClient {
		return h, streamError(stream.InvalidNamespace, "the content namespace must be "+nsClient)
	}
	// RFC 6120 §4.7.5: no version means 0.9; we speak 1.x only.
	major, _, ok := strings.Cut(version, ".")
	if n, err := strconv.Atoi(major); !ok || err != nil || n < 1 {
		return h, streamError(stream.UnsupportedVersion, "XMPP 1.0 is required")
	}
	if h.to == "" {
		return h, streamError(stream.HostUnknown, "the stream header must name the server in 'to'")
	}
	if h.scope != nil {
		h.scope = append(append([]string(nil), streamNS...), h.scope...)
	}
	return h, nil
}

// procInstAttr extracts a pseudo-attribute from an XML declaration.
func procInstAttr(inst, name string) string {
	i := strings.Index(inst, name)
	if i < 0 {
		return ""
	}
	rest := strings.TrimLeft(inst[i+len(name):], " ")
	if !strings.HasPrefix(rest, "=") {
		return ""
	}
	rest = strings.TrimLeft(rest[1:], " ")
	if rest == "" || (rest[0] != '\'' && rest[0] != '"') {
		return ""
	}
	q := rest[0]
	end := strings.IndexByte(rest[1:], q)
	if end < 0 {
		return ""
	}
	return rest[1 : 1+end]
}

// appendHeader writes the server's response stream header.
func appendHeader(b []byte, id, from, to, lang string) []byte {
	b = append(b, "<?xml version='1.0'?><stream:stream xmlns='"+nsClient+"' xmlns:stream='"+nsStream+"' version='1.0' id='"...)
	b = appendEscaped(b, id, true)
	b = append(b, "' from='"...)
	b = appendEscaped(b, from, true)
	if to != "" {
		b = append(b, "' to='"...)
		b = appendEscaped(b, to, true)
	}
	if lang == "" {
		lang = "en"
	}
	b = append(b, "' xml:lang='"...)
	b = appendEscaped(b, lang, true)
	return append(b, "'>"...)
}

// classify turns a decoder or reader error into the stream error RFC 6120
// §4.9.3 names for it; ok is false for a closed or failed connection, where
// nothing can be sent.
func classify(err error) (stream.Error, bool) {
	var se stream.Error
	var syn *xml.SyntaxError
	switch {
	case errors.As(err, &se):
		return se, true
	case errors.Is(err, errBudget):
		return streamError(stream.PolicyViolation, "stanza too large"), true
	case errors.Is(err, errDepth):
		return streamError(stream.PolicyViolation, "elements nested too deeply"), true
	case errors.Is(err, errRestricted):
		return streamError(stream.RestrictedXML, "comments, processing instructions and DTDs are not allowed"), true
	case errors.As(err, &syn):
		if strings.Contains(syn.Msg, "encoding") {
			return streamError(stream.UnsupportedEncoding, "only UTF-8 is supported"), true
		}
		if syn.Msg == "unexpected EOF" {
			return se, false
		}
		return streamError(stream.NotWellFormed, syn.Msg), true
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return se, false
	case strings.Contains(err.Error(), "CharsetReader"):
		// encoding/xml refuses a declared non-UTF-8 encoding this way.
		return streamError(stream.UnsupportedEncoding, "only UTF-8 is supported"), true
	}
	return se, false
}
