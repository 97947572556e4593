// Package e2e drives the real imppd binary over TCP with real clients.
//
// The harness builds cmd/imppd once per test process (with -race when the
// test binary itself is built with -race), starts it with a generated
// configuration on loopback ports chosen by the kernel, creates accounts
// with "imppd user add", and waits for the server's "ready" log line. Three
// kinds of client talk to it:
//
//   - Client: a mellium.im/xmpp session (STARTTLS or direct TLS, SASL,
//     bind) whose incoming stanzas are decoded into Elements on a channel;
//   - Raw: a socket driven by hand, for bad input and wire-level checks;
//   - third-party clients (slixmpp, xmpp.js) under e2e/clients, run by the
//     tests as subprocesses.
//
// Tests call Main from TestMain so the built binary is removed at the end.
// Set IMPPD_BIN to test a prebuilt binary instead, IMPPD_E2E_TRACE=1 to
// log every stanza, and IMPPD_E2E_ARTIFACTS to a directory that keeps the
// log and configuration of every server whose test failed.
package e2e

import (
	"bufio"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// RaceEnabled reports whether this binary was built with -race; the server
// binary is then built with -race too.
const RaceEnabled = raceEnabled

// Timeouts used throughout the harness. They are generous because the race
// detector makes the server several times slower.
const (
	StartTimeout = 60 * time.Second // from exec to the "ready" log line
	StopTimeout  = 20 * time.Second // from SIGTERM to exit (the server allows itself 10s)
	IOTimeout    = 15 * time.Second // one expected network event
	BuildTimeout = 10 * time.Minute // go build of cmd/imppd (cgo sqlite; -race)
)

var build struct {
	once sync.Once
	dir  string // temporary directory holding the binary, removed by Main
	path string
	err  error
}

// Binary returns the path of the imppd binary under test, building it on
// first use: from $IMPPD_BIN when set, else "go build ./cmd/imppd" in this
// module (with -race when RaceEnabled).
func Binary() (string, error) {
	build.once.Do(func() {
		if p := os.Getenv("IMPPD_BIN"); p != "" {
			build.path, build.err = filepath.Abs(p)
			return
		}
		root, err := ModuleRoot()
		if err != nil {
			build.err = err
			return
		}
		if build.dir, err = os.MkdirTemp("", "imppd-e2e-bin-"); err != nil {
			build.err = err
			return
		}
		build.path = filepath.Join(build.dir, "imppd")
		args := []string{"build", "-o", build.path}
		if RaceEnabled {
			args = append(args, "-race")
		}
		args = append(args, "./cmd/imppd")
		ctx, cancel := context.WithTimeout(context.Background(), BuildTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			build.err = fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	})
	return build.path, build.err
}

// ModuleRoot returns the directory of the imppd module (the parent of the
// directory holding this file).
func ModuleRoot() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("e2e: cannot locate the source directory")
	}
	root := filepath.Dir(filepath.Dir(file))
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		return "", fmt.Errorf("e2e: module root: %w", err)
	}
	return root, nil
}

// Main runs the tests and removes the binary built for them. Call it from
// TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if build.dir != "" {
		_ = os.RemoveAll(build.dir)
	}
	os.Exit(code)
}

// User is an account created before the server starts.
type User struct {
	JID      string // bare JID, user@domain
	Password string
}

// Options configure one server. Zero values keep the server's defaults
// (see config.toml), except that listeners are on 127.0.0.1 with kernel-
// chosen ports, logs are JSON at debug level and SCRAM uses the minimum
// of 4096 iterations to keep logins fast.
type Options struct {
	Domains []string // default ["localhost"]
	Users   []User
	Admins  []string // bare JIDs with admin rights (XEP-0133)

	NoRequireTLS     bool   // c2s.require_tls = false (allowed: listeners are loopback)
	ResourceConflict string // c2s.resource_conflict: "replace" or "refuse"
	DisablePlain     bool   // auth.allow_plain = false
	TLSMinVersion    string // tls.min_version: "1.2" or "1.3"

	MaxStanzaSize       int // c2s.max_stanza_size
	MaxPreauthSize      int // c2s.max_preauth_size
	MaxDepth            int // c2s.max_depth
	MaxConnections      int // c2s.max_connections
	MaxConnectionsPerIP int // c2s.max_connections_per_ip

	Trace bool // log.trace_stanzas (also forced on by IMPPD_E2E_TRACE=1)

	// Extra is appended verbatim to the generated file: start it with a
	// [section] header, and do not repeat a key the generated file sets.
	Extra string
}

// Server is a running (or stopped) imppd process.
type Server struct {
	t    testing.TB
	opts Options

	Dir        string   // temporary directory holding config.toml and data/
	ConfigPath string   // the generated configuration file
	DataDir    string   // data_dir
	Domains    []string // served domains
	Domain     string   // Domains[0]

	// Filled in by every start: addresses from the ready line and the
	// certificate generated on first start.
	Addr          string // STARTTLS listener, "127.0.0.1:port"
	DirectTLSAddr string // XEP-0368 listener
	CACertPath    string // PEM; the self-signed certificate is its own CA
	CACertPEM     []byte
	CAPool        *x509.CertPool

	process
}

// Start configures and starts a server for the test; it is stopped (and
// its log shown if the test failed) when the test ends.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Fatalf("e2e: building imppd: %v", err)
	}
	if len(o.Domains) == 0 {
		o.Domains = []string{"localhost"}
	}
	if os.Getenv("IMPPD_E2E_TRACE") == "1" {
		o.Trace = true
	}
	dir := t.TempDir()
	s := &Server{
		t: t, opts: o,
		Dir:        dir,
		ConfigPath: filepath.Join(dir, "config.toml"),
		DataDir:    filepath.Join(dir, "data"),
		Domains:    o.Domains,
		Domain:     o.Domains[0],
		process:    newProcess("imppd"),
	}
	if err := os.WriteFile(s.ConfigPath, []byte(s.config()), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.cleanup(t) })
	for _, u := range o.Users {
		if err := s.AddUser(bin, u.JID, u.Password); err != nil {
			t.Fatalf("e2e: %v", err)
		}
	}
	if err := s.start(bin); err != nil {
		t.Fatalf("e2e: %v\nserver log:\n%s", err, s.log.String())
	}
	return s
}

// config renders the configuration file.
func (s *Server) config() string {
	o := s.opts
	var b strings.Builder
	q := strconv.Quote
	fmt.Fprintf(&b, "# generated by the e2e harness\ndomains = [")
	for i, d := range o.Domains {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(q(d))
	}
	b.WriteString("]\n")
	fmt.Fprintf(&b, "data_dir = %s\n", q(s.DataDir))
	if len(o.Admins) > 0 {
		b.WriteString("admins = [")
		for i, a := range o.Admins {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(q(a))
		}
		b.WriteString("]\n")
	}
	fmt.Fprintf(&b, "\n[log]\nlevel = \"debug\"\nformat = \"json\"\ntrace_stanzas = %t\n", o.Trace)
	fmt.Fprintf(&b, "\n[c2s]\nlisten = \"127.0.0.1:0\"\ndirect_tls_listen = \"127.0.0.1:0\"\nrequire_tls = %t\n", !o.NoRequireTLS)
	if o.ResourceConflict != "" {
		fmt.Fprintf(&b, "resource_conflict = %s\n", q(o.ResourceConflict))
	}
	for _, kv := range []struct {
		k string
		v int
	}{
		{"max_stanza_size", o.MaxStanzaSize},
		{"max_preauth_size", o.MaxPreauthSize},
		{"max_depth", o.MaxDepth},
		{"max_connections", o.MaxConnections},
		{"max_connections_per_ip", o.MaxConnectionsPerIP},
	} {
		if kv.v != 0 {
			fmt.Fprintf(&b, "%s = %d\n", kv.k, kv.v)
		}
	}
	fmt.Fprintf(&b, "\n[auth]\nscram_iterations = 4096\nallow_plain = %t\n", !o.DisablePlain)
	if o.TLSMinVersion != "" {
		fmt.Fprintf(&b, "\n[tls]\nmin_version = %s\n", q(o.TLSMinVersion))
	}
	if o.Extra != "" {
		b.WriteString("\n" + o.Extra + "\n")
	}
	return b.String()
}

// AddUser runs "imppd user add JID" with the password on stdin. bin may be
// "" for the binary under test. It works while the server runs too.
func (s *Server) AddUser(bin, jid, password string) error {
	if bin == "" {
		var err error
		if bin, err = Binary(); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "user", "add", jid, "-config", s.ConfigPath)
	cmd.Stdin = strings.NewReader(password + "\n")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("imppd user add %s: %v\n%s", jid, err, out)
	}
	return nil
}

// start runs "imppd serve" and waits for its ready line.
func (s *Server) start(bin string) error {
	cmd := exec.Command(bin, "serve", "-config", s.ConfigPath)
	cmd.Dir = s.Dir
	from, exited, err := s.process.start(cmd)
	if err != nil {
		return err
	}
	ready, err := s.log.Wait(from, StartTimeout, exited, func(e LogEntry) bool { return e.Msg() == "ready" })
	if err != nil {
		s.Kill9()
		return fmt.Errorf("imppd serve did not get ready: %w", err)
	}
	s.Addr, s.DirectTLSAddr = ready.Str("c2s"), ready.Str("c2s_direct_tls")
	if s.Addr == "" || s.DirectTLSAddr == "" {
		s.Kill9()
		return fmt.Errorf("ready line lacks c2s or c2s_direct_tls: %s", ready.Raw)
	}
	s.CACertPath = filepath.Join(s.DataDir, "tls", "selfsigned.crt")
	if s.CACertPEM, err = os.ReadFile(s.CACertPath); err != nil {
		s.Kill9()
		return fmt.Errorf("generated certificate: %w", err)
	}
	s.CAPool = x509.NewCertPool()
	if !s.CAPool.AppendCertsFromPEM(s.CACertPEM) {
		s.Kill9()
		return fmt.Errorf("%s holds no PEM certificate", s.CACertPath)
	}
	return nil
}

// Stop sends SIGTERM and waits for the process to exit; after StopTimeout
// it is killed and an error returned. It returns the process's exit error
// (nil for status 0). Stopping a stopped server returns nil.
func (s *Server) Stop() error {
	killed, err := s.stop(StopTimeout)
	if killed {
		return fmt.Errorf("imppd did not exit within %v of SIGTERM; killed", StopTimeout)
	}
	return err
}

// process is a child process, started again after each stop, whose
// output is collected line by line in a LogBuffer.
type process struct {
	name string // "imppd" or "prosody"
	log  *LogBuffer

	mu      sync.Mutex
	cmd     *exec.Cmd
	from    int           // first log line of the current process
	exited  chan struct{} // closed when the current process has been waited for
	exitErr error
	running bool
}

func newProcess(name string) process { return process{name: name, log: newLogBuffer()} }

// start starts cmd with its output going to the log. It returns the index
// of the process's first log line and a channel closed once the process
// has exited and all its output is in the log.
func (p *process) start(cmd *exec.Cmd) (from int, exited <-chan struct{}, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.running {
		return 0, nil, fmt.Errorf("%s already running", p.name)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return 0, nil, err
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	cmd.SysProcAttr = sysProcAttr()
	from = p.log.Len()
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return 0, nil, fmt.Errorf("starting %s: %w", p.name, err)
	}
	pw.Close()
	done := make(chan struct{})
	p.cmd, p.from, p.exited, p.exitErr, p.running = cmd, from, done, nil, true

	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		p.log.readLines(pr)
		pr.Close()
	}()
	go func() {
		err := cmd.Wait()
		<-readDone // every line the process wrote is in the buffer
		p.mu.Lock()
		p.exitErr = err
		p.mu.Unlock()
		close(done)
	}()
	return from, done, nil
}

// current returns the running process, if any, and its exit channel.
func (p *process) current() (*exec.Cmd, <-chan struct{}, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd, p.exited, p.running
}

// stop sends SIGTERM and waits for the process to exit, at most grace,
// after which it kills it (killed). err is the exit error; nil when
// nothing was running.
func (p *process) stop(grace time.Duration) (killed bool, err error) {
	cmd, exited, running := p.current()
	if !running {
		return false, nil
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(grace):
		_ = cmd.Process.Kill()
		<-exited
		p.log.Append(fmt.Sprintf("=== e2e: %s did not exit within %v of SIGTERM; killed ===", p.name, grace))
		killed = true
	}
	return killed, p.ended()
}

// Kill9 kills the process with SIGKILL (a crash, for persistence tests)
// and waits for it.
func (p *process) Kill9() {
	cmd, exited, running := p.current()
	if !running {
		return
	}
	_ = cmd.Process.Kill()
	<-exited
	p.ended()
}

// ended marks the process stopped in the log and returns its exit error.
func (p *process) ended() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.running = false
	p.log.Append(fmt.Sprintf("=== e2e: %s process %d ended: %v ===", p.name, p.cmd.Process.Pid, exitString(p.exitErr)))
	return p.exitErr
}

func exitString(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// Restart stops the server (SIGTERM, failing the test if it does not exit
// cleanly) unless it is already stopped, and starts it again on the same
// configuration and data. Addresses change: read them again afterwards.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	if err := s.Stop(); err != nil {
		t.Errorf("e2e: stopping for restart: %v", err)
	}
	bin, err := Binary()
	if err != nil {
		t.Fatal(err)
	}
	s.log.Append("=== e2e: restarting ===")
	if err := s.start(bin); err != nil {
		t.Fatalf("e2e: restart: %v", err)
	}
}

// Running reports whether the process is running.
func (p *process) Running() bool {
	_, _, running := p.current()
	return running
}

// Exited is closed when the current process has exited.
func (p *process) Exited() <-chan struct{} {
	_, exited, _ := p.current()
	return exited
}

// Log returns the process's output so far.
func (p *process) Log() *LogBuffer { return p.log }

// WaitLog waits until a log line written at or after line index from
// matches pred, for at most timeout.
func (s *Server) WaitLog(from int, timeout time.Duration, pred func(LogEntry) bool) (LogEntry, error) {
	return s.log.Wait(from, timeout, s.Exited(), pred)
}

// cleanup stops the server, fails the test on unclean exits, data races
// and panics in the log, and keeps the log of a failed test.
func (s *Server) cleanup(t testing.TB) {
	if err := s.Stop(); err != nil {
		t.Errorf("e2e: imppd did not stop cleanly: %v", err)
	}
	for _, l := range s.log.Lines() {
		switch {
		case strings.Contains(l, "WARNING: DATA RACE"):
			t.Errorf("e2e: the race detector found a data race in imppd (see the log)")
		case strings.HasPrefix(l, "panic:") || strings.Contains(l, `"msg":"session panic"`):
			t.Errorf("e2e: imppd panicked: %s", l)
		}
	}
	showFailure(t, "imppd", s.ConfigPath, s.config(), s.log, "server.log")
}

// showFailure logs the configuration and the log of a process of a failed
// test, and keeps them (as logName and the configuration's base name) in
// $IMPPD_E2E_ARTIFACTS/TEST-NAME when that is set.
func showFailure(t testing.TB, name, configPath, config string, log *LogBuffer, logName string) {
	if !t.Failed() {
		return
	}
	t.Logf("%s configuration %s:\n%s", name, configPath, config)
	t.Logf("%s log:\n%s", name, log.String())
	if dir := os.Getenv("IMPPD_E2E_ARTIFACTS"); dir != "" {
		d := filepath.Join(dir, strings.NewReplacer("/", "__", " ", "_", ":", "_").Replace(t.Name()))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Logf("e2e: artifacts: %v", err)
			return
		}
		_ = os.WriteFile(filepath.Join(d, logName), []byte(log.String()), 0o644)
		_ = os.WriteFile(filepath.Join(d, filepath.Base(configPath)), []byte(config), 0o644)
		t.Logf("e2e: %s and config kept in %s", strings.Replace(logName, ".", " ", 1), d)
	}
}

// LogBuffer collects a server's output lines and lets tests wait for one.
type LogBuffer struct {
	mu      sync.Mutex
	lines   []string
	changed chan struct{} // closed and replaced on every new line
}

func newLogBuffer() *LogBuffer { return &LogBuffer{changed: make(chan struct{})} }

// Append adds a line.
func (b *LogBuffer) Append(line string) {
	b.mu.Lock()
	b.lines = append(b.lines, line)
	close(b.changed)
	b.changed = make(chan struct{})
	b.mu.Unlock()
}

// readLines appends every line read from r until EOF.
func (b *LogBuffer) readLines(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		b.Append(sc.Text())
	}
}

// Len is the number of lines so far: pass it to Wait to see only newer
// lines.
func (b *LogBuffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.lines)
}

// Lines returns a copy of all lines.
func (b *LogBuffer) Lines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.lines...)
}

func (b *LogBuffer) String() string { return strings.Join(b.Lines(), "\n") }

// Entries returns the JSON log lines from index from on, parsed.
func (b *LogBuffer) Entries(from int) []LogEntry {
	var out []LogEntry
	lines := b.Lines()
	for _, l := range lines[min(from, len(lines)):] {
		if e, ok := parseEntry(l); ok {
			out = append(out, e)
		}
	}
	return out
}

// snapshot returns the lines so far and a channel closed at the next one.
func (b *LogBuffer) snapshot() ([]string, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lines, b.changed
}

// Wait returns the first JSON line at index from or later matching pred.
// It fails after timeout, or once stop is closed (e.g. the process exited)
// without a match.
func (b *LogBuffer) Wait(from int, timeout time.Duration, stop <-chan struct{}, pred func(LogEntry) bool) (LogEntry, error) {
	line, err := b.WaitLine(from, timeout, stop, func(l string) bool {
		e, ok := parseEntry(l)
		return ok && pred(e)
	})
	if err != nil {
		return LogEntry{}, err
	}
	e, _ := parseEntry(line)
	return e, nil
}

// WaitLine is Wait for any line, JSON or not.
func (b *LogBuffer) WaitLine(from int, timeout time.Duration, stop <-chan struct{}, pred func(string) bool) (string, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	stopped := false
	for {
		lines, changed := b.snapshot()
		for ; from < len(lines); from++ {
			if pred(lines[from]) {
				return lines[from], nil
			}
		}
		if stopped {
			return "", errors.New("the process exited without logging it")
		}
		select {
		case <-changed:
		case <-stop:
			stopped, stop = true, nil // one more pass over what it wrote
		case <-deadline.C:
			return "", fmt.Errorf("no such log line within %v", timeout)
		}
	}
}

// LogEntry is one JSON log line.
type LogEntry struct {
	Raw    string
	Fields map[string]any
}

func parseEntry(line string) (LogEntry, bool) {
	if !strings.HasPrefix(line, "{") {
		return LogEntry{}, false
	}
	e := LogEntry{Raw: line}
	if json.Unmarshal([]byte(line), &e.Fields) != nil {
		return LogEntry{}, false
	}
	return e, true
}

// Msg is the entry's "msg".
func (e LogEntry) Msg() string { return e.Str("msg") }

// Str returns a field as a string ("" when absent; numbers and other
// values formatted).
func (e LogEntry) Str(key string) string {
	v, ok := e.Fields[key]
	if !ok || v == nil {
		return ""
	}
	if s, ok := v.(string); ok {
		return s
	}
	return fmt.Sprint(v)
}
