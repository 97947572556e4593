// Package xeps is the one list of compiled-in protocol extensions. Service
// discovery features and docs/XEPS.md are generated from what it returns.
package xeps

import (
	"github.com/imppd/imppd/xmppmap"
	"github.com/imppd/imppd/xmppmap/adhoc"
	"github.com/imppd/imppd/xmppmap/disco"
	"github.com/imppd/imppd/xmppmap/ping"
	"github.com/imppd/imppd/xmppmap/watchinfo"
)

// Modules returns every extension module, ready for Server.Use.
func Modules() []xmppmap.Module {
	d := disco.New()
	cmds := adhoc.New(d, watchinfo.Command())
	// disco goes last so that the others have added their items first.
	return []xmppmap.Module{ping.Module{}, cmds, d}
}
