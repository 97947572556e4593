package core

import (
	"errors"
	"strconv"
)

// Typed errors returned by the engine. The protocol layer maps each to one
// wire condition, in one table.
var (
	ErrNoSuchPrincipal = errors.New("core: no such principal")
	ErrPrincipalExists = errors.New("core: principal exists")
	ErrForbidden       = errors.New("core: forbidden by rules")
	ErrTooBig          = errors.New("core: instant message too big")
	ErrQuota           = errors.New("core: inbox quota exceeded")
	ErrNotDelivered    = errors.New("core: no agent accepts the message")
	ErrSelf            = errors.New("core: a principal cannot watch itself")
)

// RefusedError is a refusal by the ACCESS or DELIVERY RULES, with the reason
// the rule gave, so the sender can learn why (RFC 2778 §5.2 SPAM; IMPP
// requirements: the sender learns of delivery failure).
type RefusedError struct {
	Reason Reason
}

func (e *RefusedError) Error() string { return "core: refused: " + e.Reason.String() }

// Unwrap makes errors.Is(err, ErrForbidden) true for every refusal.
func (e *RefusedError) Unwrap() error { return ErrForbidden }

// Reason says why a rule refused.
type Reason uint8

const (
	ReasonNone Reason = iota
	ReasonBlocked
	ReasonContactsOnly
	ReasonQuota
	ReasonNoSuchPrincipal
	ReasonPolicy
	// ReasonBlocking: the sender blocks the recipient (XEP-0191 §3.6).
	ReasonBlocking
)

func (r Reason) String() string {
	names := [...]string{"none", "blocked", "contacts-only", "quota", "no-such-principal", "policy", "blocking"}
	if int(r) < len(names) {
		return names[r]
	}
	// Rules are plug-ins and may use reasons of their own.
	return "reason(" + strconv.Itoa(int(r)) + ")"
}

// ErrNoSuchEntry: a query named an archive entry that does not exist.
var ErrNoSuchEntry = errors.New("core: no such archive entry")
