package e2e

import "regexp"

// Allowed differences between imppd and Prosody: one line each, with the
// reason. Two kinds:
//
//   - choice: RFC 6120 / 6121 (or the XEP concerned) leaves the server a
//     choice, and the two servers chose differently;
//   - deviation (Deviation: true): Prosody deviates from the RFC and
//     imppd follows it. The scenario keeps asserting the RFC: such an
//     allowance only applies where imppd's observation passes the checks
//     resting on it.
//
// Key is a regular expression over observation keys (anchored at neither
// end unless it says so). Erase, when set, removes the aspect the reason
// explains from both values: the difference is allowed when the values
// are equal afterwards, so any other difference in the same observation
// still counts. Without Erase any difference in a matching observation is
// allowed.
type diffAllowance struct {
	Scenario  string
	Key       string
	Reason    string
	Deviation bool
	Erase     func(v any) any
	// ProsodyPasses: the allowance applies only where Prosody's
	// observation passes the checks resting on it (if any).
	ProsodyPasses bool
	// When, if set, must hold for imppd's and Prosody's values (before
	// erasing; absent observations are the string "(not observed)").
	When func(imppd, prosody any) bool

	re *regexp.Regexp
}

func (a *diffAllowance) matches(scenario, key string) bool {
	if a.Scenario != scenario {
		return false
	}
	if a.re == nil {
		a.re = regexp.MustCompile(a.Key)
	}
	return a.re.MatchString(key)
}

// Names of the scenarios (diff_test.go).
const (
	scPairs      = "6121-subscription-pairs"
	scStates     = "6121-subscription-states"
	scRosterPush = "6121-roster-push"
	scMutual     = "6121-mutual-presence"
	scPending    = "6121-pending-at-login"
	scDropped    = "6121-dropped-tcp"
	scProbe      = "6121-probe-nonsubscriber"
	scPriority   = "6121-message-priority"
	scOffline    = "6121-offline-after-restart"
	scUnknown    = "6121-unknown-user"
	scWatcher    = "6121-watcher-info"
	scPersist    = "6121-persistence-after-kill9"
	scStream     = "6120-stream-negotiation"
	scIQErrors   = "6120-iq-errors"
	scRecipients = "6121-unknown-recipients"
	scPing       = "xep0199-ping"
)

// Erasers.

// eraseApproved sets approved=false in a roster item (or in a check's
// observed item).
func eraseApproved(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = eraseApproved(e)
		}
		if _, ok := out["approved"]; ok {
			out["approved"] = false
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = eraseApproved(e)
		}
		return out
	}
	return v
}

// eraseItem removes a string from lists.
func eraseItem(item string) func(v any) any {
	return func(v any) any {
		switch x := v.(type) {
		case []any:
			var out []any
			for _, e := range x {
				if s, ok := e.(string); ok && s == item {
					continue
				}
				out = append(out, eraseItem(item)(e))
			}
			if out == nil {
				out = []any{}
			}
			return out
		case map[string]any:
			out := make(map[string]any, len(x))
			for k, e := range x {
				out[k] = eraseItem(item)(e)
			}
			return out
		}
		return v
	}
}

// eraseXML removes elements matching re from canonical XML strings.
func eraseXML(re *regexp.Regexp) func(v any) any {
	var f func(v any) any
	f = func(v any) any {
		switch x := v.(type) {
		case string:
			return re.ReplaceAllString(x, "")
		case []any:
			out := make([]any, len(x))
			for i, e := range x {
				out[i] = f(e)
			}
			return out
		case map[string]any:
			out := make(map[string]any, len(x))
			for k, e := range x {
				out[k] = f(e)
			}
			return out
		}
		return v
	}
	return f
}

// eraseOK drops a check's outcome, keeping what it observed.
func eraseOK(v any) any {
	if m, ok := v.(map[string]any); ok {
		out := make(map[string]any, len(m))
		for k, e := range m {
			if k != "ok" {
				out[k] = e
			}
		}
		return out
	}
	return v
}

func chain(fs ...func(any) any) func(any) any {
	return func(v any) any {
		for _, f := range fs {
			v = f(v)
		}
		return v
	}
}

var reStanzaID = regexp.MustCompile(`<\{urn:xmpp:sid:0\}stanza-id [^>]*/>`)

// diffAllowances is the table of allowed differences.
var diffAllowances = []*diffAllowance{
	// Subscription walks.
	{Scenario: scPairs, Key: `\((alice|bob) subscribe\): (alice|bob): subscription presence received$`,
		When: moreImppd("subscribed"), Erase: eraseItem("subscribed"),
		Reason: "RFC 6121 §3.1.3 makes the contact's server auto-reply 'subscribed' to a request from a subscriber; §3.1.6 / A.3.3 ('no state change') let the user's server drop it: imppd delivers it, Prosody drops it"},
	{Scenario: scStates, Key: `\((alice|bob) subscribe\): (alice|bob): subscription presence received$`,
		When: moreImppd("subscribed"), Erase: eraseItem("subscribed"),
		Reason: "RFC 6121 §3.1.3 makes the contact's server auto-reply 'subscribed' to a request from a subscriber; §3.1.6 / A.3.3 ('no state change') let the user's server drop it: imppd delivers it, Prosody drops it"},
	{Scenario: scPairs, Key: `: (alice|bob): availability presence received$`, ProsodyPasses: true,
		When: moreProsody("available"), Erase: eraseItem("available"),
		Reason: "RFC 6121 §4 lets a server send a subscriber the contact's current presence at any time: Prosody re-sends it when a subscription stanza changes nothing (already subscribed or approved), imppd does not"},
	{Scenario: scStates, Key: `: (alice|bob): availability presence received$`, ProsodyPasses: true,
		When: moreProsody("available"), Erase: eraseItem("available"),
		Reason: "RFC 6121 §4 lets a server send a subscriber the contact's current presence at any time: Prosody re-sends it when a subscription stanza changes nothing (already subscribed or approved), imppd does not"},
	{Scenario: scPairs, Key: `: (alice|bob): roster (get|as pushed)$`, Deviation: true, Erase: eraseApproved,
		Reason: "Prosody deviates from RFC 6121 §3.4 (it advertises pre-approval but never shows approved='true' on the item), imppd follows the RFC"},
	{Scenario: scStates, Key: `: (alice|bob): roster (get|as pushed)$`, Deviation: true, Erase: eraseApproved,
		Reason: "Prosody deviates from RFC 6121 §3.4 (it advertises pre-approval but never shows approved='true' on the item), imppd follows the RFC"},
	{Scenario: scStates, Key: `\((alice|bob) (unsubscribe|remove)\): (alice|bob): availability presence received$`, Deviation: true,
		When: moreImppd("unavailable"), Erase: eraseItem("unavailable"),
		Reason: "Prosody deviates from RFC 6121 §3.3.3 / §2.5.2 (no unavailable to the former subscriber after unsubscribe or roster remove), imppd follows the RFC"},
	{Scenario: scPairs, Key: `\((alice|bob) remove\): (alice|bob): availability presence received$`,
		When: moreProsody("unavailable"), Erase: eraseItem("unavailable"),
		Reason: "RFC 6121 §2.5.2 neither requires nor forbids it: Prosody sends 'unavailable' to the contact on every roster remove, imppd only to a contact that was subscribed"},
	{Scenario: scStates, Key: `\((alice|bob) remove\): (alice|bob): availability presence received$`,
		When: moreProsody("unavailable"), Erase: eraseItem("unavailable"),
		Reason: "RFC 6121 §2.5.2 neither requires nor forbids it: Prosody sends 'unavailable' to the contact on every roster remove, imppd only to a contact that was subscribed"},
}

// allowanceReasons lists the reasons of the allowances that explain the
// difference between imppd's and Prosody's observation o (nil: none
// does).
func allowanceReasons(scenario string, imppd, prosody *diffObs) []string {
	key := ""
	if imppd != nil {
		key = imppd.Key
	} else {
		key = prosody.Key
	}
	var applicable []*diffAllowance
	for _, a := range diffAllowances {
		if !a.matches(scenario, key) {
			continue
		}
		if a.Deviation && (imppd == nil || imppd.OK == nil || !*imppd.OK) {
			continue // imppd must show the RFC behaviour
		}
		if a.ProsodyPasses && (prosody == nil || prosody.OK != nil && !*prosody.OK) {
			continue
		}
		if a.When != nil && !a.When(valueOf(imppd), valueOf(prosody)) {
			continue
		}
		applicable = append(applicable, a)
	}
	if len(applicable) == 0 {
		return nil
	}
	iv, pv := valueOf(imppd), valueOf(prosody)
	var reasons []string
	for _, a := range applicable {
		if a.Erase == nil {
			return []string{a.Reason}
		}
		ei, ep := a.Erase(iv), a.Erase(pv)
		if canonJSON(ei) != canonJSON(iv) || canonJSON(ep) != canonJSON(pv) {
			reasons = append(reasons, a.Reason)
		}
		iv, pv = ei, ep
	}
	if canonJSON(iv) != canonJSON(pv) {
		return nil
	}
	return reasons
}

func valueOf(o *diffObs) any {
	if o == nil {
		return absent
	}
	return o.Value
}

// count is how often a list value holds the string s.
func count(v any, s string) int {
	l, _ := v.([]any)
	n := 0
	for _, e := range l {
		if e == s {
			n++
		}
	}
	return n
}

// moreImppd and moreProsody: the list holds s more often on one side.
func moreImppd(s string) func(i, p any) bool {
	return func(i, p any) bool { return count(i, s) > count(p, s) }
}

func moreProsody(s string) func(i, p any) bool {
	return func(i, p any) bool { return count(p, s) > count(i, s) }
}

// absent stands for an observation one server did not make.
const absent = "(not observed)"
