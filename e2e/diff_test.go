package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Issue #5, part 1: differential runs. Every scenario below runs against a
// fresh imppd (harness.go) and, at the same time, against a fresh private
// Prosody (prosody.go) with the same accounts; each states what it
// observes in a normalised form (diff_obs_test.go), and the observations
// are compared key by key. A difference is allowed only when the table in
// diff_allowed_test.go explains it: a choice the RFC leaves to the
// server, or a place where Prosody deviates from the RFC and imppd
// follows it. The report lists every scenario as same / differs (allowed:
// reason) / differs; the test fails on a plain "differs", logs the report,
// and with IMPPD_UPDATE_DOCS=1 writes it to docs/INTEROP-DIFF.md.
//
//	go test -run Diff ./e2e/                           # about a minute (-race: about 3)
//	IMPPD_UPDATE_DOCS=1 go test -run Diff ./e2e/       # and rewrite the report
//	go test -run 'Diff/6121-unknown-user' -v ./e2e/    # one scenario
//
// IMPPD_DIFF_VERBOSE=1 lists every differing observation in a failure (not
// only the first 20); IMPPD_DIFF_DUMP=DIR writes every observation of each
// server to DIR/SCENARIO-SERVER.txt; RFC6121_KEEP=DIR keeps the scripts'
// reports (see rfc6121_helpers_test.go).
//
// Prosody comes from Debian's prosody package (e2e/clients/setup.sh
// installs it); without it the test is skipped, or fails with CI=true.

// diffSides are the servers compared, imppd first.
var diffSides = [2]string{"imppd", "prosody"}

// diffEventTimeout is the scripts' wait for one expected event. Waits for
// stanzas that a server legitimately does not send (e.g. a bounce the RFC
// makes optional) last this long, on one server only; both run at once.
const diffEventTimeout = 10 * time.Second

// diffScenario is one scenario of the differential run. Run starts its
// own server of the given side and returns what it observed.
type diffScenario struct {
	Name string
	Doc  string
	Run  func(t *testing.T, side string) *diffSideResult
}

func diffScenarios() []diffScenario {
	return []diffScenario{
		{scPairs, "RFC 6121 App. A: every ordered pair of the 10 subscription actions from a fresh pair (100 cases), both rosters, pushes and presence after each step",
			diffWalk("pairs", 15, 100)},
		{scStates, "RFC 6121 App. A: each of the 10 actions from each state of A.1, pre-approvals included (160 cases)",
			diffWalk("states", 19, 160)},
		{scRosterPush, "RFC 6121 2.1.6, 2.2: roster pushes reach the interested resources only", diffScript("roster_push.py")},
		{scMutual, "RFC 6121 3.1.5, 4.2-4.5: mutual subscription, presence with show/status both ways, re-login, logout", diffScript("mutual_presence.py")},
		{scPending, "RFC 6121 3.1.3: a request to an offline contact is delivered at its next initial presence, until answered", diffScript("pending_at_login.py")},
		{scDropped, "RFC 6121 4.5.3, RFC 6120 4.4: a subscriber sees unavailable when the contact's client is SIGKILLed", diffScript("dropped_tcp.py")},
		{scProbe, "RFC 6121 4.3.2: a probe from a non-subscriber reveals nothing", diffScript("probe_nonsubscriber.py")},
		{scPriority, "RFC 6121 8.5.2.1.1: messages to a bare JID and resource priorities", diffScript("message_priority.py")},
		{scOffline, "XEP-0160 / RFC 6121 8.5.2.2.1: offline messages across a clean restart: once, in order, delay, stanza-id", diffPhases("offline_delay.py", "send", "receive", false)},
		{scUnknown, "RFC 6121 8.5.1: message, IQ and subscribe to a nonexistent local account (slixmpp)", diffScript("unknown_user.py")},
		{scWatcher, "imppd's watcher information command (RFC 2778 via XEP-0050): an extension, observed for the record", diffScript("watcher_info.py")},
		{scPersist, "RFC 6121 2.3.2, 3.1.3, XEP-0160: roster item, offline message and pending request across SIGKILL", diffPhases("persistence.py", "prepare", "verify", true)},
		{scStream, "RFC 6120 4-7: stream headers and features before TLS, after STARTTLS, after SASL; bind; session; close", diffStreamNegotiation},
		{scStreamErr, "RFC 6120 4.9: stream errors for a bad 'to', bad namespaces, bad XML, stanzas before TLS or authentication", diffStreamErrors},
		{scFrom, "RFC 6120 8.1.2.1: the 'from' the server stamps on a client's message, spoofed 'from' values included", diffFromStamping},
		{scIQErrors, "RFC 6120 8, RFC 6121 8.5: IQs to nonexistent accounts, unknown resources, unknown namespaces, a remote domain", diffIQErrors},
		{scRecipients, "RFC 6121 8.5.1, 8.5.3: messages and presence to nonexistent accounts and to an unknown resource", diffUnknownRecipients},
		{scPing, "XEP-0199: pings to the server, the own account, another account's bare and full JID", diffPing},
	}
}

func TestDiff(t *testing.T) {
	if _, _, err := ProsodyPaths(); err != nil {
		t.Log(err)
		missing(t, "prosody (the reference server of the differential runs)")
	}
	requireSlixmpp(t)
	start := time.Now()
	var rows []*diffRow
	all := true
	for _, sc := range diffScenarios() {
		var got [2]*diffSideResult
		var took [2]time.Duration
		t.Run(sc.Name, func(t *testing.T) {
			for i, side := range diffSides {
				t.Run(side, func(t *testing.T) {
					t.Parallel()
					t0 := time.Now()
					got[i] = sc.Run(t, side)
					took[i] = time.Since(t0)
					diffDump(t, sc.Name, side, got[i])
				})
			}
		})
		if got[0] == nil || got[1] == nil {
			all = false
			if got[0] != nil || got[1] != nil {
				t.Errorf("%s: ran on one server only", sc.Name)
			}
			continue
		}
		row := diffCompare(sc, got[0], got[1])
		row.Took = took
		rows = append(rows, row)
		// The scenarios keep asserting the RFC: a must check imppd fails
		// fails this test too, whatever Prosody does.
		for _, f := range got[0].MustFailed {
			t.Errorf("%s: imppd fails the must check %q", sc.Name, f)
		}
		if row.Plain > 0 {
			limit := 20
			if os.Getenv("IMPPD_DIFF_VERBOSE") == "1" {
				limit = row.Plain
			}
			t.Errorf("%s: %d observations differ between imppd and prosody without an allowance:\n%s", sc.Name, row.Plain, row.plainText(limit))
		}
	}
	report := renderDiffReport(rows, diffProsodyVersion)
	t.Logf("differential run (%v):\n%s\n%s", time.Since(start).Round(time.Second), report, diffTimings(rows))
	if os.Getenv("IMPPD_UPDATE_DOCS") == "1" {
		if !all {
			t.Errorf("IMPPD_UPDATE_DOCS=1: not every scenario ran (-run filter or a skip): docs/INTEROP-DIFF.md left alone")
			return
		}
		root, err := ModuleRoot()
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(root, "docs", "INTEROP-DIFF.md")
		if err := os.WriteFile(path, []byte(report), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", path)
	}
}

// diffProsodyVersion is the version of the Prosody last started.
var diffProsodyVersion string

// diffTarget is one server of a scenario: imppd or Prosody.
type diffTarget struct {
	Side    string
	imppd   *Server
	prosody *Prosody
}

// startDiffTarget starts a fresh server of side with users.
func startDiffTarget(t *testing.T, side string, users []User) *diffTarget {
	t.Helper()
	if side == "imppd" {
		return &diffTarget{Side: side, imppd: Start(t, Options{Users: users})}
	}
	p := StartProsody(t, ProsodyOptions{Users: users})
	diffProsodyVersion = p.Version
	return &diffTarget{Side: side, prosody: p}
}

// Server describes the server's current addresses for the Go clients.
func (d *diffTarget) Server() *Server {
	if d.imppd != nil {
		return d.imppd
	}
	return d.prosody.Server()
}

// Restart stops the server cleanly and starts it again on the same data.
func (d *diffTarget) Restart(t *testing.T) {
	t.Helper()
	if d.imppd != nil {
		d.imppd.Restart(t)
		return
	}
	d.prosody.Restart(t)
}

// CrashRestart kills the server with SIGKILL and starts it again.
func (d *diffTarget) CrashRestart(t *testing.T) {
	t.Helper()
	if d.imppd != nil {
		d.imppd.Kill9()
		d.imppd.Restart(t)
		return
	}
	d.prosody.Kill9()
	d.prosody.Restart(t)
}

// rfcConfig is the scripts' configuration for this server, identical on
// both sides but for the address and certificate.
func (d *diffTarget) rfcConfig(t *testing.T) rfcConfig {
	t.Helper()
	cfg := rfcConfigFor(t, d.Server())
	cfg.Timeout = diffEventTimeout.Seconds()
	// imppd's watcher information is an extension: observed on both
	// sides, asserted by TestRFC6121WatcherInfo.
	cfg.RequireWatcherInfo = false
	return cfg
}

// diffScript runs one single-phase slixmpp scenario.
func diffScript(script string) func(t *testing.T, side string) *diffSideResult {
	return func(t *testing.T, side string) *diffSideResult {
		d := startDiffTarget(t, side, rfcUsers())
		res := runRFC6121(t, d.rfcConfig(t), script)
		rec := newDiffRec()
		obsFromChecks(rec, "", res, nil)
		diffData(rec, res)
		return &rec.res
	}
}

// diffPhases runs a two-phase slixmpp scenario with a restart (or a
// crash and a restart) of the server between the phases.
func diffPhases(script, first, second string, crash bool) func(t *testing.T, side string) *diffSideResult {
	return func(t *testing.T, side string) *diffSideResult {
		d := startDiffTarget(t, side, rfcUsers())
		cfg := d.rfcConfig(t)
		cfg.State = filepath.Join(t.TempDir(), "state.json")
		rec := newDiffRec()
		res := runRFC6121(t, cfg, script, first)
		obsFromChecks(rec, first+": ", res, nil)
		if len(res.Errors) > 0 {
			return &rec.res
		}
		if crash {
			d.CrashRestart(t)
		} else {
			d.Restart(t)
		}
		cfg2 := d.rfcConfig(t)
		cfg2.State = cfg.State
		res = runRFC6121(t, cfg2, script, second)
		obsFromChecks(rec, second+": ", res, nil)
		return &rec.res
	}
}

// diffWalk runs subscription_pairs.py with a fresh pair of accounts per
// case.
func diffWalk(walk string, pool, cases int) func(t *testing.T, side string) *diffSideResult {
	return func(t *testing.T, side string) *diffSideResult {
		accounts := rfcPool(pool)
		d := startDiffTarget(t, side, rfcUsers(accounts...))
		cfg := d.rfcConfig(t)
		for _, u := range accounts {
			cfg.Pool = append(cfg.Pool, rfcUser{JID: u.JID, Password: u.Password})
		}
		res := runRFC6121(t, cfg, "subscription_pairs.py", "--walk", walk)
		if n, ok := res.Data["cases_total"].(float64); !ok || int(n) != cases {
			t.Errorf("walked %v cases, want %d", res.Data["cases_total"], cases)
		}
		if r := res.Data["resets"]; r != nil {
			t.Errorf("%v cases did not start from a fresh pair of accounts", r)
		}
		rec := newDiffRec()
		obsFromWalk(rec, res)
		return &rec.res
	}
}

// diffData records the parts of a script's data that are observations
// (not timings or raw dumps).
func diffData(rec *diffRec, res *rfcResult) {
	for _, k := range []string{"watcher_info", "items"} {
		if v, ok := res.Data[k]; ok {
			rec.observe("data: "+k, sortedList(normValue(v)), "")
		}
	}
	if v, ok := res.Data["seconds_to_unavailable"]; ok {
		rec.observe("data: unavailable seen after the kill", v != nil, "RFC 6121 4.5.3")
	}
}

// diffDump writes a side's observations to $IMPPD_DIFF_DUMP/SCENARIO-SIDE.txt
// when that is set.
func diffDump(t *testing.T, scenario, side string, r *diffSideResult) {
	dir := os.Getenv("IMPPD_DIFF_DUMP")
	if dir == "" || r == nil {
		return
	}
	var b strings.Builder
	for _, o := range r.Obs {
		ok := "-"
		if o.OK != nil {
			ok = strconv.FormatBool(*o.OK)
		}
		fmt.Fprintf(&b, "%s\n\tok: %s\n\tvalue: %s\n", o.Key, ok, o.text())
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Log(err)
		return
	}
	if err := os.WriteFile(filepath.Join(dir, scenario+"-"+side+".txt"), []byte(b.String()), 0o644); err != nil {
		t.Log(err)
	}
}

// diffTimings lists how long each side took per scenario.
func diffTimings(rows []*diffRow) string {
	var b strings.Builder
	b.WriteString("time per scenario (imppd / prosody, run in parallel):\n")
	for _, r := range rows {
		b.WriteString("  " + r.Scenario + ": " + r.Took[0].Round(100*time.Millisecond).String() + " / " + r.Took[1].Round(100*time.Millisecond).String() + "\n")
	}
	return b.String()
}
