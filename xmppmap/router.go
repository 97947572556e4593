package xmppmap

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
)

// router maps bound full JIDs to their sessions. It is sharded so that
// routing never contends on one lock. Principals' agents are the core's
// business; this only resolves an agent to the connection that carries it.
type router struct {
	seed   maphash.Seed
	shards [64]routerShard
	n      atomic.Int64
}

type routerShard struct {
	mu sync.RWMutex
	m  map[string]*session
}

func (r *router) init() {
	r.seed = maphash.MakeSeed()
	for i := range r.shards {
		r.shards[i].m = make(map[string]*session)
	}
}

func (r *router) shard(full string) *routerShard {
	return &r.shards[maphash.String(r.seed, full)%uint64(len(r.shards))]
}

func (r *router) get(full string) *session {
	s := r.shard(full)
	s.mu.RLock()
	ss := s.m[full]
	s.mu.RUnlock()
	return ss
}

// add binds full to ss and returns the session it replaced, if any.
func (r *router) add(full string, ss *session) *session {
	s := r.shard(full)
	s.mu.Lock()
	old := s.m[full]
	s.m[full] = ss
	s.mu.Unlock()
	if old == nil {
		r.n.Add(1)
	}
	return old
}

// remove unbinds full if it is still bound to ss.
func (r *router) remove(full string, ss *session) {
	s := r.shard(full)
	s.mu.Lock()
	ok := s.m[full] == ss
	if ok {
		delete(s.m, full)
	}
	s.mu.Unlock()
	if ok {
		r.n.Add(-1)
	}
}

func (r *router) count() int { return int(r.n.Load()) }
