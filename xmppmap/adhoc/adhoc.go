// Package adhoc implements XEP-0050: Ad-Hoc Commands.
//
// Commands are offered by the server (to a served domain), listed through
// service discovery under the commands node, and may take several stages,
// each answered with an XEP-0004 data form. A command session belongs to
// the full JID that started it and expires when left alone.
package adhoc

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"sync"
	"time"

	"mellium.im/xmpp/stanza"

	"github.com/imppd/imppd/xmppmap"
	"github.com/imppd/imppd/xmppmap/disco"
)

// NS is the XEP-0050 namespace, also the disco node listing commands.
const NS = "http://jabber.org/protocol/commands"

// NSData is XEP-0004's data forms namespace.
const NSData = "jabber:x:data"

// Command is one command the server offers.
type Command struct {
	Node, Name string
	// Allowed says whether the requester may see and run the command.
	Allowed func(q *xmppmap.IQ) bool
	// Run runs one stage. form is the data form the requester submitted,
	// nil when the command starts. It returns the payload to show (a note,
	// a form) and whether the command is complete; an incomplete stage
	// must return a form for the requester to fill.
	Run func(q *xmppmap.IQ, form *xmppmap.Element) (payload []byte, done bool, err error)
}

const (
	maxSessions = 1024
	sessionTTL  = 10 * time.Minute
)

type session struct {
	node    string
	owner   string
	expires time.Time
}

// Module dispatches commands.
type Module struct {
	cmds  []Command
	mu    sync.Mutex
	sess  map[string]*session
	disco *disco.Module
}

// New returns the module, listing its commands in d.
func New(d *disco.Module, cmds ...Command) *Module {
	return &Module{cmds: cmds, sess: map[string]*session{}, disco: d}
}

// Add adds commands; call before Register.
func (m *Module) Add(cmds ...Command) { m.cmds = append(m.cmds, cmds...) }

func (m *Module) XEP() xmppmap.XEP {
	return xmppmap.XEP{Number: 50, Title: "Ad-Hoc Commands", Version: "1.3.0", Status: "complete",
		Features: []string{NS}}
}

func (m *Module) Register(s *xmppmap.Server) {
	s.HandleIQ(xmppmap.ToServer, NS, "command", m.handle)
	if m.disco == nil {
		return
	}
	m.disco.Items(NS, func(q *xmppmap.IQ) []disco.Item {
		var out []disco.Item
		for _, c := range m.cmds {
			if c.Allowed == nil || c.Allowed(q) {
				out = append(out, disco.Item{JID: q.To.String(), Node: c.Node, Name: c.Name})
			}
		}
		return out
	})
	for _, c := range m.cmds {
		c := c
		m.disco.Node(c.Node, func(q *xmppmap.IQ) *disco.NodeInfo {
			if c.Allowed != nil && !c.Allowed(q) {
				return nil
			}
			return &disco.NodeInfo{Identities: []disco.Identity{{Category: "automation", Type: "command-node", Name: c.Name}}, Features: []string{NS, NSData}}
		})
	}
}

func (m *Module) find(node string) *Command {
	for i := range m.cmds {
		if m.cmds[i].Node == node {
			return &m.cmds[i]
		}
	}
	return nil
}

func cmdErr(cond stanza.Condition, typ stanza.ErrorType) stanza.Error {
	return stanza.Error{Type: typ, Condition: cond}
}

func (m *Module) handle(q *xmppmap.IQ) {
	if q.Stanza.Get("type") != "set" {
		q.Error(cmdErr(stanza.BadRequest, stanza.Modify))
		return
	}
	node, sid, action := q.Payload.Get("node"), q.Payload.Get("sessionid"), q.Payload.Get("action")
	c := m.find(node)
	if c == nil {
		q.Error(cmdErr(stanza.ItemNotFound, stanza.Cancel))
		return
	}
	if c.Allowed != nil && !c.Allowed(q) {
		q.Error(cmdErr(stanza.Forbidden, stanza.Cancel))
		return
	}
	owner := q.From().String()
	now := time.Now()
	if sid != "" {
		m.mu.Lock()
		se := m.sess[sid]
		if se == nil || se.owner != owner || se.node != node || now.After(se.expires) {
			delete(m.sess, sid)
			m.mu.Unlock()
			// XEP-0050 §6: bad-request with bad-sessionid.
			q.ErrorApp(cmdErr(stanza.BadRequest, stanza.Modify), "<bad-sessionid xmlns='"+NS+"'/>")
			return
		}
		if action == "cancel" {
			delete(m.sess, sid)
			m.mu.Unlock()
			q.Result(respond(node, sid, "canceled", nil))
			return
		}
		se.expires = now.Add(sessionTTL)
		m.mu.Unlock()
	} else {
		if action != "" && action != "execute" {
			q.Error(cmdErr(stanza.BadRequest, stanza.Modify))
			return
		}
		sid = newID()
	}
	var form *xmppmap.Element
	if f := q.Payload.Child(NSData, "x"); f != nil && f.Get("type") == "submit" {
		form = f
	}
	if q.Payload.Get("sessionid") != "" && form == nil {
		q.Error(cmdErr(stanza.BadRequest, stanza.Modify))
		return
	}
	payload, done, err := c.Run(q, form)
	if err != nil {
		m.drop(sid)
		q.Error(toStanzaError(err))
		return
	}
	if done {
		m.drop(sid)
		q.Result(respond(node, sid, "completed", payload))
		return
	}
	if !m.keep(sid, &session{node: node, owner: owner, expires: now.Add(sessionTTL)}) {
		q.Error(cmdErr(stanza.ResourceConstraint, stanza.Wait))
		return
	}
	q.Result(respond(node, sid, "executing", payload))
}

func (m *Module) drop(sid string) {
	m.mu.Lock()
	delete(m.sess, sid)
	m.mu.Unlock()
}

// keep stores a session, evicting expired ones; false when full.
func (m *Module) keep(sid string, se *session) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.sess) >= maxSessions {
		now := time.Now()
		for k, v := range m.sess {
			if now.After(v.expires) {
				delete(m.sess, k)
			}
		}
		if len(m.sess) >= maxSessions {
			return false
		}
	}
	m.sess[sid] = se
	return true
}

func respond(node, sid, status string, payload []byte) []byte {
	b := []byte("<command xmlns='" + NS + "' node='" + xmppmap.Escape(node) + "' sessionid='" + sid + "' status='" + status + "'")
	if len(payload) == 0 && status != "executing" {
		return append(b, "/>"...)
	}
	b = append(b, '>')
	if status == "executing" {
		b = append(b, "<actions execute='complete'><complete/></actions>"...)
	}
	b = append(b, payload...)
	return append(b, "</command>"...)
}

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// StanzaError wraps a stanza error for a command to return.
type StanzaError struct{ Err stanza.Error }

func (e StanzaError) Error() string { return string(e.Err.Condition) }

func toStanzaError(err error) stanza.Error {
	var se StanzaError
	if errors.As(err, &se) {
		return se.Err
	}
	return stanza.Error{Type: stanza.Wait, Condition: stanza.InternalServerError}
}
