package e2e

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// Observations of the differential runs (diff_test.go): what a scenario
// saw on one server, in a normalised form that is equal on two servers
// that behave alike. Normalisation masks what legitimately varies from run
// to run or server to server: the scripts' random nonces (in resources,
// ids and bodies), stanza ids, XEP-0359 stanza-id values, timestamps,
// stream ids and roster versions; XML is compared as canonical text
// (attributes sorted, namespaces written in Clark notation where they
// change, children in sorted order, since RFC 6120 gives the order of a
// stanza's children no meaning); lists the RFC leaves unordered (stanzas of
// one step, roster items) are sorted.

// diffObs is one observation.
type diffObs struct {
	Key    string // unique within the scenario, equal on both servers
	Value  any    // normalised JSON-like value (nil, bool, float64, string, []any, map[string]any)
	OK     *bool  // nil when no check rests on it, else whether all of them passed
	Failed []string
	RFC    string
	Stanza string
}

func (o *diffObs) text() string {
	if o == nil {
		return "(not observed)"
	}
	return canonJSON(o.Value)
}

// diffSideResult is what one server showed in one scenario.
type diffSideResult struct {
	Obs          []*diffObs
	Checks       int // must and should checks the scenario made
	MustFailed   []string
	ShouldFailed []string
}

func (r *diffSideResult) byKey() map[string]*diffObs {
	m := make(map[string]*diffObs, len(r.Obs))
	for _, o := range r.Obs {
		m[o.Key] = o
	}
	return m
}

// diffRec collects observations with unique keys.
type diffRec struct {
	res  diffSideResult
	seen map[string]int
}

func newDiffRec() *diffRec { return &diffRec{seen: map[string]int{}} }

func (r *diffRec) add(o *diffObs) *diffObs {
	if n := r.seen[o.Key]; n > 0 {
		r.seen[o.Key] = n + 1
		o.Key = fmt.Sprintf("%s #%d", o.Key, n+1)
	} else {
		r.seen[o.Key] = 1
	}
	r.res.Obs = append(r.res.Obs, o)
	return o
}

// observe records a value no check rests on.
func (r *diffRec) observe(key string, value any, rfc string) {
	r.add(&diffObs{Key: key, Value: normValue(value), RFC: rfc})
}

// check records a value and whether it satisfies the RFC (must level).
func (r *diffRec) check(key string, value any, ok bool, rfc string) {
	r.checkLevel("must", key, value, ok, rfc)
}

func (r *diffRec) checkLevel(level, key string, value any, ok bool, rfc string) {
	o := r.add(&diffObs{Key: key, Value: normValue(value), OK: &ok, RFC: rfc})
	r.res.Checks++
	if !ok {
		o.Failed = []string{level + ": " + key}
		if level == "must" {
			r.res.MustFailed = append(r.res.MustFailed, key)
		} else {
			r.res.ShouldFailed = append(r.res.ShouldFailed, key)
		}
	}
}

var (
	// The scripts' nonces: uuid4().hex[:10].
	reNonce = regexp.MustCompile(`\b[0-9a-f]{10}\b`)
	reTime  = regexp.MustCompile(`\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?`)
	// Python's reprs of XML elements carry their address.
	reAddr = regexp.MustCompile(` at 0x[0-9a-f]+`)
)

// normString masks nonces and timestamps, and canonicalises XML.
func normString(s string) string {
	if x, ok := canonXML(s); ok {
		return x
	}
	s = reTime.ReplaceAllString(s, "<time>")
	s = reAddr.ReplaceAllString(s, "")
	return reNonce.ReplaceAllString(s, "<n>")
}

// normValue normalises a decoded JSON value (or a Go string, bool or
// slice of strings) recursively.
func normValue(v any) any {
	switch x := v.(type) {
	case string:
		return normString(x)
	case []string:
		out := make([]any, len(x))
		for i, s := range x {
			out[i] = normString(s)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normValue(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[normString(k)] = normValue(e)
		}
		return out
	case map[string]string:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = normString(e)
		}
		return out
	case int:
		return float64(x)
	default:
		return v
	}
}

// sortedList returns a sorted copy of a list value (order left free).
func sortedList(v any) any {
	l, ok := v.([]any)
	if !ok {
		return v
	}
	out := append([]any(nil), l...)
	sort.Slice(out, func(i, j int) bool { return canonJSON(out[i]) < canonJSON(out[j]) })
	return out
}

// canonJSON is the comparison form of a value: JSON with sorted keys.
func canonJSON(v any) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Sprintf("%#v", v)
	}
	return strings.TrimSpace(b.String())
}

// Attributes whose values are masked in canonical XML.
var maskedAttrs = map[string]string{"id": "<id>", "stamp": "<time>", "ver": "<ver>"}

// canonXML parses s as one XML element and renders it canonically; ok is
// false when s is not XML.
func canonXML(s string) (string, bool) {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, "<") || !strings.HasSuffix(s, ">") {
		return "", false
	}
	d := xml.NewDecoder(strings.NewReader(s))
	var el *Element
	for {
		tok, err := d.Token()
		if err != nil {
			return "", false
		}
		if st, ok := tok.(xml.StartElement); ok {
			if el, err = ReadElement(d, st.Copy()); err != nil {
				return "", false
			}
			break
		}
	}
	if _, err := d.Token(); err == nil {
		return "", false // more than one element
	}
	return canonElement(el, ""), true
}

func canonElement(e *Element, parentNS string) string {
	var b strings.Builder
	name := e.Name.Local
	if e.Name.Space != parentNS {
		name = "{" + e.Name.Space + "}" + name
	}
	b.WriteString("<" + name)
	var attrs []string
	for _, a := range e.Attr {
		if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
			continue
		}
		n := a.Name.Local
		if a.Name.Space == "http://www.w3.org/XML/1998/namespace" {
			n = "xml:" + n
		} else if a.Name.Space != "" {
			n = "{" + a.Name.Space + "}" + n
		}
		v := a.Value
		if m, ok := maskedAttrs[n]; ok && v != "" {
			v = m
		} else {
			v = normString(v)
		}
		attrs = append(attrs, fmt.Sprintf(" %s='%s'", n, v))
	}
	sort.Strings(attrs)
	b.WriteString(strings.Join(attrs, ""))
	var kids []string
	for _, c := range e.Children {
		kids = append(kids, canonElement(c, e.Name.Space))
	}
	sort.Strings(kids)
	text := normString(strings.TrimSpace(e.Text))
	if len(kids) == 0 && text == "" {
		b.WriteString("/>")
		return b.String()
	}
	b.WriteString(">" + text + strings.Join(kids, "") + "</" + e.Name.Local + ">")
	return b.String()
}

// ---------------------------------------------------------------------
// observations from the slixmpp scripts' reports

// obsFromChecks turns every check and error of a script's report into an
// observation: key the check's name, value its outcome and what it
// observed (info checks: only what they observed).
func obsFromChecks(rec *diffRec, prefix string, res *rfcResult, skip func(c rfcCheck) bool) {
	for _, e := range res.Errors {
		rec.add(&diffObs{Key: prefix + "scenario error", Value: normString(firstLine(e))})
	}
	for _, c := range res.Checks {
		if skip != nil && skip(c) {
			continue
		}
		rec.addCheck(prefix, c)
	}
}

// addCheck records one check of a script as an observation.
func (r *diffRec) addCheck(prefix string, c rfcCheck) *diffObs {
	key := prefix + normString(c.Name)
	if c.Level == "info" {
		return r.add(&diffObs{Key: key, Value: normValue(c.Observed), RFC: c.RFC, Stanza: normString(c.Stanza)})
	}
	o := r.add(&diffObs{Key: key, RFC: c.RFC, Stanza: normString(c.Stanza),
		Value: map[string]any{"ok": c.OK, "observed": normValue(c.Observed)}})
	ok := c.OK
	o.OK = &ok
	r.countCheck(c, key)
	if !c.OK {
		o.Failed = append(o.Failed, c.Level+": "+key)
	}
	return o
}

func (r *diffRec) countCheck(c rfcCheck, key string) {
	r.res.Checks++
	if !c.OK {
		if c.Level == "must" {
			r.res.MustFailed = append(r.res.MustFailed, key)
		} else {
			r.res.ShouldFailed = append(r.res.ShouldFailed, key)
		}
	}
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if lines := strings.Split(s, "\n"); len(lines) > 1 {
		// a traceback: its last line says what happened
		return strings.TrimSpace(lines[len(lines)-1])
	}
	return s
}

// Observation fields of one step of the subscription walk, for each
// party.
const (
	walkRoster       = "roster get"
	walkPushed       = "roster as pushed"
	walkSubscription = "subscription presence received"
	walkAvailability = "availability presence received"
)

// obsFromWalk turns the report of subscription_pairs.py into
// observations: for every step of every case and for each party, the
// roster item as roster get returns it and as the pushes maintain it, the
// subscription presence stanzas and the availability presence received
// (both as multisets: RFC 6121 does not order them). The script's checks
// rest on these; each is attached to its observation (so an observation
// knows whether the RFC is met), the others are observations of their
// own.
func obsFromWalk(rec *diffRec, res *rfcResult) {
	for _, e := range res.Errors {
		rec.add(&diffObs{Key: "scenario error", Value: normString(firstLine(e))})
	}
	var prefixes []string
	byPrefix := map[string]map[string]*diffObs{} // prefix -> "party: field" -> obs
	cases, _ := res.Data["cases"].([]any)
	for _, ci := range cases {
		c, _ := ci.(map[string]any)
		label, _ := c["label"].(string)
		steps, _ := c["steps"].([]any)
		for _, si := range steps {
			s, _ := si.(map[string]any)
			prefix := fmt.Sprintf("%s step %v (%v %v)", label, s["step"], s["actor"], s["action"])
			fields := map[string]*diffObs{}
			for _, party := range []string{"alice", "bob"} {
				get := func(f string) any {
					m, _ := s[f].(map[string]any)
					return m[party]
				}
				for _, f := range []struct {
					name string
					v    any
				}{
					{walkRoster, get("roster_get")},
					{walkPushed, get("pushed_view")},
					{walkSubscription, sortedList(get("delivered"))},
					{walkAvailability, sortedList(get("presence"))},
				} {
					o := rec.add(&diffObs{Key: prefix + ": " + party + ": " + f.name, Value: normValue(f.v)})
					fields[party+": "+f.name] = o
				}
			}
			prefixes = append(prefixes, prefix)
			byPrefix[prefix] = fields
		}
	}
	// Longest prefixes first: "step 1" must not catch "step 10".
	sort.Slice(prefixes, func(i, j int) bool { return len(prefixes[i]) > len(prefixes[j]) })
	for _, c := range res.Checks {
		if o := walkCheckTarget(c, prefixes, byPrefix); o != nil {
			ok := c.OK && (o.OK == nil || *o.OK)
			o.OK = &ok
			if o.RFC == "" {
				o.RFC = c.RFC
			}
			if o.Stanza == "" {
				o.Stanza = c.Stanza
			}
			rec.countCheck(c, c.Name)
			if !c.OK {
				o.Failed = append(o.Failed, c.Level+": "+c.Name)
			}
			continue
		}
		rec.addCheck("", c)
	}
}

// walkCheckTarget finds the observation a check of the walk rests on.
func walkCheckTarget(c rfcCheck, prefixes []string, byPrefix map[string]map[string]*diffObs) *diffObs {
	for _, p := range prefixes {
		rest, ok := strings.CutPrefix(c.Name, p+": ")
		if !ok {
			continue
		}
		party := ""
		for _, x := range []string{"alice", "bob"} {
			if strings.HasPrefix(rest, x) {
				party = x
			}
		}
		if party == "" {
			return nil
		}
		var field string
		switch {
		case strings.Contains(rest, "(roster get)"):
			field = walkRoster
		case strings.Contains(rest, "(as maintained from roster pushes)"):
			field = walkPushed
		case strings.Contains(rest, " subscribed: receives "), strings.Contains(rest, "not subscribed, receives no available"):
			field = walkAvailability
		case strings.Contains(rest, "<presence type="), strings.Contains(rest, "no other subscription presence"):
			field = walkSubscription
		default:
			return nil
		}
		return byPrefix[p][party+": "+field]
	}
	return nil
}
