package e2e

import (
	"encoding/xml"

	"github.com/imppd/imppd/e2e/internal/xmltest"
)

// XML namespaces the tests look at.
const (
	NSClient   = xmltest.NSClient
	NSStream   = xmltest.NSStream
	NSStreams  = xmltest.NSStreams // stream error conditions
	NSStanzas  = xmltest.NSStanzas // stanza error conditions
	NSTLS      = xmltest.NSTLS
	NSSASL     = xmltest.NSSASL
	NSBind     = xmltest.NSBind
	NSPing     = xmltest.NSPing
	NSStanzaID = "urn:xmpp:sid:0"
	NSRoster   = xmltest.NSRoster
)

// Element is a decoded XML element with its subtree: enough to inspect a
// stanza without a schema (see xmltest.Element for its methods).
type Element = xmltest.Element

// ReadElement reads the rest of the element start opened, from tokens of
// an already namespace-resolving reader (an xml.Decoder, or mellium's
// session token reader).
func ReadElement(r xml.TokenReader, start xml.StartElement) (*Element, error) {
	return xmltest.ReadElement(r, start)
}

// Esc escapes s for XML character data and single- or double-quoted
// attribute values.
func Esc(s string) string { return xmltest.Esc(s) }

// Predicates for Client.Expect.

// IsStanza matches a jabber:client element with this local name
// ("message", "presence" or "iq") and, if typ is not "", this type.
func IsStanza(local, typ string) func(*Element) bool {
	return func(e *Element) bool {
		return e.Is(NSClient, local) && (typ == "" || e.Get("type") == typ)
	}
}

// HasID matches a jabber:client stanza with this id.
func HasID(id string) func(*Element) bool {
	return func(e *Element) bool { return e.Name.Space == NSClient && e.Get("id") == id }
}

// MessageWithBody matches a message whose <body/> is body.
func MessageWithBody(body string) func(*Element) bool {
	return func(e *Element) bool {
		b := e.Child(NSClient, "body")
		return e.Is(NSClient, "message") && b != nil && b.Text == body
	}
}
