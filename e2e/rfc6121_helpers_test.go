package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
	host, p := hostPort(t, s.Addr)
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

type (
	rfcCheck  = scenarioCheck
	rfcResult = scenarioReport
)

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

// runRFC6121 runs one script with cfg and returns its report.
func runRFC6121(t testing.TB, cfg rfcConfig, script string, args ...string) *rfcResult {
	t.Helper()
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	res := runReportScript(t, rfcPython(t), filepath.Join(root, "e2e", "clients", "slixmpp", "rfc6121"), rfcResultPrefix, cfg, time.Duration(cfg.TotalTimeout*float64(time.Second)), script, args...)
	if keep := os.Getenv("RFC6121_KEEP"); keep != "" {
		// Keep the full report and the script's log, e.g. to compare runs
		// against another server.
		name := strings.NewReplacer("/", "__", " ", "_").Replace(t.Name()) + "-" + strings.TrimSuffix(script, ".py")
		if len(args) > 0 {
			name += "-" + strings.Join(args, "-")
		}
		if err := os.MkdirAll(keep, 0o755); err == nil {
			_ = os.WriteFile(filepath.Join(keep, name+".json"), res.stdout, 0o644)
			_ = os.WriteFile(filepath.Join(keep, name+".log"), res.stderr, 0o644)
		}
	}
	return res
}
