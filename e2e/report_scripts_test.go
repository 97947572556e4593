package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The RFC 6121 and per-XEP slixmpp scenarios (clients/slixmpp/rfc6121,
// clients/slixmpp/xeps) share one report format: a final line
// "PREFIX {json}" with every check, its level (must, should, info), the
// section it cites, the stanza sent, and what was expected and observed.

// scenarioCheck is one check of a scenario report.
type scenarioCheck struct {
	Level    string `json:"level"` // must, should, info
	Name     string `json:"name"`
	OK       bool   `json:"ok"`
	RFC      string `json:"rfc"` // the section cited by an RFC scenario
	XEP      string `json:"xep"` // or by an XEP scenario
	Expected any    `json:"expected"`
	Observed any    `json:"observed"`
	Stanza   string `json:"stanza"`
}

// scenarioReport is a scenario's report.
type scenarioReport struct {
	Scenario string          `json:"scenario"`
	OK       bool            `json:"ok"`
	Errors   []string        `json:"errors"`
	Checks   []scenarioCheck `json:"checks"`
	Data     map[string]any  `json:"data"`

	stdout, stderr []byte
	runErr         error
}

// runReportScript runs script (in dir, with /usr/bin/python3 or py) with
// cfg written to a JSON file passed as --config, and returns the report
// it printed after prefix. The script and everything it started are killed
// when it outlives totalTimeout by a margin.
func runReportScript(t testing.TB, py, dir, prefix string, cfg any, totalTimeout time.Duration, script string, args ...string) *scenarioReport {
	t.Helper()
	cfgJSON, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(cfgPath, cfgJSON, 0o600); err != nil {
		t.Fatal(err)
	}
	limit := totalTimeout + 30*time.Second
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
	var res *scenarioReport
	sc := bufio.NewScanner(bytes.NewReader(stdout.Bytes()))
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		if line, ok := strings.CutPrefix(sc.Text(), prefix); ok {
			res = &scenarioReport{}
			if err := json.Unmarshal([]byte(line), res); err != nil {
				t.Fatalf("%s: unreadable result: %v", script, err)
			}
		}
	}
	if res == nil {
		t.Fatalf("%s printed no result (%v; limit %v)\nstdout:\n%s\nstderr:\n%s", script, exitText(runErr), limit, stdout.String(), stderr.String())
	}
	res.stdout, res.stderr, res.runErr = stdout.Bytes(), stderr.Bytes(), runErr
	return res
}

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// assert fails the test for every failed must check and every scenario
// error, and logs failed should checks as deviations of lesser weight.
func (r *scenarioReport) assert(t testing.TB) {
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
	if t.Failed() || testing.Verbose() {
		t.Logf("%s stderr:\n%s", r.Scenario, r.stderr)
	}
}

func (c scenarioCheck) describe() string {
	per := c.RFC
	if per == "" {
		per = c.XEP
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\tper:      %s", c.Name, per)
	if c.Stanza != "" {
		fmt.Fprintf(&b, "\n\tstanza:   %s", c.Stanza)
	}
	fmt.Fprintf(&b, "\n\texpected: %s\n\tobserved: %s", jsonText(c.Expected), jsonText(c.Observed))
	return b.String()
}

// jsonText renders a report value for a failure message, leaving the XML
// in it readable (no \u003c escapes).
func jsonText(v any) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Sprint(v)
	}
	return strings.TrimSuffix(b.String(), "\n")
}
