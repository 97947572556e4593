// Package dbtest is the storage conformance suite every backend must pass.
//
// A backend's test calls Run with a Backend. Every case gets a store of its
// own, so cases run in parallel. Beyond the comments of core.Store,
// core.Tx, core.Accounts and rosters.Tx, the suite pins down what callers
// rely on:
//
//   - State that belongs to a principal (inbox, last presence, watcher
//     information about it, roster items it owns, its roster version) can
//     only be written for an existing account: otherwise the write fails
//     with an error wrapping core.ErrNoSuchPrincipal. Subscriptions,
//     watchers and roster contacts may name anyone.
//   - Lists are ordered: Watchers by watcher, Watching by presentity,
//     WatcherInfo by (watcher, kind), RosterItems by contact, ListAccounts
//     by id, Account's credentials by hash, Offline by Seq.
//   - Times come back in UTC, equal (time.Time.Equal) to what was stored,
//     to the nanosecond; zero times stay zero. Byte slices come back as
//     stored, nil as nil. A stored message keeps every field of
//     core.Message, Delayed included. Roster groups keep order and duplicates; no
//     groups come back as nil.
//   - Offline(p, limit) with limit <= 0 returns every message. Seqs are
//     never reused, even after deletion.
//   - Deleting an account bumps the roster version of every owner whose
//     roster lost an item naming it.
//   - Personal eventing (XEP-0163) nodes and account data belong to their
//     owner like the inbox: writing them for a principal without account
//     fails with core.ErrNoSuchPrincipal, and deleting the account
//     removes them. A node's configuration comes back equal (reflect) to
//     what was stored. Items are newest first; re-publishing an id makes
//     it the newest and replaces it; PublishItem with keep > 0 leaves at
//     most keep items, however many publish at once. PubNodes are by name.
//   - A View reads one snapshot; Update rolls back when fn fails and
//     returns fn's error unchanged; concurrent Updates serialise without
//     errors.
package dbtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imppd/imppd/core"
	"github.com/imppd/imppd/rosters"
)

// Store is what a backend provides.
type Store interface {
	core.Store
	core.Accounts
	// Blocklists (XEP-0191) live outside transactions.
	Blocklist(ctx context.Context, owner core.PrincipalID) ([]string, error)
	Block(ctx context.Context, owner core.PrincipalID, jids []string) error
	Unblock(ctx context.Context, owner core.PrincipalID, jids []string) error
	// Message archives (XEP-0313).
	AppendArchive(ctx context.Context, entries []core.ArchiveEntry) error
	QueryArchive(ctx context.Context, q core.ArchiveQuery) (core.ArchivePage, error)
	ArchivePrefs(ctx context.Context, owner core.PrincipalID) (core.ArchivePrefs, error)
	SetArchivePrefs(ctx context.Context, owner core.PrincipalID, p core.ArchivePrefs) error
	PruneArchive(ctx context.Context, before time.Time) (int64, error)
	// Personal eventing (XEP-0163): the methods of xmppmap/pep.Store,
	// repeated here since the suite must not import xmppmap.
	PubNode(ctx context.Context, owner core.PrincipalID, name string) (core.MarkupNode, bool, error)
	PubNodes(ctx context.Context, owners ...core.PrincipalID) ([]core.MarkupNode, error)
	PutPubNode(ctx context.Context, n core.MarkupNode) error
	DeletePubNode(ctx context.Context, owner core.PrincipalID, name string) (bool, error)
	PublishItem(ctx context.Context, owner core.PrincipalID, node string, cfg core.NodeConfig, it core.MarkupItem, keep int) error
	RetractItem(ctx context.Context, owner core.PrincipalID, node, id string) (bool, error)
	PubItems(ctx context.Context, owner core.PrincipalID, node string, ids []string, max int) ([]core.MarkupItem, error)
	PubBytes(ctx context.Context, owner core.PrincipalID) (int64, error)
	TrimItems(ctx context.Context, owner core.PrincipalID, node string, keep int) error
	// Per-account values (XEP-0049 private storage, XEP-0054 vcard-temp):
	// nil when none; storing nil deletes.
	AccountData(ctx context.Context, owner core.PrincipalID, key string) ([]byte, error)
	PutAccountData(ctx context.Context, owner core.PrincipalID, key string, value []byte) error
	Close() error
}

// Backend describes a storage backend under test.
type Backend struct {
	// Open opens the store called name, creating it empty if needed. The
	// suite gives each case a fresh name, a path in a directory of its own
	// that exists; a file backend uses it as its file, others may derive a
	// database or schema name from it. Open fails the test itself on
	// error. The suite closes every store it opens.
	Open func(t *testing.T, name string) Store
	// Persistent says that a store opened again under the same name after
	// Close holds what was committed before. The Reopen case is skipped
	// otherwise.
	Persistent bool
}

// Run runs the conformance suite against b.
func Run(t *testing.T, b Backend) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h := &harness{t: t, b: b, name: filepath.Join(t.TempDir(), "store")}
			h.s = h.open()
			c.run(t, h)
		})
	}
}

type harness struct {
	t    *testing.T
	b    Backend
	name string
	s    Store
}

func (h *harness) open() Store {
	h.t.Helper()
	s := h.b.Open(h.t, h.name)
	closed := false
	var mu sync.Mutex
	h.t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		if !closed {
			s.Close()
		}
	})
	return &closeOnce{Store: s, closed: &closed, mu: &mu}
}

// reopen closes the store and opens it again under the same name.
func (h *harness) reopen() {
	h.t.Helper()
	if err := h.s.Close(); err != nil {
		h.t.Fatalf("Close: %v", err)
	}
	h.s = h.open()
}

type closeOnce struct {
	Store
	closed *bool
	mu     *sync.Mutex
}

func (c *closeOnce) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if *c.closed {
		return nil
	}
	*c.closed = true
	return c.Store.Close()
}

type testCase struct {
	name string
	run  func(t *testing.T, h *harness)
}

var cases = []testCase{
	{"Accounts", testAccounts},
	{"AccountErrors", testAccountErrors},
	{"DeleteAccountCascades", testDeleteCascade},
	{"OwnedStateNeedsAccount", testOwnedStateNeedsAccount},
	{"Subscription", testSubscription},
	{"WatchersWatching", testWatchersWatching},
	{"RecordWatcher", testRecordWatcher},
	{"LastPresence", testLastPresence},
	{"Offline", testOffline},
	{"Blocklist", testBlocklist},
	{"Archive", testArchive},
	{"ArchivePrefs", testArchivePrefs},
	{"PubNodes", testPubNodes},
	{"PubItems", testPubItems},
	{"PubTrim", testPubTrim},
	{"ConcurrentPublish", testConcurrentPublish},
	{"AccountData", testAccountData},
	{"RosterItems", testRosterItems},
	{"RosterVersion", testRosterVersion},
	{"TxIsRosterTx", testTxIsRosterTx},
	{"UpdateRollback", testRollback},
	{"UpdatePanicRollsBack", testPanic},
	{"ViewSeesCommitted", testViewSeesCommitted},
	{"ViewIsReadOnly", testViewReadOnly},
	{"ViewSnapshot", testViewSnapshot},
	{"ConcurrentUpdates", testConcurrentUpdates},
	{"Reopen", testReopen},
}

const (
	alice = core.PrincipalID("alice@example.org")
	bob   = core.PrincipalID("bob@example.org")
	carol = core.PrincipalID("carol@example.org")
	dave  = core.PrincipalID("dave@example.org")
	// remote has no account: it may be named, never own state.
	remote = core.PrincipalID("rita@remote.example")
)

// t0 has nanoseconds and a non-UTC zone, to prove both survive.
var t0 = time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.FixedZone("X", 3600))

func ctx(t *testing.T) context.Context { return t.Context() }

func create(t *testing.T, s Store, ids ...core.PrincipalID) {
	t.Helper()
	for _, id := range ids {
		if err := s.CreateAccount(ctx(t), core.Account{ID: id, Created: t0}); err != nil {
			t.Fatalf("CreateAccount(%s): %v", id, err)
		}
	}
}

// update runs fn in s.Update with a rosters.Tx and fails t on error.
func update(t *testing.T, s Store, fn func(rosters.Tx) error) {
	t.Helper()
	if err := s.Update(ctx(t), func(tx core.Tx) error { return fn(rtx(t, tx)) }); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

func view(t *testing.T, s Store, fn func(rosters.Tx) error) {
	t.Helper()
	if err := s.View(ctx(t), func(tx core.Tx) error { return fn(rtx(t, tx)) }); err != nil {
		t.Fatalf("View: %v", err)
	}
}

// rtx asserts that tx is a rosters.Tx; only on the test's goroutine.
func rtx(t *testing.T, tx core.Tx) rosters.Tx {
	t.Helper()
	r, err := asRosterTx(tx)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func asRosterTx(tx core.Tx) (rosters.Tx, error) {
	r, ok := tx.(rosters.Tx)
	if !ok {
		return nil, fmt.Errorf("transaction %T does not implement rosters.Tx", tx)
	}
	return r, nil
}

// must(f())(t) returns f's value, failing t if f failed.
func must[T any](v T, err error) func(*testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func noErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func equal(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %#v\nwant %#v", what, got, want)
	}
}

func sameTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if !got.Equal(want) {
		t.Errorf("%s: got %v, want %v", what, got, want)
	}
	if !got.IsZero() && got.Location() != time.UTC {
		t.Errorf("%s: location %v, want UTC", what, got.Location())
	}
}

func testAccounts(t *testing.T, h *harness) {
	s := h.s
	if ids := must(s.ListAccounts(ctx(t)))(t); len(ids) != 0 {
		t.Fatalf("new store lists %v", ids)
	}
	c1 := core.Credentials{Hash: "SHA-256", Salt: []byte("salt-256"), Iterations: 4096,
		StoredKey: []byte{1, 2, 3}, ServerKey: []byte{4, 5, 6}}
	c2 := core.Credentials{Hash: "SHA-1", Salt: []byte("salt-1"), Iterations: 10000,
		StoredKey: bytes.Repeat([]byte{0}, 20), ServerKey: bytes.Repeat([]byte{0xff}, 20)}
	if err := s.CreateAccount(ctx(t), core.Account{ID: bob, Credentials: []core.Credentials{c1, c2}, Created: t0}); err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	if err := s.CreateAccount(ctx(t), core.Account{ID: alice}); err != nil {
		t.Fatal(err)
	}
	equal(t, "ListAccounts", must(s.ListAccounts(ctx(t)))(t), []core.PrincipalID{alice, bob})

	a := must(s.Account(ctx(t), bob))(t)
	equal(t, "ID", a.ID, bob)
	sameTime(t, "Created", a.Created, t0)
	equal(t, "Credentials (by hash)", a.Credentials, []core.Credentials{c2, c1})

	a = must(s.Account(ctx(t), alice))(t)
	if len(a.Credentials) != 0 {
		t.Errorf("alice has credentials %v", a.Credentials)
	}
	if a.Created.Before(before.Add(-time.Second)) || a.Created.After(time.Now().Add(time.Second)) {
		t.Errorf("zero Created stored as %v, want about now", a.Created)
	}

	c3 := core.Credentials{Hash: "SHA-512", Salt: []byte("s"), Iterations: 1, StoredKey: []byte{7}, ServerKey: []byte{8}}
	if err := s.SetCredentials(ctx(t), bob, []core.Credentials{c3}); err != nil {
		t.Fatal(err)
	}
	equal(t, "credentials after SetCredentials", must(s.Account(ctx(t), bob))(t).Credentials, []core.Credentials{c3})
	if err := s.SetCredentials(ctx(t), bob, nil); err != nil {
		t.Fatal(err)
	}
	if c := must(s.Account(ctx(t), bob))(t).Credentials; len(c) != 0 {
		t.Errorf("credentials after SetCredentials(nil): %v", c)
	}

	view(t, s, func(tx rosters.Tx) error {
		for _, c := range []struct {
			id   core.PrincipalID
			want bool
		}{{alice, true}, {bob, true}, {carol, false}, {remote, false}} {
			if got := must(tx.AccountExists(ctx(t), c.id))(t); got != c.want {
				t.Errorf("AccountExists(%s) = %v", c.id, got)
			}
		}
		return nil
	})

	if err := s.DeleteAccount(ctx(t), alice); err != nil {
		t.Fatal(err)
	}
	equal(t, "ListAccounts after delete", must(s.ListAccounts(ctx(t)))(t), []core.PrincipalID{bob})
	// A deleted principal can be created again, from scratch.
	create(t, s, alice)
	equal(t, "ListAccounts after recreate", must(s.ListAccounts(ctx(t)))(t), []core.PrincipalID{alice, bob})
}

func testAccountErrors(t *testing.T, h *harness) {
	s := h.s
	create(t, s, alice)
	for _, c := range []struct {
		name string
		err  error
		want error
	}{
		{"CreateAccount existing", s.CreateAccount(ctx(t), core.Account{ID: alice}), core.ErrPrincipalExists},
		{"DeleteAccount unknown", s.DeleteAccount(ctx(t), bob), core.ErrNoSuchPrincipal},
		{"SetCredentials unknown", s.SetCredentials(ctx(t), bob, []core.Credentials{{Hash: "SHA-1"}}), core.ErrNoSuchPrincipal},
		{"Account unknown", func() error { _, err := s.Account(ctx(t), bob); return err }(), core.ErrNoSuchPrincipal},
	} {
		if !errors.Is(c.err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, c.err, c.want)
		}
	}
	// The failed calls changed nothing.
	equal(t, "ListAccounts", must(s.ListAccounts(ctx(t)))(t), []core.PrincipalID{alice})
	if err := s.DeleteAccount(ctx(t), alice); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteAccount(ctx(t), alice); !errors.Is(err, core.ErrNoSuchPrincipal) {
		t.Errorf("second DeleteAccount: %v", err)
	}
}

// testDeleteCascade: deleting alice removes everything naming her, and
// nothing else.
func testDeleteCascade(t *testing.T, h *harness) {
	s := h.s
	create(t, s, alice, bob, carol)
	var bobVer, carolVer int64
	update(t, s, func(tx rosters.Tx) error {
		for _, sub := range []core.Subscription{
			{Presentity: alice, Watcher: bob, State: core.SubActive},
			{Presentity: bob, Watcher: alice, State: core.SubPending, Request: []byte("hi")},
			{Presentity: carol, Watcher: alice, PreApproved: true},
			{Presentity: bob, Watcher: carol, State: core.SubActive}, // kept
		} {
			noErr(t, tx.PutSubscription(ctx(t), sub))
		}
		must(tx.RecordWatcher(ctx(t), alice, bob, core.WatchFetcher, t0))(t)
		must(tx.RecordWatcher(ctx(t), bob, alice, core.WatchSubscriber, t0))(t)
		must(tx.RecordWatcher(ctx(t), bob, carol, core.WatchSubscriber, t0))(t) // kept
		must(tx.PutOffline(ctx(t), alice, core.Message{ID: "m1", From: "bob@example.org/x", To: "alice@example.org"}))(t)
		must(tx.PutOffline(ctx(t), bob, core.Message{ID: "m2", From: "carol@example.org/x", To: "bob@example.org"}))(t) // kept
		noErr(t, tx.PutLastPresence(ctx(t), core.LastPresence{Presentity: alice, Stamp: t0}))
		noErr(t, tx.PutRosterItem(ctx(t), alice, rosters.Item{Contact: bob, Name: "Bob"}))
		noErr(t, tx.PutRosterItem(ctx(t), bob, rosters.Item{Contact: alice, Name: "Alice"}))
		noErr(t, tx.PutRosterItem(ctx(t), bob, rosters.Item{Contact: carol, Name: "Carol"})) // kept
		noErr(t, tx.PutRosterItem(ctx(t), carol, rosters.Item{Contact: alice}))
		must(tx.BumpRosterVersion(ctx(t), alice))(t)
		bobVer = must(tx.BumpRosterVersion(ctx(t), bob))(t)
		carolVer = must(tx.RosterVersion(ctx(t), carol))(t)
		return nil
	})
	for _, who := range []core.PrincipalID{alice, bob} { // bob's kept
		noErr(t, s.PublishItem(ctx(t), who, "urn:n", core.NodeConfig{}, core.MarkupItem{ID: "i", Stamp: t0}, 0))
		noErr(t, s.PutPubNode(ctx(t), core.MarkupNode{Owner: who, Name: "urn:empty"}))
		noErr(t, s.PutAccountData(ctx(t), who, "vcard", []byte("<vCard/>")))
	}

	if err := s.DeleteAccount(ctx(t), alice); err != nil {
		t.Fatal(err)
	}
	// Items go with their node: none is left behind to show up later.
	if n := must(s.PubNodes(ctx(t), alice))(t); len(n) != 0 {
		t.Errorf("alice's pep nodes survived: %+v", n)
	}
	if it := must(s.PubItems(ctx(t), alice, "urn:n", nil, 0))(t); len(it) != 0 {
		t.Errorf("alice's pep items survived: %+v", it)
	}
	if v := must(s.AccountData(ctx(t), alice, "vcard"))(t); v != nil {
		t.Errorf("alice's account data survived: %q", v)
	}
	if n := must(s.PubNodes(ctx(t), bob))(t); len(n) != 2 {
		t.Errorf("bob's pep nodes: %+v", n)
	}
	if it := must(s.PubItems(ctx(t), bob, "urn:n", nil, 0))(t); len(it) != 1 {
		t.Errorf("bob's pep items: %+v", it)
	}
	if v := must(s.AccountData(ctx(t), bob, "vcard"))(t); string(v) != "<vCard/>" {
		t.Errorf("bob's account data: %q", v)
	}

	view(t, s, func(tx rosters.Tx) error {
		if ok := must(tx.AccountExists(ctx(t), alice))(t); ok {
			t.Error("alice still exists")
		}
		for _, who := range []core.PrincipalID{alice, bob, carol} {
			for _, sub := range append(must(tx.Watchers(ctx(t), who))(t), must(tx.Watching(ctx(t), who))(t)...) {
				if sub.Presentity == alice || sub.Watcher == alice {
					t.Errorf("subscription %+v survived", sub)
				}
			}
			for _, r := range must(tx.WatcherInfo(ctx(t), who))(t) {
				if r.Presentity == alice || r.Watcher == alice {
					t.Errorf("watcher record %+v survived", r)
				}
			}
			for _, it := range must(tx.RosterItems(ctx(t), who))(t) {
				if who == alice || it.Contact == alice {
					t.Errorf("roster item %+v of %s survived", it, who)
				}
			}
		}
		equal(t, "bob's watchers", must(tx.Watchers(ctx(t), bob))(t),
			[]core.Subscription{{Presentity: bob, Watcher: carol, State: core.SubActive}})
		if n := len(must(tx.WatcherInfo(ctx(t), bob))(t)); n != 1 {
			t.Errorf("bob's watcher info has %d records, want carol's", n)
		}
		if n := must(tx.CountOffline(ctx(t), alice))(t); n != 0 {
			t.Errorf("alice's inbox holds %d", n)
		}
		if n := must(tx.CountOffline(ctx(t), bob))(t); n != 1 {
			t.Errorf("bob's inbox holds %d, want 1", n)
		}
		if _, ok, err := tx.LastPresence(ctx(t), alice); err != nil || ok {
			t.Errorf("alice's last presence: ok=%v err=%v", ok, err)
		}
		if v := must(tx.RosterVersion(ctx(t), alice))(t); v != 0 {
			t.Errorf("alice's roster version %d survived", v)
		}
		if n := len(must(tx.RosterItems(ctx(t), bob))(t)); n != 1 {
			t.Errorf("bob's roster has %d items, want carol", n)
		}
		// Rosters that lost alice have new versions.
		if v := must(tx.RosterVersion(ctx(t), bob))(t); v <= bobVer {
			t.Errorf("bob's roster version %d, want > %d", v, bobVer)
		}
		if v := must(tx.RosterVersion(ctx(t), carol))(t); v <= carolVer {
			t.Errorf("carol's roster version %d, want > %d", v, carolVer)
		}
		return nil
	})
	a := must(s.Account(ctx(t), bob))(t)
	equal(t, "bob", a.ID, bob)

	// alice, created again, starts empty.
	create(t, s, alice)
	view(t, s, func(tx rosters.Tx) error {
		if n := must(tx.CountOffline(ctx(t), alice))(t); n != 0 {
			t.Errorf("new alice's inbox holds %d", n)
		}
		if items := must(tx.RosterItems(ctx(t), alice))(t); len(items) != 0 {
			t.Errorf("new alice's roster: %v", items)
		}
		return nil
	})
	if _, ok := must3(s.PubNode(ctx(t), alice, "urn:n"))(t); ok {
		t.Error("new alice has the old alice's pep node")
	}
	if it := must(s.PubItems(ctx(t), alice, "urn:n", nil, 0))(t); len(it) != 0 {
		t.Errorf("new alice has the old alice's pep items: %+v", it)
	}
	if v := must(s.AccountData(ctx(t), alice, "vcard"))(t); v != nil {
		t.Errorf("new alice has the old alice's account data: %q", v)
	}
}

// must3(f())(t) is must for functions returning two values and an error.
func must3[T, U any](v T, u U, err error) func(*testing.T) (T, U) {
	return func(t *testing.T) (T, U) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v, u
	}
}

func testOwnedStateNeedsAccount(t *testing.T, h *harness) {
	s := h.s
	create(t, s, alice)
	for _, c := range []struct {
		name string
		fn   func(tx rosters.Tx) error
	}{
		{"PutOffline", func(tx rosters.Tx) error {
			_, err := tx.PutOffline(ctx(t), remote, core.Message{ID: "x"})
			return err
		}},
		{"PutLastPresence", func(tx rosters.Tx) error {
			return tx.PutLastPresence(ctx(t), core.LastPresence{Presentity: remote})
		}},
		{"RecordWatcher", func(tx rosters.Tx) error {
			_, err := tx.RecordWatcher(ctx(t), remote, alice, core.WatchFetcher, t0)
			return err
		}},
		{"PutRosterItem", func(tx rosters.Tx) error {
			return tx.PutRosterItem(ctx(t), remote, rosters.Item{Contact: alice})
		}},
		{"BumpRosterVersion", func(tx rosters.Tx) error {
			_, err := tx.BumpRosterVersion(ctx(t), remote)
			return err
		}},
	} {
		err := s.Update(ctx(t), func(tx core.Tx) error { return c.fn(rtx(t, tx)) })
		if !errors.Is(err, core.ErrNoSuchPrincipal) {
			t.Errorf("%s for a principal without account: got %v, want ErrNoSuchPrincipal", c.name, err)
		}
	}
	for _, c := range []struct {
		name string
		err  error
	}{
		{"PublishItem", s.PublishItem(ctx(t), remote, "urn:n", core.NodeConfig{}, core.MarkupItem{ID: "i"}, 1)},
		{"PutPubNode", s.PutPubNode(ctx(t), core.MarkupNode{Owner: remote, Name: "urn:n"})},
		{"PutAccountData", s.PutAccountData(ctx(t), remote, "k", []byte("v"))},
		{"PutAccountData nil", s.PutAccountData(ctx(t), remote, "k", nil)},
	} {
		if !errors.Is(c.err, core.ErrNoSuchPrincipal) {
			t.Errorf("%s for a principal without account: got %v, want ErrNoSuchPrincipal", c.name, c.err)
		}
	}
	if n := must(s.PubNodes(ctx(t), remote))(t); len(n) != 0 {
		t.Errorf("failed publish left nodes: %+v", n)
	}
	// Naming a principal without account is fine.
	update(t, s, func(tx rosters.Tx) error {
		noErr(t, tx.PutSubscription(ctx(t), core.Subscription{Presentity: alice, Watcher: remote, PreApproved: true}))
		noErr(t, tx.PutSubscription(ctx(t), core.Subscription{Presentity: remote, Watcher: alice, State: core.SubPending}))
		must(tx.RecordWatcher(ctx(t), alice, remote, core.WatchRefused, t0))(t)
		return tx.PutRosterItem(ctx(t), alice, rosters.Item{Contact: remote})
	})
}

func testSubscription(t *testing.T, h *harness) {
	s := h.s
	create(t, s, alice, bob)
	type step struct {
		put  *core.Subscription // stored first, when set
		want core.Subscription  // then read back for (alice, bob)
	}
	blank := core.Subscription{Presentity: alice, Watcher: bob}
	with := func(f func(*core.Subscription)) core.Subscription { s := blank; f(&s); return s }
	steps := []struct {
		name string
		step
	}{
		{"none stored", step{nil, blank}},
		{"pending with request", step{ptr(with(func(s *core.Subscription) {
			s.State, s.Request = core.SubPending, []byte("<status>let me in</status>")
		})), with(func(s *core.Subscription) {
			s.State, s.Request = core.SubPending, []byte("<status>let me in</status>")
		})}},
		{"binary request", step{ptr(with(func(s *core.Subscription) {
			s.State, s.Request = core.SubPending, []byte{0, 1, 0xfe, 0xff, 0}
		})), with(func(s *core.Subscription) {
			s.State, s.Request = core.SubPending, []byte{0, 1, 0xfe, 0xff, 0}
		})}},
		{"active, request dropped", step{ptr(with(func(s *core.Subscription) { s.State = core.SubActive })),
			with(func(s *core.Subscription) { s.State = core.SubActive })}},
		{"pre-approved only", step{ptr(with(func(s *core.Subscription) { s.PreApproved = true })),
			with(func(s *core.Subscription) { s.PreApproved = true })}},
		{"zero deletes", step{ptr(blank), blank}},
	}
	for _, st := range steps {
		if st.put != nil {
			update(t, s, func(tx rosters.Tx) error { return tx.PutSubscription(ctx(t), *st.put) })
		}
		view(t, s, func(tx rosters.Tx) error {
			equal(t, st.name, must(tx.Subscription(ctx(t), alice, bob))(t), st.want)
			// Direction matters: the reverse relation is untouched.
			equal(t, st.name+" (reverse)", must(tx.Subscription(ctx(t), bob, alice))(t),
				core.Subscription{Presentity: bob, Watcher: alice})
			return nil
		})
	}
	// A zero subscription is deleted, not stored: nobody lists it.
	view(t, s, func(tx rosters.Tx) error {
		if w := must(tx.Watchers(ctx(t), alice))(t); len(w) != 0 {
			t.Errorf("zero subscription still listed: %v", w)
		}
		return nil
	})
	// Putting a zero subscription that was never stored is fine.
	update(t, s, func(tx rosters.Tx) error {
		return tx.PutSubscription(ctx(t), core.Subscription{Presentity: bob, Watcher: alice})
	})
}

func ptr[T any](v T) *T { return &v }

func testWatchersWatching(t *testing.T, h *harness) {
	s := h.s
	create(t, s, alice, bob, carol, dave)
	subs := []core.Subscription{
		{Presentity: alice, Watcher: dave, State: core.SubActive},
		{Presentity: alice, Watcher: bob, State: core.SubPending, Request: []byte("r")},
		{Presentity: alice, Watcher: carol, PreApproved: true},
		{Presentity: bob, Watcher: alice, State: core.SubActive, PreApproved: true},
		{Presentity: carol, Watcher: alice, State: core.SubActive},
		{Presentity: alice, Watcher: remote, State: core.SubActive},
	}
	update(t, s, func(tx rosters.Tx) error {
		for _, sub := range subs {
			if err := tx.PutSubscription(ctx(t), sub); err != nil {
				return err
			}
		}
		return nil
	})
	view(t, s, func(tx rosters.Tx) error {
		for _, c := range []struct {
			name string
			got  []core.Subscription
			want []core.Subscription
		}{
			{"Watchers(alice)", must(tx.Watchers(ctx(t), alice))(t), []core.Subscription{subs[1], subs[2], subs[0], subs[5]}},
			{"Watching(alice)", must(tx.Watching(ctx(t), alice))(t), []core.Subscription{subs[3], subs[4]}},
			{"Watchers(bob)", must(tx.Watchers(ctx(t), bob))(t), []core.Subscription{subs[3]}},
			{"Watching(bob)", must(tx.Watching(ctx(t), bob))(t), []core.Subscription{subs[1]}},
			{"Watching(remote)", must(tx.Watching(ctx(t), remote))(t), []core.Subscription{subs[5]}},
			{"Watchers(dave)", must(tx.Watchers(ctx(t), dave))(t), nil},
		} {
			if len(c.got) == 0 && len(c.want) == 0 {
				continue
			}
			equal(t, c.name, c.got, c.want)
		}
		return nil
	})
}

func testRecordWatcher(t *testing.T, h *harness) {
	s := h.s
	create(t, s, alice, bob)
	t1, t2, t3 := t0.Add(time.Second), t0.Add(time.Minute), t0.Add(time.Hour)
	type rec struct {
		watcher core.PrincipalID
		kind    core.WatcherKind
		at      time.Time
		// the record as it was before
		count       int64
		first, last time.Time
	}
	steps := []rec{
		{bob, core.WatchFetcher, t1, 0, time.Time{}, time.Time{}},
		{bob, core.WatchFetcher, t2, 1, t1, t1},
		{bob, core.WatchFetcher, t3, 2, t1, t2},
		{bob, core.WatchPoller, t3, 0, time.Time{}, time.Time{}},
		{carol, core.WatchRefused, t1, 0, time.Time{}, time.Time{}},
		{remote, core.WatchSubscriber, t2, 0, time.Time{}, time.Time{}},
		{carol, core.WatchRefused, t0, 1, t1, t1}, // an earlier time is still the last one
	}
	for i, st := range steps {
		update(t, s, func(tx rosters.Tx) error {
			prev := must(tx.RecordWatcher(ctx(t), alice, st.watcher, st.kind, st.at))(t)
			what := fmt.Sprintf("step %d: before", i)
			equal(t, what+": names", [3]any{prev.Presentity, prev.Watcher, prev.Kind}, [3]any{alice, st.watcher, st.kind})
			equal(t, what+": count", prev.Count, st.count)
			sameTime(t, what+": first", prev.First, st.first)
			sameTime(t, what+": last", prev.Last, st.last)
			return nil
		})
	}
	record := func(w core.PrincipalID, k core.WatcherKind, n int64, first, last time.Time) core.WatcherRecord {
		return core.WatcherRecord{Presentity: alice, Watcher: w, Kind: k, Count: n, First: first, Last: last}
	}
	want := []core.WatcherRecord{
		record(bob, core.WatchFetcher, 3, t1, t3),
		record(bob, core.WatchPoller, 1, t3, t3),
		record(carol, core.WatchRefused, 2, t1, t0),
		record(remote, core.WatchSubscriber, 1, t2, t2),
	}
	view(t, s, func(tx rosters.Tx) error {
		got := must(tx.WatcherInfo(ctx(t), alice))(t)
		if len(got) != len(want) {
			t.Fatalf("WatcherInfo(alice): %d records, want %d: %+v", len(got), len(want), got)
		}
		for i := range want {
			g, w := got[i], want[i]
			equal(t, fmt.Sprintf("record %d", i), [4]any{g.Presentity, g.Watcher, g.Kind, g.Count}, [4]any{w.Presentity, w.Watcher, w.Kind, w.Count})
			sameTime(t, fmt.Sprintf("record %d first", i), g.First, w.First)
			sameTime(t, fmt.Sprintf("record %d last", i), g.Last, w.Last)
		}
		if r := must(tx.WatcherInfo(ctx(t), bob))(t); len(r) != 0 {
			t.Errorf("WatcherInfo(bob) = %v", r)
		}
		return nil
	})
	// A failed transaction does not count.
	errBoom := errors.New("boom")
	err := s.Update(ctx(t), func(tx core.Tx) error {
		must(tx.RecordWatcher(ctx(t), alice, bob, core.WatchFetcher, t3))(t)
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("Update: %v", err)
	}
	view(t, s, func(tx rosters.Tx) error {
		if c := must(tx.WatcherInfo(ctx(t), alice))(t)[0].Count; c != 3 {
			t.Errorf("count after rollback %d, want 3", c)
		}
		return nil
	})
}

func testLastPresence(t *testing.T, h *harness) {
	s := h.s
	create(t, s, alice, bob)
	view(t, s, func(tx rosters.Tx) error {
		if lp, ok, err := tx.LastPresence(ctx(t), alice); err != nil || ok {
			t.Errorf("LastPresence before any: %+v %v %v", lp, ok, err)
		}
		return nil
	})
	for i, lp := range []core.LastPresence{
		{Presentity: alice, Status: core.Status{Basic: core.Closed, Show: "away", Text: "gone fishing ✓"},
			Markup: []byte("<c xmlns='http://jabber.org/protocol/caps'/>"), Stamp: t0},
		{Presentity: alice, Status: core.Status{Basic: core.Open}, Stamp: t0.Add(time.Hour)},
		{Presentity: alice},
	} {
		update(t, s, func(tx rosters.Tx) error { return tx.PutLastPresence(ctx(t), lp) })
		view(t, s, func(tx rosters.Tx) error {
			got, ok, err := tx.LastPresence(ctx(t), alice)
			if err != nil || !ok {
				t.Fatalf("LastPresence %d: ok=%v err=%v", i, ok, err)
			}
			sameTime(t, fmt.Sprintf("%d: Stamp", i), got.Stamp, lp.Stamp)
			got.Stamp, lp.Stamp = time.Time{}, time.Time{}
			equal(t, fmt.Sprintf("LastPresence %d", i), got, lp)
			if _, ok, _ := tx.LastPresence(ctx(t), bob); ok {
				t.Error("bob has a last presence")
			}
			return nil
		})
	}
}

func testOffline(t *testing.T, h *harness) {
	s := h.s
	create(t, s, alice, bob)
	msgs := []core.Message{
		{ID: "m1", From: "bob@example.org/phone", To: "alice@example.org", Kind: core.MsgChat,
			Payload: []byte("<message><body>one</body></message>"), Storable: true, Stamp: t0},
		{ID: "m2", From: "rita@remote.example/x", To: "alice@example.org/laptop", Kind: core.MsgNormal,
			Payload: []byte{0, 0xff, 0}, Stamp: t0.Add(time.Millisecond)},
		{ID: "m3", From: "bob@example.org/phone", To: "alice@example.org", Kind: core.MsgHeadline},
		{ID: "m4", From: "bob@example.org/phone", To: "alice@example.org", Kind: core.MsgError, Storable: true, Delayed: true, Stamp: t0},
	}
	var seqs []int64
	update(t, s, func(tx rosters.Tx) error {
		for i, m := range msgs {
			seqs = append(seqs, must(tx.PutOffline(ctx(t), alice, m))(t))
			if i == 1 {
				must(tx.PutOffline(ctx(t), bob, core.Message{ID: "b1", To: "bob@example.org"}))(t)
			}
		}
		return nil
	})
	for i := 1; i < len(seqs); i++ {
		if seqs[i] <= seqs[i-1] {
			t.Fatalf("seqs not increasing: %v", seqs)
		}
	}
	check := func(what string, got []core.StoredMessage, want []int) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: %d messages, want %d", what, len(got), len(want))
		}
		for k, i := range want {
			g := got[k]
			if g.Seq != seqs[i] {
				t.Errorf("%s[%d]: seq %d, want %d", what, k, g.Seq, seqs[i])
			}
			sameTime(t, fmt.Sprintf("%s[%d] stamp", what, k), g.Stamp, msgs[i].Stamp)
			m := g.Message
			m.Stamp = msgs[i].Stamp
			equal(t, fmt.Sprintf("%s[%d]", what, k), m, msgs[i])
		}
	}
	view(t, s, func(tx rosters.Tx) error {
		equal(t, "CountOffline(alice)", must(tx.CountOffline(ctx(t), alice))(t), 4)
		equal(t, "CountOffline(bob)", must(tx.CountOffline(ctx(t), bob))(t), 1)
		check("Offline(alice, 0)", must(tx.Offline(ctx(t), alice, 0))(t), []int{0, 1, 2, 3})
		check("Offline(alice, 10)", must(tx.Offline(ctx(t), alice, 10))(t), []int{0, 1, 2, 3})
		check("Offline(alice, 2)", must(tx.Offline(ctx(t), alice, 2))(t), []int{0, 1})
		return nil
	})
	update(t, s, func(tx rosters.Tx) error { return tx.DeleteOffline(ctx(t), alice, seqs[1]) })
	view(t, s, func(tx rosters.Tx) error {
		equal(t, "CountOffline(alice) after delete", must(tx.CountOffline(ctx(t), alice))(t), 2)
		equal(t, "CountOffline(bob) untouched", must(tx.CountOffline(ctx(t), bob))(t), 1)
		check("Offline(alice) after delete", must(tx.Offline(ctx(t), alice, 0))(t), []int{2, 3})
		return nil
	})
	// Deleting everything, then storing again: seqs are not reused.
	update(t, s, func(tx rosters.Tx) error { return tx.DeleteOffline(ctx(t), alice, seqs[3]) })
	update(t, s, func(tx rosters.Tx) error {
		if seq := must(tx.PutOffline(ctx(t), alice, msgs[0]))(t); seq <= seqs[3] {
			t.Errorf("seq %d reused after delete (last was %d)", seq, seqs[3])
		}
		return nil
	})
	view(t, s, func(tx rosters.Tx) error {
		equal(t, "CountOffline(alice) at end", must(tx.CountOffline(ctx(t), alice))(t), 1)
		if m := must(tx.Offline(ctx(t), carol, 0))(t); len(m) != 0 {
			t.Errorf("Offline(carol) = %v", m)
		}
		return nil
	})
}

func testRosterItems(t *testing.T, h *harness) {
	s := h.s
	create(t, s, alice, bob)
	items := []rosters.Item{
		{Contact: dave, Name: "Dave", Groups: []string{"Work", "Friends", "Work", ""}},
		{Contact: bob, Name: "", Groups: nil},
		{Contact: remote, Name: "Rita ✓ <&>", Groups: []string{"Zeta", "Alpha"}},
		{Contact: carol, Name: "Carol", Groups: []string{}}, // empty reads back as nil
	}
	update(t, s, func(tx rosters.Tx) error {
		for _, it := range items {
			if err := tx.PutRosterItem(ctx(t), alice, it); err != nil {
				return err
			}
		}
		return tx.PutRosterItem(ctx(t), bob, rosters.Item{Contact: alice, Name: "A"})
	})
	wantCarol := items[3]
	wantCarol.Groups = nil
	view(t, s, func(tx rosters.Tx) error {
		equal(t, "RosterItems(alice)", must(tx.RosterItems(ctx(t), alice))(t),
			[]rosters.Item{items[1], wantCarol, items[0], items[2]})
		for _, it := range []rosters.Item{items[0], items[1], items[2], wantCarol} {
			got, ok, err := tx.RosterItem(ctx(t), alice, it.Contact)
			if err != nil || !ok {
				t.Fatalf("RosterItem(%s): ok=%v err=%v", it.Contact, ok, err)
			}
			equal(t, "RosterItem "+string(it.Contact), got, it)
		}
		if _, ok, err := tx.RosterItem(ctx(t), bob, dave); err != nil || ok {
			t.Errorf("RosterItem(bob, dave): ok=%v err=%v", ok, err)
		}
		return nil
	})
	// Update in place, then delete.
	changed := rosters.Item{Contact: dave, Name: "David", Groups: []string{"B", "A"}}
	update(t, s, func(tx rosters.Tx) error {
		if err := tx.PutRosterItem(ctx(t), alice, changed); err != nil {
			return err
		}
		if err := tx.DeleteRosterItem(ctx(t), alice, bob); err != nil {
			return err
		}
		return tx.DeleteRosterItem(ctx(t), alice, "nobody@example.org") // absent: no error
	})
	view(t, s, func(tx rosters.Tx) error {
		equal(t, "RosterItems(alice) after changes", must(tx.RosterItems(ctx(t), alice))(t),
			[]rosters.Item{wantCarol, changed, items[2]})
		equal(t, "RosterItems(bob)", must(tx.RosterItems(ctx(t), bob))(t),
			[]rosters.Item{{Contact: alice, Name: "A"}})
		if it := must(tx.RosterItems(ctx(t), carol))(t); len(it) != 0 {
			t.Errorf("RosterItems(carol) = %v", it)
		}
		return nil
	})
}

func testRosterVersion(t *testing.T, h *harness) {
	s := h.s
	create(t, s, alice, bob)
	view(t, s, func(tx rosters.Tx) error {
		equal(t, "initial version", must(tx.RosterVersion(ctx(t), alice))(t), int64(0))
		equal(t, "version of a principal without account", must(tx.RosterVersion(ctx(t), remote))(t), int64(0))
		return nil
	})
	last := int64(0)
	for i := 0; i < 5; i++ {
		update(t, s, func(tx rosters.Tx) error {
			v := must(tx.BumpRosterVersion(ctx(t), alice))(t)
			if v <= last {
				t.Errorf("bump %d: %d, not above %d", i, v, last)
			}
			if cur := must(tx.RosterVersion(ctx(t), alice))(t); cur != v {
				t.Errorf("RosterVersion after bump = %d, want %d", cur, v)
			}
			last = v
			return nil
		})
	}
	view(t, s, func(tx rosters.Tx) error {
		equal(t, "alice's version", must(tx.RosterVersion(ctx(t), alice))(t), last)
		equal(t, "bob's version is his own", must(tx.RosterVersion(ctx(t), bob))(t), int64(0))
		return nil
	})
	// A bump in a failed transaction is forgotten.
	errBoom := errors.New("boom")
	_ = s.Update(ctx(t), func(tx core.Tx) error {
		must(rtx(t, tx).BumpRosterVersion(ctx(t), alice))(t)
		return errBoom
	})
	view(t, s, func(tx rosters.Tx) error {
		equal(t, "version after rollback", must(tx.RosterVersion(ctx(t), alice))(t), last)
		return nil
	})
}

func testTxIsRosterTx(t *testing.T, h *harness) {
	for _, run := range []func(context.Context, func(core.Tx) error) error{h.s.Update, h.s.View} {
		if err := run(ctx(t), func(tx core.Tx) error {
			if _, ok := tx.(rosters.Tx); !ok {
				return fmt.Errorf("%T is not a rosters.Tx", tx)
			}
			return nil
		}); err != nil {
			t.Error(err)
		}
	}
}

// testRollback: when fn fails, none of its writes are kept, and its error
// comes back unchanged.
func testRollback(t *testing.T, h *harness) {
	s := h.s
	create(t, s, alice, bob)
	errBoom := &core.RefusedError{Reason: core.ReasonPolicy}
	err := s.Update(ctx(t), func(ctx0 core.Tx) error {
		tx := rtx(t, ctx0)
		c := t.Context()
		noErr(t, tx.PutSubscription(c, core.Subscription{Presentity: alice, Watcher: bob, State: core.SubActive}))
		must(tx.RecordWatcher(c, alice, bob, core.WatchSubscriber, t0))(t)
		noErr(t, tx.PutLastPresence(c, core.LastPresence{Presentity: alice}))
		must(tx.PutOffline(c, alice, core.Message{ID: "m"}))(t)
		noErr(t, tx.PutRosterItem(c, alice, rosters.Item{Contact: bob}))
		must(tx.BumpRosterVersion(c, alice))(t)
		// The transaction sees its own writes.
		if sub := must(tx.Subscription(c, alice, bob))(t); sub.State != core.SubActive {
			t.Errorf("own write not visible: %+v", sub)
		}
		return errBoom
	})
	var re *core.RefusedError
	if !errors.As(err, &re) || re != errBoom {
		t.Fatalf("Update returned %v, want fn's error", err)
	}
	view(t, s, func(tx rosters.Tx) error {
		c := t.Context()
		if sub := must(tx.Subscription(c, alice, bob))(t); !sub.IsZero() {
			t.Errorf("subscription kept: %+v", sub)
		}
		if r := must(tx.WatcherInfo(c, alice))(t); len(r) != 0 {
			t.Errorf("watcher info kept: %+v", r)
		}
		if _, ok, _ := tx.LastPresence(c, alice); ok {
			t.Error("last presence kept")
		}
		if n := must(tx.CountOffline(c, alice))(t); n != 0 {
			t.Errorf("offline kept: %d", n)
		}
		if it := must(tx.RosterItems(c, alice))(t); len(it) != 0 {
			t.Errorf("roster kept: %v", it)
		}
		if v := must(tx.RosterVersion(c, alice))(t); v != 0 {
			t.Errorf("roster version kept: %d", v)
		}
		return nil
	})
	// The store still works.
	update(t, s, func(tx rosters.Tx) error {
		return tx.PutSubscription(ctx(t), core.Subscription{Presentity: alice, Watcher: bob, State: core.SubPending})
	})
}

// testPanic: a panicking fn rolls back and leaves the store usable.
func testPanic(t *testing.T, h *harness) {
	s := h.s
	create(t, s, alice)
	func() {
		defer func() {
			if recover() == nil {
				t.Error("panic swallowed")
			}
		}()
		_ = s.Update(ctx(t), func(tx core.Tx) error {
			noErr(t, rtx(t, tx).PutRosterItem(ctx(t), alice, rosters.Item{Contact: bob}))
			panic("boom")
		})
	}()
	update(t, s, func(tx rosters.Tx) error {
		if it := must(tx.RosterItems(ctx(t), alice))(t); len(it) != 0 {
			t.Errorf("write of panicking Update kept: %v", it)
		}
		return nil
	})
}

func testViewSeesCommitted(t *testing.T, h *harness) {
	s := h.s
	create(t, s, alice, bob)
	for i := 1; i <= 3; i++ {
		update(t, s, func(tx rosters.Tx) error {
			_, err := tx.PutOffline(ctx(t), alice, core.Message{ID: fmt.Sprint(i)})
			return err
		})
		view(t, s, func(tx rosters.Tx) error {
			equal(t, "count after commit", must(tx.CountOffline(ctx(t), alice))(t), i)
			return nil
		})
	}
	// Accounts' changes are visible to transactions, and the reverse.
	create(t, s, carol)
	view(t, s, func(tx rosters.Tx) error {
		if !must(tx.AccountExists(ctx(t), carol))(t) {
			t.Error("new account not visible to View")
		}
		return nil
	})
}

func testViewReadOnly(t *testing.T, h *harness) {
	s := h.s
	create(t, s, alice, bob)
	err := s.View(ctx(t), func(tx core.Tx) error {
		return tx.PutSubscription(ctx(t), core.Subscription{Presentity: alice, Watcher: bob, State: core.SubActive})
	})
	if err == nil {
		t.Error("write in View succeeded")
	}
	view(t, s, func(tx rosters.Tx) error {
		if sub := must(tx.Subscription(ctx(t), alice, bob))(t); !sub.IsZero() {
			t.Errorf("write in View kept: %+v", sub)
		}
		return nil
	})
}

// testViewSnapshot: a View reads one snapshot even while an Update commits
// meanwhile; the Update is not lost and does not fail. A backend may let
// the Update commit during the view or hold it until the view ends.
func testViewSnapshot(t *testing.T, h *harness) {
	s := h.s
	create(t, s, alice)
	update(t, s, func(tx rosters.Tx) error { _, err := tx.BumpRosterVersion(ctx(t), alice); return err })
	started := make(chan struct{})
	written := make(chan error, 1)
	view(t, s, func(tx rosters.Tx) error {
		v1 := must(tx.RosterVersion(ctx(t), alice))(t)
		go func() {
			<-started
			written <- s.Update(ctx(t), func(tx core.Tx) error {
				r, err := asRosterTx(tx)
				if err != nil {
					return err
				}
				_, err = r.BumpRosterVersion(ctx(t), alice)
				return err
			})
		}()
		close(started)
		select {
		case err := <-written:
			if err != nil {
				t.Errorf("Update during View: %v", err)
			}
			written <- nil
		case <-time.After(300 * time.Millisecond):
		}
		if v2 := must(tx.RosterVersion(ctx(t), alice))(t); v2 != v1 {
			t.Errorf("View saw %d then %d", v1, v2)
		}
		return nil
	})
	if err := <-written; err != nil {
		t.Fatalf("Update during View: %v", err)
	}
	view(t, s, func(tx rosters.Tx) error {
		equal(t, "version after both", must(tx.RosterVersion(ctx(t), alice))(t), int64(2))
		return nil
	})
}

// testConcurrentUpdates: many goroutines update at once, with views in
// between; every Update succeeds (no SQLITE_BUSY or the like) and none is
// lost.
func testConcurrentUpdates(t *testing.T, h *harness) {
	s := h.s
	create(t, s, alice, bob)
	const workers, each = 16, 20
	var wg sync.WaitGroup
	errs := make(chan error, 2*workers*each)
	for w := 0; w < workers; w++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				errs <- s.Update(ctx(t), func(tx core.Tx) error {
					r, err := asRosterTx(tx)
					if err != nil {
						return err
					}
					if _, err = r.BumpRosterVersion(ctx(t), alice); err != nil {
						return err
					}
					if _, err = r.RecordWatcher(ctx(t), alice, bob, core.WatchFetcher, time.Now()); err != nil {
						return err
					}
					_, err = r.PutOffline(ctx(t), alice, core.Message{ID: fmt.Sprintf("%d-%d", w, i)})
					return err
				})
			}
		}()
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				errs <- s.View(ctx(t), func(tx core.Tx) error {
					n, err := tx.CountOffline(ctx(t), alice)
					if err != nil {
						return err
					}
					r, err := asRosterTx(tx)
					if err != nil {
						return err
					}
					v, err := r.RosterVersion(ctx(t), alice)
					if err != nil {
						return err
					}
					// Each Update adds one message and one version: a
					// view sees both or neither.
					if int64(n) != v {
						return fmt.Errorf("torn read: %d messages, version %d", n, v)
					}
					return nil
				})
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	view(t, s, func(tx rosters.Tx) error {
		equal(t, "messages", must(tx.CountOffline(ctx(t), alice))(t), workers*each)
		equal(t, "roster version", must(tx.RosterVersion(ctx(t), alice))(t), int64(workers*each))
		equal(t, "fetch count", must(tx.WatcherInfo(ctx(t), alice))(t)[0].Count, int64(workers*each))
		return nil
	})
}

// testReopen: committed state survives Close and Open.
func testReopen(t *testing.T, h *harness) {
	if !h.b.Persistent {
		t.Skip("backend does not persist")
	}
	s := h.s
	cred := core.Credentials{Hash: "SHA-256", Salt: []byte("salt"), Iterations: 4096, StoredKey: []byte{1}, ServerKey: []byte{2}}
	if err := s.CreateAccount(ctx(t), core.Account{ID: alice, Credentials: []core.Credentials{cred}, Created: t0}); err != nil {
		t.Fatal(err)
	}
	create(t, s, bob)
	sub := core.Subscription{Presentity: alice, Watcher: bob, State: core.SubPending, Request: []byte("hello")}
	item := rosters.Item{Contact: bob, Name: "Bob", Groups: []string{"b", "a"}}
	msg := core.Message{ID: "m", From: "bob@example.org/x", To: "alice@example.org", Kind: core.MsgChat, Payload: []byte("p"), Storable: true, Stamp: t0}
	var seq, ver int64
	update(t, s, func(tx rosters.Tx) error {
		noErr(t, tx.PutSubscription(ctx(t), sub))
		must(tx.RecordWatcher(ctx(t), alice, bob, core.WatchSubscriber, t0))(t)
		noErr(t, tx.PutLastPresence(ctx(t), core.LastPresence{Presentity: alice, Status: core.Status{Show: "xa"}, Stamp: t0}))
		seq = must(tx.PutOffline(ctx(t), alice, msg))(t)
		noErr(t, tx.PutRosterItem(ctx(t), alice, item))
		ver = must(tx.BumpRosterVersion(ctx(t), alice))(t)
		return nil
	})
	node := core.MarkupNode{Owner: alice, Name: "urn:n", Config: pepCfg}
	noErr(t, s.PutPubNode(ctx(t), node))
	items := []core.MarkupItem{
		{ID: "old", Publisher: "alice@example.org/a", Stamp: t0, Payload: []byte("<a/>")},
		{ID: "new", Publisher: "alice@example.org/b", Stamp: t0.Add(time.Nanosecond), Payload: []byte{0, 0xff}},
	}
	for _, it := range items {
		noErr(t, s.PublishItem(ctx(t), alice, node.Name, core.NodeConfig{}, it, 0))
	}
	noErr(t, s.PutAccountData(ctx(t), alice, "vcard", []byte("<vCard/>")))
	h.reopen()
	s = h.s
	equal(t, "pep nodes", must(s.PubNodes(ctx(t), alice))(t), []core.MarkupNode{node})
	checkItems(t, "pep items", must(s.PubItems(ctx(t), alice, node.Name, nil, 0))(t), []core.MarkupItem{items[1], items[0]})
	equal(t, "account data", must(s.AccountData(ctx(t), alice, "vcard"))(t), []byte("<vCard/>"))
	// Publishing after reopen still makes the newest item.
	noErr(t, s.PublishItem(ctx(t), alice, node.Name, core.NodeConfig{}, items[0], 0))
	checkItems(t, "pep items after reopen", must(s.PubItems(ctx(t), alice, node.Name, nil, 0))(t), items)
	a := must(s.Account(ctx(t), alice))(t)
	sameTime(t, "Created", a.Created, t0)
	equal(t, "credentials", a.Credentials, []core.Credentials{cred})
	equal(t, "accounts", must(s.ListAccounts(ctx(t)))(t), []core.PrincipalID{alice, bob})
	view(t, s, func(tx rosters.Tx) error {
		equal(t, "subscription", must(tx.Subscription(ctx(t), alice, bob))(t), sub)
		if r := must(tx.WatcherInfo(ctx(t), alice))(t); len(r) != 1 || r[0].Count != 1 {
			t.Errorf("watcher info: %+v", r)
		}
		if lp, ok, err := tx.LastPresence(ctx(t), alice); err != nil || !ok || lp.Status.Show != "xa" {
			t.Errorf("last presence: %+v %v %v", lp, ok, err)
		}
		m := must(tx.Offline(ctx(t), alice, 0))(t)
		if len(m) != 1 || m[0].Seq != seq || m[0].ID != "m" {
			t.Errorf("offline: %+v", m)
		}
		equal(t, "roster", must(tx.RosterItems(ctx(t), alice))(t), []rosters.Item{item})
		equal(t, "roster version", must(tx.RosterVersion(ctx(t), alice))(t), ver)
		return nil
	})
	// Counters continue where they were.
	update(t, s, func(tx rosters.Tx) error {
		if v := must(tx.BumpRosterVersion(ctx(t), alice))(t); v <= ver {
			t.Errorf("version after reopen %d, want > %d", v, ver)
		}
		if n := must(tx.PutOffline(ctx(t), alice, msg))(t); n <= seq {
			t.Errorf("seq after reopen %d, want > %d", n, seq)
		}
		return nil
	})
}

func testBlocklist(t *testing.T, h *harness) {
	s := h.s
	create(t, s, alice, bob)
	c := ctx(t)
	if l, err := s.Blocklist(c, alice); err != nil || len(l) != 0 {
		t.Fatalf("empty blocklist: %v %v", l, err)
	}
	if err := s.Block(c, alice, []string{"spam.example", "eve@evil.example/phone", "bob@x"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Block(c, alice, []string{"bob@x"}); err != nil {
		t.Fatalf("blocking twice: %v", err)
	}
	if l, _ := s.Blocklist(c, alice); !slices.Equal(l, []string{"bob@x", "eve@evil.example/phone", "spam.example"}) {
		t.Fatalf("blocklist: %v", l)
	}
	if l, _ := s.Blocklist(c, bob); len(l) != 0 {
		t.Fatalf("bob's blocklist: %v", l)
	}
	if err := s.Unblock(c, alice, []string{"bob@x", "not@there"}); err != nil {
		t.Fatal(err)
	}
	if l, _ := s.Blocklist(c, alice); !slices.Equal(l, []string{"eve@evil.example/phone", "spam.example"}) {
		t.Fatalf("after unblock: %v", l)
	}
	if err := s.Unblock(c, alice, nil); err != nil {
		t.Fatal(err)
	}
	if l, _ := s.Blocklist(c, alice); len(l) != 0 {
		t.Fatalf("after unblock all: %v", l)
	}
	if err := s.Block(c, "nobody@x", []string{"a@b"}); !errors.Is(err, core.ErrNoSuchPrincipal) {
		t.Fatalf("block for unknown owner: %v", err)
	}
	if err := s.Block(c, bob, []string{"a@b"}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteAccount(c, bob); err != nil {
		t.Fatal(err)
	}
	if l, _ := s.Blocklist(c, bob); len(l) != 0 {
		t.Fatalf("blocklist survives its owner: %v", l)
	}
}

func testArchive(t *testing.T, h *harness) {
	s := h.s
	create(t, s, alice, bob)
	c := ctx(t)
	var entries []core.ArchiveEntry
	for i := 0; i < 10; i++ {
		with := core.AgentID("bob@x/phone")
		if i%2 == 1 {
			with = "carol@y/pc"
		}
		entries = append(entries, core.ArchiveEntry{Owner: alice, ID: fmt.Sprintf("id%d", i), With: with, Outgoing: i%3 == 0,
			Stamp: t0.Add(time.Duration(i) * time.Minute), Payload: []byte(fmt.Sprintf("<message><body>%d</body></message>", i))})
	}
	if err := s.AppendArchive(c, entries[:6]); err != nil {
		t.Fatal(err)
	}
	// Appending again (a retried batch) does not duplicate.
	if err := s.AppendArchive(c, entries); err != nil {
		t.Fatal(err)
	}
	ids := func(p core.ArchivePage) string {
		var out []string
		for _, e := range p.Entries {
			out = append(out, e.ID)
		}
		return strings.Join(out, ",")
	}
	for _, tc := range []struct {
		name     string
		q        core.ArchiveQuery
		want     string
		complete bool
		count    int
	}{
		{"all", core.ArchiveQuery{Owner: alice}, "id0,id1,id2,id3,id4,id5,id6,id7,id8,id9", true, 10},
		{"first page", core.ArchiveQuery{Owner: alice, Max: 3}, "id0,id1,id2", false, 10},
		{"after", core.ArchiveQuery{Owner: alice, Max: 3, AfterID: "id2"}, "id3,id4,id5", false, 10},
		{"after to the end", core.ArchiveQuery{Owner: alice, Max: 3, AfterID: "id6"}, "id7,id8,id9", true, 10},
		{"last page", core.ArchiveQuery{Owner: alice, Max: 3, Last: true}, "id7,id8,id9", false, 10},
		{"before", core.ArchiveQuery{Owner: alice, Max: 3, Last: true, BeforeID: "id3"}, "id0,id1,id2", true, 10},
		{"with bare", core.ArchiveQuery{Owner: alice, With: "bob@x"}, "id0,id2,id4,id6,id8", true, 5},
		{"with full", core.ArchiveQuery{Owner: alice, With: "carol@y/pc", Max: 2}, "id1,id3", false, 5},
		{"with other resource", core.ArchiveQuery{Owner: alice, With: "carol@y/phone"}, "", true, 0},
		{"time range", core.ArchiveQuery{Owner: alice, Start: t0.Add(2 * time.Minute), End: t0.Add(4 * time.Minute)}, "id2,id3,id4", true, 3},
		{"ids", core.ArchiveQuery{Owner: alice, IDs: []string{"id9", "id1", "nope"}}, "id1,id9", true, 2},
		{"other owner", core.ArchiveQuery{Owner: bob}, "", true, 0},
	} {
		p, err := s.QueryArchive(c, tc.q)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := ids(p); got != tc.want || p.Complete != tc.complete || p.Count != tc.count {
			t.Errorf("%s: got %q complete=%v count=%d, want %q %v %d", tc.name, got, p.Complete, p.Count, tc.want, tc.complete, tc.count)
		}
	}
	p, _ := s.QueryArchive(c, core.ArchiveQuery{Owner: alice, IDs: []string{"id3"}})
	if e := p.Entries[0]; e.With != "carol@y/pc" || e.Outgoing != true || !e.Stamp.Equal(t0.Add(3*time.Minute)) || string(e.Payload) != "<message><body>3</body></message>" {
		t.Errorf("entry fields: %+v", e)
	}
	if _, err := s.QueryArchive(c, core.ArchiveQuery{Owner: alice, AfterID: "unknown"}); !errors.Is(err, core.ErrNoSuchEntry) {
		t.Errorf("unknown after-id: %v", err)
	}
	if n, err := s.PruneArchive(c, t0.Add(5*time.Minute)); err != nil || n != 5 {
		t.Errorf("prune: %d %v", n, err)
	}
	if p, _ := s.QueryArchive(c, core.ArchiveQuery{Owner: alice}); p.Count != 5 || p.Entries[0].ID != "id5" {
		t.Errorf("after prune: %q", ids(p))
	}
	if err := s.AppendArchive(c, []core.ArchiveEntry{{Owner: "nobody@x", ID: "1", With: "a@b", Stamp: t0, Payload: []byte("x")}}); !errors.Is(err, core.ErrNoSuchPrincipal) {
		t.Errorf("archive for unknown owner: %v", err)
	}
	if err := s.DeleteAccount(c, alice); err != nil {
		t.Fatal(err)
	}
	if p, _ := s.QueryArchive(c, core.ArchiveQuery{Owner: alice}); p.Count != 0 {
		t.Errorf("archive survives its owner: %d", p.Count)
	}
}

func testArchivePrefs(t *testing.T, h *harness) {
	s := h.s
	create(t, s, alice)
	c := ctx(t)
	if p, err := s.ArchivePrefs(c, alice); err != nil || p.Default != "always" || len(p.Always)+len(p.Never) != 0 {
		t.Fatalf("default prefs: %+v %v", p, err)
	}
	want := core.ArchivePrefs{Default: "roster", Always: []string{"a@b"}, Never: []string{"spam@x", "c@d"}}
	if err := s.SetArchivePrefs(c, alice, want); err != nil {
		t.Fatal(err)
	}
	if p, _ := s.ArchivePrefs(c, alice); !reflect.DeepEqual(p, want) {
		t.Errorf("prefs: %+v", p)
	}
	if err := s.SetArchivePrefs(c, alice, core.ArchivePrefs{Default: "never"}); err != nil {
		t.Fatal(err)
	}
	if p, _ := s.ArchivePrefs(c, alice); p.Default != "never" || len(p.Always) != 0 {
		t.Errorf("prefs replaced: %+v", p)
	}
}

// pepCfg sets every field of core.NodeConfig (testPubNodes checks that
// none is left zero), so each is proved to round-trip; Groups has a
// duplicate and is out of order, which must be kept.
var pepCfg = core.NodeConfig{
	Access:        core.AccessRoster,
	Groups:        []string{"Friends", "Family", "Friends"},
	Persist:       true,
	MaxItems:      core.MaxItemsUnbounded,
	SendLast:      "on_sub_and_presence",
	NotifyRetract: true,
	Title:         "Avatar \u2713 <&>",
}

// checkItems compares items field by field: stamps with sameTime, payloads
// exactly (nil stays nil).
func checkItems(t *testing.T, what string, got, want []core.MarkupItem) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: got %d items %v, want %v", what, len(got), itemIDs(got), itemIDs(want))
		return
	}
	for i := range got {
		g, w := got[i], want[i]
		sameTime(t, fmt.Sprintf("%s[%d] stamp", what, i), g.Stamp, w.Stamp)
		g.Stamp, w.Stamp = time.Time{}, time.Time{}
		equal(t, fmt.Sprintf("%s[%d]", what, i), g, w)
	}
}

func itemIDs(items []core.MarkupItem) string {
	var ids []string
	for _, it := range items {
		ids = append(ids, it.ID)
	}
	return strings.Join(ids, ",")
}

func testPubNodes(t *testing.T, h *harness) {
	s := h.s
	create(t, s, alice, bob)
	c := ctx(t)
	v := reflect.ValueOf(pepCfg)
	for i := 0; i < v.NumField(); i++ {
		if v.Field(i).IsZero() {
			t.Errorf("pepCfg leaves NodeConfig.%s zero: set it, so its round trip is tested", v.Type().Field(i).Name)
		}
	}
	if _, ok := must3(s.PubNode(c, alice, "urn:b"))(t); ok {
		t.Fatal("new store has a node")
	}
	if n := must(s.PubNodes(c, alice))(t); len(n) != 0 {
		t.Fatalf("new store lists nodes %+v", n)
	}

	// Publishing creates the node with cfg; publishing again keeps it.
	it1 := core.MarkupItem{ID: "1", Publisher: "alice@example.org/phone", Stamp: t0, Payload: []byte("<x/>")}
	noErr(t, s.PublishItem(c, alice, "urn:b", pepCfg, it1, 0))
	n, ok := must3(s.PubNode(c, alice, "urn:b"))(t)
	if !ok {
		t.Fatal("publish created no node")
	}
	equal(t, "node created by publish", n, core.MarkupNode{Owner: alice, Name: "urn:b", Config: pepCfg})
	it2 := core.MarkupItem{ID: "2", Publisher: "alice@example.org/pc", Stamp: t0.Add(time.Second)}
	noErr(t, s.PublishItem(c, alice, "urn:b", core.NodeConfig{Access: core.AccessOpen}, it2, 0))
	n, _ = must3(s.PubNode(c, alice, "urn:b"))(t)
	equal(t, "config after second publish", n.Config, pepCfg)

	// PutPubNode creates and replaces; a replaced node keeps its items.
	minimal := core.NodeConfig{Access: core.AccessPresence} // nil Groups stay nil
	replaced := pepCfg
	replaced.Groups, replaced.MaxItems, replaced.Persist = []string{"Work"}, 10, false
	for _, nd := range []core.MarkupNode{
		{Owner: alice, Name: "urn:c", Config: pepCfg},
		{Owner: alice, Name: "urn:a", Config: minimal},
		{Owner: alice, Name: "urn:b", Config: replaced},
		{Owner: bob, Name: "urn:a", Config: pepCfg},
	} {
		noErr(t, s.PutPubNode(c, nd))
	}
	equal(t, "alice's nodes, by name", must(s.PubNodes(c, alice))(t), []core.MarkupNode{
		{Owner: alice, Name: "urn:a", Config: minimal},
		{Owner: alice, Name: "urn:b", Config: replaced},
		{Owner: alice, Name: "urn:c", Config: pepCfg},
	})
	equal(t, "bob's nodes", must(s.PubNodes(c, bob))(t), []core.MarkupNode{{Owner: bob, Name: "urn:a", Config: pepCfg}})
	// Several owners at once (a watcher's contacts), by owner then name;
	// unknown owners add nothing, no owners give nothing.
	both := must(s.PubNodes(c, bob, "nobody@example.org", alice))(t)
	if len(both) != 4 || both[0].Owner != alice || both[3].Owner != bob {
		t.Errorf("nodes of alice and bob: %v", both)
	}
	if n := must(s.PubNodes(c))(t); len(n) != 0 {
		t.Errorf("nodes of no owners: %v", n)
	}
	checkItems(t, "items of the replaced node", must(s.PubItems(c, alice, "urn:b", nil, 0))(t), []core.MarkupItem{it2, it1})
	if _, ok := must3(s.PubNode(c, bob, "urn:b"))(t); ok {
		t.Error("bob sees alice's node")
	}

	for _, st := range []struct {
		name  string
		owner core.PrincipalID
		node  string
		want  bool
	}{
		{"delete", alice, "urn:b", true},
		{"delete again", alice, "urn:b", false},
		{"delete another's", bob, "urn:c", false},
		{"delete never there", alice, "urn:z", false},
	} {
		if got := must(s.DeletePubNode(c, st.owner, st.node))(t); got != st.want {
			t.Errorf("%s: DeletePubNode = %v, want %v", st.name, got, st.want)
		}
	}
	if _, ok := must3(s.PubNode(c, alice, "urn:b"))(t); ok {
		t.Error("deleted node still there")
	}
	if it := must(s.PubItems(c, alice, "urn:b", nil, 0))(t); len(it) != 0 {
		t.Errorf("deleted node's items: %v", itemIDs(it))
	}
	if n := must(s.PubNodes(c, alice))(t); len(n) != 2 {
		t.Errorf("after delete: %+v", n)
	}
	// Created again, the node starts empty.
	noErr(t, s.PutPubNode(c, core.MarkupNode{Owner: alice, Name: "urn:b"}))
	if it := must(s.PubItems(c, alice, "urn:b", nil, 0))(t); len(it) != 0 {
		t.Errorf("recreated node has items: %v", itemIDs(it))
	}
}

func testPubItems(t *testing.T, h *harness) {
	s := h.s
	create(t, s, alice, bob)
	c := ctx(t)
	const node = "urn:xmpp:microblog:0"
	// Stamps differ in nanoseconds and come in t0's zone, to prove both
	// survive.
	item := func(id string, i int) core.MarkupItem {
		return core.MarkupItem{ID: id, Publisher: core.AgentID(fmt.Sprintf("alice@example.org/r%d", i)),
			Stamp: t0.Add(time.Duration(i)*time.Minute + time.Duration(i)), Payload: []byte(fmt.Sprintf("<entry n='%d'/>", i))}
	}
	stored := map[string]core.MarkupItem{}
	publish := func(it core.MarkupItem) {
		t.Helper()
		noErr(t, s.PublishItem(c, alice, node, core.NodeConfig{}, it, 0))
		stored[it.ID] = it
	}
	for i, id := range []string{"a", "b", "c", "d", "e"} {
		publish(item(id, i))
	}
	// Same ids elsewhere are other items.
	noErr(t, s.PublishItem(c, alice, "other", core.NodeConfig{}, item("a", 99), 0))
	noErr(t, s.PublishItem(c, bob, node, core.NodeConfig{}, item("a", 98), 0))

	retract := func(owner core.PrincipalID, n, id string, want bool) func() {
		return func() {
			t.Helper()
			if got := must(s.RetractItem(c, owner, n, id))(t); got != want {
				t.Errorf("RetractItem(%s, %s, %s) = %v, want %v", owner, n, id, got, want)
			}
		}
	}
	for _, st := range []struct {
		name string
		do   func()
		ids  []string
		max  int
		want string
	}{
		{"newest first", nil, nil, 0, "e,d,c,b,a"},
		{"max", nil, nil, 2, "e,d"},
		{"max beyond count", nil, nil, 10, "e,d,c,b,a"},
		{"negative max is all", nil, nil, -1, "e,d,c,b,a"},
		{"ids, newest first, missing left out", nil, []string{"a", "nope", "c", "a"}, 0, "c,a"},
		{"ids ignore max", nil, []string{"a", "b"}, 1, "b,a"},
		{"only missing ids", nil, []string{"x", "y"}, 0, ""},
		{"re-publish moves to newest and replaces", func() { publish(item("b", 7)) }, nil, 0, "b,e,d,c,a"},
		{"re-published, by id", nil, []string{"e", "b"}, 0, "b,e"},
		{"retract", retract(alice, node, "c", true), nil, 0, "b,e,d,a"},
		{"retract again", retract(alice, node, "c", false), nil, 0, "b,e,d,a"},
		{"retract in another node", retract(alice, "other", "d", false), nil, 0, "b,e,d,a"},
		{"retract another's", retract(bob, node, "e", false), nil, 0, "b,e,d,a"},
		{"retract newest", retract(alice, node, "b", true), nil, 0, "e,d,a"},
		{"newest after retracting the newest", func() { publish(item("c", 8)) }, nil, 0, "c,e,d,a"},
		{"no payload, zero stamp", func() {
			publish(core.MarkupItem{ID: "f", Publisher: "alice@example.org/r"})
		}, nil, 0, "f,c,e,d,a"},
		{"binary payload", func() {
			publish(core.MarkupItem{ID: "g", Publisher: "alice@example.org/r", Stamp: t0, Payload: []byte{0, 1, 0xfe, 0xff, 0}})
		}, nil, 1, "g"},
	} {
		if st.do != nil {
			st.do()
		}
		got := must(s.PubItems(c, alice, node, st.ids, st.max))(t)
		var want []core.MarkupItem
		if st.want != "" {
			for _, id := range strings.Split(st.want, ",") {
				want = append(want, stored[id])
			}
		}
		checkItems(t, st.name, got, want)
	}
	checkItems(t, "other node", must(s.PubItems(c, alice, "other", nil, 0))(t), []core.MarkupItem{item("a", 99)})
	checkItems(t, "bob's node", must(s.PubItems(c, bob, node, nil, 0))(t), []core.MarkupItem{item("a", 98)})
	if it := must(s.PubItems(c, alice, "missing", nil, 0))(t); len(it) != 0 {
		t.Errorf("missing node has items: %v", itemIDs(it))
	}
}

// testPubTrim: PublishItem with keep > 0 leaves the newest keep items of
// that node only.
func testPubTrim(t *testing.T, h *harness) {
	s := h.s
	create(t, s, alice)
	c := ctx(t)
	for _, id := range []string{"x", "y"} {
		noErr(t, s.PublishItem(c, alice, "untouched", core.NodeConfig{}, core.MarkupItem{ID: id}, 0))
	}
	for _, tc := range []struct {
		name    string
		publish string
		keep    int
		want    string
	}{
		{"keep 3 of 5", "1,2,3,4,5", 3, "5,4,3"},
		{"keep 0 keeps all", "1,2,3,4,5", 0, "5,4,3,2,1"},
		{"keep 1", "1,2,3", 1, "3"},
		{"keep more than published", "1,2", 5, "2,1"},
		{"re-publish within keep", "1,2,3,1", 3, "1,3,2"},
		{"re-publish an evicted id", "1,2,3,4,1", 3, "1,4,3"},
		{"re-publish the only item", "1,1,1", 1, "1"},
	} {
		for _, id := range strings.Split(tc.publish, ",") {
			noErr(t, s.PublishItem(c, alice, tc.name, core.NodeConfig{}, core.MarkupItem{ID: id, Stamp: t0}, tc.keep))
		}
		if got := itemIDs(must(s.PubItems(c, alice, tc.name, nil, 0))(t)); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
	// A later publish with a smaller keep trims what is there.
	noErr(t, s.PublishItem(c, alice, "keep 0 keeps all", core.NodeConfig{}, core.MarkupItem{ID: "6"}, 2))
	if got := itemIDs(must(s.PubItems(c, alice, "keep 0 keeps all", nil, 0))(t)); got != "6,5" {
		t.Errorf("smaller keep: %s, want 6,5", got)
	}
	if got := itemIDs(must(s.PubItems(c, alice, "untouched", nil, 0))(t)); got != "y,x" {
		t.Errorf("trimming touched another node: %s", got)
	}
	// TrimItems trims on its own; keep 0 purges.
	noErr(t, s.TrimItems(c, alice, "keep 3 of 5", 2))
	if got := itemIDs(must(s.PubItems(c, alice, "keep 3 of 5", nil, 0))(t)); got != "5,4" {
		t.Errorf("TrimItems 2: %s, want 5,4", got)
	}
	noErr(t, s.TrimItems(c, alice, "keep 3 of 5", 0))
	if got := itemIDs(must(s.PubItems(c, alice, "keep 3 of 5", nil, 0))(t)); got != "" {
		t.Errorf("TrimItems 0: %s, want none", got)
	}
	if got := itemIDs(must(s.PubItems(c, alice, "untouched", nil, 0))(t)); got != "y,x" {
		t.Errorf("TrimItems touched another node: %s", got)
	}
	// PubBytes counts what is kept, over all of the owner's nodes.
	create(t, s, bob)
	noErr(t, s.PublishItem(c, bob, "a", core.NodeConfig{}, core.MarkupItem{ID: "1", Payload: []byte("12345")}, 1))
	noErr(t, s.PublishItem(c, bob, "b", core.NodeConfig{}, core.MarkupItem{ID: "1", Payload: []byte("123")}, 1))
	noErr(t, s.PublishItem(c, bob, "a", core.NodeConfig{}, core.MarkupItem{ID: "2", Payload: []byte("1234567")}, 1))
	if n := must(s.PubBytes(c, bob))(t); n != 10 {
		t.Errorf("PubBytes = %d, want 10 (trimmed items not counted)", n)
	}
	if n := must(s.PubBytes(c, "nobody@localhost"))(t); n != 0 {
		t.Errorf("PubBytes of an unknown owner = %d", n)
	}
}

// testConcurrentPublish: publishers to one node with keep race readers;
// no reader ever sees more than keep items, and what remains is each
// publisher's newest.
func testConcurrentPublish(t *testing.T, h *harness) {
	s := h.s
	create(t, s, alice)
	const workers, each, keep, node = 8, 25, 5, "urn:n"
	var wg sync.WaitGroup
	errs := make(chan error, 3*workers*each)
	for w := 0; w < workers; w++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				it := core.MarkupItem{ID: fmt.Sprintf("%d-%d", w, i), Stamp: time.Now(), Payload: []byte{byte(i)}}
				errs <- s.PublishItem(ctx(t), alice, node, core.NodeConfig{}, it, keep)
				if i%5 == 0 { // one id everyone re-publishes
					errs <- s.PublishItem(ctx(t), alice, node, core.NodeConfig{}, core.MarkupItem{ID: "shared"}, keep)
				}
			}
		}()
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				items, err := s.PubItems(ctx(t), alice, node, nil, 0)
				if err == nil && len(items) > keep {
					err = fmt.Errorf("reader saw %d items, keep is %d", len(items), keep)
				}
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	items := must(s.PubItems(ctx(t), alice, node, nil, 0))(t)
	if len(items) != keep {
		t.Fatalf("%d items left, want %d: %s", len(items), keep, itemIDs(items))
	}
	// Each publisher's items that remain are its newest, newest first.
	next := map[int]int{}
	seen := map[string]bool{}
	for _, it := range items {
		if seen[it.ID] {
			t.Errorf("id %s twice", it.ID)
		}
		seen[it.ID] = true
		var w, i int
		if it.ID == "shared" {
			continue
		}
		if _, err := fmt.Sscanf(it.ID, "%d-%d", &w, &i); err != nil {
			t.Fatalf("item %q: %v", it.ID, err)
		}
		want, ok := next[w]
		if !ok {
			want = each - 1
		}
		if i != want {
			t.Errorf("publisher %d: kept item %d, want %d (items %s)", w, i, want, itemIDs(items))
		}
		next[w] = i - 1
	}
}

func testAccountData(t *testing.T, h *harness) {
	s := h.s
	create(t, s, alice, bob)
	c := ctx(t)
	const bookmarks, vcard = "jabber:iq:private storage:bookmarks", "vcard-temp"
	noErr(t, s.PutAccountData(c, bob, vcard, []byte("<vCard><FN>Bob</FN></vCard>")))
	for _, st := range []struct {
		name  string
		key   string
		value []byte // stored under key, nil deletes
		want  []byte // then read back
	}{
		{"set", bookmarks, []byte("<storage/>"), []byte("<storage/>")},
		{"overwrite", bookmarks, []byte("<storage><conference/></storage>"), []byte("<storage><conference/></storage>")},
		{"binary", vcard, []byte{0, 1, 0xfe, 0xff, 0}, []byte{0, 1, 0xfe, 0xff, 0}},
		{"empty is not none", "empty", []byte{}, []byte{}},
		{"delete", bookmarks, nil, nil},
		{"delete again", bookmarks, nil, nil},
		{"delete never set", "never", nil, nil},
	} {
		if err := s.PutAccountData(c, alice, st.key, st.value); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		equal(t, st.name, must(s.AccountData(c, alice, st.key))(t), st.want)
	}
	// Keys are separate, owners are separate.
	equal(t, "vcard after bookmarks deleted", must(s.AccountData(c, alice, vcard))(t), []byte{0, 1, 0xfe, 0xff, 0})
	equal(t, "bob's vcard", must(s.AccountData(c, bob, vcard))(t), []byte("<vCard><FN>Bob</FN></vCard>"))
	if v := must(s.AccountData(c, bob, bookmarks))(t); v != nil {
		t.Errorf("bob sees %q", v)
	}
	if v := must(s.AccountData(c, remote, vcard))(t); v != nil {
		t.Errorf("unknown owner has %q", v)
	}
}
