package core

import (
	"context"
	"fmt"
	"time"
)

// AgentInfo describes one connected agent of a principal.
type AgentInfo struct {
	ID        AgentID
	Available bool
	Priority  int
}

// Connect registers an agent of its principal. It receives instant messages
// addressed to it, but no presence, until it publishes. Connecting an agent
// that is already connected resets it.
func (e *Engine) Connect(a AgentID) {
	e.agents.update(a.Principal(), func(in *inbox) {
		if i := in.find(a); i >= 0 {
			in.agents[i] = agentState{id: a}
			return
		}
		in.agents = append(in.agents, agentState{id: a})
	})
}

// Agents lists the principal's connected agents.
func (e *Engine) Agents(p PrincipalID) []AgentInfo {
	var out []AgentInfo
	e.agents.view(p, func(in *inbox) {
		if in == nil {
			return
		}
		for _, s := range in.agents {
			out = append(out, AgentInfo{ID: s.id, Available: s.available, Priority: s.tuple.Priority})
		}
	})
	return out
}

// Publish makes t the agent's PRESENCE TUPLE (t.Contact.Address names the
// agent, which must be connected) and sends NOTIFICATIONS to the
// presentity's subscribers that the ACCESS RULES allow, and to the
// principal's own available agents. On the agent's first publication it
// also receives the presence of everything its principal watches, the
// tuples of its principal's other available agents (an entity is
// implicitly subscribed to its own presence, RFC 6121 §4.2.2) and any
// subscription requests waiting for the principal (RFC 6121 §4.2, §3.1.3).
func (e *Engine) Publish(ctx context.Context, t Tuple) error {
	a := t.Contact.Address
	p := a.Principal()
	if t.Stamp.IsZero() {
		t.Stamp = e.now()
	}
	t.Status.Basic = Open
	initial, ok := false, false
	e.agents.update(p, func(in *inbox) {
		i := in.find(a)
		if i < 0 {
			return
		}
		ok = true
		initial = !in.agents[i].available
		in.agents[i].available = true
		in.agents[i].tuple = t
	})
	if !ok {
		return fmt.Errorf("publish for %s: agent not connected", a)
	}
	watchers, err := e.watchers(ctx, p)
	if err != nil {
		return fmt.Errorf("publish for %s: %w", a, err)
	}
	var watching []Subscription
	if initial {
		if err := e.store.View(ctx, func(tx Tx) error {
			var err error
			watching, err = tx.Watching(ctx, p)
			return err
		}); err != nil {
			return fmt.Errorf("publish for %s: %w", a, err)
		}
	}
	to := e.audience(ctx, p, watchers)
	e.notify.Presence(ctx, &t, to)
	if !initial {
		return nil
	}
	for _, s := range watchers {
		if s.State == SubPending {
			e.notify.Subscription(ctx, s, FxRequest, a)
		}
	}
	one := []AgentID{a}
	own := e.agents.tuples(p)
	for i := range own {
		if own[i].Contact.Address != a {
			e.notify.Presence(ctx, &own[i], one)
		}
	}
	return e.sendCurrent(ctx, watching, a)
}

// audience lists the agents that must see a change of p's presence: the
// available agents of every subscriber the ACCESS RULES let watch, and p's
// own available agents.
func (e *Engine) audience(ctx context.Context, p PrincipalID, watchers []Subscription) []AgentID {
	to := e.agents.availableTo(nil, p)
	for _, s := range watchers {
		if s.State != SubActive || s.Watcher == p {
			continue
		}
		if e.access.MayWatch(ctx, p, s.Watcher, s) != ReasonNone {
			continue
		}
		to = e.agents.availableTo(to, s.Watcher)
	}
	return to
}

// sendCurrent sends agent a the presence of each presentity in watching
// that a is actively subscribed to and allowed to see.
func (e *Engine) sendCurrent(ctx context.Context, watching []Subscription, a AgentID) error {
	var lastNeeded []PrincipalID
	one := []AgentID{a}
	for _, s := range watching {
		if s.State != SubActive || e.access.MayWatch(ctx, s.Presentity, s.Watcher, s) != ReasonNone {
			continue
		}
		ts := e.agents.tuples(s.Presentity)
		if len(ts) == 0 {
			lastNeeded = append(lastNeeded, s.Presentity)
		}
		for i := range ts {
			e.notify.Presence(ctx, &ts[i], one)
		}
	}
	if len(lastNeeded) == 0 {
		return nil
	}
	return e.sendLast(ctx, lastNeeded, one)
}

// sendLast sends the last known unavailable presence of each presentity
// that has one (RFC 6121 §4.3.2: with the time it was last seen).
func (e *Engine) sendLast(ctx context.Context, ps []PrincipalID, to []AgentID) error {
	var lps []LastPresence
	err := e.store.View(ctx, func(tx Tx) error {
		for _, p := range ps {
			lp, ok, err := tx.LastPresence(ctx, p)
			if err != nil {
				return err
			}
			if ok {
				lps = append(lps, lp)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("last presence: %w", err)
	}
	for _, lp := range lps {
		t := Tuple{Status: lp.Status, Contact: Contact{Means: "im", Address: AgentID(lp.Presentity)}, Markup: lp.Markup, Stamp: lp.Stamp}
		t.Status.Basic = Closed
		e.notify.Presence(ctx, &t, to)
	}
	return nil
}

// Unpublish withdraws the agent's tuple: t (Closed, with an optional
// status text and markup) is sent to everyone who saw the agent, and when
// it was the principal's last available agent it is kept as the
// LastPresence. The agent stays connected. Unpublishing an agent that never
// published does nothing.
func (e *Engine) Unpublish(ctx context.Context, t Tuple) error {
	a := t.Contact.Address
	p := a.Principal()
	if t.Stamp.IsZero() {
		t.Stamp = e.now()
	}
	t.Status.Basic = Closed
	was, others := false, 0
	e.agents.update(p, func(in *inbox) {
		i := in.find(a)
		if i < 0 {
			return
		}
		was = in.agents[i].available
		in.agents[i].available = false
		in.agents[i].tuple = Tuple{}
		for _, s := range in.agents {
			if s.available {
				others++
			}
		}
	})
	if !was {
		return nil
	}
	return e.withdrawn(ctx, p, &t, others == 0, a)
}

func (e *Engine) withdrawn(ctx context.Context, p PrincipalID, t *Tuple, last bool, self AgentID) error {
	watchers, err := e.watchers(ctx, p)
	if err == nil && last {
		err = e.store.Update(ctx, func(tx Tx) error {
			return tx.PutLastPresence(ctx, LastPresence{Presentity: p, Status: t.Status, Markup: t.Markup, Stamp: t.Stamp})
		})
	}
	to := e.audience(ctx, p, watchers)
	if self != "" {
		to = append(to, self)
	}
	if len(to) > 0 {
		e.notify.Presence(ctx, t, to)
	}
	if err != nil {
		return fmt.Errorf("unpublish for %s: %w", t.Contact.Address, err)
	}
	return nil
}

// Disconnect removes an agent. If it was available, its watchers see it
// go (t gives the closing status; nil for none).
func (e *Engine) Disconnect(ctx context.Context, a AgentID, t *Tuple) error {
	p := a.Principal()
	was, others := false, 0
	e.agents.update(p, func(in *inbox) {
		i := in.find(a)
		if i < 0 {
			return
		}
		was = in.agents[i].available
		in.agents = append(in.agents[:i], in.agents[i+1:]...)
		for _, s := range in.agents {
			if s.available {
				others++
			}
		}
	})
	if !was {
		return nil
	}
	var closing Tuple
	if t != nil {
		closing = *t
	}
	closing.Contact = Contact{Means: "im", Address: a}
	closing.Status.Basic = Closed
	if closing.Stamp.IsZero() {
		closing.Stamp = e.now()
	}
	return e.withdrawn(ctx, p, &closing, others == 0, "")
}

// Fetch is a FETCHER's one-off request for a presentity's presence
// (RFC 2778 §2.1). It is recorded in WATCHER INFORMATION, as a POLLER's
// when the same watcher fetched within the poll window. If the ACCESS RULES
// allow, the presence (or the last presence) is sent to the fetching agent;
// otherwise Fetch returns a *RefusedError and nothing is revealed.
func (e *Engine) Fetch(ctx context.Context, from AgentID, p PrincipalID) error {
	w := from.Principal()
	var reason Reason
	var lastNeeded bool
	err := e.store.Update(ctx, func(tx Tx) error {
		exists, err := tx.AccountExists(ctx, p)
		if err != nil {
			return err
		}
		if !exists {
			return ErrNoSuchPrincipal
		}
		if w == p {
			reason = ReasonNone
			return nil
		}
		sub, err := tx.Subscription(ctx, p, w)
		if err != nil {
			return err
		}
		now := e.now()
		reason = e.access.MayWatch(ctx, p, w, sub)
		if reason != ReasonNone {
			_, err = tx.RecordWatcher(ctx, p, w, WatchRefused, now)
			return err
		}
		prev, err := tx.RecordWatcher(ctx, p, w, WatchFetcher, now)
		if err != nil {
			return err
		}
		if prev.Count > 0 && now.Sub(prev.Last) < e.pollWindow {
			_, err = tx.RecordWatcher(ctx, p, w, WatchPoller, now)
		}
		return err
	})
	if err != nil {
		return err
	}
	if reason != ReasonNone {
		return &RefusedError{Reason: reason}
	}
	ts := e.agents.tuples(p)
	one := []AgentID{from}
	for i := range ts {
		e.notify.Presence(ctx, &ts[i], one)
	}
	lastNeeded = len(ts) == 0
	if lastNeeded {
		return e.sendLast(ctx, []PrincipalID{p}, one)
	}
	return nil
}

// WatcherInfo returns the presentity's WATCHER INFORMATION if the
// VISIBILITY RULES let reader see it.
func (e *Engine) WatcherInfo(ctx context.Context, reader, p PrincipalID) ([]WatcherRecord, error) {
	if !e.visibility.MaySeeWatchers(ctx, p, reader) {
		return nil, &RefusedError{Reason: ReasonPolicy}
	}
	var out []WatcherRecord
	err := e.store.View(ctx, func(tx Tx) error {
		var err error
		out, err = tx.WatcherInfo(ctx, p)
		return err
	})
	return out, err
}

// MayWatch reports whether the ACCESS RULES let watcher see presentity's
// presence now, for protocol features that reveal as much as presence does
// (service discovery on an account, last activity).
func (e *Engine) MayWatch(ctx context.Context, presentity, watcher PrincipalID) (bool, error) {
	if presentity == watcher {
		return true, nil
	}
	var sub Subscription
	err := e.store.View(ctx, func(tx Tx) error {
		var err error
		sub, err = tx.Subscription(ctx, presentity, watcher)
		return err
	})
	if err != nil {
		return false, err
	}
	return e.access.MayWatch(ctx, presentity, watcher, sub) == ReasonNone, nil
}

// Exists reports whether p is an account here.
func (e *Engine) Exists(ctx context.Context, p PrincipalID) (bool, error) {
	ok := false
	err := e.store.View(ctx, func(tx Tx) error {
		var err error
		ok, err = tx.AccountExists(ctx, p)
		return err
	})
	return ok, err
}

// LastPresence returns what p published when its last agent went away.
func (e *Engine) LastPresence(ctx context.Context, p PrincipalID) (LastPresence, bool, error) {
	var lp LastPresence
	var ok bool
	err := e.store.View(ctx, func(tx Tx) error {
		var err error
		lp, ok, err = tx.LastPresence(ctx, p)
		return err
	})
	return lp, ok, err
}

// Now is the engine's clock.
func (e *Engine) Now() time.Time { return e.now() }

// Reconsider re-applies the ACCESS RULES between presentity p and watcher
// w after a rule changed (a block lifted or imposed): w's available agents
// get p's current tuples if w may now watch, or an unavailable for each of
// p's available agents if not.
func (e *Engine) Reconsider(ctx context.Context, p, w PrincipalID) error {
	to := e.agents.availableTo(nil, w)
	if len(to) == 0 {
		return nil
	}
	ok, err := e.MayWatch(ctx, p, w)
	if err != nil {
		return err
	}
	for _, t := range e.agents.tuples(p) {
		if !ok {
			t = Tuple{Status: Status{Basic: Closed}, Contact: t.Contact, Stamp: e.now()}
		}
		e.notify.Presence(ctx, &t, to)
	}
	return nil
}
