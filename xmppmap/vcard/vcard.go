// Package vcard implements XEP-0054: vcard-temp, with the server's side of
// vCard-based avatars: XEP-0398: User Avatar to vCard-Based Avatars
// Conversion and XEP-0153: vCard-Based Avatars.
//
// An account's vCard is stored whole, as the client set it, under the
// account-data key "vcard-temp". vCards are public (XEP-0054 §5): any
// account may read another's, unless the core's ACCESS RULES refuse it
// everything of the owner (a block), when it is answered as if the account
// did not exist.
//
// With a PEP service (XEP-0163) and the XEP-0398 module enabled, the avatar
// lives in the account's XEP-0084 nodes, not in the vCard: a PHOTO set in a
// vCard is published there, and the PHOTO of a vCard read is made from
// them, for requesters the data node's access model lets read it. The
// XEP-0153 module adds the avatar's hash to the account's available
// presence (XEP-0398 §4), broadcast or directed.
package vcard

import (
	"context"
	"strings"
	"sync"

	"mellium.im/xmpp/stanza"

	"github.com/imppd/imppd/core"
	"github.com/imppd/imppd/xmppmap"
)

// Namespaces, nodes and keys.
const (
	NS           = "vcard-temp"                      // XEP-0054
	NSUpdate     = "vcard-temp:x:update"             // XEP-0153
	NSConversion = "urn:xmpp:pep-vcard-conversion:0" // XEP-0398 §2
	NodeData     = "urn:xmpp:avatar:data"            // XEP-0084
	NodeMetadata = "urn:xmpp:avatar:metadata"        // XEP-0084
	Key          = "vcard-temp"                      // Store key of an account's vCard
)

// MaxStored bounds what one account's vCard keeps (after a PHOTO converted
// to an XEP-0084 avatar was taken out). The stanza size limit bounds the
// whole request already; this one keeps the store small even when that
// limit is raised.
const MaxStored = 128 << 10

// Store keeps small per-account values; db.DB implements it.
type Store interface {
	// AccountData returns the value stored under key; nil when none.
	AccountData(ctx context.Context, owner core.PrincipalID, key string) ([]byte, error)
	// PutAccountData stores value under key; nil deletes it.
	PutAccountData(ctx context.Context, owner core.PrincipalID, key string, value []byte) error
}

// PEP is what the avatar conversion needs of the personal eventing service
// (XEP-0163); *pep.Module implements it.
type PEP interface {
	// Publish publishes payload (one serialized element) as item id of
	// owner's node, creating the node with cfg if absent, and notifies.
	Publish(ctx context.Context, owner core.PrincipalID, node, id string, payload []byte, cfg *core.NodeConfig) (string, error)
	// Items returns up to max items of owner's node, newest first.
	Items(ctx context.Context, owner core.PrincipalID, node string, max int) ([]core.MarkupItem, error)
	// Item returns one item of owner's node.
	Item(ctx context.Context, owner core.PrincipalID, node, id string) (core.MarkupItem, bool, error)
	// OnPublish registers f, run after an item of node was published.
	OnPublish(node string, f func(ctx context.Context, owner core.PrincipalID, it core.MarkupItem))
	// OnRetract registers f, run after an item of node was retracted (id
	// "" when the node was purged or deleted).
	OnRetract(node string, f func(ctx context.Context, owner core.PrincipalID, id string))
}

// Reader is implemented by a PEP service that can tell whether requester
// may read owner's node under its access model. Without it a vCard shows
// the avatar to the owner and to those allowed to see the owner's
// presence only: XEP-0084's default access model.
type Reader interface {
	MayRead(ctx context.Context, owner core.PrincipalID, node string, requester core.PrincipalID) bool
}

// New returns the modules: XEP-0054 (vCard storage), XEP-0153 (the avatar
// hash in presence) and, when pep is not nil, XEP-0398 (the avatar kept in
// PEP). Pass a nil interface, not a nil *pep.Module, when there is no PEP.
func New(store Store, pep PEP) []xmppmap.Module {
	s := &service{store: store, pep: pep, maxStored: MaxStored, known: map[core.PrincipalID]avatar{}}
	mods := []xmppmap.Module{tempModule{s}, updateModule{s}}
	if pep != nil {
		mods = append(mods, conversionModule{s})
	}
	return mods
}

// service is the state the three modules share.
type service struct {
	store     Store
	pep       PEP
	srv       *xmppmap.Server
	convert   bool // the XEP-0398 module is registered
	maxStored int

	mu    sync.Mutex
	known map[core.PrincipalID]avatar // accounts with available sessions
}

// tempModule is XEP-0054.
type tempModule struct{ *service }

func (m tempModule) XEP() xmppmap.XEP {
	return xmppmap.XEP{Number: 54, Title: "vcard-temp", Version: "1.3.0",
		Status:          "complete: accounts' vCards (own set and get, others' get); the server itself has none",
		Features:        []string{NS},
		AccountFeatures: []string{NS}}
}

func (m tempModule) Register(s *xmppmap.Server) {
	m.srv = s
	s.HandleIQ(xmppmap.ToAccount, NS, "vCard", func(q *xmppmap.IQ) { m.handle(q, true) })
	s.HandleIQ(xmppmap.ToContact, NS, "vCard", func(q *xmppmap.IQ) { m.handle(q, false) })
}

func (s *service) handle(q *xmppmap.IQ, own bool) {
	ctx := context.Background()
	switch {
	case q.Stanza.Get("type") == "get":
		s.get(ctx, q, own)
	case own:
		s.set(ctx, q)
	default:
		// §3.2: setting another user's vCard.
		q.Error(stanza.Error{Type: stanza.Auth, Condition: stanza.Forbidden})
	}
}

var (
	errInternal    = stanza.Error{Type: stanza.Wait, Condition: stanza.InternalServerError}
	errUnavailable = stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable}
)

// get answers a vCard retrieval (XEP-0054 §3.1, §3.3).
func (s *service) get(ctx context.Context, q *xmppmap.IQ, own bool) {
	owner := q.Account()
	if !own {
		owner = core.PrincipalID(q.To.Bare().String())
		exists, err := s.srv.Engine().Exists(ctx, owner)
		if err != nil {
			q.Error(errInternal)
			return
		}
		// §3.3: no such user is service-unavailable (as RFC 6121 §8.5.1
		// answers IQs to one); a block looks the same (XEP-0191 §3.5).
		if !exists || s.srv.Engine().Refuses(ctx, owner, q.Account()) {
			q.Error(errUnavailable)
			return
		}
	}
	vc, err := s.stored(ctx, owner)
	if err != nil {
		q.Error(errInternal)
		return
	}
	if s.convert {
		photo, known, err := s.pepPhoto(ctx, owner, q.Account())
		if err != nil {
			q.Error(errInternal)
			return
		}
		if known {
			// The XEP-0084 avatar is the photo, and no avatar is none.
			if vc != nil {
				vc.Nodes = withoutPhotos(vc.Nodes, func(*xmppmap.Element) bool { return true })
			}
			if photo != nil {
				if vc == nil {
					vc = xmppmap.NewElement(NS, "vCard")
				}
				vc.Append(photo)
			}
		}
	}
	switch {
	case vc != nil:
		q.Result(xmppmap.XML(vc))
	case own:
		// §3.1: an empty vCard when there is none.
		q.Result([]byte("<vCard xmlns='" + NS + "'/>"))
	default:
		// §3.3: "the server MUST return a stanza error, which SHOULD be
		// service-unavailable or item-not-found".
		q.Error(stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound})
	}
}

// stored returns owner's stored vCard, nil when none.
func (s *service) stored(ctx context.Context, owner core.PrincipalID) (*xmppmap.Element, error) {
	b, err := s.store.AccountData(ctx, owner, Key)
	if err != nil || b == nil {
		return nil, err
	}
	return xmppmap.ParseElement(b, 256)
}

// set stores the requester's vCard (XEP-0054 §3.2); with the conversion,
// its PHOTO becomes the XEP-0084 avatar (XEP-0398 §3.2).
func (s *service) set(ctx context.Context, q *xmppmap.IQ) {
	owner := q.Account()
	vc := q.Payload
	ph, err := readPhoto(vc)
	if err != nil {
		q.Error(stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest,
			Text: map[string]string{"en": "PHOTO BINVAL is not base64"}})
		return
	}
	keep := vc
	if s.convert {
		// What goes to PEP leaves the vCard; a PHOTO that only points
		// elsewhere (EXTVAL) stays, as it cannot be converted.
		keep = &xmppmap.Element{Name: vc.Name, Attr: vc.Attr,
			Nodes: withoutPhotos(vc.Nodes, func(p *xmppmap.Element) bool { return p.Child(NS, "EXTVAL") == nil })}
	}
	b := xmppmap.XML(keep)
	if len(b) > s.maxStored {
		// RFC 6120 §8.3.3.12: a local policy, named in <text/>; the
		// same condition the server uses for a message that is too large.
		q.Error(stanza.Error{Type: stanza.Modify, Condition: stanza.PolicyViolation,
			Text: map[string]string{"en": "vCard too large"}})
		return
	}
	next := avatar{set: true}
	if ph != nil {
		next.hash = ph.hash
	}
	if s.convert {
		cur, err := s.current(ctx, owner)
		if err == nil {
			err = s.publishAvatar(ctx, owner, cur, ph)
		}
		if err != nil {
			q.Error(errInternal)
			return
		}
		next.set = cur.set || ph != nil
	}
	if err := s.store.PutAccountData(ctx, owner, Key, b); err != nil {
		q.Error(errInternal)
		return
	}
	s.remember(owner, next, true)
	q.Result(nil)
}

// withoutPhotos returns nodes without the PHOTO children drop selects.
func withoutPhotos(nodes []xmppmap.Node, drop func(*xmppmap.Element) bool) []xmppmap.Node {
	out := make([]xmppmap.Node, 0, len(nodes))
	for _, n := range nodes {
		if e := n.Elem; e != nil && e.Name.Space == NS && e.Name.Local == "PHOTO" && drop(e) {
			continue
		}
		out = append(out, n)
	}
	return out
}

// trimSpace removes all whitespace, which base64 in vCards may contain
// (XEP-0153 §4.6: "any whitespace characters ... MUST be ignored").
func trimSpace(s string) string {
	if strings.IndexAny(s, " \t\r\n") < 0 {
		return s
	}
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
			return -1
		}
		return r
	}, s)
}
