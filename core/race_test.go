package core_test

import (
	"context"
	"sync"
	"testing"

	"github.com/imppd/imppd/core"
)

// raceStore runs hook once inside the next transaction that stores an
// offline message, before it commits.
type raceStore struct {
	core.Store
	once sync.Once
	hook func()
}

func (s *raceStore) Update(ctx context.Context, fn func(core.Tx) error) error {
	return s.Store.Update(ctx, func(tx core.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		if n, _ := tx.CountOffline(ctx, "r@x"); n > 0 {
			s.once.Do(s.hook)
		}
		return nil
	})
}

// TestOfflineRaceWithInitialPresence: a message is being stored for r@x
// while r@x's agent becomes available and drains its (still empty) inbox.
// The message must still reach the agent, not wait for the next login.
func TestOfflineRaceWithInitialPresence(t *testing.T) {
	var rs *raceStore
	e := newEnv(t, func(c *core.Config) {
		rs = &raceStore{Store: c.Store}
		c.Store = rs
	})
	ctx := context.Background()
	for _, p := range []core.PrincipalID{"r@x", "s@x"} {
		if err := e.store.CreateAccount(ctx, core.Account{ID: p}); err != nil {
			t.Fatal(err)
		}
	}
	rs.hook = func() {
		// The agent's initial presence and drain, before the store commits.
		e.online("r@x/phone", 0)
		if n, err := e.eng.DrainOffline(ctx, "r@x/phone"); err != nil || n != 0 {
			t.Fatalf("early drain: %d %v", n, err)
		}
	}
	out, err := e.eng.Send(ctx, &core.Message{ID: "m1", From: "s@x/a", To: "r@x", Kind: core.MsgChat, Storable: true})
	if err != nil || !out.Stored {
		t.Fatalf("send: %+v %v", out, err)
	}
	got := 0
	for _, d := range e.rec.Deliveries() {
		if d.To == "r@x/phone" && d.Message.ID == "m1" && d.Accepted {
			got++
		}
	}
	if got != 1 {
		t.Fatalf("message delivered %d times to the agent that came online meanwhile, want 1", got)
	}
	if left := e.offline("r@x"); len(left) != 0 {
		t.Fatalf("%d messages left in the inbox", len(left))
	}
}
