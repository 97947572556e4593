// Package last implements XEP-0012: Last Activity.
//
// Addressed to the server it tells the server's uptime (§5). Addressed to
// an account's bare JID, the server answers for the account (§4): 0 seconds
// while the account has an available resource, else the time since its
// last unavailable presence and that presence's status text — and only to
// requesters the core's ACCESS RULES let see the account's presence; others
// get forbidden, as they would get no presence (RFC 2778 STALKING).
package last

import (
	"context"
	"strconv"
	"time"

	"mellium.im/xmpp/stanza"

	"github.com/imppd/imppd/core"
	"github.com/imppd/imppd/xmppmap"
)

const ns = "jabber:iq:last"

// Module answers last-activity queries.
type Module struct {
	Started time.Time // server start, for uptime
}

func (m Module) XEP() xmppmap.XEP {
	return xmppmap.XEP{Number: 12, Title: "Last Activity", Version: "2.0", Status: "complete: server uptime and accounts' last logout",
		Features: []string{ns}, AccountFeatures: []string{ns}}
}

func (m Module) Register(s *xmppmap.Server) {
	s.HandleIQ(xmppmap.ToServer, ns, "query", func(q *xmppmap.IQ) {
		if !get(q) {
			return
		}
		q.Result(payload(time.Since(m.Started), ""))
	})
	account := func(q *xmppmap.IQ) {
		if !get(q) {
			return
		}
		target := q.Account()
		if q.Stanza.Get("to") != "" {
			target = core.PrincipalID(q.To.Bare().String())
		}
		m.account(s, q, target)
	}
	s.HandleIQ(xmppmap.ToAccount, ns, "query", account)
	s.HandleIQ(xmppmap.ToContact, ns, "query", account)
}

func get(q *xmppmap.IQ) bool {
	if q.Stanza.Get("type") != "get" {
		q.Error(stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest})
		return false
	}
	return true
}

func (m Module) account(s *xmppmap.Server, q *xmppmap.IQ, target core.PrincipalID) {
	ctx := context.Background()
	e := s.Engine()
	exists, err := e.Exists(ctx, target)
	if err == nil && !exists {
		q.Error(stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable})
		return
	}
	ok, err2 := e.MayWatch(ctx, target, q.Account())
	if err != nil || err2 != nil {
		q.Error(stanza.Error{Type: stanza.Wait, Condition: stanza.InternalServerError})
		return
	}
	if !ok {
		q.Error(stanza.Error{Type: stanza.Auth, Condition: stanza.Forbidden})
		return
	}
	for _, a := range e.Agents(target) {
		if a.Available {
			q.Result(payload(0, ""))
			return
		}
	}
	lp, found, err := e.LastPresence(ctx, target)
	switch {
	case err != nil:
		q.Error(stanza.Error{Type: stanza.Wait, Condition: stanza.InternalServerError})
	case !found:
		// Never seen since the server kept records.
		q.Error(stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound})
	default:
		q.Result(payload(e.Now().Sub(lp.Stamp), lp.Status.Text))
	}
}

func payload(d time.Duration, status string) []byte {
	if d < 0 {
		d = 0
	}
	el := xmppmap.NewElement(ns, "query", "seconds", strconv.FormatInt(int64(d/time.Second), 10))
	if status != "" {
		el.AppendText(status)
	}
	return xmppmap.XML(el)
}
