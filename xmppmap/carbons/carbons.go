// Package carbons implements XEP-0280: Message Carbons (urn:xmpp:carbons:2).
//
// A resource that enabled carbons receives a copy of every eligible
// message its account sends from another resource (wrapped in <sent/>) and
// of every eligible message addressed to its account that another resource
// received (wrapped in <received/>), so all of a user's devices see the
// whole conversation.
package carbons

import (
	"sync"
	"sync/atomic"

	"mellium.im/xmpp/stanza"

	"github.com/imppd/imppd/core"
	"github.com/imppd/imppd/xmppmap"
)

const (
	NS      = "urn:xmpp:carbons:2"
	nsRules = "urn:xmpp:carbons:rules:0"
	nsFwd   = "urn:xmpp:forward:0"
	nsHints = "urn:xmpp:hints"
	nsMUC   = "http://jabber.org/protocol/muc#user"
)

type enabledKey struct{}

// Module handles enable/disable and copies messages.
type Module struct {
	srv *xmppmap.Server
	// enabled counts sessions with carbons on, per principal, so that
	// accounts without carbons cost one map lookup per message.
	enabled sync.Map // core.PrincipalID -> *atomic.Int32
}

func New() *Module { return &Module{} }

func (m *Module) XEP() xmppmap.XEP {
	return xmppmap.XEP{Number: 280, Title: "Message Carbons", Version: "1.0.1", Status: "complete",
		Features: []string{NS, nsRules}}
}

func (m *Module) Register(s *xmppmap.Server) {
	m.srv = s
	s.HandleIQ(xmppmap.ToAccount, NS, "enable", func(q *xmppmap.IQ) { m.toggle(q, true) })
	s.HandleIQ(xmppmap.ToAccount, NS, "disable", func(q *xmppmap.IQ) { m.toggle(q, false) })
	s.OnBeforeMessage(func(ev *xmppmap.MessageEvent) {
		// §9: a private message is not copied, and the recipient does not
		// need the marker.
		for i, n := range ev.Stanza.Nodes {
			if n.Elem != nil && n.Elem.Name.Space == NS && n.Elem.Name.Local == "private" {
				ev.Stanza.Nodes = append(ev.Stanza.Nodes[:i], ev.Stanza.Nodes[i+1:]...)
				ev.Private = true
				return
			}
		}
	})
	s.OnMessage(m.copy)
	s.OnSessionEnd(func(se xmppmap.Session) {
		if se.Value(enabledKey{}) != nil {
			m.counter(se.Account()).Add(-1)
		}
	})
}

func (m *Module) counter(p core.PrincipalID) *atomic.Int32 {
	if c, ok := m.enabled.Load(p); ok {
		return c.(*atomic.Int32)
	}
	c, _ := m.enabled.LoadOrStore(p, new(atomic.Int32))
	return c.(*atomic.Int32)
}

func (m *Module) toggle(q *xmppmap.IQ, on bool) {
	if q.Stanza.Get("type") != "set" {
		q.Error(stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest})
		return
	}
	se := q.Session()
	was := se.Value(enabledKey{}) != nil
	switch {
	case on && !was:
		se.SetValue(enabledKey{}, true)
		m.counter(se.Account()).Add(1)
	case !on && was:
		se.SetValue(enabledKey{}, nil)
		m.counter(se.Account()).Add(-1)
	}
	q.Result(nil)
}

func (m *Module) any(p core.PrincipalID) bool {
	c, ok := m.enabled.Load(p)
	return ok && c.(*atomic.Int32).Load() > 0
}

// Eligible applies XEP-0280 §6.1: chat messages, normal messages with a
// body, and messages carrying typical IM payloads (receipts, markers,
// chat states); never those marked private or no-copy, never groupchat,
// and MUC private messages only when not sent to a room occupant's full
// JID (they are tied to one client's room presence).
func Eligible(el *xmppmap.Element) bool {
	if el.Child(NS, "private") != nil || el.Child(nsHints, "no-copy") != nil ||
		el.Child(NS, "received") != nil || el.Child(NS, "sent") != nil {
		return false
	}
	switch el.Get("type") {
	case "chat":
	case "groupchat", "error":
		return false
	case "", "normal":
		if el.Child("jabber:client", "body") == nil && el.Child("urn:xmpp:receipts", "") == nil &&
			el.Child("urn:xmpp:chat-markers:0", "") == nil {
			return false
		}
	default:
		return false
	}
	if el.Child(nsMUC, "x") != nil {
		return false
	}
	return true
}

func (m *Module) copy(ev *xmppmap.MessageEvent) {
	sender := core.PrincipalID(ev.FromBare)
	recipient := core.PrincipalID(ev.ToBare)
	local := m.srv.Served(ev.To.Domainpart())
	if !m.any(sender) && !(local && m.any(recipient)) {
		return
	}
	if ev.Private || !Eligible(ev.Stanza) {
		return
	}
	var orig []byte
	wrapped := func() []byte {
		if orig == nil {
			orig = ev.Stanza.AppendXML(nil, nsFwd)
		}
		return orig
	}
	// Sent copies to the sender's other resources (§7).
	if m.any(sender) {
		for _, a := range m.srv.Engine().Agents(sender) {
			if string(a.ID) == ev.FromFull {
				continue
			}
			m.send(a.ID, sender, "sent", ev.Stanza.Get("type"), wrapped())
		}
	}
	// Received copies to the recipient's resources that did not get the
	// message itself (§8), when it reached any.
	if local && ev.Err == nil && ev.Outcome.Delivered > 0 && m.any(recipient) {
		for _, a := range m.srv.Engine().Agents(recipient) {
			if !a.Available || contains(ev.Outcome.Agents, a.ID) || string(a.ID) == ev.FromFull {
				continue
			}
			m.send(a.ID, recipient, "received", ev.Stanza.Get("type"), wrapped())
		}
	}
}

func contains(as []core.AgentID, a core.AgentID) bool {
	for _, x := range as {
		if x == a {
			return true
		}
	}
	return false
}

// send wraps the original in <forwarded/> inside a <sent/> or <received/>
// from the account's bare JID to one of its resources (§7, §8).
func (m *Module) send(to core.AgentID, account core.PrincipalID, kind, typ string, orig []byte) {
	se, ok := m.srv.Session(string(to))
	if !ok || se.Value(enabledKey{}) == nil {
		return
	}
	b := make([]byte, 0, len(orig)+256)
	b = append(b, "<message"...)
	if typ != "" {
		b = append(b, " type='"+xmppmap.Escape(typ)+"'"...)
	}
	b = append(b, " from='"+xmppmap.Escape(string(account))+"' to='"+xmppmap.Escape(string(to))+"'><"+kind+" xmlns='"+NS+"'><forwarded xmlns='"+nsFwd+"'>"...)
	b = append(b, orig...)
	b = append(b, "</forwarded></"+kind+"></message>"...)
	se.Send(b)
}
