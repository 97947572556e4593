package core_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/imppd/imppd/core"
	"github.com/imppd/imppd/core/coretest"
)

func TestPublishInitialAndUpdate(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil)
	e.store.MustCreate("a@x", "b@x", "c@x", "d@x", "f@x", "g@x", "h@x", "i@x")

	// b and i watch a; c's request to a waits; d has no relation.
	e.subscribe("b@x", "a@x")
	e.subscribe("i@x", "a@x")
	if _, err := e.eng.Subscribe(ctx, "c@x", "a@x", []byte("<status>let me</status>")); err != nil {
		t.Fatal(err)
	}
	// a watches f (online), g (offline with a last presence), h (offline,
	// never seen); a's request to d waits.
	e.subscribe("a@x", "f@x")
	e.subscribe("a@x", "g@x")
	e.subscribe("a@x", "h@x")
	if _, err := e.eng.Subscribe(ctx, "a@x", "d@x", nil); err != nil {
		t.Fatal(err)
	}
	e.online("f@x/1", 0)
	e.online("g@x/1", 0)
	if err := e.eng.Unpublish(ctx, core.Tuple{Contact: core.Contact{Address: "g@x/1"}, Status: core.Status{Text: "zzz"}}); err != nil {
		t.Fatal(err)
	}
	e.online("a@x/2", 0)
	e.online("b@x/1", 0)
	e.eng.Connect("b@x/2") // connected, never available
	e.online("c@x/1", 0)
	e.online("d@x/1", 0)
	e.online("d@x/1", 0)
	e.eng.Connect("a@x/1")
	e.rec.Reset()

	t1 := tuple("a@x/1", 3)
	t1.Markup = []byte("<c/>")
	if err := e.eng.Publish(ctx, t1); err != nil {
		t.Fatal(err)
	}
	evs := e.expectPresence(t, "initial publish",
		"open a@x/1 -> a@x/1,a@x/2,b@x/1", // subscribers' available agents and own agents incl. self; i is offline
		"open a@x/2 -> a@x/1",             // own other agent (implicit self-subscription)
		"open f@x/1 -> a@x/1",             // watched and online
		"closed g@x(zzz) -> a@x/1",        // watched, offline: last presence
	)
	for _, ev := range evs {
		if ev.Tuple.Contact.Address == "a@x/1" {
			if ev.Tuple.Status.Basic != core.Open || string(ev.Tuple.Markup) != "<c/>" || ev.Tuple.Priority != 3 || !ev.Tuple.Stamp.Equal(e.clock.Now()) {
				t.Errorf("published tuple arrived as %+v", ev.Tuple)
			}
		}
		if ev.Tuple.Contact.Address == "g@x" && ev.Tuple.Stamp.IsZero() {
			t.Errorf("last presence without its time: %+v", ev.Tuple)
		}
	}
	subs := e.rec.Subscriptions()
	if len(subs) != 1 || subs[0].Sub.Watcher != "c@x" || subs[0].Fx != core.FxRequest || subs[0].To != "a@x/1" || string(subs[0].Sub.Request) != "<status>let me</status>" {
		t.Errorf("pending request re-sent as %+v, want c's request to a@x/1 only", subs)
	}
	if got := e.eng.Agents("a@x"); len(got) != 2 {
		t.Errorf("agents %+v", got)
	}

	// An update goes to the same audience, and nothing else is re-sent.
	t2 := tuple("a@x/1", 3)
	t2.Status.Show = "away"
	if err := e.eng.Publish(ctx, t2); err != nil {
		t.Fatal(err)
	}
	e.expectPresence(t, "update", "open a@x/1 -> a@x/1,a@x/2,b@x/1")
	if subs := e.rec.Subscriptions(); len(subs) != 0 {
		t.Errorf("update re-sent requests %+v", subs)
	}

	if err := e.eng.Publish(ctx, tuple("a@x/9", 0)); err == nil {
		t.Error("publish for an agent that is not connected succeeded")
	}
	if evs := e.rec.Presences(); len(evs) != 0 {
		t.Errorf("failed publish notified %v", evs)
	}
}

func TestUnpublishAndDisconnect(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil)
	e.store.MustCreate("a@x", "b@x", "c@x")
	e.subscribe("b@x", "a@x")
	e.online("a@x/1", 0)
	e.online("a@x/2", 0)
	e.online("b@x/1", 0)
	e.online("c@x/1", 0)
	e.eng.Connect("a@x/3")
	e.rec.Reset()

	// Unpublishing or disconnecting an agent that never published says
	// nothing.
	if err := e.eng.Unpublish(ctx, core.Tuple{Contact: core.Contact{Address: "a@x/3"}}); err != nil {
		t.Fatal(err)
	}
	if err := e.eng.Disconnect(ctx, "a@x/3", nil); err != nil {
		t.Fatal(err)
	}
	e.expectPresence(t, "silent agent")

	e.clock.Advance(time.Minute)
	if err := e.eng.Unpublish(ctx, core.Tuple{Contact: core.Contact{Address: "a@x/1"}, Status: core.Status{Text: "brb"}}); err != nil {
		t.Fatal(err)
	}
	e.expectPresence(t, "unpublish", "closed a@x/1(brb) -> a@x/1,a@x/2,b@x/1")
	if _, ok := e.last("a@x"); ok {
		t.Error("last presence stored while another agent is available")
	}
	if got := e.eng.Agents("a@x"); len(got) != 2 || got[0].Available {
		t.Errorf("agents after unpublish %+v, want a@x/1 still connected, unavailable", got)
	}

	e.clock.Advance(time.Minute)
	if err := e.eng.Disconnect(ctx, "a@x/2", &core.Tuple{Status: core.Status{Text: "off", Show: "xa"}, Markup: []byte("<idle/>")}); err != nil {
		t.Fatal(err)
	}
	evs := e.expectPresence(t, "disconnect", "closed a@x/2(off) -> b@x/1")
	if len(evs) == 1 && !evs[0].Tuple.Stamp.Equal(e.clock.Now()) {
		t.Errorf("closing tuple stamp %v, want now", evs[0].Tuple.Stamp)
	}
	lp, ok := e.last("a@x")
	if !ok || lp.Status.Text != "off" || lp.Status.Basic != core.Closed || string(lp.Markup) != "<idle/>" || !lp.Stamp.Equal(e.clock.Now()) {
		t.Errorf("last presence %+v, %v", lp, ok)
	}
	if got := e.eng.Agents("a@x"); len(got) != 1 || got[0].ID != "a@x/1" {
		t.Errorf("agents after disconnect %+v", got)
	}
	if err := e.eng.Disconnect(ctx, "a@x/1", nil); err != nil {
		t.Fatal(err)
	}
	e.expectPresence(t, "disconnect of an unavailable agent")
	if got := e.eng.Agents("a@x"); len(got) != 0 {
		t.Errorf("agents %+v, want none", got)
	}
}

func TestFetch(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, func(c *core.Config) { c.PollWindow = 5 * time.Minute })
	e.store.MustCreate("a@x", "b@x", "c@x")
	e.subscribe("b@x", "a@x")
	e.online("a@x/1", 0)
	e.eng.Connect("b@x/1") // a fetcher need not be available
	e.eng.Connect("c@x/1")
	e.rec.Reset()

	if err := e.eng.Fetch(ctx, "b@x/1", "a@x"); err != nil {
		t.Fatal(err)
	}
	e.expectPresence(t, "first fetch", "open a@x/1 -> b@x/1")
	if got := e.info("a@x")["b@x"]; got[core.WatchFetcher] != 1 || got[core.WatchPoller] != 0 {
		t.Errorf("after one fetch: %v", got)
	}

	e.clock.Advance(4 * time.Minute)
	if err := e.eng.Fetch(ctx, "b@x/1", "a@x"); err != nil {
		t.Fatal(err)
	}
	e.expectPresence(t, "second fetch", "open a@x/1 -> b@x/1")
	if got := e.info("a@x")["b@x"]; got[core.WatchFetcher] != 2 || got[core.WatchPoller] != 1 {
		t.Errorf("after a fetch within the window: %v, want fetcher 2, poller 1", got)
	}

	e.clock.Advance(5 * time.Minute)
	if err := e.eng.Fetch(ctx, "b@x/1", "a@x"); err != nil {
		t.Fatal(err)
	}
	e.rec.Reset()
	if got := e.info("a@x")["b@x"]; got[core.WatchFetcher] != 3 || got[core.WatchPoller] != 1 {
		t.Errorf("after a fetch outside the window: %v, want fetcher 3, poller 1", got)
	}

	// Refused: a non-subscriber learns nothing.
	err := e.eng.Fetch(ctx, "c@x/1", "a@x")
	var re *core.RefusedError
	if !errors.As(err, &re) || !errors.Is(err, core.ErrForbidden) {
		t.Fatalf("non-subscriber fetch: %v, want *RefusedError", err)
	}
	e.expectPresence(t, "refused fetch")
	if got := e.info("a@x")["c@x"]; got[core.WatchRefused] != 1 || got[core.WatchFetcher] != 0 {
		t.Errorf("refused fetch recorded as %v", got)
	}

	if err := e.eng.Fetch(ctx, "b@x/1", "nobody@x"); !errors.Is(err, core.ErrNoSuchPrincipal) {
		t.Errorf("fetch of unknown: %v", err)
	}

	// Self: own tuples, nothing recorded.
	if err := e.eng.Fetch(ctx, "a@x/1", "a@x"); err != nil {
		t.Fatal(err)
	}
	e.expectPresence(t, "self fetch", "open a@x/1 -> a@x/1")
	if _, ok := e.info("a@x")["a@x"]; ok {
		t.Error("self fetch recorded as watcher information")
	}

	// Offline: the last presence; never seen: nothing.
	if err := e.eng.Fetch(ctx, "a@x/1", "b@x"); err == nil {
		t.Error("a is no subscriber of b, fetch allowed")
	}
	if err := e.eng.Disconnect(ctx, "a@x/1", &core.Tuple{Status: core.Status{Text: "away for lunch"}}); err != nil {
		t.Fatal(err)
	}
	e.rec.Reset()
	if err := e.eng.Fetch(ctx, "b@x/1", "a@x"); err != nil {
		t.Fatal(err)
	}
	e.expectPresence(t, "fetch of offline", "closed a@x(away for lunch) -> b@x/1")
	e.subscribe("a@x", "b@x")
	e.rec.Reset()
	e.eng.Connect("a@x/1")
	if err := e.eng.Fetch(ctx, "a@x/1", "b@x"); err != nil {
		t.Fatal(err)
	}
	e.expectPresence(t, "fetch of never seen")
}

func TestWatcherInfoVisibility(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil)
	e.store.MustCreate("a@x", "b@x")
	e.subscribe("b@x", "a@x")
	recs, err := e.eng.WatcherInfo(ctx, "a@x", "a@x")
	if err != nil || len(recs) != 1 || recs[0].Watcher != "b@x" || recs[0].Kind != core.WatchSubscriber || recs[0].Count != 1 {
		t.Fatalf("owner reads %+v, %v", recs, err)
	}
	if !recs[0].First.Equal(e.clock.Now()) || !recs[0].Last.Equal(e.clock.Now()) {
		t.Errorf("record times %v %v", recs[0].First, recs[0].Last)
	}
	recs, err = e.eng.WatcherInfo(ctx, "b@x", "a@x")
	var re *core.RefusedError
	if !errors.As(err, &re) || recs != nil {
		t.Errorf("watcher reads %+v, %v; want a refusal", recs, err)
	}
}

// blockRules is an ACCESS RULE plug-in: blocked watchers may neither ask
// nor watch.
type blockRules struct {
	core.DefaultAccess
	blocked map[[2]core.PrincipalID]bool // presentity, watcher
}

func (b *blockRules) MayAsk(ctx context.Context, p, w core.PrincipalID) core.Reason {
	if b.blocked[[2]core.PrincipalID{p, w}] {
		return core.ReasonBlocked
	}
	return b.DefaultAccess.MayAsk(ctx, p, w)
}

func (b *blockRules) MayWatch(ctx context.Context, p, w core.PrincipalID, s core.Subscription) core.Reason {
	if b.blocked[[2]core.PrincipalID{p, w}] {
		return core.ReasonBlocked
	}
	return b.DefaultAccess.MayWatch(ctx, p, w, s)
}

func TestAccessRulesPlugIn(t *testing.T) {
	ctx := context.Background()
	rules := &blockRules{blocked: map[[2]core.PrincipalID]bool{}}
	e := newEnv(t, func(c *core.Config) { c.Access = rules })
	if e.eng.Access() != core.AccessRules(rules) {
		t.Error("Access does not return the configured rules")
	}
	e.store.MustCreate("a@x", "m@x", "b@x", "n@x")
	e.online("a@x/1", 0)
	e.online("m@x/1", 0)
	e.online("b@x/1", 0)
	e.online("n@x/1", 0)
	e.subscribe("b@x", "a@x")
	if _, err := e.eng.Subscribe(ctx, "n@x", "a@x", nil); err != nil {
		t.Fatal(err)
	}
	e.rec.Reset()

	// MayAsk: m may not ask; the refusal reaches a's watcher information.
	rules.blocked[[2]core.PrincipalID{"a@x", "m@x"}] = true
	_, err := e.eng.Subscribe(ctx, "m@x", "a@x", []byte("hello"))
	var re *core.RefusedError
	if !errors.As(err, &re) || re.Reason != core.ReasonBlocked {
		t.Fatalf("blocked subscribe: %v, want a refusal for blocked", err)
	}
	if s := e.sub("a@x", "m@x"); !s.IsZero() {
		t.Errorf("blocked request stored: %+v", s)
	}
	if got := e.info("a@x")["m@x"]; got[core.WatchRefused] != 1 || got[core.WatchSubscriber] != 0 {
		t.Errorf("blocked request recorded as %v, want refused once", got)
	}
	e.expectSubs(t, "blocked subscribe")
	e.expectPresence(t, "blocked subscribe")

	// MayWatch: once b and n are blocked they see nothing of a.
	rules.blocked[[2]core.PrincipalID{"a@x", "b@x"}] = true
	rules.blocked[[2]core.PrincipalID{"a@x", "n@x"}] = true
	if err := e.eng.Publish(ctx, tuple("a@x/1", 1)); err != nil {
		t.Fatal(err)
	}
	e.expectPresence(t, "publish with b blocked", "open a@x/1 -> a@x/1")
	if err := e.eng.Fetch(ctx, "b@x/1", "a@x"); !errors.As(err, &re) || re.Reason != core.ReasonBlocked {
		t.Errorf("blocked fetch: %v", err)
	}
	// Approving n's request tells n it is approved but sends no presence.
	if _, err := e.eng.Approve(ctx, "a@x", "n@x"); err != nil {
		t.Fatal(err)
	}
	e.expectSubs(t, "approve blocked", sev("a@x", "n@x", core.SubActive, core.FxApproved|core.FxChanged, ""))
	e.expectPresence(t, "approve blocked")
	// Cancelling b sends it no unavailable presence either.
	if _, err := e.eng.Deny(ctx, "a@x", "b@x"); err != nil {
		t.Fatal(err)
	}
	e.expectPresence(t, "cancel blocked")
	if err := e.eng.Disconnect(ctx, "a@x/1", nil); err != nil {
		t.Fatal(err)
	}
	e.expectPresence(t, "disconnect with n blocked")
	// A new agent of a blocked watcher does not get a's last presence.
	e.online("n@x/2", 0)
	e.expectPresence(t, "blocked watcher's initial presence", "open n@x/2 -> n@x/1,n@x/2", "open n@x/1 -> n@x/2")
}

// TestEffectsAfterCommit: effects run once, after commit, and never when
// the transaction fails.
func TestEffectsAfterCommit(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil)
	e.store.MustCreate("a@x", "b@x")

	ran := 0
	boom := errors.New("boom")
	err := e.eng.Update(ctx, func(tx core.Tx, q *core.Effects) error {
		q.After(func(context.Context) { ran++ })
		if err := tx.PutLastPresence(ctx, core.LastPresence{Presentity: "a@x"}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) || ran != 0 {
		t.Errorf("failed fn: err %v, effects ran %d times", err, ran)
	}
	if _, ok := e.last("a@x"); ok {
		t.Error("failed transaction's write kept")
	}

	// Commit fails after fn succeeded.
	e.store.FailNextUpdate(boom)
	err = e.eng.Update(ctx, func(tx core.Tx, q *core.Effects) error {
		q.After(func(context.Context) { ran++ })
		return nil
	})
	if !errors.Is(err, boom) || ran != 0 {
		t.Errorf("failed commit: err %v, effects ran %d times", err, ran)
	}

	// The store retries fn: only the last run's effects remain.
	e.store.Conflict(2)
	var order []int
	err = e.eng.Update(ctx, func(tx core.Tx, q *core.Effects) error {
		q.After(func(context.Context) {
			if _, ok := e.last("a@x"); !ok {
				t.Error("effect ran before commit")
			}
			order = append(order, 1)
		})
		q.After(func(context.Context) { order = append(order, 2) })
		return tx.PutLastPresence(ctx, core.LastPresence{Presentity: "a@x"})
	})
	if err != nil || len(order) != 2 || order[0] != 1 || order[1] != 2 {
		t.Errorf("retried update: err %v, effects %v, want [1 2]", err, order)
	}

	// Engine operations drop their notifications with the transaction.
	e.online("a@x/1", 0)
	e.rec.Reset()
	e.store.FailNextUpdate(boom)
	if _, err := e.eng.Subscribe(ctx, "b@x", "a@x", nil); !errors.Is(err, boom) {
		t.Errorf("subscribe with failing commit: %v", err)
	}
	e.expectSubs(t, "failed subscribe")
	if s := e.sub("a@x", "b@x"); !s.IsZero() {
		t.Errorf("failed subscribe stored %+v", s)
	}
	e.store.Conflict(1)
	if _, err := e.eng.Subscribe(ctx, "b@x", "a@x", nil); err != nil {
		t.Fatal(err)
	}
	e.expectSubs(t, "retried subscribe", sev("a@x", "b@x", core.SubPending, core.FxRequest|core.FxChanged, ""))
}

// The fake store must refuse writes in View, so an engine writing outside
// Update would fail these tests.
func TestFakeStoreReadOnlyView(t *testing.T) {
	s := coretest.New()
	err := s.View(context.Background(), func(tx core.Tx) error {
		return tx.PutLastPresence(context.Background(), core.LastPresence{Presentity: "a@x"})
	})
	if !errors.Is(err, coretest.ErrReadOnly) {
		t.Errorf("write in View: %v", err)
	}
}
