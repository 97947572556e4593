// Package xeps is the one list of compiled-in protocol extensions. Service
// discovery features and docs/XEPS.md are generated from what it returns.
package xeps

import (
	"log/slog"
	"slices"
	"time"

	"github.com/imppd/imppd/core"
	"github.com/imppd/imppd/xmppmap"
	"github.com/imppd/imppd/xmppmap/adhoc"
	"github.com/imppd/imppd/xmppmap/admin"
	"github.com/imppd/imppd/xmppmap/blocking"
	"github.com/imppd/imppd/xmppmap/bookmarks"
	"github.com/imppd/imppd/xmppmap/caps"
	"github.com/imppd/imppd/xmppmap/carbons"
	"github.com/imppd/imppd/xmppmap/disco"
	"github.com/imppd/imppd/xmppmap/last"
	"github.com/imppd/imppd/xmppmap/mam"
	"github.com/imppd/imppd/xmppmap/pep"
	"github.com/imppd/imppd/xmppmap/ping"
	"github.com/imppd/imppd/xmppmap/private"
	"github.com/imppd/imppd/xmppmap/register"
	"github.com/imppd/imppd/xmppmap/vcard"
	"github.com/imppd/imppd/xmppmap/version"
	"github.com/imppd/imppd/xmppmap/watchinfo"
	"github.com/imppd/imppd/xmppmap/xtime"
)

// Options are what the modules need from the configuration.
type Options struct {
	Version          string    // the server's version, for XEP-0092
	Started          time.Time // for XEP-0012 uptime
	Blocklists       blocking.Store
	Archive          mam.Store
	ArchiveRetention time.Duration // 0: forever
	Logger           *slog.Logger
	// Accounts and ScramIterations serve the XEP-0133 admin commands.
	Accounts        core.Accounts
	ScramIterations int
	// OpenRegistration allows in-band account creation (XEP-0077).
	OpenRegistration bool
	// PEP stores accounts' personal eventing nodes (XEP-0163).
	PEP pep.Store
	// AccountData stores vCards (XEP-0054) and private XML (XEP-0049).
	AccountData vcard.Store
	// Disabled lists XEP numbers switched off by the administrator.
	Disabled []int
}

// Modules returns every extension module, ready for Server.Use.
func Modules(o Options) []xmppmap.Module {
	d := disco.New()
	cmds := adhoc.New(d, watchinfo.Command())
	if o.Accounts != nil && !slices.Contains(o.Disabled, 133) {
		cmds.Add(admin.Commands(o.Accounts, o.ScramIterations)...)
	}
	mods := []xmppmap.Module{
		ping.Module{},
		version.Module{Name: "imppd", Version: o.Version},
		xtime.Module{},
		last.Module{Started: o.Started},
		carbons.New(),
		admin.Module{},
	}
	if o.Blocklists != nil {
		mods = append(mods, blocking.New(o.Blocklists))
	}
	if o.Accounts != nil {
		mods = append(mods, register.New(register.Options{Accounts: o.Accounts, Iterations: o.ScramIterations, Open: o.OpenRegistration}))
	}
	if o.Archive != nil {
		mods = append(mods, mam.New(o.Archive, o.ArchiveRetention, o.Logger))
	}
	// PEP learns clients' "+notify" interests from the capabilities cache.
	var capsMod *caps.Module
	if !slices.Contains(o.Disabled, 115) {
		capsMod = caps.New(d)
	}
	var priv *private.Module
	if o.AccountData != nil {
		priv = private.New(o.AccountData, private.Options{})
		mods = append(mods, priv)
	}
	var pp vcard.PEP // a nil interface without PEP
	if o.PEP != nil && !slices.Contains(o.Disabled, 163) {
		var c pep.Caps
		if capsMod != nil {
			c = capsMod
		}
		p := pep.New(o.PEP, c, d, o.Logger)
		mods = append(mods, p)
		mods = append(mods, pep.Related()...)
		pp = p
		// One module serves XEP-0048, 0402 and 0411 together: switching
		// off any of them switches off the conversion.
		if o.AccountData != nil && !slices.ContainsFunc([]int{48, 402, 411}, func(n int) bool { return slices.Contains(o.Disabled, n) }) {
			// Bookmarks stay private even when a client creates their
			// node without publish-options.
			p.SetDefault(bookmarks.NS, *bookmarks.NodeConfig())
			p.SetDefault(bookmarks.NSLegacy, *bookmarks.LegacyNodeConfig())
			bm := bookmarks.New(p, priv, o.AccountData, o.Logger)
			mods = append(mods, bm, bm.Legacy(), bm.Conversion())
		}
	}
	if o.AccountData != nil {
		mods = append(mods, vcard.New(o.AccountData, pp)...)
	}
	// disco goes last so that the others have added their items first.
	mods = append(mods, cmds, d)
	mods = slices.DeleteFunc(mods, func(m xmppmap.Module) bool { return slices.Contains(o.Disabled, m.XEP().Number) })
	// caps hashes the features of everything before it: last.
	if capsMod != nil {
		mods = append(mods, capsMod)
	}
	return mods
}
