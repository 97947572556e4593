package e2e

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// Issue: XEP-0163 PEP as OMEMO clients use it. The scenario is
// e2e/clients/slixmpp/xeps/pep_omemo.py (slixmpp's xep_0060, xep_0163 and
// xep_0115, publishing as nbxmpp does): alice publishes a device list and
// bundles with publish-options access_model=open; bob, her contact with
// "+notify", gets the device list, live and as the last published item on a
// new resource's presence; carol, a stranger, fetches the bundle but not a
// presence-access node; a mismatched precondition is refused with
// precondition-not-met. Its publish phase runs, then the server restarts
// and its after-restart phase checks that items and configurations
// persisted.
//
// Around the script, two Go sessions that advertise the same "+notify"
// interest through XEP-0115 caps (answering the server's disco#info
// themselves): one of bob's (it must get the device list: the control) and
// one of carol's (she must get no notification at all).
//
//	go test -run 'PEP' -v ./e2e/

const (
	nsAxolotl    = "eu.siacs.conversations.axolotl"
	nodeDevices  = nsAxolotl + ".devicelist"
	nsPubsubEvt  = "http://jabber.org/protocol/pubsub#event"
	nsDiscoInfo  = "http://jabber.org/protocol/disco#info"
	nsCaps       = "http://jabber.org/protocol/caps"
	pepCapsNode  = "https://imppd.invalid/e2e-pep"
	pepCapsIdent = "imppd e2e pep"
)

var (
	pepAlice = User{JID: "pep-alice@localhost", Password: "pep alice ünï"}
	pepBob   = User{JID: "pep-bob@localhost", Password: "pep bob ünï"}
	pepCarol = User{JID: "pep-carol@localhost", Password: "pep carol ünï"}
	// pepUsers are the script's roles.
	pepUsers = map[string]User{"alice": pepAlice, "bob": pepBob, "carol": pepCarol}
)

// pepFeatures are what the Go sessions advertise: they want device list
// notifications.
var pepFeatures = []string{nsCaps, nsDiscoInfo, nodeDevices + "+notify"}

func TestPEPSlixmpp(t *testing.T) {
	t.Parallel()
	requireSlixmpp(t)
	s := Start(t, Options{Users: []User{pepAlice, pepBob, pepCarol}})

	goBob := pepNotifyClient(t, s, pepBob, "go-control")
	goCarol := pepNotifyClient(t, s, pepCarol, "go-stranger")

	res := runXEPScript(t, xepScriptConfig(t, s, pepUsers, nil), "pep_omemo.py", "--phase", "publish")
	res.assert(t)
	if len(res.Errors) > 0 {
		t.FailNow()
	}
	state, _ := res.Data["state"].(map[string]any)
	devicelist, _ := state["devicelist"].(string)
	if devicelist == "" {
		t.Fatalf("the report has no state.devicelist: %s", jsonText(res.Data))
	}
	want := deviceIDs(devicelist)

	// The control: bob's Go session, with the same "+notify" in its caps,
	// got the device list, once (the refused publish notified nobody).
	got := pepBarrier(t, goBob)
	var lists [][]string
	for _, e := range got {
		if items := pepEventItems(e, pepAlice.JID); items != nil && items.Get("node") == nodeDevices {
			var ids []string
			for _, it := range items.Children {
				ids = append(ids, deviceIDs(it.String())...)
			}
			lists = append(lists, ids)
		}
	}
	if len(lists) != 1 || !slices.Equal(lists[0], want) {
		t.Errorf("bob's Go session (+notify) got device lists %q, want exactly one with %q", lists, want)
	}

	// Nothing reached carol's Go session: everything the server queued for
	// it before its ping came before the answer, and every notification of
	// alice's publishes was queued before the server handled her next
	// request (the script made one after each).
	for _, e := range pepBarrier(t, goCarol) {
		if e.Child(nsPubsubEvt, "event") != nil {
			t.Errorf("carol (no subscription) got a PEP notification: %s", e)
		}
	}
	goBob.Close()
	goCarol.Close()

	s.Restart(t)
	res = runXEPScript(t, xepScriptConfig(t, s, pepUsers, map[string]any{"state": state}), "pep_omemo.py", "--phase", "after-restart")
	res.assert(t)
}

// pepNotifyClient logs u in with resource and an available presence whose
// XEP-0115 <c/> advertises pepFeatures, and returns once the server has
// the features (see pepBarrier).
func pepNotifyClient(t *testing.T, s *Server, u User, resource string) *Client {
	t.Helper()
	c := s.LoginWith(t, ClientOptions{JID: u.JID + "/" + resource, Password: u.Password})
	ver := capsVer("client", "bot", pepCapsIdent, pepFeatures...)
	c.Sendf("<presence><c xmlns='%s' hash='sha-1' node='%s' ver='%s'/></presence>", nsCaps, pepCapsNode, ver)
	pepBarrier(t, c)
	return c
}

// pepBarrier pings the server and returns everything that arrived before
// the answer, answering the server's disco#info queries for the caps
// node#ver on the way; after an answer it pings again, so that the server
// has taken it when pepBarrier returns.
func pepBarrier(t *testing.T, c *Client) []*Element {
	t.Helper()
	var got []*Element
	for {
		id := c.NewID("ping")
		c.Sendf("<iq type='get' id='%s' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>", id, c.JID.Domainpart())
		answered := false
		for {
			e := c.MustNext(IOTimeout)
			if e.Is(NSClient, "iq") && e.Get("id") == id && (e.Get("type") == "result" || e.Get("type") == "error") {
				break
			}
			if q := e.Child(nsDiscoInfo, "query"); e.Is(NSClient, "iq") && e.Get("type") == "get" && q != nil {
				node := q.Get("node")
				if !strings.HasPrefix(node, pepCapsNode+"#") {
					t.Errorf("%s: disco#info query for node %q, want %s#<ver>: %s", c.JID, node, pepCapsNode, e)
				}
				var b strings.Builder
				fmt.Fprintf(&b, "<iq type='result' id='%s' to='%s'><query xmlns='%s' node='%s'><identity category='client' type='bot' name='%s'/>",
					Esc(e.Get("id")), Esc(e.Get("from")), nsDiscoInfo, Esc(node), pepCapsIdent)
				for _, f := range pepFeatures {
					fmt.Fprintf(&b, "<feature var='%s'/>", Esc(f))
				}
				b.WriteString("</query></iq>")
				c.MustSend(b.String())
				answered = true
				continue
			}
			got = append(got, e)
		}
		if !answered {
			return got
		}
	}
}

// pepEventItems returns the <items/> of a PEP notification from owner, or
// nil.
func pepEventItems(e *Element, owner string) *Element {
	if !e.Is(NSClient, "message") || !strings.EqualFold(e.Get("from"), owner) {
		return nil
	}
	return e.Child(nsPubsubEvt, "event").Child(nsPubsubEvt, "items")
}

var deviceRE = regexp.MustCompile(`<device [^>]*id=['"]([0-9]+)['"]`)

// deviceIDs lists the device ids of an OMEMO device list in XML text.
func deviceIDs(xml string) []string {
	var out []string
	for _, m := range deviceRE.FindAllStringSubmatch(xml, -1) {
		out = append(out, m[1])
	}
	return out
}
