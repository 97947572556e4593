package xmppmap

import (
	"context"
	"errors"
	"strconv"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/imppd/imppd/core"
	"github.com/imppd/imppd/rosters"
)

const nsRoster = "jabber:iq:roster"

// Limits on roster data a client may store (RFC 6121 §2.3.3 lets a server
// refuse what it cannot store with not-acceptable).
const (
	maxRosterName   = 1024
	maxRosterGroups = 64
)

// handleRoster answers roster get and set (RFC 6121 §2) with roster
// versioning (§2.6, XEP-0237).
func handleRoster(ss *session, iq, q *Element) {
	ctx := context.Background()
	if iq.Get("type") == "get" {
		ss.interested.Store(true)
		entries, ver, err := ss.srv.rosters.Get(ctx, ss.bare)
		if err != nil {
			ss.log.Error("roster get", "err", err)
			ss.send(iqError(iq, "", stanza.Error{Type: stanza.Wait, Condition: stanza.InternalServerError}))
			return
		}
		v := strconv.FormatInt(ver, 10)
		if cv := q.Get("ver"); cv != "" && cv == v {
			// §2.6.3: unchanged since the client's copy; pushes follow.
			ss.send(iqResult(iq, "", ""))
			return
		}
		b := []byte("<query xmlns='" + nsRoster + "' ver='" + v + "'>")
		for i := range entries {
			b = appendItem(b, &entries[i])
		}
		ss.send(iqResult(iq, "", string(append(b, "</query>"...))))
		return
	}
	// §2.3.3: a set carries exactly one item.
	var item *Element
	n := 0
	for _, c := range q.Nodes {
		if c.Elem != nil {
			n++
			item = c.Elem
		}
	}
	bad := func(cond stanza.Condition) {
		ss.send(iqError(iq, "", stanza.Error{Type: stanza.Modify, Condition: cond}))
	}
	if n != 1 || item.Name.Space != nsRoster || item.Name.Local != "item" {
		bad(stanza.BadRequest)
		return
	}
	j, err := jid.Parse(item.Get("jid"))
	if err != nil || item.Get("jid") == "" {
		bad(stanza.BadRequest)
		return
	}
	contact := core.PrincipalID(j.Bare().String())
	if item.Get("subscription") == "remove" {
		err := ss.srv.rosters.Remove(ctx, ss.bare, contact)
		switch {
		case err == nil:
			ss.send(iqResult(iq, "", ""))
		case errors.Is(err, core.ErrNoSuchPrincipal):
			// §2.5.3: removing an item that is not there.
			ss.send(iqError(iq, "", stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound}))
		default:
			ss.log.Error("roster remove", "err", err)
			ss.send(iqError(iq, "", stanza.Error{Type: stanza.Wait, Condition: stanza.InternalServerError}))
		}
		return
	}
	if contact == ss.bare || j.Resourcepart() != "" {
		// A user's own JID, or a full JID, is no contact (§2.3.3).
		bad(stanza.NotAllowed)
		return
	}
	it := rosters.Item{Contact: contact, Name: item.Get("name")}
	if len(it.Name) > maxRosterName {
		bad(stanza.NotAcceptable)
		return
	}
	seen := map[string]bool{}
	for _, c := range item.Nodes {
		g := c.Elem
		if g == nil {
			continue
		}
		if g.Name.Space != nsRoster || g.Name.Local != "group" {
			continue
		}
		name := g.Text()
		switch {
		case name == "" || len(name) > maxRosterName:
			// §2.3.3: an empty group name is not-acceptable.
			bad(stanza.NotAcceptable)
			return
		case seen[name]:
			// §2.3.3: the same group twice is bad-request.
			bad(stanza.BadRequest)
			return
		}
		seen[name] = true
		it.Groups = append(it.Groups, name)
	}
	if len(it.Groups) > maxRosterGroups {
		bad(stanza.NotAcceptable)
		return
	}
	if err := ss.srv.rosters.Set(ctx, ss.bare, it); err != nil {
		ss.log.Error("roster set", "err", err)
		ss.send(iqError(iq, "", stanza.Error{Type: stanza.Wait, Condition: stanza.InternalServerError}))
		return
	}
	ss.send(iqResult(iq, "", ""))
}

func appendItem(b []byte, e *rosters.Entry) []byte {
	b = append(b, "<item jid='"...)
	b = appendEscaped(b, string(e.Contact), true)
	b = append(b, "' subscription='"...)
	b = append(b, e.Subscription.String()...)
	b = append(b, '\'')
	if e.Name != "" {
		b = append(b, " name='"...)
		b = appendEscaped(b, e.Name, true)
		b = append(b, '\'')
	}
	if e.Ask && e.Subscription != rosters.Remove {
		b = append(b, " ask='subscribe'"...)
	}
	if e.Approved && e.Subscription != rosters.Remove {
		b = append(b, " approved='true'"...)
	}
	if len(e.Groups) == 0 {
		return append(b, "/>"...)
	}
	b = append(b, '>')
	for _, g := range e.Groups {
		b = append(b, "<group>"...)
		b = appendEscaped(b, g, false)
		b = append(b, "</group>"...)
	}
	return append(b, "</item>"...)
}

// RosterPush implements rosters.Pusher: every interested resource of the
// owner gets the changed item (RFC 6121 §2.1.6).
func (s *Server) RosterPush(_ context.Context, owner core.PrincipalID, e rosters.Entry, ver int64) {
	var item []byte
	for _, a := range s.engine.Agents(owner) {
		peer := s.router.get(string(a.ID))
		if peer == nil || !peer.interested.Load() {
			continue
		}
		if item == nil {
			item = appendItem([]byte("<query xmlns='"+nsRoster+"' ver='"+strconv.FormatInt(ver, 10)+"'>"), &e)
			item = append(item, "</query></iq>"...)
		}
		b := []byte("<iq type='set' id='push" + s.engine.NewID() + "' to='" + escAttr(string(a.ID)) + "'>")
		peer.send(append(b, item...))
	}
}
