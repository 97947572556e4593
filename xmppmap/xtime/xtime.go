// Package xtime implements XEP-0202: Entity Time, for the server.
package xtime

import (
	"time"

	"mellium.im/xmpp/stanza"

	"github.com/imppd/imppd/xmppmap"
)

const ns = "urn:xmpp:time"

// Module answers time queries addressed to the server.
type Module struct {
	Now func() time.Time // default time.Now
}

func (m Module) XEP() xmppmap.XEP {
	return xmppmap.XEP{Number: 202, Title: "Entity Time", Version: "2.0", Status: "complete", Features: []string{ns}}
}

func (m Module) Register(s *xmppmap.Server) {
	now := m.Now
	if now == nil {
		now = time.Now
	}
	s.HandleIQ(xmppmap.ToServer, ns, "time", func(q *xmppmap.IQ) {
		if q.Stanza.Get("type") != "get" {
			q.Error(stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest})
			return
		}
		q.Result(Payload(now()))
	})
}

// Payload renders t as the XEP-0202 <time/> element: the zone offset and
// the UTC time (XEP-0082 formats).
func Payload(t time.Time) []byte {
	el := xmppmap.NewElement(ns, "time")
	el.Append(xmppmap.NewElement(ns, "tzo")).AppendText(t.Format("-07:00"))
	el.Append(xmppmap.NewElement(ns, "utc")).AppendText(t.UTC().Format("2006-01-02T15:04:05.000Z"))
	return xmppmap.XML(el)
}
