package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/imppd/imppd/e2e/internal/xmltest"
)

// Namespaces (and xmltest's).
const (
	nsDiscoI   = "http://jabber.org/protocol/disco#info"
	nsDiscoIt  = "http://jabber.org/protocol/disco#items"
	nsCaps     = "http://jabber.org/protocol/caps"
	nsDataForm = "jabber:x:data"
	nsSASLCB   = "urn:xmpp:sasl-cb:0"
	nsSM       = "urn:xmpp:sm:3"
	nsCSI      = "urn:xmpp:csi:0"
	nsRosterV  = "urn:xmpp:features:rosterver"
	nsRegFeat  = "http://jabber.org/features/iq-register"
	nsRegister = "jabber:iq:register"
)

type element = xmltest.Element

var esc = xmltest.Esc

// stanzaError returns the defined condition of an error stanza.
func stanzaError(e *element) string {
	_, cond, ok := e.StanzaError()
	if ok && cond == "" {
		return "undefined-condition"
	}
	return cond
}

// conn is one client stream. Before bind it is read synchronously; after
// bind a goroutine reads it, answers the server's own requests (ping,
// roster pushes) and hands IQ responses to their waiters and everything
// else to other.
type conn struct {
	*xmltest.Stream

	mu      sync.Mutex
	waiters map[string]chan *element
	other   chan *element
	done    chan struct{}
	endErr  error
	ids     atomic.Uint64
	handled atomic.Uint64 // stanzas received since the reader started (for XEP-0198 h)
}

func dial(addr, domain string, timeout time.Duration) (*conn, error) {
	s, err := xmltest.Dial(addr, domain, timeout)
	if err != nil {
		return nil, err
	}
	s.StreamErrors = true
	return &conn{Stream: s}, nil
}

// tls is the TLS connection state (zero before TLS).
func (c *conn) tls() tls.ConnectionState {
	st, _ := c.TLSState()
	return st
}

// bind binds resource and starts the reader goroutine.
func (c *conn) bind(resource string) (string, error) {
	j, err := c.Bind(resource)
	if err != nil {
		return "", err
	}
	c.waiters = map[string]chan *element{}
	c.other = make(chan *element, 1024)
	c.done = make(chan struct{})
	go c.read()
	return j, nil
}

func (c *conn) read() {
	defer close(c.done)
	for {
		el, err := c.NextElement()
		if err != nil {
			c.endErr = err
			return
		}
		if el.Name.Space == xmltest.NSClient {
			c.handled.Add(1)
		}
		c.dispatch(el)
	}
}

func (c *conn) dispatch(el *element) {
	if el.Is(xmltest.NSClient, "iq") {
		switch el.Get("type") {
		case "result", "error":
			c.mu.Lock()
			w := c.waiters[el.Get("id")]
			delete(c.waiters, el.Get("id"))
			c.mu.Unlock()
			if w != nil {
				w <- el
				return
			}
		case "get", "set":
			// Answer the server: pings and roster pushes get a result,
			// anything else service-unavailable.
			to := ""
			if f := el.Get("from"); f != "" {
				to = " to='" + esc(f) + "'"
			}
			if el.Child(xmltest.NSPing, "ping") != nil || el.Child(xmltest.NSRoster, "query") != nil {
				_ = c.WriteString("<iq type='result' id='" + esc(el.Get("id")) + "'" + to + "/>")
			} else {
				_ = c.WriteString("<iq type='error' id='" + esc(el.Get("id")) + "'" + to + "><error type='cancel'><service-unavailable xmlns='" + xmltest.NSStanzas + "'/></error></iq>")
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
	if err := c.WriteString(fmt.Sprintf(format, append([]any{esc(id)}, args...)...)); err != nil {
		return nil, err
	}
	select {
	case el := <-w:
		return el, nil
	case <-c.done:
		return nil, fmt.Errorf("stream ended: %v", c.endErr)
	case <-time.After(c.Timeout):
		return nil, fmt.Errorf("no answer within %v", c.Timeout)
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
	r, err := c.iq("<iq type='get' id='%s' to='" + esc(c.Domain) + "'><ping xmlns='" + xmltest.NSPing + "'/></iq>")
	if err != nil {
		return err
	}
	if r.Get("type") != "result" {
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
	if r.Get("type") != "result" {
		d.Err = stanzaError(r)
		return d
	}
	q := r.Child(nsDiscoI, "query")
	if q == nil {
		d.Err = "result without <query/>"
		return d
	}
	for _, i := range q.ChildrenNamed(nsDiscoI, "identity") {
		d.Identities = append(d.Identities, identity{i.Get("category"), i.Get("type"), i.Lang(), i.Get("name")})
	}
	for _, f := range q.ChildrenNamed(nsDiscoI, "feature") {
		d.Features[f.Get("var")] = true
	}
	d.Forms = q.ChildrenNamed(nsDataForm, "x")
	return d
}

type discoItem struct{ JID, Node, Name string }

func (c *conn) discoItems(to string) ([]discoItem, string) {
	r, err := c.iq("<iq type='get' id='%s' to='" + esc(to) + "'><query xmlns='" + nsDiscoIt + "'/></iq>")
	if err != nil {
		return nil, err.Error()
	}
	if r.Get("type") != "result" {
		return nil, stanzaError(r)
	}
	var out []discoItem
	for _, i := range r.Child(nsDiscoIt, "query").ChildrenNamed(nsDiscoIt, "item") {
		out = append(out, discoItem{i.Get("jid"), i.Get("node"), i.Get("name")})
	}
	return out, ""
}

// formField returns the values of field v in form f.
func formField(f *element, v string) []string {
	for _, fl := range f.ChildrenNamed(nsDataForm, "field") {
		if fl.Get("var") == v {
			var out []string
			for _, val := range fl.ChildrenNamed(nsDataForm, "value") {
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
		for _, fl := range x.ChildrenNamed(nsDataForm, "field") {
			var vals []string
			for _, v := range fl.ChildrenNamed(nsDataForm, "value") {
				vals = append(vals, v.Text)
			}
			if fl.Get("var") == "FORM_TYPE" {
				if len(vals) > 0 {
					fm.typ = vals[0]
				}
				continue
			}
			sort.Strings(vals)
			fm.fields = append(fm.fields, append([]string{fl.Get("var")}, vals...))
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
