package core_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/imppd/imppd/core"
)

// refuseSender is a DELIVERY RULE plug-in refusing one sender principal.
type refuseSender core.AgentID

func (r refuseSender) MayDeliver(_ context.Context, m *core.Message, _ core.PrincipalID) core.Reason {
	if m.From.Principal() == core.AgentID(r).Principal() {
		return core.ReasonContactsOnly
	}
	return core.ReasonNone
}

// TestSendRouting follows RFC 6121 §8.5 for each message type and
// addressing case.
func TestSendRouting(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, func(c *core.Config) {
		c.MaxMessage = 64
		c.Delivery = refuseSender("spam@x")
	})
	e.store.MustCreate("r@x", "o@x", "n@x", "s@x", "spam@x")
	// r: two agents tie at the highest priority, one lower, one negative,
	// one connected but not available.
	e.online("r@x/hi", 5)
	e.online("r@x/hi2", 5)
	e.online("r@x/lo", 1)
	e.online("r@x/neg", -1)
	e.eng.Connect("r@x/conn")
	// n: only a negative-priority agent. o: exists, no agent.
	e.online("n@x/1", -3)
	e.rec.Reset()

	const (
		normal    = core.MsgNormal
		chat      = core.MsgChat
		headline  = core.MsgHeadline
		groupchat = core.MsgGroupchat
		errorMsg  = core.MsgError
	)
	top := []core.AgentID{"r@x/hi", "r@x/hi2"}
	type tc struct {
		name     string
		to       core.AgentID
		kind     core.MessageKind
		storable bool
		from     core.AgentID
		payload  int
		want     core.Outcome
		err      error
		agents   []core.AgentID // that took it
		stored   core.PrincipalID
	}
	cases := []tc{
		// Full JID of a connected agent (§8.5.3.1), whatever its priority
		// or availability.
		{name: "full/lo", to: "r@x/lo", kind: chat, want: core.Outcome{Delivered: 1}, agents: []core.AgentID{"r@x/lo"}},
		{name: "full/neg", to: "r@x/neg", kind: normal, want: core.Outcome{Delivered: 1}, agents: []core.AgentID{"r@x/neg"}},
		{name: "full/connected", to: "r@x/conn", kind: headline, want: core.Outcome{Delivered: 1}, agents: []core.AgentID{"r@x/conn"}},
		{name: "full/groupchat", to: "r@x/hi", kind: groupchat, want: core.Outcome{Delivered: 1}, agents: []core.AgentID{"r@x/hi"}},
		{name: "full/negative only", to: "n@x/1", kind: chat, want: core.Outcome{Delivered: 1}, agents: []core.AgentID{"n@x/1"}},
		// Bare JID (§8.5.2.1.1): highest non-negative priority, ties all.
		{name: "bare/chat", to: "r@x", kind: chat, want: core.Outcome{Delivered: 2}, agents: top},
		{name: "bare/normal", to: "r@x", kind: normal, want: core.Outcome{Delivered: 2}, agents: top},
		{name: "bare/headline", to: "r@x", kind: headline, want: core.Outcome{Delivered: 3}, agents: []core.AgentID{"r@x/hi", "r@x/hi2", "r@x/lo"}},
		{name: "bare/groupchat", to: "r@x", kind: groupchat, err: core.ErrNotDelivered},
		{name: "bare/error", to: "r@x", kind: errorMsg, want: core.Outcome{Dropped: true}},
		// Full JID, no such resource (§8.5.3.2.1).
		{name: "gone/chat", to: "r@x/gone", kind: chat, want: core.Outcome{Delivered: 2}, agents: top},
		{name: "gone/normal", to: "r@x/gone", kind: normal, err: core.ErrNotDelivered},
		{name: "gone/groupchat", to: "r@x/gone", kind: groupchat, err: core.ErrNotDelivered},
		{name: "gone/headline", to: "r@x/gone", kind: headline, want: core.Outcome{Dropped: true}},
		{name: "gone/error", to: "r@x/gone", kind: errorMsg, want: core.Outcome{Dropped: true}},
		// No available agent (§8.5.2.2): chat and normal stored, others not.
		{name: "offline/chat", to: "o@x", kind: chat, storable: true, want: core.Outcome{Stored: true}, stored: "o@x"},
		{name: "offline/normal", to: "o@x", kind: normal, storable: true, want: core.Outcome{Stored: true}, stored: "o@x"},
		{name: "offline/chat not storable", to: "o@x", kind: chat, want: core.Outcome{Dropped: true}},
		{name: "offline/headline", to: "o@x", kind: headline, storable: true, want: core.Outcome{Dropped: true}},
		{name: "offline/error", to: "o@x", kind: errorMsg, storable: true, want: core.Outcome{Dropped: true}},
		{name: "offline/groupchat", to: "o@x", kind: groupchat, storable: true, err: core.ErrNotDelivered},
		{name: "offline full/chat", to: "o@x/1", kind: chat, storable: true, want: core.Outcome{Stored: true}, stored: "o@x"},
		{name: "offline full/normal", to: "o@x/1", kind: normal, storable: true, err: core.ErrNotDelivered},
		{name: "offline full/groupchat", to: "o@x/1", kind: groupchat, storable: true, err: core.ErrNotDelivered},
		{name: "offline full/headline", to: "o@x/1", kind: headline, storable: true, want: core.Outcome{Dropped: true}},
		{name: "negative only/chat", to: "n@x", kind: chat, storable: true, want: core.Outcome{Stored: true}, stored: "n@x"},
		{name: "negative only/headline", to: "n@x", kind: headline, storable: true, want: core.Outcome{Dropped: true}},
		// Unknown principal (§8.5.1): an error, except for errors.
		{name: "unknown/chat", to: "u@x", kind: chat, storable: true, err: core.ErrNoSuchPrincipal},
		{name: "unknown/normal", to: "u@x", kind: normal, storable: true, err: core.ErrNoSuchPrincipal},
		{name: "unknown/groupchat", to: "u@x", kind: groupchat, err: core.ErrNoSuchPrincipal},
		{name: "unknown full/normal", to: "u@x/1", kind: normal, storable: true, err: core.ErrNoSuchPrincipal},
		{name: "unknown full/chat", to: "u@x/1", kind: chat, storable: true, err: core.ErrNoSuchPrincipal},
		{name: "unknown full/groupchat", to: "u@x/1", kind: groupchat, err: core.ErrNoSuchPrincipal},
		{name: "unknown/error", to: "u@x", kind: errorMsg, want: core.Outcome{Dropped: true}},
		// Limits and rules.
		{name: "too big", to: "r@x", kind: chat, payload: 65, err: core.ErrTooBig},
		{name: "limit", to: "r@x/lo", kind: chat, payload: 64, want: core.Outcome{Delivered: 1}, agents: []core.AgentID{"r@x/lo"}},
		{name: "refused", to: "r@x", kind: chat, from: "spam@x/1", err: core.ErrForbidden},
		{name: "refused offline", to: "o@x", kind: chat, storable: true, from: "spam@x/1", err: core.ErrForbidden},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			from := c.from
			if from == "" {
				from = "s@x/1"
			}
			if c.payload == 0 {
				c.payload = 10
			}
			m := &core.Message{ID: fmt.Sprintf("m%d", i), From: from, To: c.to, Kind: c.kind, Storable: c.storable, Payload: make([]byte, c.payload)}
			before := map[core.PrincipalID]int{"o@x": len(e.offline("o@x")), "n@x": len(e.offline("n@x")), "r@x": len(e.offline("r@x"))}
			out, err := e.eng.Send(ctx, m)
			if c.err != nil {
				if !errors.Is(err, c.err) {
					t.Errorf("err = %v, want %v", err, c.err)
				}
			} else if err != nil {
				t.Errorf("err = %v", err)
			}
			// Outcome.Agents names exactly the agents that accepted it.
			took := slices.Clone(out.Agents)
			slices.Sort(took)
			if out.Delivered != c.want.Delivered || out.Stored != c.want.Stored || out.Dropped != c.want.Dropped {
				t.Errorf("outcome %+v, want %+v", out, c.want)
			}
			var got []core.AgentID
			for _, d := range e.rec.Deliveries() {
				if d.Message.ID != m.ID || d.Message.Delayed {
					t.Errorf("delivered %q (delayed=%v), want %q live", d.Message.ID, d.Message.Delayed, m.ID)
				}
				if d.Accepted {
					got = append(got, d.To)
				}
			}
			slices.Sort(got)
			want := slices.Clone(c.agents)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("delivered to %v, want %v", got, want)
			}
			if !slices.Equal(took, want) {
				t.Errorf("Outcome.Agents %v, want %v", took, want)
			}
			for p, n := range before {
				after := len(e.offline(p))
				wantN := n
				if p == c.stored {
					wantN++
				}
				if after != wantN {
					t.Errorf("offline store of %s has %d, want %d", p, after, wantN)
				}
			}
			if c.stored != "" {
				ms := e.offline(c.stored)
				if last := ms[len(ms)-1]; last.ID != m.ID || last.Stamp.IsZero() {
					t.Errorf("stored %+v", last.Message)
				}
			}
		})
	}
}

// TestSendFallbacks: agents that refuse a message, and the quota.
func TestSendFallbacks(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, func(c *core.Config) { c.OfflineQuota = 2 })
	e.store.MustCreate("r@x", "o@x")
	e.online("r@x/1", 1)
	e.online("r@x/2", 0)
	e.rec.Reset()

	// The full JID's agent refuses a chat: handled as to the bare JID.
	e.rec.Accept(func(to core.AgentID, _ *core.Message) bool { return to != "r@x/1" })
	out, err := e.eng.Send(ctx, &core.Message{ID: "1", To: "r@x/1", Kind: core.MsgChat, Storable: true})
	if err != nil || out.Delivered != 0 || !out.Stored {
		// r@x/1 is the only top-priority agent and refuses again, so the
		// message is kept.
		t.Errorf("refused full chat: %+v, %v", out, err)
	}
	e.rec.Reset()

	// Every agent refuses: stored, then the quota.
	e.rec.Accept(func(core.AgentID, *core.Message) bool { return false })
	out, err = e.eng.Send(ctx, &core.Message{ID: "2", To: "r@x", Kind: core.MsgNormal, Storable: true})
	if err != nil || !out.Stored {
		t.Errorf("refused bare: %+v, %v", out, err)
	}
	out, err = e.eng.Send(ctx, &core.Message{ID: "3", To: "r@x", Kind: core.MsgChat, Storable: true})
	if !errors.Is(err, core.ErrQuota) || out.Delivered != 0 || out.Stored || out.Agents != nil {
		t.Errorf("over quota: %+v, %v", out, err)
	}
	if n := len(e.offline("r@x")); n != 2 {
		t.Errorf("stored %d, want 2", n)
	}
	for i := 0; i < 2; i++ {
		if _, err := e.eng.Send(ctx, &core.Message{ID: fmt.Sprint("o", i), To: "o@x", Kind: core.MsgChat, Storable: true}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.eng.Send(ctx, &core.Message{ID: "o3", To: "o@x", Kind: core.MsgChat, Storable: true}); !errors.Is(err, core.ErrQuota) {
		t.Errorf("offline over quota: %v", err)
	}
	// A refused message is not stored and reports the rule's reason.
	var re *core.RefusedError
	e2 := newEnv(t, func(c *core.Config) { c.Delivery = refuseSender("s@x") })
	e2.store.MustCreate("o@x")
	_, err = e2.eng.Send(ctx, &core.Message{ID: "x", From: "s@x/1", To: "o@x", Kind: core.MsgChat, Storable: true})
	if !errors.As(err, &re) || re.Reason != core.ReasonContactsOnly || re.Error() == "" {
		t.Errorf("refused: %v", err)
	}
}

func TestDrainOffline(t *testing.T) {
	for _, first := range []int64{0, 1} {
		t.Run(fmt.Sprint("firstSeq=", first), func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t, nil)
			e.store.SetFirstSeq(first)
			e.store.MustCreate("o@x")
			const n = 300 // more than one batch
			var want []string
			for i := 0; i < n; i++ {
				id := fmt.Sprintf("m%03d", i)
				want = append(want, id)
				out, err := e.eng.Send(ctx, &core.Message{ID: id, To: "o@x", Kind: core.MsgChat, Storable: true})
				if err != nil || !out.Stored {
					t.Fatalf("store %s: %+v, %v", id, out, err)
				}
			}
			e.eng.Connect("o@x/1")
			var got []string
			taken := func(to core.AgentID, m *core.Message) {
				if to != "o@x/1" {
					t.Errorf("drained to %s", to)
				}
				if !m.Delayed {
					t.Errorf("drained %s without Delayed", m.ID)
				}
				got = append(got, m.ID)
			}

			// Stops at the first refusal; the refused stays stored.
			for _, stop := range []int{0, 1, 2, 260} {
				k := 0
				e.rec.Accept(func(to core.AgentID, m *core.Message) bool {
					if len(got) >= stop {
						return false
					}
					k++
					taken(to, m)
					return true
				})
				before := len(got)
				total, err := e.eng.DrainOffline(ctx, "o@x/1")
				if err != nil || total != stop-before || k != total {
					t.Fatalf("drain up to %d: total %d, delivered %d, err %v", stop, total, k, err)
				}
				if left := len(e.offline("o@x")); left != n-stop {
					t.Fatalf("after draining %d: %d left, want %d", stop, left, n-stop)
				}
			}
			e.rec.Accept(func(to core.AgentID, m *core.Message) bool { taken(to, m); return true })
			total, err := e.eng.DrainOffline(ctx, "o@x/1")
			if err != nil || total != n-260 {
				t.Fatalf("final drain: %d, %v", total, err)
			}
			if !slices.Equal(got, want) {
				t.Errorf("delivered %d messages, want each of %d once in order; got %v", len(got), n, got)
			}
			if left := e.offline("o@x"); len(left) != 0 {
				t.Errorf("%d messages left", len(left))
			}
			total, err = e.eng.DrainOffline(ctx, "o@x/1")
			if err != nil || total != 0 {
				t.Errorf("drain of empty inbox: %d, %v", total, err)
			}
		})
	}
}

func TestNewIDUnique(t *testing.T) {
	e1 := newEnv(t, nil).eng
	e2 := newEnv(t, nil).eng
	const workers, per = 8, 5000
	var mu sync.Mutex
	seen := make(map[string]int, 2*workers*per)
	var wg sync.WaitGroup
	for w := 0; w < 2*workers; w++ {
		eng := e1
		if w%2 == 1 {
			eng = e2
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ids := make([]string, per)
			for i := range ids {
				ids[i] = eng.NewID()
			}
			mu.Lock()
			for _, id := range ids {
				seen[id]++
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(seen) != 2*workers*per {
		for id, n := range seen {
			if n > 1 {
				t.Errorf("id %q issued %d times", id, n)
				break
			}
		}
		t.Fatalf("%d distinct ids, want %d", len(seen), 2*workers*per)
	}
	for id := range seen {
		if id == "" {
			t.Fatal("empty id")
		}
	}
}
