package xmppmap

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/imppd/imppd/core"
)

// handlePresence maps RFC 6121 presence onto the engine: broadcast
// presence publishes or withdraws the agent's tuple (§4.2-4.5),
// subscription types drive core subscriptions through rosters (§3), a
// probe is a FETCH (§4.3), and directed presence is routed (§4.6).
func (ss *session) handlePresence(el *Element, to jid.JID) {
	ctx := context.Background()
	typ := el.Get("type")
	tt := ss.classifyTo(to)
	if tt == toSelf && to.Domainpart() == "" {
		switch typ {
		case "":
			ss.publish(ctx, el)
			return
		case "unavailable":
			ss.unpublish(ctx, el)
			return
		}
	}
	switch typ {
	case "subscribe", "subscribed", "unsubscribe", "unsubscribed":
		ss.subscription(ctx, el, typ, to, tt)
	case "probe":
		if tt != toLocal && tt != toSelf {
			return
		}
		err := ss.srv.engine.Fetch(ctx, ss.agent, core.PrincipalID(to.Bare().String()))
		var refused *core.RefusedError
		if errors.As(err, &refused) || errors.Is(err, core.ErrNoSuchPrincipal) {
			// Nothing is revealed to a non-subscriber (anti-STALKING); the
			// probe is answered as RFC 6121 §4.3.2 says for one.
			ss.send([]byte("<presence type='unsubscribed' from='" + escAttr(to.Bare().String()) + "' to='" + escAttr(ss.full) + "'/>"))
		} else if err != nil {
			ss.log.Warn("probe failed", "to", to.String(), "err", err)
		}
	case "", "unavailable", "error":
		ss.routeDirected(el, to, tt, typ)
	default:
		if typ != "error" {
			ss.send(errorReply(el, ss.domain, stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest}))
		}
	}
}

// tuple builds the PRESENCE TUPLE an available presence describes; its
// children travel as OTHER PRESENCE MARKUP.
func (ss *session) tuple(el *Element) core.Tuple {
	t := core.Tuple{Contact: core.Contact{Means: "im", Address: ss.agent}}
	if c := el.Child(nsClient, "show"); c != nil {
		t.Status.Show = c.Text()
	}
	if c := el.Child(nsClient, "status"); c != nil {
		t.Status.Text = c.Text()
	}
	if c := el.Child(nsClient, "priority"); c != nil {
		if p, err := strconv.Atoi(strings.TrimSpace(c.Text())); err == nil && p >= -128 && p <= 127 {
			t.Priority = p
		}
	}
	var b []byte
	for _, n := range el.Nodes {
		if n.Elem != nil {
			b = n.Elem.AppendXML(b, nsClient)
		}
	}
	t.Markup = b
	return t
}

func (ss *session) publish(ctx context.Context, el *Element) {
	first := !ss.available
	if len(ss.srv.presHooks) > 0 {
		ev := &PresenceEvent{Session: Session{ss}, Stanza: el}
		for _, f := range ss.srv.presHooks {
			f(ev)
		}
		if ev.Stanza != nil {
			el = ev.Stanza
		}
	}
	t := ss.tuple(el)
	ss.available = true
	if err := ss.srv.engine.Publish(ctx, t); err != nil {
		ss.log.Warn("publish", "err", err)
		return
	}
	// Directed presence recipients see updates too (RFC 6121 §4.6.2).
	if len(ss.directed) > 0 {
		b := presenceBytes(&t, "")
		for j := range ss.directed {
			ss.srv.deliverPresence(j, b)
		}
	}
	// XEP-0160: offline messages follow the initial presence, unless the
	// resource asked not to receive messages (negative priority).
	if first && t.Priority >= 0 {
		if _, err := ss.srv.engine.DrainOffline(ctx, ss.agent); err != nil {
			ss.log.Warn("offline delivery", "err", err)
		}
	}
}

func (ss *session) unpublish(ctx context.Context, el *Element) {
	if !ss.available {
		return
	}
	ss.available = false
	t := ss.tuple(el)
	if err := ss.srv.engine.Unpublish(ctx, t); err != nil {
		ss.log.Warn("unpublish", "err", err)
	}
	ss.sendDirectedUnavailable()
}

// sendDirectedUnavailable tells everyone who got directed presence that the
// agent is gone (RFC 6121 §4.6.3).
func (ss *session) sendDirectedUnavailable() {
	if len(ss.directed) == 0 {
		return
	}
	b := []byte("<presence type='unavailable' from='" + escAttr(ss.full) + "'/>")
	for j := range ss.directed {
		ss.srv.deliverPresence(j, b)
	}
	ss.directed = nil
}

// routeDirected routes presence addressed to an entity (RFC 6121 §4.6).
func (ss *session) routeDirected(el *Element, to jid.JID, tt target, typ string) {
	switch tt {
	case toRemote:
		if typ != "error" {
			ss.send(errorReply(el, to.String(), stanza.Error{Type: stanza.Cancel, Condition: stanza.RemoteServerNotFound}))
		}
		return
	case toServer:
		return
	}
	dest := to.String()
	if !ss.srv.mayRoute(ss, el, to) {
		return
	}
	b := el.AppendXML(nil, nsClient)
	ss.srv.deliverPresence(dest, b)
	if typ == "error" {
		return
	}
	if typ == "unavailable" {
		delete(ss.directed, dest)
		return
	}
	if ss.available {
		if ss.directed == nil {
			ss.directed = make(map[string]struct{})
		}
		ss.directed[dest] = struct{}{}
	}
}

// deliverPresence sends presence bytes to a full JID's session, or to all
// available agents of a bare JID.
func (s *Server) deliverPresence(dest string, b []byte) {
	if strings.IndexByte(dest, '/') >= 0 {
		if peer := s.router.get(dest); peer != nil {
			peer.send(b)
		}
		return
	}
	for _, a := range s.engine.Agents(core.PrincipalID(dest)) {
		if a.Available {
			if peer := s.router.get(string(a.ID)); peer != nil {
				peer.send(b)
			}
		}
	}
}

// subscription handles the four subscription presence types (RFC 6121 §3).
func (ss *session) subscription(ctx context.Context, el *Element, typ string, to jid.JID, tt target) {
	if tt == toRemote {
		ss.send(errorReply(el, to.String(), stanza.Error{Type: stanza.Cancel, Condition: stanza.RemoteServerNotFound}))
		return
	}
	if tt != toLocal {
		return
	}
	contact := core.PrincipalID(to.Bare().String())
	var err error
	switch typ {
	case "subscribe":
		var req []byte
		for _, n := range el.Nodes {
			if n.Elem != nil && n.Elem.Name.Space == nsClient && n.Elem.Name.Local == "status" {
				req = n.Elem.AppendXML(req, nsClient)
			}
		}
		_, err = ss.srv.rosters.Subscribe(ctx, ss.bare, contact, req)
	case "subscribed":
		_, err = ss.srv.rosters.Approve(ctx, ss.bare, contact)
	case "unsubscribe":
		_, err = ss.srv.rosters.Unsubscribe(ctx, ss.bare, contact)
	case "unsubscribed":
		_, err = ss.srv.rosters.Deny(ctx, ss.bare, contact)
	}
	switch {
	case err == nil:
	case errors.Is(err, core.ErrNoSuchPrincipal):
		// RFC 6121 §3.1.2: the user's roster gains the contact as for any
		// request; §3.1.3: a request to an account that does not exist is
		// answered with 'unsubscribed', which leaves it at 'none'.
		if typ == "subscribe" {
			if err := ss.srv.rosters.Ensure(ctx, ss.bare, contact); err != nil {
				ss.log.Warn("roster item for unknown contact", "contact", string(contact), "err", err)
			}
		}
		ss.send([]byte("<presence type='unsubscribed' from='" + escAttr(string(contact)) + "' to='" + escAttr(string(ss.bare)) + "'/>"))
	case errors.Is(err, core.ErrSelf):
	default:
		var refused *core.RefusedError
		if !errors.As(err, &refused) {
			ss.log.Warn("subscription", "type", typ, "contact", string(contact), "err", err)
		}
	}
}

// presenceBytes encodes a tuple as a presence stanza, once for all its
// recipients. A closed tuple is 'unavailable'; a tuple of a principal (no
// resource) is a last presence, stamped with its time (XEP-0203).
func presenceBytes(t *core.Tuple, domain string) []byte {
	b := make([]byte, 0, 64+len(t.Markup))
	b = append(b, "<presence from='"...)
	b = appendEscaped(b, string(t.Contact.Address), true)
	b = append(b, '\'')
	if t.Status.Basic == core.Closed {
		b = append(b, " type='unavailable'"...)
	}
	last := strings.IndexByte(string(t.Contact.Address), '/') < 0
	if len(t.Markup) == 0 && !last {
		return append(b, "/>"...)
	}
	b = append(b, '>')
	b = append(b, t.Markup...)
	if last {
		b = appendDelay(b, t.Stamp, domain)
	}
	return append(b, "</presence>"...)
}

func appendDelay(b []byte, at time.Time, from string) []byte {
	b = append(b, "<delay xmlns='"+nsDelay+"'"...)
	if from != "" {
		b = append(b, " from='"...)
		b = appendEscaped(b, from, true)
		b = append(b, '\'')
	}
	b = append(b, " stamp='"...)
	b = at.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z")
	return append(b, "'/>"...)
}

// Presence implements core.Notifier: one encoding for every recipient.
func (s *Server) Presence(_ context.Context, t *core.Tuple, to []core.AgentID) {
	if len(to) == 0 {
		return
	}
	b := presenceBytes(t, s.domainOf(string(t.Contact.Address)))
	from := string(t.Contact.Address)
	for _, a := range to {
		if peer := s.router.get(string(a)); peer != nil {
			peer.sendPresence(from, b)
		}
	}
}

func (s *Server) domainOf(addr string) string {
	if i := strings.IndexByte(addr, '@'); i >= 0 {
		addr = addr[i+1:]
	}
	if i := strings.IndexByte(addr, '/'); i >= 0 {
		addr = addr[:i]
	}
	return addr
}

// Subscription implements core.Notifier: the subscription presence types
// of RFC 6121 §3 that tell each party what the other did.
func (s *Server) Subscription(_ context.Context, sub core.Subscription, fx core.Effect, to core.AgentID) {
	send := func(dest core.PrincipalID, from core.PrincipalID, typ string, extra []byte) {
		b := []byte("<presence type='" + typ + "' from='" + escAttr(string(from)) + "'")
		if len(extra) > 0 {
			b = append(b, '>')
			b = append(b, extra...)
			b = append(b, "</presence>"...)
		} else {
			b = append(b, "/>"...)
		}
		if to != "" {
			if peer := s.router.get(string(to)); peer != nil {
				peer.send(b)
			}
			return
		}
		s.deliverPresence(string(dest), b)
	}
	if fx.Has(core.FxRequest) {
		send(sub.Presentity, sub.Watcher, "subscribe", sub.Request)
	}
	if fx.Has(core.FxApproved) {
		send(sub.Watcher, sub.Presentity, "subscribed", nil)
	}
	if fx.Has(core.FxDenied) {
		send(sub.Watcher, sub.Presentity, "unsubscribed", nil)
	}
	if fx.Has(core.FxCancelled) {
		send(sub.Presentity, sub.Watcher, "unsubscribe", nil)
	}
	if to == "" {
		for _, f := range s.subHooks {
			f(sub, fx)
		}
	}
}

// Deliver implements core.Notifier: an instant message to one agent. A
// message that waited in the inbox gets its delay stamp (XEP-0203).
func (s *Server) Deliver(_ context.Context, to core.AgentID, m *core.Message) bool {
	peer := s.router.get(string(to))
	if peer == nil {
		return false
	}
	if !m.Delayed {
		return peer.send(m.Payload)
	}
	p := m.Payload
	i := strings.LastIndex(string(p), "</")
	if i < 0 {
		return peer.send(p)
	}
	b := make([]byte, 0, len(p)+96)
	b = append(b, p[:i]...)
	b = appendDelay(b, m.Stamp, s.domainOf(string(to)))
	b = append(b, p[i:]...)
	return peer.send(b)
}
