package mam

import (
	"context"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/sasl"

	"github.com/imppd/imppd/core"
	"github.com/imppd/imppd/rosters"
	"github.com/imppd/imppd/rosters/rosterstest"
	"github.com/imppd/imppd/xmppmap"
	"github.com/imppd/imppd/xmppmap/scram"
)

// ---------------------------------------------------------------------
// The query form, parsed.

func mustParse(t *testing.T, s string) *xmppmap.Element {
	t.Helper()
	el, err := xmppmap.ParseElement([]byte(s), 16)
	if err != nil {
		t.Fatalf("parse %s: %v", s, err)
	}
	return el
}

func TestParseQuery(t *testing.T) {
	stamp := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	form := func(ns string, fields ...string) string {
		b := "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>" + ns + "</value></field>"
		for i := 0; i+1 < len(fields); i += 2 {
			b += "<field var='" + fields[i] + "'><value>" + fields[i+1] + "</value></field>"
		}
		return b + "</x>"
	}
	for _, tc := range []struct {
		name, ns, query string
		want            core.ArchiveQuery
		cond            string // expected error condition; "" for none
	}{
		{name: "empty mam:2 query", ns: NS2, query: "<query xmlns='urn:xmpp:mam:2'/>", want: core.ArchiveQuery{Max: defaultMax}},
		{name: "mam:2 form", ns: NS2, query: "<query xmlns='urn:xmpp:mam:2'>" + form(NS2, "with", "juliet@capulet.lit", "start", "2010-06-07T00:00:00Z", "end", "2010-07-07T13:23:54Z") + "</query>",
			want: core.ArchiveQuery{Max: defaultMax, With: "juliet@capulet.lit", Start: stamp("2010-06-07T00:00:00Z"), End: stamp("2010-07-07T13:23:54Z")}},
		{name: "mam:0 form", ns: NS0, query: "<query xmlns='urn:xmpp:mam:0' queryid='f27'>" + form(NS0, "with", "juliet@capulet.lit/balcony") + "<set xmlns='http://jabber.org/protocol/rsm'><max>10</max><after>09af3-cc343-b409f</after></set></query>",
			want: core.ArchiveQuery{Max: 10, With: "juliet@capulet.lit/balcony", AfterID: "09af3-cc343-b409f"}},
		{name: "mam:0 with the filters of XEP-0313 0.2", ns: NS0, query: "<query xmlns='urn:xmpp:mam:0'><with>juliet@capulet.lit</with><start>2010-08-07T00:00:00Z</start><end> 2010-08-08T00:00:00Z </end></query>",
			want: core.ArchiveQuery{Max: defaultMax, With: "juliet@capulet.lit", Start: stamp("2010-08-07T00:00:00Z"), End: stamp("2010-08-08T00:00:00Z")}},
		{name: "XEP-0313 0.2 filters are not mam:2 syntax", ns: NS2, query: "<query xmlns='urn:xmpp:mam:2'><with>juliet@capulet.lit</with></query>",
			want: core.ArchiveQuery{Max: defaultMax}},
		{name: "mam:0 bad legacy start", ns: NS0, query: "<query xmlns='urn:xmpp:mam:0'><start>yesterday</start></query>", cond: "bad-request"},
		{name: "mam:0 query with a mam:2 form", ns: NS0, query: "<query xmlns='urn:xmpp:mam:0'>" + form(NS2) + "</query>", cond: "bad-request"},
		{name: "mam:2 query with a mam:0 form", ns: NS2, query: "<query xmlns='urn:xmpp:mam:2'>" + form(NS0) + "</query>", cond: "bad-request"},
		{name: "unknown field", ns: NS1, query: "<query xmlns='urn:xmpp:mam:1'>" + form(NS1, "full-text-search", "x") + "</query>", cond: "feature-not-implemented"},
		{name: "bad JID", ns: NS1, query: "<query xmlns='urn:xmpp:mam:1'>" + form(NS1, "with", "@@") + "</query>", cond: "bad-request"},
		{name: "before, last page", ns: NS2, query: "<query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><max>1000</max><before/></set></query>",
			want: core.ArchiveQuery{Max: maxMax, Last: true}},
		{name: "extended: before-id", ns: NS2, query: "<query xmlns='urn:xmpp:mam:2'>" + form(NS2, "before-id", "b") + "</query>",
			want: core.ArchiveQuery{Max: defaultMax, BeforeID: "b", Last: true}},
		{name: "negative max", ns: NS2, query: "<query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><max>-1</max></set></query>", cond: "bad-request"},
		{name: "RSM index", ns: NS0, query: "<query xmlns='urn:xmpp:mam:0'><set xmlns='http://jabber.org/protocol/rsm'><index>3</index></set></query>", cond: "feature-not-implemented"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseQuery(mustParse(t, tc.query), tc.ns)
			if tc.cond != "" {
				if err == nil || string(err.Condition) != tc.cond {
					t.Fatalf("got %+v, error %v; want %s", got, err, tc.cond)
				}
				return
			}
			if err != nil {
				t.Fatalf("error %v", err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestFin(t *testing.T) {
	page := core.ArchivePage{Entries: []core.ArchiveEntry{{ID: "a"}, {ID: "b"}}, Complete: true, Count: 7}
	if got, want := finElement(NS0, "q1", page).String(), "<fin xmlns='urn:xmpp:mam:0' queryid='q1' complete='true'><set xmlns='http://jabber.org/protocol/rsm'><first>a</first><last>b</last><count>7</count></set></fin>"; got != want {
		t.Errorf("mam:0 fin:\n got %s\nwant %s", got, want)
	}
	// mam:2's <fin/> is in the IQ result: it names no query.
	if got, want := finElement(NS2, "q1", core.ArchivePage{}).String(), "<fin xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><count>0</count></set></fin>"; got != want {
		t.Errorf("mam:2 fin:\n got %s\nwant %s", got, want)
	}
}

// ---------------------------------------------------------------------
// Queries over a real stream, in process: a server on a loopback port with
// an in-memory account store and archive.

// memArchive is an in-memory Store with the semantics of db's.
type memArchive struct {
	mu      sync.Mutex
	entries []core.ArchiveEntry // in order of arrival
	prefs   map[core.PrincipalID]core.ArchivePrefs
}

func (a *memArchive) AppendArchive(_ context.Context, es []core.ArchiveEntry) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.entries = append(a.entries, es...)
	return nil
}

func (a *memArchive) QueryArchive(_ context.Context, q core.ArchiveQuery) (core.ArchivePage, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var own []core.ArchiveEntry
	for _, e := range a.entries {
		if e.Owner == q.Owner {
			own = append(own, e)
		}
	}
	pos := func(id string) int {
		return slices.IndexFunc(own, func(e core.ArchiveEntry) bool { return e.ID == id })
	}
	after, before := -1, len(own)
	if q.AfterID != "" {
		if after = pos(q.AfterID); after < 0 {
			return core.ArchivePage{Complete: true}, core.ErrNoSuchEntry
		}
	}
	if q.BeforeID != "" {
		if before = pos(q.BeforeID); before < 0 {
			return core.ArchivePage{Complete: true}, core.ErrNoSuchEntry
		}
	}
	var page core.ArchivePage
	var match []core.ArchiveEntry
	for i, e := range own {
		bare, _, _ := strings.Cut(string(e.With), "/")
		switch {
		case q.With != "" && string(q.With) != string(e.With) && string(q.With) != bare,
			!q.Start.IsZero() && e.Stamp.Before(q.Start), !q.End.IsZero() && e.Stamp.After(q.End),
			len(q.IDs) > 0 && !slices.Contains(q.IDs, e.ID):
			continue
		}
		page.Count++
		if i > after && i < before {
			match = append(match, e)
		}
	}
	page.Complete = len(match) <= q.Max
	switch {
	case page.Complete:
	case q.Last:
		match = match[len(match)-q.Max:]
	default:
		match = match[:q.Max]
	}
	page.Entries = match
	return page, nil
}

func (a *memArchive) ArchivePrefs(_ context.Context, o core.PrincipalID) (core.ArchivePrefs, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if p, ok := a.prefs[o]; ok {
		return p, nil
	}
	return core.ArchivePrefs{Default: "always"}, nil
}

func (a *memArchive) SetArchivePrefs(_ context.Context, o core.PrincipalID, p core.ArchivePrefs) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.prefs[o] = p
	return nil
}

func (a *memArchive) PruneArchive(context.Context, time.Time) (int64, error) { return 0, nil }

// node is a received element.
type node struct {
	XMLName  xml.Name
	Attrs    []xml.Attr `xml:",any,attr"`
	Children []node     `xml:",any"`
	Text     string     `xml:",chardata"`
}

func (n *node) get(name string) string {
	for _, a := range n.Attrs {
		if a.Name.Local == name && a.Name.Space == "" {
			return a.Value
		}
	}
	return ""
}

func (n *node) child(space, local string) *node {
	for i := range n.Children {
		if c := &n.Children[i]; c.XMLName.Space == space && c.XMLName.Local == local {
			return c
		}
	}
	return nil
}

func (n *node) path(steps ...string) *node {
	for i := 0; n != nil && i+1 < len(steps); i += 2 {
		n = n.child(steps[i], steps[i+1])
	}
	return n
}

func (n *node) String() string {
	b, _ := xml.Marshal(n)
	return string(b)
}

// client is a bound client stream.
type client struct {
	t    *testing.T
	conn net.Conn
	dec  *xml.Decoder
}

func (c *client) send(s string) {
	c.t.Helper()
	_ = c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// next returns the next top-level element (stream headers skipped).
func (c *client) next() *node {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		tok, err := c.dec.Token()
		if err != nil {
			c.t.Fatalf("read: %v", err)
		}
		st, ok := tok.(xml.StartElement)
		if !ok || st.Name.Local == "stream" {
			continue
		}
		var n node
		if err := c.dec.DecodeElement(&n, &st); err != nil {
			c.t.Fatalf("read: %v", err)
		}
		return &n
	}
}

const (
	nsStreams = "http://etherx.jabber.org/streams"
	nsSASL    = "urn:ietf:params:xml:ns:xmpp-sasl"
	nsClient  = "jabber:client"
)

func (c *client) open() *node {
	c.send("<stream:stream xmlns='jabber:client' xmlns:stream='" + nsStreams + "' to='localhost' version='1.0'>")
	f := c.next()
	if f.XMLName.Local != "features" {
		c.t.Fatalf("expected features, got %s", f)
	}
	return f
}

// login authenticates user with SCRAM-SHA-256 and binds resource.
func login(t *testing.T, addr, user, password, resource string) *client {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &client{t: t, conn: conn, dec: xml.NewDecoder(conn)}
	f := c.open()
	var mechs []string
	for _, m := range f.path(nsSASL, "mechanisms").Children {
		mechs = append(mechs, m.Text)
	}
	sc := sasl.NewClient(sasl.ScramSha256, sasl.Credentials(func() ([]byte, []byte, []byte) { return []byte(user), []byte(password), nil }),
		sasl.RemoteMechanisms(mechs...))
	_, resp, err := sc.Step(nil)
	if err != nil {
		t.Fatal(err)
	}
	c.send("<auth xmlns='" + nsSASL + "' mechanism='SCRAM-SHA-256'>" + base64.StdEncoding.EncodeToString(resp) + "</auth>")
	for done := false; !done; {
		el := c.next()
		data, _ := base64.StdEncoding.DecodeString(el.Text)
		switch el.XMLName.Local {
		case "challenge":
			if _, resp, err = sc.Step(data); err != nil {
				t.Fatal(err)
			}
			c.send("<response xmlns='" + nsSASL + "'>" + base64.StdEncoding.EncodeToString(resp) + "</response>")
		case "success":
			if _, _, err = sc.Step(data); err != nil {
				t.Fatal(err)
			}
			done = true
		default:
			t.Fatalf("SASL: %s", el)
		}
	}
	c.open()
	c.send("<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>" + resource + "</resource></bind></iq>")
	if el := c.next(); el.get("type") != "result" {
		t.Fatalf("bind: %s", el)
	}
	return c
}

// startServer serves localhost with the accounts alice and bob and the
// archive module over arch.
func startServer(t *testing.T, arch *memArchive) (addr string, m *Module) {
	t.Helper()
	st := rosterstest.New()
	for _, u := range []core.PrincipalID{"alice@localhost", "bob@localhost"} {
		creds, err := scram.NewCredentials("pw", 4096)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.CreateAccount(t.Context(), core.Account{ID: u, Credentials: creds}); err != nil {
			t.Fatal(err)
		}
	}
	engine := core.New(core.Config{Store: st})
	srv, err := xmppmap.New(xmppmap.Config{Domains: []string{"localhost"}, ScramIterations: 4096}, engine, rosters.New(engine, nil), st,
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	m = New(arch, 0, nil)
	srv.Use(m)
	a, err := srv.Listen("127.0.0.1:0", false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return a.String(), m
}

// archived returns n entries in alice's archive, with bob, one a minute.
func archived(n int) []core.ArchiveEntry {
	t0 := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	var out []core.ArchiveEntry
	for i := 1; i <= n; i++ {
		out = append(out, core.ArchiveEntry{Owner: "alice@localhost", ID: fmt.Sprintf("id-%d", i), With: "bob@localhost/phone",
			Stamp:   t0.Add(time.Duration(i) * time.Minute),
			Payload: []byte(fmt.Sprintf("<message from='bob@localhost/phone' to='alice@localhost' type='chat'><body>m%d</body></message>", i))})
	}
	return out
}

// result checks that el is an archive result of query qid in ns and
// returns the forwarded body.
func result(t *testing.T, el *node, ns, qid string) string {
	t.Helper()
	r := el.child(ns, "result")
	if el.XMLName.Local != "message" || r == nil || r.get("queryid") != qid || r.get("id") == "" {
		t.Fatalf("expected a %s result of query %s: %s", ns, qid, el)
	}
	fw := r.child("urn:xmpp:forward:0", "forwarded")
	body := fw.path(nsClient, "message", nsClient, "body")
	if fw.child("urn:xmpp:delay", "delay") == nil || body == nil {
		t.Fatalf("result without delay or jabber:client message: %s", el)
	}
	return body.Text
}

// TestMAM0 runs queries in the legacy namespace as Conversations sends
// them when a server offers only mam:0: the IQ is answered first, the
// results follow, and a message with <fin/> ends the query.
func TestMAM0(t *testing.T) {
	arch := &memArchive{prefs: map[core.PrincipalID]core.ArchivePrefs{}}
	arch.entries = archived(5)
	addr, _ := startServer(t, arch)
	alice := login(t, addr, "alice", "pw", "conversations")
	q0 := func(id, qid, inner string) {
		alice.send("<iq type='set' id='" + id + "'><query xmlns='urn:xmpp:mam:0' queryid='" + qid + "'>" + inner + "</query></iq>")
	}
	form := "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:0</value></field>" +
		"<field var='with'><value>bob@localhost</value></field></x>"
	// read collects what answers a mam:0 query: the IQ result, the bodies
	// and the <fin/> message.
	read := func(id, qid string) (bodies []string, fin *node) {
		t.Helper()
		iq := alice.next()
		if iq.XMLName.Local != "iq" || iq.get("id") != id || iq.get("type") != "result" || len(iq.Children) != 0 {
			t.Fatalf("query %s: expected an empty IQ result first, got %s", id, iq)
		}
		for {
			el := alice.next()
			if f := el.child(NS0, "fin"); el.XMLName.Local == "message" && f != nil {
				if f.get("queryid") != qid || el.get("to") != "alice@localhost/conversations" {
					t.Fatalf("fin message: %s", el)
				}
				return bodies, f
			}
			bodies = append(bodies, result(t, el, NS0, qid))
		}
	}
	rsm := func(f *node, name string) string {
		if n := f.path("http://jabber.org/protocol/rsm", "set", "http://jabber.org/protocol/rsm", name); n != nil {
			return n.Text
		}
		return ""
	}

	q0("all", "q-all", form)
	bodies, fin := read("all", "q-all")
	if strings.Join(bodies, " ") != "m1 m2 m3 m4 m5" || fin.get("complete") != "true" || rsm(fin, "count") != "5" ||
		rsm(fin, "first") != "id-1" || rsm(fin, "last") != "id-5" {
		t.Fatalf("all: %q %s", bodies, fin)
	}
	// Paging forwards the way Conversations does: after the last id.
	q0("p1", "q-p1", form+"<set xmlns='http://jabber.org/protocol/rsm'><max>3</max></set>")
	bodies, fin = read("p1", "q-p1")
	if strings.Join(bodies, " ") != "m1 m2 m3" || fin.get("complete") != "" || rsm(fin, "last") != "id-3" {
		t.Fatalf("page 1: %q %s", bodies, fin)
	}
	q0("p2", "q-p2", form+"<set xmlns='http://jabber.org/protocol/rsm'><max>3</max><after>id-3</after></set>")
	if bodies, fin = read("p2", "q-p2"); strings.Join(bodies, " ") != "m4 m5" || fin.get("complete") != "true" {
		t.Fatalf("page 2: %q %s", bodies, fin)
	}
	// Backwards from the end, as Conversations loads history.
	q0("back", "q-back", "<set xmlns='http://jabber.org/protocol/rsm'><max>2</max><before/></set>")
	if bodies, fin = read("back", "q-back"); strings.Join(bodies, " ") != "m4 m5" || rsm(fin, "first") != "id-4" {
		t.Fatalf("last page: %q %s", bodies, fin)
	}
	// XEP-0313 0.2's filters as children of <query/>.
	q0("legacy", "q-legacy", "<with>carol@localhost</with>")
	if bodies, fin = read("legacy", "q-legacy"); len(bodies) != 0 || rsm(fin, "count") != "0" || fin.get("complete") != "true" {
		t.Fatalf("legacy with: %q %s", bodies, fin)
	}
	q0("legacy2", "q-legacy2", "<start>2024-05-01T12:04:00Z</start>")
	if bodies, _ = read("legacy2", "q-legacy2"); strings.Join(bodies, " ") != "m4 m5" {
		t.Fatalf("legacy start: %q", bodies)
	}
	// Errors come in the IQ, with no result and no <fin/> message.
	q0("stale", "q-stale", "<set xmlns='http://jabber.org/protocol/rsm'><after>nope</after></set>")
	q0("badform", "q-bad", "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:xmpp:mam:2</value></field></x>")
	for _, want := range [][2]string{{"stale", "item-not-found"}, {"badform", "bad-request"}} {
		el := alice.next()
		if el.XMLName.Local != "iq" || el.get("id") != want[0] || el.get("type") != "error" || el.path(nsClient, "error", "urn:ietf:params:xml:ns:xmpp-stanzas", want[1]) == nil {
			t.Fatalf("expected %s for %s, got %s", want[1], want[0], el)
		}
	}
	// The query form and the preferences in mam:0.
	alice.send("<iq type='get' id='form'><query xmlns='urn:xmpp:mam:0'/></iq>")
	el := alice.next()
	x := el.path(NS0, "query", "jabber:x:data", "x")
	if el.get("type") != "result" || x == nil || len(x.Children) != 4 || x.Children[0].path("jabber:x:data", "value").Text != NS0 {
		t.Fatalf("form: %s", el)
	}
	alice.send("<iq type='set' id='prefs'><prefs xmlns='urn:xmpp:mam:0' default='roster'><always><jid>bob@localhost</jid></always><never/></prefs></iq>")
	if el := alice.next(); el.get("type") != "result" || el.path(NS0, "prefs").get("default") != "roster" ||
		el.path(NS0, "prefs", NS0, "always", NS0, "jid").Text != "bob@localhost" {
		t.Fatalf("prefs: %s", el)
	}
}

// TestMAM2Fin: in mam:2 the results come first and the IQ result carries
// <fin/>; a message sent in the session is in the archive when the next
// query runs.
func TestMAM2Fin(t *testing.T) {
	arch := &memArchive{prefs: map[core.PrincipalID]core.ArchivePrefs{}}
	arch.entries = archived(2)
	addr, _ := startServer(t, arch)
	alice := login(t, addr, "alice", "pw", "gajim")
	alice.send("<message to='bob@localhost' type='chat' id='x'><body>m3</body></message>")
	alice.send("<iq type='set' id='q'><query xmlns='urn:xmpp:mam:2' queryid='qq'/></iq>")
	var bodies []string
	for {
		el := alice.next()
		if el.XMLName.Local == "iq" {
			fin := el.child(NS2, "fin")
			if el.get("id") != "q" || el.get("type") != "result" || fin == nil || fin.get("queryid") != "" || fin.get("complete") != "true" {
				t.Fatalf("IQ result: %s", el)
			}
			break
		}
		if el.XMLName.Local == "message" && el.child(NS2, "result") != nil {
			bodies = append(bodies, result(t, el, NS2, "qq"))
		}
	}
	if strings.Join(bodies, " ") != "m1 m2 m3" {
		t.Fatalf("bodies %q", bodies)
	}
	alice.send("<iq type='get' id='form'><query xmlns='urn:xmpp:mam:2'/></iq>")
	el := alice.next()
	if x := el.path(NS2, "query", "jabber:x:data", "x"); x == nil || len(x.Children) != 7 {
		t.Fatalf("mam:2 form with the extended fields: %s", el)
	}
}
