// Package db persists imppd's state in SQLite.
//
// A DB holds two connection pools on one database file: a writer with a
// single connection, whose transactions start with BEGIN IMMEDIATE so
// writers queue on the Go side and on SQLite's write lock instead of
// failing with SQLITE_BUSY on upgrade, and a small pool of query_only
// readers, which in WAL mode read a consistent snapshot while the writer
// commits (DESIGN.md §5). The schema is created and upgraded by numbered
// migrations embedded from migrations/*.sql.
//
// DB implements core.Store and core.Accounts; its transactions implement
// rosters.Tx. It also implements XEP stores declared in core types, such
// as xmppmap/pep.Store, without importing them (DESIGN.md §1); db/dbtest
// repeats their methods. The package db/dbtest holds the conformance suite.
package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"

	sqlite3 "github.com/mattn/go-sqlite3"

	"github.com/imppd/imppd/core"
	"github.com/imppd/imppd/rosters"
)

// Options tune a DB.
type Options struct {
	// Synchronous is SQLite's synchronous setting: "full" (the default)
	// makes every commit durable across power loss before Update returns,
	// as DESIGN.md §5 requires for acknowledged data; "normal" in WAL mode
	// may lose the last commits on power loss, never on a process crash.
	Synchronous string
}

// readers is the size of the reader pool: more than the two cores, so a
// view waiting on I/O does not hold others back, few enough that idle
// connections cost little.
const readers = 4

// MemoryPath opens a private in-memory database instead of a file, gone
// at Close: for tests and trials.
const MemoryPath = ":memory:"

// ErrSchemaTooNew means the database was written by a newer imppd, whose
// schema this code does not know; opening it could corrupt it.
var ErrSchemaTooNew = errors.New("db: database schema is newer than this imppd")

// DB is imppd's SQLite store.
type DB struct {
	w    *sql.DB   // the single writer: Update and Accounts' writes
	r    *sql.DB   // query_only readers: View and Accounts' reads
	pin  *sql.DB   // in-memory databases: the pool keep comes from
	keep *sql.Conn // in-memory databases: keeps the database alive
	path string

	closeOnce sync.Once
	closeErr  error
}

var (
	_ core.Store    = (*DB)(nil)
	_ core.Accounts = (*DB)(nil)
	_ rosters.Tx    = (*tx)(nil)
)

// memSeq names in-memory databases, unique within the process.
var memSeq atomic.Int64

// Open opens (creating if needed) the database at path, a file path or
// MemoryPath, and brings its schema up to date. A database whose schema is
// newer than this code's is refused with ErrSchemaTooNew.
func Open(ctx context.Context, path string, opts Options) (*DB, error) {
	syncMode := strings.ToUpper(opts.Synchronous)
	switch syncMode {
	case "":
		syncMode = "FULL"
	case "FULL", "NORMAL":
	default:
		return nil, fmt.Errorf("db: synchronous %q: want \"full\" or \"normal\"", opts.Synchronous)
	}
	if path == "" {
		return nil, errors.New("db: empty database path")
	}

	// go-sqlite3 applies these pragmas to every connection it opens.
	var base string
	params := url.Values{}
	params.Set("_busy_timeout", "5000")
	params.Set("_foreign_keys", "on")
	params.Set("_synchronous", syncMode)
	// Each connection caches its prepared statements: the same few
	// queries run for every stanza.
	params.Set("_stmt_cache_size", "64")
	mem := path == MemoryPath
	if mem {
		// The memdb VFS shares one in-memory database among this process's
		// connections to the same "/name" and locks it like a file, so the
		// writer and the readers wait on busy_timeout. A shared-cache
		// ":memory:" would instead fail at once with SQLITE_LOCKED (table
		// locks ignore busy_timeout) whenever a view overlaps a write. WAL
		// needs shared memory, which memdb lacks: it keeps a rollback
		// journal, so a commit waits for open views to end.
		base = fmt.Sprintf("file:/imppd-mem-%d", memSeq.Add(1))
		params.Set("vfs", "memdb")
	} else {
		// A file: URI, escaped so '?' or '#' in a path stay part of it.
		base = "file:" + (&url.URL{Path: path}).EscapedPath()
		params.Set("_journal_mode", "WAL")
	}
	d := &DB{path: path}
	fail := func(err error) (*DB, error) {
		d.Close()
		return nil, fmt.Errorf("db: open %s: %w", path, err)
	}

	if mem {
		// An in-memory database lives while one connection to it is open:
		// pin one, from a pool of its own so the writer's stays free.
		pin, err := sql.Open("sqlite3", base+"?"+params.Encode())
		if err != nil {
			return fail(err)
		}
		d.pin = pin
		if d.keep, err = pin.Conn(ctx); err != nil {
			return fail(err)
		}
	}

	wp := cloneValues(params)
	wp.Set("_txlock", "immediate")
	w, err := sql.Open("sqlite3", base+"?"+wp.Encode())
	if err != nil {
		return fail(err)
	}
	d.w = w
	// One writer: SQLite admits one anyway, and queueing in database/sql
	// is cheaper than spinning on the busy handler.
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	if err := migrate(ctx, w, migrationFS); err != nil {
		return fail(err)
	}

	rp := cloneValues(params)
	rp.Set("_query_only", "1")
	r, err := sql.Open("sqlite3", base+"?"+rp.Encode())
	if err != nil {
		return fail(err)
	}
	d.r = r
	r.SetMaxOpenConns(readers)
	r.SetMaxIdleConns(readers)
	if err := r.PingContext(ctx); err != nil {
		return fail(err)
	}
	return d, nil
}

func cloneValues(v url.Values) url.Values {
	c := make(url.Values, len(v))
	for k, vs := range v {
		c[k] = append([]string(nil), vs...)
	}
	return c
}

// Close closes the database. Calling it again returns the first result.
func (d *DB) Close() error {
	d.closeOnce.Do(func() {
		var errs []error
		if d.r != nil {
			errs = append(errs, d.r.Close())
		}
		if d.w != nil {
			errs = append(errs, d.w.Close())
		}
		// Last, so an in-memory database outlives every other connection.
		if d.keep != nil {
			errs = append(errs, d.keep.Close())
		}
		if d.pin != nil {
			errs = append(errs, d.pin.Close())
		}
		if err := errors.Join(errs...); err != nil {
			d.closeErr = fmt.Errorf("db: close %s: %w", d.path, err)
		}
	})
	return d.closeErr
}

// Check verifies the database for `imppd check`: SQLite's quick integrity
// check, the foreign keys, and that the schema is the one this code
// writes.
func (d *DB) Check(ctx context.Context) error {
	rows, err := d.r.QueryContext(ctx, "PRAGMA quick_check")
	if err != nil {
		return fmt.Errorf("db: check %s: %w", d.path, err)
	}
	var problems []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			rows.Close()
			return fmt.Errorf("db: check %s: %w", d.path, err)
		}
		if s != "ok" {
			problems = append(problems, s)
		}
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return fmt.Errorf("db: check %s: %w", d.path, err)
	}
	if len(problems) > 0 {
		return fmt.Errorf("db: check %s: integrity: %s", d.path, strings.Join(problems, "; "))
	}

	rows, err = d.r.QueryContext(ctx, "PRAGMA foreign_key_check")
	if err != nil {
		return fmt.Errorf("db: check %s: %w", d.path, err)
	}
	n := 0
	var first string
	for rows.Next() {
		var table, parent string
		var rowid sql.NullInt64
		var fkid int64
		if err := rows.Scan(&table, &rowid, &parent, &fkid); err != nil {
			rows.Close()
			return fmt.Errorf("db: check %s: %w", d.path, err)
		}
		if n == 0 {
			first = fmt.Sprintf("%s row %d names a missing %s", table, rowid.Int64, parent)
		}
		n++
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return fmt.Errorf("db: check %s: %w", d.path, err)
	}
	if n > 0 {
		return fmt.Errorf("db: check %s: %d foreign key violations, first: %s", d.path, n, first)
	}

	v, err := schemaVersion(ctx, d.r)
	if err != nil {
		return fmt.Errorf("db: check %s: %w", d.path, err)
	}
	if want := latestVersion(); v != want {
		return fmt.Errorf("db: check %s: schema version %d, this imppd writes %d", d.path, v, want)
	}
	return nil
}

// Update runs fn in one write transaction (BEGIN IMMEDIATE on the single
// writer connection). fn's error is returned unchanged after rollback.
func (d *DB) Update(ctx context.Context, fn func(core.Tx) error) error {
	return d.update(ctx, func(t *tx) error { return fn(t) })
}

// View runs fn in one read-only transaction on the reader pool; all its
// reads see one snapshot. fn's error is returned unchanged. fn must not
// wait for an Update: on an in-memory database a commit waits for open
// views to end, and would fail after busy_timeout.
func (d *DB) View(ctx context.Context, fn func(core.Tx) error) error {
	return d.view(ctx, func(t *tx) error { return fn(t) })
}

func (d *DB) update(ctx context.Context, fn func(*tx) error) (err error) {
	stx, err := d.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("db: begin update: %w", err)
	}
	// Roll back on error and on panic: an unfinished Tx would hold the only
	// writer connection for good.
	done := false
	defer func() {
		if !done {
			stx.Rollback()
		}
	}()
	if err := fn(&tx{q: stx}); err != nil {
		return err
	}
	done = true
	if err := stx.Commit(); err != nil {
		return fmt.Errorf("db: commit: %w", err)
	}
	return nil
}

func (d *DB) view(ctx context.Context, fn func(*tx) error) error {
	stx, err := d.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("db: begin view: %w", err)
	}
	// Nothing to commit: rolling back just ends the read snapshot.
	defer stx.Rollback()
	return fn(&tx{q: stx})
}

// wrap prefixes err with "db: " and the formatted context. A foreign key
// failure, which means state was written for a principal that has no
// account, becomes core.ErrNoSuchPrincipal so callers can tell it apart.
func wrap(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	var se sqlite3.Error
	if errors.As(err, &se) && se.ExtendedCode == sqlite3.ErrConstraintForeignKey {
		err = core.ErrNoSuchPrincipal
	}
	return fmt.Errorf("db: "+format+": %w", append(args, err)...)
}
