package xmltest

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
	"sync"
	"time"

	"mellium.im/sasl"
)

// Stream is a client stream driven by hand. It reads the connection one
// byte at a time, so nothing is read ahead of what it consumes (a TLS
// handshake can follow <proceed/>, and Recv sees every byte after), and it
// records every byte it reads, for failure messages.
type Stream struct {
	Domain  string
	Timeout time.Duration // of each read (Next) and write
	Conn    net.Conn      // the TCP connection, or the TLS connection over it
	TCP     net.Conn

	// StreamErrors makes Next and NextElement return a <stream:error/> as
	// an error ("stream error CONDITION TEXT") rather than as an element.
	StreamErrors bool

	Features *Element // of the last stream (re)start
	Header   xml.StartElement

	wmu      sync.Mutex
	dec      *xml.Decoder
	received bytes.Buffer // everything read so far
}

// NewStream wraps a TCP connection to domain.
func NewStream(c net.Conn, domain string, timeout time.Duration) *Stream {
	return &Stream{Domain: domain, Timeout: timeout, Conn: c, TCP: c}
}

// Dial connects to addr over TCP.
func Dial(addr, domain string, timeout time.Duration) (*Stream, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	return NewStream(c, domain, timeout), nil
}

// Close closes the TCP connection.
func (s *Stream) Close() { _ = s.TCP.Close() }

// Write sends bytes as they are.
func (s *Stream) Write(b []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_ = s.Conn.SetWriteDeadline(time.Now().Add(s.Timeout))
	_, err := s.Conn.Write(b)
	return err
}

// WriteString sends str as it is.
func (s *Stream) WriteString(str string) error { return s.Write([]byte(str)) }

// Recv reads from the connection, recording what it read.
func (s *Stream) Recv(p []byte) (int, error) {
	n, err := s.Conn.Read(p)
	s.received.Write(p[:n])
	return n, err
}

// Received returns everything read from the connection so far.
func (s *Stream) Received() string { return s.received.String() }

// byteReader reads the connection one byte at a time.
type byteReader struct{ s *Stream }

func (b byteReader) ReadByte() (byte, error) {
	var p [1]byte
	for {
		n, err := b.s.Recv(p[:])
		if n == 1 {
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

// Open sends a stream header in namespace ns and reads the server's (see
// ReadOpen).
func (s *Stream) Open(ns string) (*Element, error) {
	if err := s.WriteString(StreamHeader(ns, s.Domain)); err != nil {
		return nil, err
	}
	return s.ReadOpen(ns)
}

// ReadOpen reads the server's stream header and, on a jabber:client
// stream, its <stream:features/>, which it returns (component streams
// have none: nil).
func (s *Stream) ReadOpen(ns string) (*Element, error) {
	dec := s.Decoder(true)
	_ = s.Conn.SetReadDeadline(time.Now().Add(s.Timeout))
	defer func() { _ = s.Conn.SetReadDeadline(time.Time{}) }()
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("reading the stream header: %w", err)
		}
		if st, ok := tok.(xml.StartElement); ok {
			if !(st.Name.Space == NSStream && st.Name.Local == "stream") {
				return nil, fmt.Errorf("expected a stream header, got <%s xmlns='%s'>", st.Name.Local, st.Name.Space)
			}
			s.Header = st.Copy()
			break
		}
	}
	if ns != NSClient {
		return nil, nil
	}
	f, err := s.Next()
	if err != nil {
		return nil, err
	}
	if !f.Is(NSStream, "features") {
		return nil, fmt.Errorf("expected <stream:features/>, got %s", f)
	}
	s.Features = f
	return f, nil
}

// Decoder returns the decoder of the current stream, or, when fresh or
// when no stream was read yet, a new one reading from here on.
func (s *Stream) Decoder(fresh bool) *xml.Decoder {
	if fresh || s.dec == nil {
		s.dec = xml.NewDecoder(byteReader{s})
	}
	return s.dec
}

// Next reads the next top-level element of the current stream, waiting at
// most Timeout. At </stream:stream> it returns io.EOF.
func (s *Stream) Next() (*Element, error) {
	if s.dec == nil {
		return nil, errors.New("raw: no stream open")
	}
	_ = s.Conn.SetReadDeadline(time.Now().Add(s.Timeout))
	defer func() { _ = s.Conn.SetReadDeadline(time.Time{}) }()
	return s.NextElement()
}

// NextElement is Next without a deadline.
func (s *Stream) NextElement() (*Element, error) {
	for {
		tok, err := s.dec.Token()
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			el, err := ReadElement(s.dec, t.Copy())
			if err == nil && s.StreamErrors && el.Is(NSStream, "error") {
				return nil, streamError(el)
			}
			return el, err
		case xml.EndElement:
			return nil, io.EOF // </stream:stream>
		}
	}
}

func streamError(el *Element) error {
	cond := "undefined-condition"
	text := ""
	for _, c := range el.ChildrenIn(NSStreams) {
		if c.Name.Local == "text" {
			text = c.Text
		} else {
			cond = c.Name.Local
		}
	}
	return fmt.Errorf("stream error %s %s", cond, text)
}

// StartTLS negotiates STARTTLS on an opened stream and opens the stream
// again over TLS.
func (s *Stream) StartTLS(cfg *tls.Config) (*Element, error) {
	if err := s.WriteString("<starttls xmlns='" + NSTLS + "'/>"); err != nil {
		return nil, err
	}
	p, err := s.Next()
	if err != nil {
		return nil, err
	}
	if !p.Is(NSTLS, "proceed") {
		return nil, fmt.Errorf("expected <proceed/>, got %s", p)
	}
	if err := s.Handshake(cfg); err != nil {
		return nil, err
	}
	return s.Open(NSClient)
}

// Handshake runs a TLS client handshake on the connection.
func (s *Stream) Handshake(cfg *tls.Config) error {
	tc := tls.Client(s.Conn, cfg)
	_ = tc.SetDeadline(time.Now().Add(s.Timeout))
	if err := tc.Handshake(); err != nil {
		return fmt.Errorf("TLS handshake: %w", err)
	}
	_ = tc.SetDeadline(time.Time{})
	s.Conn, s.dec = tc, nil
	return nil
}

// TLSState returns the TLS connection state (zero before TLS).
func (s *Stream) TLSState() (tls.ConnectionState, bool) {
	if tc, ok := s.Conn.(*tls.Conn); ok {
		return tc.ConnectionState(), true
	}
	return tls.ConnectionState{}, false
}

// Mechanisms lists the SASL mechanisms in the last features.
func (s *Stream) Mechanisms() []string { return Mechanisms(s.Features) }

// Mechanisms lists the SASL mechanisms offered in a <stream:features/>.
func Mechanisms(features *Element) []string {
	var out []string
	for _, m := range features.Child(NSSASL, "mechanisms").ChildrenNamed(NSSASL, "mechanism") {
		out = append(out, strings.TrimSpace(m.Text))
	}
	return out
}

// Mechanism returns mellium's client side of a SASL mechanism by name.
func Mechanism(name string) (sasl.Mechanism, bool) {
	switch name {
	case "SCRAM-SHA-256-PLUS":
		return sasl.ScramSha256Plus, true
	case "SCRAM-SHA-256":
		return sasl.ScramSha256, true
	case "SCRAM-SHA-1-PLUS":
		return sasl.ScramSha1Plus, true
	case "SCRAM-SHA-1":
		return sasl.ScramSha1, true
	case "PLAIN":
		return sasl.Plain, true
	}
	return sasl.Mechanism{}, false
}

// ErrClientSide marks a mechanism the client could not start (nothing
// was sent).
var ErrClientSide = errors.New("client side")

// Auth runs one SASL exchange with mellium's client side of mech, offered
// being the server's mechanisms. It returns the <failure/> condition
// ("failure" when it names none), or "" on success, after which the stream
// is opened again and its features returned.
func (s *Stream) Auth(mech, user, pass string, offered []string) (string, *Element, error) {
	m, ok := Mechanism(mech)
	if !ok {
		return "", nil, fmt.Errorf("unsupported mechanism %s", mech)
	}
	opts := []sasl.Option{
		sasl.Credentials(func() ([]byte, []byte, []byte) { return []byte(user), []byte(pass), nil }),
		sasl.RemoteMechanisms(offered...),
	}
	if st, ok := s.TLSState(); ok {
		opts = append(opts, sasl.TLSState(st))
	}
	client := sasl.NewClient(m, opts...)
	more, resp, err := client.Step(nil)
	if err != nil {
		return "", nil, fmt.Errorf("%w: %v", ErrClientSide, err)
	}
	if err := s.WriteString("<auth xmlns='" + NSSASL + "' mechanism='" + mech + "'>" + B64(resp) + "</auth>"); err != nil {
		return "", nil, err
	}
	for {
		el, err := s.Next()
		if err != nil {
			return "", nil, fmt.Errorf("reading the SASL answer: %w", err)
		}
		switch {
		case el.Is(NSSASL, "failure"):
			for _, ch := range el.Children {
				if ch.Name.Local != "text" {
					return ch.Name.Local, nil, nil
				}
			}
			return "failure", nil, nil
		case el.Is(NSSASL, "challenge"), el.Is(NSSASL, "success"):
			data, err := Unb64(el.Text)
			if err != nil {
				return "", nil, fmt.Errorf("bad base64 in %s", el)
			}
			success := el.Name.Local == "success"
			if more || (success && len(data) > 0) {
				if more, resp, err = client.Step(data); err != nil {
					return "", nil, fmt.Errorf("SASL step: %w (server says %s)", err, el)
				}
			}
			if success {
				if more {
					return "", nil, errors.New("success before the mechanism finished")
				}
				f, err := s.Open(NSClient)
				return "", f, err
			}
			if err := s.WriteString("<response xmlns='" + NSSASL + "'>" + B64(resp) + "</response>"); err != nil {
				return "", nil, err
			}
		default:
			return "", nil, fmt.Errorf("unexpected element during SASL: %s", el)
		}
	}
}

// B64 encodes SASL data: "=" for none (RFC 6120 §6.4.2).
func B64(b []byte) string {
	if len(b) == 0 {
		return "="
	}
	return base64.StdEncoding.EncodeToString(b)
}

// Unb64 decodes SASL data ("" and "=" are none).
func Unb64(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "=" {
		return nil, nil
	}
	return base64.StdEncoding.DecodeString(s)
}

// Bind binds resource ("" lets the server choose) and returns the full
// JID. It skips elements that are not the answer.
func (s *Stream) Bind(resource string) (string, error) {
	res := ""
	if resource != "" {
		res = "<resource>" + Esc(resource) + "</resource>"
	}
	if err := s.WriteString("<iq type='set' id='bind-1'><bind xmlns='" + NSBind + "'>" + res + "</bind></iq>"); err != nil {
		return "", err
	}
	for {
		el, err := s.Next()
		if err != nil {
			return "", err
		}
		if !el.Is(NSClient, "iq") || el.Get("id") != "bind-1" {
			continue
		}
		if el.Get("type") != "result" {
			return "", fmt.Errorf("bind failed: %s", el)
		}
		j := el.Child(NSBind, "bind").Child(NSBind, "jid")
		if j == nil {
			return "", fmt.Errorf("bind result without a JID: %s", el)
		}
		return strings.TrimSpace(j.Text), nil
	}
}
