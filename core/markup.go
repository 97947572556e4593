package core

import (
	"context"
	"time"
)

// Published markup is OTHER PRESENCE MARKUP (RFC 2778 §2.2) that outlives
// any one agent: a presentity publishes items into named collections
// (XMPP's personal eventing nodes: avatars, device lists, bookmarks) and
// the NOTIFICATIONS of a change go to the same audience as its presence,
// under the same ACCESS RULES. The engine defines the types and the
// audience; the protocol layer keeps the collections.

// Access models of a markup node: who may read and be notified of it.
const (
	AccessPresence  = "presence"  // those the ACCESS RULES let watch the presentity
	AccessOpen      = "open"      // anyone not refused by the ACCESS RULES
	AccessRoster    = "roster"    // watchers in some of the node's groups
	AccessWhitelist = "whitelist" // the owner only
)

// NodeConfig is how a markup node behaves.
type NodeConfig struct {
	Access        string   // one of the Access* values
	Groups        []string // for AccessRoster: the roster groups allowed
	Persist       bool     // items are kept (not only the last one)
	MaxItems      int      // items kept; MaxItemsUnbounded: the server's limit
	SendLast      string   // "never", "on_sub", "on_sub_and_presence"
	NotifyRetract bool     // watchers are told of retractions
	Title         string
}

// MaxItemsUnbounded asks for as many items as the server keeps.
const MaxItemsUnbounded = -1

// MarkupNode is one named collection of a presentity's published markup.
type MarkupNode struct {
	Owner  PrincipalID
	Name   string
	Config NodeConfig
}

// MarkupItem is one published item of a node.
type MarkupItem struct {
	ID        string
	Publisher AgentID
	Stamp     time.Time
	Payload   []byte
}

// MarkupAudience lists the available agents that see p's presence now, and
// so are told about p's published markup: p's own available agents and
// those of every subscriber the ACCESS RULES allow.
func (e *Engine) MarkupAudience(ctx context.Context, p PrincipalID) ([]AgentID, error) {
	ws, err := e.watchers(ctx, p)
	if err != nil {
		return nil, err
	}
	return e.audience(ctx, p, ws), nil
}

// Watched lists the presentities w actively watches that the ACCESS RULES
// let it see now (w itself not included).
func (e *Engine) Watched(ctx context.Context, w PrincipalID) ([]PrincipalID, error) {
	var subs []Subscription
	err := e.store.View(ctx, func(tx Tx) error {
		var err error
		subs, err = tx.Watching(ctx, w)
		return err
	})
	if err != nil {
		return nil, err
	}
	var out []PrincipalID
	for _, s := range subs {
		if s.State == SubActive && s.Presentity != w && e.access.MayWatch(ctx, s.Presentity, w, s) == ReasonNone {
			out = append(out, s.Presentity)
		}
	}
	return out, nil
}

// Refuses reports whether the ACCESS RULES refuse w anything of p even
// without a subscription (a block), for markup open to anyone.
func (e *Engine) Refuses(ctx context.Context, p, w PrincipalID) bool {
	if p == w {
		return false
	}
	r := e.access.MayWatch(ctx, p, w, Subscription{Presentity: p, Watcher: w, State: SubActive})
	return r != ReasonNone
}
