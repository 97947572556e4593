package e2e

import "testing"

// Unit tests of the differential run's normalisation and of the rules of
// allowed differences; they need no server.

func TestDiffNormalisation(t *testing.T) {
	a, ok := canonXML(`<ns0:message xmlns:ns0="jabber:client" type="chat" id="m-0123456789" to="bob@localhost"><ns0:body>hi 0a1b2c3d4e</ns0:body><delay xmlns="urn:xmpp:delay" stamp="2026-11-22T04:05:06.123Z" from="localhost"/></ns0:message>`)
	if !ok {
		t.Fatal("not parsed as XML")
	}
	b, _ := canonXML(`<message xmlns='jabber:client' to='bob@localhost' id='other' type='chat'><delay xmlns='urn:xmpp:delay' from='localhost' stamp='2020-01-01T00:00:00Z'/><body>hi 9f8e7d6c5b</body></message>`)
	if a != b {
		t.Errorf("equivalent stanzas differ after normalisation:\n%s\n%s", a, b)
	}
	if got := normString("alice@localhost/r1-0a1b2c3d4e at 2026-11-22T04:05:06Z"); got != "alice@localhost/r1-<n> at <time>" {
		t.Errorf("normString: %q", got)
	}
	if got := canonJSON(sortedList(normValue([]any{"b", "a"}))); got != `["a","b"]` {
		t.Errorf("sortedList: %s", got)
	}
}

func TestDiffAllowanceRules(t *testing.T) {
	yes, no := true, false
	const key = "case 1 [x] step 3 (alice unsubscribe): alice: availability presence received"
	obs := func(v any, ok *bool) *diffObs { return &diffObs{Key: key, Value: normValue(v), OK: ok} }
	// Prosody lacks the 'unavailable' imppd sends, and imppd passes: allowed.
	if r := allowanceReasons(scStates, obs([]any{"unavailable"}, &yes), obs([]any{}, &no)); len(r) != 1 {
		t.Errorf("deviation where imppd follows the RFC: reasons %v, want one", r)
	}
	// The same difference where imppd fails its check: not allowed.
	if r := allowanceReasons(scStates, obs([]any{"unavailable"}, &no), obs([]any{}, &no)); r != nil {
		t.Errorf("deviation where imppd fails: allowed by %v", r)
	}
	// imppd lacks it where Prosody sends it: not this allowance.
	if r := allowanceReasons(scStates, obs([]any{}, &no), obs([]any{"unavailable"}, &yes)); r != nil {
		t.Errorf("the reverse difference: allowed by %v", r)
	}
	// Erasing one aspect leaves another difference visible.
	if r := allowanceReasons(scStates, obs([]any{"unavailable"}, &yes), obs([]any{"available", "available"}, &no)); r != nil {
		t.Errorf("two differences, one explained: allowed by %v", r)
	}
	// Another scenario: no allowance.
	if r := allowanceReasons(scMutual, obs([]any{"unavailable"}, &yes), obs([]any{}, &no)); r != nil {
		t.Errorf("wrong scenario: allowed by %v", r)
	}
	// Approved flag: only the flag may differ.
	const rk = "case 1 [x] step 1 (alice subscribed): alice: roster get"
	item := func(approved bool, sub string) *diffObs {
		return &diffObs{Key: rk, Value: normValue(map[string]any{"approved": approved, "ask": nil, "subscription": sub}), OK: &approved}
	}
	if r := allowanceReasons(scPairs, item(true, "none"), item(false, "none")); len(r) != 1 {
		t.Errorf("approved flag: reasons %v, want one", r)
	}
	if r := allowanceReasons(scPairs, item(true, "none"), item(false, "to")); r != nil {
		t.Errorf("approved flag and subscription: allowed by %v", r)
	}
}
