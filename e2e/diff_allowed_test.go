package e2e

import (
	"regexp"
	"strings"
)

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
// Scenario is a scenario's name, or a prefix ending in "*". Key is a
// regular expression over observation keys (anchored at neither
// end unless it says so). Erase, when set, removes the aspect the reason
// explains from both values: the difference is allowed when the values
// are equal afterwards, so any other difference in the same observation
// still counts. Without Erase any difference in a matching observation is
// allowed.
type diffAllowance struct {
	Scenario  string
	Key       string
	Reason    string // one line, as the scenario's result shows it
	Detail    string // what exactly differs
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
	if prefix, ok := strings.CutSuffix(a.Scenario, "*"); ok {
		if !strings.HasPrefix(scenario, prefix) {
			return false
		}
	} else if a.Scenario != scenario {
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
	scStreamErr  = "6120-stream-errors"
	scFrom       = "6120-from-stamping"
	scIQErrors   = "6120-iq-errors"
	scRecipients = "6121-unknown-recipients"
	scPing       = "xep0199-ping"

	scWalks = "6121-subscription-*" // both walks
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

// eraseXML replaces what re matches in strings (canonical XML) with repl
// (which may refer to re's groups).
func eraseXML(re *regexp.Regexp, repl string) func(v any) any {
	var f func(v any) any
	f = func(v any) any {
		switch x := v.(type) {
		case string:
			return re.ReplaceAllString(x, repl)
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

// eraseField sets a key of every map to nil.
func eraseField(name string) func(v any) any {
	var f func(v any) any
	f = func(v any) any {
		switch x := v.(type) {
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
			if _, ok := out[name]; ok {
				out[name] = nil
			}
			return out
		}
		return v
	}
	return f
}

// reIQTo matches the 'to' attribute of a canonical IQ.
var reIQTo = regexp.MustCompile(`^(<\{jabber:client\}iq(?: [a-z:]+='[^']*')*?) to='[^']*'`)

// diffAllowances is the table of allowed differences.
var diffAllowances = []*diffAllowance{
	// Subscription walks (pairs and states).
	{Scenario: scWalks, Key: `: (alice|bob): roster (get|as pushed)$`, Deviation: true, Erase: eraseApproved,
		Reason: "Prosody deviates from RFC 6121 §3.4, imppd follows the RFC",
		Detail: "Prosody advertises pre-approval and honours it, but never shows approved='true' on the pre-approved roster item"},
	{Scenario: scWalks, Key: `\((alice|bob) (unsubscribe|remove)\): (alice|bob): availability presence received$`, Deviation: true,
		When: moreImppd("unavailable"), Erase: eraseItem("unavailable"),
		Reason: "Prosody deviates from RFC 6121 §3.3.3 and §2.5.2, imppd follows the RFC",
		Detail: "after the subscriber's 'unsubscribe' (§3.3.3), or a roster remove by either party that ends the subscription (§2.5.2), Prosody sends the former subscriber no 'unavailable' from the contact's resources; after the contact's 'unsubscribed' it does"},
	{Scenario: scWalks, Key: `\((alice|bob) subscribe\): (alice|bob): subscription presence received$`,
		When: moreImppd("subscribed"), Erase: eraseItem("subscribed"),
		Reason: "RFC 6121 §3.1.3 vs. §3.1.6 / A.3.3: the auto-reply 'subscribed' may be delivered or dropped",
		Detail: "a request from a user who is already subscribed: the contact's server auto-replies 'subscribed'; imppd delivers it to the user, Prosody drops it (no state change)"},
	{Scenario: scWalks, Key: `: (alice|bob): availability presence received$`, ProsodyPasses: true,
		When: moreProsody("available"), Erase: eraseItem("available"),
		Reason: "RFC 6121 §4 lets a server send a subscriber the contact's current presence again",
		Detail: "Prosody re-sends it when a subscription stanza changes nothing (already subscribed, already approved); imppd does not"},
	{Scenario: scWalks, Key: `\((alice|bob) remove\): (alice|bob): availability presence received$`,
		When: moreProsody("unavailable"), Erase: eraseItem("unavailable"),
		Reason: "RFC 6121 §2.5.2 neither requires nor forbids an 'unavailable' to a contact that was not subscribed",
		Detail: "Prosody sends the contact 'unavailable' on every roster remove, imppd only where the contact was subscribed"},

	// Roster pushes, presence, watcher information.
	{Scenario: scRosterPush, Key: `: the push to .* holds exactly one item$`, Erase: eraseXML(reIQTo, "$1"),
		Reason: "RFC 6120 §8.1.1.1: a stanza from the server without 'to' is addressed to the client",
		Detail: "imppd addresses roster pushes to the resource's full JID, Prosody leaves 'to' out"},
	{Scenario: scRosterPush, Key: `: the push is addressed to .*$`, When: func(_, p any) bool { return canonJSON(eraseOK(p)) == `{"observed":null}` },
		Reason: "RFC 6120 §8.1.1.1: a stanza from the server without 'to' is addressed to the client",
		Detail: "imppd addresses roster pushes to the resource's full JID, Prosody leaves 'to' out"},
	{Scenario: scDropped, Key: `unavailable after its TCP connection dropped`, Erase: eraseField("status"),
		Reason: "RFC 6121 §4.5.3 leaves the content of the unavailable presence the server generates open",
		Detail: "Prosody adds a <status/> with the disconnect reason"},
	{Scenario: scProbe, Key: `^probe of .*: (an answer, if any, is type unsubscribed|carol received)$`, When: prosodySilent,
		Reason: "RFC 6121 §4.3.2 only requires that a non-subscriber's probe reveal no presence",
		Detail: "imppd answers the probe with 'unsubscribed', Prosody stays silent"},
	{Scenario: scProbe, Key: `watcher|listed`,
		Reason: "imppd extension: watcher information (RFC 2778) over XEP-0050",
		Detail: "Prosody has no such command"},
	{Scenario: scWatcher, Key: `watcher|listed|^item |^data: items$`,
		Reason: "imppd extension: watcher information (RFC 2778) over XEP-0050",
		Detail: "Prosody has no such command"},

	// Nonexistent accounts, unknown resources, unreachable domains.
	{Scenario: scUnknown, Key: `^<presence type='subscribe' to='nobody-<n>@localhost'/>: (answered with <presence type='unsubscribed'/>|alice's roster item afterwards)$`,
		Reason: "RFC 6121 is not consistent about a subscribe to a nonexistent account (§3.1.2: an error to the user; §8.5.1: ignored)",
		Detail: "imppd answers 'unsubscribed' (the script's §3.1.3 reading, issue #4), which also clears the ask; Prosody ignores the request, which stays pending"},
	{Scenario: scRecipients, Key: `^message type (headline|groupchat) to a nonexistent account$`,
		Reason: "RFC 6121 §8.5.1 lets the server ignore a message to a nonexistent account or bounce it",
		Detail: "imppd bounces every type but error with service-unavailable, Prosody ignores headline and groupchat"},
	{Scenario: scRecipients, Key: `^presence probe to a nonexistent account$`,
		Reason: "RFC 6121 §8.5.1 lets the server ignore a probe to a nonexistent account or answer 'unsubscribed'",
		Detail: "imppd answers 'unsubscribed', Prosody ignores it"},
	{Scenario: scPing, Key: `^ping to another account's bare JID$`,
		Reason: "RFC 6121 §8.5.2.1.3: the server answers an IQ to a bare JID for the account, as it supports the payload",
		Detail: "Prosody answers a ping itself; imppd answers service-unavailable, as for every payload it does not serve for another account (and as for a nonexistent one)"},
	{Scenario: scIQErrors, Key: `^iq get to a remote domain \(neither server federates\)$`,
		Reason: "RFC 6120 §10.4 leaves the error for an unreachable domain to the server",
		Detail: "imppd (no s2s) answers remote-server-not-found, Prosody with mod_s2s disabled answers not-allowed"},

	// Stream negotiation and stream errors.
	{Scenario: scStream, Key: `^features after STARTTLS: SASL offered, STARTTLS not again$`,
		Erase:  eraseItem("{urn:xmpp:sasl-cb:0}sasl-channel-binding"),
		Reason: "XEP-0440 (channel-binding types next to the mechanisms) is imppd's choice",
		Detail: "Prosody 0.12 does not advertise them"},
	{Scenario: scStream, Key: `^features after STARTTLS: SASL mechanisms$`,
		Reason: "RFC 6120 §6.3.3: the SASL mechanisms offered are the server's choice",
		Detail: "both offer the mandatory SCRAM-SHA-1; Prosody's internal_hashed store has SCRAM-SHA-1 only, and 0.12 offers no -PLUS under TLS 1.3"},
	{Scenario: scStream, Key: `^features after SASL: bind feature children$`,
		Reason: "RFC 6120 §7.4 defines an empty <bind/>; an extra child is ignored by clients",
		Detail: "Prosody adds <required/> (from the RFC 3920bis drafts)"},
	{Scenario: scStream, Key: `^features after SASL: extension features$`,
		Reason: "stream features of XEPs are each server's choice",
		Detail: "XEP-0115 caps, XEP-0198 sm versions, XEP-0352 csi"},
	{Scenario: scStreamErr, Key: `^a stanza (before STARTTLS|after STARTTLS, before authentication)`, Deviation: true,
		Reason: "Prosody deviates from RFC 6120 §4.9.3.12, imppd follows the RFC",
		Detail: "Prosody answers a stanza sent before authentication with a service-unavailable stanza error and keeps the stream; imppd closes it with not-authorized"},
	{Scenario: scStreamErr, Key: `^stream header with the content namespace jabber:server on the c2s port$`,
		Reason: "RFC 6120 §4.9.3.10 requires invalid-namespace only for an unsupported content namespace",
		Detail: "imppd rejects jabber:server on its c2s port, Prosody accepts it"},
	{Scenario: scFrom, Key: `^message with 'from' (another resource of the sender's account|another account|the server's domain)$`,
		Reason: "RFC 6120 §8.1.2.1 / §4.9.3.9: a 'from' that is not the sender's may be overridden or rejected",
		Detail: "Prosody overrides it with the sender's full JID, imppd closes the stream with invalid-from"},
}

// prosodySilent: Prosody's observation is an empty list (or a check that
// observed one).
func prosodySilent(_, p any) bool {
	return canonJSON(eraseOK(p)) == `{"observed":[]}` || canonJSON(p) == "[]"
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
