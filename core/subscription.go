package core

import "strconv"

// SubEvent is something a presentity or a watcher does to the subscription
// between them.
type SubEvent uint8

const (
	// EvSubscribe: the watcher asks to become a subscriber.
	EvSubscribe SubEvent = iota
	// EvApprove: the presentity approves a request, or approves in advance.
	EvApprove
	// EvDeny: the presentity refuses a request, cancels an active
	// subscription, or withdraws a pre-approval.
	EvDeny
	// EvUnsubscribe: the watcher withdraws its request or ends its
	// subscription.
	EvUnsubscribe
)

func (e SubEvent) String() string {
	names := [...]string{"subscribe", "approve", "deny", "unsubscribe"}
	if int(e) < len(names) {
		return names[e]
	}
	return "event(" + strconv.Itoa(int(e)) + ")"
}

// Effect is a set of consequences of a subscription transition that the
// protocol layer must carry out after commit.
type Effect uint16

const (
	// FxRequest: deliver the watcher's request to the presentity's agents.
	FxRequest Effect = 1 << iota
	// FxApproved: tell the watcher its subscription is active.
	FxApproved
	// FxDenied: tell the watcher its request was refused or its
	// subscription cancelled.
	FxDenied
	// FxCancelled: tell the presentity the watcher withdrew.
	FxCancelled
	// FxPresence: send the presentity's current presence to the watcher.
	FxPresence
	// FxUnavailable: tell the watcher that the presentity's agents are no
	// longer visible to it.
	FxUnavailable
	// FxChanged: the stored state changed; both sides' views must be
	// refreshed (roster pushes in XMPP).
	FxChanged
)

// Has reports whether all bits of f are set in e.
func (e Effect) Has(f Effect) bool { return e&f == f }

// Transition is the pure subscription state machine: the next state of s
// after ev, and what must be told to whom. It never fails; an event that
// makes no sense in a state leaves the state alone and has no effect, except
// where RFC 6121 §3 asks for a courtesy answer.
//
// PreApproved only has a meaning while the watcher is not a subscriber: a
// pre-approval approves the watcher's request (RFC 6121 §3.4), so every
// result with State SubActive has PreApproved false, and every EvDeny
// withdraws it.
func Transition(s Subscription, ev SubEvent) (Subscription, Effect) {
	next := s
	if next.State == SubActive {
		// A stale pre-approval on an active subscription approves nothing.
		next.PreApproved = false
	}
	var fx Effect
	switch ev {
	case EvSubscribe:
		switch s.State {
		case SubNone, SubPending:
			if s.PreApproved {
				// RFC 6121 §3.4: a pre-approved request is approved at once.
				next.State, next.PreApproved = SubActive, false
				fx = FxApproved | FxPresence
			} else if s.State == SubNone {
				next.State = SubPending
				fx = FxRequest
			}
			// else RFC 6121 Appendix A.3.1, "None + Pending In": no state
			// change and the request is not delivered again (§3.1.3: the
			// contact gets one request per user; the stored one is re-sent
			// when the contact next becomes available).
		case SubActive:
			// RFC 6121 §3.1.3: the contact's server auto-replies with
			// "subscribed" and does not bother the contact.
			fx = FxApproved
		}
	case EvApprove:
		switch s.State {
		case SubNone:
			// RFC 6121 §3.4: approval before any request is a pre-approval.
			next.PreApproved = true
		case SubPending:
			next.State, next.PreApproved = SubActive, false
			fx = FxApproved | FxPresence
		case SubActive:
			// RFC 6121 §3.1.5: nothing to do for a subscription that exists.
		}
	case EvDeny:
		// RFC 6121 §3.4, Appendix A.2.3: "unsubscribed" cancels a
		// pre-approval in every state.
		next.PreApproved = false
		switch s.State {
		case SubPending:
			next.State = SubNone
			fx = FxDenied
		case SubActive:
			next.State = SubNone
			fx = FxDenied | FxUnavailable
		}
	case EvUnsubscribe:
		switch s.State {
		case SubNone:
		case SubPending:
			next.State = SubNone
			fx = FxCancelled
		case SubActive:
			next.State = SubNone
			fx = FxCancelled | FxUnavailable
		}
	}
	if next.State != SubPending {
		next.Request = nil
	}
	if next.State != s.State || next.PreApproved != s.PreApproved {
		fx |= FxChanged
	}
	return next, fx
}
