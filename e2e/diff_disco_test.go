package e2e

import (
	"crypto/sha1" // #nosec: XEP-0115's hash, recomputed to check the servers' ver
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"hash"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

// Issue #5: "disco output is identical in structure to what Prosody
// advertises for the same features (differential run)".
//
// TestDiffDisco logs in on a fresh imppd and a fresh private Prosody (its
// usual modules plus ProsodyDiscoModules) and collects, on each, what a
// client learns right after authentication: the stream features, the
// server's XEP-0115 <c/>, disco#info and disco#items of the server and of
// the account's own bare JID (identities, features, XEP-0128 forms,
// items). Every feature and identity gets the set of places where the
// server advertises it: "server" (disco#info of the domain), "account"
// (disco#info of the bare JID) and "stream" (a stream feature after SASL,
// named by its namespace). Each is then
//
//   - same: both servers advertise it in the same places;
//   - only-imppd / only-prosody: one server does not advertise it at all
//     (an extension it does not have, or not yet: PEP, vCards, private
//     storage and bookmarks are being built);
//   - differs-in-location: both advertise it, in different places. The
//     test fails on this unless discoLocationAllowances names the XEP
//     section that permits the difference.
//
// Both servers are also held to the placement the XEPs prescribe
// (discoPlacement: a must check per rule, for the features a server
// advertises), to serving what they advertise where the XEP sends the
// requests (discoProbes: a get to the domain and to the bare JID), and to
// XEP-0115 (the ver of the <c/> is the hash of the server's disco#info,
// and that node answers with the same). imppd failing one fails the
// test; Prosody's failures are reported.
//
// The test is parallel so that it runs after TestDiff in the same
// process: TestDiff rewrites docs/INTEROP-DIFF.md as a whole, and with
// IMPPD_UPDATE_DOCS=1 this test then replaces its own section there
// (between discoDocBegin and discoDocEnd), which keeps its place when
// it runs alone:
//
//	IMPPD_UPDATE_DOCS=1 go test -run Diff ./e2e/
//	go test -run DiffDisco -v ./e2e/                 # this comparison only
//
// IMPPD_DIFF_DUMP=DIR writes what each server answered to
// DIR/xep0030-disco-SERVER.txt.
func TestDiffDisco(t *testing.T) {
	t.Parallel()
	if _, _, err := ProsodyPaths(); err != nil {
		t.Log(err)
		missing(t, "prosody (the reference server of the differential runs)")
	}
	var got [2]*discoSide
	t.Run(scDisco, func(t *testing.T) {
		for i, side := range diffSides {
			t.Run(side, func(t *testing.T) {
				t.Parallel()
				got[i] = discoCollect(t, side)
				discoDump(t, side, got[i])
			})
		}
	})
	if got[0] == nil || got[1] == nil {
		t.Fatalf("%s: did not run on both servers", scDisco)
	}
	rows := discoCompare(got)
	for _, r := range rows {
		if r.Class == discoDiffers && r.Allowed == "" {
			t.Errorf("%s is advertised in different places: imppd %s, prosody %s, and no XEP section in discoLocationAllowances permits it",
				r.Entry, discoLocs(r.Imppd), discoLocs(r.Prosody))
		}
	}
	for _, f := range got[0].rec.res.MustFailed {
		t.Errorf("imppd fails the must check %q", f)
	}
	for _, a := range discoLocationAllowances {
		if !slices.ContainsFunc(rows, func(r *discoRow) bool { return r.Allowed == a.Reason && r.Entry == a.Entry }) {
			t.Logf("allowance for %s (%s) was not needed in this run", a.Entry, a.Reason)
		}
	}
	section := renderDiscoSection(rows, got)
	t.Logf("service discovery placement:\n%s", section)
	if os.Getenv("IMPPD_UPDATE_DOCS") == "1" && !t.Failed() {
		if err := writeDiscoSection(section); err != nil {
			t.Fatal(err)
		}
	}
}

// scDisco names the comparison in the report and in dumps.
const scDisco = "xep0030-disco"

// Where a server advertises something.
const (
	discoAtServer  = "server"  // disco#info of the domain
	discoAtAccount = "account" // disco#info of the own bare JID
	discoAtStream  = "stream"  // stream features after SASL
)

// The classes of an entry.
const (
	discoSame        = "same"
	discoOnlyImppd   = "only-imppd"
	discoOnlyProsody = "only-prosody"
	discoDiffers     = "differs-in-location"
)

// discoSide is what one server advertises.
type discoSide struct {
	// Where maps each entry (a feature var, a stream feature's namespace,
	// or "identity CATEGORY/TYPE") to the places it is advertised.
	Where map[string]map[string]bool
	// Names of the identities, by "LOCATION CATEGORY/TYPE".
	Names map[string]string
	// XEP-0128 forms (FORM_TYPE and field vars) and disco#items, by
	// location.
	Forms, Items map[string][]string
	// Stream features after SASL: {ns}name, with (required)/(optional).
	StreamFeatures []string
	// The shape of the server's <c/>: attribute names, and the hash.
	Caps []string
	// Served: the answer to each probe (discoProbes) by location:
	// "result" or "error CONDITION".
	Served map[string]map[string]string
	rec    *diffRec // the must checks
	raw    []string // what the server answered, for dumps
}

func (d *discoSide) add(entry, loc string) {
	if d.Where[entry] == nil {
		d.Where[entry] = map[string]bool{}
	}
	d.Where[entry][loc] = true
}

// discoCollect logs in on a fresh server of side and records what it
// advertises.
func discoCollect(t *testing.T, side string) *discoSide {
	var srv *Server
	if side == "imppd" {
		srv = Start(t, Options{Users: []User{rfcAlice}})
	} else {
		p := StartProsody(t, ProsodyOptions{Users: []User{rfcAlice}, Modules: append(slices.Clone(ProsodyModules), ProsodyDiscoModules...)})
		srv = p.Server()
	}
	d := &discoSide{Where: map[string]map[string]bool{}, Names: map[string]string{},
		Forms: map[string][]string{}, Items: map[string][]string{}, Served: map[string]map[string]string{}, rec: newDiffRec()}
	r := srv.DialRaw(t)
	r.Open()
	r.StartTLS()
	local, _, _ := strings.Cut(rfcAlice.JID, "@")
	if cond := r.Auth(ScramSha1, local, rfcAlice.Password); cond != "" {
		t.Fatalf("SASL SCRAM-SHA-1 as %s: %s", local, cond)
	}
	features := r.Features
	d.raw = append(d.raw, "stream features after SASL: "+features.String())
	var caps *Element
	for _, c := range features.Children {
		s := "{" + c.Name.Space + "}" + c.Name.Local
		for _, cc := range c.Children {
			if cc.Name.Local == "required" || cc.Name.Local == "optional" {
				s += " (" + cc.Name.Local + ")"
			}
		}
		d.StreamFeatures = append(d.StreamFeatures, s)
		d.add(c.Name.Space, discoAtStream)
		if c.Is(discoNSCaps, "c") {
			caps = c
		}
	}
	sort.Strings(d.StreamFeatures)
	r.Bind("disco")

	n := 0
	iq := func(to, payload string) *Element {
		n++
		id := fmt.Sprintf("disco-%d", n)
		r.MustWrite("<iq type='get' id='" + id + "' to='" + Esc(to) + "'>" + payload + "</iq>")
		for {
			el := r.MustNext()
			if el.Is(NSClient, "iq") && el.Get("id") == id {
				d.raw = append(d.raw, payload+" to "+to+": "+el.String())
				return el
			}
		}
	}
	infoQuery := func(node string) string {
		if node == "" {
			return "<query xmlns='" + discoNSInfo + "'/>"
		}
		return "<query xmlns='" + discoNSInfo + "' node='" + Esc(node) + "'/>"
	}
	info := map[string]*Element{}
	for _, q := range []struct{ loc, to string }{{discoAtServer, srv.Domain}, {discoAtAccount, rfcAlice.JID}} {
		el := iq(q.to, infoQuery(""))
		res := el.Child(discoNSInfo, "query")
		d.rec.check("disco#info of the "+q.loc+": a result", el.Get("type"), el.Get("type") == "result" && res != nil,
			"XEP-0030 §3.1 (the server answers for itself and for the account)")
		info[q.loc] = res
		for _, c := range discoKids(res) {
			switch {
			case c.Is(discoNSInfo, "identity"):
				key := "identity " + c.Get("category") + "/" + c.Get("type")
				d.add(key, q.loc)
				d.Names[q.loc+" "+c.Get("category")+"/"+c.Get("type")] = c.Get("name")
			case c.Is(discoNSInfo, "feature"):
				d.add(c.Get("var"), q.loc)
			case c.Is(discoNSXData, "x"):
				d.Forms[q.loc] = append(d.Forms[q.loc], discoForm(c))
			}
		}
		it := iq(q.to, "<query xmlns='"+discoNSItems+"'/>")
		d.rec.check("disco#items of the "+q.loc+": a result", it.Get("type"), it.Get("type") == "result", "XEP-0030 §4.1")
		items := []string{}
		for _, c := range discoKids(it.Child(discoNSItems, "query")) {
			items = append(items, discoItem(c, srv.Domain, rfcAlice.JID))
		}
		sort.Strings(items)
		d.Items[q.loc] = items
	}

	// Where each probed protocol is served: a get to the domain and to the
	// own bare JID, once available (XEP-0012 §3 answers an available
	// account with 0). A server advertising the protocol anywhere must
	// answer it where its XEP sends the requests (XEP-0030 §3.1: what an
	// entity advertises, it supports).
	r.MustWrite("<presence/>")
	for _, p := range discoProbes {
		for _, q := range []struct{ loc, to string }{{discoAtServer, srv.Domain}, {discoAtAccount, rfcAlice.JID}} {
			el := iq(q.to, p.Payload)
			ans := "result"
			if _, cond, isErr := el.StanzaError(); isErr || el.Get("type") != "result" {
				ans = "error " + cond
			}
			if d.Served[p.Entry] == nil {
				d.Served[p.Entry] = map[string]string{}
			}
			d.Served[p.Entry][q.loc] = ans
			if d.Where[p.Entry] != nil && slices.Contains(p.At, q.loc) {
				d.rec.check(fmt.Sprintf("%s advertised: a get to the %s is answered", p.Entry, q.loc), ans, ans == "result", p.Rule)
			}
		}
	}

	// XEP-0115 §5 and §6.2: the ver of the server's <c/> is the hash of
	// its disco#info, and disco#info at node#ver answers the same.
	d.rec.check("stream features after SASL: the server's <c/>", caps != nil, caps != nil, "XEP-0115 §6.3 (stream feature)")
	if caps != nil {
		for _, a := range caps.Attr {
			if a.Name.Space == "" && a.Name.Local != "xmlns" {
				v := "<" + a.Name.Local + ">"
				if a.Name.Local == "hash" {
					v = a.Value
				}
				d.Caps = append(d.Caps, a.Name.Local+"="+v)
			}
		}
		sort.Strings(d.Caps)
		want, ok := discoCapsVer(caps.Get("hash"), info[discoAtServer])
		d.rec.check("<c/>: ver is the hash of the server's disco#info", map[string]any{"hash": caps.Get("hash"), "ver matches": ok && want == caps.Get("ver")},
			ok && want == caps.Get("ver"), "XEP-0115 §5.1, §5.4, §6.3")
		node := caps.Get("node") + "#" + caps.Get("ver")
		el := iq(srv.Domain, infoQuery(node))
		q := el.Child(discoNSInfo, "query")
		same := el.Get("type") == "result" && q != nil && q.Get("node") == node && discoInfoShape(q) == discoInfoShape(info[discoAtServer])
		d.rec.check("disco#info at the <c/>'s node#ver: the server's disco#info", same, same, "XEP-0115 §6.2")
	}
	entries := make([]string, 0, len(d.Where))
	for e := range d.Where {
		entries = append(entries, e)
	}
	sort.Strings(entries)
	for _, p := range discoPlacement {
		re := regexp.MustCompile(p.Entry)
		for _, e := range entries {
			if re.MatchString(e) {
				d.rec.check(fmt.Sprintf("%s advertised at the %s", e, p.Loc), discoLocs(d.Where[e]), d.Where[e][p.Loc], p.Rule)
			}
		}
	}
	r.MustWrite("</stream:stream>")
	_, _ = r.ReadAll(IOTimeout)
	return d
}

const (
	discoNSInfo  = "http://jabber.org/protocol/disco#info"
	discoNSItems = "http://jabber.org/protocol/disco#items"
	discoNSXData = "jabber:x:data"
	discoNSCaps  = "http://jabber.org/protocol/caps"
)

// discoKids returns e's children, none for a nil e.
func discoKids(e *Element) []*Element {
	if e == nil {
		return nil
	}
	return e.Children
}

// discoForm describes an XEP-0128 form: its FORM_TYPE and field vars.
func discoForm(x *Element) string {
	ft := ""
	var vars []string
	for _, f := range x.ChildrenIn(discoNSXData) {
		if f.Name.Local != "field" {
			continue
		}
		if f.Get("var") == "FORM_TYPE" {
			if v := f.Child(discoNSXData, "value"); v != nil {
				ft = v.Text
			}
			continue
		}
		vars = append(vars, f.Get("var"))
	}
	sort.Strings(vars)
	return ft + " [" + strings.Join(vars, " ") + "]"
}

// discoItem describes a disco#items item with the domain and the account
// masked.
func discoItem(it *Element, domain, bare string) string {
	j := it.Get("jid")
	switch {
	case j == bare:
		j = "<account>"
	case j == domain:
		j = "<domain>"
	case strings.HasSuffix(j, "."+domain):
		j = strings.TrimSuffix(j, domain) + "<domain>"
	}
	s := "jid=" + j
	if n := it.Get("node"); n != "" {
		s += " node=" + n
	}
	return s
}

// discoInfoShape is a disco#info result without its node, canonically.
func discoInfoShape(q *Element) string {
	var parts []string
	for _, c := range discoKids(q) {
		switch {
		case c.Is(discoNSInfo, "identity"):
			parts = append(parts, "identity "+c.Get("category")+"/"+c.Get("type")+"/"+c.Get("name"))
		case c.Is(discoNSInfo, "feature"):
			parts = append(parts, "feature "+c.Get("var"))
		case c.Is(discoNSXData, "x"):
			parts = append(parts, "form "+discoForm(c))
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, "\n")
}

// discoCapsVer computes the XEP-0115 §5.1 verification string of a disco#info
// result, with the extended information of §5.4; ok is false for a hash
// this test does not know.
func discoCapsVer(algo string, q *Element) (string, bool) {
	var h hash.Hash
	switch algo {
	case "sha-1":
		h = sha1.New() // #nosec: XEP-0115's hash
	case "sha-256":
		h = sha256.New()
	default:
		return "", false
	}
	var ids, feats []string
	type form struct {
		ft     string
		fields []string
	}
	var forms []form
	for _, c := range discoKids(q) {
		switch {
		case c.Is(discoNSInfo, "identity"):
			lang := ""
			for _, a := range c.Attr {
				if a.Name.Local == "lang" && a.Name.Space == "http://www.w3.org/XML/1998/namespace" {
					lang = a.Value
				}
			}
			ids = append(ids, c.Get("category")+"/"+c.Get("type")+"/"+lang+"/"+c.Get("name"))
		case c.Is(discoNSInfo, "feature"):
			feats = append(feats, c.Get("var"))
		case c.Is(discoNSXData, "x"):
			var f form
			for _, fl := range c.ChildrenIn(discoNSXData) {
				if fl.Name.Local != "field" {
					continue
				}
				var vals []string
				for _, v := range fl.ChildrenIn(discoNSXData) {
					if v.Name.Local == "value" {
						vals = append(vals, v.Text)
					}
				}
				if fl.Get("var") == "FORM_TYPE" {
					if len(vals) > 0 {
						f.ft = vals[0]
					}
					continue
				}
				sort.Strings(vals)
				s := fl.Get("var") + "<"
				for _, v := range vals {
					s += v + "<"
				}
				f.fields = append(f.fields, s)
			}
			sort.Strings(f.fields)
			forms = append(forms, f)
		}
	}
	sort.Strings(ids)
	sort.Strings(feats)
	sort.Slice(forms, func(i, j int) bool { return forms[i].ft < forms[j].ft })
	var b strings.Builder
	for _, s := range ids {
		b.WriteString(s + "<")
	}
	for _, s := range feats {
		b.WriteString(s + "<")
	}
	for _, f := range forms {
		b.WriteString(f.ft + "<" + strings.Join(f.fields, ""))
	}
	h.Write([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(h.Sum(nil)), true
}

// discoLocs names a set of places, in a fixed order ("-" for none).
func discoLocs(locs map[string]bool) string {
	if len(locs) == 0 {
		return "-"
	}
	var out []string
	for _, l := range []string{discoAtServer, discoAtAccount, discoAtStream} {
		if locs[l] {
			out = append(out, l)
		}
	}
	return strings.Join(out, "+")
}

// discoPlacement: where an XEP says a server advertises a feature. A
// server that advertises the entry anywhere must advertise it there.
var discoPlacement = []struct {
	Entry, Loc, Rule string
}{
	{`^identity server/im$`, discoAtServer, "XEP-0030 §3.1, Service Discovery Identities registry (server/im)"},
	{`^identity account/(registered|admin|anonymous)$`, discoAtAccount, "XEP-0030 §3.1 (the server answers for the account's bare JID), registry: account/*"},
	{`^http://jabber\.org/protocol/disco#info$`, discoAtServer, "XEP-0030 §3.1"},
	{`^urn:xmpp:carbons:2$`, discoAtServer, "XEP-0280, Discovering Support (the client asks its own server)"},
	{`^urn:xmpp:blocking$`, discoAtServer, "XEP-0191, Discovering Support (the client asks its own server)"},
	{`^urn:xmpp:mam:[012]$`, discoAtAccount, "XEP-0313, Determining support (a user's archive is the account's bare JID)"},
	{`^urn:xmpp:ping$`, discoAtServer, "XEP-0199, Determining Support (client-to-server ping)"},
	{`^http://jabber\.org/protocol/commands$`, discoAtServer, "XEP-0050, Discovering Support (the entity offering the commands: the server)"},
	{`^identity pubsub/pep$`, discoAtAccount, "XEP-0163, Determining Support (the account's bare JID is the PEP service)"},
	{`^urn:xmpp:sm:3$`, discoAtStream, "XEP-0198, Stream Feature"},
	{`^urn:xmpp:csi:0$`, discoAtStream, "XEP-0352 (the server advertises CSI as a stream feature)"},
	{`^http://jabber\.org/protocol/caps$`, discoAtStream, "XEP-0115 §6.3 (stream feature)"},
	{`^urn:xmpp:features:(rosterver|pre-approval)$`, discoAtStream, "RFC 6121 §2.6.1 / §3.4 (stream features)"},
	{`^urn:ietf:params:xml:ns:xmpp-bind$`, discoAtStream, "RFC 6120 §7.4"},
}

// discoProbes: a get for a feature, sent to the domain and to the own
// bare JID, to see where the protocol is served; At is where the XEP
// sends such requests.
var discoProbes = []struct {
	Entry, Payload string
	At             []string
	Rule           string
}{
	{"jabber:iq:last", "<query xmlns='jabber:iq:last'/>", []string{discoAtServer, discoAtAccount}, "XEP-0012 §3 (a bare JID), §5 (the server)"},
	{"jabber:iq:register", "<query xmlns='jabber:iq:register'/>", []string{discoAtServer}, "XEP-0077 §3.1, §3.3 (requests to the host)"},
	{"jabber:iq:version", "<query xmlns='jabber:iq:version'/>", []string{discoAtServer}, "XEP-0092 (the server's software)"},
	{"urn:xmpp:time", "<time xmlns='urn:xmpp:time'/>", []string{discoAtServer}, "XEP-0202 (the server's time)"},
	{"urn:xmpp:ping", "<ping xmlns='urn:xmpp:ping'/>", []string{discoAtServer}, "XEP-0199 §4.2 (client-to-server ping)"},
	{"urn:xmpp:blocking", "<blocklist xmlns='urn:xmpp:blocking'/>", []string{discoAtAccount}, "XEP-0191 (requests without 'to': the account)"},
	{"urn:xmpp:mam:2", "<prefs xmlns='urn:xmpp:mam:2'/>", []string{discoAtAccount}, "XEP-0313 (a user's archive: the account)"},
	{"vcard-temp", "<vCard xmlns='vcard-temp'/>", []string{discoAtAccount}, "XEP-0054 (the own vCard: the account)"},
	{"jabber:iq:private", "<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query>", []string{discoAtAccount}, "XEP-0049 (requests without 'to': the account)"},
	{"http://jabber.org/protocol/disco#items", "<query xmlns='" + discoNSItems + "'/>", []string{discoAtServer, discoAtAccount}, "XEP-0030 §4.1"},
}

// discoLocationAllowances: a feature both servers advertise in different
// places, and the XEP section that permits it.
var discoLocationAllowances = []struct {
	Entry          string
	Imppd, Prosody string // discoLocs of each side
	Reason         string
}{
	{"http://jabber.org/protocol/disco#info", "server+account", "server",
		"XEP-0030 §3.1: every entity supports disco#info, and an answer lists the features of the entity asked; imppd lists disco#info and disco#items for the account it answers for, Prosody lists them for the domain only"},
	{"http://jabber.org/protocol/disco#items", "server+account", "server",
		"XEP-0030 §3.1 and §4.1: both answer disco#items for the account; imppd lists the feature there as well, Prosody for the domain only"},
	{"jabber:iq:last", "server+account", "server",
		"XEP-0012 §3 (Offline User Query: the server answers the bare JID for the user) and §6 (Determining Support: the entity answering advertises jabber:iq:last); imppd advertises it on the account as well as on the domain (§5, uptime), Prosody answers both but lists it for the domain only"},
	{"vcard-temp", "server+account", "server",
		"XEP-0054 §4 (Determining Support: an entity that supports vcard-temp reports it; the example asks the server) with §3.1 and §3.3 (the server answers vCard requests at the account's bare JID); imppd lists it on both, Prosody on the domain only"},
	{"urn:xmpp:sid:0", "server+account", "account",
		"XEP-0359 §4 (Discovering Support: an entity that enforces the business rules for its own address announces the feature; the example is the server's disco#info); imppd removes forged stanza-ids naming the account or the domain and announces it on both, Prosody on the account, which it stamps as 'by'"},
}

// discoXEPs names the specification of each entry, for the report.
var discoXEPs = []struct{ re, spec string }{
	{`^http://jabber\.org/protocol/disco#`, "XEP-0030"},
	{`^identity (server|account)/`, "XEP-0030"},
	{`^jabber:iq:last$`, "XEP-0012"},
	{`^jabber:iq:private$`, "XEP-0049"},
	{`^http://jabber\.org/protocol/commands$`, "XEP-0050"},
	{`^vcard-temp$`, "XEP-0054"},
	{`^http://jabber\.org/protocol/pubsub|^identity pubsub/pep$`, "XEP-0060 / XEP-0163"},
	{`^jabber:iq:register$|^http://jabber\.org/features/iq-register$`, "XEP-0077"},
	{`^jabber:iq:time$`, "XEP-0090 (obsolete)"},
	{`^jabber:iq:version$`, "XEP-0092"},
	{`^http://jabber\.org/protocol/caps$`, "XEP-0115"},
	{`^msgoffline$`, "XEP-0160"},
	{`^urn:xmpp:blocking$`, "XEP-0191"},
	{`^urn:xmpp:sm:`, "XEP-0198"},
	{`^urn:xmpp:ping$`, "XEP-0199"},
	{`^urn:xmpp:time$`, "XEP-0202"},
	{`^urn:xmpp:carbons:`, "XEP-0280"},
	{`^urn:xmpp:mam:`, "XEP-0313"},
	{`^urn:xmpp:csi:0$`, "XEP-0352"},
	{`^urn:xmpp:sid:0$`, "XEP-0359"},
	{`^urn:xmpp:pep-vcard-conversion:0$`, "XEP-0398"},
	{`^urn:xmpp:bookmarks:1#`, "XEP-0402"},
	{`^urn:xmpp:bookmarks-conversion:0$`, "XEP-0411"},
	{`^jabber:iq:roster$|^urn:xmpp:features:`, "RFC 6121"},
	{`^urn:ietf:params:xml:ns:xmpp-(bind|session)$`, "RFC 6120 / RFC 3921"},
}

func discoSpec(entry string) string {
	for _, x := range discoXEPs {
		if regexp.MustCompile(x.re).MatchString(entry) {
			return x.spec
		}
	}
	return ""
}

// discoRow is the comparison of one entry.
type discoRow struct {
	Entry, Spec    string
	Imppd, Prosody map[string]bool
	Class          string
	Allowed        string // the XEP section, for an allowed differs-in-location
	Note           string
}

// discoCompare classifies every entry either server advertises.
func discoCompare(sides [2]*discoSide) []*discoRow {
	imppd, prosody := sides[0], sides[1]
	implemented := discoImppdXEPs()
	var entries []string
	for e := range imppd.Where {
		entries = append(entries, e)
	}
	for e := range prosody.Where {
		if imppd.Where[e] == nil {
			entries = append(entries, e)
		}
	}
	sort.Slice(entries, func(i, j int) bool {
		ii, ij := strings.HasPrefix(entries[i], "identity "), strings.HasPrefix(entries[j], "identity ")
		if ii != ij {
			return ii
		}
		return entries[i] < entries[j]
	})
	var rows []*discoRow
	for _, e := range entries {
		r := &discoRow{Entry: e, Spec: discoSpec(e), Imppd: imppd.Where[e], Prosody: prosody.Where[e]}
		switch {
		case r.Imppd == nil:
			r.Class = discoOnlyProsody
			if n := discoXEPNumber(r.Spec); n != "" && implemented[n] {
				r.Note = "imppd has XEP-" + n + " compiled in but does not advertise this"
				if served := discoServedAt(imppd, e); served != "" {
					r.Note += "; it answers a get at the " + served + ", Prosody at the " + discoServedAt(prosody, e)
				}
			}
		case r.Prosody == nil:
			r.Class = discoOnlyImppd
		case discoLocs(r.Imppd) == discoLocs(r.Prosody):
			r.Class = discoSame
		default:
			r.Class = discoDiffers
			for _, a := range discoLocationAllowances {
				if a.Entry == e && a.Imppd == discoLocs(r.Imppd) && a.Prosody == discoLocs(r.Prosody) {
					r.Allowed = a.Reason
				}
			}
		}
		rows = append(rows, r)
	}
	return rows
}

// discoServedAt lists where a probe of entry was answered with a result.
func discoServedAt(d *discoSide, entry string) string {
	locs := map[string]bool{}
	for loc, ans := range d.Served[entry] {
		locs[loc] = ans == "result"
	}
	if !locs[discoAtServer] && !locs[discoAtAccount] {
		return ""
	}
	return discoLocs(locs)
}

var discoReXEP = regexp.MustCompile(`XEP-(\d{4})`)

func discoXEPNumber(spec string) string {
	if m := discoReXEP.FindStringSubmatch(spec); m != nil {
		return m[1]
	}
	return ""
}

// discoImppdXEPs lists the XEPs imppd compiles in, from docs/XEPS.md (which
// xmppmap/xeps generates and keeps current).
func discoImppdXEPs() map[string]bool {
	out := map[string]bool{}
	root, err := ModuleRoot()
	if err != nil {
		return out
	}
	b, err := os.ReadFile(filepath.Join(root, "docs", "XEPS.md"))
	if err != nil {
		return out
	}
	for _, m := range regexp.MustCompile(`(?m)^\| \[XEP-(\d{4})\]`).FindAllStringSubmatch(string(b), -1) {
		out[m[1]] = true
	}
	return out
}

// discoDump writes what a server answered to $IMPPD_DIFF_DUMP.
func discoDump(t *testing.T, side string, d *discoSide) {
	dir := os.Getenv("IMPPD_DIFF_DUMP")
	if dir == "" || d == nil {
		return
	}
	var b strings.Builder
	for _, r := range d.raw {
		b.WriteString(r + "\n\n")
	}
	for _, o := range d.rec.res.Obs {
		fmt.Fprintf(&b, "check %s: %v (%s)\n", o.Key, *o.OK, o.text())
	}
	if err := os.MkdirAll(dir, 0o755); err == nil {
		err = os.WriteFile(filepath.Join(dir, scDisco+"-"+side+".txt"), []byte(b.String()), 0o644)
		if err != nil {
			t.Log(err)
		}
	}
}

// The section of docs/INTEROP-DIFF.md this test owns.
const (
	discoDocBegin = "<!-- begin " + scDisco + ": written by TestDiffDisco (e2e/diff_disco_test.go) -->"
	discoDocEnd   = "<!-- end " + scDisco + " -->"
)

// renderDiscoSection renders the comparison for docs/INTEROP-DIFF.md.
func renderDiscoSection(rows []*discoRow, sides [2]*discoSide) string {
	var b strings.Builder
	b.WriteString(discoDocBegin + "\n\n## Service discovery: where each feature is advertised (" + scDisco + ")\n\n")
	b.WriteString(`Written by ` + "`TestDiffDisco`" + ` (` + "`e2e/diff_disco_test.go`" + `), which the same
` + "`IMPPD_UPDATE_DOCS=1 go test -run Diff ./e2e/`" + ` runs after the scenarios above. A client
logs in on each server (Prosody with ` + strings.Join(ProsodyDiscoModules, ", ") + ` loaded as
well) and reads the stream features after SASL, the server's XEP-0115 ` + "`<c/>`" + `, and
disco#info and disco#items of the server and of its own bare JID. Each feature
var, stream feature (by namespace) and identity is listed with the places it is
advertised: ` + "`server`" + ` (disco#info of the domain), ` + "`account`" + ` (disco#info of the
bare JID), ` + "`stream`" + ` (stream feature). ` + "`differs-in-location`" + ` fails the test unless an
XEP section permits it (the reason given); ` + "`only-*`" + ` rows are extensions one server
does not advertise (PEP, vCards, private storage and bookmarks are being built
for imppd).

`)
	counts := map[string]int{}
	for _, r := range rows {
		counts[r.Class]++
	}
	fmt.Fprintf(&b, "Result: %d same, %d only-imppd, %d only-prosody, %d differs-in-location (%d allowed).\n\n",
		counts[discoSame], counts[discoOnlyImppd], counts[discoOnlyProsody], counts[discoDiffers], discoAllowedCount(rows))
	b.WriteString("| feature / identity | specification | imppd | Prosody | result |\n|---|---|---|---|---|\n")
	for _, r := range rows {
		res := r.Class
		if r.Allowed != "" {
			res += " (allowed: " + r.Allowed + ")"
		} else if r.Class == discoDiffers {
			res += " (**not allowed**)"
		}
		if r.Note != "" {
			res += "; " + r.Note
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s |\n", mdCode(r.Entry), r.Spec, discoLocs(r.Imppd), discoLocs(r.Prosody), mdCell(res))
	}
	b.WriteString("\nThe rest of what each server answered:\n\n| | imppd | Prosody |\n|---|---|---|\n")
	row := func(name string, f func(d *discoSide) string) {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", name, mdCell(f(sides[0])), mdCell(f(sides[1])))
	}
	list := func(l []string) string {
		if len(l) == 0 {
			return "none"
		}
		return "`" + strings.Join(l, "`, `") + "`"
	}
	row("identity names", func(d *discoSide) string {
		var l []string
		for k, v := range d.Names {
			l = append(l, k+" "+fmt.Sprintf("%q", v))
		}
		sort.Strings(l)
		return list(l)
	})
	for _, loc := range []string{discoAtServer, discoAtAccount} {
		row("XEP-0128 forms, "+loc, func(d *discoSide) string { return list(d.Forms[loc]) })
		row("disco#items, "+loc, func(d *discoSide) string { return list(d.Items[loc]) })
	}
	row("stream features after SASL", func(d *discoSide) string { return list(d.StreamFeatures) })
	row("XEP-0115 `<c/>` (attributes)", func(d *discoSide) string { return list(d.Caps) })
	row("checks (XEP placement, XEP-0115): passed / failed", func(d *discoSide) string {
		s := fmt.Sprintf("%d / %d", d.rec.res.Checks-len(d.rec.res.MustFailed), len(d.rec.res.MustFailed))
		if len(d.rec.res.MustFailed) > 0 {
			s += ": " + strings.Join(d.rec.res.MustFailed, "; ")
		}
		return s
	})
	b.WriteString("\nWhere a get for each probed protocol is answered (`result`, or the error condition), at the domain / at the own bare JID:\n\n| protocol | imppd | Prosody |\n|---|---|---|\n")
	for _, p := range discoProbes {
		ans := func(d *discoSide) string {
			return d.Served[p.Entry][discoAtServer] + " / " + d.Served[p.Entry][discoAtAccount]
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", p.Entry, ans(sides[0]), ans(sides[1]))
	}
	b.WriteString("\nPlacement rules checked on both servers, for what each advertises:\n\n| entry | place | rule |\n|---|---|---|\n")
	for _, p := range discoPlacement {
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", strings.ReplaceAll(p.Entry, "|", `\|`), p.Loc, mdCell(p.Rule))
	}
	b.WriteString("\nAllowed differences in location:\n\n")
	if len(discoLocationAllowances) == 0 {
		b.WriteString("None.\n")
	} else {
		b.WriteString("| entry | imppd | Prosody | permitted by |\n|---|---|---|---|\n")
		for _, a := range discoLocationAllowances {
			fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", a.Entry, a.Imppd, a.Prosody, mdCell(a.Reason))
		}
	}
	b.WriteString("\n" + discoDocEnd + "\n")
	return b.String()
}

func discoAllowedCount(rows []*discoRow) int {
	n := 0
	for _, r := range rows {
		if r.Allowed != "" {
			n++
		}
	}
	return n
}

// writeDiscoSection puts the section into docs/INTEROP-DIFF.md: in place
// of the previous one, or before "## RFC checks imppd fails" (or at the
// end) the first time and after TestDiff rewrote the file.
func writeDiscoSection(section string) error {
	root, err := ModuleRoot()
	if err != nil {
		return err
	}
	path := filepath.Join(root, "docs", "INTEROP-DIFF.md")
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	doc := string(b)
	if i := strings.Index(doc, discoDocBegin); i >= 0 {
		j := strings.Index(doc, discoDocEnd)
		if j < i {
			return fmt.Errorf("%s: %q without %q", path, discoDocBegin, discoDocEnd)
		}
		doc = doc[:i] + section + strings.TrimPrefix(doc[j+len(discoDocEnd):], "\n")
	} else if i := strings.Index(doc, "\n## RFC checks imppd fails"); i >= 0 {
		doc = doc[:i+1] + section + "\n" + doc[i+1:]
	} else {
		doc = strings.TrimRight(doc, "\n") + "\n\n" + section
	}
	return os.WriteFile(path, []byte(doc), 0o644)
}
