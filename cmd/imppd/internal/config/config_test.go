package config

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imppd/imppd"
)

func writeConfig(t *testing.T, src string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// loadErrs loads src and returns its *Errors (nil when it loads).
func loadErrs(t *testing.T, src string) (*Config, *Errors) {
	t.Helper()
	c, err := Load(writeConfig(t, src))
	if err == nil {
		return c, nil
	}
	var errs *Errors
	if !errors.As(err, &errs) {
		t.Fatalf("Load error %T is not *Errors: %v", err, err)
	}
	return nil, errs
}

func TestDefault(t *testing.T) {
	_, probs := decode(imppd.DefaultConfig, &Config{}, true)
	if len(probs) > 0 {
		t.Fatalf("embedded config.toml: %v", (&Errors{File: "config.toml", Problems: probs}).Error())
	}
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("default does not validate: %v", err)
	}
	if !reflect.DeepEqual(c.Domains, []string{"localhost"}) || c.C2S.MaxStanzaSize != 262144 ||
		c.C2S.IdleTimeout.Duration != 5*time.Minute || !c.C2S.RequireTLS || c.Registration.Enabled ||
		c.Storage.Database != "imppd.sqlite" || c.Admins == nil {
		t.Errorf("unexpected defaults: %+v", c)
	}
	// Each call is a fresh copy.
	c.Domains[0] = "changed"
	if Default().Domains[0] != "localhost" {
		t.Error("Default shares state between calls")
	}
}

// Every key in the shipped file is documented by a comment right above it.
func TestDefaultFileDocumented(t *testing.T) {
	sc := bufio.NewScanner(bytes.NewReader(imppd.DefaultConfig))
	prev, n := "", 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line != "" && !strings.HasPrefix(line, "#") && !strings.HasPrefix(line, "[") &&
			!strings.HasPrefix(prev, "#") {
			t.Errorf("config.toml:%d: %q has no comment above it", n, line)
		}
		prev = line
	}
}

func clearFileInfo(c *Config) { c.file, c.lines = "", nil }

func TestLoadKeepsDefaults(t *testing.T) {
	p := writeConfig(t, `domains = ["example.org"]`+"\n")
	got, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Domains = []string{"example.org"}
	want.Resolve(filepath.Dir(p))
	clearFileInfo(got)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

func TestLoadOverrides(t *testing.T) {
	c, errs := loadErrs(t, `
domains = ["Example.ORG", "chat.example.org"]
admins = ["Admin@Example.org"]
[log]
level = "debug"
format = "json"
trace_accounts = ["alice@example.org"]
[c2s]
listen = "127.0.0.1:0"
direct_tls_listen = ""
require_tls = false
resource_conflict = "refuse"
idle_timeout = "90s"
max_preauth_size = 4096
[auth]
allow_plain = false
scram_iterations = 4096
[tls]
min_version = "1.3"
[storage]
synchronous = "normal"
[registration]
enabled = true
`)
	if errs != nil {
		t.Fatal(errs)
	}
	if !reflect.DeepEqual(c.Domains, []string{"example.org", "chat.example.org"}) ||
		c.Admins[0] != "admin@example.org" || c.Log.SlogLevel() != slog.LevelDebug || c.Log.Format != "json" ||
		c.C2S.Listen != "127.0.0.1:0" || c.C2S.DirectTLSListen != "" || c.C2S.RequireTLS ||
		c.C2S.ResourceConflict != ConflictRefuse || c.C2S.IdleTimeout.Duration != 90*time.Second ||
		c.C2S.MaxPreauthSize != 4096 || c.C2S.MaxStanzaSize != 262144 || c.Auth.AllowPlain ||
		c.TLS.TLSMinVersion() != tls.VersionTLS13 || c.Storage.Synchronous != "normal" || !c.Registration.Enabled {
		t.Errorf("overrides not applied: %+v", c)
	}
}

func TestValidationProblems(t *testing.T) {
	tests := []struct {
		name, src string
		key       string
		line      int
		msg       string
	}{
		// values
		{"no domains", "domains = []", "domains", 1, "at least one domain"},
		{"domain char", "# x\ndomains = [\"exa_mple.org\"]", "domains", 2, "invalid character '_'"},
		{"domain dots", `domains = ["example..org"]`, "domains", 1, "empty label"},
		{"domain hyphen", `domains = ["-x.org"]`, "domains", 1, "starts or ends with '-'"},
		{"domain twice", `domains = ["a.org", "A.org"]`, "domains", 1, "listed twice"},
		{"domain unicode", `domains = ["bücher.de"]`, "domains", 1, "punycode"},
		{"data_dir empty", "\n\ndata_dir = \"\"", "data_dir", 3, "must not be empty"},
		{"admin not jid", "\nadmins = [\"alice\"]", "admins", 2, "bare JID"},
		{"admin resource", `admins = ["a@b.org/phone"]`, "admins", 1, "without /resource"},
		{"admin bad domain", `admins = ["a@b..org"]`, "admins", 1, "domain: empty label"},
		{"log level", "[log]\nlevel = \"verbose\"", "log.level", 2, `"verbose" is not one of "debug", "info", "warn", "error"`},
		{"log format", "[log]\n\nformat = \"xml\"", "log.format", 3, `not one of "text", "json"`},
		{"trace account", "[log]\ntrace_accounts = [\"@x.org\"]", "log.trace_accounts", 2, "bare JID"},
		{"listen no port", "[c2s]\nlisten = \"5222\"", "c2s.listen", 2, "host:port"},
		{"listen big port", "[c2s]\nlisten = \":99999\"", "c2s.listen", 2, "0 to 65535"},
		{"listen bad host", "[c2s]\ndirect_tls_listen = \"bad_host:5223\"", "c2s.direct_tls_listen", 2, "host: invalid character"},
		{"no listener", "[c2s]\nlisten = \"\"\ndirect_tls_listen = \"\"", "c2s.listen", 2, "no client listener"},
		{"plain tcp public", "[c2s]\nlisten = \"127.0.0.1:5222\"\nrequire_tls = false", "c2s.require_tls", 3, `c2s.direct_tls_listen = ":5223" is not`},
		{"plain tcp default", "[c2s]\ndirect_tls_listen = \"\"\n\nrequire_tls = false", "c2s.require_tls", 4, "loopback"},
		{"resource conflict", "[c2s]\nresource_conflict = \"kick\"", "c2s.resource_conflict", 2, `"replace", "refuse"`},
		{"stanza size", "[c2s]\nmax_stanza_size = 0", "c2s.max_stanza_size", 2, "must be positive, not 0"},
		{"preauth size", "[c2s]\nmax_preauth_size = -1", "c2s.max_preauth_size", 2, "must be positive"},
		{"preauth > stanza", "[c2s]\nmax_preauth_size = 300000", "c2s.max_preauth_size", 2, "300000 exceeds c2s.max_stanza_size (262144)"},
		{"stanza < preauth", "[c2s]\nmax_stanza_size = 1000", "c2s.max_preauth_size", 2, "exceeds c2s.max_stanza_size (1000)"},
		{"depth", "[c2s]\nmax_depth = -1", "c2s.max_depth", 2, "must be positive"},
		{"connections", "[c2s]\nmax_connections = 0", "c2s.max_connections", 2, "must be positive"},
		{"connections per ip", "[c2s]\nmax_connections_per_ip = 0", "c2s.max_connections_per_ip", 2, "must be positive"},
		{"handshake", "[c2s]\nhandshake_timeout = \"0s\"", "c2s.handshake_timeout", 2, "positive duration"},
		{"idle negative", "[c2s]\nidle_timeout = \"-5m\"", "c2s.idle_timeout", 2, "positive duration"},
		{"ping", "[c2s]\nping_timeout = \"0s\"", "c2s.ping_timeout", 2, "positive duration"},
		{"retention", "[archive]\nretention_days = -1", "archive.retention_days", 2, "must be 0 (forever)"},
		{"xep number", "[xeps]\ndisabled = [280, 0]", "xeps.disabled", 2, "0 is not a XEP number"},
		{"xep type", "[xeps]\ndisabled = [\"carbons\"]", "xeps.disabled", 2, "element 1 must be an integer"},
		{"bad duration", "[c2s]\nping_timeout = \"5 minutes\"", "c2s.ping_timeout", 2, `invalid duration "5 minutes"`},
		{"send queue", "[c2s]\nsend_queue = 0", "c2s.send_queue", 2, "must be positive"},
		{"scram", "[auth]\nscram_iterations = 4095", "auth.scram_iterations", 2, "at least 4096"},
		{"failures stream", "[auth]\nmax_failures_per_stream = 0", "auth.max_failures_per_stream", 2, "must be positive"},
		{"failures ip", "[auth]\nmax_failures_per_ip = 0", "auth.max_failures_per_ip", 2, "must be positive"},
		{"failures account", "[auth]\nmax_failures_per_account = 0", "auth.max_failures_per_account", 2, "must be positive"},
		{"failure window", "[auth]\nfailure_window = \"0s\"", "auth.failure_window", 2, "positive duration"},
		{"cert without key", "[tls]\ncert = \"a.pem\"", "tls.key", 2, "must be set when tls.cert is"},
		{"key without cert", "[tls]\n\nkey = \"a.key\"", "tls.cert", 3, "must be set when tls.key is"},
		{"min version", "[tls]\nmin_version = \"1.1\"", "tls.min_version", 2, `"1.2", "1.3"`},
		{"database", "[storage]\ndatabase = \"\"", "storage.database", 2, "must not be empty"},
		{"synchronous", "[storage]\nsynchronous = \"off\"", "storage.synchronous", 2, `"full", "normal"`},
		{"offline quota", "[limits]\noffline_quota = 0", "limits.offline_quota", 2, "must be positive"},
		// types
		{"int as string", "[c2s]\nmax_stanza_size = \"big\"", "c2s.max_stanza_size", 2, `must be an integer, not the string "big"`},
		{"int as float", "[c2s]\nmax_depth = 1.5", "c2s.max_depth", 2, "must be an integer, not the float 1.5"},
		{"bool as string", "[c2s]\nrequire_tls = \"yes\"", "c2s.require_tls", 2, "must be true or false"},
		{"array as string", `domains = "example.org"`, "domains", 1, "must be an array of strings"},
		{"array element", "domains = [\n  \"a.org\",\n  1,\n]", "domains", 1, "element 2 must be a string, not the integer 1"},
		{"duration as int", "[c2s]\nidle_timeout = 300", "c2s.idle_timeout", 2, "must be a duration string"},
		{"section as value", "log = 5", "log", 1, "must be a table ([log])"},
		{"array of tables", "[[c2s]]\nlisten = \":1\"", "c2s", 1, "not an array of tables"},
		// keys
		{"misspelt", "[c2s]\nlistne = \":5222\"", "c2s.listne", 2, `unknown key "c2s.listne" (did you mean "c2s.listen"?)`},
		{"misspelt top", "\ndomain = [\"a.org\"]", "domain", 2, `unknown key "domain" (did you mean "domains"?)`},
		{"wrong case", "[c2s]\nListen = \"\"", "c2s.Listen", 2, `did you mean "c2s.listen"`},
		{"unknown section", "\n[federation]\nlisten = 1", "federation", 2, `unknown key "federation"`},
		{"dotted unknown", "# x\nfederation.enabled = true", "federation", 2, `unknown key "federation"`},
		{"dotted known", "c2s.listne = \":1\"", "c2s.listne", 1, `unknown key "c2s.listne"`},
		{"inline table", "c2s = { listne = \":1\" }", "c2s.listne", 1, `unknown key "c2s.listne"`},
		{"top-level after table", "[log]\nlevel = \"info\"\ndomains = [\"a.org\"]", "log.domains", 3, "is a top-level key: put it before the first [section]"},
		{"key in wrong section", "[auth]\nlisten = \":1\"", "auth.listen", 2, `did you mean "c2s.listen", under [c2s]?`},
		{"syntax", "[c2s]\nlisten = \":5222\"\nmax_depth = = 3", "", 3, "syntax error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errs := loadErrs(t, tt.src+"\n")
			if errs == nil {
				t.Fatal("loaded without error")
			}
			if len(errs.Problems) != 1 {
				t.Fatalf("want 1 problem, got:\n%v", errs)
			}
			p := errs.Problems[0]
			if tt.key != "" && p.Key != tt.key || p.Line != tt.line || !strings.Contains(p.Msg, tt.msg) {
				t.Errorf("got %+v\nwant key %q line %d msg containing %q", p, tt.key, tt.line, tt.msg)
			}
			if prefix := errs.File + ":" + strconv.Itoa(tt.line) + ": "; !strings.HasPrefix(errs.Error(), prefix) {
				t.Errorf("Error() = %q, want prefix %q", errs.Error(), prefix)
			}
		})
	}
}

func TestValidConfigs(t *testing.T) {
	for _, src := range []string{
		"[c2s]\nlisten = \"127.0.0.1:5222\"\ndirect_tls_listen = \"[::1]:5223\"\nrequire_tls = false",
		"[c2s]\nlisten = \"localhost:5222\"\ndirect_tls_listen = \"\"\nrequire_tls = false",
		"[c2s]\nlisten = \"\"\ndirect_tls_listen = \":0\"",
		"domains = [\"127.0.0.1\", \"xn--bcher-kva.de\"]",
		"admins = [\"a.b+c@example.org\"]\n[log]\ntrace_accounts = []",
		"[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"",
		"# comments only\n",
	} {
		if _, errs := loadErrs(t, src+"\n"); errs != nil {
			t.Errorf("%q: %v", src, errs)
		}
	}
}

func TestMultipleProblems(t *testing.T) {
	src := `domains = ["ok.org"]
[c2s]
listne = ":5222"
max_stanza_size = "big"
max_depth = 0
[auth]
scram_iterations = 10
`
	p := writeConfig(t, src)
	_, err := Load(p)
	var errs *Errors
	if !errors.As(err, &errs) {
		t.Fatalf("got %v", err)
	}
	want := []Problem{
		{3, "c2s.listne", `unknown key "c2s.listne" (did you mean "c2s.listen"?)`},
		{4, "c2s.max_stanza_size", `c2s.max_stanza_size: must be an integer, not the string "big"`},
		{5, "c2s.max_depth", "c2s.max_depth: must be positive, not 0"},
		{7, "auth.scram_iterations", "auth.scram_iterations: must be at least 4096, not 10"},
	}
	if !reflect.DeepEqual(errs.Problems, want) {
		t.Fatalf("got  %#v\nwant %#v", errs.Problems, want)
	}
	lines := strings.Split(errs.Error(), "\n")
	if len(lines) != 4 || lines[0] != p+`:3: unknown key "c2s.listne" (did you mean "c2s.listen"?)` {
		t.Errorf("Error() = %q", errs.Error())
	}
}

func TestLoadMissingFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "nope.toml")
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("got %v", err)
	}
}

func TestValidateWithoutFile(t *testing.T) {
	c := Default()
	c.C2S.MaxDepth = 0
	c.Domains = []string{"A.org"}
	err := c.Validate()
	var errs *Errors
	if !errors.As(err, &errs) || len(errs.Problems) != 1 || errs.Problems[0].Line != 0 ||
		err.Error() != "c2s.max_depth: must be positive, not 0" {
		t.Fatalf("got %v", err)
	}
	if c.Domains[0] != "a.org" {
		t.Errorf("domain not lowercased: %q", c.Domains[0])
	}
}

func TestResolve(t *testing.T) {
	c := Default()
	c.Resolve("/etc/imppd")
	if c.DataDir != "/etc/imppd/data" || c.Storage.Database != "/etc/imppd/data/imppd.sqlite" || c.TLS.Cert != "" || c.TLS.Key != "" {
		t.Errorf("default resolved: %q %q %q %q", c.DataDir, c.Storage.Database, c.TLS.Cert, c.TLS.Key)
	}

	c = Default()
	c.DataDir = "/var/lib/imppd/"
	c.TLS.Cert, c.TLS.Key = "certs/x.pem", "/keys/x.key"
	c.Resolve("/etc/imppd")
	if c.DataDir != "/var/lib/imppd" || c.Storage.Database != "/var/lib/imppd/imppd.sqlite" ||
		c.TLS.Cert != "/etc/imppd/certs/x.pem" || c.TLS.Key != "/keys/x.key" {
		t.Errorf("resolved: %q %q %q %q", c.DataDir, c.Storage.Database, c.TLS.Cert, c.TLS.Key)
	}
	c.Storage.Database = "/srv/db.sqlite"
	c.Resolve("/elsewhere") // idempotent on absolute paths
	if c.DataDir != "/var/lib/imppd" || c.Storage.Database != "/srv/db.sqlite" {
		t.Errorf("second Resolve: %q %q", c.DataDir, c.Storage.Database)
	}

	c = Default()
	c.Resolve(".")
	wd, _ := os.Getwd()
	if c.DataDir != filepath.Join(wd, "data") {
		t.Errorf("relative config dir: %q", c.DataDir)
	}

	p := writeConfig(t, "data_dir = \"state\"\n[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n")
	dir := filepath.Dir(p)
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != filepath.Join(dir, "state") || c.Storage.Database != filepath.Join(dir, "state", "imppd.sqlite") ||
		c.TLS.Cert != filepath.Join(dir, "c.pem") || c.TLS.Key != filepath.Join(dir, "k.pem") {
		t.Errorf("Load resolved: %+v", c)
	}
}

func TestDuration(t *testing.T) {
	var d Duration
	if err := d.UnmarshalText([]byte("1h30m")); err != nil || d.Duration != 90*time.Minute {
		t.Errorf("got %v, %v", d, err)
	}
	if err := d.UnmarshalText([]byte("soon")); err == nil {
		t.Error("accepted \"soon\"")
	}
	if b, _ := d.MarshalText(); string(b) != "1h30m0s" {
		t.Errorf("MarshalText = %q", b)
	}
}

func TestHelpers(t *testing.T) {
	for level, want := range map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError} {
		if got := (LogConfig{Level: level}).SlogLevel(); got != want {
			t.Errorf("%s: %v", level, got)
		}
	}
	if (TLSConfig{MinVersion: "1.2"}).TLSMinVersion() != tls.VersionTLS12 {
		t.Error("1.2")
	}
}

func TestErrorsFormat(t *testing.T) {
	e := &Errors{Problems: []Problem{{Line: 2, Msg: "a"}, {Msg: "b"}}}
	if e.Error() != "line 2: a\nb" {
		t.Errorf("%q", e.Error())
	}
	e.File = "f.toml"
	if e.Error() != "f.toml:2: a\nf.toml: b" {
		t.Errorf("%q", e.Error())
	}
}
