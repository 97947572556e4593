package core

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"sync"
	"sync/atomic"
	"time"
)

// Notifier carries the engine's effects to agents after commit. The protocol
// layer implements it; agents are reached only through it, never by pointer,
// so they may live in another process (DESIGN §8).
type Notifier interface {
	// Subscription tells the parties of s what a transition requires: fx
	// holds FxRequest, FxApproved, FxDenied, FxCancelled and FxChanged bits
	// (presence effects are sent by the engine itself through Presence).
	// When to is set, only that agent is told (a pending request re-sent at
	// login).
	Subscription(ctx context.Context, s Subscription, fx Effect, to AgentID)
	// Presence delivers one NOTIFICATION: tuple t (Closed means the agent
	// went away) to every agent in to.
	Presence(ctx context.Context, t *Tuple, to []AgentID)
	// Deliver hands an instant message to one agent's inbox user agent. It
	// reports false when the agent is gone or cannot take more.
	Deliver(ctx context.Context, to AgentID, m *Message) bool
}

// Config sets up an Engine. Zero fields take the documented defaults.
type Config struct {
	Store      Store
	Notifier   Notifier
	Access     AccessRules     // default DefaultAccess
	Visibility VisibilityRules // default OwnerVisibility
	Delivery   DeliveryRules   // default OpenDelivery
	// MaxMessage bounds an instant message's payload in bytes (default 256 KiB).
	MaxMessage int
	// OfflineQuota bounds the messages kept for an absent principal (default 1000).
	OfflineQuota int
	// PollWindow: a fetch within this time of the same watcher's previous
	// fetch makes it a POLLER (default 10 minutes).
	PollWindow time.Duration
	Now        func() time.Time
}

// Engine is the PRESENCE SERVICE and INSTANT MESSAGE SERVICE of RFC 2778.
type Engine struct {
	store      Store
	notify     Notifier
	access     AccessRules
	visibility VisibilityRules
	delivery   DeliveryRules
	maxMessage int
	quota      int
	pollWindow time.Duration
	now        func() time.Time
	agents     registry
	drainLocks [64]sync.Mutex // by registry shard: one drain per principal at a time
	wcache     watcherCache
	idPrefix   string
	idSeq      atomic.Uint64
}

// New returns an engine with cfg's defaults filled in.
func New(cfg Config) *Engine {
	e := &Engine{
		store: cfg.Store, notify: cfg.Notifier, access: cfg.Access,
		visibility: cfg.Visibility, delivery: cfg.Delivery,
		maxMessage: cfg.MaxMessage, quota: cfg.OfflineQuota,
		pollWindow: cfg.PollWindow, now: cfg.Now,
	}
	if e.access == nil {
		e.access = DefaultAccess{}
	}
	if e.visibility == nil {
		e.visibility = OwnerVisibility{}
	}
	if e.delivery == nil {
		e.delivery = OpenDelivery{}
	}
	if e.maxMessage <= 0 {
		e.maxMessage = 256 << 10
	}
	if e.quota <= 0 {
		e.quota = 1000
	}
	if e.pollWindow <= 0 {
		e.pollWindow = 10 * time.Minute
	}
	if e.now == nil {
		e.now = time.Now
	}
	var b [5]byte
	_, _ = rand.Read(b[:])
	e.idPrefix = base32.HexEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:])
	e.agents.init()
	return e
}

// SetNotifier sets the notifier once the protocol layer exists; call it
// before any other method.
func (e *Engine) SetNotifier(n Notifier) { e.notify = n }

// Access returns the engine's access rules, so a protocol layer can consult
// the same rules for directed traffic.
func (e *Engine) Access() AccessRules { return e.access }

// NewID returns an identifier unique to this server: a random prefix drawn
// at start and a counter, so ids also stay unique across restarts.
func (e *Engine) NewID() string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], e.idSeq.Add(1))
	i := 0
	for i < 7 && b[i] == 0 {
		i++
	}
	return e.idPrefix + base32.HexEncoding.WithPadding(base32.NoPadding).EncodeToString(b[i:])
}

// Effects collects work to do after a transaction commits.
type Effects struct {
	fns []func(context.Context)
	// refused is WATCHER INFORMATION about refusals found in the
	// transaction. A refusal usually fails the transaction, which discards
	// its writes; Update records these again after such a failure so the
	// presentity still learns of them (RFC 2778 §5.2 STALKING).
	refused []refusal
}

type refusal struct {
	presentity, watcher PrincipalID
	at                  time.Time
}

// After queues f to run after commit; it is dropped if the transaction
// fails.
func (q *Effects) After(f func(context.Context)) { q.fns = append(q.fns, f) }

// Update runs fn in one store transaction and performs the effects fn queued
// once the transaction committed. Packages that extend the model (rosters)
// use it to change their own state and core's atomically.
func (e *Engine) Update(ctx context.Context, fn func(Tx, *Effects) error) error {
	var q Effects
	err := e.store.Update(ctx, func(tx Tx) error {
		q.fns, q.refused = q.fns[:0], q.refused[:0]
		return fn(tx, &q)
	})
	if err != nil {
		if len(q.refused) > 0 {
			// Best effort: the caller gets err either way.
			_ = e.store.Update(ctx, func(tx Tx) error {
				for _, r := range q.refused {
					if _, err := tx.RecordWatcher(ctx, r.presentity, r.watcher, WatchRefused, r.at); err != nil {
						return err
					}
				}
				return nil
			})
		}
		return err
	}
	for _, f := range q.fns {
		f(ctx)
	}
	return nil
}

// View runs fn in a read-only store transaction.
func (e *Engine) View(ctx context.Context, fn func(Tx) error) error { return e.store.View(ctx, fn) }
