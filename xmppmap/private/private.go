// Package private implements XEP-0049: Private XML Storage.
//
// A user stores arbitrary XML elements on the server, each keyed by its
// namespace and local name, and reads them back; nobody else can see or
// change them (XEP-0049 §5). Elements are kept opaque, serialized, in the
// account's key/value data (Store) under Key(namespace, local). Another
// module may serve one namespace itself (Intercept): XEP-0048 bookmarks in
// 'storage:bookmarks' are converted to and from XEP-0402 by
// xmppmap/bookmarks.
//
// Limits: one element is at most Options.MaxItemSize bytes serialized and
// an account stores at most Options.MaxItems elements. The keys an account
// uses are listed under IndexKey, so the count needs no scan of the store.
package private

import (
	"context"
	"encoding/json"
	"errors"
	"hash/maphash"
	"slices"
	"strconv"
	"sync"

	"mellium.im/xmpp/stanza"

	"github.com/imppd/imppd/core"
	"github.com/imppd/imppd/xmppmap"
)

// NS is the protocol's namespace.
const NS = "jabber:iq:private"

// Defaults for Options.
const (
	DefaultMaxItemSize = 64 << 10
	DefaultMaxItems    = 128
)

// IndexKey is the account data key under which the keys of an account's
// stored elements are listed (a JSON array of strings).
const IndexKey = "private-index"

// Store keeps small per-account values; db.DB implements it.
type Store interface {
	// AccountData returns the value stored under key; nil when none.
	AccountData(ctx context.Context, owner core.PrincipalID, key string) ([]byte, error)
	// PutAccountData stores value under key, durably on return; nil deletes.
	PutAccountData(ctx context.Context, owner core.PrincipalID, key string, value []byte) error
}

// Key is the account data key of the element named (ns, local).
func Key(ns, local string) string { return "private:" + ns + " " + local }

// Options bound what an account may store.
type Options struct {
	MaxItemSize int // bytes of one serialized element; 0: DefaultMaxItemSize
	MaxItems    int // elements per account; 0: DefaultMaxItems
}

// Getter returns owner's element of an intercepted namespace, serialized;
// nil when there is none.
type Getter func(ctx context.Context, owner core.PrincipalID) ([]byte, error)

// Setter stores owner's element of an intercepted namespace (serialized,
// namespace declared on its root). An error that is a stanza.Error is
// returned to the client as it is; any other is internal-server-error.
type Setter func(ctx context.Context, owner core.PrincipalID, el []byte) error

type interceptor struct {
	get Getter
	set Setter
}

// Module answers jabber:iq:private queries.
type Module struct {
	store Store
	opts  Options

	mu        sync.RWMutex
	intercept map[string]interceptor // by namespace

	seed  maphash.Seed
	locks [64]sync.Mutex // per account (striped): index updates
}

// New returns the module over store.
func New(store Store, o Options) *Module {
	if o.MaxItemSize <= 0 {
		o.MaxItemSize = DefaultMaxItemSize
	}
	if o.MaxItems <= 0 {
		o.MaxItems = DefaultMaxItems
	}
	return &Module{store: store, opts: o, intercept: map[string]interceptor{}, seed: maphash.MakeSeed()}
}

// Intercept has get and set serve every element of namespace ns instead of
// the store. Intercepted elements do not count towards MaxItems; the size
// limit still applies.
func (m *Module) Intercept(ns string, get Getter, set Setter) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.intercept[ns] = interceptor{get, set}
}

func (m *Module) interceptor(ns string) (interceptor, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	ic, ok := m.intercept[ns]
	return ic, ok
}

func (m *Module) XEP() xmppmap.XEP {
	return xmppmap.XEP{
		Number: 49, Title: "Private XML Storage", Version: "1.2", Status: "complete",
		// Announced on the server, as Prosody does: the XEP names no place.
		Features: []string{NS},
	}
}

func (m *Module) Register(s *xmppmap.Server) {
	s.HandleIQ(xmppmap.ToAccount, NS, "query", m.handle)
	// §2.3: another user's private data is forbidden (the preferable of
	// the two conditions the XEP allows).
	s.HandleIQ(xmppmap.ToContact, NS, "query", func(q *xmppmap.IQ) {
		q.Error(stanza.Error{Type: stanza.Auth, Condition: stanza.Forbidden})
	})
}

func (m *Module) handle(q *xmppmap.IQ) {
	ctx := context.Background()
	var els []*xmppmap.Element
	for _, n := range q.Payload.Nodes {
		if n.Elem != nil {
			els = append(els, n.Elem)
		}
	}
	var (
		res []byte
		err error
	)
	if q.Stanza.Get("type") == "get" {
		res, err = m.Get(ctx, q.Account(), els)
	} else {
		err = m.Set(ctx, q.Account(), els)
	}
	if err != nil {
		var se stanza.Error
		if !errors.As(err, &se) {
			se = stanza.Error{Type: stanza.Wait, Condition: stanza.InternalServerError}
		}
		q.Error(se)
		return
	}
	if res == nil {
		q.Result(nil)
		return
	}
	out := make([]byte, 0, len(res)+64)
	out = append(out, "<query xmlns='"+NS+"'>"...)
	out = append(out, res...)
	q.Result(append(out, "</query>"...))
}

func errorf(t stanza.ErrorType, c stanza.Condition, text string) error {
	se := stanza.Error{Type: t, Condition: c}
	if text != "" {
		se.Text = map[string]string{"": text}
	}
	return se
}

// reserved reports whether elements of namespace ns may not be stored:
// none without a namespace, none in the stream content namespaces or this
// protocol's own, and no vCard (which XEP-0054 stores, not this). XEP-0049
// §2.3 allows refusing reserved namespaces with not-acceptable; other
// 'jabber:' namespaces are accepted because clients store e.g. their own
// preferences under them.
func reserved(ns string) bool {
	switch ns {
	case "", "jabber:client", "jabber:server", "jabber:component:accept", NS,
		"http://etherx.jabber.org/streams", "vcard-temp":
		return true
	}
	return false
}

// Get returns the serialized elements requested by els (children of a
// get query): each as stored, or empty when none is.
func (m *Module) Get(ctx context.Context, owner core.PrincipalID, els []*xmppmap.Element) ([]byte, error) {
	if len(els) == 0 {
		// §2.3: a get without a child is "Bad Format" (bad-request).
		return nil, errorf(stanza.Modify, stanza.BadRequest, "a child element names what to retrieve")
	}
	if len(els) > m.opts.MaxItems {
		// More names than an account may store: a request for one reply
		// of unbounded size.
		return nil, errorf(stanza.Modify, stanza.PolicyViolation, "at most "+strconv.Itoa(m.opts.MaxItems)+" elements per request")
	}
	for _, el := range els {
		if reserved(el.Name.Space) {
			return nil, errorf(stanza.Modify, stanza.NotAcceptable, "reserved namespace")
		}
		if el.Name.Space != els[0].Name.Space {
			// §2.3: a client MUST NOT query for more than one namespace.
			return nil, errorf(stanza.Modify, stanza.BadRequest, "one namespace per query")
		}
	}
	var out []byte
	for _, el := range els {
		var (
			b   []byte
			err error
		)
		if ic, ok := m.interceptor(el.Name.Space); ok {
			b, err = ic.get(ctx, owner)
		} else {
			b, err = m.store.AccountData(ctx, owner, Key(el.Name.Space, el.Name.Local))
		}
		if err != nil {
			return nil, err
		}
		if b == nil {
			b = xmppmap.XML(xmppmap.NewElement(el.Name.Space, el.Name.Local))
		}
		out = append(out, b...)
	}
	return out, nil
}

// Set stores els (children of a set query), replacing elements with the
// same names; an element without attributes or children deletes the one
// stored. Everything is checked before anything is stored.
func (m *Module) Set(ctx context.Context, owner core.PrincipalID, els []*xmppmap.Element) error {
	if len(els) == 0 {
		// §2.3: at least one child element is required, else Not Acceptable.
		return errorf(stanza.Modify, stanza.NotAcceptable, "nothing to store")
	}
	type put struct {
		key string
		val []byte // nil: delete
		ic  *interceptor
	}
	if len(els) > m.opts.MaxItems {
		return errorf(stanza.Modify, stanza.PolicyViolation, "at most "+strconv.Itoa(m.opts.MaxItems)+" elements per account")
	}
	puts := make([]put, 0, len(els))
	for _, el := range els {
		if reserved(el.Name.Space) {
			return errorf(stanza.Modify, stanza.NotAcceptable, "reserved namespace")
		}
		b := xmppmap.XML(el)
		if len(b) > m.opts.MaxItemSize {
			// RFC 6120 §8.3.3.11: the request does not meet a criterion
			// the server defines.
			return errorf(stanza.Modify, stanza.NotAcceptable, "an element may have at most "+strconv.Itoa(m.opts.MaxItemSize)+" bytes")
		}
		p := put{key: Key(el.Name.Space, el.Name.Local), val: b}
		if ic, ok := m.interceptor(el.Name.Space); ok {
			p.ic = &ic
		} else if len(el.Attr) == 0 && len(el.Nodes) == 0 {
			p.val = nil
		}
		// A later element with the same name replaces an earlier one.
		puts = slices.DeleteFunc(puts, func(q put) bool { return q.key == p.key })
		puts = append(puts, p)
	}

	l := &m.locks[maphash.String(m.seed, string(owner))%uint64(len(m.locks))]
	l.Lock()
	defer l.Unlock()
	index, err := m.index(ctx, owner)
	if err != nil {
		return err
	}
	next := slices.Clone(index)
	for _, p := range puts {
		if p.ic != nil {
			continue
		}
		i, found := slices.BinarySearch(next, p.key)
		switch {
		case p.val != nil && !found:
			next = slices.Insert(next, i, p.key)
		case p.val == nil && found:
			next = slices.Delete(next, i, i+1)
		}
	}
	if len(next) > m.opts.MaxItems && len(next) > len(index) {
		// RFC 6120 §8.3.3.12: a local service policy, named in <text/>;
		// "modify" because deleting elements makes room.
		return errorf(stanza.Modify, stanza.PolicyViolation, "an account may store at most "+strconv.Itoa(m.opts.MaxItems)+" elements")
	}
	// The index grows before a value is written and shrinks after one is
	// deleted, so that it always covers what is stored.
	grown := union(index, next)
	if len(grown) != len(index) {
		if err := m.putIndex(ctx, owner, grown); err != nil {
			return err
		}
	}
	for _, p := range puts {
		if p.ic != nil {
			err = p.ic.set(ctx, owner, p.val)
		} else {
			err = m.store.PutAccountData(ctx, owner, p.key, p.val)
		}
		if err != nil {
			return err
		}
	}
	if len(next) != len(grown) {
		return m.putIndex(ctx, owner, next)
	}
	return nil
}

// index returns the sorted keys owner has stored.
func (m *Module) index(ctx context.Context, owner core.PrincipalID) ([]string, error) {
	b, err := m.store.AccountData(ctx, owner, IndexKey)
	if err != nil || b == nil {
		return nil, err
	}
	var keys []string
	if err := json.Unmarshal(b, &keys); err != nil {
		return nil, err
	}
	slices.Sort(keys)
	return slices.Compact(keys), nil
}

func (m *Module) putIndex(ctx context.Context, owner core.PrincipalID, keys []string) error {
	if len(keys) == 0 {
		return m.store.PutAccountData(ctx, owner, IndexKey, nil)
	}
	b, err := json.Marshal(keys)
	if err != nil {
		return err
	}
	return m.store.PutAccountData(ctx, owner, IndexKey, b)
}

// union merges two sorted key lists.
func union(a, b []string) []string {
	out := slices.Concat(a, b)
	slices.Sort(out)
	return slices.Compact(out)
}
