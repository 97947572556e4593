// Package rosterstest provides an in-memory store whose transactions hold
// rosters as well as core's state (rosters.Tx), and a recording
// rosters.Pusher, for tests.
package rosterstest

import (
	"context"
	"maps"
	"slices"
	"sort"
	"sync"

	"github.com/imppd/imppd/core"
	"github.com/imppd/imppd/core/coretest"
	"github.com/imppd/imppd/rosters"
)

type rosterData struct {
	items map[core.PrincipalID]map[core.PrincipalID]rosters.Item
	ver   map[core.PrincipalID]int64
}

func (r *rosterData) Clone() coretest.Extension {
	c := &rosterData{
		items: make(map[core.PrincipalID]map[core.PrincipalID]rosters.Item, len(r.items)),
		ver:   maps.Clone(r.ver),
	}
	for owner, its := range r.items {
		m := make(map[core.PrincipalID]rosters.Item, len(its))
		for k, it := range its {
			it.Groups = slices.Clone(it.Groups)
			m[k] = it
		}
		c.items[owner] = m
	}
	return c
}

// Tx is a coretest transaction that also implements rosters.Tx.
type Tx struct {
	*coretest.Tx
}

var _ rosters.Tx = Tx{}

// New returns an empty store whose transactions implement rosters.Tx.
func New() *coretest.Store {
	ext := &rosterData{items: map[core.PrincipalID]map[core.PrincipalID]rosters.Item{}, ver: map[core.PrincipalID]int64{}}
	return coretest.NewWith(ext, func(t *coretest.Tx) core.Tx { return Tx{t} })
}

func (t Tx) rd() *rosterData { return t.Ext().(*rosterData) }

func (t Tx) RosterItems(_ context.Context, owner core.PrincipalID) ([]rosters.Item, error) {
	var out []rosters.Item
	for _, it := range t.rd().items[owner] {
		it.Groups = slices.Clone(it.Groups)
		out = append(out, it)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Contact < out[j].Contact })
	return out, nil
}

func (t Tx) RosterItem(_ context.Context, owner, contact core.PrincipalID) (rosters.Item, bool, error) {
	it, ok := t.rd().items[owner][contact]
	it.Groups = slices.Clone(it.Groups)
	return it, ok, nil
}

func (t Tx) PutRosterItem(_ context.Context, owner core.PrincipalID, it rosters.Item) error {
	if err := t.Write(); err != nil {
		return err
	}
	rd := t.rd()
	if rd.items[owner] == nil {
		rd.items[owner] = map[core.PrincipalID]rosters.Item{}
	}
	it.Groups = slices.Clone(it.Groups)
	rd.items[owner][it.Contact] = it
	return nil
}

func (t Tx) DeleteRosterItem(_ context.Context, owner, contact core.PrincipalID) error {
	if err := t.Write(); err != nil {
		return err
	}
	delete(t.rd().items[owner], contact)
	return nil
}

func (t Tx) RosterVersion(_ context.Context, owner core.PrincipalID) (int64, error) {
	return t.rd().ver[owner], nil
}

func (t Tx) BumpRosterVersion(_ context.Context, owner core.PrincipalID) (int64, error) {
	if err := t.Write(); err != nil {
		return 0, err
	}
	rd := t.rd()
	rd.ver[owner]++
	return rd.ver[owner], nil
}

// Push is one call of Pusher.RosterPush.
type Push struct {
	Owner core.PrincipalID
	Entry rosters.Entry
	Ver   int64
}

// Pusher is a rosters.Pusher that records every push.
type Pusher struct {
	mu     sync.Mutex
	pushes []Push
}

var _ rosters.Pusher = (*Pusher)(nil)

func (p *Pusher) RosterPush(_ context.Context, owner core.PrincipalID, e rosters.Entry, ver int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e.Groups = slices.Clone(e.Groups)
	p.pushes = append(p.pushes, Push{Owner: owner, Entry: e, Ver: ver})
}

// Pushes returns the recorded pushes and forgets them.
func (p *Pusher) Pushes() []Push {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.pushes
	p.pushes = nil
	return out
}
