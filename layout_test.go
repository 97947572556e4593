package imppd_test

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

// TestImportRule enforces DESIGN.md §1: core imports only the standard
// library; rosters adds core; db adds core, rosters and its driver;
// xmppmap adds core, rosters and mellium; only cmd/imppd (and the black-box
// e2e and bench programs) may see everything, and nothing imports them
// (but e2e's programs share e2e/internal).
func TestImportRule(t *testing.T) {
	const mod = "github.com/imppd/imppd"
	out, err := exec.Command("go", "list", "-deps=false", "-json", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	type pkg struct {
		ImportPath string
		Imports    []string
		Standard   bool
	}
	std := map[string]bool{}
	stdOut, err := exec.Command("go", "list", "std").Output()
	if err != nil {
		t.Fatalf("go list std: %v", err)
	}
	for _, p := range strings.Fields(string(stdOut)) {
		std[p] = true
	}
	under := func(p, prefix string) bool { return p == prefix || strings.HasPrefix(p, prefix+"/") }
	allowed := map[string][]string{
		mod + "/core":    {mod + "/core"},
		mod + "/rosters": {mod + "/core"},
		mod + "/db":      {mod + "/core", mod + "/rosters", "github.com/mattn/go-sqlite3"},
		mod + "/xmppmap": {mod + "/core", mod + "/rosters", mod + "/xmppmap", "mellium.im/", "golang.org/x/"},
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	seen := 0
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		seen++
		for _, imp := range p.Imports {
			if std[imp] {
				continue
			}
			if under(imp, mod+"/cmd") || under(imp, mod+"/e2e") || under(imp, mod+"/bench") {
				// Code shared by the e2e programs lives in e2e/internal,
				// which Go's internal rule keeps to e2e.
				if under(imp, mod+"/e2e/internal") && under(p.ImportPath, mod+"/e2e") {
					continue
				}
				if !under(p.ImportPath, mod+"/cmd") || under(imp, mod+"/e2e") || under(imp, mod+"/bench") {
					t.Errorf("%s imports %s: nothing may import cmd, e2e or bench", p.ImportPath, imp)
				}
				continue
			}
			for prefix, ok := range allowed {
				if !under(p.ImportPath, prefix) {
					continue
				}
				good := false
				for _, a := range ok {
					good = good || under(imp, strings.TrimSuffix(a, "/")) || (strings.HasSuffix(a, "/") && strings.HasPrefix(imp, a))
				}
				// A package's own subpackages (dbtest, coretest...) are its own.
				good = good || under(imp, prefix)
				if !good {
					t.Errorf("%s imports %s, which DESIGN.md §1 does not allow", p.ImportPath, imp)
				}
			}
		}
	}
	if seen < 5 {
		t.Fatalf("go list saw only %d packages", seen)
	}
}
