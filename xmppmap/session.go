package xmppmap

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"log/slog"
	"net"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stream"

	"github.com/imppd/imppd/core"
)

// systemShutdown is RFC 6120 §4.9.3.17, which mellium names SystemShutdown.
var systemShutdown = stream.SystemShutdown

const writeTimeout = 30 * time.Second

// session is one client connection: negotiation first (run), then the
// stanza loop on the reading goroutine and a writer goroutine that drains
// a bounded queue, batching whatever is queued into one write.
type session struct {
	srv    *Server
	conn   net.Conn
	direct bool
	ip     string
	log    *slog.Logger

	// The reader chain: conn ← idleReader ← bufio ← budget ← decoder. All
	// pointers, so that stream resumption (XEP-0198) can hand a new
	// connection's chain to the session it resumes.
	ir     *idleReader
	br     *bufio.Reader
	budget *budgetReader
	dec    *xml.Decoder

	streamID string
	domain   string
	lang     string
	secure   bool
	tlsState *tls.ConnectionState
	authed   core.PrincipalID
	failures int // failed credentials on this stream
	attempts int // SASL attempts refused on this stream, for any reason
	pinged   bool
	pingID   string
	lastTo   addr     // the last destination parsed, reused while it repeats
	nsScope  []string // namespaces the stream header declared
	pending  *Element // an <auth/> read while looking for <starttls/>

	// Set at bind; read-only afterwards.
	jid   jid.JID
	full  string
	bare  core.PrincipalID
	agent core.AgentID
	trace bool

	// Writer state, guarded by wmu.
	wmu        sync.Mutex
	queue      [][]byte
	spare      [][]byte
	closing    bool
	writerOn   bool           // bound: writer goroutines do the writing
	writing    bool           // a writer goroutine runs
	wwg        sync.WaitGroup // running writers
	done       chan struct{}  // closed when the session has ended
	onExit     func()         // releases the listener's count once serving ends
	finishOnce sync.Once
	handedOff  bool     // the connection went to a resumed session
	resumed    *session // that session

	// Client state indication (XEP-0352) and stream management (XEP-0198),
	// guarded by wmu.
	inactive  bool
	held      map[string][]byte // presence by sender while inactive
	heldOrder []string
	sm        *smState
	detached  bool // connection lost; waiting for a resumption

	// Presence state, touched only by the reading goroutine.
	available  bool
	interested atomic.Bool // requested the roster (RFC 6121 §2.1.6)
	values     sync.Map    // module state (Session.Value)
	directed   map[string]struct{}

	// Server-originated IQ requests awaiting the client's answer
	// (Session.Request), guarded by reqMu.
	reqMu     sync.Mutex
	reqs      map[string]*pendingRequest
	reqsEnded bool
}

func newSession(s *Server, conn net.Conn, direct bool, onExit func()) *session {
	ss := &session{srv: s, conn: conn, direct: direct, ip: remoteIP(conn), done: make(chan struct{}), onExit: onExit}
	ss.log = s.log.With("remote", conn.RemoteAddr().String())
	return ss
}

// reset starts a new XML decoder on the current connection (RFC 6120
// §4.3.3: after TLS and SASL the stream restarts).
func (ss *session) reset(limit int) {
	ss.ir = &idleReader{ss}
	// Small: over TLS, a read only copies from TLS's own buffer of
	// decrypted records, so a large buffer here would double it for
	// every idle session.
	ss.br = bufio.NewReaderSize(ss.ir, 512)
	ss.budget = &budgetReader{r: ss.br, left: limit}
	ss.dec = xml.NewDecoder(ss.budget)
	ss.dec.Strict = true
}

// idleReader reads from the connection with the idle deadline: a silent
// bound client is pinged once (XEP-0199) and dropped if it stays silent.
type idleReader struct{ ss *session }

func (r *idleReader) Read(p []byte) (int, error) {
	ss := r.ss
	for {
		if ss.full == "" {
			_ = ss.conn.SetReadDeadline(time.Now().Add(ss.srv.cfg.HandshakeTimeout))
		} else if ss.pinged {
			_ = ss.conn.SetReadDeadline(time.Now().Add(ss.srv.cfg.PingTimeout))
		} else {
			_ = ss.conn.SetReadDeadline(time.Now().Add(ss.srv.cfg.IdleTimeout))
		}
		n, err := ss.conn.Read(p)
		if n > 0 {
			ss.pinged = false
			return n, nil
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			if ss.full != "" && !ss.pinged && !ss.isClosing() {
				ss.pinged = true
				ss.pingID = "idle-" + ss.srv.engine.NewID()
				ss.send([]byte("<iq type='get' from='" + ss.domain + "' to='" + escAttr(ss.full) + "' id='" + ss.pingID + "'><ping xmlns='urn:xmpp:ping'/></iq>"))
				continue
			}
			return 0, errTimeout
		}
		return n, err
	}
}

var errTimeout = errors.New("connection timed out")

func (ss *session) run() {
	ss.srv.track(ss, true)
	handedOver := false
	defer func() {
		if !handedOver {
			ss.srv.track(ss, false)
			ss.exit()
		}
	}()
	defer ss.recoverPanic()
	if ss.direct {
		cfg := ss.srv.cfg.TLS.Clone()
		cfg.NextProtos = []string{"xmpp-client"}
		tc := tls.Server(ss.conn, cfg)
		_ = ss.conn.SetDeadline(time.Now().Add(ss.srv.cfg.HandshakeTimeout))
		if err := tc.Handshake(); err != nil {
			ss.log.Debug("direct TLS handshake failed", "err", err)
			ss.finish()
			return
		}
		_ = ss.conn.SetDeadline(time.Time{})
		ss.wmu.Lock()
		ss.conn = tc
		ss.wmu.Unlock()
		cs := tc.ConnectionState()
		ss.tlsState, ss.secure = &cs, true
	}
	err := ss.negotiate()
	switch {
	case errors.Is(err, errResumed):
		// This connection now belongs to the session it resumed.
		ss.handedOff = true
		if ss.resumed != nil {
			handedOver = true
			ss.srv.track(ss, false)
			go ss.resumed.serveFresh(ss.exit)
		}
	case err != nil:
		ss.fail(err)
		ss.finish()
	default:
		// The stream loop runs on a fresh goroutine: this one's stack grew
		// deep in the TLS handshake and SASL, and a goroutine keeps its
		// stack while it waits, for every idle session.
		handedOver = true
		ss.srv.track(ss, false)
		go ss.serveFresh(ss.exit)
	}
}

// serveFresh serves a bound session on the calling (new) goroutine and then
// runs exit, which releases the connection's slot.
func (ss *session) serveFresh(exit func()) {
	ss.srv.track(ss, true)
	defer exit()
	defer ss.srv.track(ss, false)
	defer ss.recoverPanic()
	ss.serve()
}

// recoverPanic ends a session whose handling panicked, without disturbing
// other sessions.
func (ss *session) recoverPanic() {
	if r := recover(); r != nil {
		ss.log.Error("session panic", "panic", r, "stack", string(debug.Stack()))
		if !ss.handedOff {
			ss.closeWith(streamError(stream.InternalServerError, ""))
			ss.finish()
		}
	}
}

// exit releases what the listener counted for this connection.
func (ss *session) exit() {
	if ss.onExit != nil {
		ss.onExit()
	}
}

// serve runs a bound session's stanza loop; when the connection is lost
// under resumable stream management the session stays bound (detached),
// otherwise it ends.
func (ss *session) serve() {
	err := ss.loop()
	if err == nil {
		ss.finish()
		return
	}
	if _, streamErr := classify(err); !streamErr && !errors.Is(err, errClosed) && ss.detach() {
		return
	}
	ss.fail(err)
	ss.finish()
}

// fail reports err to the peer as the stream error it maps to, if any, and
// closes the stream.
func (ss *session) fail(err error) {
	if se, ok := classify(err); ok {
		ss.log.Debug("stream error", "condition", se.Err, "err", err)
		ss.closeWith(se)
		return
	}
	if !errors.Is(err, errClosed) {
		ss.log.Debug("connection ended", "err", err)
	}
	_ = ss.conn.Close()
}

var errClosed = errors.New("stream closed by peer")

// finish unbinds the session, tells the engine its agent is gone, routes
// unacknowledged messages again, and closes the connection. It runs once.
func (ss *session) finish() {
	ss.finishOnce.Do(func() {
		if ss.full != "" {
			ss.srv.router.remove(ss.full, ss)
			if ss.sm != nil {
				ss.srv.sm.forget(ss.sm.id, ss)
			}
			ss.endRequests()
			for _, f := range ss.srv.endHooks {
				f(Session{ss})
			}
			ctx := context.Background()
			if ss.available {
				ss.sendDirectedUnavailable()
			}
			if err := ss.srv.engine.Disconnect(ctx, ss.agent, nil); err != nil {
				ss.log.Warn("disconnect", "err", err)
			}
			ss.rerouteUnacked()
			ss.log.Info("session ended")
		}
		ss.wmu.Lock()
		ss.closing = true
		ss.kickLocked() // a writer flushes what is queued, then closes
		ss.wmu.Unlock()
		ss.wwg.Wait()
		ss.closeConn()
		close(ss.done)
	})
}

// writeNow writes b synchronously; used before the writer goroutine runs.
func (ss *session) writeNow(b []byte) error {
	ss.traceOut(b)
	_ = ss.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err := ss.conn.Write(b)
	return err
}

// send queues a serialized stanza for the client. It reports false when
// the session is closing or its queue is full; a client that does not read
// its queue is disconnected rather than let it grow. Presence held while
// the client is inactive (XEP-0352) goes out first, so order is kept, and
// with stream management (XEP-0198) the stanza is kept until acknowledged.
func (ss *session) send(b []byte) bool { return ss.out(b, true) }

// sendNonza queues a stream-level element that is not a stanza (XEP-0198
// acks): never held, never counted.
func (ss *session) sendNonza(b []byte) bool { return ss.out(b, false) }

func (ss *session) out(b []byte, stanza bool) bool {
	ss.wmu.Lock()
	ok := ss.outLocked(b, stanza)
	ss.wmu.Unlock()
	return ok
}

// outLocked is out with wmu held: one lock hold per stanza queued.
func (ss *session) outLocked(b []byte, stanza bool) bool {
	if ss.closing {
		return false
	}
	if !ss.writerOn && !ss.detached {
		return ss.writeNow(b) == nil
	}
	if stanza && len(ss.heldOrder) > 0 {
		ss.flushHeldLocked()
	}
	ok := ss.enqueueLocked(b, stanza)
	if ok {
		ss.kickLocked()
	}
	return ok
}

// enqueueLocked adds one element to the writer queue (and, for a stanza
// under stream management, to the unacknowledged list). Called with wmu.
func (ss *session) enqueueLocked(b []byte, stanza bool) bool {
	if stanza && ss.sm != nil {
		if !ss.sm.sent(b) {
			// Too much unacknowledged: the client is not keeping up.
			ss.closing = true
			ss.log.Warn("too many unacknowledged stanzas; disconnecting")
			go ss.closeConn()
			return false
		}
		if ss.detached {
			return true // kept for the resumption or re-routed at timeout
		}
		if ss.sm.wantAck() {
			ss.queue = append(ss.queue, b, smRequest)
			return true
		}
	}
	if ss.detached {
		return !stanza || ss.sm != nil
	}
	if len(ss.queue) >= ss.srv.cfg.SendQueue {
		ss.closing = true
		ss.log.Warn("send queue full; disconnecting slow client")
		go ss.closeConn()
		return false
	}
	ss.queue = append(ss.queue, b)
	return true
}

// closeConn closes the current connection from any goroutine.
func (ss *session) closeConn() {
	ss.wmu.Lock()
	c := ss.conn
	ss.wmu.Unlock()
	_ = c.Close()
}

func (ss *session) isClosing() bool {
	ss.wmu.Lock()
	defer ss.wmu.Unlock()
	return ss.closing
}

// startWriter hands writing over to writer goroutines once the session is
// bound.
func (ss *session) startWriter() {
	ss.wmu.Lock()
	ss.writerOn = true
	ss.kickLocked()
	ss.wmu.Unlock()
}

// kick makes sure a writer runs if there is anything to write.
func (ss *session) kick() {
	ss.wmu.Lock()
	ss.kickLocked()
	ss.wmu.Unlock()
}

// kickLocked starts a writer goroutine when there is something to write
// and none runs. Writers exit once the queue is empty, so an idle session
// has no writer goroutine and no write buffer. Called with wmu held.
func (ss *session) kickLocked() {
	if ss.writerOn && !ss.writing && (len(ss.queue) > 0 || ss.closing) {
		ss.writing = true
		ss.wwg.Add(1)
		go ss.writer()
	}
}

// writeBufs recycles the buffers writers batch queued stanzas into.
var writeBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// writer drains the queue, batching everything queued into one write,
// until the queue is empty (or, when closing, until it is flushed and the
// connection closed).
func (ss *session) writer() {
	defer ss.wwg.Done()
	yielded := false
	for {
		ss.wmu.Lock()
		if !ss.writerOn && !ss.closing {
			// Detached (XEP-0198): the connection is gone.
			ss.writing = false
			ss.wmu.Unlock()
			return
		}
		q := ss.queue
		closing := ss.closing
		if len(q) == 0 && !closing {
			if !yielded {
				// Under load the next stanza is usually a moment away:
				// let its sender run once before giving up the goroutine.
				ss.wmu.Unlock()
				yielded = true
				runtime.Gosched()
				continue
			}
			ss.writing = false
			ss.wmu.Unlock()
			return
		}
		yielded = false
		ss.queue = ss.spare[:0]
		ss.spare = nil
		ss.wmu.Unlock()
		err := ss.write(q)
		clear(q)
		ss.wmu.Lock()
		if cap(q) <= 64 {
			ss.spare = q[:0] // keep a small queue array; drop a large one
		}
		ss.wmu.Unlock()
		if err != nil || closing {
			ss.wmu.Lock()
			if ss.writerOn {
				// Not detached: the stream is over. (A detached session's
				// connection was closed under the writer on purpose.)
				ss.closing = true
				_ = ss.conn.Close()
			}
			ss.writing = false
			ss.wmu.Unlock()
			return
		}
	}
}

// write sends queued elements in one write.
func (ss *session) write(q [][]byte) error {
	for _, b := range q {
		ss.traceOut(b)
	}
	_ = ss.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	if len(q) == 1 {
		_, err := ss.conn.Write(q[0])
		return err
	}
	bp := writeBufs.Get().(*[]byte)
	buf := (*bp)[:0]
	for _, b := range q {
		buf = append(buf, b...)
	}
	_, err := ss.conn.Write(buf)
	if cap(buf) <= 64<<10 {
		*bp = buf[:0]
		writeBufs.Put(bp)
	}
	return err
}

// closeWith sends a stream error and the closing tag, then closes: at once
// before binding, after the queued stanzas once bound (RFC 6120 §4.9.1.1).
func (ss *session) closeWith(se stream.Error) {
	var b []byte
	ss.wmu.Lock()
	if ss.closing {
		ss.wmu.Unlock()
		return
	}
	if ss.streamID == "" {
		// The error answers the initial header: open our stream first.
		ss.streamID = newStreamID()
		b = appendHeader(b, ss.streamID, ss.defaultDomain(), "", "")
	}
	b = appendStreamError(b, se)
	b = append(b, "</stream:stream>"...)
	if ss.writerOn {
		ss.queue = append(ss.queue, b)
		ss.closing = true
		ss.wmu.Unlock()
		ss.kick()
		return
	}
	ss.closing = true
	_ = ss.writeNow(b)
	ss.wmu.Unlock()
	_ = ss.conn.Close()
}

func (ss *session) defaultDomain() string {
	if ss.domain != "" {
		return ss.domain
	}
	return ss.srv.cfg.Domains[0]
}

func newStreamID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// loop reads stanzas until the stream ends: nil when the client closed it,
// else what ended it.
func (ss *session) loop() error {
	ss.startWriter()
	for {
		ss.budget.left = ss.srv.cfg.MaxStanzaSize
		tok, err := ss.dec.Token()
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			el, err := readElement(ss.dec, t, ss.srv.cfg.MaxDepth, ss.nsScope)
			if err != nil {
				return err
			}
			ss.traceIn(el)
			if err := ss.handle(el); err != nil {
				return err
			}
		case xml.EndElement:
			// The client closed its stream (RFC 6120 §4.4): close ours.
			ss.wmu.Lock()
			if !ss.closing {
				ss.queue = append(ss.queue, []byte("</stream:stream>"))
				ss.closing = true
			}
			ss.wmu.Unlock()
			ss.kick()
			return nil
		case xml.CharData:
			if !isSpace(t) {
				return streamError(stream.BadFormat, "text at stream level")
			}
		default:
			return errRestricted
		}
	}
}

func isSpace(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			return false
		}
	}
	return true
}

// bareString is the session's bare JID as a string.
func (ss *session) bareString() string { return string(ss.bare) }

func escAttr(s string) string { return string(appendEscaped(nil, s, true)) }

// logStanza returns a logger carrying the session's JID and a stanza id.
func (ss *session) logStanza(id string) *slog.Logger {
	return ss.log.With("stanza", id)
}
