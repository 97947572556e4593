package db

import (
	"context"
	"database/sql"
	"encoding/json"
	"strings"
	"time"

	"github.com/imppd/imppd/core"
)

// archiveChunk is how many entries one INSERT statement carries: fewer
// statements mean fewer calls into SQLite per batch.
const archiveChunk = 64

// AppendArchive stores entries in one transaction (archive writes are
// batched by the caller). An entry whose (owner, id) exists is skipped.
func (d *DB) AppendArchive(ctx context.Context, entries []core.ArchiveEntry) error {
	return d.update(ctx, func(t *tx) error {
		args := make([]any, 0, 7*min(len(entries), archiveChunk))
		for len(entries) > 0 {
			n := min(len(entries), archiveChunk)
			args = args[:0]
			for _, e := range entries[:n] {
				bare, _, _ := strings.Cut(string(e.With), "/")
				out := 0
				if e.Outgoing {
					out = 1
				}
				args = append(args, e.Owner, e.ID, string(e.With), bare, out, e.Stamp.UTC().UnixNano(), e.Payload)
			}
			if _, err := t.q.ExecContext(ctx, archiveInsert(n), args...); err != nil {
				return wrap(err, "archive %d entries for %s", n, entries[0].Owner)
			}
			entries = entries[n:]
		}
		return nil
	})
}

var archiveInserts [archiveChunk + 1]string

// archiveInsert is the INSERT for n rows; its text is the same for each n,
// so SQLite's prepared statement is reused.
func archiveInsert(n int) string {
	if archiveInserts[n] == "" {
		archiveInserts[n] = "INSERT INTO archive (owner, id, with_full, with_bare, outgoing, stamp, payload) VALUES (?,?,?,?,?,?,?)" +
			strings.Repeat(",(?,?,?,?,?,?,?)", n-1) + " ON CONFLICT (owner, id) DO NOTHING"
	}
	return archiveInserts[n]
}

// QueryArchive returns a page of an archive (XEP-0313 filters, XEP-0059
// paging).
func (d *DB) QueryArchive(ctx context.Context, q core.ArchiveQuery) (core.ArchivePage, error) {
	var page core.ArchivePage
	err := d.view(ctx, func(t *tx) error {
		where := []string{"owner = ?"}
		args := []any{q.Owner}
		if q.With != "" {
			if strings.Contains(string(q.With), "/") {
				where, args = append(where, "with_full = ?"), append(args, string(q.With))
			} else {
				where, args = append(where, "with_bare = ?"), append(args, string(q.With))
			}
		}
		if !q.Start.IsZero() {
			where, args = append(where, "stamp >= ?"), append(args, q.Start.UTC().UnixNano())
		}
		if !q.End.IsZero() {
			where, args = append(where, "stamp <= ?"), append(args, q.End.UTC().UnixNano())
		}
		if len(q.IDs) > 0 {
			where = append(where, "id IN (?"+strings.Repeat(",?", len(q.IDs)-1)+")")
			for _, id := range q.IDs {
				args = append(args, id)
			}
		}
		filter := strings.Join(where, " AND ")
		if err := t.q.QueryRowContext(ctx, "SELECT count(*) FROM archive WHERE "+filter, args...).Scan(&page.Count); err != nil {
			return wrap(err, "count archive of %s", q.Owner)
		}
		// Paging bounds are the (stamp, seq) positions of the named
		// entries; an id that is not in the archive matches nothing.
		for _, b := range []struct {
			id, op string
		}{{q.AfterID, ">"}, {q.BeforeID, "<"}} {
			if b.id == "" {
				continue
			}
			var stamp, seq int64
			err := t.q.QueryRowContext(ctx, "SELECT stamp, seq FROM archive WHERE owner = ? AND id = ?", q.Owner, b.id).Scan(&stamp, &seq)
			if err == sql.ErrNoRows {
				page.Complete = true
				return errItemNotFound
			}
			if err != nil {
				return wrap(err, "archive position of %s", b.id)
			}
			filter += " AND (stamp " + b.op + " ? OR (stamp = ? AND seq " + b.op + " ?))"
			args = append(args, stamp, stamp, seq)
		}
		max := q.Max
		if max <= 0 {
			max = 1 << 30
		}
		order := "ASC"
		if q.Last {
			order = "DESC"
		}
		rows, err := t.q.QueryContext(ctx, "SELECT id, with_full, outgoing, stamp, payload FROM archive WHERE "+filter+
			" ORDER BY stamp "+order+", seq "+order+" LIMIT ?", append(args, max+1)...)
		if err != nil {
			return wrap(err, "query archive of %s", q.Owner)
		}
		defer rows.Close()
		for rows.Next() {
			var e core.ArchiveEntry
			var with string
			var out int
			var stamp int64
			if err := rows.Scan(&e.ID, &with, &out, &stamp, &e.Payload); err != nil {
				return wrap(err, "query archive of %s", q.Owner)
			}
			e.Owner, e.With, e.Outgoing, e.Stamp = q.Owner, core.AgentID(with), out == 1, time.Unix(0, stamp).UTC()
			page.Entries = append(page.Entries, e)
		}
		if err := rows.Err(); err != nil {
			return wrap(err, "query archive of %s", q.Owner)
		}
		page.Complete = len(page.Entries) <= max
		if !page.Complete {
			page.Entries = page.Entries[:max]
		}
		if q.Last {
			for i, j := 0, len(page.Entries)-1; i < j; i, j = i+1, j-1 {
				page.Entries[i], page.Entries[j] = page.Entries[j], page.Entries[i]
			}
		}
		return nil
	})
	if err == errItemNotFound {
		return core.ArchivePage{Complete: true}, core.ErrNoSuchEntry
	}
	return page, err
}

// errItemNotFound ends a query transaction early.
var errItemNotFound = sqlErr("archive entry not found")

type sqlErr string

func (e sqlErr) Error() string { return string(e) }

// ArchivePrefs returns owner's archiving preferences; the default is
// "always" with no lists.
func (d *DB) ArchivePrefs(ctx context.Context, owner core.PrincipalID) (core.ArchivePrefs, error) {
	p := core.ArchivePrefs{Default: "always"}
	err := d.view(ctx, func(t *tx) error {
		var always, never string
		err := t.q.QueryRowContext(ctx, "SELECT def, always, never FROM archive_prefs WHERE owner = ?", owner).Scan(&p.Default, &always, &never)
		if err == sql.ErrNoRows {
			return nil
		}
		if err != nil {
			return wrap(err, "archive prefs of %s", owner)
		}
		if err := json.Unmarshal([]byte(always), &p.Always); err != nil {
			return wrap(err, "archive prefs of %s", owner)
		}
		return wrap(json.Unmarshal([]byte(never), &p.Never), "archive prefs of %s", owner)
	})
	return p, err
}

// SetArchivePrefs stores owner's archiving preferences.
func (d *DB) SetArchivePrefs(ctx context.Context, owner core.PrincipalID, p core.ArchivePrefs) error {
	always, _ := json.Marshal(nonNil(p.Always))
	never, _ := json.Marshal(nonNil(p.Never))
	return d.update(ctx, func(t *tx) error {
		_, err := t.q.ExecContext(ctx, `INSERT INTO archive_prefs (owner, def, always, never) VALUES (?, ?, ?, ?)
	ON CONFLICT (owner) DO UPDATE SET def = excluded.def, always = excluded.always, never = excluded.never`,
			owner, p.Default, string(always), string(never))
		return wrap(err, "set archive prefs of %s", owner)
	})
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// PruneArchive deletes entries older than before and reports how many.
// seq grows with stamp (up to the archiver's reordering of a few
// milliseconds), so the cut is found by binary search on seq.
func (d *DB) PruneArchive(ctx context.Context, before time.Time) (int64, error) {
	cut := before.UTC().UnixNano()
	var n int64
	err := d.update(ctx, func(t *tx) error {
		var lo, hi sql.NullInt64
		if err := t.q.QueryRowContext(ctx, "SELECT min(seq), max(seq) FROM archive").Scan(&lo, &hi); err != nil || !lo.Valid {
			return wrap(err, "prune archive")
		}
		// Find the first seq whose stamp is >= cut; everything before goes.
		l, h := lo.Int64, hi.Int64+1
		for l < h {
			mid := l + (h-l)/2
			var seq, stamp int64
			err := t.q.QueryRowContext(ctx, "SELECT seq, stamp FROM archive WHERE seq >= ? ORDER BY seq LIMIT 1", mid).Scan(&seq, &stamp)
			if err != nil {
				return wrap(err, "prune archive")
			}
			if stamp < cut {
				l = seq + 1
			} else {
				h = mid
			}
		}
		res, err := t.q.ExecContext(ctx, "DELETE FROM archive WHERE seq < ?", l)
		if err != nil {
			return wrap(err, "prune archive")
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}
