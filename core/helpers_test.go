package core_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imppd/imppd/core"
	"github.com/imppd/imppd/core/coretest"
)

// clock is an injectable Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type env struct {
	t     *testing.T
	store *coretest.Store
	rec   *coretest.Recorder
	clock *clock
	eng   *core.Engine
}

// newEnv builds an engine over a fresh fake store and recorder; edit may
// adjust the configuration.
func newEnv(t *testing.T, edit func(*core.Config)) *env {
	t.Helper()
	e := &env{
		t:     t,
		store: coretest.New(),
		rec:   &coretest.Recorder{},
		clock: &clock{t: time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)},
	}
	cfg := core.Config{Store: e.store, Notifier: e.rec, Now: e.clock.Now}
	if edit != nil {
		edit(&cfg)
	}
	e.eng = core.New(cfg)
	return e
}

// online connects agent a and publishes an available tuple with priority
// prio.
func (e *env) online(a core.AgentID, prio int) {
	e.t.Helper()
	e.eng.Connect(a)
	if err := e.eng.Publish(context.Background(), tuple(a, prio)); err != nil {
		e.t.Fatalf("publish %s: %v", a, err)
	}
}

func tuple(a core.AgentID, prio int) core.Tuple {
	return core.Tuple{Contact: core.Contact{Means: "im", Address: a}, Priority: prio, Status: core.Status{Show: "chat"}}
}

// subscribe makes w an active subscriber of p.
func (e *env) subscribe(w, p core.PrincipalID) {
	e.t.Helper()
	ctx := context.Background()
	if _, err := e.eng.Subscribe(ctx, w, p, nil); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.eng.Approve(ctx, p, w); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) sub(p, w core.PrincipalID) core.Subscription {
	e.t.Helper()
	var s core.Subscription
	err := e.store.View(context.Background(), func(tx core.Tx) error {
		var err error
		s, err = tx.Subscription(context.Background(), p, w)
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// info returns p's watcher information as watcher → kind → count.
func (e *env) info(p core.PrincipalID) map[core.PrincipalID]map[core.WatcherKind]int64 {
	e.t.Helper()
	recs, err := e.eng.WatcherInfo(context.Background(), p, p)
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[core.PrincipalID]map[core.WatcherKind]int64{}
	for _, r := range recs {
		if out[r.Watcher] == nil {
			out[r.Watcher] = map[core.WatcherKind]int64{}
		}
		out[r.Watcher][r.Kind] = r.Count
	}
	return out
}

func (e *env) last(p core.PrincipalID) (core.LastPresence, bool) {
	e.t.Helper()
	var lp core.LastPresence
	var ok bool
	err := e.store.View(context.Background(), func(tx core.Tx) error {
		var err error
		lp, ok, err = tx.LastPresence(context.Background(), p)
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return lp, ok
}

func (e *env) offline(p core.PrincipalID) []core.StoredMessage {
	e.t.Helper()
	var ms []core.StoredMessage
	err := e.store.View(context.Background(), func(tx core.Tx) error {
		var err error
		ms, err = tx.Offline(context.Background(), p, -1)
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return ms
}

func sev(p, w core.PrincipalID, st core.SubState, fx core.Effect, to core.AgentID) coretest.SubscriptionEvent {
	return coretest.SubscriptionEvent{Sub: core.Subscription{Presentity: p, Watcher: w, State: st}, Fx: fx, To: to}
}

func subString(s coretest.SubscriptionEvent) string {
	return fmt.Sprintf("%s→%s %s pre=%v fx=%s to=%q", s.Sub.Watcher, s.Sub.Presentity, s.Sub.State, s.Sub.PreApproved, fxString(s.Fx), s.To)
}

// expectSubs checks that exactly want were notified, in any order.
func (e *env) expectSubs(t *testing.T, what string, want ...coretest.SubscriptionEvent) {
	t.Helper()
	var g, w []string
	for _, s := range e.rec.Subscriptions() {
		g = append(g, subString(s))
	}
	for _, s := range want {
		w = append(w, subString(s))
	}
	slices.Sort(g)
	slices.Sort(w)
	if !slices.Equal(g, w) {
		t.Errorf("%s: subscription notifications\n got %q\nwant %q", what, g, w)
	}
}

// presString renders a presence event as "open a@x/1 -> b@x/1,c@x/1";
// a status text shows as "(text)" after the address.
func presString(p coretest.PresenceEvent) string {
	txt := ""
	if p.Tuple.Status.Text != "" {
		txt = "(" + p.Tuple.Status.Text + ")"
	}
	to := make([]string, len(p.To))
	for i, a := range p.To {
		to[i] = string(a)
	}
	return fmt.Sprintf("%s %s%s -> %s", p.Tuple.Status.Basic, p.Tuple.Contact.Address, txt, strings.Join(to, ","))
}

// expectPresence checks that exactly want were notified, in any order.
func (e *env) expectPresence(t *testing.T, what string, want ...string) []coretest.PresenceEvent {
	t.Helper()
	evs := e.rec.Presences()
	var g []string
	for _, p := range evs {
		g = append(g, presString(p))
	}
	w := slices.Clone(want)
	slices.Sort(g)
	slices.Sort(w)
	if !slices.Equal(g, w) {
		t.Errorf("%s: presence notifications\n got %q\nwant %q", what, g, w)
	}
	return evs
}
