package main

import (
	"bytes"
	"context"
	"crypto/pbkdf2"
	"crypto/sha256"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/mattn/go-sqlite3"
)

// cli runs the command line in-process and returns status, stdout, stderr.
func cli(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestUserLifecycle(t *testing.T) {
	cfg := writeConfig(t, "domains = [\"example.org\"]\n[auth]\nscram_iterations = 4096\n")
	if code, out, errs := cli(t, "s3cret pass\n", "user", "add", "Alice@Example.org", "-config", cfg); code != 0 || !strings.Contains(out, "created alice@example.org") {
		t.Fatalf("add: %d %q %q", code, out, errs)
	}
	if code, _, errs := cli(t, "x\n", "user", "add", "alice@example.org", "-config", cfg); code != 1 || !strings.Contains(errs, "already exists") {
		t.Fatalf("second add: %d %q", code, errs)
	}
	if code, _, errs := cli(t, "x\n", "user", "add", "bob@other.org", "-config", cfg); code != 1 || !strings.Contains(errs, "not a served domain") {
		t.Fatalf("foreign domain: %d %q", code, errs)
	}
	if code, _, errs := cli(t, "\n", "user", "add", "carol@example.org", "-config", cfg); code != 1 || !strings.Contains(errs, "empty password") {
		t.Fatalf("empty password: %d %q", code, errs)
	}
	if code, out, _ := cli(t, "", "user", "list", "-config", cfg); code != 0 || out != "alice@example.org\n" {
		t.Fatalf("list: %d %q", code, out)
	}

	// The database holds no password and no password equivalent: neither
	// the password nor SCRAM's SaltedPassword appears in any column.
	dbPath := filepath.Join(filepath.Dir(cfg), "data", "imppd.sqlite")
	db, err := sql.Open("sqlite3", dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query("SELECT hash, salt, iterations, stored_key, server_key FROM credentials")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		var hash string
		var salt, stored, server []byte
		var iter int
		if err := rows.Scan(&hash, &salt, &iter, &stored, &server); err != nil {
			t.Fatal(err)
		}
		n++
		salted, err := pbkdf2.Key(sha256.New, "s3cret pass", salt, iter, 32)
		if err != nil {
			t.Fatal(err)
		}
		for _, col := range [][]byte{salt, stored, server} {
			if bytes.Contains(col, []byte("s3cret")) || (hash == "SHA-256" && bytes.Equal(col, salted)) {
				t.Fatalf("credentials row for %s holds a password equivalent", hash)
			}
		}
	}
	if n != 3 {
		t.Fatalf("%d credential rows, want SHA-1, SHA-256, SHA-512", n)
	}
	var dump bytes.Buffer
	for _, table := range []string{"principals", "credentials"} {
		r, err := db.QueryContext(context.Background(), "SELECT * FROM "+table)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := r.Columns()
		vals := make([]any, len(cols))
		for i := range vals {
			vals[i] = new(any)
		}
		for r.Next() {
			_ = r.Scan(vals...)
			for _, v := range vals {
				dump.WriteString(strings.TrimSpace(string(toBytes(*(v.(*any))))))
			}
		}
		r.Close()
	}
	if strings.Contains(dump.String(), "s3cret") {
		t.Fatal("password found in the database")
	}

	if code, out, _ := cli(t, "n3w\n", "user", "passwd", "alice@example.org", "-config", cfg); code != 0 || !strings.Contains(out, "password changed") {
		t.Fatalf("passwd: %d %q", code, out)
	}
	if code, _, errs := cli(t, "n3w\n", "user", "passwd", "nobody@example.org", "-config", cfg); code != 1 || !strings.Contains(errs, "does not exist") {
		t.Fatalf("passwd unknown: %d %q", code, errs)
	}
	if code, out, _ := cli(t, "", "user", "del", "alice@example.org", "-config", cfg); code != 0 || !strings.Contains(out, "deleted") {
		t.Fatalf("del: %d %q", code, out)
	}
	if code, out, _ := cli(t, "", "user", "list", "-config", cfg); code != 0 || out != "" {
		t.Fatalf("list after del: %d %q", code, out)
	}
}

func toBytes(v any) []byte {
	switch x := v.(type) {
	case []byte:
		return x
	case string:
		return []byte(x)
	}
	return nil
}

func TestCheckReportsMisspeltKey(t *testing.T) {
	cfg := writeConfig(t, "domains = [\"example.org\"]\n\n[c2s]\nlistne = \":5222\"\nmax_stanza_size = \"big\"\n")
	code, out, errs := cli(t, "", "check", "-config", cfg)
	if code != 1 {
		t.Fatalf("check exit %d, want 1 (%q %q)", code, out, errs)
	}
	for _, want := range []string{"config.toml:4:", `c2s.listne`, "config.toml:5:", "c2s.max_stanza_size"} {
		if !strings.Contains(errs, want) {
			t.Errorf("check output lacks %q:\n%s", want, errs)
		}
	}
}

func TestCheckGoodConfig(t *testing.T) {
	cfg := writeConfig(t, "domains = [\"example.org\"]\n")
	if code, out, errs := cli(t, "", "check", "-config", cfg); code != 0 || !strings.Contains(out, "configuration: ok") {
		t.Fatalf("check: %d %q %q", code, out, errs)
	}
}

func TestUsageAndVersion(t *testing.T) {
	if code, out, _ := cli(t, "", "version"); code != 0 || !strings.HasPrefix(out, "imppd ") {
		t.Fatalf("version: %d %q", code, out)
	}
	if code, _, _ := cli(t, "", "frobnicate"); code != 2 {
		t.Fatalf("unknown command: exit %d, want 2", code)
	}
	if code, _, errs := cli(t, "", "user", "add", "-config", "x"); code != 2 || !strings.Contains(errs, "needs one JID") {
		t.Fatalf("user add without JID: %d %q", code, errs)
	}
}
