package core

import (
	"context"
	"sync"
	"time"
)

// watcherCache keeps each presentity's watchers (its subscriptions as a
// presentity) in memory, so a presence change does not read them from the
// store every time: with many contacts that read was a third of the CPU of
// a presence broadcast. The engine invalidates an entry after every change
// it commits; entries also expire, which bounds staleness after changes the
// engine does not see (an account deleted by `imppd user del` while the
// server runs). A generation per presentity keeps a read that raced an
// invalidation from storing what it read.
type watcherCache struct {
	mu  sync.Mutex
	m   map[PrincipalID]watcherEntry
	gen map[PrincipalID]uint64
}

type watcherEntry struct {
	subs []Subscription
	gen  uint64
	at   time.Time
}

const watcherTTL = time.Minute

// watchers returns p's watchers; callers must not modify the slice.
func (e *Engine) watchers(ctx context.Context, p PrincipalID) ([]Subscription, error) {
	c := &e.wcache
	now := time.Now()
	c.mu.Lock()
	if c.m == nil {
		c.m, c.gen = make(map[PrincipalID]watcherEntry), make(map[PrincipalID]uint64)
	}
	ent, ok := c.m[p]
	gen := c.gen[p]
	c.mu.Unlock()
	if ok && ent.gen == gen && now.Sub(ent.at) < watcherTTL {
		return ent.subs, nil
	}
	var subs []Subscription
	if err := e.store.View(ctx, func(tx Tx) error {
		var err error
		subs, err = tx.Watchers(ctx, p)
		return err
	}); err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.gen[p] == gen {
		c.m[p] = watcherEntry{subs: subs, gen: gen, at: now}
	}
	c.mu.Unlock()
	return subs, nil
}

// forgetWatchers drops p's cached watchers after a change to them.
func (e *Engine) forgetWatchers(p PrincipalID) {
	c := &e.wcache
	c.mu.Lock()
	if c.gen != nil {
		c.gen[p]++
		delete(c.m, p)
	}
	c.mu.Unlock()
}

// Forget drops everything the engine caches about principals' relations,
// after an account was deleted (another principal's cached watchers may
// name it).
func (e *Engine) Forget() {
	c := &e.wcache
	c.mu.Lock()
	for p := range c.m {
		c.gen[p]++
	}
	clear(c.m)
	c.mu.Unlock()
}
