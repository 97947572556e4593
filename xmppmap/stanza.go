package xmppmap

import (
	"context"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
	"mellium.im/xmpp/stream"

	"github.com/imppd/imppd/core"
)

const (
	nsSID   = "urn:xmpp:sid:0"
	nsPing  = "urn:xmpp:ping"
	nsHints = "urn:xmpp:hints"
	nsDelay = "urn:xmpp:delay"
)

// handle processes one top-level element of a bound stream. A returned
// error ends the stream with the stream error it maps to.
func (ss *session) handle(el *Element) error {
	if el.Name.Space != nsClient {
		if h := ss.srv.nonzas[nonzaKey{el.Name.Space, el.Name.Local}]; h != nil {
			return h(ss, el)
		}
		return streamError(stream.UnsupportedStanzaType, "unsupported element in "+el.Name.Space)
	}
	switch el.Name.Local {
	case "message", "presence", "iq":
	default:
		return streamError(stream.UnsupportedStanzaType, "unsupported element <"+el.Name.Local+"/>")
	}
	if ss.sm != nil {
		ss.sm.inH++ // XEP-0198 §4: every stanza received counts, handled or refused
	}
	// RFC 6120 §8.1.2.1: the server stamps 'from'; a client that claims
	// any address other than its own is spoofing.
	if f := el.Get("from"); f != "" && f != ss.full {
		j, err := jid.Parse(f)
		if err != nil || (j.String() != ss.full && j.String() != string(ss.bare)) {
			return streamError(stream.InvalidFrom, "'from' does not match the authenticated address")
		}
	}
	el.Set("from", ss.full)
	var to jid.JID
	if t := el.Get("to"); t != "" {
		a, err := ss.parseTo(t)
		if err != nil {
			if el.Get("type") != "error" && el.Get("type") != "result" {
				ss.send(errorReply(el, ss.domain, stanza.Error{Type: stanza.Modify, Condition: stanza.JIDMalformed}))
			}
			return nil
		}
		if a.str != t {
			el.Set("to", a.str)
		}
		to = a.jid
	}
	switch el.Name.Local {
	case "iq":
		ss.handleIQ(el, to)
	case "message":
		ss.handleMessage(el, to)
	default:
		ss.handlePresence(el, to)
	}
	return nil
}

// addr is a parsed destination with its canonical string forms.
type addr struct {
	raw, str, bare string
	jid            jid.JID
}

// parseTo parses a 'to' address, remembering the last one: a client mostly
// talks to the same peer, and PRECIS preparation is costly.
func (ss *session) parseTo(raw string) (*addr, error) {
	if ss.lastTo.raw == raw && raw != "" {
		return &ss.lastTo, nil
	}
	j, err := jid.Parse(raw)
	if err != nil {
		return nil, err
	}
	ss.lastTo = addr{raw: raw, str: j.String(), bare: j.Bare().String(), jid: j}
	return &ss.lastTo, nil
}

// target classifies a stanza's destination.
type target uint8

const (
	toSelf   target = iota // no 'to', or the sender's own bare JID
	toServer               // a served domain
	toLocal                // an account on this server (bare or full)
	toRemote               // a domain this server does not serve
)

func (ss *session) classifyTo(to jid.JID) target {
	switch {
	case to.Domainpart() == "":
		return toSelf
	case !ss.srv.domains[to.Domainpart()]:
		return toRemote
	case to.Localpart() == "" && to.Resourcepart() == "":
		return toServer
	case to.Resourcepart() == "" && to.Localpart() != "" && core.PrincipalID(to.String()) == ss.bare:
		return toSelf
	}
	return toLocal
}

// handleIQ applies RFC 6120 §8.2.3 and §10.
func (ss *session) handleIQ(iq *Element, to jid.JID) {
	typ, id := iq.Get("type"), iq.Get("id")
	request := typ == "get" || typ == "set"
	switch {
	case request && (id == "" || iq.Children() != 1),
		typ == "result" && iq.Children() > 1,
		!request && typ != "result" && typ != "error":
		ss.send(iqError(iq, ss.domain, stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest}))
		return
	case !request && id == "":
		return
	}
	if !request && ss.pingID != "" && id == ss.pingID {
		ss.pingID = "" // the client answered the idle ping
		return
	}
	if !request && ss.answer(iq, to) {
		return // the answer to a request of the server (Session.Request)
	}
	tt := ss.classifyTo(to)
	if tt == toLocal && !ss.srv.mayRoute(ss, iq, to) {
		return
	}
	if !request {
		// Results and errors travel to a full JID; there is no one else to
		// tell if it is gone (RFC 6120 §8.2.3: never answer them).
		if tt == toLocal && to.Resourcepart() != "" {
			if peer := ss.srv.router.get(to.String()); peer != nil {
				peer.send(iq.AppendXML(nil, nsClient))
			}
		}
		return
	}
	var payload *Element
	for _, n := range iq.Nodes {
		if n.Elem != nil {
			payload = n.Elem
		}
	}
	switch tt {
	case toRemote:
		ss.send(iqError(iq, to.String(), stanza.Error{Type: stanza.Cancel, Condition: stanza.RemoteServerNotFound}))
		return
	case toServer, toSelf:
		if h := ss.srv.iqHandler(tt, payload); h != nil {
			h(ss, iq, payload)
			return
		}
	case toLocal:
		if to.Resourcepart() != "" {
			if peer := ss.srv.router.get(to.String()); peer != nil {
				peer.send(iq.AppendXML(nil, nsClient))
				return
			}
		}
		// RFC 6120 §10.5.3: the server answers for the account (and for
		// a resource that is not there, §10.5.3.2).
		if to.Resourcepart() == "" {
			if h := ss.srv.iqHandler(toLocal, payload); h != nil {
				h(ss, iq, payload)
				return
			}
		}
	}
	from := to.String()
	if tt == toSelf {
		from = ""
	}
	ss.send(iqError(iq, from, stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable}))
}

// iqHandlerFunc answers an IQ request; payload is its only child.
type iqHandlerFunc func(ss *session, iq, payload *Element)

// iqHandler finds the handler for a request's payload at a target.
func (s *Server) iqHandler(tt target, payload *Element) iqHandlerFunc {
	k := iqKey{tt, payload.Name.Space, payload.Name.Local}
	if h := s.handlers[k]; h != nil {
		return h
	}
	return nil
}

type iqKey struct {
	target       target
	space, local string
}

// handleMessage turns a message stanza into an INSTANT MESSAGE
// (RFC 6121 §5, §8.5) and tells the sender of any failure.
func (ss *session) handleMessage(el *Element, to jid.JID) {
	typ := el.Get("type")
	tt := ss.classifyTo(to)
	if tt == toSelf {
		to = ss.jid.Bare()
		el.Set("to", to.String())
	}
	bounce := func(se stanza.Error, from string) {
		if typ != "error" {
			ss.send(errorReply(el, from, se))
		}
	}
	bounceApp := func(se StanzaError, from string) {
		if typ != "error" {
			ss.send(errorReply(el, from, se.Error, se.App))
		}
	}
	switch tt {
	case toRemote:
		bounce(stanza.Error{Type: stanza.Cancel, Condition: stanza.RemoteServerNotFound}, to.String())
		return
	case toServer:
		// RFC 6121 §8.5.1 leaves a message to the server to policy: it
		// has no inbox, so the sender is told.
		bounce(stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable}, to.String())
		return
	}
	toStr, bare := el.Get("to"), ss.bareString()
	if tt != toSelf {
		bare = ss.lastTo.bare // set by handle's parseTo
	}
	m := core.Message{
		ID:    ss.srv.engine.NewID(),
		From:  ss.agent,
		To:    core.AgentID(toStr),
		Kind:  messageKind(typ),
		Stamp: time.Now(), // before anyone can see it: archives order by it
	}
	m.Storable = storable(el, m.Kind)
	// XEP-0359 §5: drop stanza-ids claiming to come from the recipient's
	// server side, then add ours.
	for i := 0; i < len(el.Nodes); i++ {
		if c := el.Nodes[i].Elem; c != nil && c.Name.Space == nsSID && c.Name.Local == "stanza-id" && (c.Get("by") == bare || c.Get("by") == to.Domainpart()) {
			el.Nodes = append(el.Nodes[:i], el.Nodes[i+1:]...)
			i--
		}
	}
	if m.Kind != core.MsgError {
		el.Append(NewElement(nsSID, "stanza-id", "id", m.ID, "by", bare))
	}
	var ev *MessageEvent
	if len(ss.srv.msgHooks)+len(ss.srv.preHooks) > 0 {
		ev = &MessageEvent{Stanza: el, ID: m.ID, Stamp: m.Stamp, From: Session{ss}, To: to,
			FromFull: ss.full, FromBare: string(ss.bare), ToFull: toStr, ToBare: bare}
		for _, f := range ss.srv.preHooks {
			f(ev)
		}
	}
	m.Payload = el.AppendXML(make([]byte, 0, 512), nsClient)
	out, err := ss.srv.engine.Send(context.Background(), &m)
	if ev != nil {
		ev.Payload, ev.Outcome, ev.Err = m.Payload, out, err
		for _, f := range ss.srv.msgHooks {
			f(ev)
		}
	}
	if err != nil {
		ss.logStanza(el.Get("id")).Debug("message not delivered", "stanza_id", m.ID, "to", toStr, "err", err)
		se := stanzaErrorFor(err)
		bounceApp(se, toStr)
		return
	}
	if ss.srv.log.Enabled(context.Background(), -4) {
		ss.logStanza(el.Get("id")).Debug("message routed", "stanza_id", m.ID, "to", toStr, "delivered", out.Delivered, "stored", out.Stored, "dropped", out.Dropped)
	}
}

func messageKind(t string) core.MessageKind {
	switch t {
	case "chat":
		return core.MsgChat
	case "headline":
		return core.MsgHeadline
	case "groupchat":
		return core.MsgGroupchat
	case "error":
		return core.MsgError
	}
	// RFC 6121 §5.2.2: no or an unknown type means normal.
	return core.MsgNormal
}

// storable applies XEP-0160 and XEP-0334: keep messages with content, or
// that ask to be kept; not bare notifications.
func storable(el *Element, k core.MessageKind) bool {
	if k != core.MsgChat && k != core.MsgNormal {
		return false
	}
	if el.Child(nsHints, "no-store") != nil {
		return false
	}
	return el.Child(nsClient, "body") != nil || el.Child(nsClient, "subject") != nil ||
		el.Child(nsHints, "store") != nil || el.Child("eu.siacs.conversations.axolotl", "encrypted") != nil
}

// Storable reports whether a message is worth keeping beyond its delivery
// (offline storage, archives): a chat or normal message with content, not
// marked no-store.
func Storable(el *Element) bool { return storable(el, messageKind(el.Get("type"))) }
