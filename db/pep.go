package db

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"

	"github.com/imppd/imppd/core"
)

// Personal eventing (XEP-0163) nodes and items: DB implements
// xmppmap/pep.Store, whose comments are the contract.

// putConfig encodes c for pep_nodes.config. Marshalling the core type
// itself keeps fields added to it later without a change here.
func putConfig(c core.NodeConfig) (string, error) {
	b, err := json.Marshal(c)
	return string(b), err
}

// PubNode returns owner's node name; ok is false when there is none.
func (d *DB) PubNode(ctx context.Context, owner core.PrincipalID, name string) (core.MarkupNode, bool, error) {
	n := core.MarkupNode{Owner: owner, Name: name}
	var found bool
	err := d.view(ctx, func(t *tx) error {
		var cfg string
		err := t.q.QueryRowContext(ctx, `SELECT config FROM pep_nodes WHERE owner = ? AND name = ?`, owner, name).Scan(&cfg)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return wrap(err, "pep node %s of %s", name, owner)
		}
		found = true
		return wrap(json.Unmarshal([]byte(cfg), &n.Config), "pep node %s of %s: config", name, owner)
	})
	if err != nil || !found {
		return core.MarkupNode{}, false, err
	}
	return n, true, nil
}

// PubNodes lists the nodes of the owners, by owner then name.
func (d *DB) PubNodes(ctx context.Context, owners ...core.PrincipalID) ([]core.MarkupNode, error) {
	if len(owners) == 0 {
		return nil, nil
	}
	// One JSON array parameter for any number of owners (as in PubItems).
	list, err := json.Marshal(owners)
	if err != nil {
		return nil, wrap(err, "pep nodes of %v", owners)
	}
	var out []core.MarkupNode
	err = d.view(ctx, func(t *tx) error {
		rows, err := t.q.QueryContext(ctx, `SELECT owner, name, config FROM pep_nodes
			WHERE owner IN (SELECT value FROM json_each(?)) ORDER BY owner, name`, string(list))
		if err != nil {
			return wrap(err, "pep nodes of %v", owners)
		}
		defer rows.Close()
		for rows.Next() {
			var n core.MarkupNode
			var cfg string
			if err := rows.Scan(&n.Owner, &n.Name, &cfg); err != nil {
				return wrap(err, "pep nodes of %v", owners)
			}
			if err := json.Unmarshal([]byte(cfg), &n.Config); err != nil {
				return wrap(err, "pep node %s of %s: config", n.Name, n.Owner)
			}
			out = append(out, n)
		}
		return wrap(rows.Err(), "pep nodes of %v", owners)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// PutPubNode creates n or replaces its configuration; its items stay. An
// unknown owner is core.ErrNoSuchPrincipal.
func (d *DB) PutPubNode(ctx context.Context, n core.MarkupNode) error {
	cfg, err := putConfig(n.Config)
	if err != nil {
		return wrap(err, "put pep node %s of %s", n.Name, n.Owner)
	}
	return d.update(ctx, func(t *tx) error {
		_, err := t.q.ExecContext(ctx, `INSERT INTO pep_nodes (owner, name, config) VALUES (?, ?, ?)
	ON CONFLICT (owner, name) DO UPDATE SET config = excluded.config`, n.Owner, n.Name, cfg)
		return wrap(err, "put pep node %s of %s", n.Name, n.Owner)
	})
}

// DeletePubNode removes the node and, by cascade, its items; false if
// there was none.
func (d *DB) DeletePubNode(ctx context.Context, owner core.PrincipalID, name string) (bool, error) {
	var gone bool
	err := d.update(ctx, func(t *tx) error {
		res, err := t.q.ExecContext(ctx, `DELETE FROM pep_nodes WHERE owner = ? AND name = ?`, owner, name)
		if err != nil {
			return wrap(err, "delete pep node %s of %s", name, owner)
		}
		n, err := res.RowsAffected() // counts the node only, not cascaded items
		gone = n > 0
		return wrap(err, "delete pep node %s of %s", name, owner)
	})
	return gone, err
}

// PublishItem creates the node with cfg if it does not exist (an existing
// node keeps its configuration), stores it as the node's newest item
// (replacing one with the same id), then keeps only the newest keep items
// (keep <= 0: all), in one transaction. An unknown owner is
// core.ErrNoSuchPrincipal.
func (d *DB) PublishItem(ctx context.Context, owner core.PrincipalID, node string, cfg core.NodeConfig, it core.MarkupItem, keep int) error {
	c, err := putConfig(cfg)
	if err != nil {
		return wrap(err, "publish to pep node %s of %s", node, owner)
	}
	return d.update(ctx, func(t *tx) error {
		// The foreign key on owner fails here for an unknown principal.
		if _, err := t.q.ExecContext(ctx, `INSERT INTO pep_nodes (owner, name, config) VALUES (?, ?, ?)
	ON CONFLICT (owner, name) DO NOTHING`, owner, node, c); err != nil {
			return wrap(err, "publish to pep node %s of %s", node, owner)
		}
		// Delete, then insert: the new row takes max(seq) + 1 and so is
		// the newest, which an in-place update would not make it.
		if _, err := t.q.ExecContext(ctx, `DELETE FROM pep_items WHERE owner = ? AND node = ? AND id = ?`,
			owner, node, it.ID); err != nil {
			return wrap(err, "publish %s to pep node %s of %s", it.ID, node, owner)
		}
		if _, err := t.q.ExecContext(ctx, `INSERT INTO pep_items (owner, node, id, publisher, stamp, payload)
	VALUES (?, ?, ?, ?, ?, ?)`, owner, node, it.ID, string(it.Publisher), putTime(it.Stamp), it.Payload); err != nil {
			return wrap(err, "publish %s to pep node %s of %s", it.ID, node, owner)
		}
		if keep <= 0 {
			return nil
		}
		return trimItems(ctx, t, owner, node, keep)
	})
}

// TrimItems keeps only the newest keep items of the node (keep <= 0: none),
// in one transaction.
func (d *DB) TrimItems(ctx context.Context, owner core.PrincipalID, node string, keep int) error {
	return d.update(ctx, func(t *tx) error {
		if keep <= 0 {
			_, err := t.q.ExecContext(ctx, `DELETE FROM pep_items WHERE owner = ? AND node = ?`, owner, node)
			return wrap(err, "purge pep node %s of %s", node, owner)
		}
		return trimItems(ctx, t, owner, node, keep)
	})
}

// trimItems deletes everything at or below the (keep+1)-th newest seq;
// with keep items or fewer the subquery is NULL and nothing matches.
func trimItems(ctx context.Context, t *tx, owner core.PrincipalID, node string, keep int) error {
	_, err := t.q.ExecContext(ctx, `DELETE FROM pep_items WHERE owner = ? AND node = ? AND seq <= (
	SELECT seq FROM pep_items WHERE owner = ? AND node = ? ORDER BY seq DESC LIMIT 1 OFFSET ?)`,
		owner, node, owner, node, keep)
	return wrap(err, "trim pep node %s of %s to %d", node, owner, keep)
}

// RetractItem deletes one item; false if it was not there.
func (d *DB) RetractItem(ctx context.Context, owner core.PrincipalID, node, id string) (bool, error) {
	var gone bool
	err := d.update(ctx, func(t *tx) error {
		res, err := t.q.ExecContext(ctx, `DELETE FROM pep_items WHERE owner = ? AND node = ? AND id = ?`, owner, node, id)
		if err != nil {
			return wrap(err, "retract %s from pep node %s of %s", id, node, owner)
		}
		n, err := res.RowsAffected()
		gone = n > 0
		return wrap(err, "retract %s from pep node %s of %s", id, node, owner)
	})
	return gone, err
}

// PubItems returns the node's items, newest first: those named by ids
// (ids not there are left out) when ids is not empty, else up to max
// (max <= 0: all). A missing node has no items.
func (d *DB) PubItems(ctx context.Context, owner core.PrincipalID, node string, ids []string, max int) ([]core.MarkupItem, error) {
	const cols = `SELECT id, publisher, stamp, payload FROM pep_items WHERE owner = ? AND node = ?`
	query, args := cols+` ORDER BY seq DESC LIMIT ?`, []any{owner, node, max}
	if max <= 0 {
		args[2] = -1 // SQLite: no limit
	}
	if len(ids) > 0 {
		// One JSON array parameter instead of one per id: no bound on how
		// many ids, and one statement text for the statement cache.
		b, err := json.Marshal(ids)
		if err != nil {
			return nil, wrap(err, "pep items of node %s of %s", node, owner)
		}
		query = cols + ` AND id IN (SELECT value FROM json_each(?)) ORDER BY seq DESC`
		args = []any{owner, node, string(b)}
	}
	var out []core.MarkupItem
	err := d.view(ctx, func(t *tx) error {
		rows, err := t.q.QueryContext(ctx, query, args...)
		if err != nil {
			return wrap(err, "pep items of node %s of %s", node, owner)
		}
		defer rows.Close()
		for rows.Next() {
			var it core.MarkupItem
			var pub string
			var stamp sql.NullInt64
			if err := rows.Scan(&it.ID, &pub, &stamp, &it.Payload); err != nil {
				return wrap(err, "pep items of node %s of %s", node, owner)
			}
			it.Publisher, it.Stamp = core.AgentID(pub), getTime(stamp)
			out = append(out, it)
		}
		return wrap(rows.Err(), "pep items of node %s of %s", node, owner)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// AccountData returns owner's value stored under key; nil (and no error)
// when none.
func (d *DB) AccountData(ctx context.Context, owner core.PrincipalID, key string) ([]byte, error) {
	var v []byte
	err := d.view(ctx, func(t *tx) error {
		err := t.q.QueryRowContext(ctx, `SELECT value FROM account_data WHERE owner = ? AND key = ?`, owner, key).Scan(&v)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		return wrap(err, "account data %s of %s", key, owner)
	})
	if err != nil {
		return nil, err
	}
	return v, nil
}

// PutAccountData stores value under key for owner; a nil value deletes it.
// An unknown owner is core.ErrNoSuchPrincipal, for a delete too, so
// callers see one answer whatever the value.
func (d *DB) PutAccountData(ctx context.Context, owner core.PrincipalID, key string, value []byte) error {
	return d.update(ctx, func(t *tx) error {
		if value != nil {
			_, err := t.q.ExecContext(ctx, `INSERT INTO account_data (owner, key, value) VALUES (?, ?, ?)
	ON CONFLICT (owner, key) DO UPDATE SET value = excluded.value`, owner, key, value)
			return wrap(err, "put account data %s of %s", key, owner)
		}
		res, err := t.q.ExecContext(ctx, `DELETE FROM account_data WHERE owner = ? AND key = ?`, owner, key)
		if err != nil {
			return wrap(err, "delete account data %s of %s", key, owner)
		}
		if n, err := res.RowsAffected(); err != nil || n > 0 {
			return wrap(err, "delete account data %s of %s", key, owner)
		}
		// Nothing was there: no foreign key checked the owner.
		ok, err := t.AccountExists(ctx, owner)
		if err != nil {
			return err
		}
		if !ok {
			return wrap(core.ErrNoSuchPrincipal, "delete account data %s of %s", key, owner)
		}
		return nil
	})
}

// PubBytes is the size of the payloads of all owner's items, for quotas.
func (d *DB) PubBytes(ctx context.Context, owner core.PrincipalID) (int64, error) {
	var n int64
	err := d.view(ctx, func(t *tx) error {
		return wrap(t.q.QueryRowContext(ctx, `SELECT COALESCE(SUM(LENGTH(payload)), 0) FROM pep_items WHERE owner = ?`, owner).Scan(&n),
			"pep usage of %s", owner)
	})
	return n, err
}
