package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The RFC 6121 scenarios run the server-agnostic slixmpp scripts under
// e2e/clients/slixmpp/rfc6121 (Debian's python3-slixmpp; see the README
// there) and assert every check they report.

// Accounts of the RFC 6121 scenarios.
var (
	rfcAlice = User{JID: "alice@localhost", Password: "alice-pw-Ünïcode 6121"}
	rfcBob   = User{JID: "bob@localhost", Password: "bob secret, 6121"}
	rfcCarol = User{JID: "carol@localhost", Password: "carol=pw,6121"}
)

func rfcUsers(extra ...User) []User {
	return append([]User{rfcAlice, rfcBob, rfcCarol}, extra...)
}

// rfcPool returns n further accounts for the walk through subscription
// pairs.
func rfcPool(n int) []User {
	var out []User
	for i := range n {
		out = append(out, User{JID: fmt.Sprintf("pair%02d@localhost", i), Password: fmt.Sprintf("pair-%02d-pw", i)})
	}
	return out
}

// Per-event and per-scenario timeouts given to the scripts; the race
// detector makes the server several times slower.
const (
	rfcEventTimeout = 20 * time.Second
	rfcTotalTimeout = 240 * time.Second
)

type rfcUser struct {
	JID      string `json:"jid"`
	Password string `json:"password"`
}

// rfcConfig is the JSON configuration the scripts read (common.py).
type rfcConfig struct {
	Host               string             `json:"host"`
	Port               int                `json:"port"`
	Domain             string             `json:"domain"`
	CA                 string             `json:"ca"`
	Timeout            float64            `json:"timeout"`
	TotalTimeout       float64            `json:"total_timeout"`
	Users              map[string]rfcUser `json:"users"`
	Pool               []rfcUser          `json:"pool,omitempty"`
	State              string             `json:"state,omitempty"`
	RequireWatcherInfo bool               `json:"require_watcher_info,omitempty"`
}

// rfcConfigFor describes server s (its current addresses: call it again
// after a restart) with the three usual roles.
func rfcConfigFor(t testing.TB, s *Server) rfcConfig {
	t.Helper()
	host, port, err := net.SplitHostPort(s.Addr)
	if err != nil {
		t.Fatalf("server address %q: %v", s.Addr, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatalf("server port %q: %v", port, err)
	}
	u := func(x User) rfcUser { return rfcUser{JID: x.JID, Password: x.Password} }
	return rfcConfig{
		Host: host, Port: p, Domain: s.Domain, CA: s.CACertPath,
		Timeout:      rfcEventTimeout.Seconds(),
		TotalTimeout: rfcTotalTimeout.Seconds(),
		Users:        map[string]rfcUser{"alice": u(rfcAlice), "bob": u(rfcBob), "carol": u(rfcCarol)},
		// imppd offers the watcher information command; other servers
		// used as a reference need not.
		RequireWatcherInfo: true,
	}
}

type rfcCheck struct {
	Level    string `json:"level"` // must, should, info
	Name     string `json:"name"`
	OK       bool   `json:"ok"`
	RFC      string `json:"rfc"`
	Expected any    `json:"expected"`
	Observed any    `json:"observed"`
	Stanza   string `json:"stanza"`
}

type rfcResult struct {
	Scenario string         `json:"scenario"`
	OK       bool           `json:"ok"`
	Errors   []string       `json:"errors"`
	Checks   []rfcCheck     `json:"checks"`
	Data     map[string]any `json:"data"`

	stderr string
}

const rfcResultPrefix = "RFC6121-RESULT "

// rfcPython is the interpreter that sees Debian's python3-slixmpp.
func rfcPython(t testing.TB) string {
	t.Helper()
	py := os.Getenv("RFC6121_PYTHON")
	if py == "" {
		py = "/usr/bin/python3"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, py, "-c", "import slixmpp").CombinedOutput(); err != nil {
		t.Skipf("%s cannot import slixmpp (install python3-slixmpp or set RFC6121_PYTHON): %v\n%s", py, err, out)
	}
	return py
}

// runRFC6121 runs one script with cfg and returns its report. The script
// and everything it started are killed when it outlives its total timeout
// by a margin.
func runRFC6121(t testing.TB, cfg rfcConfig, script string, args ...string) *rfcResult {
	t.Helper()
	py := rfcPython(t)
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "e2e", "clients", "slixmpp", "rfc6121")
	cfgJSON, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(t.TempDir(), "rfc6121.json")
	if err := os.WriteFile(cfgPath, cfgJSON, 0o600); err != nil {
		t.Fatal(err)
	}
	limit := time.Duration(cfg.TotalTimeout)*time.Second + 30*time.Second
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, append([]string{script, "--config", cfgPath}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1")
	cmd.SysProcAttr = rfcSysProcAttr()
	cmd.Cancel = func() error { return rfcKillGroup(cmd) }
	cmd.WaitDelay = 10 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	runErr := cmd.Run()
	_ = rfcKillGroup(cmd) // anything the script left behind
	t.Logf("%s %s: %v in %v", script, strings.Join(args, " "), exitText(runErr), time.Since(start).Round(time.Millisecond))
	var res *rfcResult
	sc := bufio.NewScanner(bytes.NewReader(stdout.Bytes()))
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		if line, ok := strings.CutPrefix(sc.Text(), rfcResultPrefix); ok {
			res = &rfcResult{}
			if err := json.Unmarshal([]byte(line), res); err != nil {
				t.Fatalf("%s: unreadable result: %v", script, err)
			}
		}
	}
	if res == nil {
		t.Fatalf("%s printed no result (%v; timeout %v)\nstdout:\n%s\nstderr:\n%s", script, exitText(runErr), limit, stdout.String(), stderr.String())
	}
	res.stderr = stderr.String()
	if keep := os.Getenv("RFC6121_KEEP"); keep != "" {
		// Keep the full report and the script's log, e.g. to compare runs
		// against another server.
		name := strings.NewReplacer("/", "__", " ", "_").Replace(t.Name()) + "-" + strings.TrimSuffix(script, ".py")
		if len(args) > 0 {
			name += "-" + strings.Join(args, "-")
		}
		if err := os.MkdirAll(keep, 0o755); err == nil {
			_ = os.WriteFile(filepath.Join(keep, name+".json"), stdout.Bytes(), 0o644)
			_ = os.WriteFile(filepath.Join(keep, name+".log"), stderr.Bytes(), 0o644)
		}
	}
	return res
}

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// assert fails the test for every failed must check and every scenario
// error, and logs failed should checks as RFC deviations of lesser weight.
func (r *rfcResult) assert(t testing.TB) {
	t.Helper()
	for _, e := range r.Errors {
		t.Errorf("%s: scenario error: %s", r.Scenario, e)
	}
	musts, shoulds := 0, 0
	for _, c := range r.Checks {
		switch {
		case c.Level == "must" && !c.OK:
			t.Errorf("%s", c.describe())
		case c.Level == "should" && !c.OK:
			t.Logf("SHOULD-level deviation: %s", c.describe())
		case c.Level == "info":
			t.Logf("info: %s: %s", c.Name, jsonText(c.Observed))
		}
		switch c.Level {
		case "must":
			musts++
		case "should":
			shoulds++
		}
	}
	t.Logf("%s: %d must checks, %d should checks", r.Scenario, musts, shoulds)
	if t.Failed() {
		t.Logf("%s stderr:\n%s", r.Scenario, r.stderr)
	}
}

func (c rfcCheck) describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\tper:      %s", c.Name, c.RFC)
	if c.Stanza != "" {
		fmt.Fprintf(&b, "\n\tstanza:   %s", c.Stanza)
	}
	fmt.Fprintf(&b, "\n\texpected: %s\n\tobserved: %s", jsonText(c.Expected), jsonText(c.Observed))
	return b.String()
}

func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
