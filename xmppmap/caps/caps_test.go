package caps

import (
	"testing"

	"github.com/imppd/imppd/xmppmap/disco"
)

// The worked example of XEP-0115 §5.2.
func TestVerExample(t *testing.T) {
	info := &disco.NodeInfo{
		Identities: []disco.Identity{{Category: "client", Type: "pc", Name: "Exodus 0.9.1"}},
		Features:   []string{"http://jabber.org/protocol/disco#info", "http://jabber.org/protocol/disco#items", "http://jabber.org/protocol/muc", "http://jabber.org/protocol/caps"},
	}
	if got := Ver(info); got != "QgayPKawpkPSDYmwT/WM94uAlu0=" {
		t.Fatalf("ver = %s", got)
	}
}
