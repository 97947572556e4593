package db

import (
	"context"
	"database/sql"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/imppd/imppd/core"
	"github.com/imppd/imppd/db/dbtest"
)

func openTest(t *testing.T, path string, opts Options) *DB {
	t.Helper()
	d, err := Open(t.Context(), path, opts)
	if err != nil {
		t.Fatalf("Open(%q): %v", path, err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func TestConformanceFile(t *testing.T) {
	dbtest.Run(t, dbtest.Backend{
		Open: func(t *testing.T, name string) dbtest.Store {
			return openTest(t, name+".db", Options{})
		},
		Persistent: true,
	})
}

func TestConformanceFileSyncNormal(t *testing.T) {
	dbtest.Run(t, dbtest.Backend{
		Open: func(t *testing.T, name string) dbtest.Store {
			return openTest(t, name+".db", Options{Synchronous: "normal"})
		},
		Persistent: true,
	})
}

func TestConformanceMemory(t *testing.T) {
	dbtest.Run(t, dbtest.Backend{
		Open: func(t *testing.T, _ string) dbtest.Store {
			return openTest(t, MemoryPath, Options{})
		},
	})
}

// rawOpen opens the file without going through Open, to set up states
// Open would not create.
func rawOpen(t *testing.T, path string) *sql.DB {
	t.Helper()
	raw, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	return raw
}

func exec(t *testing.T, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.ExecContext(t.Context(), q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func TestMigrationsEmbedded(t *testing.T) {
	ms, err := loadMigrations(migrationFS)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 || ms[0].name != "0001_init.sql" {
		t.Fatalf("migrations: %+v", ms)
	}
	if latestVersion() != len(ms) {
		t.Fatalf("latestVersion %d, %d files", latestVersion(), len(ms))
	}
}

func TestFreshDatabaseHasLatestVersion(t *testing.T) {
	for _, path := range []string{filepath.Join(t.TempDir(), "fresh.db"), MemoryPath} {
		d := openTest(t, path, Options{})
		v, err := schemaVersion(t.Context(), d.r)
		if err != nil {
			t.Fatal(err)
		}
		if v != latestVersion() {
			t.Errorf("%s: version %d, want %d", path, v, latestVersion())
		}
		if err := d.Check(t.Context()); err != nil {
			t.Errorf("%s: Check: %v", path, err)
		}
	}
}

func TestFutureVersionRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "future.db")
	d := openTest(t, path, Options{})
	if err := d.CreateAccount(t.Context(), core.Account{ID: "alice@example.org"}); err != nil {
		t.Fatal(err)
	}
	d.Close()
	exec(t, rawOpen(t, path), `UPDATE schema_version SET version = ?`, latestVersion()+1)

	_, err := Open(t.Context(), path, Options{})
	if !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("Open of a newer database: %v, want ErrSchemaTooNew", err)
	}
	// Refusing changed nothing.
	var v int
	if err := rawOpen(t, path).QueryRow(`SELECT version FROM schema_version`).Scan(&v); err != nil || v != latestVersion()+1 {
		t.Fatalf("version after refusal: %d %v", v, err)
	}
}

func TestReopenKeepsVersion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "again.db")
	openTest(t, path, Options{}).Close()
	d := openTest(t, path, Options{})
	if v, err := schemaVersion(t.Context(), d.r); err != nil || v != latestVersion() {
		t.Fatalf("version %d %v", v, err)
	}
}

// withMigrations is the embedded migrations plus extra files.
func withMigrations(t *testing.T, extra map[string]string) fs.FS {
	t.Helper()
	m := fstest.MapFS{}
	err := fs.WalkDir(migrationFS, "migrations", func(p string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return err
		}
		b, err := fs.ReadFile(migrationFS, p)
		m[p] = &fstest.MapFile{Data: b}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, sql := range extra {
		m["migrations/"+name] = &fstest.MapFile{Data: []byte(sql)}
	}
	return m
}

func TestMigrationUpgradeAndFailure(t *testing.T) {
	path := filepath.Join(t.TempDir(), "up.db")
	d := openTest(t, path, Options{})
	if err := d.CreateAccount(t.Context(), core.Account{ID: "alice@example.org"}); err != nil {
		t.Fatal(err)
	}
	n := latestVersion()
	ctx := t.Context()
	next := func(k int) string { return strings.Repeat("0", 4-len(itoa(n+k))) + itoa(n+k) }

	// A failing migration leaves the schema and version as they were.
	bad := withMigrations(t, map[string]string{
		next(1) + "_good.sql": `CREATE TABLE extra (x INTEGER);`,
		next(2) + "_bad.sql":  `CREATE TABLE extra2 (x INTEGER); INSERT INTO nowhere VALUES (1);`,
	})
	if err := migrate(ctx, d.w, bad); err == nil {
		t.Fatal("failing migration succeeded")
	}
	if v, _ := schemaVersion(ctx, d.r); v != n {
		t.Fatalf("version after failed migration %d, want %d", v, n)
	}
	var cnt int
	if err := d.r.QueryRow(`SELECT count(*) FROM sqlite_schema WHERE name IN ('extra', 'extra2')`).Scan(&cnt); err != nil || cnt != 0 {
		t.Fatalf("failed migration left %d tables (%v)", cnt, err)
	}

	// A good one applies, keeps the data, and is not applied twice.
	good := withMigrations(t, map[string]string{
		next(1) + "_extra.sql": `CREATE TABLE extra (x INTEGER); INSERT INTO extra VALUES (42);`,
	})
	for i := 0; i < 2; i++ {
		if err := migrate(ctx, d.w, good); err != nil {
			t.Fatal(err)
		}
	}
	if v, _ := schemaVersion(ctx, d.r); v != n+1 {
		t.Fatalf("version after upgrade %d, want %d", v, n+1)
	}
	if err := d.r.QueryRow(`SELECT count(*) FROM extra`).Scan(&cnt); err != nil || cnt != 1 {
		t.Fatalf("extra rows %d (%v): migration ran twice?", cnt, err)
	}
	if ids, err := d.ListAccounts(ctx); err != nil || len(ids) != 1 {
		t.Fatalf("accounts after upgrade: %v %v", ids, err)
	}
	// The code's own migrations now see a newer database.
	if err := migrate(ctx, d.w, migrationFS); !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("older code on upgraded database: %v", err)
	}
	if err := d.Check(ctx); err == nil {
		t.Error("Check passed on a database of another version")
	}
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}

func TestMigrationNames(t *testing.T) {
	for _, c := range []struct {
		name  string
		files []string
	}{
		{"gap", []string{"0001_a.sql", "0003_c.sql"}},
		{"duplicate", []string{"0001_a.sql", "0001_b.sql"}},
		{"zero", []string{"0000_a.sql"}},
		{"no number", []string{"init.sql"}},
		{"no underscore", []string{"0001.sql"}},
	} {
		m := fstest.MapFS{}
		for _, f := range c.files {
			m["migrations/"+f] = &fstest.MapFile{Data: []byte("SELECT 1;")}
		}
		if _, err := loadMigrations(m); err == nil {
			t.Errorf("%s: %v accepted", c.name, c.files)
		}
	}
}

func TestNotAnImppdDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "other.db")
	exec(t, rawOpen(t, path), `CREATE TABLE something_else (x)`)
	if d, err := Open(t.Context(), path, Options{}); err == nil {
		d.Close()
		t.Fatal("opened another program's database")
	}
	var n int
	if err := rawOpen(t, path).QueryRow(`SELECT count(*) FROM sqlite_schema WHERE name = 'principals'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("schema written into it: %d %v", n, err)
	}
}

func pragma(t *testing.T, db *sql.DB, name string) string {
	t.Helper()
	var v string
	if err := db.QueryRow("PRAGMA " + name).Scan(&v); err != nil {
		t.Fatalf("PRAGMA %s: %v", name, err)
	}
	return v
}

func TestPragmas(t *testing.T) {
	for _, c := range []struct {
		path    string
		sync    string
		journal string
		want    string // synchronous: 1 normal, 2 full
	}{
		{filepath.Join(t.TempDir(), "full.db"), "", "wal", "2"},
		{filepath.Join(t.TempDir(), "full2.db"), "FULL", "wal", "2"},
		{filepath.Join(t.TempDir(), "normal.db"), "normal", "wal", "1"},
		{MemoryPath, "", "", "2"},
	} {
		d := openTest(t, c.path, Options{Synchronous: c.sync})
		// Exhaust the reader pool so every connection is checked.
		var conns []*sql.Conn
		for i := 0; i < readers; i++ {
			conn, err := d.r.Conn(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, conn)
		}
		for i, conn := range conns {
			var fk, bt, qo, sy int
			var jm string
			row := conn.QueryRowContext(t.Context(), `SELECT (SELECT foreign_keys FROM pragma_foreign_keys),
	(SELECT timeout FROM pragma_busy_timeout), (SELECT query_only FROM pragma_query_only),
	(SELECT synchronous FROM pragma_synchronous), (SELECT journal_mode FROM pragma_journal_mode)`)
			if err := row.Scan(&fk, &bt, &qo, &sy, &jm); err != nil {
				t.Fatal(err)
			}
			if fk != 1 || bt != 5000 || qo != 1 || itoa(sy) != c.want || (c.journal != "" && jm != c.journal) {
				t.Errorf("%s reader %d: foreign_keys=%d busy_timeout=%d query_only=%d synchronous=%d journal=%s",
					c.path, i, fk, bt, qo, sy, jm)
			}
			conn.Close()
		}
		for name, want := range map[string]string{
			"foreign_keys": "1", "busy_timeout": "5000", "query_only": "0", "synchronous": c.want,
		} {
			if got := pragma(t, d.w, name); got != want {
				t.Errorf("%s writer: %s = %s, want %s", c.path, name, got, want)
			}
		}
		if c.journal != "" {
			if got := pragma(t, d.w, "journal_mode"); got != c.journal {
				t.Errorf("%s writer: journal_mode = %s", c.path, got)
			}
		}
	}
}

func TestBadOptions(t *testing.T) {
	if _, err := Open(t.Context(), MemoryPath, Options{Synchronous: "off"}); err == nil {
		t.Error("synchronous=off accepted")
	}
	if _, err := Open(t.Context(), "", Options{}); err == nil {
		t.Error("empty path accepted")
	}
	if _, err := Open(t.Context(), filepath.Join(t.TempDir(), "no", "such", "dir", "x.db"), Options{}); err == nil {
		t.Error("path in a missing directory accepted")
	}
}

// TestOddPath: characters that mean something in a URI stay in the name.
func TestOddPath(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a b?c=d#e%20f.db")
	d := openTest(t, path, Options{})
	if err := d.CreateAccount(t.Context(), core.Account{ID: "alice@example.org"}); err != nil {
		t.Fatal(err)
	}
	d.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database not at its path: %v", err)
	}
	d = openTest(t, path, Options{})
	if ids, err := d.ListAccounts(t.Context()); err != nil || len(ids) != 1 {
		t.Fatalf("reopened: %v %v", ids, err)
	}
}

func TestMemoryDatabasesAreSeparate(t *testing.T) {
	a := openTest(t, MemoryPath, Options{})
	b := openTest(t, MemoryPath, Options{})
	if err := a.CreateAccount(t.Context(), core.Account{ID: "alice@example.org"}); err != nil {
		t.Fatal(err)
	}
	if ids, err := b.ListAccounts(t.Context()); err != nil || len(ids) != 0 {
		t.Fatalf("second in-memory database sees %v (%v)", ids, err)
	}
}

// TestMemoryOutlivesIdleConnections: the pinned connection keeps an
// in-memory database while the pools close their idle connections.
func TestMemoryOutlivesIdleConnections(t *testing.T) {
	d := openTest(t, MemoryPath, Options{})
	if err := d.CreateAccount(t.Context(), core.Account{ID: "alice@example.org"}); err != nil {
		t.Fatal(err)
	}
	d.w.SetMaxIdleConns(0)
	d.r.SetMaxIdleConns(0)
	if ids, err := d.ListAccounts(t.Context()); err != nil || len(ids) != 1 {
		t.Fatalf("after idle connections closed: %v %v", ids, err)
	}
}

func TestCheckFindsForeignKeyViolation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fk.db")
	d := openTest(t, path, Options{})
	if err := d.Check(t.Context()); err != nil {
		t.Fatal(err)
	}
	// Written behind the store's back with foreign keys off.
	exec(t, rawOpen(t, path), `INSERT INTO roster_versions (owner, version) VALUES ('ghost@example.org', 1)`)
	if err := d.Check(t.Context()); err == nil || !strings.Contains(err.Error(), "foreign key") {
		t.Fatalf("Check: %v", err)
	}
}

func TestCloseTwice(t *testing.T) {
	d, err := Open(t.Context(), MemoryPath, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.View(context.Background(), func(core.Tx) error { return nil }); err == nil {
		t.Error("View after Close succeeded")
	}
}

func TestErrorsCarryContext(t *testing.T) {
	d := openTest(t, MemoryPath, Options{})
	err := d.Update(t.Context(), func(tx core.Tx) error {
		_, err := tx.PutOffline(t.Context(), "ghost@example.org", core.Message{ID: "m1"})
		return err
	})
	if !errors.Is(err, core.ErrNoSuchPrincipal) || !strings.HasPrefix(err.Error(), "db: ") ||
		!strings.Contains(err.Error(), "ghost@example.org") {
		t.Fatalf("error %q", err)
	}
}

// TestDeleteAccountLeavesNoPEPRows: the cascade from principals reaches
// pep_items through pep_nodes' composite key, leaving no orphan that the
// API (which always names the owner) would not show.
func TestDeleteAccountLeavesNoPEPRows(t *testing.T) {
	d := openTest(t, filepath.Join(t.TempDir(), "pep.db"), Options{})
	c := t.Context()
	if err := d.CreateAccount(c, core.Account{ID: "alice@example.org"}); err != nil {
		t.Fatal(err)
	}
	if err := d.PublishItem(c, "alice@example.org", "urn:n", core.NodeConfig{}, core.MarkupItem{ID: "i"}, 0); err != nil {
		t.Fatal(err)
	}
	if err := d.PutAccountData(c, "alice@example.org", "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := d.DeleteAccount(c, "alice@example.org"); err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"pep_nodes", "pep_items", "account_data"} {
		var n int
		if err := d.r.QueryRow(`SELECT count(*) FROM ` + table).Scan(&n); err != nil || n != 0 {
			t.Errorf("%s: %d rows left (%v)", table, n, err)
		}
	}
	if err := d.Check(c); err != nil {
		t.Error(err)
	}
}
