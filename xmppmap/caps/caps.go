// Package caps implements XEP-0115: Entity Capabilities, for the server:
// its <c/> in the stream features after authentication, with the
// verification string of its disco#info, and disco#info answered at the
// node#ver node it names.
package caps

import (
	"crypto/sha1" // #nosec: XEP-0115's mandatory hash; not a security use
	"encoding/base64"
	"sort"
	"strings"

	"github.com/imppd/imppd/xmppmap"
	"github.com/imppd/imppd/xmppmap/disco"
)

const (
	NS   = "http://jabber.org/protocol/caps"
	Node = "https://imppd.invalid/caps"
)

// Module advertises the server's capabilities. Register it after every
// module whose features it must cover.
type Module struct{ disco *disco.Module }

func New(d *disco.Module) *Module { return &Module{disco: d} }

func (m *Module) XEP() xmppmap.XEP {
	return xmppmap.XEP{Number: 115, Title: "Entity Capabilities", Version: "1.6.0",
		Status: "partial: the server's own capabilities; clients' capabilities are not cached yet"}
}

func (m *Module) Register(s *xmppmap.Server) {
	info := disco.ServerInfo(s)
	ver := Ver(info)
	s.StreamFeature("<c xmlns='" + NS + "' hash='sha-1' node='" + Node + "' ver='" + ver + "'/>")
	m.disco.Node(Node+"#"+ver, func(*xmppmap.IQ) *disco.NodeInfo { return disco.ServerInfo(s) })
}

// Ver is the XEP-0115 §5.1 verification string of info (SHA-1).
func Ver(info *disco.NodeInfo) string {
	ids := make([]string, 0, len(info.Identities))
	for _, id := range info.Identities {
		ids = append(ids, id.Category+"/"+id.Type+"//"+id.Name) // no xml:lang
	}
	sort.Strings(ids)
	feats := append([]string(nil), info.Features...)
	sort.Strings(feats)
	var b strings.Builder
	for _, id := range ids {
		b.WriteString(id + "<")
	}
	for _, f := range feats {
		b.WriteString(f + "<")
	}
	sum := sha1.Sum([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(sum[:])
}
