// Package register implements XEP-0077: In-Band Registration.
//
// A logged-in user can always change their password and remove their
// account. Creating accounts before authentication is off unless the
// administrator turns it on; then it is offered only on encrypted streams
// and limited per client address.
package register

import (
	"context"
	"errors"
	"sync"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/imppd/imppd/core"
	"github.com/imppd/imppd/xmppmap"
	"github.com/imppd/imppd/xmppmap/scram"
)

const (
	NS        = "jabber:iq:register"
	nsFeature = "http://jabber.org/features/iq-register"
)

// Options configure the module.
type Options struct {
	Accounts   core.Accounts
	Iterations int  // PBKDF2 rounds for new credentials
	Open       bool // in-band account creation before authentication
	// PerIP is how many accounts one address may create per Window.
	PerIP  int
	Window time.Duration
}

// Module handles jabber:iq:register.
type Module struct {
	o  Options
	mu sync.Mutex
	// made counts accounts created per address within the window.
	made map[string][]time.Time
}

func New(o Options) *Module {
	if o.PerIP <= 0 {
		o.PerIP = 1
	}
	if o.Window <= 0 {
		o.Window = 10 * time.Minute
	}
	return &Module{o: o, made: map[string][]time.Time{}}
}

func (m *Module) XEP() xmppmap.XEP {
	st := "complete: password change and account removal; account creation off (registration.enabled)"
	if m.o.Open {
		st = "complete: password change, account removal, and account creation limited per address"
	}
	return xmppmap.XEP{Number: 77, Title: "In-Band Registration", Version: "2.4", Status: st, Features: []string{NS}}
}

var (
	errBad      = stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest}
	errNotAcc   = stanza.Error{Type: stanza.Modify, Condition: stanza.NotAcceptable}
	errInternal = stanza.Error{Type: stanza.Wait, Condition: stanza.InternalServerError}
)

func (m *Module) Register(s *xmppmap.Server) {
	// XEP-0077 §3.2 and §3.3 address the server; a request without 'to'
	// (to the account) means the same.
	s.HandleIQ(xmppmap.ToAccount, NS, "query", m.account)
	s.HandleIQ(xmppmap.ToServer, NS, "query", m.account)
	if m.o.Open {
		s.HandlePreAuthIQ(NS, "query", "<register xmlns='"+nsFeature+"'/>", m.create)
	}
}

func text(q *xmppmap.Element, name string) (string, bool) {
	c := q.Child(NS, name)
	if c == nil {
		return "", false
	}
	return c.Text(), true
}

// account: an authenticated user's registration (§3.2, §3.3).
func (m *Module) account(q *xmppmap.IQ) {
	ctx := context.Background()
	me := q.Account()
	local := q.From().Localpart()
	switch q.Stanza.Get("type") {
	case "get":
		el := xmppmap.NewElement(NS, "query")
		el.Append(xmppmap.NewElement(NS, "registered"))
		el.Append(xmppmap.NewElement(NS, "username")).AppendText(local)
		el.Append(xmppmap.NewElement(NS, "password"))
		q.Result(xmppmap.XML(el))
	case "set":
		if q.Payload.Child(NS, "remove") != nil {
			// §3.2: the account goes; the result is sent first, then the
			// sessions end.
			if err := m.o.Accounts.DeleteAccount(ctx, me); err != nil && !errors.Is(err, core.ErrNoSuchPrincipal) {
				q.Error(errInternal)
				return
			}
			q.Server().Engine().Forget()
			q.Result(nil)
			q.Server().EndSessions(me, "not-authorized", "the account was removed")
			return
		}
		user, _ := text(q.Payload, "username")
		pass, ok := text(q.Payload, "password")
		if !ok || pass == "" || (user != "" && user != local) {
			q.Error(errBad)
			return
		}
		creds, err := scram.NewCredentials(pass, m.o.Iterations)
		if err == nil {
			err = m.o.Accounts.SetCredentials(ctx, me, creds)
		}
		if err != nil {
			q.Error(errInternal)
			return
		}
		q.Result(nil)
	default:
		q.Error(errBad)
	}
}

// create: account creation before authentication (§3.1).
func (m *Module) create(q *xmppmap.PreAuthIQ) {
	switch q.Stanza.Get("type") {
	case "get":
		el := xmppmap.NewElement(NS, "query")
		el.Append(xmppmap.NewElement(NS, "instructions")).AppendText("Choose a username and password.")
		el.Append(xmppmap.NewElement(NS, "username"))
		el.Append(xmppmap.NewElement(NS, "password"))
		q.Result(xmppmap.XML(el))
		return
	case "set":
	default:
		q.Error(errBad)
		return
	}
	user, _ := text(q.Payload, "username")
	pass, _ := text(q.Payload, "password")
	if user == "" || pass == "" {
		q.Error(errNotAcc) // §3.1: required information missing
		return
	}
	j, err := jid.New(user, q.Domain, "")
	if err != nil {
		q.Error(stanza.Error{Type: stanza.Modify, Condition: stanza.JIDMalformed})
		return
	}
	if !m.allow(q.RemoteIP) {
		q.Error(stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint})
		return
	}
	creds, err := scram.NewCredentials(pass, m.o.Iterations)
	if err == nil {
		err = m.o.Accounts.CreateAccount(context.Background(), core.Account{ID: core.PrincipalID(j.String()), Credentials: creds})
	}
	switch {
	case errors.Is(err, core.ErrPrincipalExists):
		q.Error(stanza.Error{Type: stanza.Cancel, Condition: stanza.Conflict})
	case err != nil:
		q.Error(errInternal)
	default:
		m.record(q.RemoteIP)
		q.Result(nil)
	}
}

// allow reports whether ip may create another account now.
func (m *Module) allow(ip string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	recent := m.made[ip][:0]
	for _, t := range m.made[ip] {
		if now.Sub(t) < m.o.Window {
			recent = append(recent, t)
		}
	}
	if len(recent) == 0 {
		delete(m.made, ip)
	} else {
		m.made[ip] = recent
	}
	return len(recent) < m.o.PerIP
}

func (m *Module) record(ip string) {
	m.mu.Lock()
	m.made[ip] = append(m.made[ip], time.Now())
	m.mu.Unlock()
}
