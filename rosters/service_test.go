package rosters_test

import (
	"context"
	"errors"
	"testing"

	"github.com/imppd/imppd/core"
	"github.com/imppd/imppd/core/coretest"
	"github.com/imppd/imppd/rosters"
)

func TestSetGetRemove(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, nil)

	if err := r.svc.Set(ctx, pa, rosters.Item{Contact: pa}); !errors.Is(err, core.ErrSelf) {
		t.Errorf("Set of self: %v", err)
	}
	it := rosters.Item{Contact: pb, Name: "Bee", Groups: []string{"friends", "work"}}
	if err := r.svc.Set(ctx, pa, it); err != nil {
		t.Fatal(err)
	}
	ps := r.push.Pushes()
	if len(ps) != 1 || ps[0].Owner != pa || ps[0].Ver != 1 || ps[0].Entry.Name != "Bee" || len(ps[0].Entry.Groups) != 2 || ps[0].Entry.Subscription != rosters.None {
		t.Fatalf("Set pushed %+v", ps)
	}
	entries, ver, err := r.svc.Get(ctx, pa)
	if err != nil || ver != 1 || len(entries) != 1 || entries[0].Name != "Bee" {
		t.Fatalf("Get: %+v, %d, %v", entries, ver, err)
	}

	// Renaming keeps the subscription.
	if _, err := r.svc.Subscribe(ctx, pa, pb, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := r.svc.Approve(ctx, pb, pa); err != nil {
		t.Fatal(err)
	}
	r.push.Pushes()
	it.Name = "B"
	if err := r.svc.Set(ctx, pa, it); err != nil {
		t.Fatal(err)
	}
	ps = r.push.Pushes()
	if len(ps) != 1 || ps[0].Owner != pa || ps[0].Entry.Name != "B" || ps[0].Entry.Subscription != rosters.To {
		t.Fatalf("rename pushed %+v", ps)
	}

	if err := r.svc.Remove(ctx, pa, "c@x"); !errors.Is(err, core.ErrNoSuchPrincipal) {
		t.Errorf("Remove of absent item: %v", err)
	}
	if ps := r.push.Pushes(); len(ps) != 0 {
		t.Errorf("failed Remove pushed %+v", ps)
	}

	// An item without subscriptions: removing it touches only its owner.
	if err := r.svc.Set(ctx, pa, rosters.Item{Contact: "c@x"}); err != nil {
		t.Fatal(err)
	}
	if err := r.svc.Set(ctx, "c@x", rosters.Item{Contact: pa}); err != nil {
		t.Fatal(err)
	}
	r.push.Pushes()
	cver, _ := r.svc.Version(ctx, "c@x")
	if err := r.svc.Remove(ctx, pa, "c@x"); err != nil {
		t.Fatal(err)
	}
	ps = r.push.Pushes()
	if len(ps) != 1 || ps[0].Owner != pa || ps[0].Entry.Subscription != rosters.Remove || ps[0].Entry.Contact != "c@x" {
		t.Errorf("Remove pushed %+v, want only a's removal", ps)
	}
	if v, _ := r.svc.Version(ctx, "c@x"); v != cver {
		t.Errorf("c's version moved %d → %d", cver, v)
	}

	// Without a pusher, changes still apply.
	r.svc.SetPusher(nil)
	if err := r.svc.Remove(ctx, pa, pb); err != nil {
		t.Fatal(err)
	}
	// b's item (added when b approved) stays, with no subscription.
	if entries, _, _ := r.svc.Get(ctx, pb); len(entries) != 1 || entries[0].Subscription != rosters.None || entries[0].Ask || entries[0].Approved {
		t.Errorf("b's roster %+v", entries)
	}
	if entries, _, _ := r.svc.Get(ctx, pa); len(entries) != 0 {
		t.Errorf("a's roster after removals %+v", entries)
	}
}

// The owner gains an item for a subscription that already existed in core:
// only the owner's roster changed, so only the owner gets a push.
func TestAddedItemPushesOwnerOnly(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, nil)
	if err := r.svc.Set(ctx, pb, rosters.Item{Contact: pa}); err != nil {
		t.Fatal(err)
	}
	// a watches b through core alone (no roster item for a).
	if _, err := r.eng.Subscribe(ctx, pa, pb, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := r.eng.Approve(ctx, pb, pa); err != nil {
		t.Fatal(err)
	}
	r.push.Pushes()
	bver, _ := r.svc.Version(ctx, pb)
	fx, err := r.svc.Subscribe(ctx, pa, pb, nil)
	if err != nil || fx != core.FxApproved {
		t.Fatalf("subscribe: %v, %v", fx, err)
	}
	ps := r.push.Pushes()
	if len(ps) != 1 || ps[0].Owner != pa || ps[0].Entry.Subscription != rosters.To {
		t.Errorf("pushed %+v, want a's new item only", ps)
	}
	if v, _ := r.svc.Version(ctx, pb); v != bver {
		t.Errorf("b's version moved %d → %d", bver, v)
	}
}

// A refused request changes no roster and is still recorded as refused.
func TestRefusedSubscribe(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, refuseAsk{pb: pa})
	_, err := r.svc.Subscribe(ctx, pa, pb, []byte("hi"))
	var re *core.RefusedError
	if !errors.As(err, &re) || re.Reason != core.ReasonBlocked {
		t.Fatalf("subscribe: %v, want refused", err)
	}
	if ps := r.push.Pushes(); len(ps) != 0 {
		t.Errorf("pushed %+v", ps)
	}
	if entries, ver, _ := r.svc.Get(ctx, pa); len(entries) != 0 || ver != 0 {
		t.Errorf("a's roster %+v version %d", entries, ver)
	}
	recs, err := r.eng.WatcherInfo(ctx, pb, pb)
	if err != nil || len(recs) != 1 || recs[0].Watcher != pa || recs[0].Kind != core.WatchRefused {
		t.Errorf("b's watcher information %+v, %v; want a refused", recs, err)
	}
	if subs := r.rec.Subscriptions(); len(subs) != 0 {
		t.Errorf("notified %+v", subs)
	}
}

type refuseAsk map[core.PrincipalID]core.PrincipalID // presentity → watcher

func (r refuseAsk) MayAsk(_ context.Context, p, w core.PrincipalID) core.Reason {
	if r[p] == w {
		return core.ReasonBlocked
	}
	return core.ReasonNone
}

func (refuseAsk) MayWatch(ctx context.Context, p, w core.PrincipalID, s core.Subscription) core.Reason {
	return core.DefaultAccess{}.MayWatch(ctx, p, w, s)
}

func TestNoRosterTx(t *testing.T) {
	ctx := context.Background()
	store := coretest.New()
	store.MustCreate(pa, pb)
	svc := rosters.New(core.New(core.Config{Store: store, Notifier: &coretest.Recorder{}}), nil)
	if _, err := svc.Subscribe(ctx, pa, pb, nil); !errors.Is(err, rosters.ErrNoTx) {
		t.Errorf("Subscribe: %v", err)
	}
	if _, _, err := svc.Get(ctx, pa); !errors.Is(err, rosters.ErrNoTx) {
		t.Errorf("Get: %v", err)
	}
	if _, err := svc.Version(ctx, pa); !errors.Is(err, rosters.ErrNoTx) {
		t.Errorf("Version: %v", err)
	}
	// Nothing of the failed Subscribe was kept.
	err := store.View(ctx, func(tx core.Tx) error {
		s, err := tx.Subscription(ctx, pb, pa)
		if err == nil && !s.IsZero() {
			t.Errorf("stored %+v", s)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestServiceErrors(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, nil)
	if _, err := r.svc.Subscribe(ctx, pa, "nobody@x", nil); !errors.Is(err, core.ErrNoSuchPrincipal) {
		t.Errorf("subscribe to unknown: %v", err)
	}
	if _, err := r.svc.Approve(ctx, pa, pa); !errors.Is(err, core.ErrSelf) {
		t.Errorf("approve self: %v", err)
	}
	if entries, _, _ := r.svc.Get(ctx, pa); len(entries) != 0 {
		t.Errorf("failed calls left %+v", entries)
	}
	if ps := r.push.Pushes(); len(ps) != 0 {
		t.Errorf("failed calls pushed %+v", ps)
	}
}
