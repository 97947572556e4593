// Package coretest provides in-memory fakes of the interfaces core declares,
// for tests: a map-based Store (core.Store, core.Tx and core.Accounts) and a
// Recorder (core.Notifier) that keeps every effect it is handed.
//
// The Store has the transaction semantics core.Store documents: Update runs
// fn on a private copy of the data and publishes it only when fn returns
// nil; View sees the last committed snapshot and refuses writes. Packages
// that keep their own state in the same transactions (rosters) attach it
// as an Extension and wrap each transaction with NewWith.
package coretest

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/imppd/imppd/core"
)

// ErrReadOnly is returned by writes attempted inside View.
var ErrReadOnly = errors.New("coretest: write in a read-only transaction")

// Extension is extra state kept in the store's transactions. Clone must
// return a deep copy: a transaction works on a clone and the clone
// replaces the original when the transaction commits.
type Extension interface {
	Clone() Extension
}

type subKey struct{ presentity, watcher core.PrincipalID }

type infoKey struct {
	presentity, watcher core.PrincipalID
	kind                core.WatcherKind
}

type data struct {
	accounts map[core.PrincipalID]core.Account
	subs     map[subKey]core.Subscription
	info     map[infoKey]core.WatcherRecord
	last     map[core.PrincipalID]core.LastPresence
	offline  map[core.PrincipalID][]core.StoredMessage
	nextSeq  map[core.PrincipalID]int64
	ext      Extension
}

func cloneBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	return slices.Clone(b)
}

func (d *data) clone() *data {
	c := &data{
		accounts: make(map[core.PrincipalID]core.Account, len(d.accounts)),
		subs:     make(map[subKey]core.Subscription, len(d.subs)),
		info:     maps.Clone(d.info),
		last:     make(map[core.PrincipalID]core.LastPresence, len(d.last)),
		offline:  make(map[core.PrincipalID][]core.StoredMessage, len(d.offline)),
		nextSeq:  maps.Clone(d.nextSeq),
	}
	for k, a := range d.accounts {
		a.Credentials = slices.Clone(a.Credentials)
		c.accounts[k] = a
	}
	for k, s := range d.subs {
		s.Request = cloneBytes(s.Request)
		c.subs[k] = s
	}
	for k, lp := range d.last {
		lp.Markup = cloneBytes(lp.Markup)
		c.last[k] = lp
	}
	for k, ms := range d.offline {
		c.offline[k] = slices.Clone(ms)
	}
	if d.ext != nil {
		c.ext = d.ext.Clone()
	}
	return c
}

// Store is an in-memory core.Store and core.Accounts.
type Store struct {
	wmu  sync.Mutex   // serialises writers
	mu   sync.RWMutex // guards cur
	cur  *data
	wrap func(*Tx) core.Tx

	firstSeq  int64
	conflicts int // Update runs fn this many extra times, discarding the result
	failNext  error
	updates   int
}

// New returns an empty store.
func New() *Store { return NewWith(nil, nil) }

// NewWith returns an empty store that keeps ext in its transactions and
// hands fn wrap(tx) instead of tx when wrap is set.
func NewWith(ext Extension, wrap func(*Tx) core.Tx) *Store {
	return &Store{
		cur: &data{
			accounts: map[core.PrincipalID]core.Account{},
			subs:     map[subKey]core.Subscription{},
			info:     map[infoKey]core.WatcherRecord{},
			last:     map[core.PrincipalID]core.LastPresence{},
			offline:  map[core.PrincipalID][]core.StoredMessage{},
			nextSeq:  map[core.PrincipalID]int64{},
			ext:      ext,
		},
		wrap:     wrap,
		firstSeq: 1,
	}
}

// SetFirstSeq sets the Seq of the first message stored in each inbox
// (default 1); call it before storing any.
func (s *Store) SetFirstSeq(n int64) {
	s.wmu.Lock()
	s.firstSeq = n
	s.wmu.Unlock()
}

// Conflict makes the next Update run fn n extra times and discard those
// runs, as a store that retries serialisation failures does.
func (s *Store) Conflict(n int) {
	s.wmu.Lock()
	s.conflicts = n
	s.wmu.Unlock()
}

// FailNextUpdate makes the next Update discard fn's writes and return err
// although fn succeeded, as a failed commit does.
func (s *Store) FailNextUpdate(err error) {
	s.wmu.Lock()
	s.failNext = err
	s.wmu.Unlock()
}

// Updates reports how many Update calls committed.
func (s *Store) Updates() int {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.updates
}

func (s *Store) snapshot() *data {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cur
}

func (s *Store) tx(t *Tx) core.Tx {
	if s.wrap != nil {
		return s.wrap(t)
	}
	return t
}

// Update implements core.Store.
func (s *Store) Update(ctx context.Context, fn func(core.Tx) error) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	for ; s.conflicts > 0; s.conflicts-- {
		t := &Tx{d: s.snapshot().clone(), store: s, writable: true}
		_ = fn(s.tx(t))
	}
	t := &Tx{d: s.snapshot().clone(), store: s, writable: true}
	err := fn(s.tx(t))
	t.done = true
	if err != nil {
		return err
	}
	if err := s.failNext; err != nil {
		s.failNext = nil
		return err
	}
	s.mu.Lock()
	s.cur = t.d
	s.mu.Unlock()
	s.updates++
	return nil
}

// View implements core.Store. It may be called from inside Update's fn; it
// then sees the last committed state, not fn's writes.
func (s *Store) View(ctx context.Context, fn func(core.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	t := &Tx{d: s.snapshot(), store: s}
	err := fn(s.tx(t))
	t.done = true
	return err
}

// Tx is one transaction of a Store. It implements core.Tx.
type Tx struct {
	d        *data
	store    *Store
	writable bool
	done     bool
}

var errDone = errors.New("coretest: transaction used after it ended")

func (t *Tx) write() error {
	if t.done {
		return errDone
	}
	if !t.writable {
		return ErrReadOnly
	}
	return nil
}

func (t *Tx) read() error {
	if t.done {
		return errDone
	}
	return nil
}

// Ext returns the transaction's copy of the store's Extension.
func (t *Tx) Ext() Extension { return t.d.ext }

// Write reports ErrReadOnly inside View, so an Extension's writers can
// refuse like core's.
func (t *Tx) Write() error { return t.write() }

func (t *Tx) AccountExists(_ context.Context, id core.PrincipalID) (bool, error) {
	if err := t.read(); err != nil {
		return false, err
	}
	_, ok := t.d.accounts[id]
	return ok, nil
}

func (t *Tx) Subscription(_ context.Context, presentity, watcher core.PrincipalID) (core.Subscription, error) {
	if err := t.read(); err != nil {
		return core.Subscription{}, err
	}
	s, ok := t.d.subs[subKey{presentity, watcher}]
	if !ok {
		return core.Subscription{Presentity: presentity, Watcher: watcher}, nil
	}
	s.Request = cloneBytes(s.Request)
	return s, nil
}

func (t *Tx) PutSubscription(_ context.Context, s core.Subscription) error {
	if err := t.write(); err != nil {
		return err
	}
	k := subKey{s.Presentity, s.Watcher}
	if s.IsZero() {
		delete(t.d.subs, k)
		return nil
	}
	s.Request = cloneBytes(s.Request)
	t.d.subs[k] = s
	return nil
}

func (t *Tx) subsWhere(keep func(subKey) bool, less func(a, b core.Subscription) bool) []core.Subscription {
	var out []core.Subscription
	for k, s := range t.d.subs {
		if keep(k) {
			s.Request = cloneBytes(s.Request)
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return less(out[i], out[j]) })
	return out
}

func (t *Tx) Watchers(_ context.Context, p core.PrincipalID) ([]core.Subscription, error) {
	if err := t.read(); err != nil {
		return nil, err
	}
	return t.subsWhere(func(k subKey) bool { return k.presentity == p },
		func(a, b core.Subscription) bool { return a.Watcher < b.Watcher }), nil
}

func (t *Tx) Watching(_ context.Context, w core.PrincipalID) ([]core.Subscription, error) {
	if err := t.read(); err != nil {
		return nil, err
	}
	return t.subsWhere(func(k subKey) bool { return k.watcher == w },
		func(a, b core.Subscription) bool { return a.Presentity < b.Presentity }), nil
}

func (t *Tx) RecordWatcher(_ context.Context, presentity, watcher core.PrincipalID, kind core.WatcherKind, at time.Time) (core.WatcherRecord, error) {
	if err := t.write(); err != nil {
		return core.WatcherRecord{}, err
	}
	k := infoKey{presentity, watcher, kind}
	prev := t.d.info[k]
	r := prev
	if r.Count == 0 {
		r = core.WatcherRecord{Presentity: presentity, Watcher: watcher, Kind: kind, First: at}
	}
	r.Count++
	r.Last = at
	t.d.info[k] = r
	return prev, nil
}

func (t *Tx) WatcherInfo(_ context.Context, presentity core.PrincipalID) ([]core.WatcherRecord, error) {
	if err := t.read(); err != nil {
		return nil, err
	}
	var out []core.WatcherRecord
	for k, r := range t.d.info {
		if k.presentity == presentity {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Watcher != out[j].Watcher {
			return out[i].Watcher < out[j].Watcher
		}
		return out[i].Kind < out[j].Kind
	})
	return out, nil
}

func (t *Tx) LastPresence(_ context.Context, p core.PrincipalID) (core.LastPresence, bool, error) {
	if err := t.read(); err != nil {
		return core.LastPresence{}, false, err
	}
	lp, ok := t.d.last[p]
	lp.Markup = cloneBytes(lp.Markup)
	return lp, ok, nil
}

func (t *Tx) PutLastPresence(_ context.Context, lp core.LastPresence) error {
	if err := t.write(); err != nil {
		return err
	}
	lp.Markup = cloneBytes(lp.Markup)
	t.d.last[lp.Presentity] = lp
	return nil
}

func (t *Tx) PutOffline(_ context.Context, to core.PrincipalID, m core.Message) (int64, error) {
	if err := t.write(); err != nil {
		return 0, err
	}
	seq, ok := t.d.nextSeq[to]
	if !ok {
		seq = t.store.firstSeq
	}
	t.d.nextSeq[to] = seq + 1
	m.Payload = cloneBytes(m.Payload)
	t.d.offline[to] = append(t.d.offline[to], core.StoredMessage{Seq: seq, Message: m})
	return seq, nil
}

func (t *Tx) CountOffline(_ context.Context, p core.PrincipalID) (int, error) {
	if err := t.read(); err != nil {
		return 0, err
	}
	return len(t.d.offline[p]), nil
}

func (t *Tx) Offline(_ context.Context, p core.PrincipalID, limit int) ([]core.StoredMessage, error) {
	if err := t.read(); err != nil {
		return nil, err
	}
	ms := t.d.offline[p]
	if limit >= 0 && len(ms) > limit {
		ms = ms[:limit]
	}
	out := slices.Clone(ms)
	for i := range out {
		out[i].Payload = cloneBytes(out[i].Payload)
	}
	return out, nil
}

func (t *Tx) DeleteOffline(_ context.Context, p core.PrincipalID, upto int64) error {
	if err := t.write(); err != nil {
		return err
	}
	ms := t.d.offline[p]
	i := 0
	for i < len(ms) && ms[i].Seq <= upto {
		i++
	}
	if i == len(ms) {
		delete(t.d.offline, p)
	} else {
		t.d.offline[p] = slices.Clone(ms[i:])
	}
	return nil
}

// CreateAccount implements core.Accounts.
func (s *Store) CreateAccount(ctx context.Context, a core.Account) error {
	return s.account(ctx, func(d *data) error {
		if _, ok := d.accounts[a.ID]; ok {
			return core.ErrPrincipalExists
		}
		a.Credentials = slices.Clone(a.Credentials)
		d.accounts[a.ID] = a
		return nil
	})
}

// DeleteAccount implements core.Accounts: the principal, its
// subscriptions both ways, watcher information naming it, last presence
// and inbox go.
func (s *Store) DeleteAccount(ctx context.Context, id core.PrincipalID) error {
	return s.account(ctx, func(d *data) error {
		if _, ok := d.accounts[id]; !ok {
			return core.ErrNoSuchPrincipal
		}
		s.deleteAccount(d, id)
		return nil
	})
}

// SetCredentials implements core.Accounts.
func (s *Store) SetCredentials(ctx context.Context, id core.PrincipalID, c []core.Credentials) error {
	return s.account(ctx, func(d *data) error {
		a, ok := d.accounts[id]
		if !ok {
			return core.ErrNoSuchPrincipal
		}
		a.Credentials = slices.Clone(c)
		d.accounts[id] = a
		return nil
	})
}

// MustCreate creates accounts for ids and panics on failure; for test
// set-up.
func (s *Store) MustCreate(ids ...core.PrincipalID) {
	for _, id := range ids {
		if err := s.CreateAccount(context.Background(), core.Account{ID: id}); err != nil {
			panic(err)
		}
	}
}

var _ core.Store = (*Store)(nil)
var _ core.Tx = (*Tx)(nil)
var _ core.Accounts = (*Store)(nil)

// account runs fn on the writable data of one transaction.
func (s *Store) account(ctx context.Context, fn func(d *data) error) error {
	return s.Update(ctx, func(tx core.Tx) error {
		t, ok := unwrap(tx)
		if !ok {
			return errors.New("coretest: foreign transaction")
		}
		return fn(t.d)
	})
}

// Unwrapper is implemented by transactions that wrap a *Tx (see NewWith),
// so the store can reach its own data through them.
type Unwrapper interface{ CoreTx() *Tx }

// CoreTx returns t itself.
func (t *Tx) CoreTx() *Tx { return t }

func unwrap(tx core.Tx) (*Tx, bool) {
	u, ok := tx.(Unwrapper)
	if !ok {
		return nil, false
	}
	return u.CoreTx(), true
}

func (s *Store) deleteAccount(d *data, id core.PrincipalID) {
	delete(d.accounts, id)
	for k := range d.subs {
		if k.presentity == id || k.watcher == id {
			delete(d.subs, k)
		}
	}
	for k := range d.info {
		if k.presentity == id || k.watcher == id {
			delete(d.info, k)
		}
	}
	delete(d.last, id)
	delete(d.offline, id)
	delete(d.nextSeq, id)
}

// Account implements core.Accounts.
func (s *Store) Account(_ context.Context, id core.PrincipalID) (core.Account, error) {
	a, ok := s.snapshot().accounts[id]
	if !ok {
		return core.Account{}, core.ErrNoSuchPrincipal
	}
	a.Credentials = slices.Clone(a.Credentials)
	return a, nil
}

// ListAccounts implements core.Accounts.
func (s *Store) ListAccounts(context.Context) ([]core.PrincipalID, error) {
	ids := slices.Collect(maps.Keys(s.snapshot().accounts))
	slices.SortFunc(ids, func(a, b core.PrincipalID) int { return strings.Compare(string(a), string(b)) })
	return ids, nil
}
