package main

import (
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/imppd/imppd/e2e/internal/xmltest"
)

// session is what the login showed.
type session struct {
	c          *conn
	plain      *element // features of the stream before TLS
	preauth    *element // after TLS, before authentication
	postauth   *element // after authentication
	tlsState   tls.ConnectionState
	mechs      []string // offered after TLS
	plainMechs []string // offered before TLS
	mech       string   // the one that worked
	refused    []string // mechanisms tried and refused first
	skipped    []string // mechanisms this client could not start
	jid, bare  string
}

// mechPreference is the order the checker tries SASL mechanisms in.
var mechPreference = []string{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-1", "PLAIN"}

func login(o options, cfg *tls.Config) (*session, error) {
	c, err := dial(o.addr, o.domain, o.timeout)
	if err != nil {
		return nil, err
	}
	s := &session{c: c}
	fail := func(err error) (*session, error) { c.Close(); return nil, err }
	if s.plain, err = c.Open(xmltest.NSClient); err != nil {
		return fail(fmt.Errorf("opening the stream: %w", err))
	}
	s.plainMechs = xmltest.Mechanisms(s.plain)
	if s.plain.Child(xmltest.NSTLS, "starttls") == nil {
		return fail(fmt.Errorf("no <starttls/> offered on %s: %s", o.addr, s.plain))
	}
	if s.preauth, err = c.StartTLS(cfg.Clone()); err != nil {
		return fail(fmt.Errorf("STARTTLS: %w", err))
	}
	s.tlsState = c.tls()
	s.mechs = xmltest.Mechanisms(s.preauth)
	for _, m := range mechPreference {
		if !slices.Contains(s.mechs, m) {
			continue
		}
		cond, f, err := c.Auth(m, o.user, o.pass, s.mechs)
		if errors.Is(err, xmltest.ErrClientSide) {
			s.skipped = append(s.skipped, m+" ("+err.Error()+")")
			continue
		}
		if err != nil {
			return fail(fmt.Errorf("SASL %s: %w", m, err))
		}
		if cond != "" {
			s.refused = append(s.refused, m+" ("+cond+")")
			if cond == "not-authorized" && !strings.HasSuffix(m, "-PLUS") {
				return fail(fmt.Errorf("SASL %s: not-authorized: wrong user or password?", m))
			}
			continue
		}
		s.mech, s.postauth = m, f
		break
	}
	if s.mech == "" {
		return fail(fmt.Errorf("no SASL mechanism worked: offered %v, refused %v", s.mechs, s.refused))
	}
	if s.jid, err = c.bind(o.resource); err != nil {
		return fail(err)
	}
	s.bare, _, _ = strings.Cut(s.jid, "/")
	return s, nil
}

// checker holds what the discovery showed and produces the rows.
type checker struct {
	o         options
	s         *session
	tlsConfig *tls.Config

	server   *discoInfo // disco#info of the domain
	account  *discoInfo // disco#info of the bare JID
	items    []discoItem
	itemsErr string
	comps    map[string]*discoInfo // disco#info of each item's JID
}

func (ch *checker) discover() {
	c := ch.s.c
	ch.server = c.discoInfo(ch.o.domain, "")
	ch.account = c.discoInfo(ch.s.bare, "")
	ch.items, ch.itemsErr = c.discoItems(ch.o.domain)
	ch.comps = map[string]*discoInfo{}
	for _, it := range ch.items {
		if it.Node != "" || ch.comps[it.JID] != nil {
			continue
		}
		ch.comps[it.JID] = c.discoInfo(it.JID, "")
	}
}

// service returns the first disco item whose disco#info has feature.
func (ch *checker) service(feature string) (string, *discoInfo) {
	jids := make([]string, 0, len(ch.comps))
	for j := range ch.comps {
		jids = append(jids, j)
	}
	sort.Strings(jids)
	for _, j := range jids {
		if ch.comps[j].has(feature) {
			return j, ch.comps[j]
		}
	}
	return "", nil
}

func (ch *checker) itemsSeen() string {
	if ch.itemsErr != "" {
		return "disco#items: " + ch.itemsErr
	}
	if len(ch.items) == 0 {
		return "disco#items of " + ch.o.domain + " lists no component"
	}
	var j []string
	for _, it := range ch.items {
		j = append(j, it.JID)
	}
	return "disco#items: " + strings.Join(j, ", ") + "; none has it"
}

func row(req, suites, expected string) Row {
	return Row{Requirement: req, Suites: suites, Expected: expected}
}

func (r Row) with(st Status, format string, args ...any) Row {
	r.Status, r.Seen = st, fmt.Sprintf(format, args...)
	return r
}

// Suite labels: XEP-0479 category and level ("S" server, "AS" advanced
// server), and Conversations' compliance tester.
const (
	coreS    = "CS2023 Core S+AS"
	coreAS   = "CS2023 Core AS"
	imS      = "CS2023 IM S+AS"
	imAS     = "CS2023 IM AS"
	mobS     = "CS2023 Mobile S+AS"
	mobAS    = "CS2023 Mobile AS"
	avS      = "CS2023 A/V S+AS"
	webS     = "CS2023 Web S+AS"
	imNote   = "CS2023 IM (of note)"
	convers  = "Conversations"
	and      = "; "
	noErrors = "service-unavailable feature-not-implemented"
)

// unimplemented reports a stanza error that means "not there" rather than
// "broken".
func unimplemented(cond string) bool { return strings.Contains(noErrors, cond) && cond != "" }

func (ch *checker) all() []Row {
	ch.discover()
	rows := []Row{
		ch.startTLS(),
		ch.tlsFloor(),
		ch.saslRow(),
		ch.bindRow(),
		ch.directTLS(),
		ch.disco(),
		ch.serverCaps(),
		ch.componentProtocol(),
		ch.pep(),
		ch.rfc6121(),
		ch.rosterVersioning(),
		ch.vcardTemp(),
		ch.accountFeature(row("XEP-0398 + XEP-0153: user avatar to vCard conversion", imAS+and+convers,
			"`urn:xmpp:pep-vcard-conversion:0` on the account's bare JID"), "urn:xmpp:pep-vcard-conversion:0"),
		ch.carbons(),
		ch.blocking(),
		ch.muc(),
		ch.mucFeature(row("XEP-0313: MAM for group chats", imAS+and+convers, "`urn:xmpp:mam:2` on the MUC service"), "urn:xmpp:mam:2"),
		ch.mucFeature(row("XEP-0410: MUC self-ping optimisation", imAS, "`http://jabber.org/protocol/muc#self-ping-optimization` on the MUC service"),
			"http://jabber.org/protocol/muc#self-ping-optimization"),
		ch.accountFeature(row("XEP-0402 + XEP-0048: bookmarks (with compatibility)", imAS, "`urn:xmpp:bookmarks:1#compat` on the account's bare JID"),
			"urn:xmpp:bookmarks:1#compat"),
		ch.publishOptions(row("XEP-0223 (and XEP-0222): private data via PubSub", imAS,
			"`http://jabber.org/protocol/pubsub#publish-options` on the account's bare JID")),
		ch.privateStorage(),
		ch.mam(),
		ch.upload(),
		ch.registration(),
		ch.contactAddresses(),
		ch.streamManagement(),
		ch.csi(),
		ch.accountFeature(row("XEP-0357: Push Notifications", mobAS+and+convers, "`urn:xmpp:push:0` on the account's bare JID"), "urn:xmpp:push:0"),
		ch.extdisco(),
		ch.proxy65(),
		ch.publishOptions(row("XEP-0384 prerequisite: PEP publish-options (OMEMO)", convers,
			"`pubsub/pep` identity and `http://jabber.org/protocol/pubsub#publish-options` on the account's bare JID")),
		ch.offline(),
		ch.webDiscovery(),
	}
	return rows
}

// --- Core ---

func (ch *checker) startTLS() Row {
	r := row("RFC 6120 §5: STARTTLS", coreS, "`<starttls/>` offered on the plaintext stream; no SASL mechanism before TLS")
	st := ch.s.plain.Child(xmltest.NSTLS, "starttls")
	req := "optional"
	if st.Child(xmltest.NSTLS, "required") != nil {
		req = "required"
	}
	if len(ch.s.plainMechs) > 0 {
		return r.with(Fail, "STARTTLS %s, but SASL offered in the clear: %s", req, strings.Join(ch.s.plainMechs, " "))
	}
	return r.with(Pass, "STARTTLS offered (%s); no mechanism before TLS", req)
}

func (ch *checker) tlsFloor() Row {
	r := row("RFC 7590: TLS", coreS, "TLS 1.2 or later with a certificate valid for the domain; TLS 1.1 refused")
	st := ch.s.tlsState
	seen := fmt.Sprintf("%s, %s, certificate verified for %s", tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite), ch.o.domain)
	if st.Version < tls.VersionTLS12 {
		return r.with(Fail, "%s", seen)
	}
	// A second connection offering at most TLS 1.1 must fail.
	c, err := dial(ch.o.addr, ch.o.domain, ch.o.timeout)
	if err != nil {
		return r.with(Fail, "%s; second connection: %v", seen, err)
	}
	defer c.Close()
	if _, err := c.Open(xmltest.NSClient); err != nil {
		return r.with(Fail, "%s; second stream: %v", seen, err)
	}
	old := ch.tlsConfig.Clone()
	old.MinVersion, old.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
	if err := c.WriteString("<starttls xmlns='" + xmltest.NSTLS + "'/>"); err != nil {
		return r.with(Fail, "%s; %v", seen, err)
	}
	if p, err := c.Next(); err != nil || !p.Is(xmltest.NSTLS, "proceed") {
		return r.with(Fail, "%s; second STARTTLS: %v %s", seen, err, p)
	}
	if err := c.Handshake(old); err == nil {
		return r.with(Fail, "%s; but a TLS 1.1 handshake succeeded (%s)", seen, tls.VersionName(c.tls().Version))
	}
	return r.with(Pass, "%s; TLS 1.1 refused", seen)
}

func (ch *checker) saslRow() Row {
	r := row("RFC 6120 §6: SASL (SCRAM)", coreS, "SCRAM-SHA-1 (mandatory to implement) offered after TLS, with a -PLUS variant and its channel-binding types (XEP-0440); login works")
	seen := "offered: " + strings.Join(ch.s.mechs, " ") + "; logged in with " + ch.s.mech
	if len(ch.s.refused) > 0 {
		seen += " after " + strings.Join(ch.s.refused, ", ")
	}
	if len(ch.s.skipped) > 0 {
		seen += "; not tried: " + strings.Join(ch.s.skipped, ", ")
	}
	var cbs []string
	for _, cb := range ch.s.preauth.Child(nsSASLCB, "sasl-channel-binding").ChildrenNamed(nsSASLCB, "channel-binding") {
		cbs = append(cbs, cb.Get("type"))
	}
	hasPlus := slices.ContainsFunc(ch.s.mechs, func(m string) bool { return strings.HasSuffix(m, "-PLUS") })
	if hasPlus {
		if len(cbs) == 0 {
			seen += "; no XEP-0440 channel-binding types"
		} else {
			seen += "; channel bindings: " + strings.Join(cbs, " ")
		}
	}
	if !slices.Contains(ch.s.mechs, "SCRAM-SHA-1") {
		return r.with(NotYet, "%s (SCRAM-SHA-1 missing)", seen)
	}
	if !strings.HasSuffix(ch.s.mech, "-PLUS") && slices.ContainsFunc(ch.s.refused, func(m string) bool { return strings.Contains(m, "-PLUS (") }) {
		// The server refused a -PLUS mechanism it offers.
		return r.with(Fail, "%s: the -PLUS mechanism it offers did not work", seen)
	}
	return r.with(Pass, "%s", seen)
}

func (ch *checker) bindRow() Row {
	r := row("RFC 6120 §7: resource binding", coreS, "`<bind/>` offered after authentication; the requested resource bound")
	if ch.s.postauth.Child(xmltest.NSBind, "bind") == nil {
		return r.with(Fail, "no <bind/> in the features after authentication")
	}
	want := ch.s.bare + "/" + ch.o.resource
	if !strings.EqualFold(ch.s.jid, want) {
		return r.with(Pass, "bound %s (asked for %s)", ch.s.jid, ch.o.resource)
	}
	return r.with(Pass, "bound %s", ch.s.jid)
}

func (ch *checker) directTLS() Row {
	r := row("XEP-0368: direct TLS", coreAS+and+convers, "TLS from the first byte with ALPN `xmpp-client`, certificate valid for the domain, then an XMPP stream")
	if ch.o.directTLS == "" {
		return r.with(NotYet, "no direct TLS address given (-direct-tls); SRV records not looked up")
	}
	c, err := dial(ch.o.directTLS, ch.o.domain, ch.o.timeout)
	if err != nil {
		return r.with(Fail, "dial %s: %v", ch.o.directTLS, err)
	}
	defer c.Close()
	cfg := ch.tlsConfig.Clone()
	cfg.NextProtos = []string{"xmpp-client"}
	if err := c.Handshake(cfg); err != nil {
		return r.with(Fail, "%s: %v", ch.o.directTLS, err)
	}
	f, err := c.Open(xmltest.NSClient)
	if err != nil {
		return r.with(Fail, "%s: TLS ok, stream: %v", ch.o.directTLS, err)
	}
	alpn := c.tls().NegotiatedProtocol
	if alpn == "" {
		alpn = "none"
	}
	if f.Child(xmltest.NSTLS, "starttls") != nil {
		return r.with(Fail, "%s offers STARTTLS inside TLS", ch.o.directTLS)
	}
	return r.with(Pass, "%s, ALPN %s, certificate verified, mechanisms %s", tls.VersionName(c.tls().Version), alpn, strings.Join(xmltest.Mechanisms(f), " "))
}

func (ch *checker) disco() Row {
	r := row("XEP-0030: service discovery", coreS, "server disco#info with identity `server/im` and the disco#info and disco#items features; disco#items answered")
	d := ch.server
	if d.Err != "" {
		if unimplemented(d.Err) {
			return r.with(NotYet, "disco#info of %s: %s", ch.o.domain, d.Err)
		}
		return r.with(Fail, "disco#info of %s: %s", ch.o.domain, d.Err)
	}
	seen := fmt.Sprintf("identities %s; %d features", d.identityList(), len(d.Features))
	if !d.hasIdentity("server", "im") || !d.has(nsDiscoI) {
		return r.with(Fail, "%s (missing server/im or disco#info)", seen)
	}
	if ch.itemsErr != "" {
		return r.with(Fail, "%s; disco#items: %s", seen, ch.itemsErr)
	}
	if !d.has(nsDiscoIt) {
		return r.with(Fail, "%s; disco#items answered but not advertised", seen)
	}
	acc := "account disco#info: " + ch.account.Err
	if ch.account.Err == "" {
		acc = "account disco#info: " + ch.account.identityList()
	}
	return r.with(Pass, "%s; %d items; %s", seen, len(ch.items), acc)
}

func (ch *checker) serverCaps() Row {
	r := row("XEP-0115: entity capabilities of the server", coreAS+and+convers, "`<c/>` in the stream features whose `ver` hashes the server's disco#info")
	c := ch.s.postauth.Child(nsCaps, "c")
	if c == nil {
		return r.with(NotYet, "no <c/> in the stream features")
	}
	if c.Get("hash") != "sha-1" {
		return r.with(Pass, "<c hash='%s'/> (only sha-1 verified here)", c.Get("hash"))
	}
	sum := sha1.Sum([]byte(capsString(ch.server)))
	want := base64.StdEncoding.EncodeToString(sum[:])
	if c.Get("ver") != want {
		return r.with(Fail, "ver %s, but disco#info hashes to %s", c.Get("ver"), want)
	}
	d := ch.s.c.discoInfo(ch.o.domain, c.Get("node")+"#"+c.Get("ver"))
	if d.Err != "" {
		return r.with(Fail, "ver %s matches, but disco#info of node %s#%s: %s", want, c.Get("node"), c.Get("ver"), d.Err)
	}
	return r.with(Pass, "node %s ver %s matches disco#info", c.Get("node"), want)
}

func (ch *checker) componentProtocol() Row {
	r := row("XEP-0114: component protocol", coreS, "a listener accepting `jabber:component:accept` streams")
	if ch.o.component == "" {
		return r.with(NotYet, "no component listener given (-component)")
	}
	c, err := dial(ch.o.component, ch.o.domain, ch.o.timeout)
	if err != nil {
		return r.with(Fail, "dial %s: %v", ch.o.component, err)
	}
	defer c.Close()
	if _, err := c.Open("jabber:component:accept"); err != nil {
		return r.with(Fail, "%s: %v", ch.o.component, err)
	}
	if c.Header.Name.Space != xmltest.NSStream {
		return r.with(Fail, "unexpected header %v", c.Header.Name)
	}
	id := ""
	for _, a := range c.Header.Attr {
		if a.Name.Local == "id" {
			id = a.Value
		}
	}
	if id == "" {
		return r.with(Fail, "%s: stream header without an id (needed for the handshake)", ch.o.component)
	}
	return r.with(Pass, "%s answers with a component stream header", ch.o.component)
}

func (ch *checker) pep() Row {
	r := row("XEP-0163: Personal Eventing Protocol", coreAS+and+convers, "identity `pubsub/pep` on the account's bare JID; items of an absent node answered with item-not-found")
	if ch.account.Err != "" {
		return r.with(NotYet, "disco#info of %s: %s", ch.s.bare, ch.account.Err)
	}
	node := "urn:xmpp:imppd:compliance:absent"
	res, err := ch.s.c.iq("<iq type='get' id='%s' to='" + esc(ch.s.bare) + "'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='" + node + "'/></pubsub></iq>")
	if !ch.account.hasIdentity("pubsub", "pep") {
		seen := "no pubsub/pep identity (identities: " + ch.account.identityList() + ")"
		if err == nil && res.Get("type") == "result" {
			seen += "; yet pubsub items were answered"
		}
		return r.with(NotYet, "%s", seen)
	}
	if err != nil {
		return r.with(Fail, "pubsub items query: %v", err)
	}
	cond := stanzaError(res)
	switch {
	case res.Get("type") == "result" || cond == "item-not-found":
		return r.with(Pass, "pubsub/pep identity; absent node: %s", or(cond, "empty result"))
	default:
		return r.with(Fail, "pubsub/pep advertised, but pubsub items: %s", cond)
	}
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// --- IM ---

func (ch *checker) rfc6121() Row {
	r := row("RFC 6121: roster and presence", imS, "roster get answered; initial presence broadcast back to the sending resource")
	res, err := ch.s.c.iq("<iq type='get' id='%s'><query xmlns='" + xmltest.NSRoster + "'/></iq>")
	if err != nil {
		return r.with(Fail, "roster get: %v", err)
	}
	if res.Get("type") != "result" || res.Child(xmltest.NSRoster, "query") == nil {
		return r.with(Fail, "roster get: %s", res)
	}
	n := len(res.Child(xmltest.NSRoster, "query").ChildrenNamed(xmltest.NSRoster, "item"))
	if err := ch.s.c.WriteString("<presence/>"); err != nil {
		return r.with(Fail, "sending presence: %v", err)
	}
	_, err = ch.s.c.expect(ch.o.timeout, func(e *element) bool {
		return e.Is(xmltest.NSClient, "presence") && e.Get("type") == "" && strings.EqualFold(e.Get("from"), ch.s.jid)
	})
	if err != nil {
		return r.with(Fail, "roster of %d items; own initial presence not echoed: %v", n, err)
	}
	return r.with(Pass, "roster of %d items; own initial presence echoed", n)
}

func (ch *checker) rosterVersioning() Row {
	r := row("RFC 6121 §2.6 / XEP-0237: roster versioning", convers, "`<ver xmlns='urn:xmpp:features:rosterver'/>` stream feature; `ver` on roster results; an unchanged version answered with an empty result (or the same roster and ver)")
	feat := ch.s.postauth.Child(nsRosterV, "ver") != nil
	first, err := ch.s.c.iq("<iq type='get' id='%s'><query xmlns='" + xmltest.NSRoster + "' ver=''/></iq>")
	if err != nil {
		return r.with(Fail, "roster get ver='': %v", err)
	}
	q := first.Child(xmltest.NSRoster, "query")
	ver := q.Get("ver")
	if !feat {
		return r.with(NotYet, "no rosterver stream feature (ver on the result: %q)", ver)
	}
	if first.Get("type") != "result" || q == nil {
		return r.with(Fail, "rosterver advertised; roster get with ver='': %s", first)
	}
	if ver == "" {
		hasVer := false
		for _, a := range q.Attr {
			hasVer = hasVer || a.Name.Local == "ver"
		}
		if !hasVer {
			return r.with(Fail, "rosterver advertised, but the roster result has no ver attribute")
		}
	}
	again, err := ch.s.c.iq("<iq type='get' id='%s'><query xmlns='"+xmltest.NSRoster+"' ver='%s'/></iq>", esc(ver))
	if err != nil {
		return r.with(Fail, "roster get ver=%q: %v", ver, err)
	}
	if again.Get("type") != "result" {
		return r.with(Fail, "roster get ver=%q: %s", ver, stanzaError(again))
	}
	q2 := again.Child(xmltest.NSRoster, "query")
	switch {
	case q2 == nil:
		return r.with(Pass, "feature advertised; ver %q; unchanged version → empty result", ver)
	case q2.Get("ver") == ver:
		return r.with(Pass, "feature advertised; ver %q; unchanged version → full roster, same ver", ver)
	default:
		return r.with(Fail, "unchanged version %q answered with ver %q", ver, q2.Get("ver"))
	}
}

func (ch *checker) vcardTemp() Row {
	r := row("XEP-0054: vcard-temp (XEP-0153 avatars)", imS+and+convers, "`vcard-temp` on the server's disco#info; the account's own vCard retrievable")
	res, err := ch.s.c.iq("<iq type='get' id='%s'><vCard xmlns='vcard-temp'/></iq>")
	got := ""
	switch {
	case err != nil:
		got = err.Error()
	case res.Get("type") == "result":
		got = "own vCard: result"
	default:
		got = "own vCard: " + stanzaError(res)
	}
	if !ch.server.has("vcard-temp") {
		return r.with(NotYet, "vcard-temp not on the server's disco#info; %s", got)
	}
	if err != nil || (res.Get("type") != "result" && stanzaError(res) != "item-not-found") {
		return r.with(Fail, "advertised; %s", got)
	}
	return r.with(Pass, "advertised; %s", got)
}

// accountFeature checks a feature on the account's bare JID.
func (ch *checker) accountFeature(r Row, feature string) Row {
	if ch.account.Err != "" {
		return r.with(NotYet, "disco#info of %s: %s", ch.s.bare, ch.account.Err)
	}
	if !ch.account.has(feature) {
		return r.with(NotYet, "not on the account's disco#info")
	}
	return r.with(Pass, "on the account's disco#info")
}

func (ch *checker) carbons() Row {
	r := row("XEP-0280: message carbons", imS+and+convers, "`urn:xmpp:carbons:2` on the server's disco#info; enabling answered with a result")
	res, err := ch.s.c.iq("<iq type='set' id='%s'><enable xmlns='urn:xmpp:carbons:2'/></iq>")
	if !ch.server.has("urn:xmpp:carbons:2") {
		seen := "not on the server's disco#info"
		if err == nil && res.Get("type") == "result" {
			seen += "; yet enable answered with a result"
		}
		return r.with(NotYet, "%s", seen)
	}
	if err != nil {
		return r.with(Fail, "advertised; enable: %v", err)
	}
	if res.Get("type") != "result" {
		return r.with(Fail, "advertised; enable: %s", stanzaError(res))
	}
	return r.with(Pass, "advertised; enabled")
}

func (ch *checker) blocking() Row {
	r := row("XEP-0191: blocking command", imAS+and+convers, "`urn:xmpp:blocking` on the server's (or account's) disco#info; the blocklist retrievable")
	adv := ch.server.has("urn:xmpp:blocking") || ch.account.has("urn:xmpp:blocking")
	res, err := ch.s.c.iq("<iq type='get' id='%s'><blocklist xmlns='urn:xmpp:blocking'/></iq>")
	if !adv {
		seen := "not on the server's or account's disco#info"
		if err == nil && res.Get("type") == "result" {
			seen += "; yet the blocklist was answered"
		}
		return r.with(NotYet, "%s", seen)
	}
	if err != nil {
		return r.with(Fail, "advertised; blocklist get: %v", err)
	}
	bl := res.Child("urn:xmpp:blocking", "blocklist")
	if res.Get("type") != "result" || bl == nil {
		return r.with(Fail, "advertised; blocklist get: %s", or(stanzaError(res), res.String()))
	}
	return r.with(Pass, "advertised; blocklist of %d items", len(bl.Children))
}

func (ch *checker) muc() Row {
	r := row("XEP-0045: multi-user chat service", imS+and+convers, "a disco item with identity `conference/text` and `http://jabber.org/protocol/muc`")
	j, d := ch.service("http://jabber.org/protocol/muc")
	if j == "" {
		return r.with(NotYet, "%s", ch.itemsSeen())
	}
	if !d.hasIdentity("conference", "text") {
		return r.with(Fail, "%s has the muc feature but identities %s", j, d.identityList())
	}
	return r.with(Pass, "%s", j)
}

// mucFeature checks a feature of the MUC service.
func (ch *checker) mucFeature(r Row, feature string) Row {
	j, d := ch.service("http://jabber.org/protocol/muc")
	if j == "" {
		return r.with(NotYet, "no MUC service")
	}
	if !d.has(feature) {
		return r.with(NotYet, "not on %s", j)
	}
	return r.with(Pass, "on %s", j)
}

func (ch *checker) publishOptions(r Row) Row {
	if ch.account.Err != "" {
		return r.with(NotYet, "disco#info of %s: %s", ch.s.bare, ch.account.Err)
	}
	pep := ch.account.hasIdentity("pubsub", "pep")
	po := ch.account.has("http://jabber.org/protocol/pubsub#publish-options")
	switch {
	case pep && po:
		return r.with(Pass, "pubsub/pep identity and publish-options")
	case po:
		return r.with(Fail, "publish-options advertised without a pubsub/pep identity")
	case pep:
		return r.with(NotYet, "pubsub/pep identity but no publish-options")
	}
	return r.with(NotYet, "no PEP on the account")
}

func (ch *checker) privateStorage() Row {
	r := row("XEP-0049: private XML storage", imAS, "a `jabber:iq:private` get answered with the (possibly empty) stored element")
	res, err := ch.s.c.iq("<iq type='get' id='%s'><query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query></iq>")
	if err != nil {
		return r.with(Fail, "private get: %v", err)
	}
	if res.Get("type") == "result" {
		if res.Child("jabber:iq:private", "query").Child("storage:bookmarks", "storage") == nil {
			return r.with(Fail, "result without the requested <storage/>: %s", res)
		}
		return r.with(Pass, "storage:bookmarks retrieved")
	}
	if cond := stanzaError(res); unimplemented(cond) {
		return r.with(NotYet, "private get: %s", cond)
	}
	return r.with(Fail, "private get: %s", stanzaError(res))
}

func (ch *checker) mam() Row {
	r := row("XEP-0313: message archive management", imAS+and+convers, "`urn:xmpp:mam:2` on the account's bare JID; a query for one message ends with `<fin/>`")
	adv := ch.account.has("urn:xmpp:mam:2")
	if !adv {
		other := ""
		for _, v := range []string{"urn:xmpp:mam:1", "urn:xmpp:mam:0"} {
			if ch.account.has(v) || ch.server.has(v) {
				other = " (only " + v + ")"
			}
		}
		return r.with(NotYet, "urn:xmpp:mam:2 not on the account's disco#info%s", other)
	}
	res, err := ch.s.c.iq("<iq type='set' id='%s'><query xmlns='urn:xmpp:mam:2' queryid='compliance'><set xmlns='http://jabber.org/protocol/rsm'><max>1</max></set></query></iq>")
	if err != nil {
		return r.with(Fail, "advertised; query: %v", err)
	}
	if res.Get("type") != "result" || res.Child("urn:xmpp:mam:2", "fin") == nil {
		return r.with(Fail, "advertised; query answered %s", or(stanzaError(res), res.String()))
	}
	return r.with(Pass, "advertised; query ended with <fin/>")
}

func (ch *checker) upload() Row {
	r := row("XEP-0363: HTTP file upload", imS+and+convers, "a disco item with `urn:xmpp:http:upload:0`; a slot request answered with HTTPS PUT and GET URLs")
	j, _ := ch.service("urn:xmpp:http:upload:0")
	if j == "" {
		return r.with(NotYet, "%s", ch.itemsSeen())
	}
	res, err := ch.s.c.iq("<iq type='get' id='%s' to='"+esc(j)+"'><request xmlns='urn:xmpp:http:upload:0' filename='compliance.txt' size='%d' content-type='text/plain'/></iq>", 10)
	if err != nil {
		return r.with(Fail, "%s: slot request: %v", j, err)
	}
	slot := res.Child("urn:xmpp:http:upload:0", "slot")
	put, get := slot.Child("urn:xmpp:http:upload:0", "put").Get("url"), slot.Child("urn:xmpp:http:upload:0", "get").Get("url")
	if res.Get("type") != "result" || !strings.HasPrefix(put, "https://") || !strings.HasPrefix(get, "https://") {
		return r.with(Fail, "%s: slot request answered %s", j, or(stanzaError(res), res.String()))
	}
	return r.with(Pass, "%s: slot with HTTPS PUT and GET URLs", j)
}

func (ch *checker) registration() Row {
	r := row("XEP-0077: in-band registration", imNote+and+convers, "`<register/>` stream feature when sign-up is open (off by default is fine); `jabber:iq:register` answered for the logged-in account")
	feat := ch.s.preauth.Child(nsRegFeat, "register") != nil
	res, err := ch.s.c.iq("<iq type='get' id='%s' to='" + esc(ch.o.domain) + "'><query xmlns='" + nsRegister + "'/></iq>")
	if err != nil {
		return r.with(Fail, "register get: %v", err)
	}
	ok := res.Get("type") == "result" && res.Child(nsRegister, "query") != nil
	switch {
	case feat && ok:
		return r.with(Pass, "sign-up open (stream feature); registration form answered")
	case ok:
		return r.with(Pass, "sign-up closed (no stream feature); registration form answered for the account (password change)")
	case feat:
		return r.with(Fail, "stream feature offered, but register get: %s", stanzaError(res))
	case unimplemented(stanzaError(res)):
		return r.with(NotYet, "no stream feature; register get: %s", stanzaError(res))
	}
	return r.with(Fail, "register get: %s", or(stanzaError(res), res.String()))
}

func (ch *checker) contactAddresses() Row {
	r := row("XEP-0157: contact addresses", imNote+and+convers, "a `http://jabber.org/network/serverinfo` form with `abuse-addresses` in the server's disco#info")
	for _, f := range ch.server.Forms {
		if t := formField(f, "FORM_TYPE"); len(t) > 0 && t[0] == "http://jabber.org/network/serverinfo" {
			if a := formField(f, "abuse-addresses"); len(a) > 0 {
				return r.with(Pass, "abuse-addresses: %s", strings.Join(a, " "))
			}
			return r.with(NotYet, "serverinfo form without abuse-addresses (none configured?)")
		}
	}
	return r.with(NotYet, "no serverinfo form in the server's disco#info")
}

// --- Mobile ---

func (ch *checker) streamManagement() Row {
	r := row("XEP-0198: stream management", mobS+and+imAS+and+convers, "`<sm xmlns='urn:xmpp:sm:3'/>` after authentication; enable with resume answered `<enabled/>`; `<r/>` answered with a correct `<a h/>`")
	if ch.s.postauth.Child(nsSM, "sm") == nil {
		return r.with(NotYet, "no urn:xmpp:sm:3 stream feature")
	}
	c := ch.s.c
	if err := c.WriteString("<enable xmlns='" + nsSM + "' resume='true'/>"); err != nil {
		return r.with(Fail, "enable: %v", err)
	}
	en, err := c.expect(ch.o.timeout, func(e *element) bool { return e.Name.Space == nsSM })
	if err != nil {
		return r.with(Fail, "advertised; enable: %v", err)
	}
	if !en.Is(nsSM, "enabled") {
		return r.with(Fail, "advertised; enable answered %s", en)
	}
	resume := en.Get("resume") == "true" || en.Get("resume") == "1"
	if err := c.WriteString("<r xmlns='" + nsSM + "'/>"); err != nil {
		return r.with(Fail, "r: %v", err)
	}
	a, err := c.expect(ch.o.timeout, func(e *element) bool { return e.Is(nsSM, "a") })
	if err != nil {
		return r.with(Fail, "enabled (resume %t); <r/> not answered: %v", resume, err)
	}
	// We sent nothing the server counts since <enable/>: h must be 0.
	if a.Get("h") != "0" {
		return r.with(Fail, "enabled; <a h='%s'/> after no stanzas (want 0)", a.Get("h"))
	}
	return r.with(Pass, "enabled (resume %t, id %t); <a h='0'/>", resume, en.Get("id") != "")
}

func (ch *checker) csi() Row {
	r := row("XEP-0352: client state indication", mobS+and+convers, "`<csi xmlns='urn:xmpp:csi:0'/>` after authentication; `<inactive/>`/`<active/>` accepted without error")
	if ch.s.postauth.Child(nsCSI, "csi") == nil {
		return r.with(NotYet, "no urn:xmpp:csi:0 stream feature")
	}
	c := ch.s.c
	if err := c.WriteString("<inactive xmlns='" + nsCSI + "'/>"); err != nil {
		return r.with(Fail, "inactive: %v", err)
	}
	if err := c.WriteString("<active xmlns='" + nsCSI + "'/>"); err != nil {
		return r.with(Fail, "active: %v", err)
	}
	if err := c.alive(); err != nil {
		return r.with(Fail, "after inactive/active: %v", err)
	}
	return r.with(Pass, "advertised; inactive/active accepted")
}

// --- A/V and others ---

func (ch *checker) extdisco() Row {
	r := row("XEP-0215: external service discovery (STUN/TURN)", avS+and+convers, "`urn:xmpp:extdisco:2` on the server's disco#info; services query answered")
	ns := ""
	for _, v := range []string{"urn:xmpp:extdisco:2", "urn:xmpp:extdisco:1"} {
		if ch.server.has(v) {
			ns = v
			break
		}
	}
	if ns == "" {
		return r.with(NotYet, "no extdisco feature on the server's disco#info")
	}
	res, err := ch.s.c.iq("<iq type='get' id='%s' to='" + esc(ch.o.domain) + "'><services xmlns='" + ns + "'/></iq>")
	if err != nil || res.Get("type") != "result" {
		return r.with(Fail, "%s advertised; services query: %v %s", ns, err, stanzaError(res))
	}
	return r.with(Pass, "%s; %d services", ns, len(res.Child(ns, "services").Children))
}

func (ch *checker) proxy65() Row {
	r := row("XEP-0065: SOCKS5 bytestreams proxy", convers, "a disco item with `http://jabber.org/protocol/bytestreams`")
	j, d := ch.service("http://jabber.org/protocol/bytestreams")
	if j == "" {
		return r.with(NotYet, "%s", ch.itemsSeen())
	}
	if !d.hasIdentity("proxy", "bytestreams") {
		return r.with(Fail, "%s has the feature but identities %s", j, d.identityList())
	}
	return r.with(Pass, "%s", j)
}

func (ch *checker) offline() Row {
	r := row("XEP-0160: offline messages", convers, "`msgoffline` on the server's disco#info")
	if ch.server.has("msgoffline") {
		return r.with(Pass, "msgoffline advertised")
	}
	return r.with(NotYet, "msgoffline not advertised")
}

func (ch *checker) webDiscovery() Row {
	r := row("RFC 7395 / XEP-0206 (+ XEP-0156): web connection mechanisms", webS+and+convers, "BOSH or WebSocket endpoints, listed in host-meta")
	for _, f := range []string{"urn:xmpp:alt-connections:websocket", "urn:xmpp:alt-connections:xbosh"} {
		if ch.server.has(f) {
			return r.with(Pass, "%s advertised (host-meta not fetched)", f)
		}
	}
	return r.with(NotYet, "no web connection mechanism advertised (host-meta not fetched: HTTP is out of this checker's scope)")
}
