package e2e

// A private Prosody (Debian's prosody package) as a reference server for
// differential runs: the same clients and scenarios run against imppd and
// against Prosody, and their observations are compared (diff_test.go).
//
// Each instance gets its own configuration, data directory, self-signed
// certificate and log under a temporary directory, listens on a loopback
// port chosen at start, and runs in the foreground ("prosody --config FILE
// -F") as a child of the test process: never the system instance. Accounts
// are created with "prosodyctl --config FILE register". "prosody --version"
// is never run: it does not exist and starts the system instance.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// ProsodyModules are the modules the reference Prosody loads besides its
// core ones (c2s, presence, message, iq, offline): the features imppd has
// (roster, disco, ping, version, time, last activity, carbons, blocking,
// CSI, stream management, ad-hoc commands, XEP-0313 archives, which also
// put XEP-0359 stanza-ids on messages). Debian's stock configuration
// also loads mod_limits, which rate-limits clients: it is left out, and so
// are s2s (imppd does not federate), registration and HTTP.
var ProsodyModules = []string{
	"roster", "saslauth", "tls", "disco", "ping", "version", "time", "uptime",
	"lastactivity", "carbons", "blocklist", "csi_simple", "smacks", "adhoc", "mam",
}

// ProsodyDiscoModules are loaded on top of ProsodyModules by the service
// discovery comparison (diff_disco_test.go), which compares where each
// server advertises each feature: the rest of the modules of Debian's
// Prosody 0.12.3 that match an extension imppd has or is building
// (XEP-0133 admin commands, XEP-0077 registration, off as in imppd by
// allow_registration = false, vCards, PEP, private XML storage,
// bookmarks). The other scenarios leave them out: PEP and vCard change
// presence handling, which they compare.
var ProsodyDiscoModules = []string{
	"admin_adhoc", "register", "vcard_legacy", "pep", "private", "bookmarks",
}

// ProsodyOptions configure one Prosody instance.
type ProsodyOptions struct {
	Domain string // default "localhost"
	Users  []User // created with prosodyctl before the start
	// Modules replaces ProsodyModules when not nil.
	Modules []string
	// Trace logs at debug level, every stanza included (also forced on by
	// IMPPD_E2E_TRACE=1).
	Trace bool
	// Extra is appended to the global section of the configuration (Lua).
	Extra string
}

// Prosody is a running (or stopped) private Prosody.
type Prosody struct {
	opts ProsodyOptions

	Dir        string // temporary directory holding everything below
	ConfigPath string
	DataDir    string // data_path
	Domain     string
	Version    string // e.g. "0.12.3", from "prosodyctl about"

	// Filled in by every start: the address changes on each start.
	Addr       string // c2s (STARTTLS) listener, "127.0.0.1:port"
	CACertPath string // the self-signed certificate, its own CA
	CACertPEM  []byte
	CAPool     *x509.CertPool

	process
	port int
}

// ProsodyStartTimeout bounds one start: from exec to the c2s listener.
const ProsodyStartTimeout = 30 * time.Second

// ProsodyPaths returns the paths of prosody and prosodyctl, or an error
// saying what is missing.
func ProsodyPaths() (prosody, prosodyctl string, err error) {
	var missing []string
	if prosody, err = exec.LookPath("prosody"); err != nil {
		missing = append(missing, "prosody")
	}
	if prosodyctl, err = exec.LookPath("prosodyctl"); err != nil {
		missing = append(missing, "prosodyctl")
	}
	if len(missing) > 0 {
		return "", "", fmt.Errorf("%s not found in PATH (Debian: apt-get install prosody; e2e/clients/setup.sh does it)", strings.Join(missing, " and "))
	}
	return prosody, prosodyctl, nil
}

// StartProsody configures and starts a private Prosody for the test; it
// is stopped (and its log shown if the test failed) when the test ends.
func StartProsody(t testing.TB, o ProsodyOptions) *Prosody {
	t.Helper()
	if _, _, err := ProsodyPaths(); err != nil {
		t.Fatalf("e2e: %v", err)
	}
	if o.Domain == "" {
		o.Domain = "localhost"
	}
	if o.Modules == nil {
		o.Modules = ProsodyModules
	}
	if os.Getenv("IMPPD_E2E_TRACE") == "1" {
		o.Trace = true
	}
	dir := t.TempDir()
	p := &Prosody{
		opts:       o,
		Dir:        dir,
		ConfigPath: filepath.Join(dir, "prosody.cfg.lua"),
		DataDir:    filepath.Join(dir, "data"),
		Domain:     o.Domain,
		CACertPath: filepath.Join(dir, "tls", o.Domain+".crt"),
		process:    newProcess("prosody"),
	}
	if err := p.prepare(); err != nil {
		t.Fatalf("e2e: prosody: %v", err)
	}
	t.Cleanup(func() { p.cleanup(t) })
	for _, u := range o.Users {
		if err := p.AddUser(u.JID, u.Password); err != nil {
			t.Fatalf("e2e: %v", err)
		}
	}
	if err := p.start(); err != nil {
		t.Fatalf("e2e: %v\nprosody log:\n%s", err, p.log.String())
	}
	return p
}

// prepare creates the directories, the certificate and a first
// configuration, and reads the version.
func (p *Prosody) prepare() error {
	for _, d := range []string{p.DataDir, filepath.Join(p.Dir, "tls")} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return err
		}
	}
	certPEM, keyPEM, err := selfSigned(p.Domain)
	if err != nil {
		return err
	}
	if err := os.WriteFile(p.CACertPath, certPEM, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(p.keyPath(), keyPEM, 0o600); err != nil {
		return err
	}
	p.CACertPEM = certPEM
	p.CAPool = x509.NewCertPool()
	p.CAPool.AppendCertsFromPEM(certPEM)
	if err := p.writeConfig(0); err != nil {
		return err
	}
	out, err := p.ctl("about")
	if err != nil {
		return fmt.Errorf("prosodyctl about: %v\n%s", err, out)
	}
	if f := strings.Fields(out); len(f) >= 2 && f[0] == "Prosody" {
		p.Version = f[1]
	}
	return nil
}

func (p *Prosody) keyPath() string { return filepath.Join(p.Dir, "tls", p.Domain+".key") }

// config renders the configuration for a c2s port.
func (p *Prosody) config(port int) string {
	q := strconv.Quote
	var b strings.Builder
	b.WriteString("-- generated by the imppd e2e harness (e2e/prosody.go); run with prosody --config THIS -F\n")
	fmt.Fprintf(&b, "pidfile = %s\ndata_path = %s\n", q(filepath.Join(p.Dir, "prosody.pid")), q(p.DataDir))
	if os.Geteuid() == 0 {
		b.WriteString("run_as_root = true\n")
	}
	b.WriteString("daemonize = false\n")
	b.WriteString("interfaces = { \"127.0.0.1\" }\nlocal_interfaces = { \"127.0.0.1\" }\n")
	fmt.Fprintf(&b, "c2s_ports = { %d }\n", port)
	b.WriteString("c2s_direct_tls_ports = { }\nlegacy_ssl_ports = { }\ns2s_ports = { }\ns2s_direct_tls_ports = { }\n" +
		"component_ports = { }\nhttp_ports = { }\nhttps_ports = { }\n")
	b.WriteString("network_settings = { nagle = false }\n")
	b.WriteString("modules_enabled = {")
	for _, m := range p.opts.Modules {
		fmt.Fprintf(&b, " %s;", q(m))
	}
	b.WriteString(" }\nmodules_disabled = { \"s2s\"; \"limits\" }\n")
	b.WriteString("authentication = \"internal_hashed\"\nstorage = \"internal\"\n")
	b.WriteString("c2s_require_encryption = true\nallow_registration = false\nadmins = { }\n")
	fmt.Fprintf(&b, "certificates = %s\n", q(filepath.Join(p.Dir, "tls")))
	level := "info"
	if p.opts.Trace {
		level = "debug"
	}
	fmt.Fprintf(&b, "log = { { levels = { min = %s }, to = \"stdout\" } }\n", q(level))
	if p.opts.Extra != "" {
		b.WriteString(p.opts.Extra + "\n")
	}
	fmt.Fprintf(&b, "\nVirtualHost %s\n\tssl = { certificate = %s; key = %s }\n", q(p.Domain), q(p.CACertPath), q(p.keyPath()))
	return b.String()
}

func (p *Prosody) writeConfig(port int) error {
	return os.WriteFile(p.ConfigPath, []byte(p.config(port)), 0o600)
}

// ctl runs prosodyctl with this instance's configuration.
func (p *Prosody) ctl(args ...string) (string, error) {
	_, ctl, err := ProsodyPaths()
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), ProsodyStartTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, ctl, append([]string{"--config", p.ConfigPath}, args...)...)
	cmd.Dir = p.Dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// AddUser creates an account with prosodyctl; it works while the server
// runs too.
func (p *Prosody) AddUser(jid, password string) error {
	user, host, ok := strings.Cut(jid, "@")
	if !ok || host != p.Domain {
		return fmt.Errorf("prosody: account %q is not user@%s", jid, p.Domain)
	}
	out, err := p.ctl("register", user, host, password)
	if err != nil {
		return fmt.Errorf("prosodyctl register %s %s: %v\n%s", user, host, err, out)
	}
	return nil
}

// freePort returns a loopback port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// start picks a free port, starts prosody and waits until it listens. A
// port taken between the choice and prosody's bind is retried with
// another one.
func (p *Prosody) start() error {
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		var port int
		if port, err = freePort(); err != nil {
			return err
		}
		var portTaken bool
		if portTaken, err = p.startOn(port); err == nil || !portTaken {
			return err
		}
		p.log.Append(fmt.Sprintf("=== e2e: port %d was taken; trying another ===", port))
	}
	return err
}

// startOn starts prosody on port; portTaken reports a failed bind.
func (p *Prosody) startOn(port int) (portTaken bool, err error) {
	prosody, _, err := ProsodyPaths()
	if err != nil {
		return false, err
	}
	if err := p.writeConfig(port); err != nil {
		return false, err
	}
	cmd := exec.Command(prosody, "--config", p.ConfigPath, "-F")
	cmd.Dir = p.Dir
	from, exited, err := p.process.start(cmd)
	if err != nil {
		return false, err
	}
	p.port = port

	// Prosody logs "Activated service 'c2s' on [127.0.0.1]:PORT" once it
	// listens, "Failed to open server port PORT ..." when the bind fails.
	listening := fmt.Sprintf("Activated service 'c2s' on [127.0.0.1]:%d", port)
	failed := fmt.Sprintf("Failed to open server port %d", port)
	line, err := p.log.WaitLine(from, ProsodyStartTimeout, exited, func(l string) bool {
		return strings.Contains(l, listening) || strings.Contains(l, failed) || strings.Contains(l, "Activated service 'c2s' on no ports")
	})
	if err == nil && !strings.Contains(line, listening) {
		err = fmt.Errorf("prosody could not listen: %s", line)
		portTaken = strings.Contains(line, failed)
	}
	if err == nil {
		// The listener is up: one connection proves it is prosody's.
		p.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		err = p.checkConnect()
	}
	if err != nil {
		p.Kill9()
		return portTaken, fmt.Errorf("prosody did not get ready: %w", err)
	}
	return false, nil
}

// checkConnect opens a stream to the listener and expects Prosody's
// answer: a stream header from the domain.
func (p *Prosody) checkConnect() error {
	c, err := net.DialTimeout("tcp", p.Addr, IOTimeout)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(IOTimeout))
	if _, err := c.Write([]byte(StreamHeader(p.Domain))); err != nil {
		return err
	}
	buf := make([]byte, 0, 4096)
	tmp := make([]byte, 1024)
	for !strings.Contains(string(buf), "features") {
		n, err := c.Read(tmp)
		buf = append(buf, tmp[:n]...)
		if err != nil {
			return fmt.Errorf("reading the stream header from %s: %v (read %q)", p.Addr, err, buf)
		}
	}
	if !strings.Contains(string(buf), "from='"+p.Domain+"'") && !strings.Contains(string(buf), `from="`+p.Domain+`"`) {
		return fmt.Errorf("%s answered a stream to %s with %q", p.Addr, p.Domain, buf)
	}
	_, _ = c.Write([]byte("</stream:stream>"))
	return nil
}

// Server returns a *Server describing this Prosody's current address,
// domain and certificate, so that the Go clients (Server.Connect,
// Server.DialRaw) can talk to it. Only those fields are set: it is not an
// imppd process (no direct TLS listener, no log). Call it again after a
// restart.
func (p *Prosody) Server() *Server {
	return &Server{
		Dir: p.Dir, ConfigPath: p.ConfigPath, DataDir: p.DataDir,
		Domains: []string{p.Domain}, Domain: p.Domain,
		Addr: p.Addr, CACertPath: p.CACertPath, CACertPEM: p.CACertPEM, CAPool: p.CAPool,
		process: newProcess("imppd"),
	}
}

// Stop sends SIGTERM and waits for prosody to exit. Prosody 0.12 can hang
// in its shutdown when a client connection closes at the same moment
// (mod_c2s calls close on a session being destroyed), so Stop first waits
// briefly for every client connection prosody logged to be logged as
// closed, and kills prosody with SIGKILL if it has not exited after
// ProsodyStopGrace: the reference server's shutdown is not under test, so
// that is logged, not returned. Stopping a stopped server returns nil.
func (p *Prosody) Stop() error {
	if !p.Running() {
		return nil
	}
	p.waitIdle(2 * time.Second)
	// Killed (prosody's shutdown is not under test) or ended by SIGTERM:
	// not an error.
	killed, err := p.stop(ProsodyStopGrace)
	var ee *exec.ExitError
	if killed || errors.As(err, &ee) && !ee.Exited() {
		return nil
	}
	return err
}

// ProsodyStopGrace is how long Stop waits after SIGTERM.
const ProsodyStopGrace = 10 * time.Second

// waitIdle waits up to timeout until prosody has logged as many client
// disconnections as connections.
func (p *Prosody) waitIdle(timeout time.Duration) {
	p.process.mu.Lock()
	from := p.from
	p.process.mu.Unlock()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		lines, changed := p.log.snapshot()
		open := 0
		for _, l := range lines[min(from, len(lines)):] {
			switch {
			case strings.HasSuffix(l, "\tClient connected"):
				open++
			case strings.Contains(l, "\tClient disconnected"):
				open--
			}
		}
		if open <= 0 {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			return
		}
	}
}

// Restart stops prosody (SIGTERM) unless it is stopped already, and
// starts it again on the same configuration and data, on a new port.
func (p *Prosody) Restart(t testing.TB) {
	t.Helper()
	if err := p.Stop(); err != nil {
		t.Errorf("e2e: stopping prosody for a restart: %v", err)
	}
	p.log.Append("=== e2e: restarting ===")
	if err := p.start(); err != nil {
		t.Fatalf("e2e: prosody restart: %v\nprosody log:\n%s", err, p.log.String())
	}
}

// Tracebacks returns the Lua tracebacks (internal errors) in the log.
func (p *Prosody) Tracebacks() []string {
	var out []string
	for _, l := range p.log.Lines() {
		if strings.Contains(l, "Traceback[") {
			out = append(out, l)
		}
	}
	return out
}

func (p *Prosody) cleanup(t testing.TB) {
	if err := p.Stop(); err != nil {
		t.Errorf("e2e: %v", err)
	}
	if tb := p.Tracebacks(); len(tb) > 0 {
		t.Logf("e2e: prosody logged %d internal errors, e.g. %s", len(tb), tb[0])
	}
	showFailure(t, "prosody", p.ConfigPath, p.config(p.port), p.log, "prosody.log")
}

// selfSigned makes an ECDSA P-256 certificate for domain that is its own
// CA, so that clients can trust the file directly.
func selfSigned(domain string) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: domain, Organization: []string{"imppd e2e reference prosody"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(7 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{domain},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), nil
}
