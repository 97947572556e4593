package rosters_test

import (
	"fmt"
	"testing"

	"github.com/imppd/imppd/core"
	"github.com/imppd/imppd/rosters"
)

// appendixA maps each subscription state of RFC 6121 Appendix A (as the
// user, owner of the roster, sees the contact) to the two directional core
// subscriptions: out, the user watching the contact, and in, the contact
// watching the user.
var appendixA = []struct {
	name    string
	out, in core.SubState
	sub     rosters.Sub
	ask     bool // ask='subscribe': "Pending Out"
	pending bool // "Pending In" (no attribute on the wire)
}{
	{"None", core.SubNone, core.SubNone, rosters.None, false, false},
	{"None + Pending Out", core.SubPending, core.SubNone, rosters.None, true, false},
	{"None + Pending In", core.SubNone, core.SubPending, rosters.None, false, true},
	{"None + Pending Out/In", core.SubPending, core.SubPending, rosters.None, true, true},
	{"To", core.SubActive, core.SubNone, rosters.To, false, false},
	{"To + Pending In", core.SubActive, core.SubPending, rosters.To, false, true},
	{"From", core.SubNone, core.SubActive, rosters.From, false, false},
	{"From + Pending Out", core.SubPending, core.SubActive, rosters.From, true, false},
	{"Both", core.SubActive, core.SubActive, rosters.Both, false, false},
}

// TestComposeAppendixA proves that Compose yields exactly Appendix A's nine
// states, plus approved='true' (§3.4) where a pre-approval can exist: when
// the contact does not watch the user and has not asked to.
func TestComposeAppendixA(t *testing.T) {
	states := []core.SubState{core.SubNone, core.SubPending, core.SubActive}
	covered := map[[2]core.SubState]string{}
	for _, a := range appendixA {
		if prev, dup := covered[[2]core.SubState{a.out, a.in}]; dup {
			t.Fatalf("%q and %q map to the same subscriptions", prev, a.name)
		}
		covered[[2]core.SubState{a.out, a.in}] = a.name
		for _, approved := range []bool{false, true} {
			if approved && a.in != core.SubNone {
				// Unreachable: core never keeps a pre-approval next to a
				// pending or active subscription (core's Transition tests).
				continue
			}
			for _, outPre := range []bool{false, true} {
				if outPre && a.out != core.SubNone {
					continue
				}
				name := fmt.Sprintf("%s/approved=%v/contact pre-approved=%v", a.name, approved, outPre)
				t.Run(name, func(t *testing.T) {
					it := rosters.Item{Contact: "c@x", Name: "C", Groups: []string{"g"}}
					out := core.Subscription{Presentity: "c@x", Watcher: "u@x", State: a.out, PreApproved: outPre}
					in := core.Subscription{Presentity: "u@x", Watcher: "c@x", State: a.in, PreApproved: approved}
					e := rosters.Compose(it, out, in)
					want := rosters.Entry{Item: it, Subscription: a.sub, Ask: a.ask, Approved: approved, PendingIn: a.pending}
					if e.Contact != want.Contact || e.Name != want.Name || len(e.Groups) != 1 ||
						e.Subscription != want.Subscription || e.Ask != want.Ask || e.Approved != want.Approved || e.PendingIn != want.PendingIn {
						t.Errorf("Compose = %+v, want %+v", e, want)
					}
					if got := stateName(e); got != a.name {
						t.Errorf("entry reads back as %q", got)
					}
				})
			}
		}
	}
	// The nine states are all the combinations of the two directions.
	for _, o := range states {
		for _, i := range states {
			if _, ok := covered[[2]core.SubState{o, i}]; !ok {
				t.Errorf("out=%s in=%s has no Appendix A state", o, i)
			}
		}
	}
	for s, want := range map[rosters.Sub]string{rosters.None: "none", rosters.To: "to", rosters.From: "from", rosters.Both: "both", rosters.Remove: "remove"} {
		if s.String() != want {
			t.Errorf("Sub(%d) = %q, want %q", s, s, want)
		}
	}
}

// stateName reads an entry as an Appendix A state name.
func stateName(e rosters.Entry) string {
	name := map[rosters.Sub]string{rosters.None: "None", rosters.To: "To", rosters.From: "From", rosters.Both: "Both"}[e.Subscription]
	switch {
	case e.Ask && e.PendingIn:
		name += " + Pending Out/In"
	case e.Ask:
		name += " + Pending Out"
	case e.PendingIn:
		name += " + Pending In"
	}
	return name
}
