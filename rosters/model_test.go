package rosters_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/imppd/imppd/core"
	"github.com/imppd/imppd/core/coretest"
	"github.com/imppd/imppd/rosters"
	"github.com/imppd/imppd/rosters/rosterstest"
)

// The model below is RFC 6121 Appendix A written out as its tables, each
// side of a pair of local users keeping its own state name, independently
// of core's directional subscriptions.

const (
	sN    = "None"
	sNPO  = "None + Pending Out"
	sNPI  = "None + Pending In"
	sNPOI = "None + Pending Out/In"
	sT    = "To"
	sTPI  = "To + Pending In"
	sF    = "From"
	sFPO  = "From + Pending Out"
	sB    = "Both"
)

// A.2.1: the user's server processing an outbound "subscribe" (always
// routed, §3.1.2).
var outSubscribe = map[string]string{sN: sNPO, sNPO: sNPO, sNPI: sNPOI, sNPOI: sNPOI, sT: sT, sTPI: sTPI, sF: sFPO, sFPO: sFPO, sB: sB}

// A.3.1: the contact's server processing an inbound "subscribe". In
// "From …" and "Both" it auto-replies "subscribed".
var inSubscribe = map[string]string{sN: sNPI, sNPO: sNPOI, sNPI: sNPI, sNPOI: sNPOI, sT: sTPI, sTPI: sTPI, sF: sF, sFPO: sFPO, sB: sB}

// A.2.2: outbound "subscribed"; "" marks the rows that record a
// pre-approval and route nothing.
var outSubscribed = map[string]string{sN: "", sNPO: "", sNPI: sF, sNPOI: sFPO, sT: "", sTPI: sB, sF: sF, sFPO: sFPO, sB: sB}

// A.3.2: inbound "subscribed".
var inSubscribed = map[string]string{sN: sN, sNPO: sT, sNPI: sNPI, sNPOI: sTPI, sT: sT, sTPI: sTPI, sF: sF, sFPO: sB, sB: sB}

// A.2.3: outbound "unsubscribed" (in every row it cancels a pre-approval).
var outUnsubscribed = map[string]string{sN: sN, sNPO: sNPO, sNPI: sN, sNPOI: sNPO, sT: sT, sTPI: sT, sF: sN, sFPO: sNPO, sB: sT}

// A.3.3: inbound "unsubscribed".
var inUnsubscribed = map[string]string{sN: sN, sNPO: sN, sNPI: sNPI, sNPOI: sNPI, sT: sN, sTPI: sNPI, sF: sF, sFPO: sF, sB: sF}

// A.2.4: outbound "unsubscribe".
var outUnsubscribe = map[string]string{sN: sN, sNPO: sN, sNPI: sNPI, sNPOI: sNPI, sT: sN, sTPI: sNPI, sF: sF, sFPO: sF, sB: sF}

// A.3.4: inbound "unsubscribe".
var inUnsubscribe = map[string]string{sN: sN, sNPO: sNPO, sNPI: sN, sNPOI: sNPO, sT: sT, sTPI: sT, sF: sN, sFPO: sNPO, sB: sT}

func hasFrom(s string) bool { return strings.HasPrefix(s, "From") || s == sB }

// view is one user's state towards the other.
type view struct {
	state    string
	approved bool
	item     bool
}

type model struct {
	v map[core.PrincipalID]*view
}

func newModel(a, b core.PrincipalID) *model {
	return &model{v: map[core.PrincipalID]*view{a: {state: sN}, b: {state: sN}}}
}

func (m *model) clone() *model {
	c := &model{v: map[core.PrincipalID]*view{}}
	for k, v := range m.v {
		w := *v
		c.v[k] = &w
	}
	return c
}

// subscribe: x sends "subscribe" to y.
func (m *model) subscribe(x, y core.PrincipalID) error {
	vx, vy := m.v[x], m.v[y]
	vx.item = true // §3.1.2: the user's roster holds the contact
	vx.state = outSubscribe[vx.state]
	switch {
	case hasFrom(vy.state):
		// auto-reply "subscribed"
		vx.state = inSubscribed[vx.state]
	case vy.approved:
		// §3.4: y's server approves on y's behalf.
		vy.state = inSubscribe[vy.state]
		vy.state = outSubscribed[vy.state]
		vy.approved = false
		vx.state = inSubscribed[vx.state]
	default:
		vy.state = inSubscribe[vy.state]
	}
	return nil
}

// approve: x sends "subscribed" to y.
func (m *model) approve(x, y core.PrincipalID) error {
	vx, vy := m.v[x], m.v[y]
	next := outSubscribed[vx.state]
	switch {
	case next == "":
		if !vx.approved {
			vx.approved, vx.item = true, true // §3.4: pre-approval, item created
		}
	case next != vx.state:
		vx.state, vx.item = next, true
		vy.state = inSubscribed[vy.state]
	}
	return nil
}

// deny: x sends "unsubscribed" to y.
func (m *model) deny(x, y core.PrincipalID) error {
	vx, vy := m.v[x], m.v[y]
	vx.approved = false
	if next := outUnsubscribed[vx.state]; next != vx.state {
		vx.state = next
		vy.state = inUnsubscribed[vy.state]
	}
	return nil
}

// unsubscribe: x sends "unsubscribe" to y.
func (m *model) unsubscribe(x, y core.PrincipalID) error {
	vx, vy := m.v[x], m.v[y]
	if next := outUnsubscribe[vx.state]; next != vx.state {
		vx.state = next
		vy.state = inUnsubscribe[vy.state]
	}
	return nil
}

// remove: x removes its item for y (§2.5.2): "unsubscribe" if x watches or
// asked, "unsubscribed" if y watches or asked or x pre-approved.
func (m *model) remove(x, y core.PrincipalID) error {
	vx := m.v[x]
	if !vx.item {
		return core.ErrNoSuchPrincipal
	}
	if s := vx.state; s == sT || s == sTPI || s == sB || strings.Contains(s, "Pending Out") {
		m.unsubscribe(x, y)
	}
	if s := vx.state; hasFrom(s) || strings.Contains(s, "Pending In") || strings.Contains(s, "Out/In") || vx.approved {
		m.deny(x, y)
	}
	vx.item = false
	return nil
}

// check asserts the model's own consistency: the two views mirror each
// other, and a pre-approval only exists where Appendix A allows one.
func (m *model) check(t *testing.T, a, b core.PrincipalID) {
	t.Helper()
	for _, p := range [][2]core.PrincipalID{{a, b}, {b, a}} {
		x, y := m.v[p[0]].state, m.v[p[1]].state
		to := x == sT || x == sTPI || x == sB
		out := strings.Contains(x, "Pending Out")
		in := strings.Contains(y, "Pending In") || strings.Contains(y, "Out/In")
		if to != hasFrom(y) || out != in {
			t.Fatalf("model inconsistent: %s sees %q, %s sees %q", p[0], x, p[1], y)
		}
		if m.v[p[0]].approved && (x != sN && x != sNPO && x != sT) {
			t.Fatalf("model: pre-approval in %q", x)
		}
	}
}

type action struct {
	name  string
	apply func(context.Context, *rosters.Service) error
	model func(*model) error
}

const pa, pb core.PrincipalID = "a@x", "b@x"

func actions() []action {
	mk := func(name string, x, y core.PrincipalID, svc func(context.Context, *rosters.Service, core.PrincipalID, core.PrincipalID) error, mod func(*model, core.PrincipalID, core.PrincipalID) error) action {
		return action{
			name:  fmt.Sprintf("%s %s %s", x[:1], name, y[:1]),
			apply: func(ctx context.Context, s *rosters.Service) error { return svc(ctx, s, x, y) },
			model: func(m *model) error { return mod(m, x, y) },
		}
	}
	sub := func(ctx context.Context, s *rosters.Service, x, y core.PrincipalID) error {
		_, err := s.Subscribe(ctx, x, y, []byte("<status>hi</status>"))
		return err
	}
	appr := func(ctx context.Context, s *rosters.Service, x, y core.PrincipalID) error {
		_, err := s.Approve(ctx, x, y)
		return err
	}
	deny := func(ctx context.Context, s *rosters.Service, x, y core.PrincipalID) error {
		_, err := s.Deny(ctx, x, y)
		return err
	}
	unsub := func(ctx context.Context, s *rosters.Service, x, y core.PrincipalID) error {
		_, err := s.Unsubscribe(ctx, x, y)
		return err
	}
	rm := func(ctx context.Context, s *rosters.Service, x, y core.PrincipalID) error { return s.Remove(ctx, x, y) }
	var out []action
	for _, p := range [][2]core.PrincipalID{{pa, pb}, {pb, pa}} {
		x, y := p[0], p[1]
		out = append(out,
			mk("subscribe", x, y, sub, (*model).subscribe),
			mk("approve", x, y, appr, (*model).approve),
			mk("deny", x, y, deny, (*model).deny),
			mk("unsubscribe", x, y, unsub, (*model).unsubscribe),
			mk("remove", x, y, rm, (*model).remove),
		)
	}
	return out
}

type rig struct {
	store *coretest.Store
	eng   *core.Engine
	svc   *rosters.Service
	push  *rosterstest.Pusher
	rec   *coretest.Recorder
}

func newRig(t *testing.T, access core.AccessRules) *rig {
	t.Helper()
	r := &rig{store: rosterstest.New(), push: &rosterstest.Pusher{}, rec: &coretest.Recorder{}}
	r.eng = core.New(core.Config{Store: r.store, Notifier: r.rec, Access: access})
	r.svc = rosters.New(r.eng, r.push)
	r.store.MustCreate(pa, pb, "c@x")
	return r
}

// observed is what the implementation shows of owner's relation to contact.
type observed struct {
	state    string
	approved bool
	item     bool
	entry    rosters.Entry // from Get, when item
	ver      int64
}

func (r *rig) observe(t *testing.T, owner, contact core.PrincipalID) observed {
	t.Helper()
	ctx := context.Background()
	var o observed
	err := r.eng.View(ctx, func(tx core.Tx) error {
		out, err := tx.Subscription(ctx, contact, owner)
		if err != nil {
			return err
		}
		in, err := tx.Subscription(ctx, owner, contact)
		if err != nil {
			return err
		}
		e := rosters.Compose(rosters.Item{}, out, in)
		o.state, o.approved = stateName(e), e.Approved
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	entries, ver, err := r.svc.Get(ctx, owner)
	if err != nil {
		t.Fatal(err)
	}
	o.ver = ver
	if v, err := r.svc.Version(ctx, owner); err != nil || v != ver {
		t.Fatalf("Version = %d, %v; Get's version %d", v, err, ver)
	}
	for _, e := range entries {
		if e.Contact == contact {
			o.item, o.entry = true, e
		} else {
			t.Fatalf("%s's roster holds %s", owner, e.Contact)
		}
	}
	return o
}

// TestRosterModelPairs applies every ordered pair of actions from a fresh
// state and compares both rosters with the model after each step.
func TestRosterModelPairs(t *testing.T) {
	acts := actions()
	if len(acts) != 10 {
		t.Fatalf("%d actions", len(acts))
	}
	for _, first := range acts {
		for _, second := range acts {
			t.Run(first.name+", "+second.name, func(t *testing.T) {
				runSequence(t, []action{first, second})
			})
		}
	}
}

// TestRosterModelReachable extends the pairs to every state the model can
// reach: breadth first, each new state is reached by replaying its
// shortest sequence on a fresh store, then every action is tried from it.
func TestRosterModelReachable(t *testing.T) {
	acts := actions()
	key := func(m *model) string {
		return fmt.Sprintf("%+v|%+v", *m.v[pa], *m.v[pb])
	}
	type node struct {
		path []action
		m    *model
	}
	start := newModel(pa, pb)
	seen := map[string]bool{key(start): true}
	queue := []node{{nil, start}}
	edges := 0
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		for _, act := range acts {
			// Every action from every reachable state.
			path := append(append([]action(nil), n.path...), act)
			var names []string
			for _, a := range path {
				names = append(names, a.name)
			}
			t.Run(strings.Join(names, ", "), func(t *testing.T) { runSequence(t, path) })
			edges++
			m := n.m.clone()
			_ = act.model(m)
			if k := key(m); !seen[k] {
				seen[k] = true
				queue = append(queue, node{path, m})
			}
		}
	}
	// Every Appendix A state appears on each side.
	for _, own := range []core.PrincipalID{pa, pb} {
		states := map[string]bool{}
		for k := range seen {
			for _, s := range []string{sN, sNPO, sNPI, sNPOI, sT, sTPI, sF, sFPO, sB} {
				part := strings.Split(k, "|")[0]
				if own == pb {
					part = strings.Split(k, "|")[1]
				}
				if strings.Contains(part, "state:"+s+" approved") {
					states[s] = true
				}
			}
		}
		if len(states) != 9 {
			t.Errorf("%s reached only %v", own, states)
		}
	}
	t.Logf("%d model states, %d transitions checked", len(seen), edges)
}

// runSequence applies acts from a fresh state, comparing both rosters,
// versions and pushes with the model after each step.
func runSequence(t *testing.T, acts []action) {
	t.Helper()
	ctx := context.Background()
	r := newRig(t, nil)
	m := newModel(pa, pb)
	prev := map[core.PrincipalID]observed{pa: r.observe(t, pa, pb), pb: r.observe(t, pb, pa)}
	for step, act := range acts {
		before := m.clone()
		wantErr := act.model(m)
		m.check(t, pa, pb)
		err := act.apply(ctx, r.svc)
		if !errors.Is(err, wantErr) || (wantErr == nil && err != nil) {
			t.Fatalf("step %d %s: err %v, want %v", step+1, act.name, err, wantErr)
		}
		pushed := map[core.PrincipalID][]rosterstest.Push{}
		for _, p := range r.push.Pushes() {
			pushed[p.Owner] = append(pushed[p.Owner], p)
		}
		for _, own := range []core.PrincipalID{pa, pb} {
			other := pb
			if own == pb {
				other = pa
			}
			mv, bv := m.v[own], before.v[own]
			got := r.observe(t, own, other)
			where := fmt.Sprintf("step %d (%s), %s's view of %s", step+1, act.name, own, other)
			if got.state != mv.state || got.approved != mv.approved || got.item != mv.item {
				t.Errorf("%s: got %q approved=%v item=%v, model %q approved=%v item=%v",
					where, got.state, got.approved, got.item, mv.state, mv.approved, mv.item)
			}
			if got.item {
				if stateName(got.entry) != got.state || got.entry.Approved != got.approved || got.entry.Contact != other {
					t.Errorf("%s: Get's entry %+v disagrees with the subscriptions %q", where, got.entry, got.state)
				}
			}
			changed := bv.item != mv.item || (mv.item && (bv.state != mv.state || bv.approved != mv.approved))
			ps := pushed[own]
			switch {
			case changed:
				if got.ver <= prev[own].ver {
					t.Errorf("%s: entry changed, version %d → %d", where, prev[own].ver, got.ver)
				}
				if len(ps) != 1 {
					t.Errorf("%s: entry changed, %d pushes %+v", where, len(ps), ps)
					break
				}
				p := ps[0]
				if p.Ver != got.ver {
					t.Errorf("%s: push version %d, roster version %d", where, p.Ver, got.ver)
				}
				if mv.item {
					if p.Entry.Contact != other || p.Entry.Subscription != got.entry.Subscription || p.Entry.Ask != got.entry.Ask ||
						p.Entry.Approved != got.entry.Approved || p.Entry.PendingIn != got.entry.PendingIn {
						t.Errorf("%s: pushed %+v, roster holds %+v", where, p.Entry, got.entry)
					}
				} else if p.Entry.Subscription != rosters.Remove || p.Entry.Contact != other {
					t.Errorf("%s: removal pushed as %+v", where, p.Entry)
				}
			default:
				if len(ps) != 0 {
					t.Errorf("%s: unchanged entry (%q), pushed %+v", where, mv.state, ps)
				}
				if got.ver != prev[own].ver {
					t.Errorf("%s: unchanged entry, version %d → %d", where, prev[own].ver, got.ver)
				}
			}
			prev[own] = got
		}
	}
}
