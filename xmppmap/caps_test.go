package xmppmap_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/imppd/imppd/xmppmap"
	"github.com/imppd/imppd/xmppmap/caps"
	"github.com/imppd/imppd/xmppmap/disco"
	"github.com/imppd/imppd/xmppmap/ping"
)

// The clients of XEP-0115 §5.2 and §5.3.
const (
	exodusVer  = "QgayPKawpkPSDYmwT/WM94uAlu0="
	exodusNode = "http://code.google.com/p/exodus"
	exodusInfo = `<identity category='client' name='Exodus 0.9.1' type='pc'/>
		<feature var='http://jabber.org/protocol/disco#info'/>
		<feature var='http://jabber.org/protocol/muc'/>
		<feature var='http://jabber.org/protocol/caps'/>
		<feature var='http://jabber.org/protocol/disco#items'/>`
	psiVer  = "q07IKJEyjvHSyhy//CH0CxmKi8w="
	psiNode = "http://psi-im.org"
	psiInfo = `<identity xml:lang='en' category='client' name='Psi 0.11' type='pc'/>
		<identity xml:lang='el' category='client' name='&#936; 0.11' type='pc'/>
		<feature var='http://jabber.org/protocol/caps'/>
		<feature var='http://jabber.org/protocol/disco#info'/>
		<feature var='http://jabber.org/protocol/disco#items'/>
		<feature var='http://jabber.org/protocol/muc'/>
		<x xmlns='jabber:x:data' type='result'>
		  <field var='FORM_TYPE' type='hidden'><value>urn:xmpp:dataforms:softwareinfo</value></field>
		  <field var='ip_version'><value>ipv4</value><value>ipv6</value></field>
		  <field var='os'><value>Mac</value></field>
		  <field var='os_version'><value>10.5.1</value></field>
		  <field var='software'><value>Psi</value></field>
		  <field var='software_version'><value>0.11</value></field>
		</x>`
)

var (
	exodusFeatures = []string{"http://jabber.org/protocol/caps", "http://jabber.org/protocol/disco#info",
		"http://jabber.org/protocol/disco#items", "http://jabber.org/protocol/muc"}
)

type capsChange struct {
	full     string
	features []string
}

func capsServer(t *testing.T) (*xmppmap.TestServer, *caps.Module, chan capsChange, chan string) {
	s := xmppmap.NewTestServer(t, "alice@localhost", "bob@localhost")
	d := disco.New()
	c := caps.New(d)
	s.Use(ping.Module{}, d, c)
	changes := make(chan capsChange, 32)
	c.OnChange(func(ss xmppmap.Session, fs []string) { changes <- capsChange{ss.JID().String(), fs} })
	ended := make(chan string, 8)
	s.OnSessionEnd(func(ss xmppmap.Session) { ended <- ss.JID().String() })
	return s, c, changes, ended
}

func capsPresence(hash, node, ver string) string {
	h := ""
	if hash != "" {
		h = " hash='" + hash + "'"
	}
	return "<presence><c xmlns='" + caps.NS + "'" + h + " node='" + node + "' ver='" + ver + "'/></presence>"
}

// expectCapsQuery reads the server's disco#info request for node#ver.
func expectCapsQuery(t *testing.T, c *xmppmap.TestClient, full, node, ver string) *xmppmap.Element {
	t.Helper()
	req := nextIQGet(t, c)
	q := req.Child(disco.NSInfo, "query")
	if req.Get("type") != "get" || req.Get("from") != "localhost" || req.Get("to") != full || q == nil || q.Get("node") != node+"#"+ver {
		t.Fatalf("expected disco#info for %s#%s, got %s", node, ver, req)
	}
	return req
}

func answerInfo(c *xmppmap.TestClient, req *xmppmap.Element, node, info string) {
	c.Send("<iq type='result' id='" + req.Get("id") + "' to='localhost'><query xmlns='" + disco.NSInfo + "' node='" + node + "'>" + info + "</query></iq>")
}

// noQuery checks that the server sent the client no IQ request before the
// answer to a ping sent now.
func noQuery(t *testing.T, c *xmppmap.TestClient) {
	t.Helper()
	for _, el := range roundTrip(t, c, "noquery") {
		if el.Name.Local == "iq" {
			t.Fatalf("unexpected %s", el)
		}
	}
}

func noChange(t *testing.T, changes chan capsChange) {
	t.Helper()
	select {
	case ch := <-changes:
		t.Fatalf("unexpected change %+v", ch)
	default:
	}
}

func expectChange(t *testing.T, changes chan capsChange, full string, want []string) {
	t.Helper()
	ch := await(t, changes, "features of "+full)
	if ch.full != full || !slices.Equal(ch.features, want) {
		t.Fatalf("change %+v, want %s %v", ch, full, want)
	}
}

func TestCapsQueryVerifyCache(t *testing.T) {
	s, c, changes, ended := capsServer(t)
	a, _ := connectServing(t, s, "alice@localhost/a")
	a.Send(capsPresence("sha-1", exodusNode, exodusVer))
	req := expectCapsQuery(t, a, "alice@localhost/a", exodusNode, exodusVer)
	if c.Features("alice@localhost/a") != nil || c.Has("alice@localhost/a", "http://jabber.org/protocol/muc") {
		t.Fatal("features known before the answer")
	}
	answerInfo(a, req, exodusNode+"#"+exodusVer, exodusInfo)
	expectChange(t, changes, "alice@localhost/a", exodusFeatures)
	if got := c.Features("alice@localhost/a"); !slices.Equal(got, exodusFeatures) {
		t.Fatalf("features %v", got)
	}
	for f, want := range map[string]bool{"http://jabber.org/protocol/muc": true, "http://jabber.org/protocol/caps": true, "urn:xmpp:avatar:metadata+notify": false} {
		if c.Has("alice@localhost/a", f) != want {
			t.Errorf("Has(%s) = %t", f, !want)
		}
	}

	// Another session with the same ver (another node, even) is known at
	// once, without a query.
	b, _ := connectServing(t, s, "bob@localhost/b")
	b.Send(capsPresence("sha-1", "https://other.example/client", exodusVer))
	expectChange(t, changes, "bob@localhost/b", exodusFeatures)
	noQuery(t, b)

	// The same caps again, or a presence without <c/>, change nothing.
	a.Send(capsPresence("sha-1", exodusNode, exodusVer))
	a.Send("<presence><show>away</show></presence>")
	noQuery(t, a)
	noChange(t, changes)
	if got := c.Features("alice@localhost/a"); !slices.Equal(got, exodusFeatures) {
		t.Fatalf("features after presence without caps: %v", got)
	}

	// A new ver: asked, verified (identities with xml:lang, an extended
	// form); the old features stay until the answer.
	a.Send(capsPresence("sha-1", psiNode, psiVer))
	req = expectCapsQuery(t, a, "alice@localhost/a", psiNode, psiVer)
	if got := c.Features("alice@localhost/a"); !slices.Equal(got, exodusFeatures) {
		t.Fatalf("features while asking: %v", got)
	}
	answerInfo(a, req, psiNode+"#"+psiVer, psiInfo)
	roundTrip(t, a, "rt")
	// The same features: no change to announce.
	noChange(t, changes)
	b.Send(capsPresence("sha-1", psiNode, psiVer))
	noQuery(t, b) // Psi's ver is cached now
	noChange(t, changes)

	// Other features under a new ver: a change to announce.
	notify := append(slices.Clone(exodusFeatures), "urn:xmpp:avatar:metadata+notify")
	testVer := caps.Ver(&disco.NodeInfo{Identities: []disco.Identity{{Category: "client", Type: "pc", Name: "test"}}, Features: notify})
	a.Send(capsPresence("sha-1", "urn:test", testVer))
	req = expectCapsQuery(t, a, "alice@localhost/a", "urn:test", testVer)
	var info strings.Builder
	info.WriteString("<identity category='client' type='pc' name='test'/>")
	for _, f := range notify {
		info.WriteString("<feature var='" + f + "'/>")
	}
	answerInfo(a, req, "urn:test#"+testVer, info.String())
	slices.Sort(notify)
	expectChange(t, changes, "alice@localhost/a", notify)
	if !c.Has("alice@localhost/a", "urn:xmpp:avatar:metadata+notify") {
		t.Error("new feature not known")
	}

	// The session's state goes with it.
	a.Close()
	if full := await(t, ended, "the end of a"); full != "alice@localhost/a" {
		t.Fatalf("ended %s", full)
	}
	if c.Features("alice@localhost/a") != nil {
		t.Error("features kept after the session ended")
	}
	if !c.Has("bob@localhost/b", "http://jabber.org/protocol/muc") {
		t.Error("the other session lost its features")
	}
}

func TestCapsNotCachedGlobally(t *testing.T) {
	wrongInfo := strings.Replace(exodusInfo, "<feature var='http://jabber.org/protocol/muc'/>", "<feature var='urn:xmpp:evil'/>", 1)
	evilFeatures := []string{"http://jabber.org/protocol/caps", "http://jabber.org/protocol/disco#info",
		"http://jabber.org/protocol/disco#items", "urn:xmpp:evil"}
	dupInfo := exodusInfo + "<feature var='http://jabber.org/protocol/muc'/>"
	for _, tc := range []struct {
		name, hash, ver, info string
		error                 bool
		want                  []string // for the session that answered
	}{
		{"answer does not match the ver", "sha-1", exodusVer, wrongInfo, false, evilFeatures},
		{"ver of other content", "sha-1", psiVer, exodusInfo, false, exodusFeatures},
		{"duplicate feature", "sha-1", exodusVer, dupInfo, false, exodusFeatures},
		{"unsupported hash", "x-unknown", exodusVer, exodusInfo, false, exodusFeatures},
		{"legacy format", "", "0.9.1", exodusInfo, false, exodusFeatures},
		{"error answer", "sha-1", exodusVer, "", true, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, c, changes, _ := capsServer(t)
			a, _ := connectServing(t, s, "alice@localhost/a")
			a.Send(capsPresence(tc.hash, exodusNode, tc.ver))
			req := expectCapsQuery(t, a, "alice@localhost/a", exodusNode, tc.ver)
			if tc.error {
				a.Send("<iq type='error' id='" + req.Get("id") + "' to='localhost'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")
				roundTrip(t, a, "rt")
				noChange(t, changes)
			} else {
				answerInfo(a, req, exodusNode+"#"+tc.ver, tc.info)
				expectChange(t, changes, "alice@localhost/a", tc.want)
			}
			if got := c.Features("alice@localhost/a"); !slices.Equal(got, tc.want) {
				t.Fatalf("features %v, want %v", got, tc.want)
			}
			// The next session with the same caps is asked itself.
			b, _ := connectServing(t, s, "bob@localhost/b")
			b.Send(capsPresence(tc.hash, exodusNode, tc.ver))
			req = expectCapsQuery(t, b, "bob@localhost/b", exodusNode, tc.ver)
			if c.Features("bob@localhost/b") != nil {
				t.Fatal("bob's features known before he answered")
			}
			answerInfo(b, req, exodusNode+"#"+tc.ver, exodusInfo)
			expectChange(t, changes, "bob@localhost/b", exodusFeatures)
		})
	}
}

func TestCapsSharedQuery(t *testing.T) {
	for _, tc := range []struct {
		name      string
		firstInfo string // what the first client answers; "" closes it instead
		verified  bool
	}{
		{"first answers right", exodusInfo, true},
		{"first answers wrong", strings.Replace(exodusInfo, "muc", "evil", 1), false},
		{"first ends", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, c, changes, _ := capsServer(t)
			a, _ := connectServing(t, s, "alice@localhost/a")
			b, _ := connectServing(t, s, "bob@localhost/b")
			e, _ := connectServing(t, s, "eve@localhost/e")
			a.Send(capsPresence("sha-1", exodusNode, exodusVer))
			req := expectCapsQuery(t, a, "alice@localhost/a", exodusNode, exodusVer)
			// Bob and Eve advertise the same ver while Alice is being
			// asked: they wait for her answer rather than being asked too.
			b.Send(capsPresence("sha-1", exodusNode, exodusVer))
			e.Send(capsPresence("sha-1", exodusNode, exodusVer))
			noQuery(t, b)
			noQuery(t, e)
			if tc.firstInfo == "" {
				a.Close()
			} else {
				answerInfo(a, req, exodusNode+"#"+exodusVer, tc.firstInfo)
			}
			if tc.verified {
				got := map[string][]string{}
				for range 2 {
					ch := await(t, changes, "features")
					got[ch.full] = ch.features
				}
				if !slices.Equal(got["alice@localhost/a"], exodusFeatures) || !slices.Equal(got["bob@localhost/b"], exodusFeatures) {
					t.Fatalf("changes %v", got)
				}
				noQuery(t, b)
				return
			}
			if tc.firstInfo != "" {
				await(t, changes, "alice's own features")
			}
			// Alice's answer is no use for the others: each is asked at
			// once, Eve without waiting for Bob to answer.
			expectCapsQuery(t, e, "eve@localhost/e", exodusNode, exodusVer)
			req = expectCapsQuery(t, b, "bob@localhost/b", exodusNode, exodusVer)
			answerInfo(b, req, exodusNode+"#"+exodusVer, exodusInfo)
			expectChange(t, changes, "bob@localhost/b", exodusFeatures)
			if !c.Has("bob@localhost/b", "http://jabber.org/protocol/muc") {
				t.Error("bob's features not known")
			}
		})
	}
}
