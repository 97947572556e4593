package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type loginSpec struct{ user, resource string }

type loginResult struct {
	clients []*client // nil where the login failed
	lat     samples
	failed  errs
	elapsed time.Duration
}

// loginMany logs the specs in with at most conc logins in flight. The
// latency of each is from before the TCP connect to the bound resource.
func (o *opts) loginMany(specs []loginSpec, conc int) *loginResult {
	res := &loginResult{clients: make([]*client, len(specs))}
	var mu sync.Mutex
	next := atomic.Int64{}
	var wg sync.WaitGroup
	t0 := time.Now()
	for w := 0; w < min(conc, len(specs)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(specs) {
					return
				}
				s := now()
				c, err := o.login(specs[i].user, specs[i].resource)
				if err != nil {
					mu.Lock()
					res.failed.add(err)
					mu.Unlock()
					continue
				}
				res.lat.add(now() - s)
				res.clients[i] = c
			}
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(t0)
	return res
}

func closeAll(cs []*client) {
	for _, c := range cs {
		if c != nil {
			c.close()
		}
	}
}

// login: N logins one after another, then N at concurrency C. Each session
// is closed right after its bind.
func runLogin(o *opts) (result, error) {
	specs := make([]loginSpec, o.n)
	for i := range specs {
		specs[i] = loginSpec{o.user(o.first + i), fmt.Sprintf("login%d", i)}
	}
	r := result{"n": o.n, "concurrency": o.conc}
	var failures errs
	for _, phase := range []struct {
		name string
		conc int
	}{{"seq", 1}, {"conc", o.conc}} {
		lr := o.loginMany(specs, phase.conc)
		ok := lr.lat.n()
		for _, c := range lr.clients {
			if c != nil {
				r["tls"] = c.tlsV
				break
			}
		}
		closeAll(lr.clients)
		r[phase.name+"_logins_per_s"] = round(float64(ok)/lr.elapsed.Seconds(), 1)
		r[phase.name+"_p50_ms"] = round(lr.lat.pct(50), 2)
		r[phase.name+"_p99_ms"] = round(lr.lat.pct(99), 2)
		r[phase.name+"_failed"] = lr.failed.n
		failures.n += lr.failed.n
		failures.first = append(failures.first, lr.failed.first...)
		time.Sleep(500 * time.Millisecond) // let the server reap the closed sessions
	}
	return r, failures.err()
}

// flow is one direction of a pair: a bounded window of messages in flight.
type flow struct {
	from, to *client
	tokens   chan struct{}
	sent     atomic.Int64
	recv     atomic.Int64
	lastSeq  atomic.Int64
	dupes    atomic.Int64
	reorder  atomic.Int64
}

// messages: P pairs of online users send each other chat messages at their
// full JIDs for T seconds, each sender with at most W messages in flight.
func runMessages(o *opts) (result, error) {
	n := 2 * o.pairs
	specs := make([]loginSpec, n)
	for i := range specs {
		specs[i] = loginSpec{o.user(o.first + i), "msg"}
	}
	lr := o.loginMany(specs, o.conc)
	defer closeAll(lr.clients)
	if err := lr.failed.err(); err != nil {
		return nil, fmt.Errorf("login: %w", err)
	}
	cs := lr.clients
	flows := make([]*flow, n) // flows[i]: messages from cs[i] to its partner
	for i := range cs {
		flows[i] = &flow{from: cs[i], to: cs[i^1], tokens: make(chan struct{}, o.window)}
		flows[i].lastSeq.Store(-1)
	}
	var lat samples
	var errStanzas, stray atomic.Int64
	var dead atomic.Int64
	var lastRecv atomic.Int64
	for i, c := range cs {
		in := flows[i^1] // messages arriving at cs[i]
		var local []int64
		var lmu sync.Mutex
		go func() {
			err := c.serve(func(el []byte) {
				if el[1] != 'm' || elName(el) != "message" {
					return
				}
				if attr(el, "type") == "error" {
					errStanzas.Add(1)
					return
				}
				body, ok := childText(el, "body")
				if !ok {
					return
				}
				seq, ts, ok := parseBody(body)
				if !ok {
					stray.Add(1)
					return
				}
				t := now()
				lmu.Lock()
				local = append(local, t-ts)
				if len(local) >= 4096 {
					lat.addAll(local)
					local = local[:0]
				}
				lmu.Unlock()
				if prev := in.lastSeq.Swap(seq); seq <= prev {
					if seq == prev {
						in.dupes.Add(1)
					} else {
						in.reorder.Add(1)
					}
				}
				in.recv.Add(1)
				lastRecv.Store(t)
				select {
				case <-in.tokens:
				default:
				}
			})
			lmu.Lock()
			lat.addAll(local)
			local = nil
			lmu.Unlock()
			if err != nil && !c.closed.Load() {
				dead.Add(1)
			}
		}()
	}
	for _, c := range cs {
		c.send("<presence/>")
	}
	time.Sleep(500 * time.Millisecond)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	srv0 := procCPU(o.pid)
	start := now()
	for _, f := range flows {
		wg.Add(1)
		go func() {
			defer wg.Done()
			to := escape(f.to.jid)
			b := make([]byte, 0, 256)
			for seq := int64(0); ; seq++ {
				select {
				case f.tokens <- struct{}{}:
				case <-stop:
					return
				}
				select {
				case <-stop:
					<-f.tokens
					return
				default:
				}
				b = b[:0]
				b = append(b, "<message type='chat' to='"...)
				b = append(b, to...)
				b = append(b, "' id='m"...)
				b = strconv.AppendInt(b, seq, 10)
				b = append(b, "'><body>"...)
				b = strconv.AppendInt(b, seq, 10)
				b = append(b, ' ')
				b = strconv.AppendInt(b, now(), 10)
				b = append(b, "</body></message>"...)
				if err := f.from.sendBytes(b); err != nil {
					<-f.tokens
					return
				}
				f.sent.Add(1)
			}
		}()
	}
	time.Sleep(o.duration)
	close(stop)
	stopAt := now()
	wg.Wait()
	total := func() (s, r int64) {
		for _, f := range flows {
			s += f.sent.Load()
			r += f.recv.Load()
		}
		return
	}
	deadline := time.Now().Add(o.drain)
	for {
		s, r := total()
		if r >= s || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	sent, recv := total()
	srvPhase := procCPU(o.pid) - srv0
	var dupes, reorder int64
	for _, f := range flows {
		dupes += f.dupes.Load()
		reorder += f.reorder.Load()
	}
	closeAll(cs)
	time.Sleep(100 * time.Millisecond) // let the readers flush their samples
	end := max(lastRecv.Load(), stopAt)
	res := result{
		"pairs": o.pairs, "window": o.window, "duration_s": o.duration.Seconds(),
		"sent": sent, "delivered": recv, "lost": sent - recv,
		"msg_per_s":     round(float64(recv)/(float64(end-start)/1e9), 1),
		"p50_ms":        round(lat.pct(50), 2),
		"p99_ms":        round(lat.pct(99), 2),
		"error_stanzas": errStanzas.Load(), "dupes": dupes, "reordered": reorder,
		"sessions_dropped": dead.Load(), "tls": cs[0].tlsV,
	}
	if o.pid > 0 {
		res["server_cpu_phase_s"] = round(srvPhase, 2)
	}
	if sent != recv {
		return res, fmt.Errorf("%d of %d messages not delivered after a %s drain wait", sent-recv, sent, o.drain)
	}
	return res, nil
}

// parseBody reads "SEQ T" from a bench message body.
func parseBody(s string) (seq, ts int64, ok bool) {
	a, b, found := strings.Cut(strings.TrimSpace(s), " ")
	if !found {
		return 0, 0, false
	}
	seq, err1 := strconv.ParseInt(a, 10, 64)
	ts, err2 := strconv.ParseInt(b, 10, 64)
	return seq, ts, err1 == nil && err2 == nil
}

// loginHubContacts logs in the hub's K contacts with resource res.
func (o *opts) loginHubContacts(res string) ([]*client, error) {
	specs := make([]loginSpec, o.k)
	for i := range specs {
		specs[i] = loginSpec{o.user(o.contacts + i), res}
	}
	lr := o.loginMany(specs, o.conc)
	if err := lr.failed.err(); err != nil {
		return lr.clients, fmt.Errorf("login: %w", err)
	}
	return lr.clients, nil
}

// presence: the hub user, with K mutual contacts online, changes its
// presence R times (at most W changes in flight); every contact must see
// every change.
func runPresence(o *opts) (result, error) {
	k := o.k
	hubBare := o.bare(o.hub)
	cs, err := o.loginHubContacts("pres")
	defer closeAll(cs)
	if err != nil {
		return nil, err
	}
	maxR := o.r
	if maxR <= 0 { // -r 0: change presence for -t instead (profiling)
		maxR = 1 << 22
	}
	counts := make([]atomic.Int32, maxR)
	tokens := make(chan struct{}, o.window)
	var lat samples
	var ready, got, errStanzas atomic.Int64
	for _, c := range cs {
		var seen atomic.Bool
		go c.serve(func(el []byte) {
			if el[1] != 'p' || elName(el) != "presence" || bareOf(attr(el, "from")) != hubBare {
				return
			}
			typ := attr(el, "type")
			if typ == "error" {
				errStanzas.Add(1)
				return
			}
			if typ != "" {
				return
			}
			st, _ := childText(el, "status")
			if seq, ts, ok := parseBody(st); ok && seq >= 0 && int(seq) < len(counts) {
				lat.add(now() - ts)
				got.Add(1)
				if counts[seq].Add(1) == int32(k) {
					<-tokens
				}
				return
			}
			if !seen.Swap(true) {
				ready.Add(1)
			}
		})
		c.send("<iq type='get' id='roster1'><query xmlns='jabber:iq:roster'/></iq><presence/>")
	}
	time.Sleep(300 * time.Millisecond)
	hub, err := o.login(o.hub, "pres")
	if err != nil {
		return nil, fmt.Errorf("hub login: %w", err)
	}
	defer hub.close()
	var hubSaw atomic.Int64
	go hub.serve(func(el []byte) {
		if elName(el) == "presence" && attr(el, "type") == "" {
			hubSaw.Add(1)
		}
	})
	hub.send("<iq type='get' id='roster1'><query xmlns='jabber:iq:roster'/></iq><presence><status>online</status></presence>")
	if !waitFor(func() bool { return ready.Load() >= int64(k) }, 30*time.Second) {
		return result{"contacts_ready": ready.Load(), "hub_saw": hubSaw.Load()},
			fmt.Errorf("only %d of %d contacts saw the hub's initial presence: are the rosters mutual (run setup)?", ready.Load(), k)
	}
	time.Sleep(300 * time.Millisecond)
	srv0 := procCPU(o.pid)
	start := now()
	shows := []string{"away", "chat", "dnd", "xa"}
	until := time.Now().Add(o.duration)
	seq := 0
send:
	for ; seq < maxR; seq++ {
		if o.r <= 0 && time.Now().After(until) {
			break
		}
		select {
		case tokens <- struct{}{}:
		case <-time.After(o.drain):
			break send // notifications stopped arriving: report what was lost
		}
		hub.send(fmt.Sprintf("<presence><show>%s</show><status>%d %d</status></presence>", shows[seq%len(shows)], seq, now()))
	}
	want := int64(seq * k)
	waitFor(func() bool { return got.Load() >= want }, o.drain)
	end := now()
	srvPhase := procCPU(o.pid) - srv0
	n := got.Load()
	res := result{
		"k": k, "changes": seq, "window": o.window,
		"notifications": n, "lost": want - n,
		"notif_per_s":   round(float64(n)/(float64(end-start)/1e9), 1),
		"p50_ms":        round(lat.pct(50), 2),
		"p99_ms":        round(lat.pct(99), 2),
		"error_stanzas": errStanzas.Load(),
		"hub_saw":       hubSaw.Load(),
	}
	if o.pid > 0 {
		res["server_cpu_phase_s"] = round(srvPhase, 2)
	}
	if n != want {
		return res, fmt.Errorf("%d of %d presence notifications missing after a %s drain wait", want-n, want, o.drain)
	}
	return res, nil
}

func waitFor(cond func() bool, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// idle: U users x R resources log in and stay connected, silent; the
// server's RSS growth per session is the figure.
func runIdle(o *opts) (result, error) {
	if o.pid <= 0 {
		return nil, fmt.Errorf("idle needs -pid of the server")
	}
	var specs []loginSpec
	for r := 0; r < o.res; r++ {
		for u := 0; u < o.users; u++ {
			specs = append(specs, loginSpec{o.user(o.first + u), fmt.Sprintf("idle%d", r)})
		}
	}
	time.Sleep(o.settle)
	before := procRSS(o.pid)
	lr := o.loginMany(specs, o.conc)
	defer closeAll(lr.clients)
	var alive atomic.Int64
	for _, c := range lr.clients {
		if c != nil {
			alive.Add(1)
			go func() {
				c.serve(nil)
				alive.Add(-1)
			}()
		}
	}
	time.Sleep(o.settle)
	after := procRSS(o.pid)
	n := lr.lat.n()
	time.Sleep(o.hold)
	res := result{
		"sessions": n, "users": o.users, "resources": o.res,
		"rss_before_kib": before, "rss_after_kib": after,
		"kib_per_session":  round(float64(after-before)/math.Max(1, float64(n)), 1),
		"logins_per_s":     round(float64(n)/lr.elapsed.Seconds(), 1),
		"login_p50_ms":     round(lr.lat.pct(50), 2),
		"login_p99_ms":     round(lr.lat.pct(99), 2),
		"failed":           lr.failed.n,
		"alive_after_hold": alive.Load(),
	}
	if err := lr.failed.err(); err != nil {
		return res, fmt.Errorf("login: %w", err)
	}
	if alive.Load() != int64(n) {
		return res, fmt.Errorf("%d of %d idle sessions were closed by the server during the hold", int64(n)-alive.Load(), n)
	}
	return res, nil
}

// offline: M messages to an offline user (store rate), then that user logs
// in (drain rate: from its initial presence to the last stored message).
func runOffline(o *opts) (result, error) {
	rxBare := o.bare(o.rx)
	// Empty the receiver's offline store of anything a failed run left.
	rx, err := o.login(o.rx, "off")
	if err != nil {
		return nil, fmt.Errorf("rx login: %w", err)
	}
	var last atomic.Int64
	last.Store(now())
	go rx.serve(func(el []byte) { last.Store(now()) })
	rx.send("<presence/>")
	waitFor(func() bool { return now()-last.Load() > int64(time.Second) }, o.drain)
	rx.send("<presence type='unavailable'/>")
	rx.close()
	time.Sleep(time.Second)

	tx, err := o.login(o.tx, "off")
	if err != nil {
		return nil, fmt.Errorf("tx login: %w", err)
	}
	defer tx.close()
	var barrier atomic.Bool
	var bounced atomic.Int64
	go tx.serve(func(el []byte) {
		switch elName(el) {
		case "iq":
			if attr(el, "id") == "barrier" {
				barrier.Store(true)
			}
		case "message":
			if attr(el, "type") == "error" {
				bounced.Add(1)
			}
		}
	})
	to := escape(rxBare)
	t0 := now()
	for i := 0; i < o.m; i++ {
		if err := tx.send(fmt.Sprintf("<message type='chat' to='%s' id='o%d'><body>%d %d</body></message>", to, i, i, now())); err != nil {
			return nil, fmt.Errorf("tx send: %w", err)
		}
	}
	// Every server handles one session's stanzas in order: the answer to
	// this ping comes after all the messages were handled (stored).
	tx.send("<iq type='get' id='barrier' to='" + o.domain + "'><ping xmlns='urn:xmpp:ping'/></iq>")
	if !waitFor(barrier.Load, 120*time.Second) {
		return nil, fmt.Errorf("no answer to the barrier ping")
	}
	t1 := now()
	tx.close()
	time.Sleep(500 * time.Millisecond)

	seen := make([]bool, o.m)
	var mu sync.Mutex
	var got, dupes atomic.Int64
	var lastMsg atomic.Int64
	lt0 := now()
	rx, err = o.login(o.rx, "off")
	if err != nil {
		return nil, fmt.Errorf("rx login: %w", err)
	}
	defer rx.close()
	loginMs := float64(now()-lt0) / 1e6
	go rx.serve(func(el []byte) {
		if elName(el) != "message" {
			return
		}
		body, _ := childText(el, "body")
		seq, _, ok := parseBody(body)
		if !ok || seq < 0 || int(seq) >= len(seen) {
			return
		}
		mu.Lock()
		if seen[seq] {
			dupes.Add(1)
		} else {
			seen[seq] = true
			got.Add(1)
		}
		mu.Unlock()
		lastMsg.Store(now())
	})
	t2 := now()
	rx.send("<iq type='get' id='roster1'><query xmlns='jabber:iq:roster'/></iq><presence/>")
	waitFor(func() bool { return got.Load() >= int64(o.m) }, o.drain)
	t3 := lastMsg.Load()
	n := got.Load()
	res := result{
		"m": o.m, "stored_ack_s": round(float64(t1-t0)/1e9, 3),
		"store_per_s": round(float64(o.m)/(float64(t1-t0)/1e9), 1),
		"received":    n, "lost": int64(o.m) - n, "dupes": dupes.Load(), "bounced": bounced.Load(),
		"rx_login_ms": round(loginMs, 2),
	}
	if n > 0 {
		res["drain_s"] = round(float64(t3-t2)/1e9, 3)
		res["drain_per_s"] = round(float64(n)/(float64(t3-t2)/1e9), 1)
	}
	if n != int64(o.m) {
		return res, fmt.Errorf("%d of %d offline messages not delivered (%d bounced)", int64(o.m)-n, o.m, bounced.Load())
	}
	return res, nil
}

// setup warms the SCRAM key cache for every bench user and makes the hub
// and its K contacts mutual subscribers through the protocol itself
// (subscribe / subscribed both ways), so it works on any server.
func runSetup(o *opts) (result, error) {
	var specs []loginSpec
	for i := 0; i < o.users; i++ {
		specs = append(specs, loginSpec{o.user(i), "warm"})
	}
	for _, u := range []string{o.hub, o.rx, o.tx} {
		specs = append(specs, loginSpec{u, "warm"})
	}
	lr := o.loginMany(specs, o.conc)
	closeAll(lr.clients)
	if err := lr.failed.err(); err != nil {
		return nil, fmt.Errorf("warm-up login: %w", err)
	}
	res := result{"warmed": lr.lat.n()}
	time.Sleep(500 * time.Millisecond)

	hub, err := o.login(o.hub, "setup")
	if err != nil {
		return res, err
	}
	defer hub.close()
	contacts := map[string]bool{}
	for i := 0; i < o.k; i++ {
		contacts[o.bare(o.user(o.contacts+i))] = true
	}
	rosterCh := make(chan []byte, 4)
	answer := func(c *client) func(el []byte) {
		return func(el []byte) {
			if elName(el) == "presence" && attr(el, "type") == "subscribe" {
				c.send("<presence type='subscribed' to='" + escape(bareOf(attr(el, "from"))) + "'/>")
			}
		}
	}
	hubAnswer := answer(hub)
	go hub.serve(func(el []byte) {
		if elName(el) == "iq" && strings.HasPrefix(attr(el, "id"), "rget") {
			rosterCh <- append([]byte(nil), el...)
			return
		}
		hubAnswer(el)
	})
	hub.send("<presence/>")
	mutual := func() (map[string]bool, error) {
		hub.send("<iq type='get' id='rget'><query xmlns='jabber:iq:roster'/></iq>")
		select {
		case el := <-rosterCh:
			both := map[string]bool{}
			s := string(el)
			for {
				i := strings.Index(s, "<item")
				if i < 0 {
					break
				}
				s = s[i:]
				j := strings.IndexByte(s, '>')
				item := []byte(s[:j+1])
				if attr(item, "subscription") == "both" {
					both[attr(item, "jid")] = true
				}
				s = s[j+1:]
			}
			return both, nil
		case <-time.After(30 * time.Second):
			return nil, errTimeout
		}
	}
	both, err := mutual()
	if err != nil {
		return res, fmt.Errorf("roster get: %w", err)
	}
	var missing []loginSpec
	for i := 0; i < o.k; i++ {
		u := o.user(o.contacts + i)
		if !both[o.bare(u)] {
			missing = append(missing, loginSpec{u, "setup"})
		}
	}
	res["already_mutual"] = o.k - len(missing)
	if len(missing) > 0 {
		lr := o.loginMany(missing, o.conc)
		defer closeAll(lr.clients)
		if err := lr.failed.err(); err != nil {
			return res, fmt.Errorf("contact login: %w", err)
		}
		for _, c := range lr.clients {
			go c.serve(answer(c))
			c.send("<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq><presence/>")
		}
		time.Sleep(500 * time.Millisecond)
		for _, c := range lr.clients {
			hub.send("<presence type='subscribe' to='" + escape(bareOf(c.jid)) + "'/>")
			c.send("<presence type='subscribe' to='" + escape(o.bare(o.hub)) + "'/>")
		}
		deadline := time.Now().Add(60 * time.Second)
		for {
			time.Sleep(time.Second)
			both, err = mutual()
			if err != nil {
				return res, err
			}
			n := 0
			for j := range contacts {
				if both[j] {
					n++
				}
			}
			res["mutual"] = n
			if n == o.k {
				break
			}
			if time.Now().After(deadline) {
				return res, fmt.Errorf("only %d of %d contacts mutual after 60s", n, o.k)
			}
		}
	}
	res["mutual"] = o.k
	return res, nil
}
