// Package version implements XEP-0092: Software Version, for the server.
package version

import (
	"runtime"

	"mellium.im/xmpp/stanza"

	"github.com/imppd/imppd/xmppmap"
)

const ns = "jabber:iq:version"

// Module answers version queries addressed to the server.
type Module struct {
	Name, Version string
	// HideOS leaves out the operating system, which some admins prefer
	// not to disclose.
	HideOS bool
}

func (m Module) XEP() xmppmap.XEP {
	return xmppmap.XEP{Number: 92, Title: "Software Version", Version: "1.1", Status: "complete", Features: []string{ns}}
}

func (m Module) Register(s *xmppmap.Server) {
	s.HandleIQ(xmppmap.ToServer, ns, "query", func(q *xmppmap.IQ) {
		if q.Stanza.Get("type") != "get" {
			q.Error(stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest})
			return
		}
		el := xmppmap.NewElement(ns, "query")
		el.Append(xmppmap.NewElement(ns, "name")).AppendText(m.Name)
		el.Append(xmppmap.NewElement(ns, "version")).AppendText(m.Version)
		if !m.HideOS {
			el.Append(xmppmap.NewElement(ns, "os")).AppendText(runtime.GOOS + "/" + runtime.GOARCH + " " + runtime.Version())
		}
		q.Result(xmppmap.XML(el))
	})
}
