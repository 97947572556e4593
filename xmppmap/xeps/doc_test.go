package xeps

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/imppd/imppd/core"
	"github.com/imppd/imppd/xmppmap"
)

// Markdown renders the registry as docs/XEPS.md.
func markdown(x []xmppmap.XEP) string {
	var b strings.Builder
	b.WriteString("# Compiled-in XEPs\n\nGenerated from `xmppmap/xeps` and the extensions built into `xmppmap` by\n`IMPPD_UPDATE_DOCS=1 go test ./xmppmap/xeps`; do not edit by hand.\n\n")
	b.WriteString("| XEP | title | version | status | disco features |\n|---|---|---|---|---|\n")
	for _, e := range x {
		fs := append(append([]string(nil), e.Features...), e.AccountFeatures...)
		feat := strings.Join(dedup(fs), "<br>")
		fmt.Fprintf(&b, "| [XEP-%04d](https://xmpp.org/extensions/xep-%04d.html) | %s | %s | %s | %s |\n", e.Number, e.Number, e.Title, e.Version, e.Status, feat)
	}
	return b.String()
}

func dedup(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, "`"+s+"`")
		}
	}
	return out
}

func TestDocsUpToDate(t *testing.T) {
	engine := core.New(core.Config{})
	srv, err := xmppmap.New(xmppmap.Config{Domains: []string{"localhost"}}, engine, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv.Use(Modules(Options{Version: "test", Blocklists: noBlocklists{}, Archive: noArchive{}, Accounts: noAccounts{}, PEP: noPEP{}, AccountData: noData{}})...)
	want := markdown(srv.XEPs())
	const path = "../../docs/XEPS.md"
	if os.Getenv("IMPPD_UPDATE_DOCS") != "" {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil || string(got) != want {
		t.Fatalf("docs/XEPS.md is stale: run IMPPD_UPDATE_DOCS=1 go test ./xmppmap/xeps")
	}
	for _, e := range srv.XEPs() {
		if e.Number == 0 || e.Title == "" || e.Version == "" || e.Status == "" {
			t.Errorf("incomplete XEP entry %+v", e)
		}
	}
}

type noBlocklists struct{}

func (noBlocklists) Blocklist(context.Context, core.PrincipalID) ([]string, error) { return nil, nil }
func (noBlocklists) Block(context.Context, core.PrincipalID, []string) error       { return nil }
func (noBlocklists) Unblock(context.Context, core.PrincipalID, []string) error     { return nil }

type noArchive struct{}

func (noArchive) AppendArchive(context.Context, []core.ArchiveEntry) error { return nil }
func (noArchive) QueryArchive(context.Context, core.ArchiveQuery) (core.ArchivePage, error) {
	return core.ArchivePage{}, nil
}
func (noArchive) ArchivePrefs(context.Context, core.PrincipalID) (core.ArchivePrefs, error) {
	return core.ArchivePrefs{}, nil
}
func (noArchive) SetArchivePrefs(context.Context, core.PrincipalID, core.ArchivePrefs) error {
	return nil
}
func (noArchive) PruneArchive(context.Context, time.Time) (int64, error) { return 0, nil }

type noAccounts struct{}

func (noAccounts) CreateAccount(context.Context, core.Account) error     { return nil }
func (noAccounts) DeleteAccount(context.Context, core.PrincipalID) error { return nil }
func (noAccounts) Account(context.Context, core.PrincipalID) (core.Account, error) {
	return core.Account{}, nil
}
func (noAccounts) SetCredentials(context.Context, core.PrincipalID, []core.Credentials) error {
	return nil
}
func (noAccounts) ListAccounts(context.Context) ([]core.PrincipalID, error) { return nil, nil }

type noPEP struct{}

func (noPEP) PubNode(context.Context, core.PrincipalID, string) (core.MarkupNode, bool, error) {
	return core.MarkupNode{}, false, nil
}
func (noPEP) PubNodes(context.Context, ...core.PrincipalID) ([]core.MarkupNode, error) {
	return nil, nil
}
func (noPEP) PutPubNode(context.Context, core.MarkupNode) error { return nil }
func (noPEP) DeletePubNode(context.Context, core.PrincipalID, string) (bool, error) {
	return false, nil
}
func (noPEP) PublishItem(context.Context, core.PrincipalID, string, core.NodeConfig, core.MarkupItem, int) error {
	return nil
}
func (noPEP) RetractItem(context.Context, core.PrincipalID, string, string) (bool, error) {
	return false, nil
}
func (noPEP) PubItems(context.Context, core.PrincipalID, string, []string, int) ([]core.MarkupItem, error) {
	return nil, nil
}

type noData struct{}

func (noData) AccountData(context.Context, core.PrincipalID, string) ([]byte, error) { return nil, nil }
func (noData) PutAccountData(context.Context, core.PrincipalID, string, []byte) error {
	return nil
}
func (noPEP) TrimItems(context.Context, core.PrincipalID, string, int) error { return nil }
func (noPEP) PubBytes(context.Context, core.PrincipalID) (int64, error)      { return 0, nil }

// TestDisabledPEP: switching PEP off takes what lives in it along, and
// leaves what does not.
func TestDisabledPEP(t *testing.T) {
	nums := func(disabled ...int) map[int]bool {
		out := map[int]bool{}
		for _, m := range Modules(Options{Version: "t", Blocklists: noBlocklists{}, Archive: noArchive{}, Accounts: noAccounts{},
			PEP: noPEP{}, AccountData: noData{}, Disabled: disabled}) {
			out[m.XEP().Number] = true
		}
		return out
	}
	all := nums()
	for _, n := range []int{49, 54, 60, 84, 115, 153, 163, 398, 402, 411, 48} {
		if !all[n] {
			t.Errorf("XEP-%04d missing by default", n)
		}
	}
	off := nums(163)
	for _, n := range []int{60, 84, 163, 398, 402, 411, 48} {
		if off[n] {
			t.Errorf("XEP-%04d still there without PEP", n)
		}
	}
	for _, n := range []int{49, 54, 115, 153} {
		if !off[n] {
			t.Errorf("XEP-%04d gone with PEP", n)
		}
	}
	// The bookmark conversion is one module for three numbers.
	noConv := nums(411)
	for _, n := range []int{48, 402, 411} {
		if noConv[n] {
			t.Errorf("XEP-%04d still there with 411 off", n)
		}
	}
	if !noConv[163] || !noConv[49] {
		t.Error("switching off 411 took PEP or private storage along")
	}
}
