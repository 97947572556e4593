package core

import (
	"hash/maphash"
	"sync"
)

// agentState is what the engine knows of one connected agent.
type agentState struct {
	id        AgentID
	available bool // published an OPEN tuple (XMPP: sent initial presence)
	tuple     Tuple
}

// inbox is a principal's set of connected agents: the INSTANT INBOX's user
// agents. Agents are few per principal, so a slice beats a map.
type inbox struct {
	agents []agentState
}

// registry maps principals to their connected agents. It is sharded so that
// unrelated principals never contend on one lock.
type registry struct {
	seed   maphash.Seed
	shards [64]shard
}

type shard struct {
	mu sync.RWMutex
	m  map[PrincipalID]*inbox
}

func (r *registry) init() {
	r.seed = maphash.MakeSeed()
	for i := range r.shards {
		r.shards[i].m = make(map[PrincipalID]*inbox)
	}
}

func (r *registry) shard(p PrincipalID) *shard { return &r.shards[r.shardIndex(p)] }

func (r *registry) shardIndex(p PrincipalID) int {
	return int(maphash.String(r.seed, string(p)) % uint64(len(r.shards)))
}

// update runs f on p's inbox under the shard's write lock, creating the
// inbox if needed and dropping it when f leaves it empty.
func (r *registry) update(p PrincipalID, f func(*inbox)) {
	s := r.shard(p)
	s.mu.Lock()
	in := s.m[p]
	if in == nil {
		in = &inbox{}
		s.m[p] = in
	}
	f(in)
	if len(in.agents) == 0 {
		delete(s.m, p)
	}
	s.mu.Unlock()
}

// view runs f on p's inbox (nil when none) under the read lock.
func (r *registry) view(p PrincipalID, f func(*inbox)) {
	s := r.shard(p)
	s.mu.RLock()
	f(s.m[p])
	s.mu.RUnlock()
}

func (in *inbox) find(a AgentID) int {
	if in == nil {
		return -1
	}
	for i := range in.agents {
		if in.agents[i].id == a {
			return i
		}
	}
	return -1
}

// availableTo appends the ids of p's available agents to dst.
func (r *registry) availableTo(dst []AgentID, p PrincipalID) []AgentID {
	r.view(p, func(in *inbox) {
		if in == nil {
			return
		}
		for i := range in.agents {
			if in.agents[i].available {
				dst = append(dst, in.agents[i].id)
			}
		}
	})
	return dst
}

// tuples returns copies of p's available agents' tuples.
func (r *registry) tuples(p PrincipalID) []Tuple {
	var ts []Tuple
	r.view(p, func(in *inbox) {
		if in == nil {
			return
		}
		for i := range in.agents {
			if in.agents[i].available {
				ts = append(ts, in.agents[i].tuple)
			}
		}
	})
	return ts
}

// exists reports whether p has any connected agent.
func (r *registry) exists(p PrincipalID) bool {
	ok := false
	r.view(p, func(in *inbox) { ok = in != nil && len(in.agents) > 0 })
	return ok
}

// bareTargets appends the agents that take a message addressed to p
// (RFC 6121 §8.5.2.1): available agents of non-negative priority; all of
// them for all (headlines), else those of the highest priority.
func (r *registry) bareTargets(dst []AgentID, p PrincipalID, all bool) []AgentID {
	r.view(p, func(in *inbox) {
		if in == nil {
			return
		}
		best, start := 0, len(dst)
		for i := range in.agents {
			s := &in.agents[i]
			if !s.available || s.tuple.Priority < 0 {
				continue
			}
			if !all && s.tuple.Priority > best {
				best = s.tuple.Priority
				dst = dst[:start]
			}
			if all || s.tuple.Priority == best {
				dst = append(dst, s.id)
			}
		}
	})
	return dst
}
