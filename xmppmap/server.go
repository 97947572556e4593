// Package xmppmap maps XMPP (RFC 6120, RFC 6121) onto the RFC 2778 engine
// of package core: it owns client streams (TLS, SASL, binding), turns
// presence stanzas into tuples, roster subscriptions into core
// subscriptions and message stanzas into instant messages, and implements
// core.Notifier to carry the engine's effects back onto the wire.
//
// It is the only package tree that imports mellium.im/xmpp.
package xmppmap

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/stream"

	"github.com/imppd/imppd/core"
	"github.com/imppd/imppd/rosters"
	"github.com/imppd/imppd/xmppmap/scram"
)

// Config is what the stream layer needs from the administrator's
// configuration.
type Config struct {
	Domains          []string
	TLS              *tls.Config // with the server certificate
	RequireTLS       bool
	AllowPlain       bool
	ResourceConflict string // "replace" or "refuse"
	MaxStanzaSize    int
	MaxPreauthSize   int
	MaxDepth         int
	MaxConnections   int
	MaxConnsPerIP    int
	HandshakeTimeout time.Duration
	IdleTimeout      time.Duration
	PingTimeout      time.Duration
	SendQueue        int
	ResumeTimeout    time.Duration // XEP-0198: how long a dropped session waits

	ScramIterations       int // of stored credentials, shown to unknown users too
	MaxFailuresPerStream  int
	MaxFailuresPerIP      int
	MaxFailuresPerAccount int
	FailureWindow         time.Duration

	TraceAll      bool
	TraceAccounts []string

	// Admins are the bare JIDs with administrative rights.
	Admins []string
	// DisabledXEPs switches off built-in extensions by number
	// (XEP-0198 stream management, XEP-0352 client state indication).
	DisabledXEPs []int
}

// Accounts is the part of the account store the stream layer reads.
type Accounts interface {
	Account(ctx context.Context, id core.PrincipalID) (core.Account, error)
}

// Server accepts client connections and routes their stanzas through the
// core engine.
type Server struct {
	cfg      Config
	domains  map[string]bool
	engine   *core.Engine
	rosters  *rosters.Service
	accounts Accounts
	log      *slog.Logger
	certDER  []byte
	decoy    core.Credentials // PLAIN's stand-in for unknown users
	trace    map[core.PrincipalID]bool

	router          router
	throttle        *throttle
	handlers        map[iqKey]iqHandlerFunc
	xeps            []XEP
	msgHooks        []func(*MessageEvent)
	preHooks        []func(*MessageEvent)
	endHooks        []func(Session)
	presHooks       []func(*PresenceEvent)
	subHooks        []func(core.Subscription, core.Effect)
	stopHooks       []func()
	routeFilters    []func(*RouteEvent) *StanzaError
	nonzas          map[nonzaKey]func(*session, *Element) error
	sm              smRegistry
	preauth         map[nonzaKey]func(*PreAuthIQ)
	preauthFeatures []string
	streamFeatures  []string // offered with bind, after authentication
	admins          map[core.PrincipalID]bool

	mu        sync.Mutex
	perIP     map[string]int
	total     int
	listeners []net.Listener
	sessions  map[*session]struct{}
	closing   atomic.Bool
	wg        sync.WaitGroup
}

// New returns a server; it serves once Listen is called.
func New(cfg Config, engine *core.Engine, ros *rosters.Service, accounts Accounts, log *slog.Logger) (*Server, error) {
	if len(cfg.Domains) == 0 {
		return nil, errors.New("xmppmap: no domains")
	}
	if cfg.TLS == nil && cfg.RequireTLS {
		return nil, errors.New("xmppmap: TLS required but no certificate")
	}
	defaults(&cfg)
	s := &Server{
		cfg: cfg, engine: engine, rosters: ros, accounts: accounts, log: log,
		domains:  make(map[string]bool),
		perIP:    make(map[string]int),
		sessions: make(map[*session]struct{}),
		trace:    make(map[core.PrincipalID]bool),
		throttle: newThrottle(cfg.MaxFailuresPerIP, cfg.MaxFailuresPerAccount, cfg.FailureWindow),
		handlers: make(map[iqKey]iqHandlerFunc),
		nonzas:   make(map[nonzaKey]func(*session, *Element) error),
		preauth:  make(map[nonzaKey]func(*PreAuthIQ)),
	}
	s.registerBuiltins()
	for _, d := range cfg.Domains {
		s.domains[d] = true
	}
	s.admins = make(map[core.PrincipalID]bool)
	for _, a := range cfg.Admins {
		s.admins[core.PrincipalID(a)] = true
	}
	for _, a := range cfg.TraceAccounts {
		s.trace[core.PrincipalID(a)] = true
	}
	if cfg.TLS != nil && len(cfg.TLS.Certificates) > 0 && len(cfg.TLS.Certificates[0].Certificate) > 0 {
		s.certDER = cfg.TLS.Certificates[0].Certificate[0]
	}
	s.router.init()
	var err error
	if s.decoy, err = scram.Derive(scram.SHA256, newStreamID(), []byte(newStreamID()), cfg.ScramIterations); err != nil {
		return nil, fmt.Errorf("xmppmap: %w", err)
	}
	engine.SetNotifier(s)
	if ros != nil {
		ros.SetPusher(s)
	}
	return s, nil
}

func defaults(c *Config) {
	set := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	set(&c.MaxStanzaSize, 256<<10)
	set(&c.MaxPreauthSize, 10<<10)
	set(&c.MaxDepth, 64)
	set(&c.MaxConnections, 10000)
	set(&c.MaxConnsPerIP, 64)
	set(&c.SendQueue, 1024)
	set(&c.MaxFailuresPerStream, 3)
	set(&c.ScramIterations, 10000)
	set(&c.MaxFailuresPerIP, 20)
	set(&c.MaxFailuresPerAccount, 10)
	setD := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	setD(&c.HandshakeTimeout, time.Minute)
	setD(&c.IdleTimeout, 5*time.Minute)
	setD(&c.PingTimeout, time.Minute)
	setD(&c.FailureWindow, 5*time.Minute)
	setD(&c.ResumeTimeout, 5*time.Minute)
	if c.ResourceConflict == "" {
		c.ResourceConflict = "replace"
	}
}

// Listen starts accepting on addr; direct selects XEP-0368 direct TLS
// instead of STARTTLS. It returns the address actually bound.
func (s *Server) Listen(addr string, direct bool) (net.Addr, error) {
	if direct && s.cfg.TLS == nil {
		return nil, errors.New("xmppmap: direct TLS needs a certificate")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("xmppmap: listen %s: %w", addr, err)
	}
	s.mu.Lock()
	s.listeners = append(s.listeners, ln)
	s.mu.Unlock()
	s.wg.Add(1)
	go s.accept(ln, direct)
	return ln.Addr(), nil
}

func (s *Server) accept(ln net.Listener, direct bool) {
	defer s.wg.Done()
	var delay time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			if s.closing.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off, keep serving.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.log.Warn("accept failed", "err", err, "retry_in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		ip := remoteIP(conn)
		if !s.admit(ip) {
			// RFC 6120 §4.9.3.14 policy-violation; the peer learns why.
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.refuse(conn, direct)
				s.release(ip)
			}()
			continue
		}
		s.wg.Add(1)
		go newSession(s, conn, direct, func() {
			s.release(ip)
			s.wg.Done()
		}).run()
	}
}

// admit counts a new connection; false when a limit is reached (the
// connection is counted anyway and must be released).
func (s *Server) admit(ip string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.perIP[ip]++
	s.total++
	return s.perIP[ip] <= s.cfg.MaxConnsPerIP && s.total <= s.cfg.MaxConnections
}

func (s *Server) release(ip string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.total--
	if s.perIP[ip]--; s.perIP[ip] <= 0 {
		delete(s.perIP, ip)
	}
}

func remoteIP(c net.Conn) string {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	return c.RemoteAddr().String()
}

// Shutdown stops accepting, sends system-shutdown to every session
// (RFC 6120 §4.9.3.17), flushes their queues and waits for them to end or
// for ctx to expire.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closing.Store(true)
	s.mu.Lock()
	for _, ln := range s.listeners {
		_ = ln.Close()
	}
	sessions := make([]*session, 0, len(s.sessions))
	for ss := range s.sessions {
		sessions = append(sessions, ss)
	}
	s.mu.Unlock()
	for _, ss := range sessions {
		ss.closeWith(streamError(systemShutdown, "the server is shutting down"))
	}
	// Sessions waiting for a resumption end now; their unacknowledged
	// messages go to offline storage.
	for _, ss := range s.sm.all() {
		ss.endDetached()
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	defer func() {
		for _, f := range s.stopHooks {
			f()
		}
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for ss := range s.sessions {
			ss.closeConn()
		}
		s.mu.Unlock()
		return ctx.Err()
	}
}

func (s *Server) track(ss *session, on bool) {
	s.mu.Lock()
	if on {
		s.sessions[ss] = struct{}{}
	} else {
		delete(s.sessions, ss)
	}
	s.mu.Unlock()
}

// OnlineCount returns the number of bound sessions.
func (s *Server) OnlineCount() int { return s.router.count() }

// refuse tells a connection over the limits why it is turned away
// (RFC 6120 §4.9.3.14 policy-violation) and closes it.
func (s *Server) refuse(conn net.Conn, direct bool) {
	defer conn.Close()
	if direct {
		return // no TLS session to speak in; a closed socket says enough
	}
	_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	b := appendHeader(nil, newStreamID(), s.cfg.Domains[0], "", "")
	b = appendStreamError(b, streamError(stream.PolicyViolation, "too many connections"))
	_, _ = conn.Write(append(b, "</stream:stream>"...))
}

// handle registers the handler for IQ requests with payload space/local
// addressed to target tt.
func (s *Server) handle(tt target, space, local string, h iqHandlerFunc) {
	s.handlers[iqKey{tt, space, local}] = h
}

func (s *Server) registerBuiltins() {
	// RFC 3921 §3 session establishment, kept for old clients: a no-op.
	s.handle(toServer, nsSession, "session", func(ss *session, iq, _ *Element) { ss.send(iqResult(iq, ss.domain, "")) })
	s.handle(toSelf, nsSession, "session", func(ss *session, iq, _ *Element) { ss.send(iqResult(iq, "", "")) })
	s.handle(toSelf, nsRoster, "query", handleRoster)
	s.xeps = append(s.xeps, builtinXEPs...)
	if !slices.Contains(s.cfg.DisabledXEPs, 352) {
		s.registerCSI()
	}
	if !slices.Contains(s.cfg.DisabledXEPs, 198) {
		s.registerSM()
	}
}

// nonzaKey names a top-level element that is not a stanza.
type nonzaKey struct{ space, local string }
