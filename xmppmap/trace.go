package xmppmap

import (
	"bytes"
	"strings"
)

// Stanza tracing for interop testers: every element in and out of a
// traced session is logged with the session's JID and direction. SASL
// payloads and passwords are redacted before anything is written.

func (ss *session) tracing() bool { return ss.trace || ss.srv.cfg.TraceAll }

func (ss *session) traceIn(el *Element) {
	if !ss.tracing() {
		return
	}
	ss.log.Info("trace", "dir", "in", "xml", string(redacted(el).AppendXML(nil, nsClient)))
}

func (ss *session) traceOut(b []byte) {
	if !ss.tracing() {
		return
	}
	s := string(b)
	if strings.Contains(s, nsSASL) {
		s = redactSASLOut(s)
	}
	ss.log.Info("trace", "dir", "out", "xml", s)
}

// redacted returns el, or a copy of it with secrets replaced.
func redacted(el *Element) *Element {
	if el.Name.Space == nsSASL {
		c := *el
		if len(c.Nodes) > 0 && c.Nodes[0].Elem == nil {
			c.Nodes = []Node{{Text: "[redacted]"}}
		}
		return &c
	}
	if !hasSecret(el) {
		return el
	}
	c := *el
	c.Nodes = make([]Node, len(el.Nodes))
	for i, n := range el.Nodes {
		switch {
		case n.Elem != nil && n.Elem.Name.Local == "password":
			c.Nodes[i] = Node{Elem: &Element{Name: n.Elem.Name, Nodes: []Node{{Text: "[redacted]"}}}}
		case n.Elem != nil:
			c.Nodes[i] = Node{Elem: redacted(n.Elem)}
		default:
			c.Nodes[i] = n
		}
	}
	return &c
}

func hasSecret(el *Element) bool {
	for _, n := range el.Nodes {
		if n.Elem != nil && (n.Elem.Name.Local == "password" || hasSecret(n.Elem)) {
			return true
		}
	}
	return false
}

// redactSASLOut blanks the base64 payload of SASL elements the server sends.
func redactSASLOut(s string) string {
	var b bytes.Buffer
	for _, tag := range []string{"challenge", "success"} {
		open := "<" + tag + " xmlns='" + nsSASL + "'>"
		if i := strings.Index(s, open); i >= 0 {
			if j := strings.Index(s[i:], "</"+tag+">"); j >= 0 {
				b.WriteString(s[:i+len(open)])
				b.WriteString("[redacted]")
				b.WriteString(s[i+j:])
				return b.String()
			}
		}
	}
	return s
}
