package pep

import (
	"context"

	"github.com/imppd/imppd/core"
)

// Store keeps nodes and their items; db.DB implements it.
type Store interface {
	// PubNode returns owner's node name; ok is false when there is none.
	PubNode(ctx context.Context, owner core.PrincipalID, name string) (n core.MarkupNode, ok bool, err error)
	// PubNodes lists the nodes of the owners, by owner then name.
	PubNodes(ctx context.Context, owners ...core.PrincipalID) ([]core.MarkupNode, error)
	// PutPubNode creates n or replaces its configuration.
	PutPubNode(ctx context.Context, n core.MarkupNode) error
	// DeletePubNode removes the node and its items; false if there was none.
	DeletePubNode(ctx context.Context, owner core.PrincipalID, name string) (bool, error)
	// PublishItem creates the node with cfg if it does not exist, stores it
	// as the node's newest item (replacing one with the same id), then
	// keeps only the newest keep items (keep <= 0: all), in one
	// transaction durable on return.
	PublishItem(ctx context.Context, owner core.PrincipalID, node string, cfg core.NodeConfig, it core.MarkupItem, keep int) error
	// TrimItems keeps only the newest keep items (keep <= 0: none), in one
	// transaction.
	TrimItems(ctx context.Context, owner core.PrincipalID, node string, keep int) error
	// RetractItem deletes one item; false if it was not there.
	RetractItem(ctx context.Context, owner core.PrincipalID, node, id string) (bool, error)
	// PubItems returns the node's items, newest first: those named by ids
	// when ids is not empty, else up to max (max <= 0: all).
	PubItems(ctx context.Context, owner core.PrincipalID, node string, ids []string, max int) ([]core.MarkupItem, error)
	// PubBytes is the total size of owner's item payloads.
	PubBytes(ctx context.Context, owner core.PrincipalID) (int64, error)
}
