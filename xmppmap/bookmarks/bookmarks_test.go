package bookmarks

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/stanza"

	"github.com/imppd/imppd/core"
	"github.com/imppd/imppd/xmppmap"
	"github.com/imppd/imppd/xmppmap/private"
)

// fakePEP is an in-memory PEP service that runs hooks as xmppmap/pep does:
// after the change, with the caller's context, on the caller's goroutine.
type fakePEP struct {
	mu       sync.Mutex
	items    map[string][]core.MarkupItem // owner+node → oldest first
	cfgs     map[string]core.NodeConfig
	ops      []string // "publish node id" / "retract node id", in order
	pubHooks map[string][]func(context.Context, core.PrincipalID, core.MarkupItem)
	retHooks map[string][]func(context.Context, core.PrincipalID, string)
	fail     error
}

func newFakePEP() *fakePEP {
	return &fakePEP{items: map[string][]core.MarkupItem{}, cfgs: map[string]core.NodeConfig{},
		pubHooks: map[string][]func(context.Context, core.PrincipalID, core.MarkupItem){},
		retHooks: map[string][]func(context.Context, core.PrincipalID, string){}}
}

func key(o core.PrincipalID, node string) string { return string(o) + "\x00" + node }

// publish stores an item and runs the hooks; client says whether a client
// published it (the context is then a fresh one).
func (p *fakePEP) Publish(ctx context.Context, o core.PrincipalID, node, id string, payload []byte, cfg *core.NodeConfig) (string, error) {
	p.mu.Lock()
	if p.fail != nil {
		p.mu.Unlock()
		return "", p.fail
	}
	k := key(o, node)
	if _, ok := p.cfgs[k]; !ok && cfg != nil {
		p.cfgs[k] = *cfg
	}
	if id == "" {
		id = fmt.Sprint(len(p.ops))
	}
	it := core.MarkupItem{ID: id, Stamp: time.Now(), Payload: payload}
	its := slices.DeleteFunc(p.items[k], func(x core.MarkupItem) bool { return x.ID == id })
	p.items[k] = append(its, it)
	p.ops = append(p.ops, "publish "+node+" "+id)
	hooks := slices.Clone(p.pubHooks[node])
	p.mu.Unlock()
	for _, f := range hooks {
		f(ctx, o, it)
	}
	return id, nil
}

func (p *fakePEP) Retract(ctx context.Context, o core.PrincipalID, node, id string) error {
	p.mu.Lock()
	k := key(o, node)
	n := len(p.items[k])
	p.items[k] = slices.DeleteFunc(p.items[k], func(x core.MarkupItem) bool { return x.ID == id })
	if len(p.items[k]) == n {
		p.mu.Unlock()
		return errors.New("no such item")
	}
	p.ops = append(p.ops, "retract "+node+" "+id)
	hooks := slices.Clone(p.retHooks[node])
	p.mu.Unlock()
	for _, f := range hooks {
		f(ctx, o, id)
	}
	return nil
}

func (p *fakePEP) Items(_ context.Context, o core.PrincipalID, node string, max int) ([]core.MarkupItem, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fail != nil {
		return nil, p.fail
	}
	its := p.items[key(o, node)]
	var out []core.MarkupItem
	for i := len(its) - 1; i >= 0 && (max <= 0 || len(out) < max); i-- {
		out = append(out, its[i])
	}
	return out, nil
}

func (p *fakePEP) Node(_ context.Context, o core.PrincipalID, name string) (core.MarkupNode, bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.cfgs[key(o, name)]
	return core.MarkupNode{Owner: o, Name: name, Config: c}, ok, nil
}

func (p *fakePEP) OnPublish(node string, f func(context.Context, core.PrincipalID, core.MarkupItem)) {
	p.pubHooks[node] = append(p.pubHooks[node], f)
}

func (p *fakePEP) OnRetract(node string, f func(context.Context, core.PrincipalID, string)) {
	p.retHooks[node] = append(p.retHooks[node], f)
}

// payloads returns node's items as "id=payload", oldest first.
func (p *fakePEP) payloads(o core.PrincipalID, node string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, it := range p.items[key(o, node)] {
		out = append(out, it.ID+"="+string(it.Payload))
	}
	return out
}

func (p *fakePEP) takeOps() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.ops
	p.ops = nil
	return out
}

// memStore is an in-memory private.Store.
type memStore struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (s *memStore) AccountData(_ context.Context, o core.PrincipalID, k string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[string(o)+"\x00"+k], nil
}

func (s *memStore) PutAccountData(_ context.Context, o core.PrincipalID, k string, v []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v == nil {
		delete(s.m, string(o)+"\x00"+k)
	} else {
		s.m[string(o)+"\x00"+k] = v
	}
	return nil
}

const alice = core.PrincipalID("alice@localhost")

type fixture struct {
	pep   *fakePEP
	store *memStore
	priv  *private.Module
	m     *Module
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{pep: newFakePEP(), store: &memStore{m: map[string][]byte{}}}
	f.priv = private.New(f.store, private.Options{})
	f.m = New(f.pep, f.priv, f.store, nil)
	f.m.register()
	return f
}

func (f *fixture) privateSet(t *testing.T, storage string) error {
	t.Helper()
	q, err := xmppmap.ParseElement([]byte("<query xmlns='jabber:iq:private'>"+storage+"</query>"), 16)
	if err != nil {
		t.Fatal(err)
	}
	return f.priv.Set(context.Background(), alice, []*xmppmap.Element{q.Child("", "")})
}

func (f *fixture) privateGet(t *testing.T) string {
	t.Helper()
	b, err := f.priv.Get(context.Background(), alice, []*xmppmap.Element{xmppmap.NewElement(NSLegacy, "storage")})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// clientPublish publishes as a client would: a fresh context.
func (f *fixture) clientPublish(t *testing.T, node, id, payload string) {
	t.Helper()
	if _, err := f.pep.Publish(context.Background(), alice, node, id, []byte(payload), nil); err != nil {
		t.Fatal(err)
	}
}

func storage(inner string) string {
	return "<storage xmlns='storage:bookmarks'>" + inner + "</storage>"
}

func conf(inner string) string {
	return "<conference xmlns='urn:xmpp:bookmarks:1'" + inner
}

// Private XML (XEP-0048 over XEP-0049) → XEP-0402 items.
func TestPrivateToNative(t *testing.T) {
	for _, tc := range []struct {
		name, legacy string
		want         []string // items of the XEP-0402 node, oldest first
		cond         stanza.Condition
	}{
		{"autojoin true", `<conference jid='a@muc' name='A' autojoin='true'/>`,
			[]string{`a@muc=` + conf(` name='A' autojoin='true'/>`)}, ""},
		{"autojoin 1", `<conference jid='a@muc' autojoin='1'/>`,
			[]string{`a@muc=` + conf(` autojoin='true'/>`)}, ""},
		{"autojoin false", `<conference jid='a@muc' name='A' autojoin='false'/>`,
			[]string{`a@muc=` + conf(` name='A'/>`)}, ""},
		{"autojoin 0", `<conference jid='a@muc' autojoin='0'/>`, []string{`a@muc=` + conf(`/>`)}, ""},
		{"nick and password", `<conference jid='a@muc' name='A'><nick>Puck</nick><password>s&amp;cret</password></conference>`,
			[]string{`a@muc=` + conf(` name='A'><nick>Puck</nick><password>s&amp;cret</password></conference>`)}, ""},
		{"several, URL kept out", `<conference jid='a@muc'/><url name='W' url='https://x/'/><conference jid='b@muc' name='B'/>`,
			[]string{`a@muc=` + conf(`/>`), `b@muc=` + conf(` name='B'/>`)}, ""},
		{"JID made canonical", `<conference jid='A@MUC'/>`, []string{`a@muc=` + conf(`/>`)}, ""},
		{"listed twice: the last", `<conference jid='a@muc' name='1'/><conference jid='a@muc' name='2'/>`,
			[]string{`a@muc=` + conf(` name='2'/>`)}, ""},
		{"bad JID", `<conference jid='@muc'/>`, nil, stanza.JIDMalformed},
		{"no JID", `<conference name='x'/>`, nil, stanza.JIDMalformed},
		{"empty", ``, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			err := f.privateSet(t, storage(tc.legacy))
			var se stanza.Error
			if errors.As(err, &se); se.Condition != tc.cond || (err != nil) != (tc.cond != "") {
				t.Fatalf("error %v, want %q", err, tc.cond)
			}
			if got := f.pep.payloads(alice, NS); !slices.Equal(got, tc.want) {
				t.Fatalf("items\n%q\nwant\n%q", got, tc.want)
			}
			if tc.cond != "" {
				return
			}
			// The node is configured as XEP-0402 §3 says.
			if len(tc.want) > 0 {
				if c := f.pep.cfgs[key(alice, NS)]; c.Access != core.AccessWhitelist || c.MaxItems != core.MaxItemsUnbounded || !c.Persist || c.SendLast != "never" {
					t.Fatalf("node config %+v", c)
				}
			}
			// XEP-0411 §3: the legacy node is published for its
			// subscribers, with what private XML now returns.
			got := f.privateGet(t)
			leg := f.pep.payloads(alice, NSLegacy)
			if len(leg) != 1 || leg[0] != LegacyItem+"="+got {
				t.Fatalf("legacy node %q, private %s", leg, got)
			}
			if c := f.pep.cfgs[key(alice, NSLegacy)]; c.Access != core.AccessWhitelist {
				t.Fatalf("legacy node config %+v", c)
			}
		})
	}
}

// XEP-0402 items → private XML get.
func TestNativeToPrivate(t *testing.T) {
	f := newFixture(t)
	if got := f.privateGet(t); got != "<storage xmlns='storage:bookmarks'/>" {
		t.Fatalf("no bookmarks: %s", got)
	}
	f.clientPublish(t, NS, "a@muc", conf(` name='A' autojoin='true'><nick>Puck</nick><password>pw</password><extensions><pin xmlns='urn:xmpp:bookmarks-pinning:0'/></extensions></conference>`))
	f.clientPublish(t, NS, "b@muc", conf(` autojoin='1'/>`))
	f.clientPublish(t, NS, "c@muc", conf(` autojoin='false' name='C'/>`))
	f.clientPublish(t, NS, "junk", `<junk xmlns='x'/>`)
	want := storage(`<conference jid='a@muc' name='A' autojoin='true'><nick>Puck</nick><password>pw</password></conference>` +
		`<conference jid='b@muc' autojoin='true'/><conference jid='c@muc' name='C'/>`)
	if got := f.privateGet(t); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	// The legacy PEP node follows, for legacy clients that read it.
	if leg := f.pep.payloads(alice, NSLegacy); len(leg) != 1 || leg[0] != LegacyItem+"="+want {
		t.Fatalf("legacy node %q", leg)
	}
	// A change that does not show in XEP-0048 is not republished.
	f.pep.takeOps()
	f.clientPublish(t, NS, "c@muc", conf(` name='C' autojoin='0'><extensions><x xmlns='y'/></extensions></conference>`))
	if ops := f.pep.takeOps(); !slices.Equal(ops, []string{"publish " + NS + " c@muc"}) {
		t.Fatalf("ops %q", ops)
	}
	// A legacy node a client made readable by contacts gets no passwords.
	f.pep.mu.Lock()
	f.pep.cfgs[key(alice, NSLegacy)] = core.NodeConfig{Access: core.AccessPresence}
	f.pep.mu.Unlock()
	f.clientPublish(t, NS, "d@muc", conf(` name='D'><password>secret</password></conference>`))
	if ops := f.pep.takeOps(); !slices.Equal(ops, []string{"publish " + NS + " d@muc"}) {
		t.Fatalf("ops with a readable legacy node %q", ops)
	}
}

// A set through private XML changes only what changed, keeps XEP-0402
// extensions, retracts what is gone and keeps <url/> bookmarks.
func TestPrivateUpdate(t *testing.T) {
	f := newFixture(t)
	ext := `<extensions><pin xmlns='urn:xmpp:bookmarks-pinning:0'/></extensions>`
	f.clientPublish(t, NS, "a@muc", conf(` name='A'>`+ext+`</conference>`))
	f.clientPublish(t, NS, "b@muc", conf(` name='B'/>`))
	f.clientPublish(t, NS, "c@muc", conf(` name='C'/>`))
	f.pep.takeOps()
	urls := `<url name='Site' url='https://example.org/'/>`
	if err := f.privateSet(t, storage(`<conference jid='a@muc' name='A' autojoin='true'/><conference jid='c@muc' name='C'/>`+urls)); err != nil {
		t.Fatal(err)
	}
	ops := f.pep.takeOps()
	wantOps := []string{"publish " + NS + " a@muc", "retract " + NS + " b@muc", "publish " + NSLegacy + " current"}
	if !slices.Equal(ops, wantOps) {
		t.Fatalf("ops %q\nwant %q", ops, wantOps)
	}
	if got := f.pep.payloads(alice, NS); !slices.Equal(got, []string{"c@muc=" + conf(` name='C'/>`), "a@muc=" + conf(` name='A' autojoin='true'>`+ext+`</conference>`)}) {
		t.Fatalf("items %q", got)
	}
	want := storage(`<conference jid='c@muc' name='C'/><conference jid='a@muc' name='A' autojoin='true'/>` + urls)
	if got := f.privateGet(t); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	// Removing everything retracts everything and forgets the URLs.
	if err := f.privateSet(t, storage("")); err != nil {
		t.Fatal(err)
	}
	if got := f.pep.payloads(alice, NS); len(got) != 0 {
		t.Fatalf("items left: %q", got)
	}
	if got := f.privateGet(t); got != "<storage xmlns='storage:bookmarks'/>" {
		t.Fatalf("got %s", got)
	}
	if len(f.store.m) != 0 {
		t.Fatalf("account data left: %q", f.store.m)
	}
	// An empty <storage/> element is a set too (not a delete of private XML).
	if err := f.privateSet(t, "<storage xmlns='storage:bookmarks'/>"); err != nil {
		t.Fatal(err)
	}
}

// A legacy client publishing to the storage:bookmarks PEP node.
func TestLegacyPEP(t *testing.T) {
	f := newFixture(t)
	ext := `<extensions><x xmlns='y'/></extensions>`
	f.clientPublish(t, NS, "a@muc", conf(` name='A'>`+ext+`</conference>`))
	f.clientPublish(t, NS, "old@muc", conf(`/>`))
	f.pep.takeOps()
	f.clientPublish(t, NSLegacy, "current", storage(`<conference jid='a@muc' name='A' autojoin='1'><nick>N</nick></conference>`+
		`<conference jid='new@muc' name='New'><password>p</password></conference><conference jid='@bad'/><url name='u' url='https://u/'/>`))
	ops := f.pep.takeOps()
	// No republish of the legacy node: the client just wrote it.
	wantOps := []string{"publish " + NSLegacy + " current", "publish " + NS + " a@muc", "publish " + NS + " new@muc", "retract " + NS + " old@muc"}
	if !slices.Equal(ops, wantOps) {
		t.Fatalf("ops %q\nwant %q", ops, wantOps)
	}
	want := []string{"a@muc=" + conf(` name='A' autojoin='true'><nick>N</nick>`+ext+`</conference>`), "new@muc=" + conf(` name='New'><password>p</password></conference>`)}
	if got := f.pep.payloads(alice, NS); !slices.Equal(got, want) {
		t.Fatalf("items\n%q\nwant\n%q", got, want)
	}
	if got := f.privateGet(t); !strings.Contains(got, "<url name='u' url='https://u/'/>") {
		t.Fatalf("URL lost: %s", got)
	}
	// Not a <storage/>: ignored.
	f.clientPublish(t, NSLegacy, "current", `<other xmlns='storage:bookmarks'/>`)
	if got := f.pep.payloads(alice, NS); len(got) != 2 {
		t.Fatalf("items %q", got)
	}

	// A XEP-0402 change by a client is mirrored there, retractions too.
	f.pep.takeOps()
	f.clientPublish(t, NS, "z@muc", conf(` name='Z'/>`))
	if ops := f.pep.takeOps(); !slices.Equal(ops, []string{"publish " + NS + " z@muc", "publish " + NSLegacy + " current"}) {
		t.Fatalf("ops %q", ops)
	}
	leg := f.pep.payloads(alice, NSLegacy)
	if len(leg) != 1 || !strings.Contains(leg[0], "<conference jid='z@muc' name='Z'/>") || !strings.Contains(leg[0], "<url ") {
		t.Fatalf("legacy %q", leg)
	}
	if err := f.pep.Retract(context.Background(), alice, NS, "z@muc"); err != nil {
		t.Fatal(err)
	}
	if leg := f.pep.payloads(alice, NSLegacy); strings.Contains(leg[0], "z@muc") {
		t.Fatalf("legacy after retract %q", leg)
	}
}

// Bookmarks private XML held before this module served them move to
// XEP-0402 on first access.
func TestMigration(t *testing.T) {
	f := newFixture(t)
	old := storage(`<conference jid='a@muc' name='A' autojoin='true'/><url name='u' url='https://u/'/>`)
	_ = f.store.PutAccountData(context.Background(), alice, private.Key(NSLegacy, "storage"), []byte(old))
	f.clientPublish(t, NS, "b@muc", conf(`/>`))
	got := f.privateGet(t)
	if !strings.Contains(got, "<conference jid='a@muc' name='A' autojoin='true'/>") || !strings.Contains(got, "<conference jid='b@muc'/>") || !strings.Contains(got, "<url ") {
		t.Fatalf("got %s", got)
	}
	if b, _ := f.store.AccountData(context.Background(), alice, private.Key(NSLegacy, "storage")); b != nil {
		t.Fatal("old private XML kept")
	}
	if leg := f.pep.payloads(alice, NSLegacy); len(leg) != 1 || leg[0] != LegacyItem+"="+got {
		t.Fatalf("legacy node %q", leg)
	}
}

func TestErrors(t *testing.T) {
	f := newFixture(t)
	if err := f.privateSet(t, `<notstorage xmlns='storage:bookmarks'/>`); err == nil {
		t.Fatal("accepted a non-storage element")
	}
	f.pep.fail = errors.New("down")
	if err := f.privateSet(t, storage(`<conference jid='a@muc'/>`)); err == nil {
		t.Fatal("PEP failure not reported")
	}
	if _, err := f.priv.Get(context.Background(), alice, []*xmppmap.Element{xmppmap.NewElement(NSLegacy, "storage")}); err == nil {
		t.Fatal("PEP failure not reported")
	}
}

// Concurrent sets for one account leave the two views consistent.
func TestConcurrent(t *testing.T) {
	f := newFixture(t)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			if i%2 == 0 {
				_ = f.privateSet(t, storage(fmt.Sprintf(`<conference jid='r%d@muc'/>`, i)))
			} else {
				f.clientPublish(t, NSLegacy, "current", storage(fmt.Sprintf(`<conference jid='r%d@muc'/>`, i)))
			}
		})
	}
	wg.Wait()
	items := f.pep.payloads(alice, NS)
	if len(items) != 1 {
		t.Fatalf("items %q", items)
	}
	id, _, _ := strings.Cut(items[0], "=")
	if got := f.privateGet(t); got != storage(`<conference jid='`+id+`'/>`) {
		t.Fatalf("private %s, items %q", got, items)
	}
	if leg := f.pep.payloads(alice, NSLegacy); len(leg) != 1 || leg[0] != LegacyItem+"="+storage(`<conference jid='`+id+`'/>`) {
		t.Fatalf("legacy %q, items %q", leg, items)
	}
}

func TestXEPs(t *testing.T) {
	m := New(newFakePEP(), nil, &memStore{}, nil)
	got := map[int]xmppmap.XEP{}
	for _, x := range []xmppmap.Module{m, m.Legacy(), m.Conversion()} {
		got[x.XEP().Number] = x.XEP()
	}
	if !slices.Equal(got[402].AccountFeatures, []string{FeatureCompat, FeatureCompatPEP}) ||
		!slices.Equal(got[411].AccountFeatures, []string{NSConversion}) || got[48].Title != "Bookmarks" {
		t.Fatalf("%+v", got)
	}
}
