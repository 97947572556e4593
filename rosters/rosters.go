// Package rosters is the RFC 6121 roster view over core subscriptions.
//
// A roster item (name, groups) is the user's own bookkeeping; its
// subscription, ask and approved attributes are not stored with it but
// composed from the two directional core subscriptions between the user
// and the contact (Compose). Operations that change both run in one core
// transaction and push the new entries to both parties after commit.
package rosters

import (
	"context"
	"errors"
	"fmt"

	"github.com/imppd/imppd/core"
)

// Item is what the user stores about a contact.
type Item struct {
	Contact core.PrincipalID
	Name    string
	Groups  []string
}

// Entry is an item as the roster shows it (RFC 6121 §2.1.2).
type Entry struct {
	Item
	Subscription Sub
	Ask          bool // outbound request pending: ask='subscribe'
	Approved     bool // the user pre-approved the contact: approved='true'
	PendingIn    bool // the contact's request waits for the user
}

// Sub is the roster 'subscription' attribute.
type Sub uint8

const (
	None Sub = iota
	To
	From
	Both
	Remove // only in pushes of a removed item
)

func (s Sub) String() string { return [...]string{"none", "to", "from", "both", "remove"}[s] }

// Compose derives the roster entry of owner's item from the two
// directional subscriptions: out (owner watches contact) and in (contact
// watches owner). RFC 6121 Appendix A's states are exactly these
// combinations.
func Compose(it Item, out, in core.Subscription) Entry {
	e := Entry{Item: it, Ask: out.State == core.SubPending, Approved: in.PreApproved, PendingIn: in.State == core.SubPending}
	to, from := out.State == core.SubActive, in.State == core.SubActive
	switch {
	case to && from:
		e.Subscription = Both
	case to:
		e.Subscription = To
	case from:
		e.Subscription = From
	}
	return e
}

// Tx is a store transaction that holds rosters as well as core's state.
type Tx interface {
	core.Tx
	RosterItems(ctx context.Context, owner core.PrincipalID) ([]Item, error)
	RosterItem(ctx context.Context, owner, contact core.PrincipalID) (Item, bool, error)
	PutRosterItem(ctx context.Context, owner core.PrincipalID, it Item) error
	DeleteRosterItem(ctx context.Context, owner, contact core.PrincipalID) error
	// RosterVersion is owner's current version; BumpRosterVersion makes and
	// returns a new, greater one.
	RosterVersion(ctx context.Context, owner core.PrincipalID) (int64, error)
	BumpRosterVersion(ctx context.Context, owner core.PrincipalID) (int64, error)
}

// Pusher tells a principal's interested agents that an entry changed
// (RFC 6121 §2.1.6 roster push). removed marks a deleted item.
type Pusher interface {
	RosterPush(ctx context.Context, owner core.PrincipalID, e Entry, ver int64)
}

// ErrNoTx means the store's transactions do not hold rosters.
var ErrNoTx = errors.New("rosters: store transaction does not implement rosters.Tx")

// Service changes rosters and subscriptions together.
type Service struct {
	engine *core.Engine
	push   Pusher
}

// New returns a roster service over engine, pushing changes through push.
func New(engine *core.Engine, push Pusher) *Service { return &Service{engine: engine, push: push} }

// SetPusher sets the pusher once the protocol layer exists.
func (s *Service) SetPusher(p Pusher) { s.push = p }

func (s *Service) update(ctx context.Context, fn func(Tx, *core.Effects) error) error {
	return s.engine.Update(ctx, func(tx core.Tx, q *core.Effects) error {
		rtx, ok := tx.(Tx)
		if !ok {
			return ErrNoTx
		}
		return fn(rtx, q)
	})
}

func (s *Service) view(ctx context.Context, fn func(Tx) error) error {
	return s.engine.View(ctx, func(tx core.Tx) error {
		rtx, ok := tx.(Tx)
		if !ok {
			return ErrNoTx
		}
		return fn(rtx)
	})
}

// entry composes owner's current entry for contact.
func entry(ctx context.Context, tx Tx, owner, contact core.PrincipalID) (Entry, bool, error) {
	it, ok, err := tx.RosterItem(ctx, owner, contact)
	if err != nil || !ok {
		return Entry{}, ok, err
	}
	out, err := tx.Subscription(ctx, contact, owner)
	if err != nil {
		return Entry{}, false, err
	}
	in, err := tx.Subscription(ctx, owner, contact)
	if err != nil {
		return Entry{}, false, err
	}
	return Compose(it, out, in), true, nil
}

// refresh bumps owner's version and queues a push of its entry for
// contact, if owner has one (or rm, the removal, when given).
func (s *Service) refresh(ctx context.Context, tx Tx, q *core.Effects, owner, contact core.PrincipalID, rm *Entry) error {
	e := Entry{}
	if rm != nil {
		e = *rm
	} else {
		var ok bool
		var err error
		if e, ok, err = entry(ctx, tx, owner, contact); err != nil || !ok {
			return err
		}
	}
	ver, err := tx.BumpRosterVersion(ctx, owner)
	if err != nil {
		return err
	}
	if s.push != nil {
		q.After(func(ctx context.Context) { s.push.RosterPush(ctx, owner, e, ver) })
	}
	return nil
}

// Get returns owner's roster and its version.
func (s *Service) Get(ctx context.Context, owner core.PrincipalID) ([]Entry, int64, error) {
	var out []Entry
	var ver int64
	err := s.view(ctx, func(tx Tx) error {
		items, err := tx.RosterItems(ctx, owner)
		if err != nil {
			return err
		}
		outs, err := tx.Watching(ctx, owner)
		if err != nil {
			return err
		}
		ins, err := tx.Watchers(ctx, owner)
		if err != nil {
			return err
		}
		byOut := make(map[core.PrincipalID]core.Subscription, len(outs))
		for _, o := range outs {
			byOut[o.Presentity] = o
		}
		byIn := make(map[core.PrincipalID]core.Subscription, len(ins))
		for _, i := range ins {
			byIn[i.Watcher] = i
		}
		out = make([]Entry, 0, len(items))
		for _, it := range items {
			out = append(out, Compose(it, byOut[it.Contact], byIn[it.Contact]))
		}
		ver, err = tx.RosterVersion(ctx, owner)
		return err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("roster of %s: %w", owner, err)
	}
	return out, ver, nil
}

// Version returns owner's roster version.
func (s *Service) Version(ctx context.Context, owner core.PrincipalID) (int64, error) {
	var ver int64
	err := s.view(ctx, func(tx Tx) error {
		var err error
		ver, err = tx.RosterVersion(ctx, owner)
		return err
	})
	return ver, err
}

// Set adds or updates owner's item (RFC 6121 §2.3); the subscription
// state is untouched.
func (s *Service) Set(ctx context.Context, owner core.PrincipalID, it Item) error {
	if it.Contact == owner {
		return core.ErrSelf
	}
	return s.update(ctx, func(tx Tx, q *core.Effects) error {
		if err := tx.PutRosterItem(ctx, owner, it); err != nil {
			return err
		}
		return s.refresh(ctx, tx, q, owner, it.Contact, nil)
	})
}

// Remove deletes owner's item and cancels the subscriptions both ways
// (RFC 6121 §2.5.2). Removing an absent item is core.ErrNoSuchPrincipal.
func (s *Service) Remove(ctx context.Context, owner, contact core.PrincipalID) error {
	return s.update(ctx, func(tx Tx, q *core.Effects) error {
		e, ok, err := entry(ctx, tx, owner, contact)
		if err != nil {
			return err
		}
		if !ok {
			return core.ErrNoSuchPrincipal
		}
		// The contact's entry composes the state of both directions and
		// its own pre-approval; the owner's pre-approval is not part of it.
		contactChanged := false
		if e.Subscription == To || e.Subscription == Both || e.Ask {
			_, fx, err := s.engine.ApplySubscription(ctx, tx, q, contact, owner, core.EvUnsubscribe, nil)
			if err != nil {
				return err
			}
			contactChanged = contactChanged || fx.Has(core.FxChanged)
		}
		if e.Subscription == From || e.Subscription == Both || e.PendingIn || e.Approved {
			prev, err := tx.Subscription(ctx, owner, contact)
			if err != nil {
				return err
			}
			next, _, err := s.engine.ApplySubscription(ctx, tx, q, owner, contact, core.EvDeny, nil)
			if err != nil {
				return err
			}
			contactChanged = contactChanged || next.State != prev.State
		}
		if err := tx.DeleteRosterItem(ctx, owner, contact); err != nil {
			return err
		}
		rm := Entry{Item: Item{Contact: contact}, Subscription: Remove}
		if err := s.refresh(ctx, tx, q, owner, contact, &rm); err != nil {
			return err
		}
		if !contactChanged {
			// No new version, no push for an entry that did not change.
			return nil
		}
		return s.refresh(ctx, tx, q, contact, owner, nil)
	})
}

// Subscribe: user asks to watch contact (RFC 6121 §3.1.2). The contact
// enters user's roster if absent.
func (s *Service) Subscribe(ctx context.Context, user, contact core.PrincipalID, request []byte) (core.Effect, error) {
	return s.change(ctx, contact, user, core.EvSubscribe, request, user, contact)
}

// Approve: user approves contact's request, or pre-approves it
// (RFC 6121 §3.1.5, §3.4). The contact enters user's roster if absent.
func (s *Service) Approve(ctx context.Context, user, contact core.PrincipalID) (core.Effect, error) {
	return s.change(ctx, user, contact, core.EvApprove, nil, user, contact)
}

// Deny: user refuses or cancels contact's subscription (RFC 6121 §3.2).
func (s *Service) Deny(ctx context.Context, user, contact core.PrincipalID) (core.Effect, error) {
	return s.change(ctx, user, contact, core.EvDeny, nil, "", "")
}

// Unsubscribe: user stops watching contact (RFC 6121 §3.3).
func (s *Service) Unsubscribe(ctx context.Context, user, contact core.PrincipalID) (core.Effect, error) {
	return s.change(ctx, contact, user, core.EvUnsubscribe, nil, "", "")
}

// change applies ev to (presentity, watcher); when owner is set, owner's
// roster gains an item for contact first if it has none.
func (s *Service) change(ctx context.Context, presentity, watcher core.PrincipalID, ev core.SubEvent, req []byte, owner, contact core.PrincipalID) (core.Effect, error) {
	var fx core.Effect
	err := s.update(ctx, func(tx Tx, q *core.Effects) error {
		prev, err := tx.Subscription(ctx, presentity, watcher)
		if err != nil {
			return err
		}
		var next core.Subscription
		if next, fx, err = s.engine.ApplySubscription(ctx, tx, q, presentity, watcher, ev, req); err != nil {
			return err
		}
		added := false
		if owner != "" {
			if _, ok, err := tx.RosterItem(ctx, owner, contact); err != nil {
				return err
			} else if !ok && (fx.Has(core.FxChanged) || ev == core.EvSubscribe) {
				if err := tx.PutRosterItem(ctx, owner, Item{Contact: contact}); err != nil {
					return err
				}
				added = true
			}
		}
		// Push only the entries that changed: the presentity's composes
		// this subscription's state and pre-approval, the watcher's only
		// its state (Compose).
		if fx.Has(core.FxChanged) || (added && owner == presentity) {
			if err := s.refresh(ctx, tx, q, presentity, watcher, nil); err != nil {
				return err
			}
		}
		if next.State != prev.State || (added && owner == watcher) {
			return s.refresh(ctx, tx, q, watcher, presentity, nil)
		}
		return nil
	})
	return fx, err
}

// Ensure adds contact to owner's roster with no subscription if it is not
// there yet, pushing the new item.
func (s *Service) Ensure(ctx context.Context, owner, contact core.PrincipalID) error {
	if contact == owner {
		return core.ErrSelf
	}
	return s.update(ctx, func(tx Tx, q *core.Effects) error {
		if _, ok, err := tx.RosterItem(ctx, owner, contact); err != nil || ok {
			return err
		}
		if err := tx.PutRosterItem(ctx, owner, Item{Contact: contact}); err != nil {
			return err
		}
		return s.refresh(ctx, tx, q, owner, contact, nil)
	})
}

// Has reports whether owner's roster holds contact.
func (s *Service) Has(ctx context.Context, owner, contact core.PrincipalID) (bool, error) {
	ok := false
	err := s.view(ctx, func(tx Tx) error {
		var err error
		_, ok, err = tx.RosterItem(ctx, owner, contact)
		return err
	})
	return ok, err
}
