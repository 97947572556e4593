package core

import (
	"strings"
	"time"
)

// PrincipalID names a PRINCIPAL and its PRESENTITY and INSTANT INBOX
// (RFC 2778 §2.6): in XMPP, a bare JID "local@domain" in canonical form.
type PrincipalID string

// AgentID is the CONTACT ADDRESS of one user agent of a principal
// (RFC 2778 §2.6): in XMPP, a full JID "local@domain/resource".
type AgentID string

// Principal returns the principal an agent acts for: the address up to the
// first '/'.
func (a AgentID) Principal() PrincipalID {
	if i := strings.IndexByte(string(a), '/'); i >= 0 {
		return PrincipalID(a[:i])
	}
	return PrincipalID(a)
}

// Basic is the required STATUS value of RFC 2778 §2.4: OPEN or CLOSED.
type Basic uint8

const (
	// Closed means the contact address does not accept instant messages
	// (RFC 2778 §2.4). The zero value, so an unset status is closed.
	Closed Basic = iota
	// Open means the contact address accepts instant messages.
	Open
)

func (b Basic) String() string {
	if b == Open {
		return "open"
	}
	return "closed"
}

// Status is a STATUS marker (RFC 2778 §2.4): the basic OPEN/CLOSED value plus
// the "other values" the RFC allows, here a short availability word (Show)
// and free text.
type Status struct {
	Basic Basic
	Show  string // e.g. "away", "chat", "dnd", "xa"; empty for plain available
	Text  string
}

// Contact is a COMMUNICATION ADDRESS: a means and a contact address
// (RFC 2778 §2.4).
type Contact struct {
	Means   string // "im" for instant messaging
	Address AgentID
}

// Tuple is one PRESENCE TUPLE (RFC 2778 §2.4): a status, a communication
// address and OTHER PRESENCE MARKUP, which core keeps opaque.
type Tuple struct {
	Status   Status
	Contact  Contact
	Priority int
	// Markup is OTHER PRESENCE MARKUP as the protocol layer encoded it. The
	// engine never reads it; it travels to watchers unchanged.
	Markup []byte
	Stamp  time.Time
}

// Presence is PRESENCE INFORMATION: the presentity's set of tuples.
type Presence struct {
	Presentity PrincipalID
	Tuples     []Tuple
}

// SubState is the state of one directional subscription of a WATCHER to a
// PRESENTITY.
type SubState uint8

const (
	// SubNone: the watcher is not a subscriber.
	SubNone SubState = iota
	// SubPending: the watcher asked and the presentity has not decided.
	SubPending
	// SubActive: the watcher is a SUBSCRIBER and receives NOTIFICATIONS.
	SubActive
)

func (s SubState) String() string {
	switch s {
	case SubPending:
		return "pending"
	case SubActive:
		return "active"
	}
	return "none"
}

// Subscription is the directional relation between a presentity and one
// watcher. PreApproved records that the presentity approved in advance, so a
// later request becomes active at once.
type Subscription struct {
	Presentity  PrincipalID
	Watcher     PrincipalID
	State       SubState
	PreApproved bool
	// Request is opaque markup that came with a pending request (e.g. a
	// status text), kept to re-deliver it when the presentity next connects.
	Request []byte
}

// IsZero reports whether the subscription carries no state and need not be
// stored.
func (s Subscription) IsZero() bool {
	return s.State == SubNone && !s.PreApproved
}

// WatcherKind classifies an entry of WATCHER INFORMATION (RFC 2778 §3).
type WatcherKind uint8

const (
	// WatchSubscriber: the watcher asked to subscribe or holds a subscription.
	WatchSubscriber WatcherKind = iota + 1
	// WatchFetcher: the watcher fetched the presence once.
	WatchFetcher
	// WatchPoller: the watcher fetched repeatedly (RFC 2778 §2.1: a POLLER).
	WatchPoller
	// WatchRefused: the watcher's subscription or fetch was refused by the
	// ACCESS RULES.
	WatchRefused
)

func (k WatcherKind) String() string {
	switch k {
	case WatchSubscriber:
		return "subscriber"
	case WatchFetcher:
		return "fetcher"
	case WatchPoller:
		return "poller"
	case WatchRefused:
		return "refused"
	}
	return "unknown"
}

// WatcherRecord is one line of a presentity's WATCHER INFORMATION: which
// watcher did what, how often, and when it last did.
type WatcherRecord struct {
	Presentity PrincipalID
	Watcher    PrincipalID
	Kind       WatcherKind
	Count      int64
	First      time.Time
	Last       time.Time
}

// MessageKind is the protocol's classification of an instant message, which
// the DELIVERY RULES consult.
type MessageKind uint8

const (
	MsgNormal MessageKind = iota
	MsgChat
	MsgHeadline
	MsgGroupchat
	MsgError
)

// Message is an INSTANT MESSAGE (RFC 2778 §2.2). Payload is the protocol
// encoding with the sender stamped; the engine bounds its size and never
// parses it.
type Message struct {
	// ID is unique across the server; it names the message in logs, in the
	// offline store and in the archive.
	ID   string
	From AgentID
	// To is either a principal (bare) or one of its agents (full).
	To      AgentID
	Kind    MessageKind
	Payload []byte
	// Storable says the protocol layer deems the message worth keeping when
	// no agent takes it (it has content, not only a notification).
	Storable bool
	Stamp    time.Time
	// Delayed marks a message delivered from the offline store, so the
	// protocol can say when it was sent.
	Delayed bool
}

// StoredMessage is a message waiting in an INSTANT INBOX while no agent is
// there to take it.
type StoredMessage struct {
	Seq int64 // increasing per inbox; delivery follows it
	Message
}

// LastPresence is what a presentity published when its last agent closed,
// kept so that a later fetch still answers with a status and a time.
type LastPresence struct {
	Presentity PrincipalID
	Status     Status
	Markup     []byte
	Stamp      time.Time
}

// Credentials hold what a server needs to verify a SCRAM (RFC 5802) proof
// for one hash function, and nothing from which the password or a password
// equivalent (SaltedPassword) can be computed.
type Credentials struct {
	Hash       string // "SHA-1", "SHA-256", "SHA-512"
	Salt       []byte
	Iterations int
	StoredKey  []byte
	ServerKey  []byte
}

// Account is a PRINCIPAL known to the server, with its credentials.
type Account struct {
	ID          PrincipalID
	Credentials []Credentials
	Created     time.Time
}
