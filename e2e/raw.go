package e2e

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"mellium.im/sasl"
)

// Raw is a client socket driven by hand: for bad input and for checks of
// exactly what is on the wire. Its negotiation helpers read the socket one
// byte at a time, so nothing is read ahead of what they consume (a TLS
// handshake can follow <proceed/>, and ReadAll sees every byte after).
type Raw struct {
	t      testing.TB
	srv    *Server
	Domain string
	Conn   net.Conn // the TCP connection, or the TLS connection over it
	tcp    net.Conn

	dec      *xml.Decoder
	received bytes.Buffer // everything read so far, for failure messages
	Features *Element     // of the last stream (re)start
	Header   xml.StartElement
}

// DialRaw opens a TCP connection to the server's STARTTLS listener. The
// connection is closed when the test ends.
func (s *Server) DialRaw(t testing.TB) *Raw {
	t.Helper()
	c, err := net.DialTimeout("tcp", s.Addr, IOTimeout)
	if err != nil {
		t.Fatalf("dial %s: %v", s.Addr, err)
	}
	r := &Raw{t: t, srv: s, Domain: s.Domain, Conn: c, tcp: c}
	t.Cleanup(func() { _ = r.tcp.Close() })
	return r
}

// DialRawDirectTLS connects to the direct TLS listener (ALPN xmpp-client)
// and completes the TLS handshake.
func (s *Server) DialRawDirectTLS(t testing.TB) *Raw {
	t.Helper()
	r := s.DialRaw(t)
	c, err := net.DialTimeout("tcp", s.DirectTLSAddr, IOTimeout)
	if err != nil {
		t.Fatalf("dial %s: %v", s.DirectTLSAddr, err)
	}
	_ = r.tcp.Close()
	r.tcp, r.Conn = c, c
	t.Cleanup(func() { _ = c.Close() })
	r.handshake([]string{"xmpp-client"})
	return r
}

func (r *Raw) handshake(alpn []string) {
	r.t.Helper()
	tc := tls.Client(r.Conn, &tls.Config{RootCAs: r.srv.CAPool, ServerName: r.Domain, NextProtos: alpn})
	_ = tc.SetDeadline(time.Now().Add(IOTimeout))
	if err := tc.Handshake(); err != nil {
		r.t.Fatalf("TLS handshake: %v", err)
	}
	_ = tc.SetDeadline(time.Time{})
	r.Conn = tc
	r.dec = nil
}

// TLSState returns the TLS connection state (zero before TLS).
func (r *Raw) TLSState() (tls.ConnectionState, bool) {
	if tc, ok := r.Conn.(*tls.Conn); ok {
		return tc.ConnectionState(), true
	}
	return tls.ConnectionState{}, false
}

// Write sends bytes as they are.
func (r *Raw) Write(b []byte) error {
	_ = r.Conn.SetWriteDeadline(time.Now().Add(IOTimeout))
	_, err := r.Conn.Write(b)
	return err
}

// MustWrite sends s and fails the test on error.
func (r *Raw) MustWrite(s string) {
	r.t.Helper()
	if err := r.Write([]byte(s)); err != nil {
		r.t.Fatalf("raw write: %v", err)
	}
}

// StreamHeader is a well-formed client stream header to domain.
func StreamHeader(domain string) string {
	return "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='" +
		Esc(domain) + "' version='1.0' xml:lang='en'>"
}

// byteReader reads the connection one byte at a time, recording it.
type byteReader struct{ r *Raw }

func (b byteReader) ReadByte() (byte, error) {
	var p [1]byte
	for {
		n, err := b.r.Conn.Read(p[:])
		if n == 1 {
			b.r.received.WriteByte(p[0])
			return p[0], nil
		}
		if err != nil {
			return 0, err
		}
	}
}

func (b byteReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c, err := b.ReadByte()
	if err != nil {
		return 0, err
	}
	p[0] = c
	return 1, nil
}

// Open sends a stream header and reads the server's header and features.
func (r *Raw) Open() *Element {
	r.t.Helper()
	r.MustWrite(StreamHeader(r.Domain))
	return r.ReadOpen()
}

// ReadOpen reads the server's stream header and <stream:features/>.
func (r *Raw) ReadOpen() *Element {
	r.t.Helper()
	r.dec = xml.NewDecoder(byteReader{r})
	_ = r.Conn.SetReadDeadline(time.Now().Add(IOTimeout))
	defer func() { _ = r.Conn.SetReadDeadline(time.Time{}) }()
	for {
		tok, err := r.dec.Token()
		if err != nil {
			r.t.Fatalf("reading the server's stream header: %v\nreceived: %s", err, r.received.String())
		}
		if st, ok := tok.(xml.StartElement); ok {
			if !(st.Name.Space == NSStream && st.Name.Local == "stream") {
				r.t.Fatalf("expected a stream header, got <%s xmlns='%s'>\nreceived: %s", st.Name.Local, st.Name.Space, r.received.String())
			}
			r.Header = st.Copy()
			break
		}
	}
	f := r.MustNext()
	if !f.Is(NSStream, "features") {
		r.t.Fatalf("expected <stream:features/>, got %s", f)
	}
	r.Features = f
	return f
}

// Next reads the next top-level element of the current stream.
func (r *Raw) Next() (*Element, error) {
	if r.dec == nil {
		return nil, errors.New("raw: no stream open")
	}
	_ = r.Conn.SetReadDeadline(time.Now().Add(IOTimeout))
	defer func() { _ = r.Conn.SetReadDeadline(time.Time{}) }()
	for {
		tok, err := r.dec.Token()
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			return ReadElement(r.dec, t.Copy())
		case xml.EndElement:
			return nil, io.EOF // </stream:stream>
		}
	}
}

// MustNext is Next failing the test on error.
func (r *Raw) MustNext() *Element {
	r.t.Helper()
	el, err := r.Next()
	if err != nil {
		r.t.Fatalf("raw read: %v\nreceived: %s", err, r.received.String())
	}
	return el
}

// Mechanisms lists the SASL mechanisms in the last features.
func (r *Raw) Mechanisms() []string {
	return Mechanisms(r.Features)
}

// Mechanisms lists the SASL mechanisms offered in a <stream:features/>.
func Mechanisms(features *Element) []string {
	var out []string
	if m := features.Child(NSSASL, "mechanisms"); m != nil {
		for _, c := range m.Children {
			if c.Is(NSSASL, "mechanism") {
				out = append(out, strings.TrimSpace(c.Text))
			}
		}
	}
	return out
}

// StartTLS negotiates STARTTLS on an opened stream and opens the stream
// again over TLS.
func (r *Raw) StartTLS() *Element {
	r.t.Helper()
	r.MustWrite("<starttls xmlns='" + NSTLS + "'/>")
	if p := r.MustNext(); !p.Is(NSTLS, "proceed") {
		r.t.Fatalf("expected <proceed/>, got %s", p)
	}
	r.handshake(nil)
	return r.Open()
}

// Auth runs one SASL exchange with mellium's client side of mech. On
// success it restarts the stream (reading the new features) and returns
// ""; on failure it returns the <failure/> condition.
func (r *Raw) Auth(mech, user, password string) string {
	r.t.Helper()
	cond, err := r.TryAuth(mech, user, password)
	if err != nil {
		r.t.Fatalf("SASL %s: %v", mech, err)
	}
	return cond
}

// TryAuth is Auth returning protocol surprises as errors.
func (r *Raw) TryAuth(mech, user, password string) (string, error) {
	m, ok := Mechanism(mech)
	if !ok {
		return "", fmt.Errorf("unknown mechanism %s", mech)
	}
	opts := []sasl.Option{
		sasl.Credentials(func() ([]byte, []byte, []byte) { return []byte(user), []byte(password), nil }),
		sasl.RemoteMechanisms(r.Mechanisms()...),
	}
	if st, ok := r.TLSState(); ok {
		opts = append(opts, sasl.TLSState(st))
	}
	client := sasl.NewClient(m, opts...)
	more, resp, err := client.Step(nil)
	if err != nil {
		return "", err
	}
	if err := r.Write([]byte("<auth xmlns='" + NSSASL + "' mechanism='" + mech + "'>" + b64(resp) + "</auth>")); err != nil {
		return "", err
	}
	for {
		el, err := r.Next()
		if err != nil {
			return "", fmt.Errorf("reading the SASL answer: %w (received: %s)", err, r.received.String())
		}
		switch {
		case el.Is(NSSASL, "failure"):
			for _, c := range el.Children {
				if c.Name.Local != "text" {
					return c.Name.Local, nil
				}
			}
			return "", fmt.Errorf("failure without a condition: %s", el)
		case el.Is(NSSASL, "challenge"), el.Is(NSSASL, "success"):
			data, err := unb64(el.Text)
			if err != nil {
				return "", fmt.Errorf("bad base64 in %s: %w", el, err)
			}
			success := el.Name.Local == "success"
			if more || (success && len(data) > 0) {
				more, resp, err = client.Step(data)
				if err != nil {
					return "", fmt.Errorf("client step on %s: %w", el, err)
				}
			}
			if success {
				if more {
					return "", fmt.Errorf("success before the mechanism finished: %s", el)
				}
				r.Open()
				return "", nil
			}
			if err := r.Write([]byte("<response xmlns='" + NSSASL + "'>" + b64(resp) + "</response>")); err != nil {
				return "", err
			}
		default:
			return "", fmt.Errorf("unexpected element during SASL: %s", el)
		}
	}
}

func b64(b []byte) string {
	if len(b) == 0 {
		return "="
	}
	return base64.StdEncoding.EncodeToString(b)
}

func unb64(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "=" {
		return nil, nil
	}
	return base64.StdEncoding.DecodeString(s)
}

// Bind binds resource ("" lets the server choose) and returns the full JID.
func (r *Raw) Bind(resource string) string {
	r.t.Helper()
	res := ""
	if resource != "" {
		res = "<resource>" + Esc(resource) + "</resource>"
	}
	r.MustWrite("<iq type='set' id='raw-bind'><bind xmlns='" + NSBind + "'>" + res + "</bind></iq>")
	el := r.MustNext()
	j := el.Child(NSBind, "bind").Child(NSBind, "jid")
	if !el.Is(NSClient, "iq") || el.Get("type") != "result" || j == nil {
		r.t.Fatalf("bind failed: %s", el)
	}
	return j.Text
}

// Login opens the stream, starts TLS (unless already on TLS), authenticates
// with SCRAM-SHA-256-PLUS and binds resource. It returns the bound JID.
func (r *Raw) Login(user, password, resource string) string {
	r.t.Helper()
	if _, ok := r.TLSState(); ok {
		r.Open()
	} else {
		r.Open()
		r.StartTLS()
	}
	if cond := r.Auth(ScramSha256Plus, user, password); cond != "" {
		r.t.Fatalf("SASL as %s failed: %s", user, cond)
	}
	return r.Bind(resource)
}

// ReadAll reads until the server closes the connection or sends
// </stream:stream>, or timeout passes, and returns what it read from the
// current position on (bytes already consumed by Open, Next and the like
// are not included). A connection reset counts as a close.
func (r *Raw) ReadAll(timeout time.Duration) ([]byte, error) {
	var out []byte
	deadline := time.Now().Add(timeout)
	_ = r.Conn.SetReadDeadline(deadline)
	defer func() { _ = r.Conn.SetReadDeadline(time.Time{}) }()
	buf := make([]byte, 4096)
	for {
		n, err := r.Conn.Read(buf)
		out = append(out, buf[:n]...)
		r.received.Write(buf[:n])
		if bytes.Contains(out, []byte("</stream:stream>")) {
			return out, nil
		}
		if err != nil {
			var ne net.Error
			switch {
			case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET), errors.Is(err, net.ErrClosed):
				return out, nil
			case errors.As(err, &ne) && ne.Timeout():
				return out, fmt.Errorf("%w: the server neither closed the stream nor the connection within %v", ErrTimeout, timeout)
			}
			return out, err
		}
	}
}

// Received returns everything read from the connection so far.
func (r *Raw) Received() string { return r.received.String() }

// Close closes the connection.
func (r *Raw) Close() { _ = r.Conn.Close() }

// StreamError is what a server sent when closing a stream with an error.
type StreamError struct {
	Condition string // the defined condition, e.g. "policy-violation"; "" when none
	Text      string
	Header    bool // the data opened a stream (the server's header) before the error
	Closed    bool // </stream:stream> followed the error
}

// ParseStreamError finds the <stream:error/> in data (a server's output,
// from its stream header on or from somewhere inside the stream) and
// returns its condition: the child element in
// urn:ietf:params:xml:ns:xmpp-streams other than <text/>. ok is false when
// data holds no stream error.
func ParseStreamError(data []byte) (se StreamError, ok bool) {
	se, ok = parseStreamError(data)
	if !se.Header {
		// Data from inside a stream: give it the header it lacks, so that
		// the prefix resolves and </stream:stream> matches.
		se, ok = parseStreamError(append([]byte("<stream:stream xmlns='"+NSClient+"' xmlns:stream='"+NSStream+"'>"), data...))
		se.Header = false
	}
	return se, ok
}

func parseStreamError(data []byte) (se StreamError, ok bool) {
	d := xml.NewDecoder(bytes.NewReader(data))
	depth := 0
	for {
		tok, err := d.Token()
		if err != nil {
			return se, ok
		}
		switch t := tok.(type) {
		case xml.StartElement:
			isStreamNS := t.Name.Space == NSStream
			switch {
			case isStreamNS && t.Name.Local == "stream":
				se.Header = true
				continue // its children are at depth 0 from here
			case isStreamNS && t.Name.Local == "error" && depth == 0:
				el, err := ReadElement(d, t.Copy())
				if err != nil {
					return se, ok
				}
				ok = true
				for _, c := range el.ChildrenIn(NSStreams) {
					if c.Name.Local == "text" {
						se.Text = c.Text
					} else if se.Condition == "" {
						se.Condition = c.Name.Local
					}
				}
				continue
			}
			depth++
		case xml.EndElement:
			if t.Name.Space == NSStream && t.Name.Local == "stream" {
				if ok {
					se.Closed = true
				}
				return se, ok
			}
			depth--
		}
	}
}
