package e2e

import (
	"testing"
)

// Issue "PEP, avatars, bookmarks": two of its done-when items with a real
// client's own plugins (slixmpp 1.8.3), each across a server restart:
//
//   - TestProfileSlixmppBookmarks (e2e/clients/slixmpp/xeps/bookmarks.py):
//     bookmarks stored through XEP-0048 (xep_0048 over private XML) are
//     read as XEP-0402 items, and XEP-0402 items published and retracted
//     as nbxmpp does are read through XEP-0048; a contact with +notify is
//     refused and told nothing;
//   - TestProfileSlixmppAvatars (e2e/clients/slixmpp/xeps/avatars.py): an
//     avatar set through XEP-0084 (xep_0084) is a contact's vCard PHOTO
//     (xep_0054) and the hash in presence (XEP-0153), and a vCard PHOTO set
//     with xep_0054 is XEP-0084 metadata and data (XEP-0398).
//
//	go test -run 'ProfileSlixmpp' -v ./e2e/

func TestProfileSlixmppBookmarks(t *testing.T) {
	t.Parallel()
	requireSlixmpp(t)
	users := map[string]User{
		"alice": {JID: "bm-alice@localhost", Password: "bm alice ünï"},
		"bob":   {JID: "bm-bob@localhost", Password: "bm bob ünï"},
	}
	profileScenario(t, users, "bookmarks.py", "store", nil)
}

func TestProfileSlixmppAvatars(t *testing.T) {
	t.Parallel()
	requireSlixmpp(t)
	users := map[string]User{
		"alice": {JID: "av-alice@localhost", Password: "av alice ünï"},
		"bob":   {JID: "av-bob@localhost", Password: "av bob ünï"},
		"carol": {JID: "av-carol@localhost", Password: "av carol ünï"},
	}
	profileScenario(t, users, "avatars.py", "set", func(t *testing.T, r *xepResult) {
		// imppd creates the avatar nodes of a vCard PHOTO open, as the
		// vCard is (xmppmap/vcard: avatarNode; XEP-0054 §5, XEP-0398 §6),
		// so the script's stranger read them.
		access, _ := r.Data["vcard_node_access"].(map[string]any)
		for _, node := range []string{"urn:xmpp:avatar:metadata", "urn:xmpp:avatar:data"} {
			if access[node] != "open" {
				t.Errorf("the %s node made from a vCard has access model %v, want open", node, jsonText(access[node]))
			}
		}
	})
}

// profileScenario starts a server with users, runs script's first phase
// (and check, if not nil, on its report), restarts the server and runs its
// after-restart phase with the state the first phase reported (data.state,
// handed back as expect.state).
func profileScenario(t *testing.T, users map[string]User, script, first string, check func(*testing.T, *xepResult)) {
	t.Helper()
	var list []User
	for _, u := range users {
		list = append(list, u)
	}
	s := Start(t, Options{Users: list})

	res := runXEPScript(t, xepScriptConfig(t, s, users, nil), script, "--phase", first)
	res.assert(t)
	if len(res.Errors) > 0 {
		t.FailNow()
	}
	if check != nil {
		check(t, res)
	}
	state, _ := res.Data["state"].(map[string]any)
	if len(state) == 0 {
		t.Fatalf("the report of phase %s has no state: %s", first, jsonText(res.Data))
	}

	s.Restart(t)
	res = runXEPScript(t, xepScriptConfig(t, s, users, map[string]any{"state": state}), script, "--phase", "after-restart")
	res.assert(t)
}

// xepScriptConfig is the configuration of a scenario (clients/slixmpp/xeps)
// with users as its roles, for the server as it runs now (its port changes
// on restart). TestPEPSlixmpp uses it too.
func xepScriptConfig(t *testing.T, s *Server, users map[string]User, expect map[string]any) xepConfig {
	t.Helper()
	host, port := hostPort(t, s.Addr)
	cfg := xepConfig{
		Host: host, Port: port, Domain: s.Domain, CA: s.CACertPath,
		Timeout: xepEventTimeout.Seconds(), TotalTimeout: xepTotalTimeout.Seconds(),
		Mech:   ScramSha256,
		Users:  map[string]xepAccount{},
		Expect: expect,
	}
	for role, u := range users {
		cfg.Users[role] = xepAccount{JID: u.JID, Password: u.Password}
	}
	return cfg
}
