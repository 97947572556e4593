package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Third-party clients: slixmpp (Debian's python3-slixmpp, which only
// /usr/bin/python3 can import) and xmpp.js (npm, under
// e2e/clients/xmppjs). e2e/clients/setup.sh installs both. Missing clients
// skip their tests, except with CI=true, where they fail.

const (
	systemPython = "/usr/bin/python3"
	scriptTime   = 60 * time.Second // per script run, above the scripts' own 30s
)

func clientsDir(t *testing.T) string {
	t.Helper()
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, "e2e", "clients")
}

// missing skips the test, or fails it when CI=true.
func missing(t *testing.T, what string) {
	t.Helper()
	msg := what + " is not installed; run e2e/clients/setup.sh"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + " (CI=true: failing instead of skipping)")
	}
	t.Skip(msg)
}

var slixmppCheck = sync.OnceValue(func() error {
	out, err := exec.Command(systemPython, "-c", "import slixmpp").CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s -c 'import slixmpp': %v: %s", systemPython, err, out)
	}
	return nil
})

func requireSlixmpp(t *testing.T) {
	t.Helper()
	if err := slixmppCheck(); err != nil {
		t.Log(err)
		missing(t, "slixmpp (python3-slixmpp for "+systemPython+")")
	}
}

func requireXmppJS(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(clientsDir(t), "xmppjs")
	if _, err := exec.LookPath("node"); err != nil {
		missing(t, "node")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@xmpp", "client", "package.json")); err != nil {
		missing(t, "xmpp.js (e2e/clients/xmppjs/node_modules)")
	}
	return dir
}

// scriptResult is a scenario's "RESULT ok k=v ..." or "RESULT fail reason" line.
type scriptResult struct {
	OK     bool
	Fields map[string]string // of an ok line
	Reason string            // of a fail line
	Line   string
}

func parseResult(stdout string) (scriptResult, bool) {
	for _, line := range strings.Split(stdout, "\n") {
		rest, found := strings.CutPrefix(line, "RESULT ")
		if !found {
			continue
		}
		r := scriptResult{Line: line, Fields: map[string]string{}}
		if kv, ok := strings.CutPrefix(rest, "ok"); ok {
			r.OK = true
			for _, f := range strings.Fields(kv) {
				k, v, _ := strings.Cut(f, "=")
				r.Fields[k] = v
			}
		} else {
			r.Reason = strings.TrimPrefix(rest, "fail ")
		}
		return r, true
	}
	return scriptResult{}, false
}

// runScript runs a client scenario and returns its result line; it fails
// the test if the script printed none or its exit status disagrees.
func runScript(t *testing.T, dir string, env []string, name string, args ...string) scriptResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), scriptTime)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r, ok := parseResult(stdout.String())
	if !ok {
		t.Fatalf("%s %s: no RESULT line (exit: %v)\nstdout:\n%s\nstderr:\n%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	if r.OK != (err == nil) {
		t.Errorf("%s: result %q but exit status %v", name, r.Line, err)
	}
	if !r.OK || testing.Verbose() {
		t.Logf("%s %s\n%s\nstderr:\n%s", name, strings.Join(args, " "), r.Line, stderr.String())
	}
	return r
}

func port(t *testing.T, addr string) string {
	t.Helper()
	_, p := hostPort(t, addr)
	return strconv.Itoa(p)
}

// hostPort splits a listener's address.
func hostPort(t testing.TB, addr string) (string, int) {
	t.Helper()
	host, ps, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	p, err := strconv.Atoi(ps)
	if err != nil {
		t.Fatalf("port of %q: %v", addr, err)
	}
	return host, p
}

var dave = User{JID: "dave@localhost", Password: "dave's pw"}

func TestSlixmpp(t *testing.T) {
	t.Parallel()
	requireSlixmpp(t)
	s := Start(t, Options{Users: append(users(), dave)})
	dir := filepath.Join(clientsDir(t), "slixmpp")
	py := func(t *testing.T, script string, args ...string) scriptResult {
		t.Helper()
		return runScript(t, dir, nil, systemPython, append([]string{script, "--ca", s.CACertPath, "--timeout", "30"}, args...)...)
	}
	starttls := []string{"--port", port(t, s.Addr)}

	t.Run("STARTTLS default mechanism", func(t *testing.T) {
		r := py(t, "login.py", append(starttls, "--jid", alice.JID, "--password", alice.Password)...)
		if !r.OK {
			t.Fatalf("slixmpp login: %s", r.Reason)
		}
		if r.Fields["tls"] != "TLSv1.3" || r.Fields["roster"] != "ok" || r.Fields["ping"] != "ok" {
			t.Errorf("result %q", r.Line)
		}
		// slixmpp 1.8.3 binds SCRAM -PLUS with tls-unique, which TLS 1.3
		// lacks, then sends 'y' with plain SCRAM: both refused, it ends
		// with PLAIN. Shown for the record.
		t.Logf("slixmpp chose %s after refused attempts %s", r.Fields["mech"], r.Fields["failed"])
	})
	for _, mech := range []string{ScramSha256, ScramSha1} {
		t.Run("STARTTLS "+mech, func(t *testing.T) {
			r := py(t, "login.py", append(starttls, "--jid", bob.JID+"/slix", "--password", bob.Password, "--mech", mech, "--no-channel-binding")...)
			if !r.OK {
				t.Fatalf("slixmpp login with %s: %s", mech, r.Reason)
			}
			if r.Fields["mech"] != mech || r.Fields["jid"] != "bob@localhost/slix" || r.Fields["failed"] != "none" {
				t.Errorf("result %q, want mech=%s jid=bob@localhost/slix failed=none", r.Line, mech)
			}
		})
	}
	t.Run("SCRAM-SHA-256 with flag y is refused", func(t *testing.T) {
		// Without --no-channel-binding slixmpp sends GS2 flag 'y' while the
		// server advertises -PLUS: RFC 5802 §6 says fail.
		r := py(t, "login.py", append(starttls, "--jid", carol.JID, "--password", carol.Password, "--mech", ScramSha256)...)
		if r.OK {
			t.Errorf("downgrade accepted: %s", r.Line)
		}
	})
	t.Run("direct TLS", func(t *testing.T) {
		r := py(t, "login.py", "--port", port(t, s.DirectTLSAddr), "--direct-tls", "--jid", alice.JID+"/direct", "--password", alice.Password)
		if !r.OK {
			t.Fatalf("slixmpp direct TLS login: %s", r.Reason)
		}
		if r.Fields["alpn"] != "xmpp-client" || r.Fields["tls"] != "TLSv1.3" || r.Fields["jid"] != "alice@localhost/direct" {
			t.Errorf("result %q, want alpn=xmpp-client tls=TLSv1.3 jid=alice@localhost/direct", r.Line)
		}
	})
	t.Run("message and ping between two slixmpp clients", func(t *testing.T) {
		r := py(t, "exchange.py", append(starttls, "--jid1", bob.JID, "--password1", bob.Password, "--jid2", carol.JID, "--password2", carol.Password)...)
		if !r.OK {
			t.Fatalf("exchange: %s", r.Reason)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		r := py(t, "login.py", append(starttls, "--jid", dave.JID, "--password", "wrong")...)
		if r.OK {
			t.Fatalf("logged in with a wrong password: %s", r.Line)
		}
		if !strings.Contains(r.Reason, "not-authorized") {
			t.Errorf("failure %q does not mention not-authorized", r.Reason)
		}
	})
}

func TestXmppJS(t *testing.T) {
	t.Parallel()
	dir := requireXmppJS(t)
	s := Start(t, Options{Users: append(users(), dave)})
	env := []string{"NODE_EXTRA_CA_CERTS=" + s.CACertPath}
	starttls := "xmpp://localhost:" + port(t, s.Addr)
	direct := "xmpps://localhost:" + port(t, s.DirectTLSAddr)
	node := func(t *testing.T, script string, args ...string) scriptResult {
		t.Helper()
		return runScript(t, dir, env, "node", append([]string{script, "--domain", "localhost", "--timeout", "30"}, args...)...)
	}

	for _, tc := range []struct {
		name, service, mech string
		user                User
	}{
		{"STARTTLS", starttls, "", alice},
		{"direct TLS", direct, "", alice},
		// xmpp.js 0.14 base64-encodes SASL payloads with btoa, i.e. as
		// Latin-1: PLAIN with a non-ASCII password (alice's) sends the
		// wrong bytes. Bob's password is ASCII.
		{"STARTTLS PLAIN", starttls, Plain, bob},
	} {
		t.Run("login "+tc.name, func(t *testing.T) {
			local, domain, _ := strings.Cut(tc.user.JID, "@")
			args := []string{"--service", tc.service, "--username", local, "--password", tc.user.Password, "--resource", "js"}
			if tc.mech != "" {
				args = append(args, "--mech", tc.mech)
			}
			r := node(t, "login.js", args...)
			if !r.OK {
				t.Fatalf("xmpp.js login: %s", r.Reason)
			}
			want := tc.mech
			if want == "" {
				want = ScramSha1 // xmpp.js 0.14's strongest
			}
			jid := local + "@" + domain + "/js"
			if r.Fields["jid"] != jid || r.Fields["mech"] != want || r.Fields["tls"] != "TLSv1.3" || r.Fields["roster"] != "0" || r.Fields["ping"] != "ok" {
				t.Errorf("result %q, want jid=%s mech=%s tls=TLSv1.3 roster=0 ping=ok", r.Line, jid, want)
			}
		})
	}
	t.Run("messages and pings between two xmpp.js clients", func(t *testing.T) {
		r := node(t, "exchange.js", "--service", starttls, "--service2", direct,
			"--username1", "bob", "--password1", bob.Password, "--username2", "carol", "--password2", carol.Password)
		if !r.OK {
			t.Fatalf("exchange: %s", r.Reason)
		}
	})
	t.Run("messages between xmpp.js and Go", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), scriptTime)
		defer cancel()
		cmd := exec.CommandContext(ctx, "node", "echo.js", "--service", starttls, "--domain", "localhost",
			"--username", "bob", "--password", bob.Password, "--resource", "echo", "--count", "2", "--timeout", "30")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), env...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := bufio.NewScanner(out)
		var ready string
		for lines.Scan() {
			if j, ok := strings.CutPrefix(lines.Text(), "READY jid="); ok {
				ready = j
				break
			}
			t.Logf("echo.js: %s", lines.Text())
		}
		if ready != "bob@localhost/echo" {
			_ = cmd.Wait()
			t.Fatalf("echo.js did not get ready (READY %q); stderr:\n%s", ready, stderr.String())
		}
		a := s.LoginWith(t, ClientOptions{JID: alice.JID + "/go", Password: alice.Password})
		for i := 0; i < 2; i++ {
			body := uniqueBody("to xmpp.js")
			a.Sendf("<message type='chat' to='bob@localhost/echo'><body>%s</body></message>", Esc(body))
			m := a.Expect(IOTimeout, "the echo", MessageWithBody("echo: "+body))
			if m.Get("from") != "bob@localhost/echo" {
				t.Errorf("echo from=%q", m.Get("from"))
			}
		}
		var rest strings.Builder
		for lines.Scan() {
			rest.WriteString(lines.Text() + "\n")
		}
		err = cmd.Wait()
		r, ok := parseResult(rest.String())
		if !ok || !r.OK || err != nil || r.Fields["from"] != "alice@localhost/go,alice@localhost/go" {
			t.Errorf("echo.js: %q (exit %v), want RESULT ok with from=alice@localhost/go twice\nstderr:\n%s", rest.String(), err, stderr.String())
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		r := node(t, "login.js", "--service", starttls, "--username", "dave", "--password", "wrong")
		if r.OK {
			t.Fatalf("logged in with a wrong password: %s", r.Line)
		}
		if !strings.Contains(r.Reason, "not-authorized") {
			t.Errorf("failure %q does not mention not-authorized", r.Reason)
		}
	})
}
