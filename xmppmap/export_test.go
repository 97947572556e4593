package xmppmap

import (
	"encoding/xml"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/imppd/imppd/core"
	"github.com/imppd/imppd/core/coretest"
	"github.com/imppd/imppd/rosters"
	"github.com/imppd/imppd/rosters/rosterstest"
)

// TestServer is a server over an in-memory store, for module tests.
type TestServer struct {
	*Server
	Store *rosterstestStore
}

type rosterstestStore = coretest.Store

func stringsReader(s string) io.Reader { return strings.NewReader(s) }

// NewTestServer returns a server for domain localhost with the accounts
// given already created.
func NewTestServer(tb testing.TB, accounts ...core.PrincipalID) *TestServer {
	st := rosterstest.New()
	for _, a := range accounts {
		if err := st.CreateAccount(tb.Context(), core.Account{ID: a}); err != nil {
			tb.Fatal(err)
		}
	}
	engine := core.New(core.Config{Store: st})
	srv, err := New(Config{Domains: []string{"localhost"}}, engine, rosters.New(engine, nil), st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		tb.Fatal(err)
	}
	return &TestServer{Server: srv, Store: st}
}

// TestClient is the client end of a bound session.
type TestClient struct {
	tb   testing.TB
	conn net.Conn
	dec  *xml.Decoder
}

// Connect binds full to a session whose client end is returned: what the
// client writes is read by the session as stanzas of a bound stream.
func (s *TestServer) Connect(tb testing.TB, full string) *TestClient {
	c1, c2 := net.Pipe()
	ss := newSession(s.Server, c1, false, nil)
	j := jid.MustParse(full)
	ss.jid, ss.full, ss.bare, ss.agent, ss.domain = j, full, core.PrincipalID(j.Bare().String()), core.AgentID(full), j.Domainpart()
	ss.streamID = "test"
	ss.reset(s.cfg.MaxStanzaSize)
	s.engine.Connect(ss.agent)
	s.router.add(full, ss)
	s.track(ss, true)
	go func() {
		defer s.track(ss, false)
		if _, err := readHeader(ss.dec); err != nil {
			ss.finish()
			return
		}
		ss.serve()
	}()
	// The client reads the server's stanzas as if inside a stream.
	r := io.MultiReader(stringsReader("<stream:stream xmlns='jabber:client' xmlns:stream='"+nsStream+"'>"), c2)
	tc := &TestClient{tb: tb, conn: c2, dec: xml.NewDecoder(r)}
	if _, err := tc.dec.Token(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c2.Close(); <-ss.done })
	tc.Send("<stream:stream xmlns='jabber:client' xmlns:stream='" + nsStream + "' to='localhost' version='1.0'>")
	return tc
}

// Send writes raw XML as the client.
func (c *TestClient) Send(x string) {
	c.tb.Helper()
	_ = c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c.conn, x); err != nil {
		c.tb.Fatalf("send: %v", err)
	}
}

// Next returns the next element the server sends, failing after 5 s.
func (c *TestClient) Next() *Element {
	c.tb.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		tok, err := c.dec.Token()
		if err != nil {
			c.tb.Fatalf("next: %v", err)
		}
		if s, ok := tok.(xml.StartElement); ok {
			el, err := readElement(c.dec, s, 64, nil)
			if err != nil {
				c.tb.Fatalf("next: %v", err)
			}
			return el
		}
	}
}

// Request sends an IQ and returns the answer with the same id.
func (c *TestClient) Request(x string) *Element {
	c.tb.Helper()
	c.Send(x)
	for {
		el := c.Next()
		if el.Name.Local == "iq" && (el.Get("type") == "result" || el.Get("type") == "error") {
			return el
		}
	}
}

// Close drops the client's end of the connection: the session ends.
func (c *TestClient) Close() { _ = c.conn.Close() }
