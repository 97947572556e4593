package coretest_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/imppd/imppd/core"
	"github.com/imppd/imppd/core/coretest"
)

func TestAccounts(t *testing.T) {
	ctx := context.Background()
	s := coretest.New()
	s.MustCreate("b@x", "a@x")
	if err := s.CreateAccount(ctx, core.Account{ID: "a@x"}); !errors.Is(err, core.ErrPrincipalExists) {
		t.Errorf("duplicate: %v", err)
	}
	if ids, _ := s.ListAccounts(ctx); !slices.Equal(ids, []core.PrincipalID{"a@x", "b@x"}) {
		t.Errorf("ListAccounts = %v", ids)
	}
	creds := []core.Credentials{{Hash: "SHA-256", Iterations: 4096}}
	if err := s.SetCredentials(ctx, "a@x", creds); err != nil {
		t.Fatal(err)
	}
	if a, err := s.Account(ctx, "a@x"); err != nil || len(a.Credentials) != 1 || a.Credentials[0].Hash != "SHA-256" {
		t.Errorf("Account = %+v, %v", a, err)
	}
	if err := s.SetCredentials(ctx, "z@x", creds); !errors.Is(err, core.ErrNoSuchPrincipal) {
		t.Errorf("SetCredentials of unknown: %v", err)
	}

	// DeleteAccount removes everything naming the principal.
	now := time.Unix(1, 0)
	err := s.Update(ctx, func(tx core.Tx) error {
		for _, sub := range []core.Subscription{
			{Presentity: "a@x", Watcher: "b@x", State: core.SubActive},
			{Presentity: "b@x", Watcher: "a@x", State: core.SubPending},
		} {
			if err := tx.PutSubscription(ctx, sub); err != nil {
				return err
			}
		}
		if _, err := tx.RecordWatcher(ctx, "b@x", "a@x", core.WatchFetcher, now); err != nil {
			return err
		}
		if _, err := tx.PutOffline(ctx, "a@x", core.Message{ID: "m"}); err != nil {
			return err
		}
		return tx.PutLastPresence(ctx, core.LastPresence{Presentity: "a@x"})
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteAccount(ctx, "a@x"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteAccount(ctx, "a@x"); !errors.Is(err, core.ErrNoSuchPrincipal) {
		t.Errorf("second delete: %v", err)
	}
	if _, err := s.Account(ctx, "a@x"); !errors.Is(err, core.ErrNoSuchPrincipal) {
		t.Errorf("Account after delete: %v", err)
	}
	err = s.View(ctx, func(tx core.Tx) error {
		w, _ := tx.Watchers(ctx, "b@x")
		g, _ := tx.Watching(ctx, "b@x")
		info, _ := tx.WatcherInfo(ctx, "b@x")
		n, _ := tx.CountOffline(ctx, "a@x")
		_, ok, _ := tx.LastPresence(ctx, "a@x")
		if len(w)+len(g)+len(info)+n != 0 || ok {
			t.Errorf("left after delete: %v %v %v %d %v", w, g, info, n, ok)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A View sees the last committed snapshot, never a running Update's writes,
// and records come back as copies.
func TestSnapshots(t *testing.T) {
	ctx := context.Background()
	s := coretest.New()
	err := s.Update(ctx, func(tx core.Tx) error {
		if err := tx.PutSubscription(ctx, core.Subscription{Presentity: "a@x", Watcher: "b@x", State: core.SubPending, Request: []byte("r")}); err != nil {
			return err
		}
		return s.View(ctx, func(v core.Tx) error {
			if sub, _ := v.Subscription(ctx, "a@x", "b@x"); !sub.IsZero() {
				t.Errorf("View saw an uncommitted write: %+v", sub)
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.View(ctx, func(tx core.Tx) error {
		sub, _ := tx.Subscription(ctx, "a@x", "b@x")
		sub.Request[0] = 'X'
		again, _ := tx.Subscription(ctx, "a@x", "b@x")
		if string(again.Request) != "r" {
			t.Errorf("stored request aliased: %q", again.Request)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// A zero subscription is deleted.
	err = s.Update(ctx, func(tx core.Tx) error {
		return tx.PutSubscription(ctx, core.Subscription{Presentity: "a@x", Watcher: "b@x"})
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = s.View(ctx, func(tx core.Tx) error {
		if w, _ := tx.Watchers(ctx, "a@x"); len(w) != 0 {
			t.Errorf("zero subscription kept: %+v", w)
		}
		return nil
	})
}

func TestOfflineSeq(t *testing.T) {
	ctx := context.Background()
	s := coretest.New()
	err := s.Update(ctx, func(tx core.Tx) error {
		for i := 0; i < 3; i++ {
			seq, err := tx.PutOffline(ctx, "a@x", core.Message{ID: string(rune('a' + i))})
			if err != nil || seq != int64(i+1) {
				t.Errorf("seq %d, %v", seq, err)
			}
		}
		if err := tx.DeleteOffline(ctx, "a@x", 2); err != nil {
			return err
		}
		ms, err := tx.Offline(ctx, "a@x", 10)
		if err != nil || len(ms) != 1 || ms[0].ID != "c" || ms[0].Seq != 3 {
			t.Errorf("after delete: %+v, %v", ms, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
