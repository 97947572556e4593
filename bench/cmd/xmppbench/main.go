// Command xmppbench is a load generator for XMPP servers: it measures imppd
// and its peers (Prosody, ejabberd) with the same client code, over
// STARTTLS + SCRAM + resource binding, on loopback only.
//
//	xmppbench SCENARIO [flags]     run one scenario, print one JSON line
//	xmppbench setup [flags]        warm the SCRAM key cache, build the presence roster
//	xmppbench prosody-accounts     write Prosody account files directly (bulk users)
//	xmppbench report [flags]       results.jsonl -> CSV, markdown table, SVG chart
//
// Scenarios: login, messages, presence, pep, idle, offline. Each is bounded in
// connections and time and stops by itself.
package main

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"time"
)

const usage = `usage: xmppbench login|messages|presence|pep|idle|offline|setup [flags]
       xmppbench prosody-accounts -dir DIR -users N [...]
       xmppbench report -in results.jsonl -out DIR
Run "xmppbench SUBCOMMAND -h" for the flags.`

// result is one scenario's JSON line.
type result map[string]any

type opts struct {
	target
	server   string
	pid      int
	round    int
	prefix   string
	conc     int
	n        int
	pairs    int
	duration time.Duration
	window   int
	k        int
	r        int
	first    int // first user index of a scenario's range
	users    int
	res      int
	hold     time.Duration
	m        int
	hub      string
	rx, tx   string
	drain    time.Duration
	settle   time.Duration
	cacheF   string
	contacts int // first contact index for setup/presence
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	cmd, args := os.Args[1], os.Args[2:]
	switch cmd {
	case "report":
		exit(report(args))
	case "chart":
		exit(chartCmd(args))
	case "prosody-accounts":
		exit(prosodyAccounts(args))
	case "login", "messages", "presence", "pep", "idle", "offline", "setup":
	default:
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	o := &opts{}
	fs := flag.NewFlagSet(cmd, flag.ExitOnError)
	fs.StringVar(&o.addr, "addr", "127.0.0.1:5222", "STARTTLS c2s address (loopback only)")
	fs.StringVar(&o.domain, "domain", "localhost", "XMPP domain")
	fs.StringVar(&o.password, "password", "benchpass", "password of every bench user")
	fs.StringVar(&o.mech, "mech", "SCRAM-SHA-1", "SASL mechanism (SCRAM-SHA-1 or SCRAM-SHA-256; empty: best offered)")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "connect-to-bind timeout per login")
	fs.StringVar(&o.server, "server", "", "label of the server under test (copied to the result)")
	fs.IntVar(&o.pid, "pid", 0, "server process id, for its CPU time and RSS")
	fs.IntVar(&o.round, "round", 0, "round number (copied to the result)")
	fs.StringVar(&o.prefix, "prefix", "u", "user names are PREFIX0, PREFIX1, ...")
	fs.StringVar(&o.cacheF, "cache", "", "file caching SCRAM SaltedPasswords between runs")
	fs.IntVar(&o.conc, "c", 50, "login concurrency")
	fs.IntVar(&o.n, "n", 200, "login: users logging in (sequential pass, then concurrent pass)")
	fs.IntVar(&o.first, "first", 0, "index of the first user of the scenario")
	fs.IntVar(&o.pairs, "pairs", 100, "messages: online pairs")
	fs.DurationVar(&o.duration, "t", 10*time.Second, "messages: sending time; presence/pep with -r 0: changes/publishes for this long")
	fs.IntVar(&o.window, "window", 16, "messages: in-flight messages per sender; presence: in-flight changes; pep: in-flight publishes")
	fs.IntVar(&o.k, "k", 200, "presence/pep/setup: contacts of the hub user")
	fs.IntVar(&o.contacts, "contacts", 200, "presence/pep/setup: index of the first contact user")
	fs.IntVar(&o.r, "r", 100, "presence: presence changes; pep: items published (0: for -t)")
	fs.StringVar(&o.hub, "hub", "hub", "presence/pep/setup: the user with K contacts")
	fs.IntVar(&o.users, "users", 500, "idle: distinct users; setup: users u0..N-1 to warm")
	fs.IntVar(&o.res, "resources", 10, "idle: sessions per user")
	fs.DurationVar(&o.hold, "hold", 5*time.Second, "idle: how long the sessions are held after the RSS reading")
	fs.IntVar(&o.m, "m", 2000, "offline: messages sent to the offline user")
	fs.StringVar(&o.rx, "rx", "o0", "offline: receiving user")
	fs.StringVar(&o.tx, "tx", "o1", "offline: sending user")
	fs.DurationVar(&o.drain, "drain", 15*time.Second, "longest wait for in-flight stanzas at the end")
	fs.DurationVar(&o.settle, "settle", 2*time.Second, "idle: settling time before each RSS reading")
	fs.Parse(args)
	if err := checkLoopback(o.addr); err != nil {
		exit(err)
	}
	o.tls = &tls.Config{InsecureSkipVerify: true, ServerName: o.domain}
	o.cache = loadKeyCache(o.cacheF)
	raiseNofile()

	var r result
	var err error
	m := startMeter(o.pid)
	switch cmd {
	case "login":
		r, err = runLogin(o)
	case "messages":
		r, err = runMessages(o)
	case "presence":
		r, err = runPresence(o)
	case "pep":
		r, err = runPEP(o)
	case "idle":
		r, err = runIdle(o)
	case "offline":
		r, err = runOffline(o)
	case "setup":
		r, err = runSetup(o)
	}
	if serr := o.cache.save(); serr != nil {
		fmt.Fprintln(os.Stderr, "xmppbench: saving key cache:", serr)
	}
	if r == nil {
		r = result{}
	}
	r["scenario"] = cmd
	r["server"] = o.server
	r["round"] = o.round
	r["scram_cache_misses"] = o.cache.misses.Load()
	m.fill(r)
	if err != nil {
		r["error"] = err.Error()
	}
	b, _ := json.Marshal(r)
	fmt.Println(string(b))
	if err != nil {
		os.Exit(1)
	}
}

func exit(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "xmppbench:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// checkLoopback refuses any target outside 127.0.0.0/8 and ::1.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%s is not a loopback address: xmppbench only loads servers on this machine", addr)
	}
	return nil
}

// raiseNofile lifts the soft open-files limit to the hard one.
func raiseNofile() {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) == nil && l.Cur < l.Max {
		l.Cur = l.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}

func (o *opts) user(i int) string { return fmt.Sprintf("%s%d", o.prefix, i) }

func (o *opts) bare(user string) string { return user + "@" + o.domain }

// errs counts errors by message, keeping a few for the report.
type errs struct {
	n     int
	first []string
}

func (e *errs) add(err error) {
	e.n++
	if len(e.first) < 3 {
		e.first = append(e.first, err.Error())
	}
}

func (e *errs) err() error {
	if e.n == 0 {
		return nil
	}
	return fmt.Errorf("%d errors, first: %s", e.n, strings.Join(e.first, " | "))
}

var errTimeout = errors.New("timed out")
