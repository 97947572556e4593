// Package disco implements XEP-0030: Service Discovery.
//
// The server's features and each account's features are generated from the
// registry of compiled-in XEPs (xmppmap.Server.Features), so what is
// advertised is exactly what is registered. Other modules add items and
// node information (ad-hoc commands use both).
package disco

import (
	"context"
	"sort"

	"mellium.im/xmpp/stanza"

	"github.com/imppd/imppd/core"
	"github.com/imppd/imppd/xmppmap"
)

const (
	NSInfo  = "http://jabber.org/protocol/disco#info"
	NSItems = "http://jabber.org/protocol/disco#items"
)

// Item is one disco#items entry.
type Item struct {
	JID, Node, Name string
}

// Identity is one disco#info identity.
type Identity struct {
	Category, Type, Name string
}

// NodeInfo describes a node of the server: its identities and features.
type NodeInfo struct {
	Identities []Identity
	Features   []string
}

// AccountNodes describes the nodes of an account (its PEP nodes), as the
// requester may see them.
type AccountNodes interface {
	// AccountItems lists the items at node ("" for the account itself);
	// ok is false when there is no such node for the requester.
	AccountItems(q *xmppmap.IQ, owner core.PrincipalID, node string) (items []Item, ok bool)
	// AccountNodeInfo describes node; nil when there is none for the
	// requester.
	AccountNodeInfo(q *xmppmap.IQ, owner core.PrincipalID, node string) *NodeInfo
}

// Module answers disco#info and disco#items.
type Module struct {
	items map[string]func(q *xmppmap.IQ) []Item    // by node, on the server
	nodes map[string]func(q *xmppmap.IQ) *NodeInfo // by node, on the server; nil: no such node

	accountIDs   []Identity
	accountNodes AccountNodes
}

// AccountIdentity adds an identity of every account's bare JID (XEP-0163
// §4: pubsub/pep).
func (m *Module) AccountIdentity(id Identity) { m.accountIDs = append(m.accountIDs, id) }

// SetAccountNodes sets the provider of accounts' nodes and items.
func (m *Module) SetAccountNodes(n AccountNodes) { m.accountNodes = n }

// New returns the module; register item and node providers before Use.
func New() *Module {
	return &Module{items: map[string]func(*xmppmap.IQ) []Item{}, nodes: map[string]func(*xmppmap.IQ) *NodeInfo{}}
}

// Items adds a provider of the server's items at node ("" for the root).
func (m *Module) Items(node string, f func(q *xmppmap.IQ) []Item) { m.items[node] = f }

// Node adds a provider of info about a node of the server.
func (m *Module) Node(node string, f func(q *xmppmap.IQ) *NodeInfo) { m.nodes[node] = f }

func (m *Module) XEP() xmppmap.XEP {
	return xmppmap.XEP{Number: 30, Title: "Service Discovery", Version: "2.5rc3", Status: "complete",
		Features: []string{NSInfo, NSItems}, AccountFeatures: []string{NSInfo, NSItems}}
}

func (m *Module) Register(s *xmppmap.Server) {
	s.HandleIQ(xmppmap.ToServer, NSInfo, "query", func(q *xmppmap.IQ) { m.serverInfo(s, q) })
	s.HandleIQ(xmppmap.ToServer, NSItems, "query", m.serverItems)
	s.HandleIQ(xmppmap.ToAccount, NSInfo, "query", func(q *xmppmap.IQ) { m.accountInfo(s, q, q.Account()) })
	s.HandleIQ(xmppmap.ToAccount, NSItems, "query", func(q *xmppmap.IQ) { m.accountItems(q, q.Account()) })
	s.HandleIQ(xmppmap.ToContact, NSInfo, "query", func(q *xmppmap.IQ) {
		if contact, ok := m.visible(s, q); ok {
			m.accountInfo(s, q, contact)
		}
	})
	s.HandleIQ(xmppmap.ToContact, NSItems, "query", func(q *xmppmap.IQ) {
		if contact, ok := m.visible(s, q); ok {
			m.accountItems(q, contact)
		}
	})
}

var (
	errNotFound    = stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound}
	errUnavailable = stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable}
	errBadRequest  = stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest}
)

func getOnly(q *xmppmap.IQ) bool {
	if q.Stanza.Get("type") != "get" {
		q.Error(errBadRequest)
		return false
	}
	return true
}

// ServerInfo is what disco#info on the server answers.
func ServerInfo(s *xmppmap.Server) *NodeInfo {
	return &NodeInfo{Identities: []Identity{{Category: "server", Type: "im", Name: "imppd"}}, Features: s.Features(false)}
}

func (m *Module) serverInfo(s *xmppmap.Server, q *xmppmap.IQ) {
	if !getOnly(q) {
		return
	}
	node := q.Payload.Get("node")
	info := ServerInfo(s)
	if node != "" {
		f := m.nodes[node]
		if info = nil; f != nil {
			info = f(q)
		}
		if info == nil {
			q.Error(errNotFound)
			return
		}
	}
	q.Result(infoXML(node, info))
}

// visible checks that the requester may learn about the contact: it exists
// and the ACCESS RULES let the requester see its presence (XEP-0030 §4.2
// and RFC 6120 §10.5.3: otherwise the server answers as if it were not
// there). A query about one of its nodes is left to the node's own access
// model (an open PEP node is readable by anyone not blocked).
func (m *Module) visible(s *xmppmap.Server, q *xmppmap.IQ) (core.PrincipalID, bool) {
	contact := core.PrincipalID(q.To.Bare().String())
	ctx := context.Background()
	var ok bool
	var err error
	if q.Payload.Get("node") != "" && m.accountNodes != nil {
		ok = !s.Engine().Refuses(ctx, contact, q.Account())
	} else {
		ok, err = s.Engine().MayWatch(ctx, contact, q.Account())
	}
	if err == nil && ok {
		ok, err = s.Engine().Exists(ctx, contact)
	}
	if err != nil || !ok {
		q.Error(errUnavailable)
		return "", false
	}
	return contact, true
}

func (m *Module) accountInfo(s *xmppmap.Server, q *xmppmap.IQ, owner core.PrincipalID) {
	if !getOnly(q) {
		return
	}
	if node := q.Payload.Get("node"); node != "" {
		var info *NodeInfo
		if m.accountNodes != nil {
			info = m.accountNodes.AccountNodeInfo(q, owner, node)
		}
		if info == nil {
			q.Error(errNotFound)
			return
		}
		q.Result(infoXML(node, info))
		return
	}
	ids := append([]Identity{{Category: "account", Type: "registered"}}, m.accountIDs...)
	q.Result(infoXML("", &NodeInfo{Identities: ids, Features: s.Features(true)}))
}

func (m *Module) serverItems(q *xmppmap.IQ) {
	if !getOnly(q) {
		return
	}
	node := q.Payload.Get("node")
	f, ok := m.items[node]
	if !ok && node != "" {
		q.Error(errNotFound)
		return
	}
	var items []Item
	if f != nil {
		items = f(q)
	}
	q.Result(itemsXML(node, items))
}

func (m *Module) accountItems(q *xmppmap.IQ, owner core.PrincipalID) {
	if !getOnly(q) {
		return
	}
	node := q.Payload.Get("node")
	var items []Item
	if m.accountNodes != nil {
		var ok bool
		if items, ok = m.accountNodes.AccountItems(q, owner, node); !ok {
			q.Error(errNotFound)
			return
		}
	} else if node != "" {
		q.Error(errNotFound)
		return
	}
	q.Result(itemsXML(node, items))
}

func infoXML(node string, info *NodeInfo) []byte {
	el := xmppmap.NewElement(NSInfo, "query", "node", node)
	ids := append([]Identity(nil), info.Identities...)
	sort.Slice(ids, func(i, j int) bool { return ids[i].Category+"/"+ids[i].Type < ids[j].Category+"/"+ids[j].Type })
	for _, id := range ids {
		el.Append(xmppmap.NewElement(NSInfo, "identity", "category", id.Category, "type", id.Type, "name", id.Name))
	}
	for _, f := range info.Features {
		el.Append(xmppmap.NewElement(NSInfo, "feature", "var", f))
	}
	return xmppmap.XML(el)
}

func itemsXML(node string, items []Item) []byte {
	el := xmppmap.NewElement(NSItems, "query", "node", node)
	for _, it := range items {
		el.Append(xmppmap.NewElement(NSItems, "item", "jid", it.JID, "node", it.Node, "name", it.Name))
	}
	return xmppmap.XML(el)
}
