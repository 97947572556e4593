package pep

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"mellium.im/xmpp/stanza"

	"github.com/imppd/imppd/core"
	"github.com/imppd/imppd/xmppmap"
)

// nsClient is the namespace a payload without its own inherits.
const nsClient = "jabber:client"

func appErr(t stanza.ErrorType, cond stanza.Condition, app string) xmppmap.StanzaError {
	se := xmppmap.StanzaError{Error: stanza.Error{Type: t, Condition: cond}}
	if app != "" {
		se.App = "<" + app + " xmlns='" + NSErrors + "'/>"
	}
	return se
}

// The XEP-0060 error table (§7.1.3, §6.5.9, §7.2.3, §8.x) for what this
// service refuses.
var (
	errBadRequest       = appErr(stanza.Modify, stanza.BadRequest, "")
	errNodeRequired     = appErr(stanza.Modify, stanza.BadRequest, "nodeid-required")
	errItemRequired     = appErr(stanza.Modify, stanza.BadRequest, "item-required")
	errPayloadRequired  = appErr(stanza.Modify, stanza.BadRequest, "payload-required")
	errInvalidPayload   = appErr(stanza.Modify, stanza.BadRequest, "invalid-payload")
	errNotFound         = appErr(stanza.Cancel, stanza.ItemNotFound, "")
	errForbidden        = appErr(stanza.Auth, stanza.Forbidden, "")
	errConflict         = appErr(stanza.Cancel, stanza.Conflict, "")
	errPrecond          = appErr(stanza.Cancel, stanza.Conflict, "precondition-not-met")
	errUnavailable      = appErr(stanza.Cancel, stanza.ServiceUnavailable, "")
	errPresenceRequired = appErr(stanza.Auth, stanza.NotAuthorized, "presence-subscription-required")
	errNotInGroup       = appErr(stanza.Auth, stanza.NotAuthorized, "not-in-roster-group")
	errClosed           = appErr(stanza.Cancel, stanza.NotAllowed, "closed-node")
	errNotAcceptable    = appErr(stanza.Modify, stanza.NotAcceptable, "")
	errPolicy           = appErr(stanza.Modify, stanza.PolicyViolation, "")
	errInternal         = appErr(stanza.Wait, stanza.InternalServerError, "")
)

func unsupported(feature string) xmppmap.StanzaError {
	return xmppmap.StanzaError{Error: stanza.Error{Type: stanza.Cancel, Condition: stanza.FeatureNotImplemented},
		App: "<unsupported xmlns='" + NSErrors + "' feature='" + feature + "'/>"}
}

func reply(q *xmppmap.IQ, se xmppmap.StanzaError) { q.ErrorApp(se.Error, se.App) }

// children lists the element children of el.
func children(el *xmppmap.Element) []*xmppmap.Element {
	var out []*xmppmap.Element
	for _, n := range el.Nodes {
		if n.Elem != nil {
			out = append(out, n.Elem)
		}
	}
	return out
}

// handle answers requests in the pubsub namespace, on the requester's own
// account (own) or another account.
func (m *Module) handle(q *xmppmap.IQ, own bool) {
	ctx := context.Background()
	owner := q.Account()
	if !own {
		owner = core.PrincipalID(q.To.Bare().String())
		if ok, err := q.Server().Engine().Exists(ctx, owner); err != nil || !ok {
			reply(q, errUnavailable) // RFC 6120 §10.5.3.1
			return
		}
	}
	set := q.Stanza.Get("type") == "set"
	kids := children(q.Payload)
	if len(kids) == 0 {
		reply(q, errBadRequest)
		return
	}
	op := kids[0]
	if op.Name.Space != NS {
		reply(q, errBadRequest)
		return
	}
	switch {
	case op.Name.Local == "items" && !set && len(kids) == 1:
		m.items(ctx, q, owner, op)
	case op.Name.Local == "publish" && set:
		if !own {
			reply(q, errForbidden) // only the owner publishes to PEP (XEP-0163 §4.2)
			return
		}
		var opts *xmppmap.Element
		for _, k := range kids[1:] {
			if k.Name.Space != NS || k.Name.Local != "publish-options" || opts != nil {
				reply(q, errBadRequest)
				return
			}
			opts = k
		}
		m.clientPublish(ctx, q, op, opts)
	case op.Name.Local == "retract" && set && len(kids) == 1:
		if !own {
			reply(q, errForbidden)
			return
		}
		m.clientRetract(ctx, q, op)
	case op.Name.Local == "create" && set:
		if !own {
			reply(q, errForbidden)
			return
		}
		m.create(ctx, q, op, kids[1:])
	case unsupportedOps[op.Name.Local] != "":
		// Subscriptions to PEP nodes follow presence (XEP-0163 §4.3).
		reply(q, unsupported(unsupportedOps[op.Name.Local]))
	case op.Name.Local == "affiliations" && !set:
		m.affiliations(ctx, q, owner, own)
	default:
		reply(q, errBadRequest)
	}
}

// nameOK checks the name of a node to create, answering when it is
// missing or longer than this service keeps.
func nameOK(q *xmppmap.IQ, name string) bool {
	switch {
	case name == "":
		reply(q, errNodeRequired)
	case len(name) > maxNodeName:
		reply(q, errNotAcceptable)
	default:
		return true
	}
	return false
}

// node reads the named node of owner, answering the request itself when
// there is none.
func (m *Module) node(ctx context.Context, q *xmppmap.IQ, owner core.PrincipalID, name string) (core.MarkupNode, bool) {
	if name == "" {
		reply(q, errNodeRequired)
		return core.MarkupNode{}, false
	}
	n, ok, err := m.store.PubNode(ctx, owner, name)
	if err != nil {
		m.fail(q, err)
		return n, false
	}
	if !ok {
		reply(q, errNotFound)
	}
	return n, ok
}

// unsupportedOps names the XEP-0060 §10 feature each operation needs.
var unsupportedOps = map[string]string{
	"subscribe": "subscribe", "unsubscribe": "subscribe",
	"options": "subscription-options", "subscriptions": "retrieve-subscriptions",
}

// affiliations lists the requester's affiliations (XEP-0060 §5.7): owner
// of each of its own nodes, none elsewhere.
func (m *Module) affiliations(ctx context.Context, q *xmppmap.IQ, owner core.PrincipalID, own bool) {
	b := []byte("<pubsub xmlns='" + NS + "'><affiliations>")
	if own {
		nodes, err := m.store.PubNodes(ctx, owner)
		if err != nil {
			m.fail(q, err)
			return
		}
		for _, n := range nodes {
			b = append(b, "<affiliation node='"...)
			b = xmppmap.AppendEscaped(b, n.Name)
			b = append(b, "' affiliation='owner'/>"...)
		}
	}
	q.Result(append(b, "</affiliations></pubsub>"...))
}

// items answers an items request (XEP-0060 §6.5).
func (m *Module) items(ctx context.Context, q *xmppmap.IQ, owner core.PrincipalID, op *xmppmap.Element) {
	name := op.Get("node")
	n, ok := m.node(ctx, q, owner, name)
	if !ok {
		return
	}
	if ok, se := m.allowed(ctx, owner, q.Account(), n.Config); !ok {
		reply(q, *se)
		return
	}
	var ids []string
	for _, c := range children(op) {
		if c.Name.Space == NS && c.Name.Local == "item" && c.Get("id") != "" {
			ids = append(ids, c.Get("id"))
		}
	}
	max := 0
	if v := op.Get("max_items"); v != "" && len(ids) == 0 {
		var err error
		if max, err = strconv.Atoi(v); err != nil || max < 1 {
			reply(q, errBadRequest)
			return
		}
	}
	its, err := m.store.PubItems(ctx, owner, name, ids, max)
	if err != nil {
		m.fail(q, err)
		return
	}
	b := []byte("<pubsub xmlns='" + NS + "'><items node='" + xmppmap.Escape(name) + "'>")
	for i := len(its) - 1; i >= 0; i-- { // oldest first, as published
		b = append(b, itemXML(its[i])...)
	}
	q.Result(append(b, "</items></pubsub>"...))
}

// clientPublish handles a publish request with optional publish-options
// (XEP-0060 §7.1, §7.1.5).
func (m *Module) clientPublish(ctx context.Context, q *xmppmap.IQ, op, opts *xmppmap.Element) {
	name := op.Get("node")
	if !nameOK(q, name) {
		return
	}
	items := children(op)
	switch {
	case len(items) == 0:
		reply(q, errItemRequired)
		return
	case len(items) > 1 || items[0].Name.Space != NS || items[0].Name.Local != "item":
		reply(q, errInvalidPayload)
		return
	}
	payloads := children(items[0])
	switch {
	case len(payloads) == 0:
		reply(q, errPayloadRequired) // PEP nodes are persistent with payloads (XEP-0163 §4.2)
		return
	case len(payloads) > 1 || payloads[0].Name.Space == nsClient:
		reply(q, errInvalidPayload)
		return
	}
	id := items[0].Get("id")
	if len(id) > maxItemID {
		reply(q, errNotAcceptable)
		return
	}
	var pre []formField
	if opts != nil {
		var err error
		if pre, err = formFields(opts.Child(nsData, "x"), formPublishOpts); err != nil {
			reply(q, errBadRequest)
			return
		}
	}
	payload := payloads[0].AppendXML(nil, "")
	it, n, err := m.publish(ctx, q.Account(), name, id, core.AgentID(q.From().String()), payload,
		func(n *core.MarkupNode, exists bool) error {
			for _, f := range pre {
				if !exists {
					// A new node takes the preconditions as its
					// configuration (XEP-0060 §7.1.5).
					if err := field(&n.Config, f.name, f.vals); err != nil {
						return fmt.Errorf("%w: %v", errPrecondition, err)
					}
				} else if !matches(n.Config, f.name, f.vals) {
					return fmt.Errorf("%w: %s", errPrecondition, f.name)
				}
			}
			return nil
		})
	if err != nil {
		m.fail(q, err)
		return
	}
	q.Result([]byte("<pubsub xmlns='" + NS + "'><publish node='" + xmppmap.Escape(name) + "'><item id='" + xmppmap.Escape(it.ID) + "'/></publish></pubsub>"))
	m.published(ctx, n, it)
}

// clientRetract handles a retract request (XEP-0060 §7.2).
func (m *Module) clientRetract(ctx context.Context, q *xmppmap.IQ, op *xmppmap.Element) {
	name := op.Get("node")
	if name == "" {
		reply(q, errNodeRequired)
		return
	}
	items := children(op)
	if len(items) != 1 || items[0].Name.Space != NS || items[0].Name.Local != "item" || items[0].Get("id") == "" {
		reply(q, appErr(stanza.Modify, stanza.BadRequest, "item-required"))
		return
	}
	notify, _ := parseBool(op.Get("notify"))
	if err := m.retract(ctx, q.Account(), name, items[0].Get("id"), notify); err != nil {
		m.fail(q, err)
		return
	}
	q.Result(nil)
}

// create handles a create request, with an optional configuration
// (XEP-0060 §8.1).
func (m *Module) create(ctx context.Context, q *xmppmap.IQ, op *xmppmap.Element, rest []*xmppmap.Element) {
	name := op.Get("node")
	if !nameOK(q, name) { // no instant nodes on PEP
		return
	}
	cfg := m.defaultFor(name)
	for _, r := range rest {
		if r.Name.Space != NS || r.Name.Local != "configure" {
			reply(q, errBadRequest)
			return
		}
		fs, err := formFields(r.Child(nsData, "x"), formNodeConfig)
		if err != nil {
			reply(q, errBadRequest)
			return
		}
		for _, f := range fs {
			if err := field(&cfg, f.name, f.vals); err != nil {
				reply(q, errNotAcceptable)
				return
			}
		}
	}
	owner := q.Account()
	l := m.lock(owner)
	_, exists, err := m.store.PubNode(ctx, owner, name)
	if err == nil && !exists {
		var nodes []core.MarkupNode
		if nodes, err = m.store.PubNodes(ctx, owner); err == nil && len(nodes) >= MaxNodes {
			err = errTooManyNodes
		}
	}
	if err == nil && !exists {
		err = m.store.PutPubNode(ctx, core.MarkupNode{Owner: owner, Name: name, Config: cfg})
	}
	l.Unlock()
	switch {
	case err != nil:
		m.fail(q, err)
	case exists:
		reply(q, errConflict)
	default:
		q.Result(nil)
	}
}

// handleOwner answers requests in the pubsub#owner namespace: only on the
// requester's own account (XEP-0060 §8).
func (m *Module) handleOwner(q *xmppmap.IQ, own bool) {
	if !own {
		reply(q, errForbidden)
		return
	}
	ctx := context.Background()
	kids := children(q.Payload)
	if len(kids) != 1 || kids[0].Name.Space != NSOwner {
		reply(q, errBadRequest)
		return
	}
	op, owner, set := kids[0], q.Account(), q.Stanza.Get("type") == "set"
	name := op.Get("node")
	if op.Name.Local == "default" && !set {
		q.Result([]byte("<pubsub xmlns='" + NSOwner + "'><default>" + configForm(DefaultConfig(), "form") + "</default></pubsub>"))
		return
	}
	n, ok := m.node(ctx, q, owner, name)
	if !ok {
		return
	}
	switch {
	case op.Name.Local == "configure" && !set:
		q.Result([]byte("<pubsub xmlns='" + NSOwner + "'><configure node='" + xmppmap.Escape(name) + "'>" + configForm(n.Config, "form") + "</configure></pubsub>"))
	case op.Name.Local == "configure" && set:
		m.configure(ctx, q, n, op.Child(nsData, "x"))
	case op.Name.Local == "delete" && set:
		m.remove(ctx, q, n, true)
	case op.Name.Local == "purge" && set:
		m.remove(ctx, q, n, false)
	case op.Name.Local == "affiliations" && !set:
		q.Result([]byte("<pubsub xmlns='" + NSOwner + "'><affiliations node='" + xmppmap.Escape(name) + "'><affiliation jid='" +
			xmppmap.Escape(string(owner)) + "' affiliation='owner'/></affiliations></pubsub>"))
	case op.Name.Local == "affiliations" || op.Name.Local == "subscriptions":
		reply(q, unsupported("modify-affiliations"))
	default:
		reply(q, errBadRequest)
	}
}

// configure applies a submitted node configuration (XEP-0060 §8.2.4).
func (m *Module) configure(ctx context.Context, q *xmppmap.IQ, n core.MarkupNode, x *xmppmap.Element) {
	if x == nil {
		reply(q, errBadRequest)
		return
	}
	if x.Get("type") == "cancel" {
		q.Result(nil)
		return
	}
	fs, err := formFields(x, formNodeConfig)
	if err != nil || x.Get("type") != "submit" {
		reply(q, errBadRequest)
		return
	}
	l := m.lock(n.Owner)
	cur, ok, err := m.store.PubNode(ctx, n.Owner, n.Name)
	if err == nil && !ok {
		err = errNoNode
	}
	if err == nil {
		for _, f := range fs {
			if ferr := field(&cur.Config, f.name, f.vals); ferr != nil {
				l.Unlock()
				reply(q, errNotAcceptable)
				return
			}
		}
		err = m.store.PutPubNode(ctx, cur)
	}
	if err == nil && keep(cur.Config) < keep(n.Config) {
		// Fewer items kept: drop the oldest now (XEP-0060 §8.2.4 lets the
		// service do so when max_items shrinks).
		err = m.store.TrimItems(ctx, n.Owner, n.Name, keep(cur.Config))
	}
	l.Unlock()
	if err != nil {
		m.fail(q, err)
		return
	}
	q.Result(nil)
}

// remove deletes the node, or purges its items (XEP-0060 §8.4, §8.5), and
// tells the audience.
func (m *Module) remove(ctx context.Context, q *xmppmap.IQ, n core.MarkupNode, node bool) {
	what := "purge"
	l := m.lock(n.Owner)
	var err error
	if node {
		what = "delete"
		_, err = m.store.DeletePubNode(ctx, n.Owner, n.Name)
	} else {
		err = m.store.TrimItems(ctx, n.Owner, n.Name, 0)
	}
	if err == nil {
		m.send(ctx, n, m.audience(ctx, n), "<"+what+" node='"+xmppmap.Escape(n.Name)+"'/>", "")
	}
	l.Unlock()
	if err != nil {
		m.fail(q, err)
		return
	}
	q.Result(nil)
	for _, f := range m.retractHooks[n.Name] {
		f(ctx, n.Owner, "")
	}
}

// fail answers with the error err stands for.
func (m *Module) fail(q *xmppmap.IQ, err error) {
	switch {
	case errors.Is(err, errPrecondition):
		q.ErrorApp(errPrecond.Error, errPrecond.App)
	case errors.Is(err, errNoNode), errors.Is(err, errNoItem):
		reply(q, errNotFound)
	case errors.Is(err, errTooManyNodes), errors.Is(err, errQuota):
		// RFC 6120 §8.3.3.12: a local service policy, not a transient state.
		reply(q, errPolicy)
	default:
		m.log.Warn("pep", "jid", q.From().String(), "id", q.Stanza.Get("id"), "err", err)
		reply(q, errInternal)
	}
}
