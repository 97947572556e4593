package core

import (
	"context"
	"time"
)

// Store is the persistence the engine needs. Update runs fn in one
// read-write transaction: fn's writes are committed together when it returns
// nil and discarded otherwise, and are durable once Update returns nil.
// Implementations serialise writers.
type Store interface {
	Update(ctx context.Context, fn func(Tx) error) error
	// View runs fn in a read-only transaction; it may run concurrently with
	// other views and with the writer.
	View(ctx context.Context, fn func(Tx) error) error
}

// Tx is one transaction of a Store.
type Tx interface {
	AccountExists(ctx context.Context, id PrincipalID) (bool, error)

	// Subscription returns the stored relation, or a zero one (State
	// SubNone) with the two names filled in.
	Subscription(ctx context.Context, presentity, watcher PrincipalID) (Subscription, error)
	// PutSubscription stores s; a zero subscription (IsZero) is deleted.
	PutSubscription(ctx context.Context, s Subscription) error
	// Watchers lists every stored subscription whose presentity is p.
	Watchers(ctx context.Context, p PrincipalID) ([]Subscription, error)
	// Watching lists every stored subscription whose watcher is w.
	Watching(ctx context.Context, w PrincipalID) ([]Subscription, error)

	// RecordWatcher adds one occurrence of kind by watcher to the
	// presentity's watcher information, at time at, and returns the record
	// as it was before (zero Count when new).
	RecordWatcher(ctx context.Context, presentity, watcher PrincipalID, kind WatcherKind, at time.Time) (WatcherRecord, error)
	// WatcherInfo lists the presentity's watcher information.
	WatcherInfo(ctx context.Context, presentity PrincipalID) ([]WatcherRecord, error)

	LastPresence(ctx context.Context, p PrincipalID) (LastPresence, bool, error)
	PutLastPresence(ctx context.Context, lp LastPresence) error

	// PutOffline appends m to the inbox of principal to and returns its Seq.
	PutOffline(ctx context.Context, to PrincipalID, m Message) (int64, error)
	CountOffline(ctx context.Context, p PrincipalID) (int, error)
	// Offline returns up to limit stored messages of p in Seq order.
	Offline(ctx context.Context, p PrincipalID, limit int) ([]StoredMessage, error)
	// DeleteOffline removes p's stored messages with Seq <= upto.
	DeleteOffline(ctx context.Context, p PrincipalID, upto int64) error
}

// Accounts manages principals and their credentials.
type Accounts interface {
	CreateAccount(ctx context.Context, a Account) error // ErrPrincipalExists
	// DeleteAccount removes the principal and everything it owns or that
	// names it: subscriptions both ways, watcher information, inbox.
	DeleteAccount(ctx context.Context, id PrincipalID) error // ErrNoSuchPrincipal
	Account(ctx context.Context, id PrincipalID) (Account, error)
	SetCredentials(ctx context.Context, id PrincipalID, c []Credentials) error
	ListAccounts(ctx context.Context) ([]PrincipalID, error)
}
