package xmppmap

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"mellium.im/xmpp/stream"

	"github.com/imppd/imppd/core"
)

// XEP-0198 Stream Management (urn:xmpp:sm:3). Once enabled, both sides
// count stanzas and acknowledge them; the server keeps every stanza it sent
// until the client acknowledges it. If the connection drops and the client
// asked for resumption, the session stays bound for the resumption
// timeout: stanzas for it keep accumulating, and a new connection that
// authenticates as the same account may resume it, receiving what it had
// not acknowledged. A session that ends with stanzas unacknowledged — by
// timeout or otherwise — has its messages routed again to the account's
// bare JID (other resources, or offline storage): nothing the client did
// not acknowledge is lost.

const nsSM = "urn:xmpp:sm:3"

var smRequest = []byte("<r xmlns='" + nsSM + "'/>")

// smAckEvery: the server asks for an acknowledgement once this many
// stanzas are unacknowledged and no request is outstanding.
const smAckEvery = 5

type smState struct {
	id        string
	resume    bool
	timeout   time.Duration
	inH       uint32 // stanzas handled from the client (reading goroutine only)
	outSeq    uint32 // stanzas sent to the client
	unacked   [][]byte
	max       int
	requested bool
	timer     *time.Timer
	resuming  bool
	detachCh  chan struct{} // closed when the session detaches
}

// sent records an outgoing stanza; false when too many are unacknowledged.
func (s *smState) sent(b []byte) bool {
	s.outSeq++
	s.unacked = append(s.unacked, b)
	return len(s.unacked) <= s.max
}

func (s *smState) wantAck() bool {
	if !s.requested && len(s.unacked) >= smAckEvery {
		s.requested = true
		return true
	}
	return false
}

// ack applies the client's count h (mod 2^32). A count higher than what
// was sent is an error (§4); a stale one is ignored.
func (s *smState) ack(h uint32) bool {
	s.requested = false
	if int32(h-s.outSeq) > 0 {
		return false
	}
	remaining := s.outSeq - h
	if int(remaining) >= len(s.unacked) {
		return true
	}
	drop := len(s.unacked) - int(remaining)
	clear(s.unacked[:drop])
	s.unacked = s.unacked[drop:]
	if cap(s.unacked) > 64 && len(s.unacked) < cap(s.unacked)/4 {
		s.unacked = append([][]byte(nil), s.unacked...)
	}
	return true
}

// smRegistry holds resumable sessions by stream management id.
type smRegistry struct {
	mu sync.Mutex
	m  map[string]*session
}

func (r *smRegistry) put(id string, ss *session) {
	r.mu.Lock()
	if r.m == nil {
		r.m = make(map[string]*session)
	}
	r.m[id] = ss
	r.mu.Unlock()
}

func (r *smRegistry) get(id string) *session {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.m[id]
}

func (r *smRegistry) forget(id string, ss *session) {
	r.mu.Lock()
	if r.m[id] == ss {
		delete(r.m, id)
	}
	r.mu.Unlock()
}

func (r *smRegistry) all() []*session {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*session, 0, len(r.m))
	for _, ss := range r.m {
		out = append(out, ss)
	}
	return out
}

func (s *Server) registerSM() {
	s.xeps = append(s.xeps, XEP{Number: 198, Title: "Stream Management", Version: "1.6.1",
		Status: "complete: acks both ways, resumption, unacknowledged messages re-routed"})
	s.streamFeatures = append(s.streamFeatures, "<sm xmlns='"+nsSM+"'/>")
	s.nonzas[nonzaKey{nsSM, "enable"}] = (*session).smEnable
	s.nonzas[nonzaKey{nsSM, "r"}] = func(ss *session, _ *Element) error {
		if ss.sm == nil {
			return streamError(stream.UnsupportedStanzaType, "stream management is not enabled")
		}
		ss.sendNonza([]byte("<a xmlns='" + nsSM + "' h='" + strconv.FormatUint(uint64(ss.sm.inH), 10) + "'/>"))
		return nil
	}
	s.nonzas[nonzaKey{nsSM, "a"}] = func(ss *session, el *Element) error {
		h, err := strconv.ParseUint(el.Get("h"), 10, 32)
		if ss.sm == nil || err != nil {
			return streamError(stream.UnsupportedStanzaType, "bad stream management acknowledgement")
		}
		ss.wmu.Lock()
		ok := ss.sm.ack(uint32(h))
		sent := ss.sm.outSeq
		ss.wmu.Unlock()
		if !ok {
			// §4: handled-count-too-high.
			return streamError(stream.UndefinedCondition, "acknowledged "+el.Get("h")+" stanzas, "+strconv.FormatUint(uint64(sent), 10)+" were sent")
		}
		return nil
	}
	s.nonzas[nonzaKey{nsSM, "resume"}] = func(ss *session, _ *Element) error {
		ss.sendNonza([]byte("<failed xmlns='" + nsSM + "'><unexpected-request xmlns='" + nsStanza + "'/></failed>"))
		return nil
	}
}

// smEnable handles <enable/> (§3).
func (ss *session) smEnable(el *Element) error {
	if ss.sm != nil {
		ss.sendNonza([]byte("<failed xmlns='" + nsSM + "'><unexpected-request xmlns='" + nsStanza + "'/></failed>"))
		return nil
	}
	st := &smState{id: newStreamID(), max: ss.srv.cfg.SendQueue * 4, timeout: ss.srv.cfg.ResumeTimeout}
	st.resume = el.Get("resume") == "true" || el.Get("resume") == "1"
	if m, err := strconv.Atoi(el.Get("max")); err == nil && m > 0 && time.Duration(m)*time.Second < st.timeout {
		st.timeout = time.Duration(m) * time.Second
	}
	b := "<enabled xmlns='" + nsSM + "'"
	if st.resume {
		b += " id='" + st.id + "' resume='true' max='" + strconv.Itoa(int(st.timeout/time.Second)) + "'"
		ss.srv.sm.put(st.id, ss)
	}
	b += "/>"
	// Counting starts with the first stanza after <enabled/>: set both in
	// one step so no stanza slips between them.
	ss.wmu.Lock()
	ss.sm = st
	ss.queue = append(ss.queue, []byte(b))
	ss.wmu.Unlock()
	ss.kick()
	return nil
}

// detach keeps a resumable session bound after its connection dropped.
// It reports false when the session is not resumable.
func (ss *session) detach() bool {
	ss.wmu.Lock()
	if ss.sm == nil || !ss.sm.resume || ss.closing || ss.full == "" {
		ss.wmu.Unlock()
		return false
	}
	ss.detached = true
	ss.writerOn = false
	clear(ss.queue)
	ss.queue = ss.queue[:0]
	st := st(ss)
	st.requested = false
	if st.detachCh != nil {
		close(st.detachCh)
		st.detachCh = nil
	}
	st.timer = time.AfterFunc(st.timeout, ss.expire)
	ss.wmu.Unlock()
	// Close first: a writer may be blocked writing to the dead peer.
	_ = ss.conn.Close()
	ss.wwg.Wait()
	ss.log.Info("connection lost; session kept for resumption", "timeout", st.timeout)
	return true
}

func st(ss *session) *smState { return ss.sm }

// expire ends a detached session whose resumption did not come.
func (ss *session) expire() {
	ss.wmu.Lock()
	if !ss.detached || ss.sm.resuming {
		ss.wmu.Unlock()
		return
	}
	ss.detached = false
	ss.closing = true
	ss.wmu.Unlock()
	ss.log.Info("resumption timed out")
	ss.finish()
}

// endDetached finishes a detached session at once (a new session bound
// its resource); false if it is not detached.
func (ss *session) endDetached() bool {
	ss.wmu.Lock()
	ok := ss.detached && !ss.sm.resuming
	if ok {
		ss.detached, ss.closing = false, true
		ss.sm.timer.Stop()
	}
	ss.wmu.Unlock()
	if ok {
		ss.finish()
	}
	return ok
}

// errResumed ends a negotiation whose connection now serves a resumed
// session.
var errResumed = errors.New("stream resumed")

// rerouteUnacked sends the messages the client never acknowledged to the
// account's bare JID again (XEP-0198 §5), after the session is unbound.
func (ss *session) rerouteUnacked() {
	ss.wmu.Lock()
	var left [][]byte
	if ss.sm != nil {
		left, ss.sm.unacked = ss.sm.unacked, nil
	}
	ss.wmu.Unlock()
	ctx := context.Background()
	n := 0
	for _, b := range left {
		el, err := parseIn(b, nsClient, 256)
		if err != nil || el.Name.Local != "message" {
			continue
		}
		kind := messageKind(el.Get("type"))
		if !storable(el, kind) {
			continue
		}
		m := core.Message{ID: ss.srv.engine.NewID(), From: core.AgentID(el.Get("from")), To: core.AgentID(ss.bare), Kind: kind, Payload: b, Storable: true}
		if _, err := ss.srv.engine.Send(ctx, &m); err == nil {
			n++
		}
	}
	if n > 0 {
		ss.log.Info("unacknowledged messages routed again", "count", n)
	}
}

// resume handles <resume/> in place of binding (§5). On success the
// connection now belongs to the resumed session and errResumed is
// returned; the caller runs that session.
func (ss *session) resume(el *Element) (*session, error) {
	failed := func() (*session, error) {
		ss.send([]byte("<failed xmlns='" + nsSM + "'><item-not-found xmlns='" + nsStanza + "'/></failed>"))
		return nil, nil
	}
	h, err := strconv.ParseUint(el.Get("h"), 10, 32)
	old := ss.srv.sm.get(el.Get("previd"))
	if err != nil || old == nil || old.bare != ss.authed {
		return failed()
	}
	old.wmu.Lock()
	if old.closing || old.sm.resuming {
		old.wmu.Unlock()
		return failed()
	}
	old.sm.resuming = true
	var wait chan struct{}
	if !old.detached {
		// The old connection is not known dead yet: end it now.
		wait = make(chan struct{})
		old.sm.detachCh = wait
	}
	old.wmu.Unlock()
	if wait != nil {
		old.closeConn()
		select {
		case <-wait:
		case <-time.After(10 * time.Second):
			return failed()
		}
	}
	old.wmu.Lock()
	if old.sm.timer != nil {
		old.sm.timer.Stop()
	}
	// Hand this connection's reader chain to the resumed session.
	old.conn, old.ir, old.br, old.budget, old.dec = ss.conn, ss.ir, ss.br, ss.budget, ss.dec
	old.ir.ss = old
	old.tlsState, old.secure, old.direct, old.ip, old.nsScope = ss.tlsState, ss.secure, ss.direct, ss.ip, ss.nsScope
	old.streamID, old.lang = ss.streamID, ss.lang
	old.pinged, old.pingID = false, ""
	ok := old.sm.ack(uint32(h))
	old.detached, old.sm.resuming = false, false
	old.queue = append(old.queue[:0], []byte("<resumed xmlns='"+nsSM+"' h='"+strconv.FormatUint(uint64(old.sm.inH), 10)+"' previd='"+old.sm.id+"'/>"))
	old.queue = append(old.queue, old.sm.unacked...)
	old.wmu.Unlock()
	if !ok {
		old.fail(streamError(stream.UndefinedCondition, "acknowledged more stanzas than were sent"))
		old.finish()
		return nil, errResumed
	}
	old.log.Info("session resumed", "retransmitted", len(old.queue)-1)
	return old, errResumed
}
