// Package config loads and validates imppd's TOML configuration.
package config

import (
	"cmp"
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/imppd/imppd"
)

// Config is the whole configuration; field tags are the keys of config.toml.
type Config struct {
	Domains      []string           `toml:"domains"`
	DataDir      string             `toml:"data_dir"`
	Admins       []string           `toml:"admins"`
	Log          LogConfig          `toml:"log"`
	C2S          C2SConfig          `toml:"c2s"`
	Auth         AuthConfig         `toml:"auth"`
	TLS          TLSConfig          `toml:"tls"`
	Storage      StorageConfig      `toml:"storage"`
	Limits       LimitsConfig       `toml:"limits"`
	Registration RegistrationConfig `toml:"registration"`
	Archive      ArchiveConfig      `toml:"archive"`
	XEPs         XEPsConfig         `toml:"xeps"`

	file  string         // file Load read, for messages
	lines map[string]int // dotted key -> line in file
}

// LogConfig holds the log section.
type LogConfig struct {
	Level         string   `toml:"level"`  // debug|info|warn|error
	Format        string   `toml:"format"` // text|json
	TraceStanzas  bool     `toml:"trace_stanzas"`
	TraceAccounts []string `toml:"trace_accounts"` // bare JIDs
}

// C2SConfig holds the c2s section: client connections.
type C2SConfig struct {
	Listen              string   `toml:"listen"`            // STARTTLS; "" disables
	DirectTLSListen     string   `toml:"direct_tls_listen"` // XEP-0368; "" disables
	RequireTLS          bool     `toml:"require_tls"`
	ResourceConflict    string   `toml:"resource_conflict"` // ConflictReplace|ConflictRefuse
	MaxStanzaSize       int      `toml:"max_stanza_size"`   // bytes, after auth
	MaxPreauthSize      int      `toml:"max_preauth_size"`  // bytes, before auth
	MaxDepth            int      `toml:"max_depth"`
	MaxConnections      int      `toml:"max_connections"`
	MaxConnectionsPerIP int      `toml:"max_connections_per_ip"`
	HandshakeTimeout    Duration `toml:"handshake_timeout"`
	IdleTimeout         Duration `toml:"idle_timeout"`
	PingTimeout         Duration `toml:"ping_timeout"`
	ResumeTimeout       Duration `toml:"resume_timeout"`
	SendQueue           int      `toml:"send_queue"` // stanzas
}

// Values of C2SConfig.ResourceConflict.
const (
	ConflictReplace = "replace" // new session wins
	ConflictRefuse  = "refuse"  // new bind fails
)

// AuthConfig holds the auth section.
type AuthConfig struct {
	AllowPlain            bool     `toml:"allow_plain"` // only ever inside TLS
	ScramIterations       int      `toml:"scram_iterations"`
	MaxFailuresPerStream  int      `toml:"max_failures_per_stream"`
	MaxFailuresPerIP      int      `toml:"max_failures_per_ip"`
	MaxFailuresPerAccount int      `toml:"max_failures_per_account"`
	FailureWindow         Duration `toml:"failure_window"`
}

// TLSConfig holds the tls section.
type TLSConfig struct {
	Cert       string `toml:"cert"` // PEM path; "" with Key "" = self-signed
	Key        string `toml:"key"`
	MinVersion string `toml:"min_version"` // "1.2"|"1.3"
}

// StorageConfig holds the storage section.
type StorageConfig struct {
	Database    string `toml:"database"`    // SQLite file
	Synchronous string `toml:"synchronous"` // full|normal
}

// LimitsConfig holds the limits section.
type LimitsConfig struct {
	OfflineQuota int `toml:"offline_quota"` // messages per offline user
}

// RegistrationConfig holds the registration section.
type RegistrationConfig struct {
	Enabled bool `toml:"enabled"` // XEP-0077 in-band registration
}

type ArchiveConfig struct {
	RetentionDays int `toml:"retention_days"` // 0: forever
}

type XEPsConfig struct {
	Disabled []int `toml:"disabled"` // XEP numbers switched off
}

// Duration is a time.Duration written as a string like "30s" or "5m".
type Duration struct {
	time.Duration
}

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("invalid duration %q (write e.g. \"90s\", \"5m\", \"1h30m\")", b)
	}
	d.Duration = v
	return nil
}

// MarshalText writes the duration as a string like "5m0s".
func (d Duration) MarshalText() ([]byte, error) {
	return []byte(d.Duration.String()), nil
}

// Default returns the embedded config.toml decoded; it is not yet resolved
// (call Resolve with the working directory) nor validated.
func Default() *Config {
	c := &Config{}
	if _, probs := decode(imppd.DefaultConfig, c, true); len(probs) > 0 {
		panic("config: embedded config.toml: " + (&Errors{File: "config.toml", Problems: probs}).Error())
	}
	return c
}

// Load reads the file at path over Default(), validates the result and
// resolves its paths against the file's directory. All problems found are
// returned together as *Errors.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c := Default()
	c.file = path
	lines, probs := decode(data, c, false)
	if lines == nil { // syntax error: nothing decoded
		return nil, &Errors{File: path, Problems: probs}
	}
	c.lines = lines
	probs = append(probs, c.validate()...)
	if len(probs) > 0 {
		sortProblems(probs)
		return nil, &Errors{File: path, Problems: probs}
	}
	c.Resolve(filepath.Dir(path))
	return c, nil
}

// Resolve makes DataDir, TLS.Cert and TLS.Key absolute relative to
// configDir, and Storage.Database relative to DataDir. Empty paths stay empty.
func (c *Config) Resolve(configDir string) {
	base, err := filepath.Abs(configDir)
	if err != nil {
		base = configDir
	}
	c.DataDir = resolve(base, c.DataDir)
	c.TLS.Cert = resolve(base, c.TLS.Cert)
	c.TLS.Key = resolve(base, c.TLS.Key)
	c.Storage.Database = resolve(c.DataDir, c.Storage.Database)
}

func resolve(base, p string) string {
	if p == "" {
		return ""
	}
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(base, p)
}

// SlogLevel is Level as a slog.Level (info when unknown).
func (l LogConfig) SlogLevel() slog.Level {
	switch l.Level {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// TLSMinVersion is MinVersion as a crypto/tls constant (TLS 1.2 when unknown).
func (t TLSConfig) TLSMinVersion() uint16 {
	if t.MinVersion == "1.3" {
		return tls.VersionTLS13
	}
	return tls.VersionTLS12
}

// Problem is one thing wrong with a configuration file. Msg names the key.
type Problem struct {
	Line int    // 1-based line in the file; 0 when unknown (key not in the file)
	Key  string // dotted key, e.g. "c2s.max_stanza_size"; "" for syntax errors
	Msg  string
}

// Errors lists every problem found in one file, ordered by line.
type Errors struct {
	File     string
	Problems []Problem
}

// Error renders one "file:line: message" per problem.
func (e *Errors) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		switch {
		case e.File != "" && p.Line > 0:
			fmt.Fprintf(&b, "%s:%d: ", e.File, p.Line)
		case e.File != "":
			fmt.Fprintf(&b, "%s: ", e.File)
		case p.Line > 0:
			fmt.Fprintf(&b, "line %d: ", p.Line)
		}
		b.WriteString(p.Msg)
	}
	return b.String()
}

// sortProblems orders by line, keeping problems without a line last.
func sortProblems(ps []Problem) {
	slices.SortStableFunc(ps, func(a, b Problem) int {
		la, lb := a.Line, b.Line
		if la == 0 {
			la = int(^uint(0) >> 1)
		}
		if lb == 0 {
			lb = int(^uint(0) >> 1)
		}
		return cmp.Compare(la, lb)
	})
}
