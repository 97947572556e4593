package config

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
)

// Validate checks every value and normalises domains and JIDs to lower case.
// It returns *Errors listing all problems, or nil.
func (c *Config) Validate() error {
	if probs := c.validate(); len(probs) > 0 {
		return &Errors{File: c.file, Problems: probs}
	}
	return nil
}

type validator struct {
	c     *Config
	probs []Problem
}

// add records a problem with key, at the line of the first of key and
// alsoAt that the file sets.
func (v *validator) add(key string, alsoAt []string, format string, args ...any) {
	line := 0
	for _, k := range append([]string{key}, alsoAt...) {
		if l := v.c.lines[k]; l > 0 {
			line = l
			break
		}
	}
	v.probs = append(v.probs, Problem{Line: line, Key: key, Msg: key + ": " + fmt.Sprintf(format, args...)})
}

func (v *validator) oneOf(key, val string, allowed ...string) {
	if !slices.Contains(allowed, val) {
		v.add(key, nil, "%q is not one of %s", val, quoteAll(allowed))
	}
}

func (v *validator) positive(key string, n int) {
	if n <= 0 {
		v.add(key, nil, "must be positive, not %d", n)
	}
}

func (v *validator) positiveDuration(key string, d Duration) {
	if d.Duration <= 0 {
		v.add(key, nil, "must be a positive duration, not %q", d.String())
	}
}

func (v *validator) jids(key string, list []string) {
	for i, s := range list {
		j, err := bareJID(s)
		if err != nil {
			v.add(key, nil, "%q: %v", s, err)
			continue
		}
		list[i] = j
	}
}

func (c *Config) validate() []Problem {
	v := &validator{c: c}

	if len(c.Domains) == 0 {
		v.add("domains", nil, "at least one domain is required")
	}
	for i, d := range c.Domains {
		low := strings.ToLower(d)
		if err := checkDomain(low); err != nil {
			v.add("domains", nil, "%q: %v", d, err)
			continue
		}
		if slices.Contains(c.Domains[:i], low) {
			v.add("domains", nil, "%q is listed twice", d)
		}
		c.Domains[i] = low
	}
	if c.DataDir == "" {
		v.add("data_dir", nil, "must not be empty (use \".\" for the config file's directory)")
	}
	v.jids("admins", c.Admins)

	v.oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	v.oneOf("log.format", c.Log.Format, "text", "json")
	v.jids("log.trace_accounts", c.Log.TraceAccounts)

	s := &c.C2S
	listeners := []struct{ key, addr string }{{"c2s.listen", s.Listen}, {"c2s.direct_tls_listen", s.DirectTLSListen}}
	enabled := 0
	for _, l := range listeners {
		if l.addr == "" {
			continue
		}
		enabled++
		loop, err := checkListen(l.addr)
		if err != nil {
			v.add(l.key, nil, "%q: %v", l.addr, err)
		} else if !s.RequireTLS && !loop {
			v.add("c2s.require_tls", []string{l.key}, "false is only allowed when every c2s listener is on a loopback address, but %s = %q is not", l.key, l.addr)
		}
	}
	if enabled == 0 {
		v.add("c2s.listen", []string{"c2s.direct_tls_listen"}, "no client listener: set c2s.listen or c2s.direct_tls_listen")
	}
	v.oneOf("c2s.resource_conflict", s.ResourceConflict, ConflictReplace, ConflictRefuse)
	v.positive("c2s.max_stanza_size", s.MaxStanzaSize)
	v.positive("c2s.max_preauth_size", s.MaxPreauthSize)
	if s.MaxPreauthSize > s.MaxStanzaSize && s.MaxStanzaSize > 0 {
		v.add("c2s.max_preauth_size", []string{"c2s.max_stanza_size"}, "%d exceeds c2s.max_stanza_size (%d)", s.MaxPreauthSize, s.MaxStanzaSize)
	}
	v.positive("c2s.max_depth", s.MaxDepth)
	v.positive("c2s.max_connections", s.MaxConnections)
	v.positive("c2s.max_connections_per_ip", s.MaxConnectionsPerIP)
	v.positiveDuration("c2s.handshake_timeout", s.HandshakeTimeout)
	v.positiveDuration("c2s.idle_timeout", s.IdleTimeout)
	v.positiveDuration("c2s.ping_timeout", s.PingTimeout)
	v.positiveDuration("c2s.resume_timeout", s.ResumeTimeout)
	v.positive("c2s.send_queue", s.SendQueue)

	a := &c.Auth
	if a.ScramIterations < 4096 {
		v.add("auth.scram_iterations", nil, "must be at least 4096, not %d", a.ScramIterations)
	}
	v.positive("auth.max_failures_per_stream", a.MaxFailuresPerStream)
	v.positive("auth.max_failures_per_ip", a.MaxFailuresPerIP)
	v.positive("auth.max_failures_per_account", a.MaxFailuresPerAccount)
	v.positiveDuration("auth.failure_window", a.FailureWindow)

	switch {
	case c.TLS.Cert != "" && c.TLS.Key == "":
		v.add("tls.key", []string{"tls.cert"}, "must be set when tls.cert is (or leave both empty for a generated self-signed certificate)")
	case c.TLS.Cert == "" && c.TLS.Key != "":
		v.add("tls.cert", []string{"tls.key"}, "must be set when tls.key is (or leave both empty for a generated self-signed certificate)")
	}
	v.oneOf("tls.min_version", c.TLS.MinVersion, "1.2", "1.3")

	if c.Storage.Database == "" {
		v.add("storage.database", nil, "must not be empty")
	}
	v.oneOf("storage.synchronous", c.Storage.Synchronous, "full", "normal")

	v.positive("limits.offline_quota", c.Limits.OfflineQuota)
	if c.Archive.RetentionDays < 0 {
		v.add("archive.retention_days", nil, "must be 0 (forever) or a number of days, not %d", c.Archive.RetentionDays)
	}
	for _, n := range c.XEPs.Disabled {
		if n <= 0 {
			v.add("xeps.disabled", nil, "%d is not a XEP number", n)
		}
	}

	sortProblems(v.probs)
	return v.probs
}

// checkDomain accepts lowercase DNS names (and IP literals, which JIDs allow).
func checkDomain(d string) error {
	switch {
	case d == "":
		return fmt.Errorf("empty domain")
	case len(d) > 253:
		return fmt.Errorf("longer than 253 characters")
	}
	for _, r := range d {
		if r > 0x7f {
			return fmt.Errorf("not ASCII: write it in its punycode (xn--) form")
		}
	}
	for _, label := range strings.Split(d, ".") {
		switch {
		case label == "":
			return fmt.Errorf("empty label (leading, trailing or double dot)")
		case len(label) > 63:
			return fmt.Errorf("label %q longer than 63 characters", label)
		case label[0] == '-' || label[len(label)-1] == '-':
			return fmt.Errorf("label %q starts or ends with '-'", label)
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				return fmt.Errorf("invalid character %q (letters, digits, '-' and '.' only)", r)
			}
		}
	}
	return nil
}

// bareJID checks the local@domain shape and returns it lowercased.
func bareJID(s string) (string, error) {
	s = strings.ToLower(s)
	if strings.Contains(s, "/") {
		return "", fmt.Errorf("must be a bare JID (user@domain) without /resource")
	}
	local, domain, ok := strings.Cut(s, "@")
	if !ok || local == "" {
		return "", fmt.Errorf("must be a bare JID like user@example.org")
	}
	if len(local) > 1023 {
		return "", fmt.Errorf("local part longer than 1023 bytes")
	}
	for _, r := range local {
		if strings.ContainsRune("\"&'/:<>@", r) || r <= ' ' || r == 0x7f {
			return "", fmt.Errorf("invalid character %q in local part", r)
		}
	}
	if err := checkDomain(domain); err != nil {
		return "", fmt.Errorf("domain: %v", err)
	}
	return s, nil
}

// checkListen parses host:port and reports whether host is loopback.
func checkListen(addr string) (loopback bool, err error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return false, fmt.Errorf("must be host:port, e.g. \":5222\" or \"127.0.0.1:5222\"")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return false, fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	if host == "" {
		return false, nil // all interfaces
	}
	if ip := net.ParseIP(host); ip != nil {
		return ip.IsLoopback(), nil
	}
	host = strings.ToLower(host)
	if err := checkDomain(host); err != nil {
		return false, fmt.Errorf("host: %v", err)
	}
	return host == "localhost", nil
}

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}
