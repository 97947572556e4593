package xmppmap_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imppd/imppd/core"
	"github.com/imppd/imppd/xmppmap"
	"github.com/imppd/imppd/xmppmap/xeps"
)

// memBlocklists is an in-memory blocking.Store.
type memBlocklists struct {
	mu sync.Mutex
	m  map[core.PrincipalID][]string
}

func (b *memBlocklists) Blocklist(_ context.Context, o core.PrincipalID) ([]string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.m[o]), nil
}

func (b *memBlocklists) Block(_ context.Context, o core.PrincipalID, js []string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, j := range js {
		if !slices.Contains(b.m[o], j) {
			b.m[o] = append(b.m[o], j)
		}
	}
	return nil
}

func (b *memBlocklists) Unblock(_ context.Context, o core.PrincipalID, js []string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.m[o] = slices.DeleteFunc(b.m[o], func(j string) bool { return len(js) == 0 || slices.Contains(js, j) })
	return nil
}

func TestBlocking(t *testing.T) {
	s := xmppmap.NewTestServer(t, "alice@localhost", "bob@localhost")
	s.Use(xeps.Modules(xeps.Options{Version: "t", Started: time.Now(), Blocklists: &memBlocklists{m: map[core.PrincipalID][]string{}}})...)
	ctx := context.Background()
	// Mutual subscription, so presence flows both ways until the block.
	for _, p := range [][2]core.PrincipalID{{"alice@localhost", "bob@localhost"}, {"bob@localhost", "alice@localhost"}} {
		if _, err := s.Rosters().Subscribe(ctx, p[0], p[1], nil); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Rosters().Approve(ctx, p[1], p[0]); err != nil {
			t.Fatal(err)
		}
	}
	a1 := s.Connect(t, "alice@localhost/one")
	a2 := s.Connect(t, "alice@localhost/two")
	b := s.Connect(t, "bob@localhost/b")
	b.Send(`<presence/>`)
	a1.Send(`<presence/>`)
	a2.Send(`<presence/>`)
	// until reads c's stanzas until one contains want.
	until := func(c *xmppmap.TestClient, want string) string {
		t.Helper()
		for {
			if x := c.Next().String(); strings.Contains(x, want) {
				return x
			}
		}
	}
	until(b, "from='alice@localhost/two'")
	a2.Request(`<iq type='get' id='bl'><blocklist xmlns='urn:xmpp:blocking'/></iq>`)

	if el := a1.Request(`<iq type='set' id='blk'><block xmlns='urn:xmpp:blocking'><item jid='bob@localhost'/></block></iq>`); el.Get("type") != "result" {
		t.Fatalf("block: %s", el)
	}
	// The other resource that asked for the blocklist gets a push.
	until(a2, "<block xmlns='urn:xmpp:blocking'><item jid='bob@localhost'/></block>")
	// Bob sees alice's resources go unavailable.
	until(b, "type='unavailable'")

	// Bob's message is refused as if alice were not there.
	b.Send(`<message to='alice@localhost' type='chat' id='m1'><body>hi</body></message>`)
	if x := until(b, "id='m1'"); !strings.Contains(x, "service-unavailable") {
		t.Fatalf("blocked sender got %s", x)
	}
	// Alice writing to bob is refused with XEP-0191's <blocked/>.
	a1.Send(`<message to='bob@localhost' type='chat' id='m2'><body>hi</body></message>`)
	if x := until(a1, "id='m2'"); !strings.Contains(x, "not-acceptable") || !strings.Contains(x, "<blocked xmlns='urn:xmpp:blocking:errors'/>") {
		t.Fatalf("blocking sender got %s", x)
	}
	// IQs from bob to alice's resources are refused too.
	if el := b.Request(`<iq type='get' id='q1' to='alice@localhost/one'><ping xmlns='urn:xmpp:ping'/></iq>`); !strings.Contains(el.String(), "service-unavailable") {
		t.Fatalf("blocked IQ: %s", el)
	}
	if el := a1.Request(`<iq type='get' id='l'><blocklist xmlns='urn:xmpp:blocking'/></iq>`); !strings.Contains(el.String(), "jid='bob@localhost'") {
		t.Fatalf("blocklist: %s", el)
	}
	// Unblock everything: presence resumes and messages flow.
	if el := a1.Request(`<iq type='set' id='ub'><unblock xmlns='urn:xmpp:blocking'/></iq>`); el.Get("type") != "result" {
		t.Fatalf("unblock: %s", el)
	}
	until(b, "from='alice@localhost/one'")
	b.Send(`<message to='alice@localhost/one' type='chat' id='m3'><body>again</body></message>`)
	until(a1, "again")
	if el := a1.Request(`<iq type='set' id='e'><block xmlns='urn:xmpp:blocking'/></iq>`); !strings.Contains(el.String(), "bad-request") {
		t.Fatalf("empty block: %s", el)
	}
}
