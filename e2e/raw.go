package e2e

import (
	"bytes"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/imppd/imppd/e2e/internal/xmltest"
)

// Raw is a client socket driven by hand: for bad input and for checks of
// exactly what is on the wire. Its stream (xmltest.Stream) reads the socket
// one byte at a time, so nothing is read ahead of what it consumes (a TLS
// handshake can follow <proceed/>, and ReadAll sees every byte after).
// Its Must methods fail the test on error.
type Raw struct {
	*xmltest.Stream
	t   testing.TB
	srv *Server
}

// DialRaw opens a TCP connection to the server's STARTTLS listener. The
// connection is closed when the test ends.
func (s *Server) DialRaw(t testing.TB) *Raw {
	t.Helper()
	return s.dialRaw(t, s.Addr)
}

// DialRawDirectTLS connects to the direct TLS listener (ALPN xmpp-client)
// and completes the TLS handshake.
func (s *Server) DialRawDirectTLS(t testing.TB) *Raw {
	t.Helper()
	r := s.dialRaw(t, s.DirectTLSAddr)
	r.handshake([]string{"xmpp-client"})
	return r
}

func (s *Server) dialRaw(t testing.TB, addr string) *Raw {
	t.Helper()
	st, err := xmltest.Dial(addr, s.Domain, IOTimeout)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(st.Close)
	return &Raw{Stream: st, t: t, srv: s}
}

func (r *Raw) tlsConfig(alpn []string) *tls.Config {
	return &tls.Config{RootCAs: r.srv.CAPool, ServerName: r.Domain, NextProtos: alpn}
}

func (r *Raw) handshake(alpn []string) {
	r.t.Helper()
	if err := r.Handshake(r.tlsConfig(alpn)); err != nil {
		r.t.Fatal(err)
	}
}

// check fails the test on err, with what was received.
func (r *Raw) check(err error) {
	r.t.Helper()
	if err != nil {
		r.t.Fatalf("raw: %v\nreceived: %s", err, r.Received())
	}
}

// MustWrite sends s and fails the test on error.
func (r *Raw) MustWrite(s string) {
	r.t.Helper()
	if err := r.WriteString(s); err != nil {
		r.t.Fatalf("raw write: %v", err)
	}
}

// StreamHeader is a well-formed client stream header to domain.
func StreamHeader(domain string) string { return xmltest.StreamHeader(NSClient, domain) }

// Open sends a stream header and reads the server's header and features.
func (r *Raw) Open() *Element {
	r.t.Helper()
	f, err := r.Stream.Open(NSClient)
	r.check(err)
	return f
}

// ReadOpen reads the server's stream header and <stream:features/>.
func (r *Raw) ReadOpen() *Element {
	r.t.Helper()
	f, err := r.Stream.ReadOpen(NSClient)
	r.check(err)
	return f
}

// MustNext is Next failing the test on error.
func (r *Raw) MustNext() *Element {
	r.t.Helper()
	el, err := r.Next()
	r.check(err)
	return el
}

// b64 and unb64 encode and decode SASL data.
var b64, unb64 = xmltest.B64, xmltest.Unb64

// Mechanisms lists the SASL mechanisms offered in a <stream:features/>.
func Mechanisms(features *Element) []string { return xmltest.Mechanisms(features) }

// StartTLS negotiates STARTTLS on an opened stream and opens the stream
// again over TLS.
func (r *Raw) StartTLS() *Element {
	r.t.Helper()
	f, err := r.Stream.StartTLS(r.tlsConfig(nil))
	r.check(err)
	return f
}

// Auth runs one SASL exchange with mellium's client side of mech. On
// success it restarts the stream (reading the new features) and returns
// ""; on failure it returns the <failure/> condition.
func (r *Raw) Auth(mech, user, password string) string {
	r.t.Helper()
	cond, _, err := r.Stream.Auth(mech, user, password, r.Mechanisms())
	if err != nil {
		r.t.Fatalf("SASL %s: %v\nreceived: %s", mech, err, r.Received())
	}
	return cond
}

// Bind binds resource ("" lets the server choose) and returns the full JID.
func (r *Raw) Bind(resource string) string {
	r.t.Helper()
	j, err := r.Stream.Bind(resource)
	r.check(err)
	return j
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
		n, err := r.Recv(buf)
		out = append(out, buf[:n]...)
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
