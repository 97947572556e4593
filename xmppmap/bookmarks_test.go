package xmppmap_test

// In-process tests of xmppmap/private (XEP-0049) and xmppmap/bookmarks
// (XEP-0402 compatibility, XEP-0048, XEP-0411) over the real PEP module.

import (
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/imppd/imppd/xmppmap"
	"github.com/imppd/imppd/xmppmap/bookmarks"
	"github.com/imppd/imppd/xmppmap/disco"
	"github.com/imppd/imppd/xmppmap/pep"
	"github.com/imppd/imppd/xmppmap/private"
)

var _ bookmarks.PEP = (*pep.Module)(nil)

// bmCaps is a capabilities cache the test fills itself.
type bmCaps struct {
	mu sync.Mutex
	m  map[string][]string
}

func (c *bmCaps) Has(full, f string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Contains(c.m[full], f)
}

func (c *bmCaps) OnChange(func(xmppmap.Session, []string)) {}

func bmServer(t *testing.T) (*xmppmap.TestServer, *bmCaps) {
	s := xmppmap.NewTestServer(t, "alice@localhost", "bob@localhost")
	caps := &bmCaps{m: map[string][]string{}}
	data := &memData{m: map[string][]byte{}}
	d := disco.New()
	p := pep.New(newMemPEP(), caps, d, nil)
	priv := private.New(data, private.Options{MaxItems: 3})
	bm := bookmarks.New(p, priv, data, nil)
	s.Use(priv, p, bm, bm.Legacy(), bm.Conversion(), d)
	return s, caps
}

// bmNext reads c's stanzas until one contains want.
func bmNext(t *testing.T, c *xmppmap.TestClient, want string) string {
	t.Helper()
	for {
		if x := c.Next().String(); strings.Contains(x, want) {
			return x
		}
	}
}

// bmRequest sends an IQ and returns the answer with its id and what came
// before it.
func bmRequest(t *testing.T, c *xmppmap.TestClient, iq string) (*xmppmap.Element, []string) {
	t.Helper()
	c.Send(iq)
	id := iq[strings.Index(iq, "id='")+4:]
	id = id[:strings.IndexByte(id, '\'')]
	var before []string
	for {
		el := c.Next()
		if el.Name.Local == "iq" && el.Get("id") == id {
			return el, before
		}
		before = append(before, el.String())
	}
}

func bmCondition(el *xmppmap.Element) string {
	if e := el.Child("", "error"); e != nil {
		for _, n := range e.Nodes {
			if c := n.Elem; c != nil && c.Name.Space == "urn:ietf:params:xml:ns:xmpp-stanzas" && c.Name.Local != "text" {
				return c.Name.Local
			}
		}
	}
	return ""
}

func TestPrivateXMLStorage(t *testing.T) {
	s, _ := bmServer(t)
	a := s.Connect(t, "alice@localhost/one")
	b := s.Connect(t, "bob@localhost/b")
	for _, tc := range []struct {
		name, from, iq, want, cond string
	}{
		{"set", "a", `<iq type='set' id='1'><query xmlns='jabber:iq:private'><exodus xmlns='exodus:prefs'><defaultnick>Hamlet</defaultnick></exodus></query></iq>`, "", ""},
		{"get", "a", `<iq type='get' id='2'><query xmlns='jabber:iq:private'><exodus xmlns='exodus:prefs'/></query></iq>`,
			"<query xmlns='jabber:iq:private'><exodus xmlns='exodus:prefs'><defaultnick>Hamlet</defaultnick></exodus></query>", ""},
		{"get to own bare JID", "a", `<iq type='get' id='3' to='alice@localhost'><query xmlns='jabber:iq:private'><exodus xmlns='exodus:prefs'/></query></iq>`,
			"<defaultnick>Hamlet</defaultnick>", ""},
		{"get absent", "a", `<iq type='get' id='4'><query xmlns='jabber:iq:private'><none xmlns='x'/></query></iq>`,
			"<query xmlns='jabber:iq:private'><none xmlns='x'/></query>", ""},
		{"another user's data", "b", `<iq type='get' id='5' to='alice@localhost'><query xmlns='jabber:iq:private'><exodus xmlns='exodus:prefs'/></query></iq>`, "", "forbidden"},
		{"set for another user", "b", `<iq type='set' id='6' to='alice@localhost'><query xmlns='jabber:iq:private'><exodus xmlns='exodus:prefs'/></query></iq>`, "", "forbidden"},
		{"bob sees his own, empty", "b", `<iq type='get' id='7'><query xmlns='jabber:iq:private'><exodus xmlns='exodus:prefs'/></query></iq>`,
			"<query xmlns='jabber:iq:private'><exodus xmlns='exodus:prefs'/></query>", ""},
		{"get without child", "a", `<iq type='get' id='8'><query xmlns='jabber:iq:private'/></iq>`, "", "bad-request"},
		{"set without child", "a", `<iq type='set' id='9'><query xmlns='jabber:iq:private'/></iq>`, "", "not-acceptable"},
		{"reserved namespace", "a", `<iq type='set' id='10'><query xmlns='jabber:iq:private'><x/></query></iq>`, "", "not-acceptable"},
		{"over the quota", "a", `<iq type='set' id='11'><query xmlns='jabber:iq:private'><a xmlns='q'>1</a><b xmlns='q'>2</b><c xmlns='q'>3</c></query></iq>`, "", "policy-violation"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := a
			if tc.from == "b" {
				c = b
			}
			el := c.Request(tc.iq)
			if got := bmCondition(el); got != tc.cond {
				t.Fatalf("condition %q, want %q: %s", got, tc.cond, el)
			}
			if !strings.Contains(el.String(), tc.want) {
				t.Fatalf("got %s\nwant %s", el, tc.want)
			}
		})
	}
}

const (
	bmPubsub  = "http://jabber.org/protocol/pubsub"
	bmPrivSet = `<iq type='set' id='ps'><query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'>` +
		`<conference jid='council@conference.underhill.org' name='Council of Oberon' autojoin='true'><nick>Puck</nick><password>pw</password></conference>` +
		`<conference jid='tea@muc.localhost' autojoin='false'/>` +
		`<url name='Home' url='https://underhill.org/'/></storage></query></iq>`
)

func TestBookmarksConversion(t *testing.T) {
	s, caps := bmServer(t)
	modern := s.Connect(t, "alice@localhost/modern")
	legacy := s.Connect(t, "alice@localhost/legacy")
	for _, c := range []*xmppmap.TestClient{modern, legacy} {
		c.Send(`<presence/>`)
	}
	caps.mu.Lock()
	caps.m["alice@localhost/modern"] = []string{bookmarks.NS + "+notify"}
	caps.m["alice@localhost/legacy"] = []string{bookmarks.NSLegacy + "+notify"}
	caps.mu.Unlock()

	// Account disco advertises the conversions.
	info := modern.Request(`<iq type='get' id='d' to='alice@localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`).String()
	for _, f := range []string{bookmarks.FeatureCompat, bookmarks.FeatureCompatPEP, bookmarks.NSConversion} {
		if !strings.Contains(info, "var='"+f+"'") {
			t.Fatalf("account disco lacks %s: %s", f, info)
		}
	}

	// XEP-0048 over XEP-0049 → XEP-0402.
	el, before := bmRequest(t, legacy, bmPrivSet)
	if el.Get("type") != "result" {
		t.Fatalf("private set: %s", el)
	}
	// The modern client is notified of each room (XEP-0402 §4)...
	ev := bmNext(t, modern, "council@conference.underhill.org")
	if !strings.Contains(ev, "<items node='urn:xmpp:bookmarks:1'>") {
		t.Fatalf("event %s", ev)
	}
	// ...and the legacy one of the whole list (XEP-0411 §3), before the
	// result.
	ev = strings.Join(before, "\n")
	if !strings.Contains(ev, "<items node='storage:bookmarks'>") || !strings.Contains(ev, "<item id='current'><storage xmlns='storage:bookmarks'>") || !strings.Contains(ev, "tea@muc.localhost") {
		t.Fatalf("legacy event %s", ev)
	}
	items := modern.Request(`<iq type='get' id='i'><pubsub xmlns='` + bmPubsub + `'><items node='urn:xmpp:bookmarks:1'/></pubsub></iq>`).String()
	for _, want := range []string{
		"<item id='council@conference.underhill.org'><conference xmlns='urn:xmpp:bookmarks:1' name='Council of Oberon' autojoin='true'><nick>Puck</nick><password>pw</password></conference></item>",
		"<item id='tea@muc.localhost'><conference xmlns='urn:xmpp:bookmarks:1'/></item>",
	} {
		if !strings.Contains(items, want) {
			t.Fatalf("items lack %s:\n%s", want, items)
		}
	}

	// XEP-0402 → XEP-0048: a modern client adds a room the way
	// XEP-0402 §3.2 shows; the legacy client reads it from private XML.
	pub := `<iq type='set' id='p'><pubsub xmlns='` + bmPubsub + `'><publish node='urn:xmpp:bookmarks:1'><item id='theplay@conference.shakespeare.lit'>` +
		`<conference xmlns='urn:xmpp:bookmarks:1' name='The Play&apos;s the Thing' autojoin='1'><nick>JC</nick><extensions><state xmlns='http://myclient.example/bookmark/state' minimized='true'/></extensions></conference>` +
		`</item></publish><publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>` +
		`<field var='pubsub#persist_items'><value>true</value></field><field var='pubsub#max_items'><value>max</value></field>` +
		`<field var='pubsub#send_last_published_item'><value>never</value></field><field var='pubsub#access_model'><value>whitelist</value></field></x></publish-options></pubsub></iq>`
	if el := modern.Request(pub); el.Get("type") != "result" {
		t.Fatalf("publish with XEP-0402 options: %s", el)
	}
	// The legacy PEP node follows.
	ev = bmNext(t, legacy, "theplay@conference.shakespeare.lit")
	if !strings.Contains(ev, "<conference jid='theplay@conference.shakespeare.lit' name='The Play&apos;s the Thing' autojoin='true'><nick>JC</nick></conference>") {
		t.Fatalf("legacy event %s", ev)
	}
	got := legacy.Request(`<iq type='get' id='pg'><query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query></iq>`).String()
	for _, want := range []string{
		"<conference jid='council@conference.underhill.org' name='Council of Oberon' autojoin='true'><nick>Puck</nick><password>pw</password></conference>",
		"<conference jid='tea@muc.localhost'/>",
		"<conference jid='theplay@conference.shakespeare.lit' name='The Play&apos;s the Thing' autojoin='true'><nick>JC</nick></conference>",
		"<url name='Home' url='https://underhill.org/'/>",
	} {
		if !strings.Contains(got, want) {
			t.Fatalf("private get lacks %s:\n%s", want, got)
		}
	}

	// A legacy client drops a room and renames another through private
	// XML: the extensions another client set survive.
	set := `<iq type='set' id='ps2'><query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'>` +
		`<conference jid='theplay@conference.shakespeare.lit' name='Renamed' autojoin='true'><nick>JC</nick></conference>` +
		`<conference jid='tea@muc.localhost'/></storage></query></iq>`
	if el := legacy.Request(set); el.Get("type") != "result" {
		t.Fatalf("private set: %s", el)
	}
	bmNext(t, modern, "<retract id='council@conference.underhill.org'/>")
	items = modern.Request(`<iq type='get' id='i2'><pubsub xmlns='` + bmPubsub + `'><items node='urn:xmpp:bookmarks:1'/></pubsub></iq>`).String()
	if strings.Contains(items, "council@") || !strings.Contains(items, "name='Renamed'") || !strings.Contains(items, "<state xmlns='http://myclient.example/bookmark/state' minimized='true'/>") {
		t.Fatalf("items after the legacy set: %s", items)
	}

	// XEP-0048 over PEP: a legacy client publishes the whole list.
	lpub := `<iq type='set' id='lp'><pubsub xmlns='` + bmPubsub + `'><publish node='storage:bookmarks'><item id='current'><storage xmlns='storage:bookmarks'>` +
		`<conference jid='tea@muc.localhost' name='Tea' autojoin='true'/></storage></item></publish></pubsub></iq>`
	if el := legacy.Request(lpub); el.Get("type") != "result" {
		t.Fatalf("legacy publish: %s", el)
	}
	// PEP answers before its hooks run: the conversion is done when its
	// last change is notified.
	bmNext(t, modern, "<retract id='theplay@conference.shakespeare.lit'/>")
	items = modern.Request(`<iq type='get' id='i3'><pubsub xmlns='` + bmPubsub + `'><items node='urn:xmpp:bookmarks:1'/></pubsub></iq>`).String()
	if strings.Contains(items, "theplay@") || !strings.Contains(items, "<item id='tea@muc.localhost'><conference xmlns='urn:xmpp:bookmarks:1' name='Tea' autojoin='true'/></item>") {
		t.Fatalf("items after the legacy publish: %s", items)
	}
	// The URL bookmarks went with the list that no longer has them.
	got = legacy.Request(`<iq type='get' id='pg2'><query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query></iq>`).String()
	if want := "<storage xmlns='storage:bookmarks'><conference jid='tea@muc.localhost' name='Tea' autojoin='true'/></storage>"; !strings.Contains(got, want) {
		t.Fatalf("private get %s\nwant %s", got, want)
	}
}
