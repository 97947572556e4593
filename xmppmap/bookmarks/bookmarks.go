// Package bookmarks implements XEP-0402: PEP Native Bookmarks, the part a
// server adds to PEP: compatibility with XEP-0048: Bookmarks, through
// private XML storage (XEP-0049) and through the 'storage:bookmarks' PEP
// node, as XEP-0402 §5.3 and XEP-0411: Bookmarks Conversion describe.
//
// The 'urn:xmpp:bookmarks:1' node of the PEP module (one item per room,
// the room's JID as item id) is the one source of truth for conferences:
//
//   - a private XML get of <storage xmlns='storage:bookmarks'/> is
//     synthesised from that node's items;
//   - a private XML set, or a client's publish of a whole <storage/> to the
//     'storage:bookmarks' PEP node, is turned into publishes of the rooms
//     that are new or changed (keeping their XEP-0402 <extensions/>) and
//     retractions of the rooms no longer listed;
//   - after any change of the XEP-0402 node, and after a private XML set
//     (XEP-0411 §3), the 'storage:bookmarks' node is republished (item
//     'current'), so that a legacy PEP client reads the same list. It is
//     kept even for accounts without legacy clients: a legacy client that
//     found it missing would take the list for empty, and its next publish
//     would remove every room.
//
// XEP-0402 has no web page bookmarks: the <url/> entries of XEP-0048 are
// kept in the account's data (private.Store) and added to what legacy
// clients read. Elements this module writes itself are published with a
// marked context, and its hooks ignore events with that mark, so no change
// is converted back.
package bookmarks

import (
	"bytes"
	"context"
	"hash/maphash"
	"log/slog"
	"sync"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/imppd/imppd/core"
	"github.com/imppd/imppd/xmppmap"
	"github.com/imppd/imppd/xmppmap/private"
)

const (
	NS = "urn:xmpp:bookmarks:1"
	// NSLegacy is XEP-0048's namespace and the legacy PEP node's name.
	NSLegacy = "storage:bookmarks"
	// FeatureCompat: private XML bookmarks are unified with XEP-0402
	// (XEP-0402 §5.3), FeatureCompatPEP: so are XEP-0048 PEP bookmarks
	// (XEP-0223). Both are announced on the account.
	FeatureCompat    = NS + "#compat"
	FeatureCompatPEP = NS + "#compat-pep"
	// NSConversion is XEP-0411 §2's account feature.
	NSConversion = "urn:xmpp:bookmarks-conversion:0"
	// LegacyItem is the id of the legacy node's one item.
	LegacyItem = "current"
	// URLsKey is the account data key of XEP-0048's <url/> bookmarks.
	URLsKey = "bookmarks:urls"
)

// maxDepth bounds the nesting of parsed payloads.
const maxDepth = 32

// PEP is what this module needs of the PEP service (xmppmap/pep).
//
// The context a module passes to Publish or Retract must reach the hooks
// that run for that change: that is how this module recognises its own.
type PEP interface {
	// Publish publishes payload (one serialized element) as item id of
	// owner's node, creating the node with cfg if absent, and notifies as
	// for a client's publish. It returns the item id.
	Publish(ctx context.Context, owner core.PrincipalID, node, id string, payload []byte, cfg *core.NodeConfig) (string, error)
	// Retract removes item id from owner's node, notifying per the node's
	// notify_retract.
	Retract(ctx context.Context, owner core.PrincipalID, node, id string) error
	// Items returns up to max items (newest first; max <= 0: all); none
	// when there is no such node.
	Items(ctx context.Context, owner core.PrincipalID, node string, max int) ([]core.MarkupItem, error)
	// OnPublish registers f, run after an item of node was published (by
	// a client or a module), on the publisher's goroutine.
	OnPublish(node string, f func(ctx context.Context, owner core.PrincipalID, it core.MarkupItem))
	// Node returns owner's node, if there is one.
	Node(ctx context.Context, owner core.PrincipalID, name string) (core.MarkupNode, bool, error)
}

// retractHooks is optional: when the PEP service has it, a retraction from
// the XEP-0402 node also refreshes the legacy node.
type retractHooks interface {
	OnRetract(node string, f func(ctx context.Context, owner core.PrincipalID, id string))
}

// NodeConfig is the XEP-0402 node's configuration (XEP-0402 §3: persist
// items, max_items "max", send_last_published_item never, whitelist).
func NodeConfig() *core.NodeConfig {
	return &core.NodeConfig{Access: core.AccessWhitelist, Persist: true, MaxItems: core.MaxItemsUnbounded,
		SendLast: "never", NotifyRetract: true}
}

// LegacyNodeConfig is the 'storage:bookmarks' node's configuration: one
// private persistent item (XEP-0048 §3.2, XEP-0223 §3).
func LegacyNodeConfig() *core.NodeConfig {
	return &core.NodeConfig{Access: core.AccessWhitelist, Persist: true, MaxItems: 1, SendLast: "never", NotifyRetract: true}
}

// Module converts between XEP-0048 and XEP-0402 bookmarks.
type Module struct {
	pep   PEP
	priv  *private.Module // nil: no private XML storage
	store private.Store
	log   *slog.Logger

	once  sync.Once
	seed  maphash.Seed
	locks [64]sync.Mutex // per account (striped): one conversion at a time
}

// New returns the module over the PEP service, the private XML storage
// module (nil if there is none) and the account data store.
func New(pep PEP, priv *private.Module, store private.Store, log *slog.Logger) *Module {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Module{pep: pep, priv: priv, store: store, log: log, seed: maphash.MakeSeed()}
}

func (m *Module) XEP() xmppmap.XEP {
	return xmppmap.XEP{Number: 402, Title: "PEP Native Bookmarks", Version: "1.2.0",
		Status:          "complete, with the §5.3 compatibility with XEP-0048 over XEP-0049 and over PEP",
		AccountFeatures: []string{FeatureCompat, FeatureCompatPEP}}
}

func (m *Module) Register(s *xmppmap.Server) { m.once.Do(m.register) }

// Legacy describes XEP-0048, served by this module; registering it
// registers the module (once).
func (m *Module) Legacy() xmppmap.Module { return describe{m, legacyXEP} }

// Conversion describes XEP-0411, served by this module; registering it
// registers the module (once).
func (m *Module) Conversion() xmppmap.Module { return describe{m, conversionXEP} }

var (
	legacyXEP = xmppmap.XEP{Number: 48, Title: "Bookmarks", Version: "1.2",
		Status: "complete, stored as XEP-0402 items; through XEP-0049 and the storage:bookmarks PEP node"}
	conversionXEP = xmppmap.XEP{Number: 411, Title: "Bookmarks Conversion", Version: "1.1.0",
		Status: "complete, both ways through the XEP-0402 node", AccountFeatures: []string{NSConversion}}
)

type describe struct {
	m   *Module
	xep xmppmap.XEP
}

func (d describe) XEP() xmppmap.XEP           { return d.xep }
func (d describe) Register(s *xmppmap.Server) { d.m.Register(s) }

func (m *Module) register() {
	if m.priv != nil {
		m.priv.Intercept(NSLegacy, m.privateGet, m.privateSet)
	}
	m.pep.OnPublish(NSLegacy, m.legacyPublished)
	m.pep.OnPublish(NS, func(ctx context.Context, owner core.PrincipalID, _ core.MarkupItem) { m.changed(ctx, owner) })
	if r, ok := m.pep.(retractHooks); ok {
		r.OnRetract(NS, func(ctx context.Context, owner core.PrincipalID, _ string) { m.changed(ctx, owner) })
	}
}

type ownKey struct{}

// own marks ctx as this module's.
func own(ctx context.Context) context.Context { return context.WithValue(ctx, ownKey{}, true) }

func isOwn(ctx context.Context) bool { return ctx.Value(ownKey{}) != nil }

func (m *Module) lock(owner core.PrincipalID) func() {
	l := &m.locks[maphash.String(m.seed, string(owner))%uint64(len(m.locks))]
	l.Lock()
	return l.Unlock
}

// privateGet serves <storage xmlns='storage:bookmarks'/> of private XML.
func (m *Module) privateGet(ctx context.Context, owner core.PrincipalID) ([]byte, error) {
	defer m.lock(owner)()
	if moved, err := m.migrate(ctx, owner); err != nil {
		return nil, err
	} else if moved {
		if err := m.republish(ctx, owner); err != nil {
			return nil, err
		}
	}
	return m.legacyXML(ctx, owner)
}

// privateSet stores <storage xmlns='storage:bookmarks'/> of private XML.
func (m *Module) privateSet(ctx context.Context, owner core.PrincipalID, b []byte) error {
	el, err := xmppmap.ParseElement(b, maxDepth)
	if err != nil || el.Name.Local != "storage" {
		return stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest}
	}
	confs, urls, err := ParseStorage(el, true)
	if err != nil {
		return err
	}
	defer m.lock(owner)()
	// Whatever private XML kept before this module ran is replaced.
	if old, err := m.store.AccountData(ctx, owner, private.Key(NSLegacy, "storage")); err != nil {
		return err
	} else if old != nil {
		if err := m.store.PutAccountData(ctx, owner, private.Key(NSLegacy, "storage"), nil); err != nil {
			return err
		}
	}
	if err := m.apply(ctx, owner, confs, urls, true); err != nil {
		return err
	}
	// XEP-0411 §3: the legacy node's subscribers learn of the change.
	return m.republish(ctx, owner)
}

// legacyPublished converts a client's publish to the legacy PEP node.
func (m *Module) legacyPublished(ctx context.Context, owner core.PrincipalID, it core.MarkupItem) {
	if isOwn(ctx) {
		return
	}
	el, err := xmppmap.ParseElement(it.Payload, maxDepth)
	if err != nil || el.Name.Space != NSLegacy || el.Name.Local != "storage" {
		return
	}
	confs, urls, _ := ParseStorage(el, false)
	defer m.lock(owner)()
	if err := m.apply(ctx, owner, confs, urls, true); err != nil {
		m.log.Warn("bookmarks: converting storage:bookmarks", "owner", owner, "err", err)
		return
	}
	// If a conversion republished the legacy node between this publish and
	// now, that item no longer matches: publish what the node says now.
	its, err := m.pep.Items(ctx, owner, NSLegacy, 1)
	if err == nil && len(its) > 0 && !bytes.Equal(its[0].Payload, it.Payload) {
		err = m.republish(ctx, owner)
	}
	if err != nil {
		m.log.Warn("bookmarks: republishing storage:bookmarks", "owner", owner, "err", err)
	}
}

// changed refreshes the legacy node after a client changed the XEP-0402
// node.
func (m *Module) changed(ctx context.Context, owner core.PrincipalID) {
	if isOwn(ctx) {
		return
	}
	defer m.lock(owner)()
	if err := m.republish(ctx, owner); err != nil {
		m.log.Warn("bookmarks: republishing storage:bookmarks", "owner", owner, "err", err)
	}
}

// republish publishes the legacy node's item from the XEP-0402 node.
func (m *Module) republish(ctx context.Context, owner core.PrincipalID) error {
	b, err := m.legacyXML(ctx, owner)
	if err != nil {
		return err
	}
	if its, err := m.pep.Items(ctx, owner, NSLegacy, 1); err != nil {
		return err
	} else if len(its) == 1 && its[0].ID == LegacyItem && bytes.Equal(its[0].Payload, b) {
		return nil // unchanged: nobody needs telling
	}
	// Room passwords go only into a node nobody else reads: a client may
	// have made the legacy node readable by contacts.
	if n, ok, err := m.pep.Node(ctx, owner, NSLegacy); err != nil {
		return err
	} else if ok && n.Config.Access != core.AccessWhitelist {
		m.log.Warn("bookmarks: storage:bookmarks is not whitelist; not copying bookmarks into it", "owner", owner)
		return nil
	}
	_, err = m.pep.Publish(own(ctx), owner, NSLegacy, LegacyItem, b, LegacyNodeConfig())
	return err
}

// migrate converts bookmarks that private XML stored before this module
// served them, once; true if there were some.
func (m *Module) migrate(ctx context.Context, owner core.PrincipalID) (bool, error) {
	key := private.Key(NSLegacy, "storage")
	b, err := m.store.AccountData(ctx, owner, key)
	if err != nil || b == nil {
		return false, err
	}
	if el, err := xmppmap.ParseElement(b, maxDepth); err == nil && el.Name.Space == NSLegacy && el.Name.Local == "storage" {
		confs, urls, _ := ParseStorage(el, false)
		if err := m.apply(ctx, owner, confs, urls, false); err != nil {
			return false, err
		}
	}
	return true, m.store.PutAccountData(ctx, owner, key, nil)
}

// conferences returns the XEP-0402 node's bookmarks, oldest first.
func (m *Module) conferences(ctx context.Context, owner core.PrincipalID) ([]Conference, error) {
	its, err := m.pep.Items(ctx, owner, NS, 0)
	if err != nil {
		return nil, err
	}
	out := make([]Conference, 0, len(its))
	for i := len(its) - 1; i >= 0; i-- {
		if c, ok := ParseConference(its[i].ID, its[i].Payload); ok {
			out = append(out, c)
		}
	}
	return out, nil
}

// legacyXML is the <storage xmlns='storage:bookmarks'/> legacy clients see.
func (m *Module) legacyXML(ctx context.Context, owner core.PrincipalID) ([]byte, error) {
	confs, err := m.conferences(ctx, owner)
	if err != nil {
		return nil, err
	}
	var urls []*xmppmap.Element
	if b, err := m.store.AccountData(ctx, owner, URLsKey); err != nil {
		return nil, err
	} else if b != nil {
		if el, err := xmppmap.ParseElement(b, maxDepth); err == nil {
			_, urls, _ = ParseStorage(el, false)
		}
	}
	return xmppmap.XML(Storage(confs, urls)), nil
}

// apply makes the XEP-0402 node list confs: new or changed rooms are
// published; with sync, rooms not listed are retracted. urls replace the
// stored <url/> bookmarks (with sync, or when there are some).
func (m *Module) apply(ctx context.Context, owner core.PrincipalID, confs []Conference, urls []*xmppmap.Element, sync bool) error {
	ctx = own(ctx)
	its, err := m.pep.Items(ctx, owner, NS, 0)
	if err != nil {
		return err
	}
	old := make(map[string]Conference, len(its))
	var order []string
	for _, it := range its {
		c, _ := ParseConference(it.ID, it.Payload) // one that does not parse is replaced
		if _, dup := old[it.ID]; !dup {
			order = append(order, it.ID)
		}
		old[it.ID] = c
	}
	listed := make(map[string]bool, len(confs))
	for _, c := range confs {
		listed[c.JID] = true
		prev, ok := old[c.JID]
		if ok && prev.Equal(c) {
			continue
		}
		c.Extensions = prev.Extensions
		if _, err := m.pep.Publish(ctx, owner, NS, c.JID, xmppmap.XML(c.Element()), NodeConfig()); err != nil {
			return err
		}
	}
	if sync {
		for _, id := range order {
			if !listed[id] {
				if err := m.pep.Retract(ctx, owner, NS, id); err != nil {
					return err
				}
			}
		}
	}
	if !sync && len(urls) == 0 {
		return nil
	}
	var b []byte
	if len(urls) > 0 {
		b = xmppmap.XML(Storage(nil, urls))
	}
	cur, err := m.store.AccountData(ctx, owner, URLsKey)
	if err != nil || bytes.Equal(cur, b) {
		return err
	}
	return m.store.PutAccountData(ctx, owner, URLsKey, b)
}

// Conference is one room bookmark.
type Conference struct {
	JID      string // the room's JID; the XEP-0402 item id
	Name     string
	Autojoin bool
	Nick     string
	Password string
	// Extensions is XEP-0402's <extensions/>, kept as the client wrote it.
	Extensions *xmppmap.Element
}

// Equal compares what both XEPs can express.
func (c Conference) Equal(o Conference) bool {
	return c.JID == o.JID && c.Name == o.Name && c.Autojoin == o.Autojoin && c.Nick == o.Nick && c.Password == o.Password
}

// Element is c as a XEP-0402 item payload.
func (c Conference) Element() *xmppmap.Element {
	el := c.element(xmppmap.NewElement(NS, "conference", "name", c.Name))
	if c.Extensions != nil {
		el.Append(c.Extensions)
	}
	return el
}

// legacy is c as a XEP-0048 <conference/>.
func (c Conference) legacy() *xmppmap.Element {
	return c.element(xmppmap.NewElement(NSLegacy, "conference", "jid", c.JID, "name", c.Name))
}

// element adds what both forms share to el, in el's namespace.
func (c Conference) element(el *xmppmap.Element) *xmppmap.Element {
	if c.Autojoin {
		el.Set("autojoin", "true")
	}
	if c.Nick != "" {
		el.Append(xmppmap.NewElement(el.Name.Space, "nick")).AppendText(c.Nick)
	}
	if c.Password != "" {
		el.Append(xmppmap.NewElement(el.Name.Space, "password")).AppendText(c.Password)
	}
	return el
}

// xsBool reads an xs:boolean ("true" or "1"; anything else is false).
func xsBool(v string) bool { return v == "true" || v == "1" }

// ParseConference reads a XEP-0402 item; false if it is not a conference.
func ParseConference(id string, payload []byte) (Conference, bool) {
	el, err := xmppmap.ParseElement(payload, maxDepth)
	if err != nil || el.Name.Space != NS || el.Name.Local != "conference" || id == "" {
		return Conference{}, false
	}
	c := Conference{JID: id, Name: el.Get("name"), Autojoin: xsBool(el.Get("autojoin"))}
	if n := el.Child(NS, "nick"); n != nil {
		c.Nick = n.Text()
	}
	if p := el.Child(NS, "password"); p != nil {
		c.Password = p.Text()
	}
	c.Extensions = el.Child(NS, "extensions")
	return c, true
}

// errJID is the answer to a XEP-0048 conference without a valid JID.
var errJID = stanza.Error{Type: stanza.Modify, Condition: stanza.JIDMalformed}

// ParseStorage reads a XEP-0048 <storage/>: its conferences (a room listed
// twice: the last one) and its <url/> elements. A conference without a
// valid JID is an error when strict, else it is left out.
func ParseStorage(el *xmppmap.Element, strict bool) ([]Conference, []*xmppmap.Element, error) {
	if el.Name.Space != NSLegacy || el.Name.Local != "storage" {
		return nil, nil, stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest}
	}
	var (
		confs []Conference
		urls  []*xmppmap.Element
		at    = map[string]int{}
	)
	for _, n := range el.Nodes {
		c := n.Elem
		if c == nil || c.Name.Space != NSLegacy {
			continue
		}
		switch c.Name.Local {
		case "url":
			urls = append(urls, c)
		case "conference":
			j, err := jid.Parse(c.Get("jid"))
			if err != nil || c.Get("jid") == "" {
				if strict {
					return nil, nil, errJID
				}
				continue
			}
			conf := Conference{JID: j.String(), Name: c.Get("name"), Autojoin: xsBool(c.Get("autojoin"))}
			if e := c.Child(NSLegacy, "nick"); e != nil {
				conf.Nick = e.Text()
			}
			if e := c.Child(NSLegacy, "password"); e != nil {
				conf.Password = e.Text()
			}
			if i, ok := at[conf.JID]; ok {
				confs[i] = conf
			} else {
				at[conf.JID] = len(confs)
				confs = append(confs, conf)
			}
		}
	}
	return confs, urls, nil
}

// Storage is a XEP-0048 <storage/> listing confs and urls.
func Storage(confs []Conference, urls []*xmppmap.Element) *xmppmap.Element {
	el := xmppmap.NewElement(NSLegacy, "storage")
	for _, c := range confs {
		el.Append(c.legacy())
	}
	for _, u := range urls {
		el.Append(u)
	}
	return el
}
