package e2e

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"
)

// XML namespaces the tests look at.
const (
	NSClient   = "jabber:client"
	NSStream   = "http://etherx.jabber.org/streams"
	NSStreams  = "urn:ietf:params:xml:ns:xmpp-streams" // stream error conditions
	NSStanzas  = "urn:ietf:params:xml:ns:xmpp-stanzas" // stanza error conditions
	NSTLS      = "urn:ietf:params:xml:ns:xmpp-tls"
	NSSASL     = "urn:ietf:params:xml:ns:xmpp-sasl"
	NSBind     = "urn:ietf:params:xml:ns:xmpp-bind"
	NSPing     = "urn:xmpp:ping"
	NSStanzaID = "urn:xmpp:sid:0"
	NSRoster   = "jabber:iq:roster"
)

// Element is a decoded XML element with its subtree: enough to inspect a
// stanza without a schema.
type Element struct {
	Name     xml.Name
	Attr     []xml.Attr
	Children []*Element
	Text     string // the element's own character data, concatenated
}

// ReadElement reads the rest of the element start opened, from tokens of
// an already namespace-resolving reader (an xml.Decoder, or mellium's
// session token reader).
func ReadElement(r xml.TokenReader, start xml.StartElement) (*Element, error) {
	el := &Element{Name: start.Name, Attr: append([]xml.Attr(nil), start.Attr...)}
	for {
		tok, err := r.Token()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			c, err := ReadElement(r, t.Copy())
			if err != nil {
				return nil, err
			}
			el.Children = append(el.Children, c)
		case xml.EndElement:
			return el, nil
		case xml.CharData:
			el.Text += string(t)
		}
	}
}

// Is reports whether the element has this namespace and local name.
func (e *Element) Is(space, local string) bool {
	return e != nil && e.Name.Space == space && e.Name.Local == local
}

// Get returns the value of the attribute without namespace named local.
func (e *Element) Get(local string) string {
	if e == nil {
		return ""
	}
	for _, a := range e.Attr {
		if a.Name.Space == "" && a.Name.Local == local {
			return a.Value
		}
	}
	return ""
}

// Child returns the first child with this namespace and local name.
func (e *Element) Child(space, local string) *Element {
	if e == nil {
		return nil
	}
	for _, c := range e.Children {
		if c.Is(space, local) {
			return c
		}
	}
	return nil
}

// ChildrenIn returns the children in namespace space.
func (e *Element) ChildrenIn(space string) []*Element {
	if e == nil {
		return nil
	}
	var out []*Element
	for _, c := range e.Children {
		if c.Name.Space == space {
			out = append(out, c)
		}
	}
	return out
}

// StanzaError returns the type and defined condition of a stanza's
// <error/> child (RFC 6120 §8.3); ok is false when there is none.
func (e *Element) StanzaError() (typ, condition string, ok bool) {
	er := e.Child(e.Name.Space, "error")
	if er == nil {
		return "", "", false
	}
	for _, c := range er.ChildrenIn(NSStanzas) {
		if c.Name.Local != "text" {
			condition = c.Name.Local
			break
		}
	}
	return er.Get("type"), condition, true
}

// String serializes the element (namespaces as xmlns attributes where they
// change), for messages and logs.
func (e *Element) String() string {
	if e == nil {
		return "<nil>"
	}
	var b strings.Builder
	e.write(&b, "")
	return b.String()
}

func (e *Element) write(b *strings.Builder, parentNS string) {
	b.WriteString("<" + e.Name.Local)
	if e.Name.Space != parentNS {
		fmt.Fprintf(b, " xmlns='%s'", Esc(e.Name.Space))
	}
	for _, a := range e.Attr {
		switch {
		case a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns"):
			continue // namespaces are written from the names
		case a.Name.Space == "http://www.w3.org/XML/1998/namespace":
			fmt.Fprintf(b, " xml:%s='%s'", a.Name.Local, Esc(a.Value))
		case a.Name.Space != "":
			fmt.Fprintf(b, " {%s}%s='%s'", a.Name.Space, a.Name.Local, Esc(a.Value))
		default:
			fmt.Fprintf(b, " %s='%s'", a.Name.Local, Esc(a.Value))
		}
	}
	if len(e.Children) == 0 && e.Text == "" {
		b.WriteString("/>")
		return
	}
	b.WriteString(">")
	b.WriteString(Esc(e.Text))
	for _, c := range e.Children {
		c.write(b, e.Name.Space)
	}
	b.WriteString("</" + e.Name.Local + ">")
}

// Esc escapes s for XML character data and single- or double-quoted
// attribute values.
func Esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return strings.ReplaceAll(b.String(), "'", "&#39;")
}

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
