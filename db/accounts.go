package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/imppd/imppd/core"
)

// CreateAccount adds principal a.ID with its credentials; a zero Created
// is recorded as now. An existing principal is core.ErrPrincipalExists.
func (d *DB) CreateAccount(ctx context.Context, a core.Account) error {
	if a.ID == "" {
		return errors.New("db: create account: empty principal id")
	}
	if a.Created.IsZero() {
		a.Created = time.Now()
	}
	return d.update(ctx, func(t *tx) error {
		res, err := t.q.ExecContext(ctx, `INSERT INTO principals (id, created) VALUES (?, ?)
	ON CONFLICT (id) DO NOTHING`, a.ID, putTime(a.Created))
		if err != nil {
			return wrap(err, "create account %s", a.ID)
		}
		if n, err := res.RowsAffected(); err != nil {
			return wrap(err, "create account %s", a.ID)
		} else if n == 0 {
			return fmt.Errorf("db: create account %s: %w", a.ID, core.ErrPrincipalExists)
		}
		return t.putCredentials(ctx, a.ID, a.Credentials)
	})
}

// DeleteAccount removes the principal and everything that belongs to it or
// names it; an unknown principal is core.ErrNoSuchPrincipal. Foreign keys
// cascade to what it owns (credentials, roster and its version, inbox,
// last presence, watcher information about it, blocklist, archive and its
// preferences, PEP nodes and their items, account data); the rows that
// name it in others' state are deleted here. Every roster that loses an
// item gets a new version, so a client holding that roster at the old
// version is not told it is current (RFC 6121 §2.6).
func (d *DB) DeleteAccount(ctx context.Context, id core.PrincipalID) error {
	return d.update(ctx, func(t *tx) error {
		res, err := t.q.ExecContext(ctx, `DELETE FROM principals WHERE id = ?`, id)
		if err != nil {
			return wrap(err, "delete account %s", id)
		}
		if n, err := res.RowsAffected(); err != nil {
			return wrap(err, "delete account %s", id)
		} else if n == 0 {
			return fmt.Errorf("db: delete account %s: %w", id, core.ErrNoSuchPrincipal)
		}
		if _, err := t.q.ExecContext(ctx, `INSERT INTO roster_versions (owner, version)
	SELECT DISTINCT owner, 1 FROM roster_items WHERE contact = ?
	ON CONFLICT (owner) DO UPDATE SET version = version + 1`, id); err != nil {
			return wrap(err, "delete account %s: bump rosters", id)
		}
		for _, q := range []string{
			`DELETE FROM roster_items WHERE contact = ?`,
			`DELETE FROM subscriptions WHERE presentity = ?`,
			`DELETE FROM subscriptions WHERE watcher = ?`,
			`DELETE FROM watcher_info WHERE watcher = ?`,
		} {
			if _, err := t.q.ExecContext(ctx, q, id); err != nil {
				return wrap(err, "delete account %s", id)
			}
		}
		return nil
	})
}

// Account returns the principal and its credentials, ordered by hash.
func (d *DB) Account(ctx context.Context, id core.PrincipalID) (core.Account, error) {
	a := core.Account{ID: id}
	err := d.view(ctx, func(t *tx) error {
		var created sql.NullInt64
		err := t.q.QueryRowContext(ctx, `SELECT created FROM principals WHERE id = ?`, id).Scan(&created)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("db: account %s: %w", id, core.ErrNoSuchPrincipal)
		}
		if err != nil {
			return wrap(err, "account %s", id)
		}
		a.Created = getTime(created)
		rows, err := t.q.QueryContext(ctx, `SELECT hash, salt, iterations, stored_key, server_key
	FROM credentials WHERE principal = ? ORDER BY hash`, id)
		if err != nil {
			return wrap(err, "account %s", id)
		}
		defer rows.Close()
		for rows.Next() {
			var c core.Credentials
			if err := rows.Scan(&c.Hash, &c.Salt, &c.Iterations, &c.StoredKey, &c.ServerKey); err != nil {
				return wrap(err, "account %s", id)
			}
			a.Credentials = append(a.Credentials, c)
		}
		return wrap(rows.Err(), "account %s", id)
	})
	if err != nil {
		return core.Account{}, err
	}
	return a, nil
}

// SetCredentials replaces all of the principal's credentials with c.
func (d *DB) SetCredentials(ctx context.Context, id core.PrincipalID, c []core.Credentials) error {
	return d.update(ctx, func(t *tx) error {
		ok, err := t.AccountExists(ctx, id)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("db: set credentials of %s: %w", id, core.ErrNoSuchPrincipal)
		}
		if _, err := t.q.ExecContext(ctx, `DELETE FROM credentials WHERE principal = ?`, id); err != nil {
			return wrap(err, "set credentials of %s", id)
		}
		return t.putCredentials(ctx, id, c)
	})
}

func (t *tx) putCredentials(ctx context.Context, id core.PrincipalID, cs []core.Credentials) error {
	for _, c := range cs {
		// NOT NULL columns: an absent salt or key is stored empty.
		_, err := t.q.ExecContext(ctx, `INSERT INTO credentials
	(principal, hash, salt, iterations, stored_key, server_key) VALUES (?, ?, ?, ?, ?, ?)`,
			id, c.Hash, orEmpty(c.Salt), c.Iterations, orEmpty(c.StoredKey), orEmpty(c.ServerKey))
		if err != nil {
			return wrap(err, "credentials %s of %s", c.Hash, id)
		}
	}
	return nil
}

func orEmpty(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// ListAccounts returns every principal, in order.
func (d *DB) ListAccounts(ctx context.Context) ([]core.PrincipalID, error) {
	var out []core.PrincipalID
	err := d.view(ctx, func(t *tx) error {
		rows, err := t.q.QueryContext(ctx, `SELECT id FROM principals ORDER BY id`)
		if err != nil {
			return wrap(err, "list accounts")
		}
		defer rows.Close()
		for rows.Next() {
			var id core.PrincipalID
			if err := rows.Scan(&id); err != nil {
				return wrap(err, "list accounts")
			}
			out = append(out, id)
		}
		return wrap(rows.Err(), "list accounts")
	})
	return out, err
}
