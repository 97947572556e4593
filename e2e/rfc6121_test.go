package e2e

import (
	"path/filepath"
	"testing"
)

// Issue #4: RFC 6121 with real clients. Each test starts imppd, runs one
// server-agnostic slixmpp script from e2e/clients/slixmpp/rfc6121 against
// it and asserts every check the script reports (see the README there).

// Scenario 1: every ordered pair of the ten subscription actions between
// two clients, each from a fresh pair of accounts, checked against RFC 6121
// Appendix A after every step: both rosters as roster get returns them and
// as the pushes maintain them, the subscription presence delivered, and
// the other party's availability presence (current presence when a
// subscription starts, unavailable when it ends, none without one).
func TestRFC6121SubscriptionPairs(t *testing.T) {
	pool := rfcPool(15)
	s := Start(t, Options{Users: rfcUsers(pool...)})
	cfg := rfcConfigFor(t, s)
	for _, u := range pool {
		cfg.Pool = append(cfg.Pool, rfcUser{JID: u.JID, Password: u.Password})
	}
	res := runRFC6121(t, cfg, "subscription_pairs.py")
	res.assert(t)
	if n, ok := res.Data["cases_total"].(float64); !ok || n != 100 {
		t.Errorf("walked %v cases, want 100", res.Data["cases_total"])
	}
	if r := res.Data["resets"]; r != nil {
		t.Errorf("%v cases did not start from a fresh pair of accounts", r)
	}
	t.Logf("cases failed: %v of %v (%v)", res.Data["cases_failed"], res.Data["cases_total"], res.Data["mode"])
}

// Scenario 1, deeper: each of the ten actions from each state of RFC 6121
// Appendix A.1 (with pre-approvals on either side), each state reached
// from fresh accounts by a prefix of actions that is checked as well.
func TestRFC6121SubscriptionStates(t *testing.T) {
	pool := rfcPool(19)
	s := Start(t, Options{Users: rfcUsers(pool...)})
	cfg := rfcConfigFor(t, s)
	for _, u := range pool {
		cfg.Pool = append(cfg.Pool, rfcUser{JID: u.JID, Password: u.Password})
	}
	res := runRFC6121(t, cfg, "subscription_pairs.py", "--walk", "states")
	res.assert(t)
	if n, ok := res.Data["cases_total"].(float64); !ok || n != 160 {
		t.Errorf("walked %v cases, want 160", res.Data["cases_total"])
	}
	if r := res.Data["resets"]; r != nil {
		t.Errorf("%v cases did not start from a fresh pair of accounts", r)
	}
	t.Logf("cases failed: %v of %v (%v)", res.Data["cases_failed"], res.Data["cases_total"], res.Data["mode"])
}

// rfcScenario runs one single-phase scenario against a fresh server.
func rfcScenario(t *testing.T, script string) *rfcResult {
	s := Start(t, Options{Users: rfcUsers()})
	res := runRFC6121(t, rfcConfigFor(t, s), script)
	res.assert(t)
	return res
}

// Scenario 2: a roster set from one resource is pushed to every resource
// that requested the roster, and to no other (RFC 6121 2.1.6, 2.2).
func TestRFC6121RosterPushInterested(t *testing.T) { rfcScenario(t, "roster_push.py") }

// Scenario 3: mutual subscription, current presence after each approval,
// presence updates both ways, unavailable on logout.
func TestRFC6121MutualPresence(t *testing.T) { rfcScenario(t, "mutual_presence.py") }

// Scenario 4: a subscription request to an offline contact is delivered
// after the contact's next initial presence.
func TestRFC6121PendingRequestAtLogin(t *testing.T) { rfcScenario(t, "pending_at_login.py") }

// Scenario 5: a subscriber sees a resource go unavailable when its TCP
// connection drops (the client process is killed).
func TestRFC6121UnavailableOnDroppedTCP(t *testing.T) {
	res := rfcScenario(t, "dropped_tcp.py")
	t.Logf("unavailable seen %vs after the kill", res.Data["seconds_to_unavailable"])
}

// Scenario 6: a probe from a non-subscriber reveals nothing, and the
// watcher information lists the prober as refused.
func TestRFC6121ProbeByNonSubscriber(t *testing.T) { rfcScenario(t, "probe_nonsubscriber.py") }

// Scenario 7: messages to a bare JID follow resource priorities
// (RFC 6121 8.5.2.1.1).
func TestRFC6121MessagePriority(t *testing.T) { rfcScenario(t, "message_priority.py") }

// Scenario 8: offline messages survive a clean restart and arrive once, in
// order, with XEP-0203 delay and XEP-0359 stanza-id.
func TestRFC6121OfflineAfterRestart(t *testing.T) {
	s := Start(t, Options{Users: rfcUsers()})
	cfg := rfcConfigFor(t, s)
	cfg.State = filepath.Join(t.TempDir(), "state.json")
	runRFC6121(t, cfg, "offline_delay.py", "send").assert(t)
	if t.Failed() {
		return
	}
	s.Restart(t)
	cfg2 := rfcConfigFor(t, s)
	cfg2.State = cfg.State
	runRFC6121(t, cfg2, "offline_delay.py", "receive").assert(t)
}

// Scenario 9: messages and IQs to a nonexistent local account are bounced
// with service-unavailable (RFC 6121 8.5.1).
func TestRFC6121UnknownUser(t *testing.T) { rfcScenario(t, "unknown_user.py") }

// Scenario 10: the watcher information command lists a fetcher and a
// refused watcher, with the fields watcher, kind, count, first, last.
func TestRFC6121WatcherInfo(t *testing.T) { rfcScenario(t, "watcher_info.py") }

// Scenario 11: a roster item, an offline message and a pending subscription
// request survive SIGKILL of the server.
func TestRFC6121PersistenceAfterKill9(t *testing.T) {
	s := Start(t, Options{Users: rfcUsers()})
	cfg := rfcConfigFor(t, s)
	cfg.State = filepath.Join(t.TempDir(), "state.json")
	runRFC6121(t, cfg, "persistence.py", "prepare").assert(t)
	if t.Failed() {
		return
	}
	s.Kill9()
	s.Restart(t)
	cfg2 := rfcConfigFor(t, s)
	cfg2.State = cfg.State
	runRFC6121(t, cfg2, "persistence.py", "verify").assert(t)
}
