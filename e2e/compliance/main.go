// Command compliance logs in to an XMPP server and reports, for each
// server requirement of XEP-0479 (XMPP Compliance Suites 2023: Core, Web,
// IM, Mobile and A/V, Server and Advanced Server levels) and each test of
// Conversations' compliance tester (iNPUTmice's ComplianceTester and its
// successor, compliance.conversations.im), what the server is expected to
// show, what it showed, and a verdict:
//
//	pass     advertised and, where cheap to check, working
//	fail     advertised but broken, or advertised wrongly
//	not-yet  not advertised or not available: not implemented (or not
//	         enabled) yet
//
// It looks at the stream features before TLS, after TLS and after
// authentication, disco#info of the server and of the account's bare JID,
// disco#items of the server and disco#info of each item (components), and
// exercises cheap behaviour: roster versioning, carbons enable, blocklist
// retrieval, a one-message MAM query, stream management enable and acks,
// CSI, an HTTP upload slot request, the TLS version floor. It changes no
// data on the account except enabling carbons for its own session.
//
// Usage:
//
//	go run ./e2e/compliance -addr 127.0.0.1:5222 -domain example.org \
//	    -user alice -pass secret [-ca cert.pem] [-direct-tls 127.0.0.1:5223] \
//	    [-component 127.0.0.1:5347] [-markdown | -json]
//
// The exit status is 0 when no row failed, 1 when one did, 2 when the
// checker could not log in at all.
package main

import (
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"
)

// Status is a row's verdict.
type Status string

const (
	Pass   Status = "pass"
	Fail   Status = "fail"
	NotYet Status = "not-yet"
)

// Row is one requirement.
type Row struct {
	Requirement string `json:"requirement"`
	Suites      string `json:"suites"`
	Expected    string `json:"expected"`
	Seen        string `json:"seen"`
	Status      Status `json:"status"`
}

type options struct {
	addr, directTLS, component string
	domain, user, pass         string
	caFile                     string
	resource                   string
	timeout                    time.Duration
}

func main() {
	var o options
	var markdown, asJSON bool
	flag.StringVar(&o.addr, "addr", "", "STARTTLS c2s address host:port (required)")
	flag.StringVar(&o.domain, "domain", "", "XMPP domain (default: the JID's domain, or the -addr host)")
	flag.StringVar(&o.user, "user", "", "account: localpart or bare JID (required)")
	flag.StringVar(&o.pass, "pass", "", "password")
	flag.StringVar(&o.caFile, "ca", "", "PEM file of the certificate authority to trust (default: system roots)")
	flag.StringVar(&o.directTLS, "direct-tls", "", "XEP-0368 direct TLS address host:port to check (optional)")
	flag.StringVar(&o.component, "component", "", "XEP-0114 component listener host:port to check (optional)")
	flag.StringVar(&o.resource, "resource", "compliance", "resource to bind")
	flag.DurationVar(&o.timeout, "timeout", 10*time.Second, "timeout of each network exchange")
	flag.BoolVar(&markdown, "markdown", false, "print the table as Markdown")
	flag.BoolVar(&asJSON, "json", false, "print the rows as JSON")
	flag.Parse()
	if o.addr == "" || o.user == "" {
		flag.Usage()
		os.Exit(2)
	}
	if local, dom, ok := strings.Cut(o.user, "@"); ok {
		o.user = local
		if o.domain == "" {
			o.domain = dom
		}
	}
	if o.domain == "" {
		o.domain, _, _ = strings.Cut(o.addr, ":")
	}
	rows, err := run(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "compliance:", err)
		os.Exit(2)
	}
	switch {
	case asJSON:
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rows)
	case markdown:
		writeMarkdown(os.Stdout, rows)
	default:
		writeText(os.Stdout, rows, o)
	}
	for _, r := range rows {
		if r.Status == Fail {
			os.Exit(1)
		}
	}
}

func run(o options) ([]Row, error) {
	var pem []byte
	if o.caFile != "" {
		var err error
		if pem, err = os.ReadFile(o.caFile); err != nil {
			return nil, err
		}
	}
	pool, err := loadPool(pem)
	if err != nil {
		return nil, err
	}
	tlsConfig := &tls.Config{RootCAs: pool, ServerName: o.domain, MinVersion: tls.VersionTLS12}
	s, err := login(o, tlsConfig)
	if err != nil {
		return nil, err
	}
	defer s.c.Close()
	ch := &checker{o: o, s: s, tlsConfig: tlsConfig}
	return ch.all(), nil
}

func counts(rows []Row) map[Status]int {
	n := map[Status]int{}
	for _, r := range rows {
		n[r.Status]++
	}
	return n
}

func writeText(w io.Writer, rows []Row, o options) {
	fmt.Fprintf(w, "XMPP compliance of %s (%s) as %s@%s\n\n", o.domain, o.addr, o.user, o.domain)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "REQUIREMENT\tSUITES\tEXPECTED\tSEEN\tRESULT")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Requirement, r.Suites, r.Expected, r.Seen, r.Status)
	}
	_ = tw.Flush()
	n := counts(rows)
	fmt.Fprintf(w, "\n%d pass, %d fail, %d not-yet\n", n[Pass], n[Fail], n[NotYet])
}

// mdCell escapes a table cell: pipes, newlines, and angle brackets outside
// `code spans` (which Markdown would take for HTML tags).
func mdCell(s string) string {
	var b strings.Builder
	code := false
	for _, r := range s {
		switch {
		case r == '`':
			code = !code
			b.WriteRune(r)
		case r == '|':
			b.WriteString("\\|")
		case r == '\n':
			b.WriteRune(' ')
		case r == '<' && !code:
			b.WriteString("&lt;")
		case r == '>' && !code:
			b.WriteString("&gt;")
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func writeMarkdown(w io.Writer, rows []Row) {
	fmt.Fprintln(w, "| requirement | suites | expected | seen | result |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	for _, r := range rows {
		res := string(r.Status)
		if r.Status != NotYet {
			res = "**" + res + "**"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", mdCell(r.Requirement), mdCell(r.Suites), mdCell(r.Expected), mdCell(r.Seen), res)
	}
	n := counts(rows)
	fmt.Fprintf(w, "\n%d pass, %d fail, %d not-yet.\n", n[Pass], n[Fail], n[NotYet])
}
