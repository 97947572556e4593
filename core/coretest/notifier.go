package coretest

import (
	"context"
	"slices"
	"sync"

	"github.com/imppd/imppd/core"
)

// PresenceEvent is one call of Notifier.Presence.
type PresenceEvent struct {
	Tuple core.Tuple
	To    []core.AgentID // sorted
}

// SubscriptionEvent is one call of Notifier.Subscription.
type SubscriptionEvent struct {
	Sub core.Subscription
	Fx  core.Effect
	To  core.AgentID
}

// DeliverEvent is one call of Notifier.Deliver, with what it answered.
type DeliverEvent struct {
	To       core.AgentID
	Message  core.Message
	Accepted bool
}

// Recorder is a core.Notifier that records every call. Deliver accepts
// every message unless Accept says otherwise.
type Recorder struct {
	mu     sync.Mutex
	accept func(to core.AgentID, m *core.Message) bool
	pres   []PresenceEvent
	subs   []SubscriptionEvent
	dels   []DeliverEvent
}

var _ core.Notifier = (*Recorder)(nil)

// Accept sets the function that decides what Deliver answers (nil: true).
func (r *Recorder) Accept(f func(to core.AgentID, m *core.Message) bool) {
	r.mu.Lock()
	r.accept = f
	r.mu.Unlock()
}

func (r *Recorder) Subscription(_ context.Context, s core.Subscription, fx core.Effect, to core.AgentID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s.Request = cloneBytes(s.Request)
	r.subs = append(r.subs, SubscriptionEvent{Sub: s, Fx: fx, To: to})
}

func (r *Recorder) Presence(_ context.Context, t *core.Tuple, to []core.AgentID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := *t
	c.Markup = cloneBytes(c.Markup)
	to = slices.Clone(to)
	slices.Sort(to)
	r.pres = append(r.pres, PresenceEvent{Tuple: c, To: to})
}

func (r *Recorder) Deliver(_ context.Context, to core.AgentID, m *core.Message) bool {
	r.mu.Lock()
	accept := r.accept
	r.mu.Unlock()
	ok := accept == nil || accept(to, m)
	c := *m
	c.Payload = cloneBytes(c.Payload)
	r.mu.Lock()
	r.dels = append(r.dels, DeliverEvent{To: to, Message: c, Accepted: ok})
	r.mu.Unlock()
	return ok
}

// Presences returns the recorded Presence calls and forgets them.
func (r *Recorder) Presences() []PresenceEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.pres
	r.pres = nil
	return out
}

// Subscriptions returns the recorded Subscription calls and forgets them.
func (r *Recorder) Subscriptions() []SubscriptionEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.subs
	r.subs = nil
	return out
}

// Deliveries returns the recorded Deliver calls and forgets them.
func (r *Recorder) Deliveries() []DeliverEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.dels
	r.dels = nil
	return out
}

// Reset forgets everything recorded.
func (r *Recorder) Reset() {
	r.mu.Lock()
	r.pres, r.subs, r.dels = nil, nil, nil
	r.mu.Unlock()
}
