// Package xmltest is the XML and raw XMPP client code shared by the e2e
// harness (package e2e) and the compliance checker (e2e/compliance): a
// schema-less element tree, and a client stream driven by hand through
// STARTTLS, SASL and resource binding.
package xmltest

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"
)

// XML namespaces.
const (
	NSClient  = "jabber:client"
	NSStream  = "http://etherx.jabber.org/streams"
	NSStreams = "urn:ietf:params:xml:ns:xmpp-streams" // stream error conditions
	NSStanzas = "urn:ietf:params:xml:ns:xmpp-stanzas" // stanza error conditions
	NSTLS     = "urn:ietf:params:xml:ns:xmpp-tls"
	NSSASL    = "urn:ietf:params:xml:ns:xmpp-sasl"
	NSBind    = "urn:ietf:params:xml:ns:xmpp-bind"
	NSPing    = "urn:xmpp:ping"
	NSRoster  = "jabber:iq:roster"
	NSXML     = "http://www.w3.org/XML/1998/namespace" // xml:lang and the like
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
	return e.attr(func(a xml.Name) bool { return a.Space == "" && a.Local == local })
}

// Lang returns the value of the first attribute named lang, with or
// without the xml: prefix.
func (e *Element) Lang() string {
	return e.attr(func(a xml.Name) bool {
		return a.Local == "lang" && (a.Space == "" || a.Space == "xml" || a.Space == NSXML)
	})
}

func (e *Element) attr(match func(xml.Name) bool) string {
	if e == nil {
		return ""
	}
	for _, a := range e.Attr {
		if match(a.Name) {
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
	return e.children(func(c *Element) bool { return c.Name.Space == space })
}

// ChildrenNamed returns the children with this namespace and local name.
func (e *Element) ChildrenNamed(space, local string) []*Element {
	return e.children(func(c *Element) bool { return c.Is(space, local) })
}

func (e *Element) children(match func(*Element) bool) []*Element {
	if e == nil {
		return nil
	}
	var out []*Element
	for _, c := range e.Children {
		if match(c) {
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
		case a.Name.Space == NSXML:
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

// StreamHeader is a well-formed stream header in namespace ns (jabber:client,
// or jabber:component:accept) to domain.
func StreamHeader(ns, domain string) string {
	return "<?xml version='1.0'?><stream:stream xmlns='" + ns + "' xmlns:stream='" + NSStream +
		"' to='" + Esc(domain) + "' version='1.0' xml:lang='en'>"
}
