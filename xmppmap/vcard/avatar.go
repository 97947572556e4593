package vcard

import (
	"bytes"
	"context"
	"crypto/sha1" // #nosec: XEP-0084 and XEP-0153 name images by SHA-1; not a security use
	"encoding/base64"
	"encoding/hex"
	"image"
	_ "image/gif" // image.DecodeConfig learns the formats XEP-0153 §4.6 names
	_ "image/jpeg"
	_ "image/png"
	"strconv"
	"strings"

	"github.com/imppd/imppd/core"
	"github.com/imppd/imppd/xmppmap"
)

// avatar is what an account's presence says of its avatar (XEP-0153 §4.1).
type avatar struct {
	hash string // SHA-1 of the image, lower-case hex; "" for none
	set  bool   // the account has an avatar or has said it has none
}

// photo is an image from a vCard's PHOTO.
type photo struct {
	data []byte
	typ  string // content type: from the image itself, else TYPE
	hash string
	w, h int // 0 when the format is not known
}

// readPhoto decodes the first PHOTO's BINVAL; nil when there is none or it
// is empty (a client removing its avatar).
func readPhoto(vc *xmppmap.Element) (*photo, error) {
	p := vc.Child(NS, "PHOTO")
	if p == nil {
		return nil, nil
	}
	bv := p.Child(NS, "BINVAL")
	if bv == nil {
		return nil, nil
	}
	data, err := base64.StdEncoding.DecodeString(trimSpace(bv.Text()))
	if err != nil || len(data) == 0 {
		return nil, err
	}
	sum := sha1.Sum(data)
	ph := &photo{data: data, hash: hex.EncodeToString(sum[:])}
	if t := p.Child(NS, "TYPE"); t != nil {
		ph.typ = strings.TrimSpace(t.Text())
	}
	// XEP-0153 §5: the image's own content type wins over TYPE.
	if cfg, format, err := image.DecodeConfig(bytes.NewReader(data)); err == nil {
		ph.typ, ph.w, ph.h = "image/"+format, cfg.Width, cfg.Height
	}
	if ph.typ == "" {
		ph.typ = "application/octet-stream"
	}
	return ph, nil
}

// current returns what owner's presence should say, reading it once.
func (s *service) current(ctx context.Context, owner core.PrincipalID) (avatar, error) {
	s.mu.Lock()
	a, ok := s.known[owner]
	s.mu.Unlock()
	if ok {
		return a, nil
	}
	if s.convert {
		its, err := s.pep.Items(ctx, owner, NodeMetadata, 1)
		if err != nil {
			return a, err
		}
		if len(its) > 0 {
			a = metadataAvatar(its[0].Payload)
		}
	} else {
		vc, err := s.stored(ctx, owner)
		if err != nil {
			return a, err
		}
		if vc != nil {
			a.set = true
			if ph, err := readPhoto(vc); err == nil && ph != nil {
				a.hash = ph.hash
			}
		}
	}
	s.remember(owner, a, false)
	return a, nil
}

// remember caches a; without replace, a value someone stored meanwhile is
// newer and stays.
func (s *service) remember(owner core.PrincipalID, a avatar, replace bool) {
	s.mu.Lock()
	if len(s.known) >= maxKnown {
		// Reads of offline accounts' vCards fill the cache too; it is
		// only a cache, so start again rather than grow with them.
		clear(s.known)
	}
	if _, ok := s.known[owner]; replace || !ok {
		s.known[owner] = a
	}
	s.mu.Unlock()
}

// maxKnown bounds the accounts whose avatar hash is cached.
const maxKnown = 1 << 14

func (s *service) forget(owner core.PrincipalID) {
	s.mu.Lock()
	delete(s.known, owner)
	s.mu.Unlock()
}

// info is one <info/> of XEP-0084 metadata.
type info struct {
	id, typ, url string
}

// metadataInfo picks the info a vCard can carry: the first without a url
// (XEP-0398 §3.1), else the first; ok is false for empty metadata
// (XEP-0084 §4.5: the avatar is disabled).
func metadataInfo(payload []byte) (info, bool) {
	md, err := xmppmap.ParseElement(payload, 8)
	if err != nil || md.Name.Space != NodeMetadata || md.Name.Local != "metadata" {
		return info{}, false
	}
	var first *info
	for _, n := range md.Nodes {
		e := n.Elem
		if e == nil || e.Name.Space != NodeMetadata || e.Name.Local != "info" {
			continue
		}
		in := info{id: strings.ToLower(e.Get("id")), typ: e.Get("type"), url: e.Get("url")}
		if in.url == "" {
			return in, true
		}
		if first == nil {
			first = &in
		}
	}
	if first != nil {
		return *first, true
	}
	return info{}, false
}

// metadataAvatar is what a metadata item means for presence: the hash of
// the image stored in the data node, or none.
func metadataAvatar(payload []byte) avatar {
	in, ok := metadataInfo(payload)
	if !ok || in.url != "" || !isSHA1(in.id) {
		return avatar{set: true}
	}
	return avatar{hash: in.id, set: true}
}

func isSHA1(id string) bool {
	if len(id) != 40 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}

// avatarNode is how the conversion creates avatar nodes: open, as the
// vCard the avatar came from is (XEP-0054 §5, XEP-0398 §6), one item.
var avatarNode = core.NodeConfig{Access: core.AccessOpen, Persist: true, MaxItems: 1,
	SendLast: "on_sub_and_presence", NotifyRetract: true}

// publishAvatar makes ph owner's XEP-0084 avatar (XEP-0398 §3.2): the data
// first, then the metadata that points to it; with no photo, an avatar
// there was is disabled (XEP-0084 §4.5).
func (s *service) publishAvatar(ctx context.Context, owner core.PrincipalID, cur avatar, ph *photo) error {
	cfg := avatarNode
	if ph == nil {
		if cur.hash == "" {
			return nil
		}
		_, err := s.pep.Publish(ctx, owner, NodeMetadata, "", []byte("<metadata xmlns='"+NodeMetadata+"'/>"), &cfg)
		return err
	}
	if ph.hash == cur.hash {
		return nil // the same image again (XEP-0153 §4.2 clients re-set it)
	}
	data := xmppmap.NewElement(NodeData, "data")
	data.AppendText(base64.StdEncoding.EncodeToString(ph.data))
	if _, err := s.pep.Publish(ctx, owner, NodeData, ph.hash, xmppmap.XML(data), &cfg); err != nil {
		return err
	}
	in := xmppmap.NewElement(NodeMetadata, "info", "bytes", strconv.Itoa(len(ph.data)), "id", ph.hash, "type", ph.typ)
	if ph.w > 0 && ph.h > 0 {
		in.Set("width", strconv.Itoa(ph.w))
		in.Set("height", strconv.Itoa(ph.h))
	}
	md := xmppmap.NewElement(NodeMetadata, "metadata")
	md.Append(in)
	_, err := s.pep.Publish(ctx, owner, NodeMetadata, ph.hash, xmppmap.XML(md), &cfg)
	return err
}

// pepPhoto builds the PHOTO of owner's vCard from the XEP-0084 avatar, as
// requester may see it (XEP-0398 §3.1). known is false when owner never
// published avatar metadata, so the stored vCard's PHOTO stands.
func (s *service) pepPhoto(ctx context.Context, owner, requester core.PrincipalID) (p *xmppmap.Element, known bool, err error) {
	its, err := s.pep.Items(ctx, owner, NodeMetadata, 1)
	if err != nil || len(its) == 0 {
		return nil, false, err
	}
	in, ok := metadataInfo(its[0].Payload)
	if !ok || !s.mayRead(ctx, owner, requester) {
		return nil, true, nil
	}
	p = xmppmap.NewElement(NS, "PHOTO")
	if in.typ != "" {
		p.Append(xmppmap.NewElement(NS, "TYPE")).AppendText(in.typ)
	}
	if in.url != "" {
		p.Append(xmppmap.NewElement(NS, "EXTVAL")).AppendText(in.url)
		return p, true, nil
	}
	it, ok, err := s.pep.Item(ctx, owner, NodeData, in.id)
	if err != nil || !ok {
		return nil, true, err
	}
	data, err := xmppmap.ParseElement(it.Payload, 8)
	if err != nil || data.Name.Space != NodeData || data.Name.Local != "data" {
		return nil, true, nil
	}
	raw, err := base64.StdEncoding.DecodeString(trimSpace(data.Text()))
	sum := sha1.Sum(raw)
	if err != nil || len(raw) == 0 || hex.EncodeToString(sum[:]) != in.id {
		// XEP-0398 §3.1: the image must match its id.
		return nil, true, nil
	}
	p.Append(xmppmap.NewElement(NS, "BINVAL")).AppendText(base64.StdEncoding.EncodeToString(raw))
	return p, true, nil
}

// mayRead reports whether requester may see owner's avatar nodes.
func (s *service) mayRead(ctx context.Context, owner, requester core.PrincipalID) bool {
	if owner == requester {
		return true
	}
	if r, ok := s.pep.(Reader); ok {
		return r.MayRead(ctx, owner, NodeMetadata, requester) && r.MayRead(ctx, owner, NodeData, requester)
	}
	ok, err := s.srv.Engine().MayWatch(ctx, owner, requester)
	return err == nil && ok
}

// conversionModule is XEP-0398.
type conversionModule struct{ *service }

func (m conversionModule) XEP() xmppmap.XEP {
	return xmppmap.XEP{Number: 398, Title: "User Avatar to vCard-Based Avatars Conversion", Version: "1.0.0",
		Status:          "complete: both directions; the avatar's hash in available presence",
		AccountFeatures: []string{NSConversion}}
}

func (m conversionModule) Register(s *xmppmap.Server) {
	m.srv = s
	m.convert = true
	m.pep.OnPublish(NodeMetadata, func(_ context.Context, owner core.PrincipalID, it core.MarkupItem) {
		m.remember(owner, metadataAvatar(it.Payload), true)
	})
	m.pep.OnRetract(NodeMetadata, func(_ context.Context, owner core.PrincipalID, _ string) {
		m.forget(owner) // read again when next needed
	})
}

// updateModule is the server's part of XEP-0153: the hash in presence.
type updateModule struct{ *service }

func (m updateModule) XEP() xmppmap.XEP {
	return xmppmap.XEP{Number: 153, Title: "vCard-Based Avatars", Version: "1.1.1",
		Status: "complete for a server: the avatar's hash added to available presence (XEP-0398 §4)"}
}

func (m updateModule) Register(s *xmppmap.Server) {
	m.srv = s
	s.OnPresence(func(ev *xmppmap.PresenceEvent) { m.inject(ev.Session.Account(), ev.Stanza) })
	// XEP-0398 §4: directed presence too. A route filter sees the stanza
	// before it is serialized; it never refuses.
	s.OnRoute(func(ev *xmppmap.RouteEvent) *xmppmap.StanzaError {
		if ev.Stanza.Name.Local == "presence" && ev.Stanza.Get("type") == "" {
			m.inject(ev.From.Account(), ev.Stanza)
		}
		return nil
	})
	s.OnSessionEnd(func(ss xmppmap.Session) {
		owner := ss.Account()
		for _, a := range s.Engine().Agents(owner) {
			if string(a.ID) != ss.Full() {
				return
			}
		}
		m.forget(owner)
	})
}

// inject puts owner's avatar hash into an available presence, per
// XEP-0398 §4: added when the client sent no update element and the
// account has said something about its avatar; an update element without
// <photo/> ("not ready", XEP-0153 §4.1) is completed; a <photo/>, empty or
// not, says what the server knows once the account has said anything
// about its avatar: a client that read its vCard before another client
// changed the avatar through PEP must not tell contacts it has none.
func (s *service) inject(owner core.PrincipalID, pres *xmppmap.Element) {
	a, err := s.current(context.Background(), owner)
	if err != nil {
		return
	}
	photo := func() *xmppmap.Element {
		p := xmppmap.NewElement(NSUpdate, "photo")
		if a.hash != "" {
			p.AppendText(a.hash)
		}
		return p
	}
	x := pres.Child(NSUpdate, "x")
	if x == nil {
		if a.set {
			pres.Append(xmppmap.NewElement(NSUpdate, "x")).Append(photo())
		}
		return
	}
	p := x.Child(NSUpdate, "photo")
	if p == nil {
		x.Append(photo())
		return
	}
	if a.set && !strings.EqualFold(strings.TrimSpace(p.Text()), a.hash) {
		p.Nodes = nil
		if a.hash != "" {
			p.Nodes = []xmppmap.Node{{Text: a.hash}}
		}
	}
}
