package xmppmap_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/imppd/imppd/core"
	"github.com/imppd/imppd/rosters"
	"github.com/imppd/imppd/xmppmap"
	"github.com/imppd/imppd/xmppmap/disco"
	"github.com/imppd/imppd/xmppmap/pep"
)

// memPEP is an in-memory pep.Store.
type memPEP struct {
	mu    sync.Mutex
	nodes map[string]core.MarkupNode
	items map[string][]core.MarkupItem // oldest first
}

func newMemPEP() *memPEP {
	return &memPEP{nodes: map[string]core.MarkupNode{}, items: map[string][]core.MarkupItem{}}
}

func pepKey(o core.PrincipalID, n string) string { return string(o) + "\x00" + n }

func (s *memPEP) PubNode(_ context.Context, o core.PrincipalID, n string) (core.MarkupNode, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.nodes[pepKey(o, n)]
	return v, ok, nil
}

func (s *memPEP) PubNodes(_ context.Context, owners ...core.PrincipalID) ([]core.MarkupNode, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []core.MarkupNode
	for _, n := range s.nodes {
		if slices.Contains(owners, n.Owner) {
			out = append(out, n)
		}
	}
	slices.SortFunc(out, func(a, b core.MarkupNode) int {
		return strings.Compare(string(a.Owner)+"\x00"+a.Name, string(b.Owner)+"\x00"+b.Name)
	})
	return out, nil
}

func (s *memPEP) PutPubNode(_ context.Context, n core.MarkupNode) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nodes[pepKey(n.Owner, n.Name)] = n
	return nil
}

func (s *memPEP) DeletePubNode(_ context.Context, o core.PrincipalID, n string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := pepKey(o, n)
	_, ok := s.nodes[k]
	delete(s.nodes, k)
	delete(s.items, k)
	return ok, nil
}

func (s *memPEP) PublishItem(_ context.Context, o core.PrincipalID, n string, cfg core.NodeConfig, it core.MarkupItem, keep int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := pepKey(o, n)
	if _, ok := s.nodes[k]; !ok {
		s.nodes[k] = core.MarkupNode{Owner: o, Name: n, Config: cfg}
	}
	its := slices.DeleteFunc(s.items[k], func(x core.MarkupItem) bool { return x.ID == it.ID })
	its = append(its, it)
	if keep > 0 && len(its) > keep {
		its = its[len(its)-keep:]
	}
	s.items[k] = its
	return nil
}

func (s *memPEP) TrimItems(_ context.Context, o core.PrincipalID, n string, keep int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := pepKey(o, n)
	if its := s.items[k]; len(its) > max(keep, 0) {
		s.items[k] = its[len(its)-max(keep, 0):]
	}
	return nil
}

func (s *memPEP) RetractItem(_ context.Context, o core.PrincipalID, n, id string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := pepKey(o, n)
	before := len(s.items[k])
	s.items[k] = slices.DeleteFunc(s.items[k], func(x core.MarkupItem) bool { return x.ID == id })
	return len(s.items[k]) < before, nil
}

func (s *memPEP) PubItems(_ context.Context, o core.PrincipalID, n string, ids []string, max int) ([]core.MarkupItem, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []core.MarkupItem
	its := s.items[pepKey(o, n)]
	for i := len(its) - 1; i >= 0; i-- {
		if len(ids) > 0 && !slices.Contains(ids, its[i].ID) {
			continue
		}
		out = append(out, its[i])
		if len(ids) == 0 && max > 0 && len(out) == max {
			break
		}
	}
	return out, nil
}

func (s *memPEP) PubBytes(_ context.Context, o core.PrincipalID) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for k, its := range s.items {
		if strings.HasPrefix(k, string(o)+"\x00") {
			for _, it := range its {
				n += int64(len(it.Payload))
			}
		}
	}
	return n, nil
}

// fakeCaps is a capabilities cache the test fills itself.
type fakeCaps struct {
	mu   sync.Mutex
	m    map[string][]string
	hook []func(xmppmap.Session, []string)
}

func (c *fakeCaps) Has(full, f string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Contains(c.m[full], f)
}

func (c *fakeCaps) OnChange(f func(xmppmap.Session, []string)) { c.hook = append(c.hook, f) }

func (c *fakeCaps) set(s *xmppmap.TestServer, full string, fs ...string) {
	c.mu.Lock()
	c.m[full] = fs
	c.mu.Unlock()
	ss, _ := s.Session(full)
	for _, f := range c.hook {
		f(ss, fs)
	}
}

func newPEPServer(t *testing.T) (*xmppmap.TestServer, *pep.Module, *fakeCaps) {
	s := xmppmap.NewTestServer(t, "alice@localhost", "bob@localhost", "eve@localhost")
	caps := &fakeCaps{m: map[string][]string{}}
	d := disco.New()
	p := pep.New(newMemPEP(), caps, d, nil)
	s.Use(d, p)
	ctx := context.Background()
	// alice and bob are mutual contacts; eve is a stranger.
	for _, pr := range [][2]core.PrincipalID{{"alice@localhost", "bob@localhost"}, {"bob@localhost", "alice@localhost"}} {
		if _, err := s.Rosters().Subscribe(ctx, pr[0], pr[1], nil); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Rosters().Approve(ctx, pr[1], pr[0]); err != nil {
			t.Fatal(err)
		}
	}
	return s, p, caps
}

// nextWith reads c's stanzas until one contains want.
func nextWith(t *testing.T, c *xmppmap.TestClient, want string) string {
	t.Helper()
	for {
		if x := c.Next().String(); strings.Contains(x, want) {
			return x
		}
	}
}

// quiet checks that c was sent nothing containing bad before the answer to
// a ping it sends now.
func quiet(t *testing.T, c *xmppmap.TestClient, bad string) {
	t.Helper()
	c.Send(`<iq type='get' id='quiet'><ping xmlns='urn:xmpp:ping'/></iq>`)
	for {
		x := c.Next().String()
		if strings.Contains(x, bad) {
			t.Fatalf("unexpected %s", x)
		}
		if strings.Contains(x, "id='quiet'") {
			return
		}
	}
}

const (
	devices = "eu.siacs.conversations.axolotl.devicelist"
	bundle  = "eu.siacs.conversations.axolotl.bundles:31415"
)

func publishIQ(id, node, itemID, payload, opts string) string {
	x := `<iq type='set' id='` + id + `'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='` + node + `'><item id='` + itemID + `'>` + payload + `</item></publish>`
	if opts != "" {
		x += `<publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>` + opts + `</x></publish-options>`
	}
	return x + `</pubsub></iq>`
}

func opt(name, v string) string {
	return `<field var='pubsub#` + name + `'><value>` + v + `</value></field>`
}

func TestPEPOMEMOFlow(t *testing.T) {
	s, p, caps := newPEPServer(t)
	alice := s.Connect(t, "alice@localhost/phone")
	bob := s.Connect(t, "bob@localhost/laptop")
	eve := s.Connect(t, "eve@localhost/x")
	alice.Send(`<presence/>`)
	bob.Send(`<presence/>`)
	nextWith(t, bob, "from='alice@localhost/phone'")
	caps.set(s, "bob@localhost/laptop", devices+"+notify")
	caps.set(s, "alice@localhost/phone", devices+"+notify")

	// The device list, open to anyone (Conversations' publish-options).
	list := `<list xmlns='eu.siacs.conversations.axolotl'><device id='31415'/></list>`
	// The owner's resource with +notify is told too: before the answer,
	// since watchers are notified under the owner's lock.
	alice.Send(publishIQ("p1", devices, "current", list, opt("access_model", "open")))
	nextWith(t, alice, "pubsub#event")
	if x := nextWith(t, alice, "id='p1'"); !strings.Contains(x, "type='result'") || !strings.Contains(x, "<item id='current'/>") {
		t.Fatalf("publish: %s", x)
	}
	// The contact with +notify and the owner's own resource are told.
	ev := nextWith(t, bob, "http://jabber.org/protocol/pubsub#event")
	for _, want := range []string{"from='alice@localhost'", "type='headline'", "<items node='" + devices + "'>", "<device id='31415'/>"} {
		if !strings.Contains(ev, want) {
			t.Errorf("notification lacks %s: %s", want, ev)
		}
	}
	// The stranger is not: it is no presence subscriber.
	quiet(t, eve, "pubsub#event")

	// A bundle node: published open, fetched by the stranger.
	b := `<bundle xmlns='eu.siacs.conversations.axolotl'><signedPreKeyPublic signedPreKeyId='1'>AAA</signedPreKeyPublic></bundle>`
	if el := alice.Request(publishIQ("p2", bundle, "current", b, opt("access_model", "open"))); el.Get("type") != "result" {
		t.Fatalf("publish bundle: %s", el)
	}
	el := eve.Request(`<iq type='get' id='f1' to='alice@localhost'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='` + bundle + `' max_items='1'/></pubsub></iq>`)
	if el.Get("type") != "result" || !strings.Contains(el.String(), "signedPreKeyPublic") || el.Get("from") != "alice@localhost" {
		t.Fatalf("stranger's fetch of an open node: %s", el)
	}
	// A mismatched precondition is refused and changes nothing.
	el = alice.Request(publishIQ("p3", bundle, "current", b, opt("access_model", "presence")))
	if x := el.String(); !strings.Contains(x, "<conflict") || !strings.Contains(x, "<precondition-not-met xmlns='http://jabber.org/protocol/pubsub#errors'/>") {
		t.Fatalf("precondition: %s", x)
	}
	if el := eve.Request(`<iq type='get' id='f2' to='alice@localhost'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='` + bundle + `'/></pubsub></iq>`); el.Get("type") != "result" {
		t.Fatalf("node changed by a refused publish: %s", el)
	}
	// A later resource of bob's learns the last item when its interest is known.
	bob2 := s.Connect(t, "bob@localhost/phone")
	bob2.Send(`<presence/>`)
	nextWith(t, bob2, "from='alice@localhost/phone'")
	caps.set(s, "bob@localhost/phone", devices+"+notify")
	if x := nextWith(t, bob2, "pubsub#event"); !strings.Contains(x, "31415") || !strings.Contains(x, "urn:xmpp:delay") {
		t.Fatalf("last item: %s", x)
	}
	// The same interest again sends nothing new.
	caps.set(s, "bob@localhost/phone", devices+"+notify")
	quiet(t, bob2, "pubsub#event")

	// Programmatic publishes notify too (modules such as vCard use it).
	if _, err := p.Publish(context.Background(), "alice@localhost", devices, "current",
		[]byte(`<list xmlns='eu.siacs.conversations.axolotl'><device id='27'/></list>`), nil); err != nil {
		t.Fatal(err)
	}
	nextWith(t, bob, "device id='27'")
}

func TestPEPAccessModels(t *testing.T) {
	s, _, _ := newPEPServer(t)
	alice := s.Connect(t, "alice@localhost/a")
	bob := s.Connect(t, "bob@localhost/b")
	eve := s.Connect(t, "eve@localhost/e")
	for _, n := range []struct{ node, access string }{{"n-presence", "presence"}, {"n-whitelist", "whitelist"}, {"n-roster", "roster"}, {"n-open", "open"}} {
		if el := alice.Request(publishIQ("p-"+n.node, n.node, "i1", "<x xmlns='urn:test'/>", opt("access_model", n.access))); el.Get("type") != "result" {
			t.Fatalf("publish %s: %s", n.node, el)
		}
	}
	fetch := func(c *xmppmap.TestClient, node string) string {
		return c.Request(`<iq type='get' id='g' to='alice@localhost'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='` + node + `'/></pubsub></iq>`).String()
	}
	for _, tc := range []struct {
		who  *xmppmap.TestClient
		node string
		want string
	}{
		{alice, "n-whitelist", "type='result'"},
		{bob, "n-presence", "type='result'"},
		{bob, "n-open", "type='result'"},
		{bob, "n-whitelist", "<closed-node xmlns='http://jabber.org/protocol/pubsub#errors'/>"},
		{bob, "n-roster", "type='result'"}, // no groups named: the whole roster
		{eve, "n-presence", "<presence-subscription-required xmlns='http://jabber.org/protocol/pubsub#errors'/>"},
		{eve, "n-roster", "<not-in-roster-group xmlns='http://jabber.org/protocol/pubsub#errors'/>"},
		{eve, "n-open", "type='result'"},
		{eve, "missing", "<item-not-found"},
	} {
		i := tc.node + "/" + map[*xmppmap.TestClient]string{alice: "alice", bob: "bob", eve: "eve"}[tc.who]
		if got := fetch(tc.who, tc.node); !strings.Contains(got, tc.want) {
			t.Errorf("%s: %s", i, got)
		}
	}
	// Roster groups narrow the roster model.
	if err := s.Rosters().Set(context.Background(), "alice@localhost", rosters.Item{Contact: "bob@localhost", Groups: []string{"Friends"}}); err != nil {
		t.Fatal(err)
	}
	cfg := func(group string) string {
		return `<iq type='set' id='c'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='n-roster'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#node_config</value></field><field var='pubsub#roster_groups_allowed'><value>` + group + `</value></field></x></configure></pubsub></iq>`
	}
	if el := alice.Request(cfg("Family")); el.Get("type") != "result" {
		t.Fatal(el)
	}
	if got := fetch(bob, "n-roster"); !strings.Contains(got, "not-in-roster-group") {
		t.Errorf("bob outside the allowed group: %s", got)
	}
	alice.Request(cfg("Friends"))
	if got := fetch(bob, "n-roster"); !strings.Contains(got, "type='result'") {
		t.Errorf("bob in the allowed group: %s", got)
	}
	// Disco lists the nodes a requester may read.
	items := eve.Request(`<iq type='get' id='d' to='alice@localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>`).String()
	if !strings.Contains(items, "service-unavailable") {
		// eve cannot see alice's presence, so the account's items are hidden.
		t.Errorf("stranger's disco#items: %s", items)
	}
	own := alice.Request(`<iq type='get' id='d'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>`).String()
	for _, n := range []string{"n-presence", "n-whitelist", "n-roster", "n-open"} {
		if !strings.Contains(own, "node='"+n+"'") {
			t.Errorf("own disco#items lacks %s: %s", n, own)
		}
	}
	bobs := bob.Request(`<iq type='get' id='d' to='alice@localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>`).String()
	if strings.Contains(bobs, "n-whitelist") || !strings.Contains(bobs, "n-open") {
		t.Errorf("contact's disco#items: %s", bobs)
	}
	info := eve.Request(`<iq type='get' id='i' to='alice@localhost'><query xmlns='http://jabber.org/protocol/disco#info' node='n-open'/></iq>`).String()
	if !strings.Contains(info, "category='pubsub'") || !strings.Contains(info, "type='leaf'") {
		t.Errorf("open node's info for a stranger: %s", info)
	}
	acct := alice.Request(`<iq type='get' id='i'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`).String()
	for _, want := range []string{"type='pep'", "pubsub#publish-options", "pubsub#config-node-max"} {
		if !strings.Contains(acct, want) {
			t.Errorf("account info lacks %s: %s", want, acct)
		}
	}
}

func TestPEPRequests(t *testing.T) {
	s, _, caps := newPEPServer(t)
	alice := s.Connect(t, "alice@localhost/a")
	bob := s.Connect(t, "bob@localhost/b")
	alice.Send(`<presence/>`)
	bob.Send(`<presence/>`)
	nextWith(t, bob, "from='alice@localhost/a'")
	caps.set(s, "bob@localhost/b", "urn:test:n+notify")
	ps := func(inner string) string {
		return `<pubsub xmlns='http://jabber.org/protocol/pubsub'>` + inner + `</pubsub>`
	}
	own := func(inner string) string {
		return `<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'>` + inner + `</pubsub>`
	}
	steps := []struct {
		who        *xmppmap.TestClient
		iq         string
		want, then string // in the answer; in bob's next notification
	}{
		{alice, `<iq type='set' id='1'>` + ps(`<publish node='urn:test:n'/>`) + `</iq>`, "item-required", ""},
		{alice, `<iq type='set' id='1'>` + ps(`<publish node='urn:test:n'><item id='a'/></publish>`) + `</iq>`, "payload-required", ""},
		{alice, `<iq type='set' id='1'>` + ps(`<publish node='urn:test:n'><item id='a'><x xmlns='urn:t'/><y xmlns='urn:t'/></item></publish>`) + `</iq>`, "invalid-payload", ""},
		{alice, `<iq type='set' id='1'>` + ps(`<publish><item><x xmlns='urn:t'/></item></publish>`) + `</iq>`, "nodeid-required", ""},
		{alice, publishIQ("1", strings.Repeat("n", 1024), "a", "<x xmlns='urn:t'/>", ""), "not-acceptable", ""},
		{alice, publishIQ("1", "urn:test:n", strings.Repeat("i", 1024), "<x xmlns='urn:t'/>", ""), "not-acceptable", ""},
		{alice, `<iq type='set' id='1'>` + ps(`<create node='`+strings.Repeat("n", 1024)+`'/>`) + `</iq>`, "not-acceptable", ""},
		{bob, `<iq type='set' id='1' to='alice@localhost'>` + ps(`<publish node='urn:test:n'><item><x xmlns='urn:t'/></item></publish>`) + `</iq>`, "<forbidden", ""},
		{alice, `<iq type='set' id='1' to='nobody@localhost'>` + ps(`<publish node='urn:test:n'><item><x xmlns='urn:t'/></item></publish>`) + `</iq>`, "service-unavailable", ""},
		{alice, publishIQ("1", "urn:test:n", "a", "<x xmlns='urn:t'>1</x>", opt("max_items", "max")+opt("send_last_published_item", "never")), "<item id='a'/>", "<x xmlns='urn:t'>1</x>"},
		{alice, publishIQ("1", "urn:test:n", "b", "<x xmlns='urn:t'>2</x>", opt("max_items", "max")), "<item id='b'/>", "<x xmlns='urn:t'>2</x>"},
		{alice, publishIQ("1", "urn:test:n", "c", "<x xmlns='urn:t'>3</x>", opt("max_items", "5")), "precondition-not-met", ""},
		{alice, publishIQ("1", "urn:test:n", "c", "<x xmlns='urn:t'>3</x>", opt("persist_items", "true")+opt("send_last_published_item", "never")), "<item id='c'/>", "<x xmlns='urn:t'>3</x>"},
		{alice, publishIQ("1", "urn:test:n", "d", "<x xmlns='urn:t'/>", opt("nonsense", "1")), "precondition-not-met", ""},
		{bob, `<iq type='get' id='1' to='alice@localhost'>` + ps(`<items node='urn:test:n' max_items='2'/>`) + `</iq>`, "<item id='b'><x xmlns='urn:t'>2</x></item><item id='c'>", ""},
		{bob, `<iq type='get' id='1' to='alice@localhost'>` + ps(`<items node='urn:test:n'><item id='a'/></items>`) + `</iq>`, "<items node='urn:test:n'><item id='a'><x xmlns='urn:t'>1</x></item></items>", ""},
		{alice, `<iq type='set' id='1'>` + ps(`<retract node='urn:test:n' notify='true'><item id='a'/></retract>`) + `</iq>`, "type='result'", "<retract id='a'/>"},
		{alice, `<iq type='set' id='1'>` + ps(`<retract node='urn:test:n'><item id='a'/></retract>`) + `</iq>`, "item-not-found", ""},
		{alice, `<iq type='get' id='1'>` + own(`<configure node='urn:test:n'/>`) + `</iq>`, "<field var='pubsub#max_items' type='text-single' label='Max # of items to persist (or max)'><value>max</value>", ""},
		{alice, `<iq type='set' id='1'>` + own(`<configure node='urn:test:n'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#node_config</value></field><field var='pubsub#max_items'><value>1</value></field></x></configure>`) + `</iq>`, "type='result'", ""},
		{bob, `<iq type='get' id='1' to='alice@localhost'>` + ps(`<items node='urn:test:n'/>`) + `</iq>`, "<items node='urn:test:n'><item id='c'><x xmlns='urn:t'>3</x></item></items>", ""},
		{alice, `<iq type='set' id='1'>` + own(`<configure node='urn:test:n'><x xmlns='jabber:x:data' type='submit'><field var='pubsub#access_model'><value>everyone</value></field></x></configure>`) + `</iq>`, "not-acceptable", ""},
		{bob, `<iq type='get' id='1' to='alice@localhost'>` + own(`<configure node='urn:test:n'/>`) + `</iq>`, "<forbidden", ""},
		{alice, `<iq type='set' id='1'>` + ps(`<create node='urn:test:n'/>`) + `</iq>`, "<conflict", ""},
		{alice, `<iq type='set' id='1'>` + ps(`<create node='urn:test:m'/><configure><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#node_config</value></field><field var='pubsub#access_model'><value>whitelist</value></field></x></configure>`) + `</iq>`, "type='result'", ""},
		{bob, `<iq type='get' id='1' to='alice@localhost'>` + ps(`<items node='urn:test:m'/>`) + `</iq>`, "closed-node", ""},
		{alice, `<iq type='set' id='1'>` + ps(`<subscribe node='urn:test:n' jid='alice@localhost'/>`) + `</iq>`, "<unsupported xmlns='http://jabber.org/protocol/pubsub#errors' feature='subscribe'/>", ""},
		{alice, `<iq type='get' id='1'>` + ps(`<subscriptions/>`) + `</iq>`, "feature='retrieve-subscriptions'", ""},
		{alice, `<iq type='get' id='1'>` + ps(`<affiliations/>`) + `</iq>`, "<affiliation node='urn:test:m' affiliation='owner'/><affiliation node='urn:test:n' affiliation='owner'/>", ""},
		{bob, `<iq type='get' id='1' to='alice@localhost'>` + ps(`<affiliations/>`) + `</iq>`, "<affiliations/>", ""},
		{alice, `<iq type='set' id='1'>` + own(`<purge node='urn:test:n'/>`) + `</iq>`, "type='result'", "<purge node='urn:test:n'/>"},
		{bob, `<iq type='get' id='1' to='alice@localhost'>` + ps(`<items node='urn:test:n'/>`) + `</iq>`, "<items node='urn:test:n'/>", ""},
		{alice, `<iq type='set' id='1'>` + own(`<delete node='urn:test:n'/>`) + `</iq>`, "type='result'", "<delete node='urn:test:n'/>"},
		{bob, `<iq type='get' id='1' to='alice@localhost'>` + ps(`<items node='urn:test:n'/>`) + `</iq>`, "item-not-found", ""},
	}
	for i, st := range steps {
		if got := st.who.Request(st.iq).String(); !strings.Contains(got, st.want) {
			t.Fatalf("step %d: %s\n got %s\nwant %s", i, st.iq, got, st.want)
		}
		if st.then != "" {
			if got := nextWith(t, bob, "pubsub#event"); !strings.Contains(got, st.then) {
				t.Fatalf("step %d: notification %s lacks %s", i, got, st.then)
			}
		}
	}
	quiet(t, bob, "pubsub#event")
}

func TestPEPLastItemOnSubscription(t *testing.T) {
	s, _, caps := newPEPServer(t)
	alice := s.Connect(t, "alice@localhost/a")
	eve := s.Connect(t, "eve@localhost/e")
	alice.Send(`<presence/>`)
	eve.Send(`<presence/>`)
	caps.set(s, "eve@localhost/e", "urn:test:mood+notify", "urn:test:never+notify")
	for _, n := range []string{"urn:test:mood", "urn:test:never"} {
		o := ""
		if n == "urn:test:never" {
			o = opt("send_last_published_item", "never")
		}
		if el := alice.Request(publishIQ("p", n, "current", "<m xmlns='urn:test'>"+n+"</m>", o)); el.Get("type") != "result" {
			t.Fatal(el)
		}
	}
	quiet(t, eve, "pubsub#event") // a stranger is told nothing
	eve.Send(`<presence type='subscribe' to='alice@localhost'/>`)
	nextWith(t, alice, "type='subscribe'")
	alice.Send(`<presence type='subscribed' to='eve@localhost'/>`)
	if x := nextWith(t, eve, "pubsub#event"); !strings.Contains(x, "urn:test:mood</m>") {
		t.Fatalf("last item on subscription: %s", x)
	}
	// The hook ran on alice's goroutine: once she answers a ping it is done.
	alice.Request(`<iq type='get' id='sync'><ping xmlns='urn:xmpp:ping'/></iq>`)
	quiet(t, eve, "urn:test:never</m>")
}

func TestPEPNodeDefaults(t *testing.T) {
	s, p, _ := newPEPServer(t)
	p.SetDefault("urn:test:private", core.NodeConfig{Access: core.AccessWhitelist, Persist: true, MaxItems: 5, SendLast: "never"})
	alice := s.Connect(t, "alice@localhost/a")
	bob := s.Connect(t, "bob@localhost/b")
	for _, n := range []string{"urn:test:private", "urn:test:public"} {
		if el := alice.Request(publishIQ("p", n, "x", "<x xmlns='urn:t'/>", "")); el.Get("type") != "result" {
			t.Fatal(el)
		}
	}
	for n, want := range map[string]string{"urn:test:private": "closed-node", "urn:test:public": "type='result'"} {
		got := bob.Request(`<iq type='get' id='g' to='alice@localhost'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='` + n + `'/></pubsub></iq>`).String()
		if !strings.Contains(got, want) {
			t.Errorf("%s: %s", n, got)
		}
	}
	// The node's own default shows in its configuration.
	if got := alice.Request(`<iq type='get' id='c'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='urn:test:private'/></pubsub></iq>`).String(); !strings.Contains(got, "<value>5</value>") {
		t.Errorf("configuration: %s", got)
	}
}

func TestPEPQuota(t *testing.T) {
	s, p, _ := newPEPServer(t)
	p.SetQuota(100)
	alice := s.Connect(t, "alice@localhost/a")
	big := "<x xmlns='urn:t'>" + strings.Repeat("a", 60) + "</x>"
	if el := alice.Request(publishIQ("1", "urn:test:a", "1", big, "")); el.Get("type") != "result" {
		t.Fatal(el)
	}
	if got := alice.Request(publishIQ("2", "urn:test:b", "1", big, "")).String(); !strings.Contains(got, "policy-violation") {
		t.Fatalf("over quota: %s", got)
	}
	// Replacing an item counts what it frees: a bundle can be republished.
	if el := alice.Request(publishIQ("2b", "urn:test:a", "1", big, "")); el.Get("type") != "result" {
		t.Fatalf("replacing at the quota: %s", el)
	}
	alice.Request(`<iq type='set' id='r'><pubsub xmlns='http://jabber.org/protocol/pubsub'><retract node='urn:test:a'><item id='1'/></retract></pubsub></iq>`)
	if el := alice.Request(publishIQ("3", "urn:test:b", "1", big, "")); el.Get("type") != "result" {
		t.Fatalf("after freeing space: %s", el)
	}
}

// TestPEPClientOptionBundles publishes with the exact publish-options real
// clients send, to a new node and again to the existing one.
func TestPEPClientOptionBundles(t *testing.T) {
	s, _, _ := newPEPServer(t)
	alice := s.Connect(t, "alice@localhost/a")
	for _, tc := range []struct{ who, node, opts string }{
		// nbxmpp 4 (Gajim 1.7) NativeBookmarks.BOOKMARK_OPTIONS.
		{"nbxmpp bookmarks", "urn:xmpp:bookmarks:1", opt("notify_delete", "true") + opt("notify_retract", "true") + opt("persist_items", "true") +
			opt("max_items", "max") + opt("access_model", "whitelist") + opt("send_last_published_item", "never")},
		// nbxmpp PEPBookmarks (XEP-0048 over PEP).
		{"nbxmpp legacy bookmarks", "storage:bookmarks", opt("persist_items", "true") + opt("access_model", "whitelist")},
		// Conversations' persistentWhitelistAccessMaxItems (bookmarks, MDS).
		{"Conversations MDS", "urn:xmpp:mds:displayed:0", opt("persist_items", "true") + opt("access_model", "whitelist") +
			opt("send_last_published_item", "never") + opt("max_items", "max") + opt("notify_delete", "true")},
		// Conversations' openAccess (OMEMO).
		{"Conversations OMEMO", devices, opt("access_model", "open")},
	} {
		for i := range 2 {
			el := alice.Request(publishIQ("b", tc.node, "x", "<x xmlns='urn:t'/>", tc.opts))
			if el.Get("type") != "result" {
				t.Errorf("%s, publish %d: %s", tc.who, i+1, el)
			}
		}
	}
}

// TestPEPRosterNotifications: a roster-model node notifies only watchers
// in its allowed groups.
func TestPEPRosterNotifications(t *testing.T) {
	s, _, caps := newPEPServer(t)
	if err := s.Rosters().Set(context.Background(), "alice@localhost", rosters.Item{Contact: "bob@localhost", Groups: []string{"Friends"}}); err != nil {
		t.Fatal(err)
	}
	alice := s.Connect(t, "alice@localhost/a")
	bob := s.Connect(t, "bob@localhost/b")
	alice.Send(`<presence/>`)
	bob.Send(`<presence/>`)
	nextWith(t, bob, "from='alice@localhost/a'")
	caps.set(s, "bob@localhost/b", "urn:test:r+notify")
	groups := func(g string) string {
		return opt("access_model", "roster") + `<field var='pubsub#roster_groups_allowed'><value>` + g + `</value></field>`
	}
	if el := alice.Request(publishIQ("1", "urn:test:r", "1", "<x xmlns='urn:t'>friends</x>", groups("Friends"))); el.Get("type") != "result" {
		t.Fatal(el)
	}
	nextWith(t, bob, "friends</x>")
	cfg := `<iq type='set' id='c'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='urn:test:r'><x xmlns='jabber:x:data' type='submit'><field var='pubsub#roster_groups_allowed'><value>Family</value></field></x></configure></pubsub></iq>`
	if el := alice.Request(cfg); el.Get("type") != "result" {
		t.Fatal(el)
	}
	if el := alice.Request(publishIQ("2", "urn:test:r", "2", "<x xmlns='urn:t'>family</x>", "")); el.Get("type") != "result" {
		t.Fatal(el)
	}
	quiet(t, bob, "family</x>")
}
