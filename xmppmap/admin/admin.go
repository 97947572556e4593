// Package admin implements XEP-0133: Service Administration, the commands
// an administrator needs from a client: add a user, delete users, change a
// user's password, list online users, send an announcement. They are
// XEP-0050 commands, offered only to the bare JIDs listed in `admins`.
package admin

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/imppd/imppd/core"
	"github.com/imppd/imppd/xmppmap"
	"github.com/imppd/imppd/xmppmap/adhoc"
	"github.com/imppd/imppd/xmppmap/scram"
)

const ns = "http://jabber.org/protocol/admin"

// Module is the XEP entry; the commands are registered with adhoc.
type Module struct{}

func (Module) XEP() xmppmap.XEP {
	return xmppmap.XEP{Number: 133, Title: "Service Administration", Version: "1.3.0",
		Status: "partial: add-user, delete-user, change-user-password, get-online-users-list, announce"}
}

func (Module) Register(*xmppmap.Server) {}

// Commands returns the admin commands over accounts, deriving new
// credentials with iterations PBKDF2 rounds.
func Commands(accounts core.Accounts, iterations int) []adhoc.Command {
	admin := func(q *xmppmap.IQ) bool { return q.Server().IsAdmin(q.Account()) }
	cmd := func(local, name string, run func(q *xmppmap.IQ, f fields) ([]byte, error), form func() []byte) adhoc.Command {
		return adhoc.Command{Node: ns + "#" + local, Name: name, Allowed: admin,
			Run: func(q *xmppmap.IQ, submitted *xmppmap.Element) ([]byte, bool, error) {
				if submitted == nil {
					if form == nil {
						p, err := run(q, nil)
						return p, true, err
					}
					return form(), false, nil
				}
				p, err := run(q, parse(submitted))
				return p, true, err
			}}
	}
	return []adhoc.Command{
		cmd("add-user", "Add a user", func(q *xmppmap.IQ, f fields) ([]byte, error) {
			id, err := account(q, f.one("accountjid"))
			if err != nil {
				return nil, err
			}
			pass := f.one("password")
			if pass == "" || pass != f.one("password-verify") {
				return nil, badRequest("the passwords are empty or differ")
			}
			creds, err := scram.NewCredentials(pass, iterations)
			if err != nil {
				return nil, err
			}
			err = accounts.CreateAccount(context.Background(), core.Account{ID: id, Credentials: creds})
			if errors.Is(err, core.ErrPrincipalExists) {
				return nil, adhoc.StanzaError{Err: stanza.Error{Type: stanza.Cancel, Condition: stanza.Conflict}}
			}
			if err != nil {
				return nil, err
			}
			return note("Created " + string(id)), nil
		}, func() []byte {
			return form("Add a user", "accountjid:jid-single:The Jabber ID for the account to be added", "password:text-private:The password for this account", "password-verify:text-private:Retype password")
		}),
		cmd("delete-user", "Delete users", func(q *xmppmap.IQ, f fields) ([]byte, error) {
			var done []string
			for _, j := range f["accountjids"] {
				id, err := account(q, j)
				if err != nil {
					return nil, err
				}
				if err := accounts.DeleteAccount(context.Background(), id); err != nil && !errors.Is(err, core.ErrNoSuchPrincipal) {
					return nil, err
				}
				q.Server().Engine().Forget()
				q.Server().EndSessions(id, "not-authorized", "the account was deleted")
				done = append(done, string(id))
			}
			if len(done) == 0 {
				return nil, badRequest("no account given")
			}
			return note("Deleted " + strings.Join(done, ", ")), nil
		}, func() []byte {
			return form("Delete users", "accountjids:jid-multi:The Jabber IDs of the accounts to delete")
		}),
		cmd("change-user-password", "Change a user's password", func(q *xmppmap.IQ, f fields) ([]byte, error) {
			id, err := account(q, f.one("accountjid"))
			if err != nil {
				return nil, err
			}
			pass := f.one("password")
			if pass == "" {
				return nil, badRequest("empty password")
			}
			creds, err := scram.NewCredentials(pass, iterations)
			if err != nil {
				return nil, err
			}
			if err := accounts.SetCredentials(context.Background(), id, creds); errors.Is(err, core.ErrNoSuchPrincipal) {
				return nil, adhoc.StanzaError{Err: stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound}}
			} else if err != nil {
				return nil, err
			}
			return note("Password changed for " + string(id)), nil
		}, func() []byte {
			return form("Change a user's password", "accountjid:jid-single:The Jabber ID", "password:text-private:The new password")
		}),
		cmd("get-online-users-list", "List online users", func(q *xmppmap.IQ, _ fields) ([]byte, error) {
			online := q.Server().Online()
			x := xmppmap.NewElement(adhoc.NSData, "x", "type", "result")
			x.Append(xmppmap.NewElement(adhoc.NSData, "field", "var", "FORM_TYPE", "type", "hidden")).
				Append(xmppmap.NewElement(adhoc.NSData, "value")).AppendText(ns)
			f := x.Append(xmppmap.NewElement(adhoc.NSData, "field", "var", "onlineuserjids", "type", "jid-multi", "label", "The list of all online users ("+strconv.Itoa(len(online))+")"))
			for _, j := range online {
				f.Append(xmppmap.NewElement(adhoc.NSData, "value")).AppendText(j)
			}
			return xmppmap.XML(x), nil
		}, nil),
		cmd("announce", "Send an announcement to online users", func(q *xmppmap.IQ, f fields) ([]byte, error) {
			body := strings.Join(f["announcement"], "\n")
			if body == "" {
				return nil, badRequest("empty announcement")
			}
			subject := f.one("subject")
			from := q.Domain()
			n := q.Server().Broadcast(func(full string) []byte {
				m := xmppmap.NewElement("jabber:client", "message", "type", "headline", "from", from, "to", full)
				if subject != "" {
					m.Append(xmppmap.NewElement("jabber:client", "subject")).AppendText(subject)
				}
				m.Append(xmppmap.NewElement("jabber:client", "body")).AppendText(body)
				return xmppmap.XML(m)
			})
			return note("Sent to " + strconv.Itoa(n) + " sessions"), nil
		}, func() []byte {
			return form("Send an announcement", "subject:text-single:Subject", "announcement:text-multi:Announcement")
		}),
	}
}

// fields are a submitted form's values by var.
type fields map[string][]string

func (f fields) one(k string) string {
	if v := f[k]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func parse(x *xmppmap.Element) fields {
	f := fields{}
	for _, n := range x.Nodes {
		if n.Elem == nil || n.Elem.Name.Local != "field" {
			continue
		}
		k := n.Elem.Get("var")
		for _, v := range n.Elem.Nodes {
			if v.Elem != nil && v.Elem.Name.Local == "value" {
				f[k] = append(f[k], v.Elem.Text())
			}
		}
	}
	return f
}

// account checks that s is a bare JID on a served domain.
func account(q *xmppmap.IQ, s string) (core.PrincipalID, error) {
	j, err := jid.Parse(s)
	if err != nil || j.Localpart() == "" || j.Resourcepart() != "" || !q.Server().Served(j.Domainpart()) {
		return "", adhoc.StanzaError{Err: stanza.Error{Type: stanza.Modify, Condition: stanza.JIDMalformed}}
	}
	return core.PrincipalID(j.String()), nil
}

func badRequest(text string) error {
	return adhoc.StanzaError{Err: stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest, Text: map[string]string{"en": text}}}
}

func note(text string) []byte {
	n := xmppmap.NewElement(adhoc.NS, "note", "type", "info")
	n.AppendText(text)
	return xmppmap.XML(n)
}

// form renders an XEP-0004 form; each spec is "var:type:label".
func form(title string, specs ...string) []byte {
	x := xmppmap.NewElement(adhoc.NSData, "x", "type", "form")
	x.Append(xmppmap.NewElement(adhoc.NSData, "title")).AppendText(title)
	x.Append(xmppmap.NewElement(adhoc.NSData, "field", "var", "FORM_TYPE", "type", "hidden")).
		Append(xmppmap.NewElement(adhoc.NSData, "value")).AppendText(ns)
	for _, s := range specs {
		p := strings.SplitN(s, ":", 3)
		x.Append(xmppmap.NewElement(adhoc.NSData, "field", "var", p[0], "type", p[1], "label", p[2])).
			Append(xmppmap.NewElement(adhoc.NSData, "required"))
	}
	return xmppmap.XML(x)
}
