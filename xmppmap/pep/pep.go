// Package pep implements XEP-0163: Personal Eventing Protocol, a
// publish-subscribe service (a subset of XEP-0060) on every account's bare
// JID, with XEP-0060 §7.1.5 publish-options as XEP-0222 and XEP-0223 use
// them.
//
// A node's items are OTHER PRESENCE MARKUP of the account (RFC 2778): their
// NOTIFICATIONS reach the audience of its presence, under the same ACCESS
// RULES (core.Engine.MarkupAudience), narrowed by the node's access model
// and by each resource's "+notify" interest (XEP-0115 capabilities).
package pep

import (
	"context"
	"errors"
	"hash/maphash"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/imppd/imppd/core"
	"github.com/imppd/imppd/xmppmap"
	"github.com/imppd/imppd/xmppmap/disco"
)

const (
	NS       = "http://jabber.org/protocol/pubsub"
	NSEvent  = NS + "#event"
	NSOwner  = NS + "#owner"
	NSErrors = NS + "#errors"
	nsDelay  = "urn:xmpp:delay"
)

// Caps is what PEP needs of the clients' capabilities cache (XEP-0115).
type Caps interface {
	Has(full, feature string) bool
	OnChange(f func(s xmppmap.Session, features []string))
}

// Module is the PEP service of every account.
type Module struct {
	store Store
	caps  Caps
	disco *disco.Module
	log   *slog.Logger
	srv   *xmppmap.Server

	locks      [64]sync.Mutex // serialise changes to one owner's nodes
	interestMu sync.Mutex
	seed       maphash.Seed

	publishHooks map[string][]func(context.Context, core.PrincipalID, core.MarkupItem)
	retractHooks map[string][]func(context.Context, core.PrincipalID, string)
	defaults     map[string]core.NodeConfig
	quota        int64
}

// SetQuota bounds the bytes of payloads one account keeps (MaxBytes by
// default).
func (m *Module) SetQuota(bytes int64) { m.quota = bytes }

// SetDefault makes cfg the configuration of node when it is created
// without one, instead of DefaultConfig: private data such as bookmarks
// stays private even when a client publishes it without publish-options.
// Call it before the server starts.
func (m *Module) SetDefault(node string, cfg core.NodeConfig) { m.defaults[node] = cfg }

func (m *Module) defaultFor(node string) core.NodeConfig {
	if c, ok := m.defaults[node]; ok {
		c.Groups = slices.Clone(c.Groups)
		return c
	}
	return DefaultConfig()
}

// New returns the module. It registers its account identity and nodes
// with d, which must be registered too.
func New(store Store, caps Caps, d *disco.Module, log *slog.Logger) *Module {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Module{store: store, caps: caps, disco: d, log: log, seed: maphash.MakeSeed(),
		publishHooks: map[string][]func(context.Context, core.PrincipalID, core.MarkupItem){},
		retractHooks: map[string][]func(context.Context, core.PrincipalID, string){},
		defaults:     map[string]core.NodeConfig{}, quota: MaxBytes}
	d.AccountIdentity(disco.Identity{Category: "pubsub", Type: "pep"})
	d.SetAccountNodes(m)
	return m
}

// Features are what XEP-0060 §10 says a service advertises for what this
// one does; they are advertised on the account (XEP-0163 §3).
var Features = func() []string {
	out := []string{NS}
	for _, f := range []string{"access-open", "access-presence", "access-roster", "access-whitelist",
		"auto-create", "auto-subscribe", "config-node", "config-node-max", "create-and-configure",
		"create-nodes", "delete-items", "delete-nodes", "filtered-notifications", "item-ids",
		"last-published", "multi-items", "persistent-items", "presence-notifications", "presence-subscribe",
		"publish", "publish-options", "purge-nodes", "retract-items", "retrieve-affiliations",
		"retrieve-default", "retrieve-items"} {
		out = append(out, NS+"#"+f)
	}
	return out
}()

func (m *Module) XEP() xmppmap.XEP {
	return xmppmap.XEP{Number: 163, Title: "Personal Eventing Protocol", Version: "1.2.2",
		Status:          "complete, over the XEP-0060 subset listed under XEP-0060; last items on presence and on subscription",
		AccountFeatures: Features}
}

func (m *Module) Register(s *xmppmap.Server) {
	m.srv = s
	for _, t := range []xmppmap.Target{xmppmap.ToAccount, xmppmap.ToContact} {
		t := t
		s.HandleIQ(t, NS, "pubsub", func(q *xmppmap.IQ) { m.handle(q, t == xmppmap.ToAccount) })
		s.HandleIQ(t, NSOwner, "pubsub", func(q *xmppmap.IQ) { m.handleOwner(q, t == xmppmap.ToAccount) })
	}
	if m.caps != nil {
		m.caps.OnChange(m.interestChanged)
	}
	s.OnSubscription(m.subscribed)
}

// OnPublish registers f, run after an item of node was published by a
// client or a module, on the publisher's goroutine. Register before the
// server starts.
func (m *Module) OnPublish(node string, f func(ctx context.Context, owner core.PrincipalID, it core.MarkupItem)) {
	m.publishHooks[node] = append(m.publishHooks[node], f)
}

// OnRetract registers f, run after an item of node was retracted; id is ""
// when the node was purged or deleted.
func (m *Module) OnRetract(node string, f func(ctx context.Context, owner core.PrincipalID, id string)) {
	m.retractHooks[node] = append(m.retractHooks[node], f)
}

func (m *Module) lock(owner core.PrincipalID) *sync.Mutex {
	l := &m.locks[maphash.String(m.seed, string(owner))%uint64(len(m.locks))]
	l.Lock()
	return l
}

var errNoNode = errors.New("pep: no such node")

// Publish publishes payload (one serialized element) as item id ("": a new
// id) of owner's node, creating the node with cfg (nil: DefaultConfig) if
// absent, and notifies as for a client's publish. It returns the item id.
func (m *Module) Publish(ctx context.Context, owner core.PrincipalID, node, id string, payload []byte, cfg *core.NodeConfig) (string, error) {
	c := m.defaultFor(node)
	if cfg != nil {
		c = *cfg
	}
	it, n, err := m.publish(ctx, owner, node, id, "", payload, func(n *core.MarkupNode, exists bool) error {
		if !exists {
			n.Config = c
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	m.published(ctx, n, it)
	return it.ID, nil
}

// publish stores an item under the owner's lock; check may refuse, given
// the node and whether it exists, or set the new node's configuration.
func (m *Module) publish(ctx context.Context, owner core.PrincipalID, node, id string, publisher core.AgentID, payload []byte,
	check func(n *core.MarkupNode, exists bool) error) (core.MarkupItem, core.MarkupNode, error) {
	l := m.lock(owner)
	defer l.Unlock()
	n, ok, err := m.store.PubNode(ctx, owner, node)
	if err != nil {
		return core.MarkupItem{}, n, err
	}
	if !ok {
		n = core.MarkupNode{Owner: owner, Name: node, Config: m.defaultFor(node)}
		nodes, err := m.store.PubNodes(ctx, owner)
		if err != nil {
			return core.MarkupItem{}, n, err
		}
		if len(nodes) >= MaxNodes {
			return core.MarkupItem{}, n, errTooManyNodes
		}
	}
	if err := check(&n, ok); err != nil {
		return core.MarkupItem{}, n, err
	}
	if err := m.withinQuota(ctx, owner, node, id, len(payload)); err != nil {
		return core.MarkupItem{}, n, err
	}
	if id == "" {
		id = m.srv.Engine().NewID()
	}
	it := core.MarkupItem{ID: id, Publisher: publisher, Stamp: m.srv.Engine().Now(), Payload: payload}
	if err := m.store.PublishItem(ctx, owner, node, n.Config, it, keep(n.Config)); err != nil {
		return it, n, err
	}
	// Notified under the owner's lock, so that watchers see the items of
	// concurrent publishes in the order they were stored.
	m.notify(ctx, n, itemXML(it))
	return it, n, nil
}

// withinQuota checks that a payload of size bytes, replacing item id of
// node if there is one, keeps owner within the quota.
func (m *Module) withinQuota(ctx context.Context, owner core.PrincipalID, node, id string, size int) error {
	used, err := m.store.PubBytes(ctx, owner)
	if err != nil || used+int64(size) <= m.quota {
		return err
	}
	// Near the quota only: what the replaced item frees counts, so that
	// an account can still republish, say, its OMEMO bundle.
	if id != "" {
		old, err := m.store.PubItems(ctx, owner, node, []string{id}, 0)
		if err != nil {
			return err
		}
		for _, it := range old {
			used -= int64(len(it.Payload))
		}
	}
	if used+int64(size) > m.quota {
		return errQuota
	}
	return nil
}

var (
	errTooManyNodes = errors.New("pep: too many nodes")
	errQuota        = errors.New("pep: storage quota reached")
)

// published runs the hooks, outside the owner's lock (a hook may publish).
func (m *Module) published(ctx context.Context, n core.MarkupNode, it core.MarkupItem) {
	for _, f := range m.publishHooks[n.Name] {
		f(ctx, n.Owner, it)
	}
}

// Retract removes item id from owner's node, notifying per the node's
// notify_retract.
func (m *Module) Retract(ctx context.Context, owner core.PrincipalID, node, id string) error {
	return m.retract(ctx, owner, node, id, false)
}

func (m *Module) retract(ctx context.Context, owner core.PrincipalID, node, id string, notify bool) error {
	l := m.lock(owner)
	n, ok, err := m.store.PubNode(ctx, owner, node)
	if err == nil && !ok {
		err = errNoNode
	}
	if err == nil {
		if ok, err = m.store.RetractItem(ctx, owner, node, id); err == nil && !ok {
			err = errNoItem
		}
	}
	if err == nil && (notify || n.Config.NotifyRetract) {
		m.notify(ctx, n, "<retract id='"+xmppmap.Escape(id)+"'/>")
	}
	l.Unlock()
	if err != nil {
		return err
	}
	for _, f := range m.retractHooks[node] {
		f(ctx, owner, id)
	}
	return nil
}

var errNoItem = errors.New("pep: no such item")

// Items returns up to max items of owner's node, newest first (max <= 0:
// all); none when there is no such node.
func (m *Module) Items(ctx context.Context, owner core.PrincipalID, node string, max int) ([]core.MarkupItem, error) {
	return m.store.PubItems(ctx, owner, node, nil, max)
}

// Node returns owner's node, if there is one.
func (m *Module) Node(ctx context.Context, owner core.PrincipalID, name string) (core.MarkupNode, bool, error) {
	return m.store.PubNode(ctx, owner, name)
}

// Item returns one item of owner's node.
func (m *Module) Item(ctx context.Context, owner core.PrincipalID, node, id string) (core.MarkupItem, bool, error) {
	its, err := m.store.PubItems(ctx, owner, node, []string{id}, 0)
	if err != nil || len(its) == 0 {
		return core.MarkupItem{}, false, err
	}
	return its[0], true, nil
}

func itemXML(it core.MarkupItem) string {
	return "<item id='" + xmppmap.Escape(it.ID) + "'>" + string(it.Payload) + "</item>"
}

// allowed reports whether requester may read owner's node with cfg, and
// the error to answer otherwise (XEP-0060 §6.5.9 and §12.1).
func (m *Module) allowed(ctx context.Context, owner, requester core.PrincipalID, cfg core.NodeConfig) (bool, *xmppmap.StanzaError) {
	if owner == requester {
		return true, nil
	}
	e := m.srv.Engine()
	if e.Refuses(ctx, owner, requester) {
		return false, &errUnavailable
	}
	switch cfg.Access {
	case core.AccessOpen:
		return true, nil
	case core.AccessPresence:
		if ok, err := e.MayWatch(ctx, owner, requester); err == nil && ok {
			return true, nil
		}
		return false, &errPresenceRequired
	case core.AccessRoster:
		if m.inGroups(ctx, owner, requester, cfg.Groups) {
			return true, nil
		}
		return false, &errNotInGroup
	}
	return false, &errClosed
}

// inGroups reports whether contact is on owner's roster in one of groups
// (any group when none is named).
func (m *Module) inGroups(ctx context.Context, owner, contact core.PrincipalID, groups []string) bool {
	return m.rosterAllowed(ctx, owner, groups)[contact]
}

// rosterAllowed lists the contacts on owner's roster in one of groups (any
// group when none is named), reading the roster once.
func (m *Module) rosterAllowed(ctx context.Context, owner core.PrincipalID, groups []string) map[core.PrincipalID]bool {
	entries, _, err := m.srv.Rosters().Get(ctx, owner)
	if err != nil {
		m.log.Warn("pep roster access", "owner", owner, "err", err)
		return nil
	}
	out := make(map[core.PrincipalID]bool, len(entries))
	for _, e := range entries {
		if len(groups) == 0 || slices.ContainsFunc(e.Groups, func(g string) bool { return slices.Contains(groups, g) }) {
			out[e.Contact] = true
		}
	}
	return out
}

// audience lists the available agents told about node n: the presence
// audience of its owner narrowed by the access model.
func (m *Module) audience(ctx context.Context, n core.MarkupNode) []core.AgentID {
	e := m.srv.Engine()
	to, err := e.MarkupAudience(ctx, n.Owner)
	if err != nil {
		m.log.Warn("pep audience", "owner", n.Owner, "err", err)
		return nil
	}
	switch n.Config.Access {
	case core.AccessPresence, core.AccessOpen:
		return to
	case core.AccessRoster:
	default: // an unknown model reaches no one but the owner, as allowed() reads it
		return slices.DeleteFunc(to, func(a core.AgentID) bool { return a.Principal() != n.Owner })
	}
	allowed := m.rosterAllowed(ctx, n.Owner, n.Config.Groups)
	return slices.DeleteFunc(to, func(a core.AgentID) bool {
		p := a.Principal()
		return p != n.Owner && !allowed[p]
	})
}

// notify sends an event about node n carrying inner (<item/>s or
// <retract/>s) to every agent of its audience interested in the node.
func (m *Module) notify(ctx context.Context, n core.MarkupNode, inner string) {
	m.send(ctx, n, m.audience(ctx, n), "<items node='"+xmppmap.Escape(n.Name)+"'>"+inner+"</items>", "")
}

// send sends one event message to each agent in to that asked for node
// n's notifications (+notify, XEP-0163 §4.3.x filtered notifications).
func (m *Module) send(_ context.Context, n core.MarkupNode, to []core.AgentID, event, extra string) {
	feature := n.Name + "+notify"
	var head, tail string
	for _, a := range to {
		if m.caps == nil || !m.caps.Has(string(a), feature) {
			continue
		}
		ss, ok := m.srv.Session(string(a))
		if !ok {
			continue
		}
		if head == "" {
			// One id for the event: ids need only be unique between a
			// sender and each recipient (RFC 6120 §8.1.3).
			head = "<message from='" + xmppmap.Escape(string(n.Owner)) + "' id='" + m.srv.Engine().NewID() + "' to='"
			tail = "' type='headline'><event xmlns='" + NSEvent + "'>" + event + "</event>" + extra + "</message>"
		}
		// One allocation per recipient: the bytes stay queued on its session.
		b := make([]byte, 0, len(head)+len(a)+8+len(tail))
		b = append(b, head...)
		b = xmppmap.AppendEscaped(b, string(a))
		ss.Send(append(b, tail...))
	}
}

type interestKey struct{}

// interestChanged runs when a session's capabilities become known: it is
// sent the last item of each node it newly asks to be notified of, of its
// own account and of everyone it watches (XEP-0163 §4.3.3,
// send_last_published_item on_sub_and_presence).
func (m *Module) interestChanged(s xmppmap.Session, features []string) {
	now := map[string]bool{}
	for _, f := range features {
		if node, ok := strings.CutSuffix(f, "+notify"); ok && node != "" {
			now[node] = true
		}
	}
	// Calls for one session may overlap (caps runs hooks on any
	// goroutine): the read and the write are one step, so each node's
	// last item is sent once.
	m.interestMu.Lock()
	prev, _ := s.Value(interestKey{}).(map[string]bool)
	s.SetValue(interestKey{}, now)
	m.interestMu.Unlock()
	fresh := map[string]bool{}
	for n := range now {
		if !prev[n] {
			fresh[n] = true
		}
	}
	if len(fresh) == 0 {
		return
	}
	ctx := context.Background()
	w := s.Account()
	owners, err := m.srv.Engine().Watched(ctx, w)
	if err != nil {
		m.log.Warn("pep last items", "jid", s.Full(), "err", err)
		return
	}
	to := []core.AgentID{core.AgentID(s.Full())}
	// Watched already applied the ACCESS RULES to these owners: their
	// presence-model nodes need no second look.
	seen := make(map[core.PrincipalID]bool, len(owners)+1)
	seen[w] = true
	for _, o := range owners {
		seen[o] = true
	}
	m.sendLast(ctx, append([]core.PrincipalID{w}, owners...), w, to, func(n core.MarkupNode) bool {
		return fresh[n.Name] && n.Config.SendLast == sendOnSubAndPres
	}, seen)
}

// subscribed sends a newly approved watcher's available resources the last
// item of each of the presentity's nodes they are interested in
// (send_last_published_item on_sub, XEP-0060 §12.20).
func (m *Module) subscribed(sub core.Subscription, fx core.Effect) {
	if !fx.Has(core.FxApproved) {
		return
	}
	var to []core.AgentID
	for _, a := range m.srv.Engine().Agents(sub.Watcher) {
		if a.Available {
			to = append(to, a.ID)
		}
	}
	if len(to) == 0 {
		return
	}
	m.sendLast(context.Background(), []core.PrincipalID{sub.Presentity}, sub.Watcher, to, func(n core.MarkupNode) bool {
		return n.Config.SendLast != sendNever
	}, nil)
}

// sendLast sends agents of watcher w the last item of each of the owners'
// nodes that want says and w may read; send filters by +notify. The nodes
// of all owners are read at once: a login must not cost a query per
// contact.
func (m *Module) sendLast(ctx context.Context, owners []core.PrincipalID, w core.PrincipalID, to []core.AgentID,
	want func(core.MarkupNode) bool, watched map[core.PrincipalID]bool) {
	nodes, err := m.store.PubNodes(ctx, owners...)
	if err != nil {
		m.log.Warn("pep last items", "watcher", w, "err", err)
		return
	}
	for _, n := range nodes {
		if !want(n) {
			continue
		}
		if !(watched[n.Owner] && n.Config.Access == core.AccessPresence) {
			if ok, _ := m.allowed(ctx, n.Owner, w, n.Config); !ok {
				continue
			}
		}
		its, err := m.store.PubItems(ctx, n.Owner, n.Name, nil, 1)
		if err != nil || len(its) == 0 {
			continue
		}
		delay := "<delay xmlns='" + nsDelay + "' stamp='" + its[0].Stamp.UTC().Format(time.RFC3339Nano) + "'/>"
		m.send(ctx, n, to, "<items node='"+xmppmap.Escape(n.Name)+"'>"+itemXML(its[0])+"</items>", delay)
	}
}

// AccountItems lists owner's nodes the requester may read, or the items of
// one of them (XEP-0060 §5.2, §5.5).
func (m *Module) AccountItems(q *xmppmap.IQ, owner core.PrincipalID, node string) ([]disco.Item, bool) {
	ctx := context.Background()
	if node == "" {
		nodes, err := m.store.PubNodes(ctx, owner)
		if err != nil {
			return nil, true
		}
		var out []disco.Item
		for _, n := range nodes {
			if ok, _ := m.allowed(ctx, owner, q.Account(), n.Config); ok {
				out = append(out, disco.Item{JID: string(owner), Node: n.Name})
			}
		}
		return out, true
	}
	n, ok, err := m.store.PubNode(ctx, owner, node)
	if err != nil || !ok {
		return nil, false
	}
	if ok, _ := m.allowed(ctx, owner, q.Account(), n.Config); !ok {
		return nil, false
	}
	its, err := m.store.PubItems(ctx, owner, node, nil, 0)
	if err != nil {
		return nil, false
	}
	out := make([]disco.Item, 0, len(its))
	for _, it := range its {
		out = append(out, disco.Item{JID: string(owner), Name: it.ID})
	}
	return out, true
}

// AccountNodeInfo describes one of owner's nodes (XEP-0060 §5.3).
func (m *Module) AccountNodeInfo(q *xmppmap.IQ, owner core.PrincipalID, node string) *disco.NodeInfo {
	ctx := context.Background()
	n, ok, err := m.store.PubNode(ctx, owner, node)
	if err != nil || !ok {
		return nil
	}
	if ok, _ := m.allowed(ctx, owner, q.Account(), n.Config); !ok {
		return nil
	}
	return &disco.NodeInfo{Identities: []disco.Identity{{Category: "pubsub", Type: "leaf"}}, Features: []string{NS}}
}

// described is an extension implemented by this package's Module, listed
// on its own in the registry and docs/XEPS.md.
type described xmppmap.XEP

func (d described) XEP() xmppmap.XEP       { return xmppmap.XEP(d) }
func (described) Register(*xmppmap.Server) {}

// Related lists the specifications the Module implements besides XEP-0163.
func Related() []xmppmap.Module {
	return []xmppmap.Module{
		described{Number: 60, Title: "Publish-Subscribe", Version: "1.26.0",
			Status: "partial: the PEP subset (publish, retract, items, create, configure, delete, purge, publish-options, " +
				"owner affiliation); no explicit subscriptions, collections or generic services"},
		described{Number: 84, Title: "User Avatar", Version: "1.1.4",
			Status: "complete: the data and metadata nodes are PEP nodes like any other; XEP-0398 (vcard) converts them to and from vCard photos"},
		described{Number: 222, Title: "Persistent Storage of Public Data via PubSub", Version: "1.0.1",
			Status: "complete: publish-options access_model=open with persist_items"},
		described{Number: 223, Title: "Persistent Storage of Private Data via PubSub", Version: "1.1.1",
			Status: "complete: publish-options access_model=whitelist with persist_items"},
	}
}

// MayRead reports whether requester may read owner's node under its
// access model (false when there is no such node).
func (m *Module) MayRead(ctx context.Context, owner core.PrincipalID, node string, requester core.PrincipalID) bool {
	n, ok, err := m.store.PubNode(ctx, owner, node)
	if err != nil || !ok {
		return false
	}
	ok, _ = m.allowed(ctx, owner, requester, n.Config)
	return ok
}
