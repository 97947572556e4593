package core

import "context"

// AccessRules decide whether a watcher may receive a presentity's presence
// (RFC 2778 §2.1 ACCESS RULES). They are consulted before any notification or
// fetch answer leaves the engine.
type AccessRules interface {
	// MayWatch: may watcher see presentity's presence, given their
	// subscription?
	MayWatch(ctx context.Context, presentity, watcher PrincipalID, sub Subscription) Reason
	// MayAsk: may watcher ask presentity for a subscription at all?
	MayAsk(ctx context.Context, presentity, watcher PrincipalID) Reason
}

// VisibilityRules decide who may read a presentity's watcher information
// (RFC 2778 §2.1 VISIBILITY RULES).
type VisibilityRules interface {
	MaySeeWatchers(ctx context.Context, presentity, reader PrincipalID) bool
}

// DeliveryRules decide whether an instant message may reach an inbox at all
// (RFC 2778 §2.2 DELIVERY RULES); routing among the inbox's agents is the
// Router's part.
type DeliveryRules interface {
	MayDeliver(ctx context.Context, m *Message, to PrincipalID) Reason
}

// DefaultAccess lets active subscribers watch, and the presentity itself.
type DefaultAccess struct{}

func (DefaultAccess) MayWatch(_ context.Context, p, w PrincipalID, s Subscription) Reason {
	if p == w || s.State == SubActive {
		return ReasonNone
	}
	return ReasonPolicy
}

func (DefaultAccess) MayAsk(context.Context, PrincipalID, PrincipalID) Reason { return ReasonNone }

// OwnerVisibility lets only the presentity's own principal read its watcher
// information.
type OwnerVisibility struct{}

func (OwnerVisibility) MaySeeWatchers(_ context.Context, p, r PrincipalID) bool { return p == r }

// OpenDelivery accepts every message; limits come from the engine's quota.
type OpenDelivery struct{}

func (OpenDelivery) MayDeliver(context.Context, *Message, PrincipalID) Reason { return ReasonNone }

// AddRules puts more rules in front of the engine's: a watch, a request or
// a delivery is allowed only if every rule allows it. Extensions (blocking)
// call it while the server is set up, before any traffic.
func (e *Engine) AddRules(a AccessRules, d DeliveryRules) {
	if a != nil {
		e.access = accessChain{a, e.access}
	}
	if d != nil {
		e.delivery = deliveryChain{d, e.delivery}
	}
}

type accessChain [2]AccessRules

func (c accessChain) MayWatch(ctx context.Context, p, w PrincipalID, s Subscription) Reason {
	if r := c[0].MayWatch(ctx, p, w, s); r != ReasonNone {
		return r
	}
	return c[1].MayWatch(ctx, p, w, s)
}

func (c accessChain) MayAsk(ctx context.Context, p, w PrincipalID) Reason {
	if r := c[0].MayAsk(ctx, p, w); r != ReasonNone {
		return r
	}
	return c[1].MayAsk(ctx, p, w)
}

type deliveryChain [2]DeliveryRules

func (c deliveryChain) MayDeliver(ctx context.Context, m *Message, to PrincipalID) Reason {
	if r := c[0].MayDeliver(ctx, m, to); r != ReasonNone {
		return r
	}
	return c[1].MayDeliver(ctx, m, to)
}
