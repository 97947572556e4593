package main

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// figure is one row of the results table.
type figure struct {
	scenario, metric, label string
	higherBetter            bool
}

var figures = []figure{
	{"login", "seq_logins_per_s", "login: sequential logins/s", true},
	{"login", "seq_p50_ms", "login: sequential p50 ms", false},
	{"login", "seq_p99_ms", "login: sequential p99 ms", false},
	{"login", "conc_logins_per_s", "login: concurrent logins/s", true},
	{"login", "conc_p50_ms", "login: concurrent p50 ms", false},
	{"login", "conc_p99_ms", "login: concurrent p99 ms", false},
	{"login", "server_ms_per_login", "login: server CPU ms/login", false},
	{"messages", "msg_per_s", "messages: delivered msg/s", true},
	{"messages", "p50_ms", "messages: p50 ms", false},
	{"messages", "p99_ms", "messages: p99 ms", false},
	{"messages", "lost", "messages: lost", false},
	{"messages", "server_us_per_msg", "messages: server CPU µs/msg", false},
	{"presence", "notif_per_s", "presence: notifications/s", true},
	{"presence", "p50_ms", "presence: p50 ms", false},
	{"presence", "p99_ms", "presence: p99 ms", false},
	{"presence", "lost", "presence: lost", false},
	{"presence", "server_us_per_notif", "presence: server CPU µs/notification", false},
	{"pep", "notif_per_s", "pep: notifications/s", true},
	{"pep", "p50_ms", "pep: p50 ms", false},
	{"pep", "p99_ms", "pep: p99 ms", false},
	{"pep", "lost", "pep: lost", false},
	{"pep", "publish_errors", "pep: publish IQ errors", false},
	{"pep", "dupes", "pep: duplicate notifications (not counted above)", false},
	{"pep", "server_us_per_notif", "pep: server CPU µs/notification", false},
	{"pep", "publish_p50_ms", "pep: publish IQ p50 ms", false},
	{"pep", "ready_ms", "pep: ready ms (K initial presences with caps to all notified)", false},
	{"pep", "server_ms_per_contact_ready", "pep: server CPU ms/contact until ready", false},
	{"pep", "caps_queries", "pep: caps disco#info queries", false},
	{"idle", "sessions", "idle: sessions held", true},
	{"idle", "kib_per_session", "idle: server KiB RSS/session", false},
	{"idle", "logins_per_s", "idle: logins/s while filling", true},
	{"offline", "store_per_s", "offline: stored msg/s", true},
	{"offline", "drain_per_s", "offline: drained msg/s", true},
	{"offline", "drain_s", "offline: drain s", false},
	{"offline", "lost", "offline: lost", false},
}

// derive adds figures computed from others: server CPU per unit of work and
// the generator's own CPU share.
func derive(r map[string]any) {
	f := func(k string) float64 {
		v, ok := r[k].(float64)
		if !ok {
			return math.NaN()
		}
		return v
	}
	cpu := f("server_cpu_s")
	if v := f("server_cpu_phase_s"); v >= 0 {
		// CPU of the measured phase only, without the logins before it.
		cpu = v
	}
	switch r["scenario"] {
	case "login":
		if n := f("n"); n > 0 && cpu >= 0 && math.IsNaN(f("server_cpu_phase_s")) {
			r["server_ms_per_login"] = round(cpu*1e3/(2*n), 3)
		}
	case "messages":
		if n := f("delivered"); n > 0 && cpu >= 0 {
			r["server_us_per_msg"] = round(cpu*1e6/n, 2)
		}
	case "presence", "pep":
		if n := f("notifications"); n > 0 && cpu >= 0 {
			r["server_us_per_notif"] = round(cpu*1e6/n, 2)
		}
		// pep: from the contacts' initial presence with caps until every
		// contact was notified (roster gets, presences, caps queries, the
		// hub's login, warm-up publishes).
		if k, v := f("k"), f("server_cpu_ready_s"); k > 0 && v >= 0 {
			r["server_ms_per_contact_ready"] = round(v*1e3/k, 3)
		}
	}
	if w := f("wall_s"); w > 0 {
		r["gen_cpu_pct"] = round(100*f("gen_cpu_s")/w, 1)
		if v := f("gen_runq_wait_s"); v >= 0 {
			r["gen_runq_pct"] = round(100*v/w, 1)
		}
		if v := f("server_runq_wait_s"); v >= 0 {
			r["server_runq_pct"] = round(100*v/w, 1)
		}
	}
}

func report(args []string) error {
	fs := flag.NewFlagSet("report", flag.ExitOnError)
	in := fs.String("in", "", "results.jsonl (one scenario result per line)")
	out := fs.String("out", "", "directory for raw.csv, medians.csv, table.md, chart.svg")
	serversF := fs.String("servers", "imppd,prosody,ejabberd", "servers in column order; the first is the reference")
	fs.Parse(args)
	f, err := os.Open(*in)
	if err != nil {
		return err
	}
	defer f.Close()
	servers := strings.Split(*serversF, ",")
	type key struct{ scenario, metric, server string }
	vals := map[key][]float64{}
	failures := map[string][]string{}
	rawF, err := os.Create(filepath.Join(*out, "raw.csv"))
	if err != nil {
		return err
	}
	defer rawF.Close()
	raw := csv.NewWriter(rawF)
	raw.Write([]string{"server", "round", "scenario", "metric", "value"})
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var r map[string]any
		if json.Unmarshal(sc.Bytes(), &r) != nil {
			continue
		}
		derive(r)
		server, _ := r["server"].(string)
		scen, _ := r["scenario"].(string)
		round := fmt.Sprint(r["round"])
		if e, ok := r["error"].(string); ok {
			failures[server] = append(failures[server], fmt.Sprintf("%s (round %s): %s", scen, round, e))
		}
		keys := make([]string, 0, len(r))
		for k := range r {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			v, ok := r[k].(float64)
			if !ok {
				continue
			}
			raw.Write([]string{server, round, scen, k, strconv.FormatFloat(v, 'g', -1, 64)})
			if _, failed := r["error"]; failed && k != "sessions" {
				// A failed run's rates are not comparable; keep only its raw line.
				continue
			}
			vals[key{scen, k, server}] = append(vals[key{scen, k, server}], v)
		}
	}
	raw.Flush()

	med := func(scen, metric, server string) (float64, int) {
		v := vals[key{scen, metric, server}]
		if len(v) == 0 {
			return math.NaN(), 0
		}
		return median(v), len(v)
	}
	medF, err := os.Create(filepath.Join(*out, "medians.csv"))
	if err != nil {
		return err
	}
	mc := csv.NewWriter(medF)
	mc.Write([]string{"scenario", "metric", "label", "better", "server", "median", "runs"})
	rows := append([]figure(nil), figures...)
	for _, s := range scenarioNames {
		rows = append(rows, figure{s, "gen_cpu_pct", s + ": generator CPU % of one core", false},
			figure{s, "server_cpu_other_pct", s + ": other processes on the server's CPU, % (noise)", false},
			figure{s, "gen_cpu_other_pct", s + ": other processes on the generator's CPU, % (noise)", false})
	}
	slices.SortStableFunc(rows, func(a, b figure) int { return scenarioOrder(a.scenario) - scenarioOrder(b.scenario) })
	var md strings.Builder
	md.WriteString("| figure | better |")
	for _, s := range servers {
		md.WriteString(" " + s + " |")
	}
	for _, s := range servers[1:] {
		md.WriteString(" " + servers[0] + "/" + s + " |")
	}
	md.WriteString("\n|---|---|")
	for range len(servers)*2 - 1 {
		md.WriteString("---:|")
	}
	md.WriteString("\n")
	for _, fg := range rows {
		better := "lower"
		if fg.higherBetter {
			better = "higher"
		}
		any := false
		cells := make([]float64, len(servers))
		for i, s := range servers {
			v, n := med(fg.scenario, fg.metric, s)
			cells[i] = v
			if n > 0 {
				any = true
				mc.Write([]string{fg.scenario, fg.metric, fg.label, better, s, strconv.FormatFloat(v, 'g', -1, 64), strconv.Itoa(n)})
			}
		}
		if !any {
			continue
		}
		md.WriteString("| " + fg.label + " | " + better + " |")
		for i := range servers {
			md.WriteString(" " + fmtNum(cells[i]) + " |")
		}
		for i := range servers[1:] {
			md.WriteString(" " + ratio(cells[0], cells[i+1]) + " |")
		}
		md.WriteString("\n")
	}
	mc.Flush()
	medF.Close()
	if len(failures) > 0 {
		md.WriteString("\nFailed runs (excluded from the medians):\n\n")
		for _, s := range servers {
			for _, e := range failures[s] {
				md.WriteString("- " + s + ": " + e + "\n")
			}
		}
	}
	if err := os.WriteFile(filepath.Join(*out, "table.md"), []byte(md.String()), 0o644); err != nil {
		return err
	}
	fmt.Print(md.String())
	return writeChart(filepath.Join(*out, "medians.csv"), filepath.Join(*out, "chart.svg"), servers)
}

// scenarioNames are the scenarios in the table's order.
var scenarioNames = []string{"login", "messages", "presence", "pep", "idle", "offline"}

func scenarioOrder(s string) int { return slices.Index(scenarioNames, s) }

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func fmtNum(v float64) string {
	switch {
	case math.IsNaN(v):
		return "–"
	case v == math.Trunc(v) && math.Abs(v) < 1e9:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case math.Abs(v) >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case math.Abs(v) >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case math.Abs(v) >= 0.1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	default:
		return strconv.FormatFloat(v, 'g', 2, 64)
	}
}

func ratio(a, b float64) string {
	if math.IsNaN(a) || math.IsNaN(b) || b == 0 {
		return "–"
	}
	return strconv.FormatFloat(a/b, 'f', 2, 64)
}

// The chart: grouped bars per figure, one bar per server, drawn from
// medians.csv with nothing but string formatting.

var chartFigures = []struct{ scenario, metric, title string }{
	{"messages", "msg_per_s", "messages: delivered msg/s (higher is better)"},
	{"messages", "p99_ms", "messages: p99 latency ms (lower is better)"},
	{"presence", "notif_per_s", "presence: notifications/s (higher is better)"},
	{"presence", "p99_ms", "presence: p99 fan-out ms (lower is better)"},
	{"pep", "notif_per_s", "pep: notifications/s (higher is better)"},
	{"pep", "server_us_per_notif", "pep: server CPU µs/notification (lower is better)"},
	{"login", "conc_logins_per_s", "login: concurrent logins/s (higher is better)"},
	{"idle", "kib_per_session", "idle: KiB RSS per session (lower is better)"},
}

var chartColors = []string{"#2b6cb0", "#dd6b20", "#38a169", "#805ad5", "#c53030"}

func chartCmd(args []string) error {
	fs := flag.NewFlagSet("chart", flag.ExitOnError)
	in := fs.String("csv", "", "medians.csv written by report")
	out := fs.String("o", "chart.svg", "SVG file to write")
	serversF := fs.String("servers", "imppd,prosody,ejabberd", "servers in bar order")
	fs.Parse(args)
	return writeChart(*in, *out, strings.Split(*serversF, ","))
}

func writeChart(csvPath, svgPath string, servers []string) error {
	f, err := os.Open(csvPath)
	if err != nil {
		return err
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return err
	}
	val := map[string]float64{}
	for _, r := range recs[1:] {
		v, err := strconv.ParseFloat(r[5], 64)
		if err == nil {
			val[r[0]+"|"+r[1]+"|"+r[4]] = v
		}
	}
	// Only the figures of scenarios that were run (a subset run has fewer).
	var figs []struct{ scenario, metric, title string }
	for _, cf := range chartFigures {
		for _, s := range servers {
			if _, ok := val[cf.scenario+"|"+cf.metric+"|"+s]; ok {
				figs = append(figs, cf)
				break
			}
		}
	}
	const pw, ph, cols = 330, 210, 2
	rowsN := (len(figs) + cols - 1) / cols
	W, H := pw*cols+20, ph*rowsN+50
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n", W, H, W, H)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="10" y="18" font-size="14" font-weight="bold">xmppbench: medians per server</text>`+"\n")
	for i, s := range servers {
		fmt.Fprintf(&b, `<rect x="%d" y="28" width="10" height="10" fill="%s"/><text x="%d" y="37">%s</text>`+"\n", 10+i*110, chartColors[i%len(chartColors)], 24+i*110, s)
	}
	for n, cf := range figs {
		x0, y0 := 10+(n%cols)*pw, 50+(n/cols)*ph
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-weight="bold">%s</text>`+"\n", x0, y0+14, cf.title)
		maxV := 0.0
		for _, s := range servers {
			if v, ok := val[cf.scenario+"|"+cf.metric+"|"+s]; ok && v > maxV {
				maxV = v
			}
		}
		base := y0 + ph - 30
		top := y0 + 36
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#444"/>`+"\n", x0, base, x0+pw-30, base)
		bw := (pw - 60) / max(1, len(servers))
		for i, s := range servers {
			v, ok := val[cf.scenario+"|"+cf.metric+"|"+s]
			x := x0 + 15 + i*bw
			fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">%s</text>`+"\n", x+bw/2-5, base+14, s)
			if !ok {
				fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle" fill="#888">n/a</text>`+"\n", x+bw/2-5, base-4)
				continue
			}
			h := 0
			if maxV > 0 {
				h = int(float64(base-top) * v / maxV)
			}
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="%s"/>`+"\n", x, base-h, bw-10, h, chartColors[i%len(chartColors)])
			fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">%s</text>`+"\n", x+bw/2-5, base-h-3, fmtNum(v))
		}
	}
	b.WriteString("</svg>\n")
	return os.WriteFile(svgPath, []byte(b.String()), 0o644)
}
