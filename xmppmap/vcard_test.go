package xmppmap_test

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"image"
	"image/png"
	"math/rand"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/imppd/imppd/core"
	"github.com/imppd/imppd/xmppmap"
	"github.com/imppd/imppd/xmppmap/vcard"
)

// memData is an in-memory account data store (vcard.Store, private.Store).
type memData struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (s *memData) AccountData(_ context.Context, o core.PrincipalID, k string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.m[string(o)+"\x00"+k]), nil
}

func (s *memData) PutAccountData(_ context.Context, o core.PrincipalID, k string, v []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v == nil {
		delete(s.m, string(o)+"\x00"+k)
	} else {
		s.m[string(o)+"\x00"+k] = bytes.Clone(v)
	}
	return nil
}

// vcPEP is an in-memory vcard.PEP that records publications.
type vcPEP struct {
	mu        sync.Mutex
	items     map[string][]core.MarkupItem // owner, node → newest first
	cfgs      map[string]core.NodeConfig
	published []string // "node id access" of each publication
	n         int
	pubHooks  map[string][]func(context.Context, core.PrincipalID, core.MarkupItem)
	retHooks  map[string][]func(context.Context, core.PrincipalID, string)
}

func newVCPEP() *vcPEP {
	return &vcPEP{items: map[string][]core.MarkupItem{}, cfgs: map[string]core.NodeConfig{},
		pubHooks: map[string][]func(context.Context, core.PrincipalID, core.MarkupItem){},
		retHooks: map[string][]func(context.Context, core.PrincipalID, string){}}
}

func vcKey(o core.PrincipalID, node string) string { return string(o) + "\x00" + node }

func (p *vcPEP) Publish(ctx context.Context, o core.PrincipalID, node, id string, payload []byte, cfg *core.NodeConfig) (string, error) {
	p.mu.Lock()
	k := vcKey(o, node)
	if _, ok := p.cfgs[k]; !ok {
		c := core.NodeConfig{Access: core.AccessPresence, MaxItems: 1}
		if cfg != nil {
			c = *cfg
		}
		p.cfgs[k] = c
	}
	if id == "" {
		p.n++
		id = "gen" + strconv.Itoa(p.n)
	}
	it := core.MarkupItem{ID: id, Payload: bytes.Clone(payload)}
	its := slices.DeleteFunc(p.items[k], func(x core.MarkupItem) bool { return x.ID == id })
	p.items[k] = append([]core.MarkupItem{it}, its...)
	p.published = append(p.published, node+" "+id+" "+p.cfgs[k].Access)
	hooks := p.pubHooks[node]
	p.mu.Unlock()
	for _, f := range hooks {
		f(ctx, o, it)
	}
	return id, nil
}

func (p *vcPEP) Items(_ context.Context, o core.PrincipalID, node string, max int) ([]core.MarkupItem, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	its := p.items[vcKey(o, node)]
	if max > 0 && len(its) > max {
		its = its[:max]
	}
	return slices.Clone(its), nil
}

func (p *vcPEP) Item(_ context.Context, o core.PrincipalID, node, id string) (core.MarkupItem, bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, it := range p.items[vcKey(o, node)] {
		if it.ID == id {
			return it, true, nil
		}
	}
	return core.MarkupItem{}, false, nil
}

func (p *vcPEP) OnPublish(node string, f func(context.Context, core.PrincipalID, core.MarkupItem)) {
	p.pubHooks[node] = append(p.pubHooks[node], f)
}

func (p *vcPEP) OnRetract(node string, f func(context.Context, core.PrincipalID, string)) {
	p.retHooks[node] = append(p.retHooks[node], f)
}

// purge empties a node as a client's purge would.
func (p *vcPEP) purge(o core.PrincipalID, node string) {
	p.mu.Lock()
	delete(p.items, vcKey(o, node))
	hooks := p.retHooks[node]
	p.mu.Unlock()
	for _, f := range hooks {
		f(context.Background(), o, "")
	}
}

func (p *vcPEP) log() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.published)
}

// vcReaderPEP also decides access: open nodes are readable by anyone.
type vcReaderPEP struct{ *vcPEP }

func (p vcReaderPEP) MayRead(_ context.Context, o core.PrincipalID, node string, r core.PrincipalID) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return o == r || p.cfgs[vcKey(o, node)].Access == core.AccessOpen
}

const (
	vcAlice = core.PrincipalID("alice@localhost")
	vcBob   = core.PrincipalID("bob@localhost")
	vcCarol = core.PrincipalID("carol@localhost")
)

// vcSetup returns a server with the vCard modules over store and pep (nil:
// none) where bob watches alice and carol does not.
func vcSetup(t *testing.T, pep vcard.PEP) (*xmppmap.TestServer, *memData) {
	t.Helper()
	s := xmppmap.NewTestServer(t, vcAlice, vcBob, vcCarol)
	st := &memData{m: map[string][]byte{}}
	s.Use(vcard.New(st, pep)...)
	ctx := context.Background()
	if _, err := s.Rosters().Subscribe(ctx, vcBob, vcAlice, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Rosters().Approve(ctx, vcAlice, vcBob); err != nil {
		t.Fatal(err)
	}
	return s, st
}

func vcPNG(t *testing.T, w, h int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, image.NewGray(image.Rect(0, 0, w, h))); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func vcSHA1(b []byte) string {
	s := sha1.Sum(b)
	return hex.EncodeToString(s[:])
}

// vcPhotoOf returns the TYPE and decoded BINVAL of a vCard result's PHOTO;
// ok is false when it has none.
func vcPhotoOf(t *testing.T, el *xmppmap.Element) (typ string, data []byte, ok bool) {
	t.Helper()
	vc := el.Child(vcard.NS, "vCard")
	if el.Get("type") != "result" || vc == nil {
		t.Fatalf("not a vCard result: %s", el)
	}
	p := vc.Child(vcard.NS, "PHOTO")
	if p == nil {
		return "", nil, false
	}
	if c := p.Child(vcard.NS, "TYPE"); c != nil {
		typ = c.Text()
	}
	if c := p.Child(vcard.NS, "BINVAL"); c != nil {
		var err error
		if data, err = base64.StdEncoding.DecodeString(c.Text()); err != nil {
			t.Fatalf("BINVAL: %v in %s", err, el)
		}
	}
	return typ, data, true
}

func vcGet(c *xmppmap.TestClient, to string) *xmppmap.Element {
	if to != "" {
		to = " to='" + to + "'"
	}
	return c.Request("<iq type='get' id='g'" + to + "><vCard xmlns='vcard-temp'/></iq>")
}

func vcSet(c *xmppmap.TestClient, inner string) *xmppmap.Element {
	return c.Request("<iq type='set' id='s'><vCard xmlns='vcard-temp'>" + inner + "</vCard></iq>")
}

func vcPhotoXML(typ string, data []byte) string {
	b64 := base64.StdEncoding.EncodeToString(data)
	// Wrapped as RFC 2045 says; the server ignores the whitespace.
	var w strings.Builder
	for len(b64) > 76 {
		w.WriteString(b64[:76] + "\n")
		b64 = b64[76:]
	}
	w.WriteString(b64)
	return "<PHOTO><TYPE>" + typ + "</TYPE><BINVAL>" + w.String() + "</BINVAL></PHOTO>"
}

// TestVCardStorage covers XEP-0054 without a PEP service: the vCard is kept as
// set, PHOTO included.
func TestVCardStorage(t *testing.T) {
	s, st := vcSetup(t, nil)
	a := s.Connect(t, "alice@localhost/a")
	b := s.Connect(t, "bob@localhost/b")
	c := s.Connect(t, "carol@localhost/c")
	img := vcPNG(t, 4, 3)
	big := make([]byte, 150<<10)
	rand.New(rand.NewSource(1)).Read(big)

	if el := vcGet(a, ""); el.Get("type") != "result" || el.Child(vcard.NS, "vCard") == nil || el.Child(vcard.NS, "vCard").Children() != 0 {
		t.Fatalf("own vCard before any: %s", el)
	}
	steps := []struct {
		name string
		do   func() *xmppmap.Element
		want string // condition, or "" for a result
	}{
		{"set with photo", func() *xmppmap.Element { return vcSet(a, "<FN>Alice</FN>"+vcPhotoXML("image/png", img)) }, ""},
		{"bad base64", func() *xmppmap.Element { return vcSet(a, "<PHOTO><BINVAL>!!!</BINVAL></PHOTO>") }, "bad-request"},
		{"too large", func() *xmppmap.Element { return vcSet(a, vcPhotoXML("image/png", big)) }, "policy-violation"},
		{"set another's", func() *xmppmap.Element {
			return b.Request("<iq type='set' id='x' to='alice@localhost'><vCard xmlns='vcard-temp'><FN>Mallory</FN></vCard></iq>")
		}, "forbidden"},
		{"contact without vCard", func() *xmppmap.Element { return vcGet(b, "carol@localhost") }, "item-not-found"},
		{"no such account", func() *xmppmap.Element { return vcGet(b, "nobody@localhost") }, "service-unavailable"},
	}
	for _, tc := range steps {
		el := tc.do()
		if got := condition(el); got != tc.want || (tc.want == "" && el.Get("type") != "result") {
			t.Errorf("%s: want %q, got %s", tc.name, tc.want, el)
		}
	}
	// Failed sets changed nothing; the stored vCard is what was set.
	for _, who := range []*xmppmap.TestClient{a, b, c} {
		to := ""
		if who != a {
			to = "alice@localhost"
		}
		el := vcGet(who, to)
		if fn := el.Child(vcard.NS, "vCard").Child(vcard.NS, "FN"); fn == nil || fn.Text() != "Alice" {
			t.Fatalf("vCard: %s", el)
		}
		if typ, data, ok := vcPhotoOf(t, el); !ok || typ != "image/png" || !bytes.Equal(data, img) {
			t.Fatalf("photo: %q %d %t", typ, len(data), ok)
		}
		if who != a && el.Get("from") != "alice@localhost" {
			t.Errorf("answered from %q", el.Get("from"))
		}
	}
	if st.m["alice@localhost\x00vcard-temp"] == nil {
		t.Fatal("not stored under vcard-temp")
	}
	// The hash of the stored photo goes into presence (XEP-0153).
	vcOnline(b, "bob@localhost/b")
	a.Send("<presence/>")
	if x := vcPresenceFrom(b, "alice@localhost/a"); !strings.Contains(x.String(), "<photo>"+vcSHA1(img)+"</photo>") {
		t.Fatalf("presence: %s", x)
	}
	if fs := s.Features(false); !slices.Contains(fs, vcard.NS) {
		t.Errorf("server features %v", fs)
	}
	if fs := s.Features(true); slices.Contains(fs, vcard.NSConversion) || !slices.Contains(fs, vcard.NS) {
		t.Errorf("account features without PEP %v", fs)
	}
}

// vcRefuse is an ACCESS RULE refusing w everything of p (as a block does).
type vcRefuse struct{ p, w core.PrincipalID }

func (r vcRefuse) MayWatch(_ context.Context, p, w core.PrincipalID, _ core.Subscription) core.Reason {
	if p == r.p && w == r.w {
		return core.ReasonBlocked
	}
	return core.ReasonNone
}

func (r vcRefuse) MayAsk(context.Context, core.PrincipalID, core.PrincipalID) core.Reason {
	return core.ReasonNone
}

func TestVCardRefusedRequester(t *testing.T) {
	s, _ := vcSetup(t, nil)
	s.Engine().AddRules(vcRefuse{vcAlice, vcCarol}, nil)
	a := s.Connect(t, "alice@localhost/a")
	c := s.Connect(t, "carol@localhost/c")
	b := s.Connect(t, "bob@localhost/b")
	if el := vcSet(a, "<FN>Alice</FN>"); el.Get("type") != "result" {
		t.Fatal(el)
	}
	if el := vcGet(c, "alice@localhost"); condition(el) != "service-unavailable" {
		t.Fatalf("refused requester got %s", el)
	}
	if el := vcGet(b, "alice@localhost"); el.Get("type") != "result" {
		t.Fatalf("bob got %s", el)
	}
}

// vcOnline sends c's initial presence and waits for its echo, so that c
// is available before anything else happens.
func vcOnline(c *xmppmap.TestClient, full string) {
	c.Send("<presence/>")
	vcPresenceFrom(c, full)
}

// vcPresenceFrom returns the next available presence from full.
func vcPresenceFrom(c *xmppmap.TestClient, full string) *xmppmap.Element {
	for {
		el := c.Next()
		if el.Name.Local == "presence" && el.Get("from") == full && el.Get("type") == "" {
			return el
		}
	}
}

// TestVCardConversion covers XEP-0398 both ways.
func TestVCardConversion(t *testing.T) {
	pep := newVCPEP()
	s, st := vcSetup(t, pep)
	a := s.Connect(t, "alice@localhost/a")
	b := s.Connect(t, "bob@localhost/b")
	c := s.Connect(t, "carol@localhost/c")
	img := vcPNG(t, 5, 7)
	h := vcSHA1(img)

	// vCard to PEP (§3.2): data, then metadata; open nodes; no PHOTO kept.
	if el := vcSet(a, "<FN>Alice</FN>"+vcPhotoXML("image/jpeg", img)); el.Get("type") != "result" {
		t.Fatal(el)
	}
	want := []string{vcard.NodeData + " " + h + " open", vcard.NodeMetadata + " " + h + " open"}
	if got := pep.log(); !slices.Equal(got, want) {
		t.Fatalf("published %v, want %v", got, want)
	}
	md, _, _ := pep.Item(context.Background(), vcAlice, vcard.NodeMetadata, h)
	wantMD := "<metadata xmlns='urn:xmpp:avatar:metadata'><info bytes='" + strconv.Itoa(len(img)) + "' id='" + h + "' type='image/png' width='5' height='7'/></metadata>"
	if string(md.Payload) != wantMD {
		t.Errorf("metadata %s\nwant     %s", md.Payload, wantMD)
	}
	if stored := string(st.m["alice@localhost\x00vcard-temp"]); strings.Contains(stored, "PHOTO") || !strings.Contains(stored, "<FN>Alice</FN>") {
		t.Errorf("stored %s", stored)
	}
	// The same photo again publishes nothing.
	vcSet(a, "<FN>Alice A.</FN>"+vcPhotoXML("image/png", img))
	if n := len(pep.log()); n != 2 {
		t.Errorf("re-set published again: %v", pep.log())
	}

	// PEP to vCard (§3.1), for the owner and for a watcher; not for
	// carol, who may not see alice's presence (no Reader: presence access).
	for _, tc := range []struct {
		c     *xmppmap.TestClient
		to    string
		photo bool
	}{{a, "", true}, {b, "alice@localhost", true}, {c, "alice@localhost", false}} {
		el := vcGet(tc.c, tc.to)
		typ, data, ok := vcPhotoOf(t, el)
		if ok != tc.photo || (ok && (typ != "image/png" || !bytes.Equal(data, img))) {
			t.Errorf("get %q: photo %t %q, want %t: %s", tc.to, ok, typ, tc.photo, el)
		}
		if fn := el.Child(vcard.NS, "vCard").Child(vcard.NS, "FN"); fn == nil || fn.Text() != "Alice A." {
			t.Errorf("FN: %s", el)
		}
	}

	// A client publishes another avatar with XEP-0084.
	img2 := vcPNG(t, 2, 2)
	h2 := vcSHA1(img2)
	ctx := context.Background()
	publish := func(node, id, payload string) {
		t.Helper()
		if _, err := pep.Publish(ctx, vcAlice, node, id, []byte(payload), nil); err != nil {
			t.Fatal(err)
		}
	}
	publish(vcard.NodeData, h2, "<data xmlns='urn:xmpp:avatar:data'>"+base64.StdEncoding.EncodeToString(img2)+"</data>")
	publish(vcard.NodeMetadata, h2, "<metadata xmlns='urn:xmpp:avatar:metadata'><info id='https' url='https://example.org/a.png' type='image/png' bytes='1'/><info bytes='1' id='"+h2+"' type='image/png'/></metadata>")
	if _, data, _ := vcPhotoOf(t, vcGet(b, "alice@localhost")); !bytes.Equal(data, img2) {
		t.Errorf("after a PEP publish the photo is not the new one")
	}
	// Its hash goes into presence.
	vcOnline(b, "bob@localhost/b")
	a.Send("<presence/>")
	if x := vcPresenceFrom(b, "alice@localhost/a"); !strings.Contains(x.String(), "<x xmlns='vcard-temp:x:update'><photo>"+h2+"</photo></x>") {
		t.Errorf("presence: %s", x)
	}
	// Metadata whose id does not match the data: no photo (§3.1 SHOULD).
	publish(vcard.NodeMetadata, "bad", "<metadata xmlns='urn:xmpp:avatar:metadata'><info bytes='1' id='"+h+"' type='image/png'/></metadata>")
	publish(vcard.NodeData, h, "<data xmlns='urn:xmpp:avatar:data'>"+base64.StdEncoding.EncodeToString(img2)+"</data>")
	if _, _, ok := vcPhotoOf(t, vcGet(a, "")); ok {
		t.Errorf("photo whose hash does not match its id")
	}
	// Only an external URL: EXTVAL.
	publish(vcard.NodeMetadata, "url", "<metadata xmlns='urn:xmpp:avatar:metadata'><info bytes='1' id='"+h+"' url='https://example.org/a.png' type='image/png'/></metadata>")
	if el := vcGet(a, ""); !strings.Contains(el.String(), "<PHOTO><TYPE>image/png</TYPE><EXTVAL>https://example.org/a.png</EXTVAL></PHOTO>") {
		t.Errorf("url avatar: %s", el)
	}

	// A vCard without PHOTO disables the avatar (XEP-0084 §4.6).
	publish(vcard.NodeMetadata, h2, "<metadata xmlns='urn:xmpp:avatar:metadata'><info bytes='1' id='"+h2+"' type='image/png'/></metadata>")
	if el := vcSet(a, "<FN>Alice</FN>"); el.Get("type") != "result" {
		t.Fatal(el)
	}
	its, _ := pep.Items(ctx, vcAlice, vcard.NodeMetadata, 1)
	if len(its) != 1 || string(its[0].Payload) != "<metadata xmlns='urn:xmpp:avatar:metadata'/>" {
		t.Fatalf("metadata after a vCard without photo: %v", its)
	}
	if _, _, ok := vcPhotoOf(t, vcGet(b, "alice@localhost")); ok {
		t.Errorf("photo after the avatar was disabled")
	}
	n := len(pep.log())
	vcSet(a, "<FN>Alice</FN><PHOTO/>")
	if len(pep.log()) != n {
		t.Errorf("no avatar to disable, yet published: %v", pep.log()[n:])
	}
	// XEP-0153: "no image" is an empty photo.
	a.Send("<presence><show>away</show></presence>")
	if x := vcPresenceFrom(b, "alice@localhost/a"); !strings.Contains(x.String(), "<x xmlns='vcard-temp:x:update'><photo/></x>") {
		t.Errorf("presence without avatar: %s", x)
	}
	if fs := s.Features(true); !slices.Contains(fs, vcard.NSConversion) {
		t.Errorf("account features %v", fs)
	}
}

// TestVCardStoredPhotoWithoutAvatar: with the conversion, a PHOTO that cannot be
// converted (EXTVAL) is kept, and shown while there is no PEP avatar.
func TestVCardStoredPhotoWithoutAvatar(t *testing.T) {
	pep := newVCPEP()
	s, _ := vcSetup(t, pep)
	a := s.Connect(t, "alice@localhost/a")
	ext := "<PHOTO><TYPE>image/png</TYPE><EXTVAL>https://example.org/me.png</EXTVAL></PHOTO>"
	if el := vcSet(a, "<FN>Alice</FN>"+ext); el.Get("type") != "result" {
		t.Fatal(el)
	}
	if len(pep.log()) != 0 {
		t.Errorf("published %v", pep.log())
	}
	if el := vcGet(a, ""); !strings.Contains(el.String(), ext) {
		t.Errorf("got %s", el)
	}
}

// TestVCardOpenAvatar: a PEP service that decides access lets anyone see an
// avatar the conversion published (open, as vCards are).
func TestVCardOpenAvatar(t *testing.T) {
	pep := vcReaderPEP{newVCPEP()}
	s, _ := vcSetup(t, pep)
	a := s.Connect(t, "alice@localhost/a")
	c := s.Connect(t, "carol@localhost/c")
	img := vcPNG(t, 1, 1)
	vcSet(a, vcPhotoXML("image/png", img))
	if _, data, ok := vcPhotoOf(t, vcGet(c, "alice@localhost")); !ok || !bytes.Equal(data, img) {
		t.Errorf("carol does not see the open avatar")
	}
	// A presence-only avatar a client published is not shown to carol.
	pep.mu.Lock()
	pep.cfgs[vcKey(vcAlice, vcard.NodeData)] = core.NodeConfig{Access: core.AccessPresence}
	pep.mu.Unlock()
	if _, _, ok := vcPhotoOf(t, vcGet(c, "alice@localhost")); ok {
		t.Errorf("carol sees a presence-only avatar")
	}
	// A large photo is fine: it is not stored in the vCard.
	big := make([]byte, 150<<10)
	rand.New(rand.NewSource(2)).Read(big)
	if el := vcSet(a, vcPhotoXML("image/webp", big)); el.Get("type") != "result" {
		t.Fatalf("large photo: %s", el)
	}
	if typ, data, _ := vcPhotoOf(t, vcGet(a, "")); typ != "image/webp" || !bytes.Equal(data, big) {
		t.Errorf("large photo read back as %q, %d bytes", typ, len(data))
	}
}

// TestVCardPresenceUpdate is XEP-0398 §4 for each kind of client presence and
// avatar state, broadcast and directed.
func TestVCardPresenceUpdate(t *testing.T) {
	const h = "0123456789abcdef0123456789abcdef01234567"
	hasAvatar := "<metadata xmlns='urn:xmpp:avatar:metadata'><info bytes='9' id='" + h + "' type='image/png'/></metadata>"
	noAvatar := "<metadata xmlns='urn:xmpp:avatar:metadata'/>"
	for _, tc := range []struct {
		name, metadata, sent, want string
	}{
		{"added", hasAvatar, "", "<x xmlns='vcard-temp:x:update'><photo>" + h + "</photo></x>"},
		{"not ready completed", hasAvatar, "<x xmlns='vcard-temp:x:update'/>", "<x xmlns='vcard-temp:x:update'><photo>" + h + "</photo></x>"},
		// A client that read its vCard before another client set the
		// avatar through PEP must not tell contacts there is none.
		{"stale empty photo replaced", hasAvatar, "<x xmlns='vcard-temp:x:update'><photo/></x>", "<x xmlns='vcard-temp:x:update'><photo>" + h + "</photo></x>"},
		{"other hash replaced", hasAvatar, "<x xmlns='vcard-temp:x:update'><photo>deadbeef</photo></x>", "<x xmlns='vcard-temp:x:update'><photo>" + h + "</photo></x>"},
		{"disabled", noAvatar, "", "<x xmlns='vcard-temp:x:update'><photo/></x>"},
		{"disabled, client's stale hash emptied", noAvatar, "<x xmlns='vcard-temp:x:update'><photo>deadbeef</photo></x>", "<x xmlns='vcard-temp:x:update'><photo/></x>"},
		{"never had one", "", "", ""},
		{"never had one, not ready", "", "<x xmlns='vcard-temp:x:update'/>", "<x xmlns='vcard-temp:x:update'><photo/></x>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pep := newVCPEP()
			if tc.metadata != "" {
				// Before the server starts: read from PEP on first need.
				if _, err := pep.Publish(context.Background(), vcAlice, vcard.NodeMetadata, "m", []byte(tc.metadata), nil); err != nil {
					t.Fatal(err)
				}
			}
			s, _ := vcSetup(t, pep)
			a := s.Connect(t, "alice@localhost/a")
			b := s.Connect(t, "bob@localhost/b")
			c := s.Connect(t, "carol@localhost/c")
			vcOnline(b, "bob@localhost/b")
			a.Send("<presence><status>hi</status>" + tc.sent + "</presence>")
			check := func(how string, el *xmppmap.Element) {
				t.Helper()
				x := el.Child(vcard.NSUpdate, "x")
				got := ""
				if x != nil {
					got = x.String()
				}
				if got != tc.want {
					t.Errorf("%s: got %q, want %q in %s", how, got, tc.want, el)
				}
				if el.Child("", "status") == nil {
					t.Errorf("%s: status lost: %s", how, el)
				}
			}
			check("broadcast", vcPresenceFrom(b, "alice@localhost/a"))
			a.Send("<presence to='carol@localhost/c'><status>hi</status>" + tc.sent + "</presence>")
			check("directed", vcPresenceFrom(c, "alice@localhost/a"))
		})
	}
}

// TestVCardAvatarChanges: the hash in presence follows PEP publications and
// purges, and a vCard set.
func TestVCardAvatarChanges(t *testing.T) {
	pep := newVCPEP()
	s, _ := vcSetup(t, pep)
	a := s.Connect(t, "alice@localhost/a")
	b := s.Connect(t, "bob@localhost/b")
	vcOnline(b, "bob@localhost/b")
	photoIn := func() string {
		t.Helper()
		a.Send("<presence/>")
		el := vcPresenceFrom(b, "alice@localhost/a")
		if x := el.Child(vcard.NSUpdate, "x"); x != nil {
			if p := x.Child(vcard.NSUpdate, "photo"); p != nil {
				return "photo:" + p.Text()
			}
			return "x"
		}
		return "none"
	}
	if got := photoIn(); got != "none" {
		t.Fatalf("before any avatar: %s", got)
	}
	img := vcPNG(t, 3, 3)
	vcSet(a, vcPhotoXML("image/png", img))
	if got := photoIn(); got != "photo:"+vcSHA1(img) {
		t.Fatalf("after a vCard set: %s", got)
	}
	const h = "89abcdef0123456789abcdef0123456789abcdef"
	if _, err := pep.Publish(context.Background(), vcAlice, vcard.NodeMetadata, h,
		[]byte("<metadata xmlns='urn:xmpp:avatar:metadata'><info bytes='9' id='"+strings.ToUpper(h)+"' type='image/png'/></metadata>"), nil); err != nil {
		t.Fatal(err)
	}
	if got := photoIn(); got != "photo:"+h {
		t.Fatalf("after a PEP publish: %s", got)
	}
	pep.purge(vcAlice, vcard.NodeMetadata)
	if got := photoIn(); got != "none" {
		t.Fatalf("after a purge: %s", got)
	}
}
