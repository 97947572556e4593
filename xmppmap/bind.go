package xmppmap

import (
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
	"mellium.im/xmpp/stream"

	"github.com/imppd/imppd/core"
)

// negotiateBind waits for the resource binding request (RFC 6120 §7) and
// binds the JID that SASL authenticated, never one the client claims.
func (ss *session) negotiateBind() error {
	for {
		el, err := ss.next()
		if err != nil {
			return err
		}
		if el.Name.Space == nsSM && el.Name.Local == "resume" {
			old, err := ss.resume(el)
			if err != nil {
				ss.resumed = old
				return err
			}
			continue // <failed/> was sent; the client may bind instead
		}
		if el.Name.Space != nsClient || el.Name.Local != "iq" || el.Get("type") != "set" || el.Child(nsBind, "bind") == nil {
			if el.Name.Space == nsClient && el.Name.Local == "iq" && el.Child(nsSession, "session") != nil {
				// Legacy session establishment before bind: harmless.
				ss.send(iqResult(el, ss.domain, ""))
				continue
			}
			return unexpected(el)
		}
		res := el.Child(nsBind, "bind").Child(nsBind, "resource")
		resource := ""
		if res != nil {
			resource = res.Text()
		}
		if resource == "" {
			resource = ss.srv.engine.NewID()
		}
		local, _, _, _ := jid.SplitString(string(ss.authed))
		j, err := jid.New(local, ss.domain, resource)
		if err != nil {
			// RFC 6120 §7.7.2.1: a resourcepart that violates its profile.
			ss.send(iqError(el, ss.domain, stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest}))
			continue
		}
		full := j.String()
		if old := ss.srv.router.get(full); old != nil {
			if ss.srv.cfg.ResourceConflict == "refuse" {
				ss.send(iqError(el, ss.domain, stanza.Error{Type: stanza.Cancel, Condition: stanza.Conflict}))
				continue
			}
			// RFC 6120 §7.7.2.2: the new session wins; the old one is told
			// why, and fully unbound before this one takes its place.
			if !old.endDetached() {
				old.closeWith(streamError(stream.Conflict, "replaced by a new session"))
				old.waitDone(5 * time.Second)
			}
		}
		ss.jid, ss.full, ss.bare, ss.agent = j, full, core.PrincipalID(j.Bare().String()), core.AgentID(full)
		ss.trace = ss.srv.cfg.TraceAll || ss.srv.trace[ss.bare]
		ss.log = ss.log.With("jid", full)
		ss.srv.engine.Connect(ss.agent)
		if prev := ss.srv.router.add(full, ss); prev != nil && prev != ss {
			prev.closeWith(streamError(stream.Conflict, "replaced by a new session"))
		}
		ss.send([]byte("<iq type='result' id='" + escAttr(el.Get("id")) + "'><bind xmlns='" + nsBind + "'><jid>" + escAttr(full) + "</jid></bind></iq>"))
		ss.log.Info("session started", "tls", ss.secure, "direct_tls", ss.direct)
		return nil
	}
}

// waitDone waits until the session has ended, forcing its connection shut
// if it takes longer than d.
func (ss *session) waitDone(d time.Duration) {
	select {
	case <-ss.done:
	case <-time.After(d):
		ss.closeConn()
		<-ss.done
	}
}
