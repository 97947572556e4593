package private

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"strings"
	"sync"
	"testing"

	"mellium.im/xmpp/stanza"

	"github.com/imppd/imppd/core"
	"github.com/imppd/imppd/xmppmap"
)

// memStore is an in-memory Store.
type memStore struct {
	mu   sync.Mutex
	m    map[string][]byte
	fail error // returned by every call when set
}

func newMemStore() *memStore { return &memStore{m: map[string][]byte{}} }

func (s *memStore) AccountData(_ context.Context, o core.PrincipalID, k string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return nil, s.fail
	}
	return s.m[string(o)+"\x00"+k], nil
}

func (s *memStore) PutAccountData(_ context.Context, o core.PrincipalID, k string, v []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	if v == nil {
		delete(s.m, string(o)+"\x00"+k)
	} else {
		s.m[string(o)+"\x00"+k] = v
	}
	return nil
}

func (s *memStore) get(o core.PrincipalID, k string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(s.m[string(o)+"\x00"+k])
}

// children parses a <query/> and returns its child elements.
func children(t *testing.T, query string) []*xmppmap.Element {
	t.Helper()
	q, err := xmppmap.ParseElement([]byte(query), 16)
	if err != nil {
		t.Fatalf("parse %s: %v", query, err)
	}
	var out []*xmppmap.Element
	for _, n := range q.Nodes {
		if n.Elem != nil {
			out = append(out, n.Elem)
		}
	}
	return out
}

func query(inner string) string { return "<query xmlns='jabber:iq:private'>" + inner + "</query>" }

func condition(err error) stanza.Condition {
	var se stanza.Error
	if errors.As(err, &se) {
		return se.Condition
	}
	if err != nil {
		return "other: " + stanza.Condition(err.Error())
	}
	return ""
}

const alice = core.PrincipalID("alice@localhost")

func TestSetGet(t *testing.T) {
	ctx := context.Background()
	st := newMemStore()
	m := New(st, Options{})
	prefs := `<exodus xmlns='exodus:prefs'><defaultnick>Hamlet</defaultnick></exodus>`
	if err := m.Set(ctx, alice, children(t, query(prefs))); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, query, want string
		cond              stanza.Condition
	}{
		{"stored", `<exodus xmlns='exodus:prefs'/>`, prefs, ""},
		{"absent: empty element", `<other xmlns='exodus:prefs'/>`, `<other xmlns='exodus:prefs'/>`, ""},
		{"same namespace, other name", `<exodus xmlns='exodus:other'/>`, `<exodus xmlns='exodus:other'/>`, ""},
		{"two of one namespace", `<exodus xmlns='exodus:prefs'/><other xmlns='exodus:prefs'/>`, prefs + `<other xmlns='exodus:prefs'/>`, ""},
		{"two namespaces", `<exodus xmlns='exodus:prefs'/><x xmlns='y'/>`, "", stanza.BadRequest},
		{"no child", ``, "", stanza.BadRequest},
		{"no namespace", `<exodus xmlns=''/>`, "", stanza.NotAcceptable},
		{"inherited namespace", `<exodus/>`, "", stanza.NotAcceptable},
		{"jabber:client", `<message xmlns='jabber:client'/>`, "", stanza.NotAcceptable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := m.Get(ctx, alice, children(t, query(tc.query)))
			if c := condition(err); c != tc.cond {
				t.Fatalf("condition %q, want %q", c, tc.cond)
			}
			if string(got) != tc.want {
				t.Fatalf("got %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestSetErrors(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name, query string
		opts        Options
		cond        stanza.Condition
	}{
		{"ok", `<a xmlns='x'>1</a>`, Options{}, ""},
		{"several", `<a xmlns='x'>1</a><b xmlns='x'>2</b><a xmlns='y'/>`, Options{}, ""},
		{"nothing", ``, Options{}, stanza.NotAcceptable},
		{"no namespace", `<a xmlns=''>1</a>`, Options{}, stanza.NotAcceptable},
		{"inherited namespace", `<a>1</a>`, Options{}, stanza.NotAcceptable},
		{"jabber:server", `<a xmlns='jabber:server'/>`, Options{}, stanza.NotAcceptable},
		{"jabber:iq:private", `<query xmlns='jabber:iq:private'/>`, Options{}, stanza.NotAcceptable},
		{"vcard-temp", `<vCard xmlns='vcard-temp'><FN>Hamlet</FN></vCard>`, Options{}, stanza.NotAcceptable},
		{"one bad among good", `<a xmlns='x'>1</a><b xmlns='jabber:client'/>`, Options{}, stanza.NotAcceptable},
		{"at the size limit", `<a xmlns='x'>` + strings.Repeat("z", 100-len(`<a xmlns='x'></a>`)) + `</a>`, Options{MaxItemSize: 100}, ""},
		{"over the size limit", `<a xmlns='x'>` + strings.Repeat("z", 101-len(`<a xmlns='x'></a>`)) + `</a>`, Options{MaxItemSize: 100}, stanza.NotAcceptable},
		{"at the count limit", `<a xmlns='x'>1</a><b xmlns='x'>2</b>`, Options{MaxItems: 2}, ""},
		{"over the count limit", `<a xmlns='x'>1</a><b xmlns='x'>2</b><c xmlns='x'>3</c>`, Options{MaxItems: 2}, stanza.PolicyViolation},
		{"more elements than an account keeps", strings.Repeat(`<a xmlns='x'>1</a>`, 3), Options{MaxItems: 2}, stanza.PolicyViolation},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := newMemStore()
			m := New(st, tc.opts)
			err := m.Set(ctx, alice, children(t, query(tc.query)))
			if c := condition(err); c != tc.cond {
				t.Fatalf("condition %q, want %q", c, tc.cond)
			}
			if err != nil && len(st.m) != 0 {
				t.Fatalf("a refused set stored %v", st.m)
			}
		})
	}
}

// TestGetBound: a get names at most as many elements as an account keeps,
// so one request cannot ask for an unbounded reply.
func TestGetBound(t *testing.T) {
	m := New(newMemStore(), Options{MaxItems: 2})
	if _, err := m.Get(context.Background(), alice, children(t, query(`<a xmlns='x'/><a xmlns='x'/>`))); err != nil {
		t.Fatalf("at the bound: %v", err)
	}
	_, err := m.Get(context.Background(), alice, children(t, query(strings.Repeat(`<a xmlns='x'/>`, 3))))
	if c := condition(err); c != stanza.PolicyViolation {
		t.Fatalf("over the bound: %q", c)
	}
}

func TestCountAndDelete(t *testing.T) {
	ctx := context.Background()
	st := newMemStore()
	m := New(st, Options{MaxItems: 2})
	set := func(q string) error { return m.Set(ctx, alice, children(t, query(q))) }
	if err := set(`<a xmlns='x'>1</a><b xmlns='x'>2</b>`); err != nil {
		t.Fatal(err)
	}
	// Replacing does not count; a third element does.
	if err := set(`<a xmlns='x'>one</a>`); err != nil {
		t.Fatal(err)
	}
	if err := set(`<c xmlns='x'>3</c>`); condition(err) != stanza.PolicyViolation {
		t.Fatalf("third element: %v", err)
	}
	// Each account has its own quota.
	if err := m.Set(ctx, "bob@localhost", children(t, query(`<c xmlns='x'>3</c>`))); err != nil {
		t.Fatal(err)
	}
	// An empty element deletes, making room, in the same request.
	if err := set(`<a xmlns='x'/><c xmlns='x'>3</c>`); err != nil {
		t.Fatal(err)
	}
	if v := st.get(alice, Key("x", "a")); v != "" {
		t.Fatalf("deleted element still stored: %s", v)
	}
	var idx []string
	if err := json.Unmarshal([]byte(st.get(alice, IndexKey)), &idx); err != nil || strings.Join(idx, ",") != Key("x", "b")+","+Key("x", "c") {
		t.Fatalf("index %v (%v)", idx, err)
	}
	got, err := m.Get(ctx, alice, children(t, query(`<c xmlns='x'/>`)))
	if err != nil || string(got) != `<c xmlns='x'>3</c>` {
		t.Fatalf("get c: %s %v", got, err)
	}
	// Deleting everything removes the index too.
	if err := set(`<b xmlns='x'/><c xmlns='x'/>`); err != nil {
		t.Fatal(err)
	}
	for k := range maps.Keys(st.m) {
		if strings.HasPrefix(k, string(alice)+"\x00") {
			t.Fatalf("left behind: %q", k)
		}
	}
	// A later element of a request replaces an earlier one of the same name.
	if err := set(`<a xmlns='x'>first</a><a xmlns='x'>second</a>`); err != nil {
		t.Fatal(err)
	}
	if v := st.get(alice, Key("x", "a")); v != `<a xmlns='x'>second</a>` {
		t.Fatalf("stored %s", v)
	}
}

func TestStoreErrors(t *testing.T) {
	ctx := context.Background()
	st := newMemStore()
	st.fail = errors.New("disk on fire")
	m := New(st, Options{})
	if err := m.Set(ctx, alice, children(t, query(`<a xmlns='x'>1</a>`))); err == nil || condition(err) == "" {
		t.Fatalf("set: %v", err)
	} else if _, ok := err.(stanza.Error); ok {
		t.Fatalf("a store error became a stanza error: %v", err)
	}
	if _, err := m.Get(ctx, alice, children(t, query(`<a xmlns='x'/>`))); err == nil {
		t.Fatal("get did not fail")
	}
}

func TestIntercept(t *testing.T) {
	ctx := context.Background()
	st := newMemStore()
	m := New(st, Options{MaxItems: 1, MaxItemSize: 200})
	var (
		stored []byte
		owner  core.PrincipalID
	)
	m.Intercept("storage:bookmarks",
		func(_ context.Context, o core.PrincipalID) ([]byte, error) { owner = o; return stored, nil },
		func(_ context.Context, o core.PrincipalID, b []byte) error {
			owner = o
			if strings.Contains(string(b), "bad") {
				return stanza.Error{Type: stanza.Modify, Condition: stanza.JIDMalformed}
			}
			stored = b
			return nil
		})
	get := func() string {
		b, err := m.Get(ctx, alice, children(t, query(`<storage xmlns='storage:bookmarks'/>`)))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if g := get(); g != `<storage xmlns='storage:bookmarks'/>` {
		t.Fatalf("nothing stored: %s", g)
	}
	// Intercepted elements do not count towards the quota.
	if err := m.Set(ctx, alice, children(t, query(`<a xmlns='x'>1</a>`))); err != nil {
		t.Fatal(err)
	}
	el := `<storage xmlns='storage:bookmarks'><conference jid='r@muc'/></storage>`
	if err := m.Set(ctx, alice, children(t, query(el))); err != nil {
		t.Fatal(err)
	}
	if owner != alice || string(stored) != el || get() != el {
		t.Fatalf("owner %s stored %s", owner, stored)
	}
	if st.get(alice, Key("storage:bookmarks", "storage")) != "" {
		t.Fatal("an intercepted element went to the store")
	}
	// The interceptor's stanza error reaches the client; the size limit
	// still applies.
	if err := m.Set(ctx, alice, children(t, query(`<storage xmlns='storage:bookmarks'><conference jid='bad'/></storage>`))); condition(err) != stanza.JIDMalformed {
		t.Fatalf("interceptor error: %v", err)
	}
	big := `<storage xmlns='storage:bookmarks'>` + strings.Repeat("<url xmlns='storage:bookmarks' url='http://x'/>", 10) + `</storage>`
	if err := m.Set(ctx, alice, children(t, query(big))); condition(err) != stanza.NotAcceptable {
		t.Fatalf("size: %v", err)
	}
}

func TestXEP(t *testing.T) {
	x := New(newMemStore(), Options{}).XEP()
	if x.Number != 49 || x.Version == "" || len(x.Features) != 1 || x.Features[0] != NS {
		t.Fatalf("%+v", x)
	}
}
