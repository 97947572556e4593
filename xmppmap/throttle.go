package xmppmap

import (
	"sync"
	"time"
)

// throttle counts failed authentications per client address and per
// account within a window (RFC 6120 §6.4.5 lets a server limit retries).
// Past the limit, attempts fail with temporary-auth-failure until the
// window passes: long enough to stop guessing, short enough that the
// legitimate user is not locked out for long. A success clears the
// account's count.
type throttle struct {
	mu        sync.Mutex
	maxIP     int
	maxAcct   int
	window    time.Duration
	ip, acct  map[string]*failures
	lastSweep time.Time
}

type failures struct {
	n     int
	start time.Time
}

func newThrottle(maxIP, maxAcct int, window time.Duration) *throttle {
	return &throttle{maxIP: maxIP, maxAcct: maxAcct, window: window,
		ip: make(map[string]*failures), acct: make(map[string]*failures)}
}

func (t *throttle) over(m map[string]*failures, key string, max int, now time.Time) bool {
	f := m[key]
	if f == nil {
		return false
	}
	if now.Sub(f.start) > t.window {
		delete(m, key)
		return false
	}
	return f.n >= max
}

func (t *throttle) blockedIP(ip string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.over(t.ip, ip, t.maxIP, time.Now())
}

func (t *throttle) blockedAccount(acct string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.over(t.acct, acct, t.maxAcct, time.Now())
}

func (t *throttle) failed(ip, acct string) {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	add := func(m map[string]*failures, k string) {
		f := m[k]
		if f == nil || now.Sub(f.start) > t.window {
			f = &failures{start: now}
			m[k] = f
		}
		f.n++
	}
	add(t.ip, ip)
	if acct != "" {
		add(t.acct, acct)
	}
	// Forget expired entries now and then, so the maps stay bounded.
	if now.Sub(t.lastSweep) > t.window {
		t.lastSweep = now
		for _, m := range []map[string]*failures{t.ip, t.acct} {
			for k, f := range m {
				if now.Sub(f.start) > t.window {
					delete(m, k)
				}
			}
		}
	}
}

func (t *throttle) succeeded(ip, acct string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.acct, acct)
}
