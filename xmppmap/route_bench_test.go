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
)

// discardConn is a connection whose writes complete at once, so the
// benchmark measures routing, not a peer's scheduling (net.Pipe blocks
// every write until the reader runs).
type discardConn struct{ net.Conn }

func (discardConn) Write(b []byte) (int, error)      { return len(b), nil }
func (discardConn) Close() error                     { return nil }
func (discardConn) SetWriteDeadline(time.Time) error { return nil }
func (discardConn) RemoteAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

// boundSession makes a session as if negotiation had bound full, writing
// to a connection that discards.
func boundSession(tb testing.TB, srv *Server, full string) *session {
	ss := newSession(srv, discardConn{}, false, nil)
	j := jid.MustParse(full)
	ss.jid, ss.full, ss.bare, ss.agent, ss.domain = j, full, core.PrincipalID(j.Bare().String()), core.AgentID(full), j.Domainpart()
	srv.engine.Connect(ss.agent)
	srv.router.add(full, ss)
	ss.startWriter()
	return ss
}

func benchServer(tb testing.TB) *Server {
	engine := core.New(core.Config{Store: coretest.New()})
	srv, err := New(Config{Domains: []string{"localhost"}}, engine, nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		tb.Fatal(err)
	}
	return srv
}

const benchMsg = `<message to='bob@localhost/b' type='chat' id='m1'><body>Hello, how are you today? This is a typical chat line.</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>`

// BenchmarkRouteMessage measures one chat message from decode to the
// recipient's queue: parse, stamp, stanza-id, encode, core routing.
func BenchmarkRouteMessage(b *testing.B) {
	srv := benchServer(b)
	alice := boundSession(b, srv, "alice@localhost/a")
	boundSession(b, srv, "bob@localhost/b")
	doc := "<stream:stream xmlns='jabber:client' xmlns:stream='" + nsStream + "'>" + strings.Repeat(benchMsg, b.N)
	d := xml.NewDecoder(strings.NewReader(doc))
	if _, err := d.Token(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tok, err := d.Token()
		if err != nil {
			b.Fatal(err)
		}
		el, err := readElement(d, tok.(xml.StartElement), 64, nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := alice.handle(el); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseMessage is the decode share of the above.
func BenchmarkParseMessage(b *testing.B) {
	doc := "<stream:stream xmlns='jabber:client' xmlns:stream='" + nsStream + "'>" + strings.Repeat(benchMsg, b.N)
	d := xml.NewDecoder(strings.NewReader(doc))
	if _, err := d.Token(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tok, err := d.Token()
		if err != nil {
			b.Fatal(err)
		}
		if _, err := readElement(d, tok.(xml.StartElement), 64, nil); err != nil {
			b.Fatal(err)
		}
	}
}
