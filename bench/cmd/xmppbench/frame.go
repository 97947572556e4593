package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// Kinds of frame a framer returns.
const (
	frameStanza = iota // a complete top-level element inside the stream
	frameOpen          // the <stream:stream ...> header
	frameClose         // </stream:stream>
)

// framer cuts an XMPP byte stream into top-level elements without building a
// DOM: a small state machine tracks tags, quotes, comments, CDATA and depth.
// It is only as strict as a load generator needs (servers send well-formed
// XML), and much cheaper than encoding/xml on the hot path.
type framer struct {
	r     *bufio.Reader
	buf   []byte
	depth int
	max   int // largest element accepted
}

func newFramer(r *bufio.Reader) *framer { return &framer{r: r, max: 1 << 20} }

var errTooLarge = errors.New("element too large")

// next returns the next frame. The returned slice is valid until the next call.
func (f *framer) next() (int, []byte, error) {
	f.buf = f.buf[:0]
	for {
		c, err := f.r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		if c != '<' {
			if f.depth >= 2 {
				f.buf = append(f.buf, c)
			}
			continue // text at stream level: whitespace keepalives
		}
		start := len(f.buf)
		if f.depth < 2 {
			f.buf = f.buf[:0]
			start = 0
		}
		f.buf = append(f.buf, c)
		c, err = f.r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		f.buf = append(f.buf, c)
		switch c {
		case '?': // processing instruction / XML declaration
			if err := f.until("?>"); err != nil {
				return 0, nil, err
			}
			if f.depth < 2 {
				f.buf = f.buf[:0]
			}
			continue
		case '!':
			if err := f.bang(); err != nil {
				return 0, nil, err
			}
			if f.depth < 2 {
				f.buf = f.buf[:0]
			}
			continue
		case '/': // end tag
			if err := f.until(">"); err != nil {
				return 0, nil, err
			}
			f.depth--
			switch {
			case f.depth <= 0:
				f.depth = 0
				return frameClose, f.buf[start:], nil
			case f.depth == 1:
				return frameStanza, f.buf, nil
			}
			continue
		}
		selfClosing, err := f.tag()
		if err != nil {
			return 0, nil, err
		}
		if selfClosing {
			if f.depth == 1 {
				return frameStanza, f.buf, nil
			}
			continue
		}
		f.depth++
		if f.depth == 1 {
			return frameOpen, f.buf, nil
		}
		if len(f.buf) > f.max {
			return 0, nil, errTooLarge
		}
	}
}

// tag reads the rest of a start tag, honouring quoted attribute values.
func (f *framer) tag() (selfClosing bool, err error) {
	var quote, prev byte
	for {
		c, err := f.r.ReadByte()
		if err != nil {
			return false, err
		}
		f.buf = append(f.buf, c)
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '>':
			return prev == '/', nil
		}
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			prev = c
		}
	}
}

// bang reads a comment, CDATA section or declaration after "<!".
func (f *framer) bang() error {
	c, err := f.r.ReadByte()
	if err != nil {
		return err
	}
	f.buf = append(f.buf, c)
	switch c {
	case '-':
		return f.until("-->")
	case '[':
		return f.until("]]>")
	}
	return f.until(">")
}

func (f *framer) until(end string) error {
	for {
		c, err := f.r.ReadByte()
		if err != nil {
			return err
		}
		f.buf = append(f.buf, c)
		if len(f.buf) > f.max {
			return errTooLarge
		}
		if c == end[len(end)-1] && bytes.HasSuffix(f.buf, []byte(end)) {
			return nil
		}
	}
}

// reset starts a new stream (after STARTTLS or SASL success).
func (f *framer) reset(r *bufio.Reader) {
	f.r = r
	f.depth = 0
	f.buf = f.buf[:0]
}

// Helpers over one element's bytes.

// elName returns the element's qualified name.
func elName(el []byte) string {
	i := 1
	for i < len(el) && el[i] != ' ' && el[i] != '>' && el[i] != '/' && el[i] != '\t' && el[i] != '\n' && el[i] != '\r' {
		i++
	}
	return string(el[1:i])
}

// startTag returns the element's own start tag.
func startTag(el []byte) []byte {
	var quote byte
	for i, c := range el {
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '>':
			return el[:i+1]
		}
	}
	return el
}

// attr returns the value of attribute name on the element's start tag.
func attr(el []byte, name string) string {
	t := startTag(el)
	for i := 0; i+len(name)+2 < len(t); {
		j := bytes.Index(t[i:], []byte(name))
		if j < 0 {
			return ""
		}
		j += i
		k := j + len(name)
		isSpace := func(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
		if j > 0 && isSpace(t[j-1]) {
			for k < len(t) && isSpace(t[k]) {
				k++
			}
			if k < len(t) && t[k] == '=' {
				k++
				for k < len(t) && isSpace(t[k]) {
					k++
				}
				if k < len(t) && (t[k] == '\'' || t[k] == '"') {
					q := t[k]
					e := bytes.IndexByte(t[k+1:], q)
					if e >= 0 {
						return unescape(string(t[k+1 : k+1+e]))
					}
				}
			}
		}
		i = j + len(name)
	}
	return ""
}

// childText returns the text of the first descendant element named name
// (matched as "<name" followed by a space, '>' or '/'), and whether it was found.
func childText(el []byte, name string) (string, bool) {
	off := len(startTag(el))
	for {
		i := bytes.Index(el[off:], []byte("<"+name))
		if i < 0 {
			return "", false
		}
		i += off
		k := i + 1 + len(name)
		if k >= len(el) {
			return "", false
		}
		if c := el[k]; c != ' ' && c != '>' && c != '/' && c != '\t' && c != '\n' {
			off = k
			continue
		}
		t := startTag(el[i:])
		if bytes.HasSuffix(t, []byte("/>")) {
			return "", true
		}
		body := el[i+len(t):]
		e := bytes.Index(body, []byte("</"+name))
		if e < 0 {
			return "", false
		}
		return unescape(string(body[:e])), true
	}
}

// hasChild reports whether the element contains "<name".
func hasChild(el []byte, name string) bool {
	_, ok := childText(el, name)
	return ok
}

// text returns the element's content between its start and end tags.
func text(el []byte) string {
	t := startTag(el)
	if bytes.HasSuffix(t, []byte("/>")) {
		return ""
	}
	rest := el[len(t):]
	e := bytes.LastIndex(rest, []byte("</"))
	if e < 0 {
		return ""
	}
	return unescape(string(rest[:e]))
}

var unescaper = strings.NewReplacer("&lt;", "<", "&gt;", ">", "&quot;", `"`, "&apos;", "'", "&amp;", "&")

func unescape(s string) string {
	if strings.IndexByte(s, '&') < 0 {
		return s
	}
	return unescaper.Replace(s)
}

var escaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&apos;")

func escape(s string) string { return escaper.Replace(s) }

// bareOf strips the resource from a JID.
func bareOf(j string) string {
	if i := strings.IndexByte(j, '/'); i >= 0 {
		return j[:i]
	}
	return j
}

// localOf returns the localpart of a JID.
func localOf(j string) string {
	if i := strings.IndexByte(j, '@'); i >= 0 {
		return j[:i]
	}
	return ""
}

func describe(el []byte) string {
	if len(el) > 300 {
		return fmt.Sprintf("%s...", el[:300])
	}
	return string(el)
}
