package core_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/imppd/imppd/core"
	"github.com/imppd/imppd/core/coretest"
)

// fxString names the bits of an Effect, for failure messages.
func fxString(fx core.Effect) string {
	names := []string{"Request", "Approved", "Denied", "Cancelled", "Presence", "Unavailable", "Changed"}
	s := ""
	for i, n := range names {
		if fx&(1<<i) != 0 {
			if s != "" {
				s += "|"
			}
			s += n
		}
	}
	if rest := fx &^ (1<<len(names) - 1); rest != 0 {
		s += fmt.Sprintf("|%#x", uint16(rest))
	}
	if s == "" {
		return "0"
	}
	return s
}

// TestTransitionExhaustive checks every SubState × PreApproved × SubEvent.
//
// The subscription is the presentity's ("contact's") side of one direction
// of RFC 6121 Appendix A: SubNone is a state without "From" and without
// "Pending In", SubPending is "… + Pending In", SubActive is "From …";
// PreApproved is the pre-approval of §3.4. EvSubscribe is an inbound
// "subscribe" (A.3.1), EvApprove an outbound "subscribed" (A.2.2), EvDeny an
// outbound "unsubscribed" (A.2.3), EvUnsubscribe an inbound "unsubscribe"
// (A.3.4). The two sides are on one server, so the watcher's tables (A.2.1,
// A.2.4, A.3.2, A.3.3) are the mirror image and the effects say what the
// watcher's side is told.
//
// Rows with PreApproved on a pending or active subscription cannot be
// reached through Transition (see TestTransitionInvariant); they fix what a
// store holding such a record turns into: a pre-approval approves a pending
// request, and is meaningless (dropped) on an active subscription.
func TestTransitionExhaustive(t *testing.T) {
	const (
		None    = core.SubNone
		Pending = core.SubPending
		Active  = core.SubActive
	)
	const (
		Req   = core.FxRequest
		Appr  = core.FxApproved
		Den   = core.FxDenied
		Canc  = core.FxCancelled
		Pres  = core.FxPresence
		Unav  = core.FxUnavailable
		Chang = core.FxChanged
	)
	type row struct {
		state   core.SubState
		pre     bool
		ev      core.SubEvent
		next    core.SubState
		nextPre bool
		keepReq bool // Request survives (only while pending)
		fx      core.Effect
		why     string
	}
	rows := []row{
		// "None" (no pre-approval).
		{None, false, core.EvSubscribe, Pending, false, true, Req | Chang, "A.3.1 None: deliver, → None + Pending In"},
		{None, false, core.EvApprove, None, true, false, Chang, "A.2.2 None: not routed, pre-approval (§3.4)"},
		{None, false, core.EvDeny, None, false, false, 0, "A.2.3 None: not routed, no state change"},
		{None, false, core.EvUnsubscribe, None, false, false, 0, "A.3.4 None: not delivered, no state change"},
		// "None" with a pre-approval.
		{None, true, core.EvSubscribe, Active, false, false, Appr | Pres | Chang, "§3.4: auto-approved, watcher told and sent presence, contact not bothered"},
		{None, true, core.EvApprove, None, true, false, 0, "§3.4: already pre-approved"},
		{None, true, core.EvDeny, None, false, false, Chang, "A.2.3 [1]: unsubscribed cancels the pre-approval, not routed"},
		{None, true, core.EvUnsubscribe, None, true, false, 0, "A.3.4 None: no state change; the pre-approval is the contact's"},
		// "… + Pending In".
		{Pending, false, core.EvSubscribe, Pending, false, true, 0, "A.3.1 None + Pending In: not delivered again, no state change"},
		{Pending, false, core.EvApprove, Active, false, false, Appr | Pres | Chang, "A.2.2 None + Pending In: routed, → From; §3.1.5 presence sent"},
		{Pending, false, core.EvDeny, None, false, false, Den | Chang, "A.2.3 None + Pending In: routed, → None"},
		{Pending, false, core.EvUnsubscribe, None, false, false, Canc | Chang, "A.3.4 None + Pending In: delivered, → None"},
		// "… + Pending In" with a (stored) pre-approval.
		{Pending, true, core.EvSubscribe, Active, false, false, Appr | Pres | Chang, "§3.4: the pre-approval approves the request"},
		{Pending, true, core.EvApprove, Active, false, false, Appr | Pres | Chang, "A.2.2 None + Pending In: → From"},
		{Pending, true, core.EvDeny, None, false, false, Den | Chang, "A.2.3: → None, pre-approval cancelled"},
		{Pending, true, core.EvUnsubscribe, None, true, false, Canc | Chang, "A.3.4: → None; the pre-approval is the contact's"},
		// "From …".
		{Active, false, core.EvSubscribe, Active, false, false, Appr, "A.3.1 From: not delivered, auto-reply subscribed (§3.1.3)"},
		{Active, false, core.EvApprove, Active, false, false, 0, "A.2.2 From: not routed, no state change"},
		{Active, false, core.EvDeny, None, false, false, Den | Unav | Chang, "A.2.3 From: routed, → None; §3.2 unavailable sent"},
		{Active, false, core.EvUnsubscribe, None, false, false, Canc | Unav | Chang, "A.3.4 From: delivered, → None; §3.3 unavailable sent"},
		// "From …" with a stale pre-approval: dropped.
		{Active, true, core.EvSubscribe, Active, false, false, Appr | Chang, "A.3.1 From: auto-reply; stale pre-approval dropped"},
		{Active, true, core.EvApprove, Active, false, false, Chang, "A.2.2 From: no state change; stale pre-approval dropped"},
		{Active, true, core.EvDeny, None, false, false, Den | Unav | Chang, "A.2.3 From: → None"},
		{Active, true, core.EvUnsubscribe, None, false, false, Canc | Unav | Chang, "A.3.4 From: → None; stale pre-approval dropped"},
	}
	if len(rows) != 3*2*4 {
		t.Fatalf("table has %d rows, want %d", len(rows), 3*2*4)
	}
	seen := map[[3]int]bool{}
	for _, r := range rows {
		k := [3]int{int(r.state), map[bool]int{false: 0, true: 1}[r.pre], int(r.ev)}
		if seen[k] {
			t.Fatalf("duplicate row %v", k)
		}
		seen[k] = true
		name := fmt.Sprintf("%s/pre=%v/%s", r.state, r.pre, r.ev)
		t.Run(name, func(t *testing.T) {
			req := []byte("<status>hi</status>")
			in := core.Subscription{Presentity: "p@x", Watcher: "w@x", State: r.state, PreApproved: r.pre, Request: req}
			got, fx := core.Transition(in, r.ev)
			if got.Presentity != "p@x" || got.Watcher != "w@x" {
				t.Errorf("names changed: %+v", got)
			}
			if got.State != r.next || got.PreApproved != r.nextPre {
				t.Errorf("next = %s/pre=%v, want %s/pre=%v (%s)", got.State, got.PreApproved, r.next, r.nextPre, r.why)
			}
			if kept := got.Request != nil; kept != r.keepReq {
				t.Errorf("Request kept = %v, want %v", kept, r.keepReq)
			}
			if r.keepReq && string(got.Request) != string(req) {
				t.Errorf("Request = %q, want %q", got.Request, req)
			}
			if fx != r.fx {
				t.Errorf("fx = %s, want %s (%s)", fxString(fx), fxString(r.fx), r.why)
			}
			if string(in.Request) != string(req) || in.State != r.state || in.PreApproved != r.pre {
				t.Errorf("input modified: %+v", in)
			}
		})
	}
}

// TestTransitionInvariant walks every state reachable from the zero
// subscription and checks the properties the table above relies on.
func TestTransitionInvariant(t *testing.T) {
	type key struct {
		st  core.SubState
		pre bool
	}
	start := core.Subscription{Presentity: "p@x", Watcher: "w@x"}
	seen := map[key]bool{{start.State, start.PreApproved}: true}
	queue := []core.Subscription{start}
	evs := []core.SubEvent{core.EvSubscribe, core.EvApprove, core.EvDeny, core.EvUnsubscribe}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		for _, ev := range evs {
			n, fx := core.Transition(s, ev)
			if n.PreApproved && n.State != core.SubNone {
				t.Errorf("%s/pre=%v --%s--> %s with a pre-approval", s.State, s.PreApproved, ev, n.State)
			}
			changed := n.State != s.State || n.PreApproved != s.PreApproved
			if fx.Has(core.FxChanged) != changed {
				t.Errorf("%s/pre=%v --%s--> FxChanged=%v, state changed=%v", s.State, s.PreApproved, ev, fx.Has(core.FxChanged), changed)
			}
			if fx.Has(core.FxPresence) && n.State != core.SubActive {
				t.Errorf("%s --%s--> FxPresence without an active subscription", s.State, ev)
			}
			if fx.Has(core.FxUnavailable) && s.State != core.SubActive {
				t.Errorf("%s --%s--> FxUnavailable without a previous subscription", s.State, ev)
			}
			k := key{n.State, n.PreApproved}
			if !seen[k] {
				seen[k] = true
				queue = append(queue, n)
			}
		}
	}
	want := map[key]bool{{core.SubNone, false}: true, {core.SubNone, true}: true, {core.SubPending, false}: true, {core.SubActive, false}: true}
	if len(seen) != len(want) {
		t.Errorf("reachable states %v, want %v", seen, want)
	}
	for k := range want {
		if !seen[k] {
			t.Errorf("state %v not reachable", k)
		}
	}
}

func TestEffectHas(t *testing.T) {
	fx := core.FxApproved | core.FxPresence
	if !fx.Has(core.FxApproved) || !fx.Has(core.FxApproved|core.FxPresence) {
		t.Error("Has misses set bits")
	}
	if fx.Has(core.FxApproved | core.FxDenied) {
		t.Error("Has reports a partly set combination")
	}
	for _, s := range []core.SubState{core.SubNone, core.SubPending, core.SubActive} {
		if s.String() == "" {
			t.Errorf("SubState(%d) has no name", s)
		}
	}
}

// TestApplySubscription covers the transactional wrapper: errors, stored
// requests, watcher information.
func TestApplySubscription(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil)
	e.store.MustCreate("a@x", "b@x")

	if _, err := e.eng.Subscribe(ctx, "a@x", "a@x", nil); !errors.Is(err, core.ErrSelf) {
		t.Errorf("self subscribe: %v, want ErrSelf", err)
	}
	if _, err := e.eng.Subscribe(ctx, "a@x", "nobody@x", nil); !errors.Is(err, core.ErrNoSuchPrincipal) {
		t.Errorf("subscribe to unknown: %v, want ErrNoSuchPrincipal", err)
	}
	if got := e.sub("nobody@x", "a@x"); !got.IsZero() {
		t.Errorf("subscription to unknown stored: %+v", got)
	}

	fx, err := e.eng.Subscribe(ctx, "b@x", "a@x", []byte("first"))
	if err != nil || fx != core.FxRequest|core.FxChanged {
		t.Fatalf("subscribe: %s, %v", fxString(fx), err)
	}
	if s := e.sub("a@x", "b@x"); s.State != core.SubPending || string(s.Request) != "first" {
		t.Fatalf("stored %+v", s)
	}
	subs := e.rec.Subscriptions()
	if len(subs) != 1 || subs[0].Fx != core.FxRequest|core.FxChanged || subs[0].To != "" || string(subs[0].Sub.Request) != "first" {
		t.Fatalf("notified %+v", subs)
	}

	// A second request is not delivered again (RFC 6121 A.3.1), but the
	// stored one is the last (§3.1.3: deliver the first or the last).
	fx, err = e.eng.Subscribe(ctx, "b@x", "a@x", []byte("second"))
	if err != nil || fx != 0 {
		t.Fatalf("re-subscribe: %s, %v", fxString(fx), err)
	}
	if s := e.sub("a@x", "b@x"); string(s.Request) != "second" {
		t.Errorf("stored request %q, want the last one", s.Request)
	}
	if subs := e.rec.Subscriptions(); len(subs) != 0 {
		t.Errorf("re-subscribe notified %+v", subs)
	}

	fx, err = e.eng.Deny(ctx, "a@x", "b@x")
	if err != nil || fx != core.FxDenied|core.FxChanged {
		t.Fatalf("deny: %s, %v", fxString(fx), err)
	}
	if s := e.sub("a@x", "b@x"); !s.IsZero() || s.Request != nil {
		t.Errorf("after deny %+v", s)
	}
	info := e.info("a@x")
	if info["b@x"][core.WatchSubscriber] != 2 || info["b@x"][core.WatchRefused] != 1 {
		t.Errorf("watcher info %v, want 2 subscriber and 1 refused", info)
	}
}

func TestSubscriptionNotifications(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil)
	e.store.MustCreate("a@x", "b@x")
	e.online("a@x/1", 0)
	e.online("b@x/1", 0)
	e.rec.Reset()

	if _, err := e.eng.Subscribe(ctx, "b@x", "a@x", nil); err != nil {
		t.Fatal(err)
	}
	e.expectSubs(t, "subscribe", sev("a@x", "b@x", core.SubPending, core.FxRequest|core.FxChanged, ""))
	e.expectPresence(t, "subscribe")

	if _, err := e.eng.Approve(ctx, "a@x", "b@x"); err != nil {
		t.Fatal(err)
	}
	e.expectSubs(t, "approve", sev("a@x", "b@x", core.SubActive, core.FxApproved|core.FxChanged, ""))
	e.expectPresence(t, "approve", "open a@x/1 -> b@x/1")

	// Already subscribed: auto-reply, nothing else.
	if _, err := e.eng.Subscribe(ctx, "b@x", "a@x", nil); err != nil {
		t.Fatal(err)
	}
	e.expectSubs(t, "re-subscribe", sev("a@x", "b@x", core.SubActive, core.FxApproved, ""))
	e.expectPresence(t, "re-subscribe")

	if _, err := e.eng.Unsubscribe(ctx, "b@x", "a@x"); err != nil {
		t.Fatal(err)
	}
	e.expectSubs(t, "unsubscribe", sev("a@x", "b@x", core.SubNone, core.FxCancelled|core.FxChanged, ""))
	e.expectPresence(t, "unsubscribe", "closed a@x/1 -> b@x/1")

	// Pre-approval: nothing told; the later request is approved at once.
	if _, err := e.eng.Approve(ctx, "a@x", "b@x"); err != nil {
		t.Fatal(err)
	}
	e.expectSubs(t, "pre-approve", coretest.SubscriptionEvent{Sub: core.Subscription{Presentity: "a@x", Watcher: "b@x", PreApproved: true}, Fx: core.FxChanged})
	if _, err := e.eng.Subscribe(ctx, "b@x", "a@x", nil); err != nil {
		t.Fatal(err)
	}
	e.expectSubs(t, "pre-approved subscribe", sev("a@x", "b@x", core.SubActive, core.FxApproved|core.FxChanged, ""))
	e.expectPresence(t, "pre-approved subscribe", "open a@x/1 -> b@x/1")

	if _, err := e.eng.Deny(ctx, "a@x", "b@x"); err != nil {
		t.Fatal(err)
	}
	e.expectSubs(t, "cancel", sev("a@x", "b@x", core.SubNone, core.FxDenied|core.FxChanged, ""))
	e.expectPresence(t, "cancel", "closed a@x/1 -> b@x/1")

	// The presentity is offline: its last presence is sent on approval.
	if err := e.eng.Disconnect(ctx, "a@x/1", &core.Tuple{Status: core.Status{Text: "gone"}}); err != nil {
		t.Fatal(err)
	}
	e.rec.Reset()
	if _, err := e.eng.Subscribe(ctx, "b@x", "a@x", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := e.eng.Approve(ctx, "a@x", "b@x"); err != nil {
		t.Fatal(err)
	}
	e.expectPresence(t, "approve while offline", "closed a@x(gone) -> b@x/1")
}

// An event Transition does not know changes nothing, and names of values
// outside the known sets do not panic (rules are plug-ins and may invent
// reasons).
func TestUnknownValues(t *testing.T) {
	for _, st := range []core.SubState{core.SubNone, core.SubPending, core.SubActive} {
		in := core.Subscription{State: st, Request: []byte("r")}
		got, fx := core.Transition(in, core.SubEvent(9))
		if got.State != st || fx != 0 {
			t.Errorf("unknown event on %s: %s, %s", st, got.State, fxString(fx))
		}
	}
	if s := core.SubEvent(9).String(); s == "" {
		t.Error("unknown event has no name")
	}
	for r, want := range map[core.Reason]string{core.ReasonNone: "none", core.ReasonBlocked: "blocked", core.ReasonContactsOnly: "contacts-only", core.ReasonQuota: "quota", core.ReasonNoSuchPrincipal: "no-such-principal", core.ReasonPolicy: "policy", core.Reason(200): "reason(200)"} {
		if got := r.String(); got != want {
			t.Errorf("Reason(%d) = %q, want %q", r, got, want)
		}
	}
	err := &core.RefusedError{Reason: core.Reason(77)}
	if !errors.Is(err, core.ErrForbidden) || err.Error() != "core: refused: reason(77)" {
		t.Errorf("refusal with a plug-in reason: %v", err)
	}
	for _, k := range []core.WatcherKind{core.WatchSubscriber, core.WatchFetcher, core.WatchPoller, core.WatchRefused, 0} {
		if k.String() == "" {
			t.Errorf("WatcherKind(%d) has no name", k)
		}
	}
	if core.Open.String() != "open" || core.Closed.String() != "closed" {
		t.Error("Basic names")
	}
	if p := core.AgentID("a@x/r/s").Principal(); p != "a@x" {
		t.Errorf("Principal = %q", p)
	}
	if p := core.AgentID("a@x").Principal(); p != "a@x" {
		t.Errorf("Principal of bare = %q", p)
	}
}
