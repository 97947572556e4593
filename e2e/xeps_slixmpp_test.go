package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// Issue #7: every compiled-in XEP exercised by slixmpp (Debian's
// python3-slixmpp 1.8.3, run with /usr/bin/python3), through slixmpp's own
// plugin for it wherever it has one, so the server is tested the way real
// users' clients talk to it. Each scenario is a server-agnostic script in
// e2e/clients/slixmpp/xeps (configuration, report format and the rules the
// scripts follow are described in common.py there) that reports every
// check it makes, with the XEP section it rests on, the stanza sent, what
// was expected and what was observed. TestXEPSlixmpp/<XEP> runs one script
// against a server shared by all scenarios (each with its own accounts, so
// they run in parallel) and fails on every failed must check and scenario
// error, logging should-level deviations; some scenarios add checks of
// imppd's documented choices on the script's data.
//
//	go test -run 'XEPSlixmpp/XEP-0198' -v ./e2e/   # one scenario, every check
//
// A script can be run by hand against any server:
//
//	/usr/bin/python3 xep0030_disco.py --config cfg.json [--debug]

// Per-event and per-scenario timeouts given to the scripts; the race
// detector makes the server several times slower.
const (
	xepEventTimeout = 20 * time.Second
	xepTotalTimeout = 120 * time.Second
	xepResultPrefix = "XEP-RESULT "
)

type xepAccount struct {
	JID      string `json:"jid"`
	Password string `json:"password"`
}

// xepConfig is the JSON configuration the scripts read (xeps/common.py).
type xepConfig struct {
	Host         string                `json:"host"`
	Port         int                   `json:"port"`
	Domain       string                `json:"domain"`
	CA           string                `json:"ca"`
	Timeout      float64               `json:"timeout"`
	TotalTimeout float64               `json:"total_timeout"`
	Mech         string                `json:"mech"`
	Users        map[string]xepAccount `json:"users"`
	Expect       map[string]any        `json:"expect,omitempty"`
}

type (
	xepCheck  = scenarioCheck
	xepResult = scenarioReport
)

// xepScenario is one subtest: a script, the accounts it uses, and what it
// should expect of imppd.
type xepScenario struct {
	name   string   // subtest name, "XEP-0030"
	script string   // under e2e/clients/slixmpp/xeps
	roles  []string // accounts created before the server starts
	// fresh roles are handed to the script but not created: the scenario
	// creates them (in-band registration, admin command).
	fresh  []string
	admin  string // a role that gets admin rights
	expect map[string]any
	// check asserts scenario data beyond the script's own checks.
	check func(t *testing.T, r *xepResult)
}

// xepAccountFor names a scenario's account: distinct per scenario, so the
// scenarios can share one server and run in parallel.
func xepAccountFor(sc xepScenario, role string) xepAccount {
	num := strings.TrimPrefix(sc.name, "XEP-")
	return xepAccount{
		JID:      fmt.Sprintf("x%s-%s@localhost", num, role),
		Password: fmt.Sprintf("pw %s/%s ünï", num, role),
	}
}

// xepsDocFeatures returns the disco features docs/XEPS.md lists.
func xepsDocFeatures(t *testing.T) []string {
	t.Helper()
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "docs", "XEPS.md"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "| [XEP-") {
			continue
		}
		cols := strings.Split(line, "|")
		if len(cols) < 3 {
			continue
		}
		for _, m := range regexp.MustCompile("`([^`]+)`").FindAllStringSubmatch(cols[len(cols)-2], -1) {
			out = append(out, m[1])
		}
	}
	if len(out) == 0 {
		t.Fatal("docs/XEPS.md lists no disco features")
	}
	return out
}

func TestXEPSlixmpp(t *testing.T) {
	t.Parallel()
	requireSlixmpp(t)
	scenarios := xepScenarios(t)

	var users []User
	var admins []string
	for _, sc := range scenarios {
		for _, role := range sc.roles {
			a := xepAccountFor(sc, role)
			users = append(users, User{JID: a.JID, Password: a.Password})
		}
		if sc.admin != "" {
			admins = append(admins, xepAccountFor(sc, sc.admin).JID)
		}
	}
	// One server for all scenarios: in-band registration on for XEP-0077,
	// the XEP-0133 scenario's admin among the admins.
	s := Start(t, Options{Users: users, Admins: admins, Extra: "[registration]\nenabled = true"})
	host, port := hostPort(t, s.Addr)
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			cfg := xepConfig{
				Host: host, Port: port, Domain: s.Domain, CA: s.CACertPath,
				Timeout: xepEventTimeout.Seconds(), TotalTimeout: xepTotalTimeout.Seconds(),
				Mech:  ScramSha256,
				Users: map[string]xepAccount{}, Expect: sc.expect,
			}
			for _, role := range append(append([]string(nil), sc.roles...), sc.fresh...) {
				cfg.Users[role] = xepAccountFor(sc, role)
			}
			res := runXEPScript(t, cfg, sc.script)
			res.assert(t)
			if sc.check != nil && len(res.Errors) == 0 {
				sc.check(t, res)
			}
		})
	}
}

// xepScenarios lists the scenarios with what imppd is expected to do.
func xepScenarios(t *testing.T) []xepScenario {
	return []xepScenario{
		{name: "XEP-0012", script: "xep0012_last.py", roles: []string{"alice", "bob", "carol"}},
		{
			name: "XEP-0030", script: "xep0030_disco.py", roles: []string{"alice", "bob", "carol"},
			expect: map[string]any{
				"server_identity": []string{"server", "im"},
				"server_features": []string{
					"jabber:iq:version", "urn:xmpp:ping", "urn:xmpp:time", "jabber:iq:last",
					"http://jabber.org/protocol/commands", "urn:xmpp:blocking", "urn:xmpp:carbons:2",
				},
				"account_features": []string{"urn:xmpp:mam:2", "jabber:iq:last"},
				// Every feature docs/XEPS.md lists is advertised somewhere.
				"any_features": xepsDocFeatures(t),
			},
			check: func(t *testing.T, r *xepResult) {
				var nodes []string
				items, _ := r.Data["command_items"].([]any)
				for _, it := range items {
					if m, ok := it.(map[string]any); ok {
						nodes = append(nodes, fmt.Sprint(m["node"]))
					}
				}
				if !slices.Contains(nodes, "urn:imppd:watcher-info") {
					t.Errorf("the commands node lists %q, want urn:imppd:watcher-info among them", nodes)
				}
			},
		},
		{name: "XEP-0050", script: "xep0050_adhoc.py", roles: []string{"alice", "bob"}},
		{
			// The shared server runs with [registration] enabled = true.
			name: "XEP-0077", script: "xep0077_register.py", roles: []string{"alice"}, fresh: []string{"new"},
			expect: map[string]any{"create": true},
		},
		{
			name: "XEP-0092", script: "xep0092_version.py", roles: []string{"alice", "bob"},
			expect: map[string]any{"name": "imppd"},
		},
		{name: "XEP-0115", script: "xep0115_caps.py", roles: []string{"alice"}},
		{
			name: "XEP-0133", script: "xep0133_admin.py", roles: []string{"admin", "user"},
			fresh: []string{"new"}, admin: "admin",
		},
		{name: "XEP-0191", script: "xep0191_blocking.py", roles: []string{"alice", "bob", "carol"}},
		{
			name: "XEP-0198", script: "xep0198_sm.py", roles: []string{"alice", "bob"},
			check: func(t *testing.T, r *xepResult) {
				// The scenario proves something only if messages were in
				// flight when the connection dropped.
				if n, _ := r.Data["in_flight"].(float64); n < 1 {
					t.Errorf("no message was in flight at the drop (in_flight=%v)", r.Data["in_flight"])
				}
			},
		},
		{name: "XEP-0199", script: "xep0199_ping.py", roles: []string{"alice", "bob"}},
		{name: "XEP-0202", script: "xep0202_time.py", roles: []string{"alice"}},
		{name: "XEP-0280", script: "xep0280_carbons.py", roles: []string{"alice", "bob"}},
		{name: "XEP-0313", script: "xep0313_mam.py", roles: []string{"alice", "bob", "carol"}},
		{
			name: "XEP-0352", script: "xep0352_csi.py", roles: []string{"alice", "bob"},
			check: func(t *testing.T, r *xepResult) {
				// imppd holds presence and keeps only the latest of each
				// sender (docs/XEPS.md: "held and coalesced"), and flushes
				// what it holds before any other stanza.
				flushed := xepStrings(r.Data["flushed"])
				if len(flushed) != 1 || !strings.HasSuffix(flushed[0], " #2") {
					t.Errorf("after <active/> the held presence was %q, want only the latest (#2)", flushed)
				}
				order := xepStrings(r.Data["order"])
				if len(order) != 2 || !strings.HasPrefix(order[0], "presence:bob busy ") || order[1] != "message" {
					t.Errorf("while inactive, held presence and a message came as %q, want the presence first", order)
				}
			},
		},
	}
}

// xepStrings converts a JSON array of strings from a report's data.
func xepStrings(v any) []string {
	a, _ := v.([]any)
	out := make([]string, 0, len(a))
	for _, x := range a {
		out = append(out, fmt.Sprint(x))
	}
	return out
}

// runXEPScript runs one scenario script with cfg and returns its report,
// checking that its exit status agrees with it.
func runXEPScript(t *testing.T, cfg xepConfig, script string, args ...string) *xepResult {
	t.Helper()
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	res := runReportScript(t, systemPython, filepath.Join(root, "e2e", "clients", "slixmpp", "xeps"), xepResultPrefix, cfg, time.Duration(cfg.TotalTimeout*float64(time.Second)), script, args...)
	if want := len(res.Errors) == 0 && res.OK; want != (res.runErr == nil) {
		t.Errorf("%s: report ok=%v errors=%d but %s", script, res.OK, len(res.Errors), exitText(res.runErr))
	}
	return res
}
