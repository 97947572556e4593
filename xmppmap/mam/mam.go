// Package mam implements XEP-0313: Message Archive Management, for users'
// archives (urn:xmpp:mam:2, urn:xmpp:mam:1 and the legacy urn:xmpp:mam:0),
// with XEP-0059 paging.
//
// The three namespaces share the query form, the results and the
// preferences; they differ in how a query ends. mam:2 and mam:1 (XEP-0313
// 0.4 and later) put <fin/> in the IQ result, after the results. mam:0
// (XEP-0313 0.3, which Conversations still speaks when a server offers
// neither mam:2 nor mam:1) answers the IQ first, with an empty result, then
// sends the results, and ends with a <fin/> inside a message; it also
// accepts the filters of XEP-0313 0.2 as direct children of <query/>.
//
// Every chat or normal message with content that a local user sends or
// receives is archived under its XEP-0359 stanza id, subject to the user's
// archiving preferences. Writes are batched: the archiver commits what has
// accumulated in one transaction, so a burst costs one commit.
package mam

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/imppd/imppd/core"
	"github.com/imppd/imppd/xmppmap"
)

const (
	NS2   = "urn:xmpp:mam:2"
	NS1   = "urn:xmpp:mam:1"
	NS0   = "urn:xmpp:mam:0" // XEP-0313 0.3: <fin/> in a message
	nsExt = "urn:xmpp:mam:2#extended"
	nsRSM = "http://jabber.org/protocol/rsm"
	nsFwd = "urn:xmpp:forward:0"
	nsDly = "urn:xmpp:delay"
	nsX   = "jabber:x:data"
)

// Paging limits: a query without <max/> gets defaultMax, none more than
// maxMax (XEP-0313 §4.1.5 lets the server cap it).
const (
	defaultMax = 50
	maxMax     = 250
)

// Store keeps archives; db.DB implements it.
type Store interface {
	AppendArchive(ctx context.Context, entries []core.ArchiveEntry) error
	QueryArchive(ctx context.Context, q core.ArchiveQuery) (core.ArchivePage, error)
	ArchivePrefs(ctx context.Context, owner core.PrincipalID) (core.ArchivePrefs, error)
	SetArchivePrefs(ctx context.Context, owner core.PrincipalID, p core.ArchivePrefs) error
	PruneArchive(ctx context.Context, before time.Time) (int64, error)
}

// Module archives messages and answers archive queries.
type Module struct {
	store     Store
	retention time.Duration // 0: keep forever
	log       *slog.Logger
	srv       *xmppmap.Server

	in      chan core.ArchiveEntry
	flushes chan chan struct{}
	stop    chan struct{}
	done    chan struct{}

	mu    sync.RWMutex
	prefs map[core.PrincipalID]core.ArchivePrefs
}

// New returns the module; retention 0 keeps archives forever.
func New(store Store, retention time.Duration, log *slog.Logger) *Module {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Module{store: store, retention: retention, log: log,
		in: make(chan core.ArchiveEntry, 4096), flushes: make(chan chan struct{}),
		stop: make(chan struct{}), done: make(chan struct{}),
		prefs: make(map[core.PrincipalID]core.ArchivePrefs)}
}

func (m *Module) XEP() xmppmap.XEP {
	return xmppmap.XEP{Number: 313, Title: "Message Archive Management", Version: "1.1.1",
		Status:          "partial: user archives over mam:2, mam:1 and mam:0, extended queries, preferences, retention",
		AccountFeatures: []string{NS2, nsExt, NS1, NS0}}
}

func (m *Module) Register(s *xmppmap.Server) {
	m.srv = s
	for _, ns := range []string{NS2, NS1, NS0} {
		ns := ns
		s.HandleIQ(xmppmap.ToAccount, ns, "query", func(q *xmppmap.IQ) { m.query(q, ns) })
		s.HandleIQ(xmppmap.ToAccount, ns, "prefs", func(q *xmppmap.IQ) { m.prefsIQ(q, ns) })
	}
	s.OnMessage(m.archive)
	s.OnShutdown(m.close)
	go m.run()
}

// archivable: what is worth keeping at all (xmppmap.Storable), unless
// marked for no permanent storage (XEP-0334).
func archivable(el *xmppmap.Element) bool {
	return xmppmap.Storable(el) && el.Child("urn:xmpp:hints", "no-permanent-store") == nil
}

func (m *Module) archive(ev *xmppmap.MessageEvent) {
	if ev.ID == "" || !archivable(ev.Stanza) {
		return
	}
	ctx := context.Background()
	now := ev.Stamp
	sender, recipient := core.PrincipalID(ev.FromBare), core.PrincipalID(ev.ToBare)
	if m.wants(ctx, sender, ev.ToBare) {
		m.put(core.ArchiveEntry{Owner: sender, ID: ev.ID, With: core.AgentID(ev.ToFull), Outgoing: true, Stamp: now, Payload: ev.Payload})
	}
	if ev.Err == nil && (ev.Outcome.Delivered > 0 || ev.Outcome.Stored) && m.srv.Served(ev.To.Domainpart()) && recipient != sender {
		if m.wants(ctx, recipient, ev.FromBare) {
			m.put(core.ArchiveEntry{Owner: recipient, ID: ev.ID, With: core.AgentID(ev.FromFull), Stamp: now, Payload: ev.Payload})
		}
	}
}

func (m *Module) put(e core.ArchiveEntry) {
	select {
	case m.in <- e:
	case <-m.stop:
	}
}

// run commits what accumulated, one transaction per batch.
func (m *Module) run() {
	defer close(m.done)
	prune := time.NewTicker(time.Hour)
	defer prune.Stop()
	if m.retention > 0 {
		m.prune()
	}
	batch := make([]core.ArchiveEntry, 0, 1024)
	// drain commits everything queued now, in batches.
	drain := func(first *core.ArchiveEntry) {
		batch = batch[:0]
		if first != nil {
			batch = append(batch, *first)
		}
		for {
			select {
			case e := <-m.in:
				batch = append(batch, e)
				if len(batch) < cap(batch) {
					continue
				}
			default:
			}
			if len(batch) == 0 {
				return
			}
			if err := m.store.AppendArchive(context.Background(), batch); err != nil {
				m.log.Error("archive write failed", "entries", len(batch), "err", err)
			}
			full := len(batch) == cap(batch)
			clear(batch)
			batch = batch[:0]
			if !full {
				return
			}
		}
	}
	for {
		select {
		case e := <-m.in:
			drain(&e)
		case reply := <-m.flushes:
			drain(nil)
			close(reply)
		case <-prune.C:
			if m.retention > 0 {
				m.prune()
			}
		case <-m.stop:
			drain(nil)
			return
		}
	}
}

func (m *Module) prune() {
	n, err := m.store.PruneArchive(context.Background(), time.Now().Add(-m.retention))
	if err != nil {
		m.log.Error("archive pruning failed", "err", err)
	} else if n > 0 {
		m.log.Info("archive pruned", "entries", n, "retention", m.retention)
	}
}

func (m *Module) close() {
	select {
	case <-m.stop:
	default:
		close(m.stop)
	}
	<-m.done
}

// Flush waits until everything archived so far is committed, so a query
// sees the messages that preceded it.
func (m *Module) Flush() {
	reply := make(chan struct{})
	select {
	case m.flushes <- reply:
		<-reply
	case <-m.done:
	}
}

// getPrefs returns owner's preferences, read once.
func (m *Module) getPrefs(ctx context.Context, owner core.PrincipalID) core.ArchivePrefs {
	m.mu.RLock()
	p, ok := m.prefs[owner]
	m.mu.RUnlock()
	if ok {
		return p
	}
	p, err := m.store.ArchivePrefs(ctx, owner)
	if err != nil {
		return core.ArchivePrefs{Default: "always"}
	}
	m.mu.Lock()
	m.prefs[owner] = p
	m.mu.Unlock()
	return p
}

// wants applies owner's preferences to a message with other (a bare JID)
// (XEP-0313 §6).
func (m *Module) wants(ctx context.Context, owner core.PrincipalID, other string) bool {
	if !m.srv.Served(domainOf(string(owner))) {
		return false
	}
	p := m.getPrefs(ctx, owner)
	for _, j := range p.Never {
		if j == other {
			return false
		}
	}
	for _, j := range p.Always {
		if j == other {
			return true
		}
	}
	switch p.Default {
	case "never":
		return false
	case "roster":
		ok, err := m.srv.Rosters().Has(ctx, owner, core.PrincipalID(other))
		return err == nil && ok
	}
	return true
}

func domainOf(p string) string {
	_, d, _ := strings.Cut(p, "@")
	return d
}

var (
	errBadRequest = stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest}
	errNotFound   = stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound}
	errInternal   = stanza.Error{Type: stanza.Wait, Condition: stanza.InternalServerError}
	// A form field or RSM element the server does not support.
	errNotImplemented = stanza.Error{Type: stanza.Cancel, Condition: stanza.FeatureNotImplemented}
)

// query answers an archive query (§4): one message per result and a
// <fin/> (in the IQ result, or for mam:0 in a message after an empty IQ
// result). A get asks for the query form (§4.1.5).
func (m *Module) query(q *xmppmap.IQ, ns string) {
	if q.Stanza.Get("type") == "get" {
		q.Result(xmppmap.XML(queryForm(ns)))
		return
	}
	aq, qerr := parseQuery(q.Payload, ns)
	if qerr != nil {
		q.Error(*qerr)
		return
	}
	aq.Owner = q.Account()
	m.Flush()
	page, err := m.store.QueryArchive(context.Background(), aq)
	if err == core.ErrNoSuchEntry || (err != nil && strings.Contains(err.Error(), core.ErrNoSuchEntry.Error())) {
		q.Error(errNotFound)
		return
	}
	if err != nil {
		q.Error(errInternal)
		return
	}
	queryID := q.Payload.Get("queryid")
	se := q.Session()
	to := q.From().String()
	if ns == NS0 {
		// XEP-0313 0.3 §4.2: the server accepts the query, then pushes
		// the results, then the <fin/> message.
		q.Result(nil)
	}
	for _, e := range page.Entries {
		se.Send(resultMessage(ns, to, queryID, e))
	}
	fin := finElement(ns, queryID, page)
	if ns == NS0 {
		msg := xmppmap.NewElement("jabber:client", "message", "to", to)
		msg.Append(fin)
		se.Send(xmppmap.XML(msg))
		return
	}
	q.Result(xmppmap.XML(fin))
}

// parseQuery reads the filters of a query: the data form (FORM_TYPE ns)
// and RSM paging; for mam:0 also the direct <with/>, <start/>, <end/>
// children of XEP-0313 0.2.
func parseQuery(payload *xmppmap.Element, ns string) (core.ArchiveQuery, *stanza.Error) {
	aq := core.ArchiveQuery{Max: defaultMax}
	bad := func() (core.ArchiveQuery, *stanza.Error) { return core.ArchiveQuery{}, &errBadRequest }
	x := payload.Child(nsX, "x")
	if x != nil {
		for _, n := range x.Nodes {
			f := n.Elem
			if f == nil || f.Name.Local != "field" {
				continue
			}
			var vals []string
			for _, v := range f.Nodes {
				if v.Elem != nil && v.Elem.Name.Local == "value" {
					vals = append(vals, v.Elem.Text())
				}
			}
			val := ""
			if len(vals) > 0 {
				val = vals[0]
			}
			var ok bool
			switch f.Get("var") {
			case "FORM_TYPE":
				ok = val == ns
			case "with":
				ok = setWith(&aq, val)
			case "start":
				ok = setTime(&aq.Start, val)
			case "end":
				ok = setTime(&aq.End, val)
			case "after-id":
				aq.AfterID, ok = val, true
			case "before-id":
				aq.BeforeID, aq.Last, ok = val, true, true
			case "ids":
				aq.IDs, ok = vals, true
			default:
				// A field the server does not support (XEP-0313 §4.1.1).
				return core.ArchiveQuery{}, &errNotImplemented
			}
			if !ok {
				return bad()
			}
		}
	} else if ns == NS0 {
		for _, c := range []struct {
			name string
			set  func(string) bool
		}{
			{"with", func(v string) bool { return setWith(&aq, v) }},
			{"start", func(v string) bool { return setTime(&aq.Start, v) }},
			{"end", func(v string) bool { return setTime(&aq.End, v) }},
		} {
			if el := payload.Child(ns, c.name); el != nil && !c.set(strings.TrimSpace(el.Text())) {
				return bad()
			}
		}
	}
	if set := payload.Child(nsRSM, "set"); set != nil {
		if mx := set.Child(nsRSM, "max"); mx != nil {
			n, err := strconv.Atoi(strings.TrimSpace(mx.Text()))
			if err != nil || n < 0 {
				return bad()
			}
			aq.Max = n
		}
		if a := set.Child(nsRSM, "after"); a != nil {
			aq.AfterID = a.Text()
		}
		if b := set.Child(nsRSM, "before"); b != nil {
			aq.Last = true
			if b.Text() != "" {
				aq.BeforeID = b.Text()
			}
		}
		if set.Child(nsRSM, "index") != nil {
			return core.ArchiveQuery{}, &errNotImplemented
		}
	}
	aq.Max = min(aq.Max, maxMax)
	return aq, nil
}

func setWith(aq *core.ArchiveQuery, v string) bool {
	j, err := jid.Parse(v)
	if err != nil {
		return false
	}
	aq.With = core.AgentID(j.String())
	return true
}

func setTime(t *time.Time, v string) bool {
	p, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return false
	}
	*t = p
	return true
}

// queryForm is the answer to a request for the query form (§4.1.5).
func queryForm(ns string) *xmppmap.Element {
	q := xmppmap.NewElement(ns, "query")
	x := q.Append(xmppmap.NewElement(nsX, "x", "type", "form"))
	x.Append(xmppmap.NewElement(nsX, "field", "type", "hidden", "var", "FORM_TYPE")).
		Append(xmppmap.NewElement(nsX, "value")).AppendText(ns)
	fields := [][2]string{{"with", "jid-single"}, {"start", "text-single"}, {"end", "text-single"}}
	if ns == NS2 {
		// urn:xmpp:mam:2#extended (§4.1.2, §4.1.3)
		fields = append(fields, [2]string{"after-id", "text-single"}, [2]string{"before-id", "text-single"}, [2]string{"ids", "text-multi"})
	}
	for _, f := range fields {
		x.Append(xmppmap.NewElement(nsX, "field", "type", f[1], "var", f[0]))
	}
	return q
}

// resultMessage is one result of a query, to the requesting session.
func resultMessage(ns, to, queryID string, e core.ArchiveEntry) []byte {
	b := make([]byte, 0, len(e.Payload)+256)
	b = append(b, "<message to='"+xmppmap.Escape(to)+"' id='"+xmppmap.Escape(e.ID)+"'><result xmlns='"+ns+"'"...)
	if queryID != "" {
		b = append(b, " queryid='"+xmppmap.Escape(queryID)+"'"...)
	}
	b = append(b, " id='"+xmppmap.Escape(e.ID)+"'><forwarded xmlns='"+nsFwd+"'><delay xmlns='"+nsDly+"' stamp='"+e.Stamp.UTC().Format("2006-01-02T15:04:05.000Z")+"'/>"...)
	b = append(b, withClientNS(e.Payload)...)
	return append(b, "</forwarded></result></message>"...)
}

// finElement ends a query: whether the page is the last one, and the RSM
// set of the page. mam:0's <fin/> travels in a message and names the
// query it ends.
func finElement(ns, queryID string, page core.ArchivePage) *xmppmap.Element {
	fin := xmppmap.NewElement(ns, "fin")
	if ns == NS0 && queryID != "" {
		fin.Set("queryid", queryID)
	}
	if page.Complete {
		fin.Set("complete", "true")
	}
	set := fin.Append(xmppmap.NewElement(nsRSM, "set"))
	if len(page.Entries) > 0 {
		set.Append(xmppmap.NewElement(nsRSM, "first")).AppendText(page.Entries[0].ID)
		set.Append(xmppmap.NewElement(nsRSM, "last")).AppendText(page.Entries[len(page.Entries)-1].ID)
	}
	set.Append(xmppmap.NewElement(nsRSM, "count")).AppendText(strconv.Itoa(page.Count))
	return fin
}

// withClientNS declares jabber:client on an archived stanza, which was
// encoded to inherit it from the stream, so it keeps its namespace inside
// <forwarded/>.
func withClientNS(p []byte) []byte {
	if len(p) < 9 || string(p[:8]) != "<message" {
		return p
	}
	b := make([]byte, 0, len(p)+24)
	b = append(b, "<message xmlns='jabber:client'"...)
	return append(b, p[8:]...)
}

// prefsIQ gets or sets archiving preferences (§6).
func (m *Module) prefsIQ(q *xmppmap.IQ, ns string) {
	ctx := context.Background()
	owner := q.Account()
	if q.Stanza.Get("type") == "set" {
		p := core.ArchivePrefs{Default: q.Payload.Get("default")}
		switch p.Default {
		case "always", "never", "roster":
		default:
			q.Error(errBadRequest)
			return
		}
		for _, list := range []struct {
			name string
			dst  *[]string
		}{{"always", &p.Always}, {"never", &p.Never}} {
			if l := q.Payload.Child(ns, list.name); l != nil {
				for _, n := range l.Nodes {
					if n.Elem != nil && n.Elem.Name.Local == "jid" {
						j, err := jid.Parse(n.Elem.Text())
						if err != nil {
							q.Error(stanza.Error{Type: stanza.Modify, Condition: stanza.JIDMalformed})
							return
						}
						*list.dst = append(*list.dst, j.String())
					}
				}
			}
		}
		if err := m.store.SetArchivePrefs(ctx, owner, p); err != nil {
			q.Error(errInternal)
			return
		}
		m.mu.Lock()
		delete(m.prefs, owner)
		m.mu.Unlock()
	}
	p := m.getPrefs(ctx, owner)
	el := xmppmap.NewElement(ns, "prefs", "default", p.Default)
	for _, list := range []struct {
		name string
		jids []string
	}{{"always", p.Always}, {"never", p.Never}} {
		l := el.Append(xmppmap.NewElement(ns, list.name))
		for _, j := range list.jids {
			l.Append(xmppmap.NewElement(ns, "jid")).AppendText(j)
		}
	}
	q.Result(xmppmap.XML(el))
}
