// Package caps implements XEP-0115: Entity Capabilities.
//
// For the server: its <c/> in the stream features after authentication,
// with the verification string of its disco#info, and disco#info answered
// at the node#ver node it names.
//
// For clients: a cache of what each session advertised. When a client's
// available presence carries <c/>, its verification string is looked up in
// a global cache; if it is not there, the server asks the client's full
// JID for disco#info at node#ver and verifies the answer (§5.4). Only a
// verified answer enters the global cache; an unverifiable one, an answer
// for an unsupported hash or for a legacy <c/> (no 'hash') describes that
// session only. XEP-0163 ("+notify" features) reads the result through
// Features, Has and OnChange.
package caps

import (
	"crypto/sha1" // #nosec: XEP-0115's mandatory hash; not a security use
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"hash"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/imppd/imppd/xmppmap"
	"github.com/imppd/imppd/xmppmap/disco"
)

const (
	NS   = "http://jabber.org/protocol/caps"
	Node = "https://imppd.invalid/caps"

	nsData = "jabber:x:data"
	nsXML  = "http://www.w3.org/XML/1998/namespace"

	// Bounds of the global cache: entries, and bytes of features.
	maxCacheEntries = 4096
	maxCacheBytes   = 8 << 20
	// queryTimeout is how long a client has to answer disco#info.
	queryTimeout = 30 * time.Second
)

// hashes are the hash functions accepted in a <c/> 'hash' attribute, by
// their IANA names (XEP-0115 §5.1 step 9; sha-1 is mandatory).
var hashes = map[string]func() hash.Hash{
	"sha-1":   sha1.New,
	"sha-224": sha256.New224,
	"sha-256": sha256.New,
	"sha-384": sha512.New384,
	"sha-512": sha512.New,
}

// Module advertises the server's capabilities and caches its clients'.
// Register it after every module whose features it must cover.
type Module struct {
	disco   *disco.Module
	timeout time.Duration

	mu       sync.Mutex
	cache    map[string][]string // verified: hash+" "+ver → sorted features
	order    []string            // cache keys, oldest first (evicted first)
	bytes    int                 // of the cached features
	clients  map[string]*client  // by full JID
	inflight map[string][]xmppmap.Session
	hooks    []func(xmppmap.Session, []string)
}

// client is what one session advertised.
type client struct {
	s               xmppmap.Session
	hash, node, ver string   // of its last <c/>
	features        []string // sorted; nil while unknown
}

func New(d *disco.Module) *Module {
	return &Module{disco: d, timeout: queryTimeout,
		cache: map[string][]string{}, clients: map[string]*client{}, inflight: map[string][]xmppmap.Session{}}
}

func (m *Module) XEP() xmppmap.XEP {
	return xmppmap.XEP{Number: 115, Title: "Entity Capabilities", Version: "1.6.0",
		Status: "complete: the server's own capabilities; clients' verified (SHA-1, SHA-2) and cached, legacy format and unknown hashes per session"}
}

func (m *Module) Register(s *xmppmap.Server) {
	info := disco.ServerInfo(s)
	ver := Ver(info)
	s.StreamFeature("<c xmlns='" + NS + "' hash='sha-1' node='" + Node + "' ver='" + ver + "'/>")
	m.disco.Node(Node+"#"+ver, func(*xmppmap.IQ) *disco.NodeInfo { return disco.ServerInfo(s) })
	s.OnPresence(m.presence)
	s.OnSessionEnd(m.end)
}

// Features returns the features the session full advertised, or nil if
// not known (yet). The slice is sorted and shared: do not modify it.
//
// A presence without <c/> after one with it keeps the features known
// (clients omit it sometimes); a new 'ver' keeps the previous features
// until the new ones are known, and if they cannot be learnt.
func (m *Module) Features(full string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c := m.clients[full]; c != nil {
		return c.features
	}
	return nil
}

// Has reports whether the session advertised feature.
func (m *Module) Has(full, feature string) bool {
	_, ok := slices.BinarySearch(m.Features(full), feature)
	return ok
}

// OnChange adds f, called when a session's advertised features become
// known or change (at once when the ver was cached; after the disco#info
// answer otherwise). May run on any goroutine; features is shared, not to
// be modified. Calls for one session may race each other: Features has the
// latest. Add hooks before the server serves.
func (m *Module) OnChange(f func(s xmppmap.Session, features []string)) {
	m.hooks = append(m.hooks, f)
}

// action is what to do once m.mu is released: tell the hooks, or ask a
// client for its disco#info.
type action struct {
	s               xmppmap.Session
	notify          []string // features to announce, when changed
	changed         bool
	query           bool
	shared          bool // the query fills the global cache and answers inflight
	hash, node, ver string
}

func (m *Module) run(as []action) {
	for _, a := range as {
		switch {
		case a.changed:
			for _, f := range m.hooks {
				f(a.s, a.notify)
			}
		case a.query:
			m.query(a)
		}
	}
}

func cacheKey(hash, ver string) string { return hash + " " + ver }

// presence looks at the <c/> of an available presence.
func (m *Module) presence(ev *xmppmap.PresenceEvent) {
	c := ev.Stanza.Child(NS, "c")
	if c == nil {
		return // keep what is known: clients omit <c/> sometimes
	}
	ver, hash, node := c.Get("ver"), c.Get("hash"), c.Get("node")
	if ver == "" {
		return
	}
	full := ev.Session.Full()
	m.mu.Lock()
	cl := m.clients[full]
	if cl == nil || cl.s != ev.Session {
		cl = &client{s: ev.Session}
		m.clients[full] = cl
	}
	if cl.hash == hash && cl.ver == ver && cl.node == node {
		m.mu.Unlock()
		return // the same as before: known, or being asked
	}
	cl.hash, cl.ver, cl.node = hash, ver, node
	a := m.wantLocked(cl)
	m.mu.Unlock()
	m.run([]action{a})
}

// wantLocked finds cl's features for its current <c/>: from the cache,
// by joining the query for the same ver in flight, or by a new query.
func (m *Module) wantLocked(cl *client) action {
	a := action{s: cl.s, hash: cl.hash, node: cl.node, ver: cl.ver}
	if hashes[cl.hash] == nil {
		a.query = true // legacy or unknown hash: for this session only
		return a
	}
	k := cacheKey(cl.hash, cl.ver)
	if fs, ok := m.cache[k]; ok {
		a.notify, a.changed = fs, m.setLocked(cl, fs)
		return a
	}
	if w, ok := m.inflight[k]; ok {
		m.inflight[k] = append(w, cl.s)
		return a
	}
	m.inflight[k] = nil
	a.query, a.shared = true, true
	return a
}

// setLocked sets cl's features and reports whether they changed.
func (m *Module) setLocked(cl *client, fs []string) bool {
	if cl.features != nil && slices.Equal(cl.features, fs) {
		return false
	}
	cl.features = fs
	return true
}

// currentLocked returns the state of session s if it still advertises hash and
// ver.
func (m *Module) currentLocked(s xmppmap.Session, hash, ver string) *client {
	cl := m.clients[s.Full()]
	if cl == nil || cl.s != s || cl.hash != hash || cl.ver != ver {
		return nil
	}
	return cl
}

func (m *Module) query(a action) {
	payload := "<query xmlns='" + disco.NSInfo + "' node='" + xmppmap.Escape(a.node+"#"+a.ver) + "'/>"
	a.s.Request("get", []byte(payload), m.timeout, func(res *xmppmap.Element) { m.answered(a, res) })
}

// answered takes a client's disco#info answer (nil: none came).
func (m *Module) answered(a action, res *xmppmap.Element) {
	var fs []string
	verified := false
	if res != nil && res.Get("type") == "result" {
		if q := res.Child(disco.NSInfo, "query"); q != nil {
			in, wellFormed := parseInfo(q)
			fs = in.features
			if fs == nil {
				fs = []string{}
			}
			if wellFormed && hashes[a.hash] != nil {
				v, _ := verification(a.hash, in)
				verified = v == a.ver
			}
		}
	}
	var as []action
	m.mu.Lock()
	var waiters []xmppmap.Session
	if a.shared {
		waiters = m.inflight[cacheKey(a.hash, a.ver)]
		delete(m.inflight, cacheKey(a.hash, a.ver))
	}
	if verified {
		fs = m.addLocked(cacheKey(a.hash, a.ver), fs)
	}
	if fs != nil {
		if cl := m.currentLocked(a.s, a.hash, a.ver); cl != nil && m.setLocked(cl, fs) {
			as = append(as, action{s: a.s, notify: fs, changed: true})
		}
	}
	for _, w := range waiters {
		cl := m.currentLocked(w, a.hash, a.ver)
		if cl == nil {
			continue
		}
		if verified {
			if m.setLocked(cl, fs) {
				as = append(as, action{s: w, notify: fs, changed: true})
			}
			continue
		}
		// The answer is no use to others with the same ver: every waiter
		// is asked at once (§5.4: check another entity), not in turn, so
		// that one silent session cannot hold the others back for a
		// timeout each. A verified answer still goes into the cache.
		as = append(as, action{s: cl.s, hash: cl.hash, node: cl.node, ver: cl.ver, query: true})
	}
	m.mu.Unlock()
	m.run(as)
}

// addLocked puts verified features into the global cache, evicting the
// oldest entries beyond its bounds, and returns the cached slice (an equal
// one already there is shared).
func (m *Module) addLocked(k string, fs []string) []string {
	if old, ok := m.cache[k]; ok {
		return old
	}
	size := len(k)
	for _, f := range fs {
		size += len(f) + 16
	}
	if size > maxCacheBytes/16 {
		return fs // too big to keep for everyone
	}
	fs = slices.Clip(fs)
	m.cache[k] = fs
	m.order = append(m.order, k)
	m.bytes += size
	for len(m.cache) > maxCacheEntries || m.bytes > maxCacheBytes {
		old := m.order[0]
		m.order[0] = ""
		m.order = m.order[1:]
		for _, f := range m.cache[old] {
			m.bytes -= len(f) + 16
		}
		m.bytes -= len(old)
		delete(m.cache, old)
	}
	return fs
}

// end drops the state of a session that ended.
func (m *Module) end(s xmppmap.Session) {
	full := s.Full()
	m.mu.Lock()
	if cl := m.clients[full]; cl != nil && cl.s == s {
		delete(m.clients, full)
	}
	m.mu.Unlock()
}

// Ver is the XEP-0115 §5.1 verification string of info (SHA-1).
func Ver(info *disco.NodeInfo) string {
	in := &discoInfo{features: info.Features}
	for _, id := range info.Identities {
		in.identities = append(in.identities, identity{category: id.Category, typ: id.Type, name: id.Name})
	}
	v, _ := verification("sha-1", in)
	return v
}

// discoInfo is a disco#info answer as XEP-0115 hashes it.
type discoInfo struct {
	identities []identity
	features   []string
	forms      []form // XEP-0128 extended information
}

type identity struct{ category, typ, lang, name string }

type form struct {
	formType string
	fields   []field // without FORM_TYPE
}

type field struct {
	name   string
	values []string
}

// verificationString is S of XEP-0115 §5.1; in is not modified.
func verificationString(in *discoInfo) []byte {
	ids := slices.Clone(in.identities)
	slices.SortFunc(ids, func(a, b identity) int {
		if c := strings.Compare(a.category, b.category); c != 0 {
			return c
		}
		if c := strings.Compare(a.typ, b.typ); c != 0 {
			return c
		}
		if c := strings.Compare(a.lang, b.lang); c != 0 {
			return c
		}
		return strings.Compare(a.name, b.name)
	})
	var b []byte
	for _, id := range ids {
		b = append(b, id.category+"/"+id.typ+"/"+id.lang+"/"+id.name+"<"...)
	}
	feats := slices.Clone(in.features)
	slices.Sort(feats)
	for _, f := range feats {
		b = append(b, f+"<"...)
	}
	forms := slices.Clone(in.forms)
	slices.SortFunc(forms, func(a, b form) int { return strings.Compare(a.formType, b.formType) })
	for _, fm := range forms {
		b = append(b, fm.formType+"<"...)
		fields := slices.Clone(fm.fields)
		slices.SortFunc(fields, func(a, b field) int { return strings.Compare(a.name, b.name) })
		for _, fd := range fields {
			b = append(b, fd.name+"<"...)
			vals := slices.Clone(fd.values)
			slices.Sort(vals)
			for _, v := range vals {
				b = append(b, v+"<"...)
			}
		}
	}
	return b
}

// verification is the verification string of in with the named hash;
// false if the hash is not supported.
func verification(hashName string, in *discoInfo) (string, bool) {
	newHash := hashes[hashName]
	if newHash == nil {
		return "", false
	}
	h := newHash()
	h.Write(verificationString(in))
	return base64.StdEncoding.EncodeToString(h.Sum(nil)), true
}

// parseInfo reads a disco#info <query/>. It reports false when §5.4 calls
// the answer ill-formed: an identity or a feature twice, two forms with the
// same FORM_TYPE, or a FORM_TYPE with different values. Duplicates are
// dropped from what it returns; forms without a hidden FORM_TYPE are
// ignored. Features are sorted.
func parseInfo(q *xmppmap.Element) (*discoInfo, bool) {
	in := &discoInfo{}
	ok := true
	seenID := map[identity]bool{}
	seenFeature := map[string]bool{}
	seenForm := map[string]bool{}
	for _, n := range q.Nodes {
		e := n.Elem
		if e == nil {
			continue
		}
		switch {
		case e.Name.Space == disco.NSInfo && e.Name.Local == "identity":
			id := identity{category: e.Get("category"), typ: e.Get("type"), lang: xmlLang(e), name: e.Get("name")}
			if seenID[id] {
				ok = false
				continue
			}
			seenID[id] = true
			in.identities = append(in.identities, id)
		case e.Name.Space == disco.NSInfo && e.Name.Local == "feature":
			v := e.Get("var")
			if seenFeature[v] {
				ok = false
				continue
			}
			seenFeature[v] = true
			in.features = append(in.features, v)
		case e.Name.Space == nsData && e.Name.Local == "x":
			fm, valid, use := parseForm(e)
			if !valid {
				ok = false
			}
			if !use {
				continue
			}
			if seenForm[fm.formType] {
				ok = false
				continue
			}
			seenForm[fm.formType] = true
			in.forms = append(in.forms, fm)
		}
	}
	slices.Sort(in.features)
	return in, ok
}

// parseForm reads an extended information form (XEP-0128). valid is false
// when its FORM_TYPE has different values; use is false when it has no
// hidden FORM_TYPE (§5.4 step 3.6: ignored).
func parseForm(x *xmppmap.Element) (fm form, valid, use bool) {
	valid = true
	hasType := false
	for _, n := range x.Nodes {
		f := n.Elem
		if f == nil || f.Name.Space != nsData || f.Name.Local != "field" {
			continue
		}
		var vals []string
		for _, vn := range f.Nodes {
			if v := vn.Elem; v != nil && v.Name.Space == nsData && v.Name.Local == "value" {
				vals = append(vals, v.Text())
			}
		}
		if f.Get("var") != "FORM_TYPE" {
			fm.fields = append(fm.fields, field{name: f.Get("var"), values: vals})
			continue
		}
		if hasType {
			return form{}, false, false // two FORM_TYPE fields
		}
		if len(vals) == 0 || f.Get("type") != "hidden" {
			return form{}, true, false
		}
		for _, v := range vals[1:] {
			if v != vals[0] {
				return form{}, false, false
			}
		}
		hasType, fm.formType = true, vals[0]
	}
	return fm, valid, hasType
}

// xmlLang is an element's xml:lang attribute.
func xmlLang(e *xmppmap.Element) string {
	for _, a := range e.Attr {
		if a.Name.Local == "lang" && (a.Name.Space == nsXML || a.Name.Space == "xml") {
			return a.Value
		}
	}
	return ""
}
