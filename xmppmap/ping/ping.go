// Package ping implements XEP-0199: XMPP Ping.
//
// The server answers pings addressed to it or to the sender's own account;
// pings to other entities are routed like any IQ. The server's own pings of
// idle clients are part of the session (xmppmap).
package ping

import "github.com/imppd/imppd/xmppmap"

const ns = "urn:xmpp:ping"

// Module answers pings.
type Module struct{}

func (Module) XEP() xmppmap.XEP {
	return xmppmap.XEP{Number: 199, Title: "XMPP Ping", Version: "2.0.1", Status: "complete",
		Features: []string{ns}}
}

func (Module) Register(s *xmppmap.Server) {
	pong := func(q *xmppmap.IQ) {
		if q.Stanza.Get("type") != "get" {
			q.Error(badRequest)
			return
		}
		q.Result(nil)
	}
	s.HandleIQ(xmppmap.ToServer, ns, "ping", pong)
	s.HandleIQ(xmppmap.ToAccount, ns, "ping", pong)
}
