package e2e

import (
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
	"mellium.im/xmpp/stream"

	"github.com/imppd/imppd/e2e/internal/xmltest"
)

// SASL mechanism names the Go client can use.
const (
	ScramSha256Plus = "SCRAM-SHA-256-PLUS"
	ScramSha256     = "SCRAM-SHA-256"
	ScramSha1Plus   = "SCRAM-SHA-1-PLUS"
	ScramSha1       = "SCRAM-SHA-1"
	Plain           = "PLAIN"
)

// Mechanism returns mellium's client side of a SASL mechanism by name.
func Mechanism(name string) (sasl.Mechanism, bool) { return xmltest.Mechanism(name) }

// ClientOptions say how a Client connects and authenticates.
type ClientOptions struct {
	JID       string // user@domain, or user@domain/resource to ask for that resource
	Password  string
	Mechanism string // SASL mechanism; default SCRAM-SHA-256-PLUS
	DirectTLS bool   // XEP-0368 direct TLS (ALPN xmpp-client) instead of STARTTLS
	// TLS, if set, is cloned and completed with the server's CA and the
	// domain as ServerName (unless set); e.g. to pin a TLS version.
	TLS     *tls.Config
	Timeout time.Duration // for the whole negotiation; default IOTimeout
}

// Client is a negotiated c2s session of mellium.im/xmpp. Once bound, a
// goroutine decodes every incoming top-level element onto a channel;
// stanzas are sent as raw XML.
type Client struct {
	t       testing.TB
	JID     jid.JID // the full JID the server bound
	Session *xmpp.Session
	TLS     tls.ConnectionState
	conn    net.Conn // the TCP connection

	wmu sync.Mutex // serializes writes

	in     chan *Element
	done   chan struct{} // closed when the reader stops
	endErr error         // why the reader stopped; read after done

	ids atomic.Uint64
}

// Connect dials the server and negotiates TLS, SASL and resource binding.
// The returned error is mellium's (a SASL failure, a stanza error from
// bind, a stream error...). The client is closed when the test ends.
func (s *Server) Connect(t testing.TB, o ClientOptions) (*Client, error) {
	t.Helper()
	full, err := jid.Parse(o.JID)
	if err != nil {
		return nil, fmt.Errorf("client JID %q: %w", o.JID, err)
	}
	// mellium sends the origin as 'from' in the stream header and insists
	// that the server's 'to' repeats it; RFC 6120 §4.7.2 has the server
	// answer with the bare JID, so the origin is the bare JID and the
	// resource is asked for by our own bind feature.
	origin := full.Bare()
	if o.Mechanism == "" {
		o.Mechanism = ScramSha256Plus
	}
	mech, ok := Mechanism(o.Mechanism)
	if !ok {
		return nil, fmt.Errorf("unknown SASL mechanism %q", o.Mechanism)
	}
	if o.Timeout == 0 {
		o.Timeout = IOTimeout
	}
	tc := &tls.Config{}
	if o.TLS != nil {
		tc = o.TLS.Clone()
	}
	if tc.RootCAs == nil {
		tc.RootCAs = s.CAPool
	}
	if tc.ServerName == "" {
		tc.ServerName = origin.Domainpart()
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.Timeout)
	defer cancel()

	var d net.Dialer
	var conn net.Conn
	var rw net.Conn
	features := []xmpp.StreamFeature{}
	if o.DirectTLS {
		raw, err := d.DialContext(ctx, "tcp", s.DirectTLSAddr)
		if err != nil {
			return nil, err
		}
		tc.NextProtos = []string{"xmpp-client"}
		c := tls.Client(raw, tc)
		if err := c.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, fmt.Errorf("direct TLS handshake: %w", err)
		}
		conn, rw = raw, c
	} else {
		raw, err := d.DialContext(ctx, "tcp", s.Addr)
		if err != nil {
			return nil, err
		}
		conn, rw = raw, raw
		features = append(features, xmpp.StartTLS(tc))
	}
	var bound jid.JID
	features = append(features, xmpp.SASL("", o.Password, mech), bindResource(full.Resourcepart(), &bound))
	sess, err := xmpp.NewClientSession(ctx, origin, rw, features...)
	if err != nil {
		conn.Close()
		return nil, err
	}
	c := &Client{
		t: t, JID: bound, Session: sess, TLS: sess.ConnectionState(), conn: conn,
		in:   make(chan *Element, 4096),
		done: make(chan struct{}),
	}
	go c.read()
	t.Cleanup(c.Close)
	return c, nil
}

// Login connects as user with the default options (STARTTLS,
// SCRAM-SHA-256-PLUS) and fails the test if it cannot.
func (s *Server) Login(t testing.TB, user, password string) *Client {
	t.Helper()
	return s.LoginWith(t, ClientOptions{JID: user, Password: password})
}

// LoginWith connects with o and fails the test if it cannot.
func (s *Server) LoginWith(t testing.TB, o ClientOptions) *Client {
	t.Helper()
	c, err := s.Connect(t, o)
	if err != nil {
		t.Fatalf("login as %s (%s, direct TLS %t): %v", o.JID, o.Mechanism, o.DirectTLS, err)
	}
	return c
}

// read decodes top-level elements until the stream ends. mellium's token
// reader turns <stream:error/> into a stream.Error and </stream:stream>
// into io.EOF.
func (c *Client) read() {
	defer close(c.done)
	defer close(c.in)
	r := c.Session.TokenReader()
	defer r.Close()
	for {
		tok, err := r.Token()
		if err != nil {
			c.endErr = err
			return
		}
		start, ok := tok.(xml.StartElement)
		if !ok {
			continue // whitespace keepalives
		}
		el, err := ReadElement(r, start.Copy())
		if err != nil {
			c.endErr = err
			return
		}
		c.in <- el
	}
}

// Send writes raw XML (one or more top-level elements) to the stream.
func (c *Client) Send(rawXML string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	conn := c.Session.Conn()
	_ = conn.SetWriteDeadline(time.Now().Add(IOTimeout))
	_, err := conn.Write([]byte(rawXML))
	_ = conn.SetWriteDeadline(time.Time{})
	return err
}

// MustSend is Send failing the test on error.
func (c *Client) MustSend(rawXML string) {
	c.t.Helper()
	if err := c.Send(rawXML); err != nil {
		c.t.Fatalf("%s: send: %v", c.JID, err)
	}
}

// Sendf formats and sends raw XML; use Esc for the arguments.
func (c *Client) Sendf(format string, args ...any) {
	c.t.Helper()
	c.MustSend(fmt.Sprintf(format, args...))
}

// NewID returns an id unique within this client.
func (c *Client) NewID(prefix string) string {
	return prefix + "-" + strconv.FormatUint(c.ids.Add(1), 10)
}

// ErrTimeout is returned by Next when nothing arrived in time.
var ErrTimeout = errors.New("e2e: timed out")

// Next returns the next incoming element. When the stream has ended it
// returns the reason: a stream.Error for a stream error, io.EOF for a
// closed stream, or the connection's error.
func (c *Client) Next(timeout time.Duration) (*Element, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case el, ok := <-c.in:
		if !ok {
			return nil, c.endErr
		}
		return el, nil
	case <-timer.C:
		return nil, ErrTimeout
	}
}

// MustNext is Next failing the test on error.
func (c *Client) MustNext(timeout time.Duration) *Element {
	c.t.Helper()
	el, err := c.Next(timeout)
	if err != nil {
		c.t.Fatalf("%s: waiting for the next stanza: %v", c.JID, err)
	}
	return el
}

// Expect returns the first incoming element matching pred, skipping (and
// logging) others; it fails the test after timeout or if the stream ends.
func (c *Client) Expect(timeout time.Duration, what string, pred func(*Element) bool) *Element {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		el, err := c.Next(time.Until(deadline))
		if err != nil {
			c.t.Fatalf("%s: waiting for %s: %v", c.JID, what, err)
		}
		if pred(el) {
			return el
		}
		c.t.Logf("%s: skipped while waiting for %s: %s", c.JID, what, el)
	}
}

// IQ sends an IQ request (raw XML whose id is id) and returns the result
// or error with that id.
func (c *Client) IQ(id, rawXML string) *Element {
	c.t.Helper()
	c.MustSend(rawXML)
	return c.Expect(IOTimeout, "the response to IQ "+id, func(e *Element) bool {
		return e.Is(NSClient, "iq") && e.Get("id") == id && (e.Get("type") == "result" || e.Get("type") == "error")
	})
}

// Ended is closed once the incoming stream has ended and every element
// before the end has been taken with Next.
func (c *Client) Ended() <-chan struct{} { return c.done }

// WaitEnd skips incoming elements until the stream ends and returns why
// (see Next); ErrTimeout if it has not ended within timeout.
func (c *Client) WaitEnd(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		el, err := c.Next(time.Until(deadline))
		if err != nil {
			return err
		}
		c.t.Logf("%s: skipped while waiting for the end of the stream: %s", c.JID, el)
	}
}

// StreamErrorCondition waits for the stream to end and returns the stream
// error condition it ended with ("" if it ended without one).
func (c *Client) StreamErrorCondition(timeout time.Duration) (string, error) {
	err := c.WaitEnd(timeout)
	var se stream.Error
	if errors.As(err, &se) {
		return se.Err, nil
	}
	if errors.Is(err, ErrTimeout) {
		return "", err
	}
	return "", nil
}

// Close ends the stream politely (</stream:stream>), waits briefly for the
// server to close its side, and closes the connection.
func (c *Client) Close() {
	c.wmu.Lock()
	_ = c.Session.Conn().SetWriteDeadline(time.Now().Add(time.Second))
	_ = c.Session.Close()
	c.wmu.Unlock()
	select {
	case <-c.done:
	case <-time.After(2 * time.Second):
	}
	_ = c.conn.Close()
	// Drain what the reader left so it can finish.
	go func() {
		for range c.in {
		}
	}()
}

// bindResource is the client side of resource binding (RFC 6120 §7)
// asking for resource ("" lets the server choose); it stores the bound JID
// in *bound. A bind error is returned as a *stanza.Error.
func bindResource(resource string, bound *jid.JID) xmpp.StreamFeature {
	return xmpp.StreamFeature{
		Name:       xml.Name{Space: NSBind, Local: "bind"},
		Necessary:  xmpp.Authn,
		Prohibited: xmpp.Ready,
		Parse: func(ctx context.Context, d *xml.Decoder, start *xml.StartElement) (bool, interface{}, error) {
			return true, nil, d.Skip()
		},
		Negotiate: func(ctx context.Context, session *xmpp.Session, data interface{}) (xmpp.SessionState, io.ReadWriter, error) {
			res := ""
			if resource != "" {
				res = "<resource>" + Esc(resource) + "</resource>"
			}
			conn := session.Conn()
			if _, err := conn.Write([]byte("<iq type='set' id='e2e-bind'><bind xmlns='" + NSBind + "'>" + res + "</bind></iq>")); err != nil {
				return 0, nil, err
			}
			r := session.TokenReader()
			defer r.Close()
			var el *Element
			for el == nil {
				tok, err := r.Token()
				if err != nil {
					return 0, nil, err
				}
				if start, ok := tok.(xml.StartElement); ok {
					if el, err = ReadElement(r, start.Copy()); err != nil {
						return 0, nil, err
					}
				}
			}
			if !el.Is(NSClient, "iq") || el.Get("id") != "e2e-bind" {
				return 0, nil, fmt.Errorf("bind: unexpected answer %s", el)
			}
			if typ, cond, ok := el.StanzaError(); ok || el.Get("type") == "error" {
				return 0, nil, &stanza.Error{Type: stanza.ErrorType(typ), Condition: stanza.Condition(cond)}
			}
			j, err := jid.Parse(strings.TrimSpace(el.Child(NSBind, "bind").Child(NSBind, "jid").Text))
			if el.Get("type") != "result" || err != nil {
				return 0, nil, fmt.Errorf("bind: bad result %s (%v)", el, err)
			}
			*bound = j
			return xmpp.Ready, nil, nil
		},
	}
}
