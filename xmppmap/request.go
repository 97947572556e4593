package xmppmap

import (
	"time"

	"mellium.im/xmpp/jid"
)

// maxPendingRequests bounds the server-originated requests one session may
// have awaiting the client's answer.
const maxPendingRequests = 16

// pendingRequest is a server-originated IQ request awaiting its answer.
type pendingRequest struct {
	f     func(res *Element)
	timer *time.Timer
}

// Request sends an IQ get or set (typ) carrying payload (serialized XML)
// from the session's domain to the session's full JID, and calls f once
// with the client's answer: the <iq type='result'> or <iq type='error'>
// element, or nil when the session ends or the answer does not arrive
// within timeout.
//
// f may run on any goroutine: the session's reading goroutine (the
// answer), a timer's (the timeout), the one ending the session, or the
// caller's, before Request returns, when the request cannot be sent (the
// session ended, or already has 16 requests awaiting answers). It must not
// block for long, and a caller must not hold a lock f needs.
//
// The answer comes only over the session's own stream, so no other entity
// can answer for the client.
func (s Session) Request(typ string, payload []byte, timeout time.Duration, f func(res *Element)) {
	if typ != "get" && typ != "set" {
		panic("xmppmap: Request type must be get or set, not " + typ)
	}
	ss := s.ss
	id := "srv" + ss.srv.engine.NewID()
	ss.reqMu.Lock()
	if ss.reqsEnded || len(ss.reqs) >= maxPendingRequests {
		ss.reqMu.Unlock()
		f(nil)
		return
	}
	if ss.reqs == nil {
		ss.reqs = make(map[string]*pendingRequest)
	}
	p := &pendingRequest{f: f}
	ss.reqs[id] = p
	// Set while the lock is held: the timer's settle waits for it.
	p.timer = time.AfterFunc(timeout, func() { ss.settle(id, nil) })
	ss.reqMu.Unlock()

	b := make([]byte, 0, 64+len(ss.domain)+len(ss.full)+len(id)+len(payload))
	b = append(b, "<iq type='"...)
	b = append(b, typ...)
	b = append(b, "' id='"...)
	b = appendEscaped(b, id, true)
	b = append(b, "' from='"...)
	b = appendEscaped(b, ss.domain, true)
	b = append(b, "' to='"...)
	b = appendEscaped(b, ss.full, true)
	b = append(b, "'>"...)
	b = append(b, payload...)
	b = append(b, "</iq>"...)
	if !ss.send(b) {
		ss.settle(id, nil)
	}
}

// settle hands res to the pending request id and forgets it; false if no
// such request is pending (answered, timed out or never sent).
func (ss *session) settle(id string, res *Element) bool {
	ss.reqMu.Lock()
	p := ss.reqs[id]
	if p != nil {
		delete(ss.reqs, id)
	}
	ss.reqMu.Unlock()
	if p == nil {
		return false
	}
	p.timer.Stop()
	p.f(res)
	return true
}

// answer dispatches an IQ result or error the client addressed to the
// server (its domain, or no 'to') to the pending request it answers;
// false if it answers none.
func (ss *session) answer(iq *Element, to jid.JID) bool {
	if d := to.Domainpart(); d != "" && (d != ss.domain || to.Localpart() != "" || to.Resourcepart() != "") {
		return false
	}
	return ss.settle(iq.Get("id"), iq)
}

// endRequests calls every pending request's f with nil when the session
// ends, and refuses further requests.
func (ss *session) endRequests() {
	ss.reqMu.Lock()
	reqs := ss.reqs
	ss.reqs, ss.reqsEnded = nil, true
	ss.reqMu.Unlock()
	for _, p := range reqs {
		p.timer.Stop()
		p.f(nil)
	}
}
