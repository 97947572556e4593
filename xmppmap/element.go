package xmppmap

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strconv"
	"strings"
)

// Element is a decoded XML element: a stanza or one of its descendants.
// Namespaces are resolved (Name.Space is a URI) and namespace declarations
// are dropped from Attr; the serializer declares what it needs.
type Element struct {
	Name  xml.Name
	Attr  []xml.Attr
	Nodes []Node
}

// Node is a child of an element: an element or character data.
type Node struct {
	Elem *Element
	Text string
}

// Get returns the value of the un-namespaced attribute local.
func (e *Element) Get(local string) string {
	for i := range e.Attr {
		if e.Attr[i].Name.Local == local && e.Attr[i].Name.Space == "" {
			return e.Attr[i].Value
		}
	}
	return ""
}

// Set sets (or, with an empty value, removes) the un-namespaced attribute.
func (e *Element) Set(local, value string) {
	for i := range e.Attr {
		if e.Attr[i].Name.Local == local && e.Attr[i].Name.Space == "" {
			if value == "" {
				e.Attr = append(e.Attr[:i], e.Attr[i+1:]...)
			} else {
				e.Attr[i].Value = value
			}
			return
		}
	}
	if value != "" {
		e.Attr = append(e.Attr, xml.Attr{Name: xml.Name{Local: local}, Value: value})
	}
}

// Child returns the first child element with the given namespace and local
// name ("" matches any).
func (e *Element) Child(space, local string) *Element {
	for _, n := range e.Nodes {
		if c := n.Elem; c != nil && (space == "" || c.Name.Space == space) && (local == "" || c.Name.Local == local) {
			return c
		}
	}
	return nil
}

// Children counts the child elements.
func (e *Element) Children() int {
	n := 0
	for _, c := range e.Nodes {
		if c.Elem != nil {
			n++
		}
	}
	return n
}

// Text returns the concatenated character data directly inside e.
func (e *Element) Text() string {
	if len(e.Nodes) == 1 {
		return e.Nodes[0].Text
	}
	var b strings.Builder
	for _, n := range e.Nodes {
		if n.Elem == nil {
			b.WriteString(n.Text)
		}
	}
	return b.String()
}

// Append adds a child element and returns it.
func (e *Element) Append(c *Element) *Element {
	e.Nodes = append(e.Nodes, Node{Elem: c})
	return c
}

// AppendText adds character data.
func (e *Element) AppendText(s string) { e.Nodes = append(e.Nodes, Node{Text: s}) }

// NewElement returns an element with the given name and attribute pairs.
func NewElement(space, local string, attrs ...string) *Element {
	e := &Element{Name: xml.Name{Space: space, Local: local}}
	for i := 0; i+1 < len(attrs); i += 2 {
		e.Set(attrs[i], attrs[i+1])
	}
	return e
}

// Errors a decoder reports for input that XMPP restricts (RFC 6120 §11.1)
// or that encoding/xml lets through although XML forbids it.
var (
	errRestricted = errors.New("restricted XML: comment, processing instruction or DTD")
	errDepth      = errors.New("element nesting too deep")
	errDupAttr    = &xml.SyntaxError{Msg: "duplicate attribute"}
	errPrefix     = &xml.SyntaxError{Msg: "undeclared namespace prefix"}
)

// streamNS are the namespaces in scope for every stanza of a client stream:
// the content namespace, the stream prefix's and xml:.
var streamNS = []string{nsClient, nsStream, nsXML}

// tokenSource is what readElement needs of an XML decoder.
type tokenSource interface {
	Token() (xml.Token, error)
}

// readElement reads the element that start opened, up to its end tag,
// refusing restricted XML, nesting deeper than maxDepth, and what
// encoding/xml accepts but XML and Namespaces in XML forbid: duplicate
// attributes and undeclared prefixes (RFC 6120 §11.2: not-well-formed).
//
// streamScope lists the namespaces the stream header declared (nil: just
// streamNS).
func readElement(d tokenSource, start xml.StartElement, maxDepth int, streamScope []string) (*Element, error) {
	// encoding/xml leaves an undeclared prefix in Name.Space; a namespace
	// is acceptable only if some declaration in scope names it.
	scope := streamScope
	if scope == nil {
		scope = streamNS
	}
	marks := make([]int, 1, 8)
	check := func(t xml.StartElement) error {
		marks = append(marks, len(scope))
		for _, a := range t.Attr {
			if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
				scope = append(scope[:len(scope):len(scope)], a.Value)
			}
		}
		if !inScope(scope, t.Name.Space) {
			return errPrefix
		}
		for i, a := range t.Attr {
			if a.Name.Space != "" && a.Name.Space != "xmlns" && !inScope(scope, a.Name.Space) {
				return errPrefix
			}
			for _, b := range t.Attr[:i] {
				if a.Name == b.Name {
					return errDupAttr
				}
			}
		}
		return nil
	}
	if err := check(start); err != nil {
		return nil, err
	}
	root := fromStart(start)
	stack := make([]*Element, 1, 8)
	stack[0] = root
	for len(stack) > 0 {
		tok, err := d.Token()
		if err != nil {
			return nil, err
		}
		cur := stack[len(stack)-1]
		switch t := tok.(type) {
		case xml.StartElement:
			if len(stack) >= maxDepth {
				return nil, errDepth
			}
			if err := check(t); err != nil {
				return nil, err
			}
			c := fromStart(t)
			cur.Nodes = append(cur.Nodes, Node{Elem: c})
			stack = append(stack, c)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
			scope = scope[:marks[len(marks)-1]]
			marks = marks[:len(marks)-1]
		case xml.CharData:
			// Merge adjacent runs (the decoder splits around entities).
			if n := len(cur.Nodes); n > 0 && cur.Nodes[n-1].Elem == nil {
				cur.Nodes[n-1].Text += string(t)
			} else {
				cur.Nodes = append(cur.Nodes, Node{Text: string(t)})
			}
		case xml.Comment, xml.ProcInst, xml.Directive:
			return nil, errRestricted
		}
	}
	return root, nil
}

func inScope(scope []string, space string) bool {
	if space == "" {
		return true
	}
	for i := len(scope) - 1; i >= 0; i-- {
		if scope[i] == space {
			return true
		}
	}
	return false
}

func fromStart(s xml.StartElement) *Element {
	e := &Element{Name: s.Name}
	n := 0
	for _, a := range s.Attr {
		if a.Name.Space != "xmlns" && !(a.Name.Space == "" && a.Name.Local == "xmlns") {
			n++
		}
	}
	if n > 0 {
		e.Attr = make([]xml.Attr, 0, n)
		for _, a := range s.Attr {
			if a.Name.Space != "xmlns" && !(a.Name.Space == "" && a.Name.Local == "xmlns") {
				e.Attr = append(e.Attr, a)
			}
		}
	}
	return e
}

const nsXML = "http://www.w3.org/XML/1998/namespace"

// AppendXML serializes e onto b as if inside an element whose default
// namespace is parentNS (jabber:client for stanzas on a c2s stream).
func (e *Element) AppendXML(b []byte, parentNS string) []byte {
	b = append(b, '<')
	b = append(b, e.Name.Local...)
	if e.Name.Space != parentNS {
		b = append(b, " xmlns='"...)
		b = appendEscaped(b, e.Name.Space, true)
		b = append(b, '\'')
	}
	prefixes := 0
	for _, a := range e.Attr {
		b = append(b, ' ')
		switch a.Name.Space {
		case "":
		case nsXML:
			b = append(b, "xml:"...)
		default:
			// A namespaced attribute other than xml:*: declare a prefix
			// for it on this element.
			prefixes++
			p := "ns" + strconv.Itoa(prefixes)
			b = append(b, "xmlns:"...)
			b = append(b, p...)
			b = append(b, "='"...)
			b = appendEscaped(b, a.Name.Space, true)
			b = append(b, "' "...)
			b = append(b, p...)
			b = append(b, ':')
		}
		b = append(b, a.Name.Local...)
		b = append(b, "='"...)
		b = appendEscaped(b, a.Value, true)
		b = append(b, '\'')
	}
	if len(e.Nodes) == 0 {
		return append(b, "/>"...)
	}
	b = append(b, '>')
	for _, n := range e.Nodes {
		if n.Elem != nil {
			b = n.Elem.AppendXML(b, e.Name.Space)
		} else {
			b = appendEscaped(b, n.Text, false)
		}
	}
	b = append(b, "</"...)
	b = append(b, e.Name.Local...)
	return append(b, '>')
}

// String serializes e in the jabber:client namespace, for logs and tests.
func (e *Element) String() string { return string(e.AppendXML(nil, nsClient)) }

// appendEscaped escapes s for character data or a single-quoted attribute
// value. '\r' is escaped so that it survives end-of-line normalisation.
func appendEscaped(b []byte, s string, attr bool) []byte {
	last := 0
	for i := 0; i < len(s); i++ {
		var esc string
		switch s[i] {
		case '&':
			esc = "&amp;"
		case '<':
			esc = "&lt;"
		case '>':
			esc = "&gt;"
		case '\r':
			esc = "&#xD;"
		case '\'':
			if !attr {
				continue
			}
			esc = "&apos;"
		case '"':
			if !attr {
				continue
			}
			esc = "&quot;"
		case '\n':
			if !attr {
				continue
			}
			esc = "&#xA;"
		case '\t':
			if !attr {
				continue
			}
			esc = "&#x9;"
		default:
			continue
		}
		b = append(b, s[last:i]...)
		b = append(b, esc...)
		last = i + 1
	}
	return append(b, s[last:]...)
}

// ParseElement decodes one serialized element (as AppendXML wrote it, with
// its namespaces declared), for modules that keep stanza payloads as bytes.
// maxDepth bounds the nesting.
func ParseElement(b []byte, maxDepth int) (*Element, error) {
	return parseIn(b, "", maxDepth)
}

// parseIn decodes one element serialized as if inside an element whose
// default namespace is parentNS (jabber:client for a stanza written by
// AppendXML(nil, nsClient)), with the stream's checks.
func parseIn(b []byte, parentNS string, maxDepth int) (*Element, error) {
	var r io.Reader = bytes.NewReader(b)
	scope := []string{nsXML}
	if parentNS != "" {
		r = io.MultiReader(strings.NewReader("<s xmlns='"+parentNS+"'>"), r)
		scope = streamNS
	}
	d := xml.NewDecoder(r)
	if parentNS != "" {
		if _, err := d.Token(); err != nil {
			return nil, err
		}
	}
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			return readElement(d, t, maxDepth, scope)
		case xml.CharData:
			if strings.TrimSpace(string(t)) != "" {
				return nil, errors.New("xmppmap: text outside an element")
			}
		case xml.ProcInst, xml.Comment, xml.Directive:
			return nil, errors.New("xmppmap: restricted XML")
		}
	}
}
