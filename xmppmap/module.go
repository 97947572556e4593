package xmppmap

import (
	"sort"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
	"mellium.im/xmpp/stream"

	"github.com/imppd/imppd/core"
	"github.com/imppd/imppd/rosters"
)

// XEP describes one compiled-in protocol extension: what docs/XEPS.md
// lists and what service discovery advertises.
type XEP struct {
	Number  int
	Title   string
	Version string // version of the specification implemented
	Status  string // "complete" or "partial: what is missing"
	// Features are disco#info features on the server (XEP-0030);
	// AccountFeatures on every account's bare JID.
	Features        []string
	AccountFeatures []string
}

// Module is an extension package: it describes itself and registers its
// handlers on the server.
type Module interface {
	XEP() XEP
	Register(s *Server)
}

// Target says to whom an IQ request is addressed.
type Target uint8

const (
	// ToServer: a served domain.
	ToServer = Target(toServer)
	// ToAccount: the sender's own bare JID, or no 'to' (RFC 6120 §10.3.3).
	ToAccount = Target(toSelf)
	// ToContact: another account's bare JID, answered by the server on
	// the account's behalf (RFC 6120 §10.5.3).
	ToContact = Target(toLocal)
)

// IQ is an IQ request being handled by a module.
type IQ struct {
	Stanza  *Element // the whole <iq/>
	Payload *Element // its only child
	To      jid.JID  // as addressed; zero when no 'to'
	ss      *session
}

// From is the requesting session's full JID.
func (q *IQ) From() jid.JID { return q.ss.jid }

// Account is the requesting principal.
func (q *IQ) Account() core.PrincipalID { return q.ss.bare }

// Domain is the served domain of the requesting session.
func (q *IQ) Domain() string { return q.ss.domain }

// replyFrom is the address a reply comes from: what the request named.
func (q *IQ) replyFrom() string {
	if q.Stanza.Get("to") == "" {
		return ""
	}
	return q.To.String()
}

// Result answers with payload (serialized XML; may be empty).
func (q *IQ) Result(payload []byte) { q.ss.send(iqResult(q.Stanza, q.replyFrom(), string(payload))) }

// Error answers with a stanza error.
func (q *IQ) Error(se stanza.Error) { q.ss.send(iqError(q.Stanza, q.replyFrom(), se)) }

// ErrorApp answers with a stanza error carrying an application-specific
// condition element (serialized XML).
func (q *IQ) ErrorApp(se stanza.Error, app string) {
	q.ss.send(iqError(q.Stanza, q.replyFrom(), se, app))
}

// HandleIQ registers h for IQ requests with a payload of the given name
// addressed to t.
func (s *Server) HandleIQ(t Target, space, local string, h func(*IQ)) {
	s.handlers[iqKey{target(t), space, local}] = func(ss *session, iq, payload *Element) {
		var to jid.JID
		if v := iq.Get("to"); v != "" {
			to, _ = jid.Parse(v)
		}
		h(&IQ{Stanza: iq, Payload: payload, To: to, ss: ss})
	}
}

// Use registers modules and records their XEPs.
func (s *Server) Use(mods ...Module) {
	for _, m := range mods {
		s.xeps = append(s.xeps, m.XEP())
		m.Register(s)
	}
}

// XEPs lists the extensions compiled in and enabled, by number.
func (s *Server) XEPs() []XEP {
	out := append([]XEP(nil), s.xeps...)
	sort.Slice(out, func(i, j int) bool { return out[i].Number < out[j].Number })
	return out
}

// Features lists the disco#info features of the server (account=false)
// or of an account's bare JID, sorted and without duplicates.
func (s *Server) Features(account bool) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range s.xeps {
		fs := x.Features
		if account {
			fs = x.AccountFeatures
		}
		for _, f := range fs {
			if !seen[f] {
				seen[f] = true
				out = append(out, f)
			}
		}
	}
	sort.Strings(out)
	return out
}

// Engine is the core engine behind this server.
func (s *Server) Engine() *core.Engine { return s.engine }

// Rosters is the roster service behind this server.
func (s *Server) Rosters() *rosters.Service { return s.rosters }

// IsAdmin reports whether p is listed as an administrator.
func (s *Server) IsAdmin(p core.PrincipalID) bool { return s.admins[p] }

// Served reports whether domain is served here.
func (s *Server) Served(domain string) bool { return s.domains[domain] }

// Server returns the server handling the request.
func (q *IQ) Server() *Server { return q.ss.srv }

// XML serializes el for a reply payload.
func XML(el *Element) []byte { return el.AppendXML(nil, nsClient) }

// Escape escapes s for a single-quoted XML attribute value or for
// character data.
func Escape(s string) string { return string(appendEscaped(nil, s, true)) }

// AppendEscaped appends s to b escaped as Escape does, without allocating
// when b has room.
func AppendEscaped(b []byte, s string) []byte { return appendEscaped(b, s, true) }

// Session is a module's handle on one bound client session.
type Session struct{ ss *session }

// JID is the session's full JID.
func (s Session) JID() jid.JID { return s.ss.jid }

// Full is the session's full JID as a string, without allocating: for
// per-stanza hooks keyed by session.
func (s Session) Full() string { return s.ss.full }

// Account is the session's principal.
func (s Session) Account() core.PrincipalID { return s.ss.bare }

// Send queues serialized stanzas for the client; false if it is gone.
func (s Session) Send(b []byte) bool { return s.ss.send(b) }

// Value returns what a module stored on the session under key.
func (s Session) Value(key any) any {
	v, _ := s.ss.values.Load(key)
	return v
}

// SetValue stores module state on the session (nil deletes it).
func (s Session) SetValue(key, v any) {
	if v == nil {
		s.ss.values.Delete(key)
		return
	}
	s.ss.values.Store(key, v)
}

// Session is the requesting session.
func (q *IQ) Session() Session { return Session{q.ss} }

// Session finds the bound session of a full JID.
func (s *Server) Session(full string) (Session, bool) {
	ss := s.router.get(full)
	return Session{ss}, ss != nil
}

// MessageEvent tells message hooks what became of a message a client sent.
type MessageEvent struct {
	Stanza  *Element  // as routed: 'from' stamped, stanza-id added
	ID      string    // the server's stanza id (XEP-0359)
	Stamp   time.Time // when the server routed it
	Payload []byte    // Stanza encoded for a jabber:client stream
	From    Session
	To      jid.JID // canonical; the sender's bare JID when it gave none
	// The same addresses as strings, computed once for every hook.
	FromFull, FromBare, ToFull, ToBare string
	Outcome                            core.Outcome
	Err                                error // the engine's error; the sender was already told
	// Private: the sender asked that no copies of it be made (XEP-0280
	// <private/>, which a pre-routing hook removed from the stanza).
	Private bool
}

// OnBeforeMessage adds a hook run before a message is encoded and routed;
// it may change the stanza (Payload, Outcome and Err are not set yet).
func (s *Server) OnBeforeMessage(f func(*MessageEvent)) { s.preHooks = append(s.preHooks, f) }

// OnMessage adds a hook run, on the sender's goroutine, after each message
// from a client was routed (carbons, archives).
func (s *Server) OnMessage(f func(*MessageEvent)) { s.msgHooks = append(s.msgHooks, f) }

// OnShutdown adds a hook run by Shutdown once sessions have ended.
func (s *Server) OnShutdown(f func()) { s.stopHooks = append(s.stopHooks, f) }

// OnSessionEnd adds a hook run when a bound session ends.
func (s *Server) OnSessionEnd(f func(Session)) { s.endHooks = append(s.endHooks, f) }

// PresenceEvent is a client's broadcast available presence, before the
// engine publishes it.
type PresenceEvent struct {
	Session Session
	Stanza  *Element // hooks may change it (e.g. add a child) before it is published
}

// OnSubscription adds a hook run after the parties of a subscription were
// told of a change (fx as in core.Notifier.Subscription); PEP sends the
// last published items to a newly approved watcher.
func (s *Server) OnSubscription(f func(sub core.Subscription, fx core.Effect)) {
	s.subHooks = append(s.subHooks, f)
}

// OnPresence adds a hook run on the session's goroutine for each broadcast
// available presence, before its tuple is built and published.
func (s *Server) OnPresence(f func(*PresenceEvent)) { s.presHooks = append(s.presHooks, f) }

// RouteEvent is a directed presence or an IQ about to be routed between
// accounts of this server; messages and presence broadcasts go through
// the engine's rules instead.
type RouteEvent struct {
	Stanza *Element
	From   Session
	To     jid.JID
}

// OnRoute adds a filter consulted before routing a RouteEvent. A filter
// refuses by returning an error: one with an empty condition drops the
// stanza silently, another is returned to the sender. A filter that lets
// it pass may amend ev.Stanza: it is serialized after every filter ran
// (XEP-0153 adds the avatar hash to directed presence this way).
func (s *Server) OnRoute(f func(*RouteEvent) *StanzaError) {
	s.routeFilters = append(s.routeFilters, f)
}

// mayRoute runs the route filters; when one refuses it answers the sender
// as the filter said and reports false.
func (s *Server) mayRoute(ss *session, el *Element, to jid.JID) bool {
	if len(s.routeFilters) == 0 {
		return true
	}
	ev := &RouteEvent{Stanza: el, From: Session{ss}, To: to}
	for _, f := range s.routeFilters {
		if se := f(ev); se != nil {
			if se.Condition != "" {
				if el.Name.Local == "iq" {
					ss.send(iqError(el, to.String(), se.Error, se.App))
				} else {
					ss.send(errorReply(el, to.String(), se.Error, se.App))
				}
			}
			return false
		}
	}
	return true
}

// StreamFeature adds an element to the stream features offered with
// resource binding, after authentication.
func (s *Server) StreamFeature(xml string) { s.streamFeatures = append(s.streamFeatures, xml) }

// Online lists the full JIDs of bound sessions.
func (s *Server) Online() []string {
	var out []string
	for i := range s.router.shards {
		sh := &s.router.shards[i]
		sh.mu.RLock()
		for full := range sh.m {
			out = append(out, full)
		}
		sh.mu.RUnlock()
	}
	sort.Strings(out)
	return out
}

// EndSessions closes every session of p with the stream error condition
// (RFC 6120 §4.9.3; e.g. "not-authorized" after the account is deleted,
// "reset" after its password changed).
func (s *Server) EndSessions(p core.PrincipalID, condition, text string) int {
	n := 0
	for _, a := range s.engine.Agents(p) {
		if ss := s.router.get(string(a.ID)); ss != nil {
			ss.closeWith(streamError(stream.Error{Err: condition}, text))
			n++
		}
	}
	return n
}

// Broadcast sends b to every bound session (announcements).
func (s *Server) Broadcast(b func(full string) []byte) int {
	n := 0
	for _, full := range s.Online() {
		if ss := s.router.get(full); ss != nil && ss.send(b(full)) {
			n++
		}
	}
	return n
}

// PreAuthIQ is an IQ a client sends before authenticating (in-band
// registration, XEP-0077), on a stream that is already encrypted unless
// the administrator allowed otherwise.
type PreAuthIQ struct {
	Stanza, Payload *Element
	Domain          string // the served domain the stream is for
	RemoteIP        string
	ss              *session
}

// Result answers with payload.
func (q *PreAuthIQ) Result(payload []byte) { q.ss.send(iqResult(q.Stanza, "", string(payload))) }

// Error answers with a stanza error.
func (q *PreAuthIQ) Error(se stanza.Error) { q.ss.send(iqError(q.Stanza, "", se)) }

// HandlePreAuthIQ registers h for IQs with the given payload before
// authentication, and feature for the stream features offered then.
func (s *Server) HandlePreAuthIQ(space, local, feature string, h func(*PreAuthIQ)) {
	s.preauth[nonzaKey{space, local}] = h
	if feature != "" {
		s.preauthFeatures = append(s.preauthFeatures, feature)
	}
}
