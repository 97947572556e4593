package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/sasl"
)

// Namespaces.
const (
	nsClient   = "jabber:client"
	nsStream   = "http://etherx.jabber.org/streams"
	nsStreams  = "urn:ietf:params:xml:ns:xmpp-streams"
	nsStanzas  = "urn:ietf:params:xml:ns:xmpp-stanzas"
	nsTLS      = "urn:ietf:params:xml:ns:xmpp-tls"
	nsSASL     = "urn:ietf:params:xml:ns:xmpp-sasl"
	nsBind     = "urn:ietf:params:xml:ns:xmpp-bind"
	nsSession  = "urn:ietf:params:xml:ns:xmpp-session"
	nsDiscoI   = "http://jabber.org/protocol/disco#info"
	nsDiscoIt  = "http://jabber.org/protocol/disco#items"
	nsRoster   = "jabber:iq:roster"
	nsPing     = "urn:xmpp:ping"
	nsCaps     = "http://jabber.org/protocol/caps"
	nsDataForm = "jabber:x:data"
	nsSASLCB   = "urn:xmpp:sasl-cb:0"
	nsSM       = "urn:xmpp:sm:3"
	nsCSI      = "urn:xmpp:csi:0"
	nsRosterV  = "urn:xmpp:features:rosterver"
	nsRegFeat  = "http://jabber.org/features/iq-register"
	nsRegister = "jabber:iq:register"
)

// element is a decoded XML element and its subtree.
type element struct {
	Name     xml.Name
	Attr     []xml.Attr
	Children []*element
	Text     string
}

func readElement(d *xml.Decoder, start xml.StartElement) (*element, error) {
	el := &element{Name: start.Name, Attr: start.Attr}
	for {
		tok, err := d.Token()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			c, err := readElement(d, t.Copy())
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

func (e *element) is(space, local string) bool {
	return e != nil && e.Name.Space == space && e.Name.Local == local
}

func (e *element) get(local string) string {
	if e == nil {
		return ""
	}
	for _, a := range e.Attr {
		if a.Name.Local == local && (a.Name.Space == "" || a.Name.Space == "xml" || a.Name.Space == "http://www.w3.org/XML/1998/namespace") {
			return a.Value
		}
	}
	return ""
}

func (e *element) child(space, local string) *element {
	if e == nil {
		return nil
	}
	for _, c := range e.Children {
		if c.is(space, local) {
			return c
		}
	}
	return nil
}

func (e *element) childrenNamed(space, local string) []*element {
	if e == nil {
		return nil
	}
	var out []*element
	for _, c := range e.Children {
		if c.is(space, local) {
			out = append(out, c)
		}
	}
	return out
}

// stanzaError returns the defined condition of an error stanza.
func (e *element) stanzaError() string {
	er := e.child(e.Name.Space, "error")
	if er == nil {
		return ""
	}
	for _, c := range er.Children {
		if c.Name.Space == nsStanzas && c.Name.Local != "text" {
			return c.Name.Local
		}
	}
	return "undefined-condition"
}

func (e *element) String() string {
	if e == nil {
		return "<nil>"
	}
	var b strings.Builder
	e.write(&b, "")
	return b.String()
}

func (e *element) write(b *strings.Builder, parentNS string) {
	b.WriteString("<" + e.Name.Local)
	if e.Name.Space != parentNS {
		b.WriteString(" xmlns='" + esc(e.Name.Space) + "'")
	}
	for _, a := range e.Attr {
		if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
			continue
		}
		name := a.Name.Local
		if a.Name.Space == "http://www.w3.org/XML/1998/namespace" {
			name = "xml:" + name
		}
		b.WriteString(" " + name + "='" + esc(a.Value) + "'")
	}
	if len(e.Children) == 0 && e.Text == "" {
		b.WriteString("/>")
		return
	}
	b.WriteString(">" + esc(e.Text))
	for _, c := range e.Children {
		c.write(b, e.Name.Space)
	}
	b.WriteString("</" + e.Name.Local + ">")
}

func esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return strings.ReplaceAll(b.String(), "'", "&#39;")
}

// streamHeader opens a client stream to domain.
func streamHeader(ns, domain string) string {
	return "<?xml version='1.0'?><stream:stream xmlns='" + ns + "' xmlns:stream='" + nsStream +
		"' to='" + esc(domain) + "' version='1.0' xml:lang='en'>"
}

// conn is one client stream. Before bind it is read synchronously; after
// bind a goroutine reads it, answers the server's own requests (ping,
// roster pushes) and hands IQ responses to their waiters and everything
// else to other.
type conn struct {
	domain  string
	timeout time.Duration
	tcp     net.Conn
	c       net.Conn // tcp, or TLS over it
	dec     *xml.Decoder
	tls     *tls.ConnectionState
	header  xml.StartElement

	wmu     sync.Mutex
	mu      sync.Mutex
	waiters map[string]chan *element
	other   chan *element
	done    chan struct{}
	endErr  error
	ids     atomic.Uint64
	handled atomic.Uint64 // stanzas received since the reader started (for XEP-0198 h)
}

func dial(addr, domain string, timeout time.Duration) (*conn, error) {
	tcp, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	return &conn{domain: domain, timeout: timeout, tcp: tcp, c: tcp}, nil
}

func (c *conn) Close() { _ = c.tcp.Close() }

func (c *conn) write(s string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.c.SetWriteDeadline(time.Now().Add(c.timeout))
	_, err := io.WriteString(c.c, s)
	return err
}

// open sends a stream header and returns the server's features.
func (c *conn) open(ns string) (*element, error) {
	if err := c.write(streamHeader(ns, c.domain)); err != nil {
		return nil, err
	}
	c.dec = xml.NewDecoder(bufio.NewReader(c.c))
	_ = c.c.SetReadDeadline(time.Now().Add(c.timeout))
	for {
		tok, err := c.dec.Token()
		if err != nil {
			return nil, fmt.Errorf("reading the stream header: %w", err)
		}
		if st, ok := tok.(xml.StartElement); ok {
			if !(st.Name.Space == nsStream && st.Name.Local == "stream") {
				return nil, fmt.Errorf("expected a stream header, got <%s xmlns='%s'>", st.Name.Local, st.Name.Space)
			}
			c.header = st.Copy()
			break
		}
	}
	if ns != nsClient {
		return nil, nil // component streams have no features
	}
	f, err := c.next()
	if err != nil {
		return nil, err
	}
	if !f.is(nsStream, "features") {
		return nil, fmt.Errorf("expected <stream:features/>, got %s", f)
	}
	return f, nil
}

// next reads the next top-level element synchronously.
func (c *conn) next() (*element, error) {
	_ = c.c.SetReadDeadline(time.Now().Add(c.timeout))
	defer func() { _ = c.c.SetReadDeadline(time.Time{}) }()
	for {
		tok, err := c.dec.Token()
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			el, err := readElement(c.dec, t.Copy())
			if err == nil && el.is(nsStream, "error") {
				return nil, streamErr(el)
			}
			return el, err
		case xml.EndElement:
			return nil, io.EOF
		}
	}
}

func streamErr(el *element) error {
	cond := "undefined-condition"
	text := ""
	for _, c := range el.Children {
		if c.Name.Space == nsStreams {
			if c.Name.Local == "text" {
				text = c.Text
			} else {
				cond = c.Name.Local
			}
		}
	}
	return fmt.Errorf("stream error %s %s", cond, text)
}

// startTLS negotiates STARTTLS and reopens the stream.
func (c *conn) startTLS(cfg *tls.Config) (*element, error) {
	if err := c.write("<starttls xmlns='" + nsTLS + "'/>"); err != nil {
		return nil, err
	}
	p, err := c.next()
	if err != nil {
		return nil, err
	}
	if !p.is(nsTLS, "proceed") {
		return nil, fmt.Errorf("expected <proceed/>, got %s", p)
	}
	if err := c.handshake(cfg); err != nil {
		return nil, err
	}
	return c.open(nsClient)
}

func (c *conn) handshake(cfg *tls.Config) error {
	tc := tls.Client(c.c, cfg)
	_ = tc.SetDeadline(time.Now().Add(c.timeout))
	if err := tc.Handshake(); err != nil {
		return fmt.Errorf("TLS handshake: %w", err)
	}
	_ = tc.SetDeadline(time.Time{})
	st := tc.ConnectionState()
	c.c, c.tls = tc, &st
	return nil
}

func mechanisms(features *element) []string {
	var out []string
	for _, m := range features.child(nsSASL, "mechanisms").childrenNamed(nsSASL, "mechanism") {
		out = append(out, strings.TrimSpace(m.Text))
	}
	return out
}

// saslMechanism maps a mechanism name to mellium's client side.
func saslMechanism(name string) (sasl.Mechanism, bool) {
	switch name {
	case "SCRAM-SHA-256-PLUS":
		return sasl.ScramSha256Plus, true
	case "SCRAM-SHA-256":
		return sasl.ScramSha256, true
	case "SCRAM-SHA-1-PLUS":
		return sasl.ScramSha1Plus, true
	case "SCRAM-SHA-1":
		return sasl.ScramSha1, true
	case "PLAIN":
		return sasl.Plain, true
	}
	return sasl.Mechanism{}, false
}

// errClientSide marks a mechanism this client could not start (nothing
// was sent).
var errClientSide = errors.New("client side")

// auth runs one SASL exchange; it returns the failure condition ("" on
// success, after which the stream is reopened and its features returned).
func (c *conn) auth(mech, user, pass string, offered []string) (string, *element, error) {
	m, ok := saslMechanism(mech)
	if !ok {
		return "", nil, fmt.Errorf("unsupported mechanism %s", mech)
	}
	opts := []sasl.Option{
		sasl.Credentials(func() ([]byte, []byte, []byte) { return []byte(user), []byte(pass), nil }),
		sasl.RemoteMechanisms(offered...),
	}
	if c.tls != nil {
		opts = append(opts, sasl.TLSState(*c.tls))
	}
	client := sasl.NewClient(m, opts...)
	more, resp, err := client.Step(nil)
	if err != nil {
		return "", nil, fmt.Errorf("%w: %v", errClientSide, err)
	}
	if err := c.write("<auth xmlns='" + nsSASL + "' mechanism='" + mech + "'>" + b64(resp) + "</auth>"); err != nil {
		return "", nil, err
	}
	for {
		el, err := c.next()
		if err != nil {
			return "", nil, fmt.Errorf("reading the SASL answer: %w", err)
		}
		switch {
		case el.is(nsSASL, "failure"):
			for _, ch := range el.Children {
				if ch.Name.Local != "text" {
					return ch.Name.Local, nil, nil
				}
			}
			return "failure", nil, nil
		case el.is(nsSASL, "challenge"), el.is(nsSASL, "success"):
			var data []byte
			if txt := strings.TrimSpace(el.Text); txt != "" && txt != "=" {
				if data, err = base64.StdEncoding.DecodeString(txt); err != nil {
					return "", nil, fmt.Errorf("bad base64 in %s", el)
				}
			}
			success := el.Name.Local == "success"
			if more || (success && len(data) > 0) {
				if more, resp, err = client.Step(data); err != nil {
					return "", nil, fmt.Errorf("SASL step: %w (server says %s)", err, el)
				}
			}
			if success {
				if more {
					return "", nil, errors.New("success before the mechanism finished")
				}
				f, err := c.open(nsClient)
				return "", f, err
			}
			if err := c.write("<response xmlns='" + nsSASL + "'>" + b64(resp) + "</response>"); err != nil {
				return "", nil, err
			}
		default:
			return "", nil, fmt.Errorf("unexpected element during SASL: %s", el)
		}
	}
}

func b64(b []byte) string {
	if len(b) == 0 {
		return "="
	}
	return base64.StdEncoding.EncodeToString(b)
}

// bind binds resource and starts the reader goroutine.
func (c *conn) bind(resource string) (string, error) {
	if err := c.write("<iq type='set' id='bind-1'><bind xmlns='" + nsBind + "'><resource>" + esc(resource) + "</resource></bind></iq>"); err != nil {
		return "", err
	}
	for {
		el, err := c.next()
		if err != nil {
			return "", err
		}
		if !el.is(nsClient, "iq") || el.get("id") != "bind-1" {
			continue
		}
		if el.get("type") != "result" {
			return "", fmt.Errorf("bind failed: %s", el)
		}
		j := el.child(nsBind, "bind").child(nsBind, "jid")
		if j == nil {
			return "", fmt.Errorf("bind result without a JID: %s", el)
		}
		c.waiters = map[string]chan *element{}
		c.other = make(chan *element, 1024)
		c.done = make(chan struct{})
		go c.read()
		return strings.TrimSpace(j.Text), nil
	}
}

func (c *conn) read() {
	defer close(c.done)
	for {
		tok, err := c.dec.Token()
		if err != nil {
			c.endErr = err
			return
		}
		switch t := tok.(type) {
		case xml.EndElement:
			c.endErr = io.EOF
			return
		case xml.StartElement:
			el, err := readElement(c.dec, t.Copy())
			if err != nil {
				c.endErr = err
				return
			}
			if el.is(nsStream, "error") {
				c.endErr = streamErr(el)
				return
			}
			if el.Name.Space == nsClient {
				c.handled.Add(1)
			}
			c.dispatch(el)
		}
	}
}

func (c *conn) dispatch(el *element) {
	if el.is(nsClient, "iq") {
		switch el.get("type") {
		case "result", "error":
			c.mu.Lock()
			w := c.waiters[el.get("id")]
			delete(c.waiters, el.get("id"))
			c.mu.Unlock()
			if w != nil {
				w <- el
				return
			}
		case "get", "set":
			// Answer the server: pings and roster pushes get a result,
			// anything else service-unavailable.
			to := ""
			if f := el.get("from"); f != "" {
				to = " to='" + esc(f) + "'"
			}
			if el.child(nsPing, "ping") != nil || el.child(nsRoster, "query") != nil {
				_ = c.write("<iq type='result' id='" + esc(el.get("id")) + "'" + to + "/>")
			} else {
				_ = c.write("<iq type='error' id='" + esc(el.get("id")) + "'" + to + "><error type='cancel'><service-unavailable xmlns='" + nsStanzas + "'/></error></iq>")
			}
		}
	}
	select {
	case c.other <- el:
	default: // nobody is looking: drop
	}
}

func (c *conn) newID(p string) string { return p + "-" + strconv.FormatUint(c.ids.Add(1), 10) }

// iq sends an IQ (format has one %s for the id) and waits for its answer.
func (c *conn) iq(format string, args ...any) (*element, error) {
	id := c.newID("c")
	w := make(chan *element, 1)
	c.mu.Lock()
	c.waiters[id] = w
	c.mu.Unlock()
	if err := c.write(fmt.Sprintf(format, append([]any{esc(id)}, args...)...)); err != nil {
		return nil, err
	}
	select {
	case el := <-w:
		return el, nil
	case <-c.done:
		return nil, fmt.Errorf("stream ended: %v", c.endErr)
	case <-time.After(c.timeout):
		return nil, fmt.Errorf("no answer within %v", c.timeout)
	}
}

// expect waits for an unsolicited element matching pred.
func (c *conn) expect(timeout time.Duration, pred func(*element) bool) (*element, error) {
	deadline := time.After(timeout)
	for {
		select {
		case el := <-c.other:
			if pred(el) {
				return el, nil
			}
		case <-c.done:
			return nil, fmt.Errorf("stream ended: %v", c.endErr)
		case <-deadline:
			return nil, fmt.Errorf("nothing within %v", timeout)
		}
	}
}

// alive pings the server and reports whether the stream still works.
func (c *conn) alive() error {
	r, err := c.iq("<iq type='get' id='%s' to='" + esc(c.domain) + "'><ping xmlns='" + nsPing + "'/></iq>")
	if err != nil {
		return err
	}
	if r.get("type") != "result" {
		return fmt.Errorf("ping answered %s", r)
	}
	return nil
}

// discoInfo is a disco#info result.
type discoInfo struct {
	Err        string // stanza error condition, or the transport error
	Identities []identity
	Features   map[string]bool
	Forms      []*element
	Raw        *element
}

type identity struct{ Category, Type, Lang, Name string }

func (d *discoInfo) has(f string) bool { return d != nil && d.Features[f] }

func (d *discoInfo) hasIdentity(cat, typ string) bool {
	if d == nil {
		return false
	}
	for _, i := range d.Identities {
		if i.Category == cat && i.Type == typ {
			return true
		}
	}
	return false
}

func (d *discoInfo) identityList() string {
	var s []string
	for _, i := range d.Identities {
		s = append(s, i.Category+"/"+i.Type)
	}
	return strings.Join(s, ", ")
}

func (c *conn) discoInfo(to, node string) *discoInfo {
	n := ""
	if node != "" {
		n = " node='" + esc(node) + "'"
	}
	tattr := ""
	if to != "" {
		tattr = " to='" + esc(to) + "'"
	}
	r, err := c.iq("<iq type='get' id='%s'" + tattr + "><query xmlns='" + nsDiscoI + "'" + n + "/></iq>")
	d := &discoInfo{Features: map[string]bool{}, Raw: r}
	if err != nil {
		d.Err = err.Error()
		return d
	}
	if r.get("type") != "result" {
		d.Err = r.stanzaError()
		return d
	}
	q := r.child(nsDiscoI, "query")
	if q == nil {
		d.Err = "result without <query/>"
		return d
	}
	for _, i := range q.childrenNamed(nsDiscoI, "identity") {
		d.Identities = append(d.Identities, identity{i.get("category"), i.get("type"), i.get("lang"), i.get("name")})
	}
	for _, f := range q.childrenNamed(nsDiscoI, "feature") {
		d.Features[f.get("var")] = true
	}
	d.Forms = q.childrenNamed(nsDataForm, "x")
	return d
}

type discoItem struct{ JID, Node, Name string }

func (c *conn) discoItems(to string) ([]discoItem, string) {
	r, err := c.iq("<iq type='get' id='%s' to='" + esc(to) + "'><query xmlns='" + nsDiscoIt + "'/></iq>")
	if err != nil {
		return nil, err.Error()
	}
	if r.get("type") != "result" {
		return nil, r.stanzaError()
	}
	var out []discoItem
	for _, i := range r.child(nsDiscoIt, "query").childrenNamed(nsDiscoIt, "item") {
		out = append(out, discoItem{i.get("jid"), i.get("node"), i.get("name")})
	}
	return out, ""
}

// formField returns the values of field v in form f.
func formField(f *element, v string) []string {
	for _, fl := range f.childrenNamed(nsDataForm, "field") {
		if fl.get("var") == v {
			var out []string
			for _, val := range fl.childrenNamed(nsDataForm, "value") {
				out = append(out, val.Text)
			}
			return out
		}
	}
	return nil
}

// capsString is the XEP-0115 §5.1 verification string of a disco#info.
func capsString(d *discoInfo) string {
	var b strings.Builder
	ids := append([]identity(nil), d.Identities...)
	sort.Slice(ids, func(i, j int) bool {
		a, c := ids[i], ids[j]
		if a.Category != c.Category {
			return a.Category < c.Category
		}
		if a.Type != c.Type {
			return a.Type < c.Type
		}
		if a.Lang != c.Lang {
			return a.Lang < c.Lang
		}
		return a.Name < c.Name
	})
	for _, i := range ids {
		b.WriteString(i.Category + "/" + i.Type + "/" + i.Lang + "/" + i.Name + "<")
	}
	var fs []string
	for f := range d.Features {
		fs = append(fs, f)
	}
	sort.Strings(fs)
	for _, f := range fs {
		b.WriteString(f + "<")
	}
	type form struct {
		typ    string
		fields [][]string // var, values...
	}
	var forms []form
	for _, x := range d.Forms {
		var fm form
		for _, fl := range x.childrenNamed(nsDataForm, "field") {
			var vals []string
			for _, v := range fl.childrenNamed(nsDataForm, "value") {
				vals = append(vals, v.Text)
			}
			if fl.get("var") == "FORM_TYPE" {
				if len(vals) > 0 {
					fm.typ = vals[0]
				}
				continue
			}
			sort.Strings(vals)
			fm.fields = append(fm.fields, append([]string{fl.get("var")}, vals...))
		}
		sort.Slice(fm.fields, func(i, j int) bool { return fm.fields[i][0] < fm.fields[j][0] })
		forms = append(forms, fm)
	}
	sort.Slice(forms, func(i, j int) bool { return forms[i].typ < forms[j].typ })
	for _, fm := range forms {
		b.WriteString(fm.typ + "<")
		for _, fl := range fm.fields {
			for _, v := range fl {
				b.WriteString(v + "<")
			}
		}
	}
	return b.String()
}

// loadPool reads PEM certificates to trust; "" means the system roots.
func loadPool(pem []byte) (*x509.CertPool, error) {
	if pem == nil {
		return nil, nil
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(pem) {
		return nil, errors.New("no PEM certificate in the CA file")
	}
	return p, nil
}
