// Package blocking implements XEP-0191: Blocking Command.
//
// A user's blocklist is enforced as rules of the core engine: an ACCESS
// RULE (no presence flows either way between a user and an address they
// block) and a DELIVERY RULE (no instant message either way), plus a
// routing filter for directed presence and IQs, which the engine does not
// see. Blocklists are stored by the Store and cached in memory once read.
package blocking

import (
	"context"
	"strings"
	"sync"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/imppd/imppd/core"
	"github.com/imppd/imppd/xmppmap"
)

const (
	NS       = "urn:xmpp:blocking"
	nsErrors = "urn:xmpp:blocking:errors"
)

// Store keeps blocklists; db.DB implements it.
type Store interface {
	Blocklist(ctx context.Context, owner core.PrincipalID) ([]string, error)
	Block(ctx context.Context, owner core.PrincipalID, jids []string) error
	Unblock(ctx context.Context, owner core.PrincipalID, jids []string) error
}

type interestedKey struct{}

// Module enforces blocklists and answers the blocking command.
type Module struct {
	store Store
	srv   *xmppmap.Server

	mu    sync.RWMutex
	cache map[core.PrincipalID]map[string]struct{} // loaded blocklists
}

// New returns the module over store.
func New(store Store) *Module {
	return &Module{store: store, cache: make(map[core.PrincipalID]map[string]struct{})}
}

func (m *Module) XEP() xmppmap.XEP {
	return xmppmap.XEP{Number: 191, Title: "Blocking Command", Version: "1.3", Status: "complete", Features: []string{NS}}
}

func (m *Module) Register(s *xmppmap.Server) {
	m.srv = s
	s.Engine().AddRules(rules{m}, rules{m})
	s.HandleIQ(xmppmap.ToAccount, NS, "blocklist", m.get)
	s.HandleIQ(xmppmap.ToAccount, NS, "block", func(q *xmppmap.IQ) { m.change(q, true) })
	s.HandleIQ(xmppmap.ToAccount, NS, "unblock", func(q *xmppmap.IQ) { m.change(q, false) })
	s.OnRoute(m.filter)
}

// list returns owner's blocklist, reading it once.
func (m *Module) list(ctx context.Context, owner core.PrincipalID) (map[string]struct{}, error) {
	m.mu.RLock()
	l, ok := m.cache[owner]
	m.mu.RUnlock()
	if ok {
		return l, nil
	}
	items, err := m.store.Blocklist(ctx, owner)
	if err != nil {
		return nil, err
	}
	l = make(map[string]struct{}, len(items))
	for _, it := range items {
		l[it] = struct{}{}
	}
	m.mu.Lock()
	if cur, ok := m.cache[owner]; ok {
		l = cur // someone changed it meanwhile; theirs is newer
	} else {
		m.cache[owner] = l
	}
	m.mu.Unlock()
	return l, nil
}

// Blocks reports whether owner blocks addr (a bare or full JID): an item
// matches the full JID, the bare JID, the domain, or domain/resource
// (XEP-0191 §3.1 with XEP-0016's matching).
func (m *Module) Blocks(ctx context.Context, owner core.PrincipalID, addr string) bool {
	if owner == "" || addr == "" {
		return false
	}
	l, err := m.list(ctx, owner)
	if err != nil || len(l) == 0 {
		// On a store error, fail open for reading: the store logs it and
		// blocking is a convenience, not an authorisation boundary.
		return false
	}
	return matches(l, addr)
}

func matches(l map[string]struct{}, addr string) bool {
	if _, ok := l[addr]; ok {
		return true
	}
	bare, res, _ := strings.Cut(addr, "/")
	if _, ok := l[bare]; ok && res != "" {
		return true
	}
	domain := bare
	if i := strings.IndexByte(bare, '@'); i >= 0 {
		domain = bare[i+1:]
		if _, ok := l[domain]; ok {
			return true
		}
		if res != "" {
			if _, ok := l[domain+"/"+res]; ok {
				return true
			}
		}
	}
	return false
}

// rules are the core rules derived from blocklists.
type rules struct{ m *Module }

// MayWatch: no presence to an address the presentity blocks, and none
// from an address the watcher blocks (XEP-0191 §3.4).
func (r rules) MayWatch(ctx context.Context, p, w core.PrincipalID, _ core.Subscription) core.Reason {
	if r.m.Blocks(ctx, p, string(w)) || r.m.Blocks(ctx, w, string(p)) {
		return core.ReasonBlocked
	}
	return core.ReasonNone
}

// MayAsk: a blocked address's subscription requests are not delivered.
func (r rules) MayAsk(ctx context.Context, p, w core.PrincipalID) core.Reason {
	if r.m.Blocks(ctx, p, string(w)) {
		return core.ReasonBlocked
	}
	if r.m.Blocks(ctx, w, string(p)) {
		return core.ReasonBlocking
	}
	return core.ReasonNone
}

// MayDeliver: messages from a blocked sender are refused as if the user
// were not there (§3.5); messages to an address the sender blocks are
// refused so the sender learns why (§3.6).
func (r rules) MayDeliver(ctx context.Context, msg *core.Message, to core.PrincipalID) core.Reason {
	if r.m.Blocks(ctx, to, string(msg.From)) {
		return core.ReasonBlocked
	}
	if r.m.Blocks(ctx, msg.From.Principal(), string(msg.To)) {
		return core.ReasonBlocking
	}
	return core.ReasonNone
}

// filter applies the same to directed presence and IQs between local
// accounts.
func (m *Module) filter(ev *xmppmap.RouteEvent) *xmppmap.StanzaError {
	ctx := context.Background()
	from := ev.From.Account()
	to := core.PrincipalID(ev.To.Bare().String())
	typ := ev.Stanza.Get("type")
	if m.Blocks(ctx, from, ev.To.String()) {
		if ev.Stanza.Name.Local == "presence" || typ == "result" || typ == "error" {
			return &dropped
		}
		return &xmppmap.ErrBlocking
	}
	if m.srv.Served(ev.To.Domainpart()) && m.Blocks(ctx, to, ev.From.Full()) {
		if ev.Stanza.Name.Local == "presence" || typ == "result" || typ == "error" {
			return &dropped
		}
		return &xmppmap.StanzaError{Error: stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable}}
	}
	return nil
}

// dropped is a refusal nobody is told of.
var dropped = xmppmap.StanzaError{}

func (m *Module) get(q *xmppmap.IQ) {
	if q.Stanza.Get("type") != "get" {
		q.Error(stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest})
		return
	}
	l, err := m.store.Blocklist(context.Background(), q.Account())
	if err != nil {
		q.Error(stanza.Error{Type: stanza.Wait, Condition: stanza.InternalServerError})
		return
	}
	q.Session().SetValue(interestedKey{}, true)
	q.Result(listXML("blocklist", l))
}

func listXML(name string, items []string) []byte {
	el := xmppmap.NewElement(NS, name)
	for _, it := range items {
		el.Append(xmppmap.NewElement(NS, "item", "jid", it))
	}
	return xmppmap.XML(el)
}

func (m *Module) change(q *xmppmap.IQ, block bool) {
	ctx := context.Background()
	if q.Stanza.Get("type") != "set" {
		q.Error(stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest})
		return
	}
	var items []string
	for _, n := range q.Payload.Nodes {
		it := n.Elem
		if it == nil || it.Name.Space != NS || it.Name.Local != "item" {
			continue
		}
		j, err := jid.Parse(it.Get("jid"))
		if err != nil || it.Get("jid") == "" {
			q.Error(stanza.Error{Type: stanza.Modify, Condition: stanza.JIDMalformed})
			return
		}
		items = append(items, j.String())
	}
	owner := q.Account()
	var err error
	if block {
		if len(items) == 0 {
			// §3.3: a block without items is bad-request.
			q.Error(stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest})
			return
		}
		err = m.store.Block(ctx, owner, items)
	} else {
		if len(items) == 0 {
			items, err = m.store.Blocklist(ctx, owner)
		}
		if err == nil {
			err = m.store.Unblock(ctx, owner, items)
		}
	}
	if err != nil {
		q.Error(stanza.Error{Type: stanza.Wait, Condition: stanza.InternalServerError})
		return
	}
	m.mu.Lock()
	delete(m.cache, owner)
	m.mu.Unlock()
	q.Result(nil)
	m.push(owner, block, q.Payload)
	// §3.3/§3.4: presence stops (or resumes) flowing both ways.
	for _, it := range items {
		j, _ := jid.Parse(it)
		if j.Localpart() == "" || !m.srv.Served(j.Domainpart()) {
			continue
		}
		other := core.PrincipalID(j.Bare().String())
		_ = m.srv.Engine().Reconsider(ctx, owner, other)
		_ = m.srv.Engine().Reconsider(ctx, other, owner)
	}
}

// push tells the owner's resources that asked for the blocklist what
// changed (§3.3, §3.4).
func (m *Module) push(owner core.PrincipalID, block bool, payload *xmppmap.Element) {
	body := xmppmap.XML(payload)
	for _, a := range m.srv.Engine().Agents(owner) {
		se, ok := m.srv.Session(string(a.ID))
		if !ok || se.Value(interestedKey{}) == nil {
			continue
		}
		b := []byte("<iq type='set' id='block-" + m.srv.Engine().NewID() + "' to='" + xmppmap.Escape(string(a.ID)) + "'>")
		b = append(b, body...)
		se.Send(append(b, "</iq>"...))
	}
}
