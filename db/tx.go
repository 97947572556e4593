package db

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/imppd/imppd/core"
	"github.com/imppd/imppd/rosters"
)

// tx is one transaction of a DB: core.Tx and rosters.Tx. In a view its
// connection is query_only, so a write fails instead of slipping through.
type tx struct {
	q *sql.Tx
}

// Times are stored as unix nanoseconds UTC; NULL stands for the zero
// time, which has no unix nanosecond value.
func putTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixNano()
}

func getTime(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.Unix(0, n.Int64).UTC()
}

func (t *tx) AccountExists(ctx context.Context, id core.PrincipalID) (bool, error) {
	var one int
	err := t.q.QueryRowContext(ctx, `SELECT 1 FROM principals WHERE id = ?`, id).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, wrap(err, "account %s exists", id)
	}
	return true, nil
}

// Subscriptions.

const subCols = `presentity, watcher, state, pre_approved, request`

func scanSub(sc interface{ Scan(...any) error }) (core.Subscription, error) {
	var s core.Subscription
	err := sc.Scan(&s.Presentity, &s.Watcher, &s.State, &s.PreApproved, &s.Request)
	return s, err
}

func (t *tx) Subscription(ctx context.Context, presentity, watcher core.PrincipalID) (core.Subscription, error) {
	s, err := scanSub(t.q.QueryRowContext(ctx,
		`SELECT `+subCols+` FROM subscriptions WHERE presentity = ? AND watcher = ?`, presentity, watcher))
	if errors.Is(err, sql.ErrNoRows) {
		return core.Subscription{Presentity: presentity, Watcher: watcher}, nil
	}
	if err != nil {
		return core.Subscription{}, wrap(err, "subscription %s→%s", watcher, presentity)
	}
	return s, nil
}

func (t *tx) PutSubscription(ctx context.Context, s core.Subscription) error {
	if s.IsZero() {
		_, err := t.q.ExecContext(ctx,
			`DELETE FROM subscriptions WHERE presentity = ? AND watcher = ?`, s.Presentity, s.Watcher)
		return wrap(err, "delete subscription %s→%s", s.Watcher, s.Presentity)
	}
	_, err := t.q.ExecContext(ctx, `INSERT INTO subscriptions (`+subCols+`) VALUES (?, ?, ?, ?, ?)
	ON CONFLICT (presentity, watcher) DO UPDATE SET
		state = excluded.state, pre_approved = excluded.pre_approved, request = excluded.request`,
		s.Presentity, s.Watcher, s.State, s.PreApproved, s.Request)
	return wrap(err, "put subscription %s→%s", s.Watcher, s.Presentity)
}

func (t *tx) Watchers(ctx context.Context, p core.PrincipalID) ([]core.Subscription, error) {
	out, err := t.subs(ctx, `SELECT `+subCols+` FROM subscriptions WHERE presentity = ? ORDER BY watcher`, p)
	return out, wrap(err, "watchers of %s", p)
}

func (t *tx) Watching(ctx context.Context, w core.PrincipalID) ([]core.Subscription, error) {
	out, err := t.subs(ctx, `SELECT `+subCols+` FROM subscriptions WHERE watcher = ? ORDER BY presentity`, w)
	return out, wrap(err, "watched by %s", w)
}

func (t *tx) subs(ctx context.Context, query string, arg any) ([]core.Subscription, error) {
	rows, err := t.q.QueryContext(ctx, query, arg)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []core.Subscription
	for rows.Next() {
		s, err := scanSub(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// Watcher information.

func (t *tx) RecordWatcher(ctx context.Context, presentity, watcher core.PrincipalID, kind core.WatcherKind, at time.Time) (core.WatcherRecord, error) {
	prev := core.WatcherRecord{Presentity: presentity, Watcher: watcher, Kind: kind}
	var first, last sql.NullInt64
	err := t.q.QueryRowContext(ctx, `SELECT count, first, last FROM watcher_info
	WHERE presentity = ? AND watcher = ? AND kind = ?`, presentity, watcher, kind).Scan(&prev.Count, &first, &last)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return core.WatcherRecord{}, wrap(err, "record watcher %s of %s", watcher, presentity)
	}
	prev.First, prev.Last = getTime(first), getTime(last)
	_, err = t.q.ExecContext(ctx, `INSERT INTO watcher_info (presentity, watcher, kind, count, first, last)
	VALUES (?, ?, ?, 1, ?, ?)
	ON CONFLICT (presentity, watcher, kind) DO UPDATE SET count = count + 1, last = excluded.last`,
		presentity, watcher, kind, putTime(at), putTime(at))
	if err != nil {
		return core.WatcherRecord{}, wrap(err, "record watcher %s of %s", watcher, presentity)
	}
	return prev, nil
}

func (t *tx) WatcherInfo(ctx context.Context, presentity core.PrincipalID) ([]core.WatcherRecord, error) {
	rows, err := t.q.QueryContext(ctx, `SELECT watcher, kind, count, first, last FROM watcher_info
	WHERE presentity = ? ORDER BY watcher, kind`, presentity)
	if err != nil {
		return nil, wrap(err, "watcher info of %s", presentity)
	}
	defer rows.Close()
	var out []core.WatcherRecord
	for rows.Next() {
		r := core.WatcherRecord{Presentity: presentity}
		var first, last sql.NullInt64
		if err := rows.Scan(&r.Watcher, &r.Kind, &r.Count, &first, &last); err != nil {
			return nil, wrap(err, "watcher info of %s", presentity)
		}
		r.First, r.Last = getTime(first), getTime(last)
		out = append(out, r)
	}
	return out, wrap(rows.Err(), "watcher info of %s", presentity)
}

// Last presence.

func (t *tx) LastPresence(ctx context.Context, p core.PrincipalID) (core.LastPresence, bool, error) {
	lp := core.LastPresence{Presentity: p}
	var stamp sql.NullInt64
	err := t.q.QueryRowContext(ctx, `SELECT basic, show, text, markup, stamp FROM last_presence
	WHERE presentity = ?`, p).Scan(&lp.Status.Basic, &lp.Status.Show, &lp.Status.Text, &lp.Markup, &stamp)
	if errors.Is(err, sql.ErrNoRows) {
		return core.LastPresence{}, false, nil
	}
	if err != nil {
		return core.LastPresence{}, false, wrap(err, "last presence of %s", p)
	}
	lp.Stamp = getTime(stamp)
	return lp, true, nil
}

func (t *tx) PutLastPresence(ctx context.Context, lp core.LastPresence) error {
	_, err := t.q.ExecContext(ctx, `INSERT INTO last_presence (presentity, basic, show, text, markup, stamp)
	VALUES (?, ?, ?, ?, ?, ?)
	ON CONFLICT (presentity) DO UPDATE SET basic = excluded.basic, show = excluded.show,
		text = excluded.text, markup = excluded.markup, stamp = excluded.stamp`,
		lp.Presentity, lp.Status.Basic, lp.Status.Show, lp.Status.Text, lp.Markup, putTime(lp.Stamp))
	return wrap(err, "put last presence of %s", lp.Presentity)
}

// Offline messages.

func (t *tx) PutOffline(ctx context.Context, to core.PrincipalID, m core.Message) (int64, error) {
	var seq int64
	err := t.q.QueryRowContext(ctx, `INSERT INTO offline
	(principal, id, sender, recipient, kind, payload, storable, delayed, stamp)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq`,
		to, m.ID, m.From, m.To, m.Kind, m.Payload, m.Storable, m.Delayed, putTime(m.Stamp)).Scan(&seq)
	if err != nil {
		return 0, wrap(err, "store message %s for %s", m.ID, to)
	}
	return seq, nil
}

func (t *tx) CountOffline(ctx context.Context, p core.PrincipalID) (int, error) {
	var n int
	err := t.q.QueryRowContext(ctx, `SELECT count(*) FROM offline WHERE principal = ?`, p).Scan(&n)
	if err != nil {
		return 0, wrap(err, "count offline of %s", p)
	}
	return n, nil
}

// Offline returns up to limit messages of p, oldest first; limit <= 0
// means all of them.
func (t *tx) Offline(ctx context.Context, p core.PrincipalID, limit int) ([]core.StoredMessage, error) {
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	rows, err := t.q.QueryContext(ctx, `SELECT seq, id, sender, recipient, kind, payload, storable, delayed, stamp
	FROM offline WHERE principal = ? ORDER BY seq LIMIT ?`, p, limit)
	if err != nil {
		return nil, wrap(err, "offline of %s", p)
	}
	defer rows.Close()
	var out []core.StoredMessage
	for rows.Next() {
		var m core.StoredMessage
		var stamp sql.NullInt64
		if err := rows.Scan(&m.Seq, &m.ID, &m.From, &m.To, &m.Kind, &m.Payload, &m.Storable, &m.Delayed, &stamp); err != nil {
			return nil, wrap(err, "offline of %s", p)
		}
		m.Stamp = getTime(stamp)
		out = append(out, m)
	}
	return out, wrap(rows.Err(), "offline of %s", p)
}

func (t *tx) DeleteOffline(ctx context.Context, p core.PrincipalID, upto int64) error {
	_, err := t.q.ExecContext(ctx, `DELETE FROM offline WHERE principal = ? AND seq <= ?`, p, upto)
	return wrap(err, "delete offline of %s up to %d", p, upto)
}

// Rosters.

// encodeGroups keeps groups exactly as given, order and duplicates
// included; no groups is "[]".
func encodeGroups(g []string) (string, error) {
	if len(g) == 0 {
		return "[]", nil
	}
	b, err := json.Marshal(g)
	return string(b), err
}

// decodeGroups returns nil for no groups.
func decodeGroups(s string) ([]string, error) {
	var g []string
	if err := json.Unmarshal([]byte(s), &g); err != nil {
		return nil, fmt.Errorf("groups %q: %w", s, err)
	}
	if len(g) == 0 {
		return nil, nil
	}
	return g, nil
}

func (t *tx) RosterItems(ctx context.Context, owner core.PrincipalID) ([]rosters.Item, error) {
	rows, err := t.q.QueryContext(ctx, `SELECT contact, name, groups FROM roster_items
	WHERE owner = ? ORDER BY contact`, owner)
	if err != nil {
		return nil, wrap(err, "roster of %s", owner)
	}
	defer rows.Close()
	var out []rosters.Item
	for rows.Next() {
		var it rosters.Item
		var groups string
		if err := rows.Scan(&it.Contact, &it.Name, &groups); err != nil {
			return nil, wrap(err, "roster of %s", owner)
		}
		if it.Groups, err = decodeGroups(groups); err != nil {
			return nil, wrap(err, "roster of %s: %s", owner, it.Contact)
		}
		out = append(out, it)
	}
	return out, wrap(rows.Err(), "roster of %s", owner)
}

func (t *tx) RosterItem(ctx context.Context, owner, contact core.PrincipalID) (rosters.Item, bool, error) {
	it := rosters.Item{Contact: contact}
	var groups string
	err := t.q.QueryRowContext(ctx, `SELECT name, groups FROM roster_items
	WHERE owner = ? AND contact = ?`, owner, contact).Scan(&it.Name, &groups)
	if errors.Is(err, sql.ErrNoRows) {
		return rosters.Item{}, false, nil
	}
	if err != nil {
		return rosters.Item{}, false, wrap(err, "roster item %s of %s", contact, owner)
	}
	if it.Groups, err = decodeGroups(groups); err != nil {
		return rosters.Item{}, false, wrap(err, "roster item %s of %s", contact, owner)
	}
	return it, true, nil
}

func (t *tx) PutRosterItem(ctx context.Context, owner core.PrincipalID, it rosters.Item) error {
	groups, err := encodeGroups(it.Groups)
	if err != nil {
		return wrap(err, "put roster item %s of %s", it.Contact, owner)
	}
	_, err = t.q.ExecContext(ctx, `INSERT INTO roster_items (owner, contact, name, groups) VALUES (?, ?, ?, ?)
	ON CONFLICT (owner, contact) DO UPDATE SET name = excluded.name, groups = excluded.groups`,
		owner, it.Contact, it.Name, groups)
	return wrap(err, "put roster item %s of %s", it.Contact, owner)
}

func (t *tx) DeleteRosterItem(ctx context.Context, owner, contact core.PrincipalID) error {
	_, err := t.q.ExecContext(ctx, `DELETE FROM roster_items WHERE owner = ? AND contact = ?`, owner, contact)
	return wrap(err, "delete roster item %s of %s", contact, owner)
}

func (t *tx) RosterVersion(ctx context.Context, owner core.PrincipalID) (int64, error) {
	var v int64
	err := t.q.QueryRowContext(ctx, `SELECT version FROM roster_versions WHERE owner = ?`, owner).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, wrap(err, "roster version of %s", owner)
	}
	return v, nil
}

func (t *tx) BumpRosterVersion(ctx context.Context, owner core.PrincipalID) (int64, error) {
	var v int64
	err := t.q.QueryRowContext(ctx, `INSERT INTO roster_versions (owner, version) VALUES (?, 1)
	ON CONFLICT (owner) DO UPDATE SET version = version + 1 RETURNING version`, owner).Scan(&v)
	if err != nil {
		return 0, wrap(err, "bump roster version of %s", owner)
	}
	return v, nil
}
