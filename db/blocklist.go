package db

import (
	"context"

	"github.com/imppd/imppd/core"
)

// Blocklist returns the addresses owner blocks, sorted.
func (d *DB) Blocklist(ctx context.Context, owner core.PrincipalID) ([]string, error) {
	var out []string
	err := d.view(ctx, func(t *tx) error {
		rows, err := t.q.QueryContext(ctx, `SELECT jid FROM blocklist WHERE owner = ? ORDER BY jid`, owner)
		if err != nil {
			return wrap(err, "blocklist of %s", owner)
		}
		defer rows.Close()
		for rows.Next() {
			var j string
			if err := rows.Scan(&j); err != nil {
				return wrap(err, "blocklist of %s", owner)
			}
			out = append(out, j)
		}
		return wrap(rows.Err(), "blocklist of %s", owner)
	})
	return out, err
}

// Block adds addresses to owner's blocklist; adding one twice is no error.
// An unknown owner is core.ErrNoSuchPrincipal.
func (d *DB) Block(ctx context.Context, owner core.PrincipalID, jids []string) error {
	return d.update(ctx, func(t *tx) error {
		for _, j := range jids {
			if _, err := t.q.ExecContext(ctx, `INSERT INTO blocklist (owner, jid) VALUES (?, ?) ON CONFLICT DO NOTHING`, owner, j); err != nil {
				return wrap(err, "block %s for %s", j, owner)
			}
		}
		return nil
	})
}

// Unblock removes addresses from owner's blocklist; no addresses removes
// them all.
func (d *DB) Unblock(ctx context.Context, owner core.PrincipalID, jids []string) error {
	return d.update(ctx, func(t *tx) error {
		if len(jids) == 0 {
			_, err := t.q.ExecContext(ctx, `DELETE FROM blocklist WHERE owner = ?`, owner)
			return wrap(err, "unblock all for %s", owner)
		}
		for _, j := range jids {
			if _, err := t.q.ExecContext(ctx, `DELETE FROM blocklist WHERE owner = ? AND jid = ?`, owner, j); err != nil {
				return wrap(err, "unblock %s for %s", j, owner)
			}
		}
		return nil
	})
}
