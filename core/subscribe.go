package core

import (
	"context"
	"fmt"
)

// ApplySubscription applies ev to the subscription of watcher to
// presentity inside tx, records WATCHER INFORMATION, and queues the
// notifications on q. It returns the new subscription and the transition's
// effects. Callers that change other state in the same transaction (rosters)
// use it inside Engine.Update; others call Subscribe and friends.
//
// For EvSubscribe the presentity must exist (ErrNoSuchPrincipal) and the
// ACCESS RULES must let the watcher ask (*RefusedError, recorded as
// refused).
func (e *Engine) ApplySubscription(ctx context.Context, tx Tx, q *Effects, presentity, watcher PrincipalID, ev SubEvent, request []byte) (Subscription, Effect, error) {
	if presentity == watcher {
		return Subscription{}, 0, ErrSelf
	}
	now := e.now()
	if ev == EvSubscribe {
		ok, err := tx.AccountExists(ctx, presentity)
		if err != nil {
			return Subscription{}, 0, fmt.Errorf("subscribe %s to %s: %w", watcher, presentity, err)
		}
		if !ok {
			return Subscription{}, 0, ErrNoSuchPrincipal
		}
		if r := e.access.MayAsk(ctx, presentity, watcher); r != ReasonNone {
			if _, err := tx.RecordWatcher(ctx, presentity, watcher, WatchRefused, now); err != nil {
				return Subscription{}, 0, err
			}
			// The caller's transaction fails with the refusal and drops
			// the record above; Update records it again after that.
			q.refused = append(q.refused, refusal{presentity: presentity, watcher: watcher, at: now})
			return Subscription{}, 0, &RefusedError{Reason: r}
		}
	}
	cur, err := tx.Subscription(ctx, presentity, watcher)
	if err != nil {
		return Subscription{}, 0, fmt.Errorf("%s %s→%s: %w", ev, watcher, presentity, err)
	}
	cur.Presentity, cur.Watcher = presentity, watcher
	next, fx := Transition(cur, ev)
	if ev == EvSubscribe && next.State == SubPending && request != nil {
		next.Request = request
	}
	if fx.Has(FxChanged) || string(next.Request) != string(cur.Request) {
		if err := tx.PutSubscription(ctx, next); err != nil {
			return Subscription{}, 0, fmt.Errorf("%s %s→%s: %w", ev, watcher, presentity, err)
		}
		// Once committed, the presentity's cached watchers are stale. The
		// generation moves now too, so a read racing this commit is not
		// kept.
		e.forgetWatchers(presentity)
		q.After(func(context.Context) { e.forgetWatchers(presentity) })
	}
	switch {
	case ev == EvSubscribe:
		_, err = tx.RecordWatcher(ctx, presentity, watcher, WatchSubscriber, now)
	case ev == EvDeny && cur.State == SubPending:
		_, err = tx.RecordWatcher(ctx, presentity, watcher, WatchRefused, now)
	}
	if err != nil {
		return Subscription{}, 0, err
	}
	e.queueEffects(q, cur, next, fx)
	return next, fx, nil
}

// queueEffects queues what the transition from prev to s requires. The
// presence it sends goes through the ACCESS RULES like any other
// notification: FxPresence is judged on the new subscription, FxUnavailable
// on the one that ended (a watcher the rules hid the presentity from never
// saw it available).
func (e *Engine) queueEffects(q *Effects, prev, s Subscription, fx Effect) {
	if fx == 0 {
		return
	}
	q.After(func(ctx context.Context) {
		if proto := fx &^ (FxPresence | FxUnavailable); proto != 0 {
			e.notify.Subscription(ctx, s, proto, "")
		}
		if fx.Has(FxPresence) && e.access.MayWatch(ctx, s.Presentity, s.Watcher, s) == ReasonNone {
			if to := e.agents.availableTo(nil, s.Watcher); len(to) > 0 {
				ts := e.agents.tuples(s.Presentity)
				for i := range ts {
					e.notify.Presence(ctx, &ts[i], to)
				}
				if len(ts) == 0 {
					_ = e.sendLast(ctx, []PrincipalID{s.Presentity}, to)
				}
			}
		}
		if fx.Has(FxUnavailable) && e.access.MayWatch(ctx, prev.Presentity, prev.Watcher, prev) == ReasonNone {
			if to := e.agents.availableTo(nil, s.Watcher); len(to) > 0 {
				for _, t := range e.agents.tuples(s.Presentity) {
					closed := Tuple{Status: Status{Basic: Closed}, Contact: t.Contact, Stamp: e.now()}
					e.notify.Presence(ctx, &closed, to)
				}
			}
		}
	})
}

// Subscribe: watcher asks to subscribe to presentity (request is opaque
// markup kept with a pending request).
func (e *Engine) Subscribe(ctx context.Context, watcher, presentity PrincipalID, request []byte) (Effect, error) {
	return e.apply(ctx, presentity, watcher, EvSubscribe, request)
}

// Approve: presentity approves watcher's request, or pre-approves it.
func (e *Engine) Approve(ctx context.Context, presentity, watcher PrincipalID) (Effect, error) {
	return e.apply(ctx, presentity, watcher, EvApprove, nil)
}

// Deny: presentity refuses or cancels watcher's subscription.
func (e *Engine) Deny(ctx context.Context, presentity, watcher PrincipalID) (Effect, error) {
	return e.apply(ctx, presentity, watcher, EvDeny, nil)
}

// Unsubscribe: watcher withdraws its request or subscription.
func (e *Engine) Unsubscribe(ctx context.Context, watcher, presentity PrincipalID) (Effect, error) {
	return e.apply(ctx, presentity, watcher, EvUnsubscribe, nil)
}

func (e *Engine) apply(ctx context.Context, p, w PrincipalID, ev SubEvent, req []byte) (Effect, error) {
	var fx Effect
	err := e.Update(ctx, func(tx Tx, q *Effects) error {
		var err error
		_, fx, err = e.ApplySubscription(ctx, tx, q, p, w, ev, req)
		return err
	})
	return fx, err
}
