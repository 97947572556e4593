package main

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"crypto/sha1" // #nosec: XEP-0115's mandatory hash, not a security use
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	pepNode       = "urn:xmpp:bench:pep"
	capsNode      = "https://imppd.invalid/bench"
	nsCaps        = "http://jabber.org/protocol/caps"
	nsDiscoInfo   = "http://jabber.org/protocol/disco#info"
	nsPubsub      = "http://jabber.org/protocol/pubsub"
	nsPubsubEvent = nsPubsub + "#event"
	// pepMaxR bounds the publishes of a timed (-r 0) run.
	pepMaxR = 1 << 20
)

// capsIdentity and capsInfo are what a client answers to disco#info, as
// XEP-0115 hashes it (no XEP-0128 forms: the bench client has none).
type capsIdentity struct{ category, typ, lang, name string }

type capsInfo struct {
	identities []capsIdentity
	features   []string
}

// ver is the XEP-0115 §5.1 verification string of ci with SHA-1:
// identities sorted by category, type and xml:lang as
// "category/type/lang/name<", then the features sorted (i;octet) each
// followed by "<", hashed and base64-encoded.
func (ci capsInfo) ver() string {
	ids := slices.Clone(ci.identities)
	slices.SortFunc(ids, func(a, b capsIdentity) int {
		return cmp.Or(strings.Compare(a.category, b.category), strings.Compare(a.typ, b.typ),
			strings.Compare(a.lang, b.lang), strings.Compare(a.name, b.name))
	})
	var s strings.Builder
	for _, id := range ids {
		s.WriteString(id.category + "/" + id.typ + "/" + id.lang + "/" + id.name + "<")
	}
	for _, f := range slices.Sorted(slices.Values(ci.features)) {
		s.WriteString(f + "<")
	}
	sum := sha1.Sum([]byte(s.String()))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// c is the <c/> element advertising ci under node.
func (ci capsInfo) c(node string) string {
	return "<c xmlns='" + nsCaps + "' hash='sha-1' node='" + escape(node) + "' ver='" + escape(ci.ver()) + "'/>"
}

// answer returns the result to a disco#info request (the <iq/> el), or ""
// if el is something else. The node asked for is echoed: Prosody and
// ejabberd ask at node#ver, imppd too; any node gets the same answer.
func (ci capsInfo) answer(el []byte) string {
	i := bytes.Index(el, []byte("<query"))
	if i < 0 || !bytes.Contains(el, []byte(nsDiscoInfo)) {
		return ""
	}
	q := startTag(el[i:])
	if attr(q, "xmlns") != nsDiscoInfo {
		return ""
	}
	var b strings.Builder
	b.WriteString("<iq type='result' id='" + escape(attr(el, "id")) + "'")
	if from := attr(el, "from"); from != "" {
		b.WriteString(" to='" + escape(from) + "'")
	}
	b.WriteString("><query xmlns='" + nsDiscoInfo + "'")
	if node := attr(q, "node"); node != "" {
		b.WriteString(" node='" + escape(node) + "'")
	}
	b.WriteString(">")
	for _, id := range ci.identities {
		b.WriteString("<identity category='" + escape(id.category) + "' type='" + escape(id.typ) + "'")
		if id.lang != "" {
			b.WriteString(" xml:lang='" + escape(id.lang) + "'")
		}
		if id.name != "" {
			b.WriteString(" name='" + escape(id.name) + "'")
		}
		b.WriteString("/>")
	}
	for _, f := range ci.features {
		b.WriteString("<feature var='" + escape(f) + "'/>")
	}
	b.WriteString("</query></iq>")
	return b.String()
}

// pepEvent reads a PEP notification about node: the run attribute and the
// "SEQ TS" text of its item's <m/> payload, and whether the message carries
// a <delay/> (a last published item sent again, not a new publish). ok is
// false for anything else.
func pepEvent(el []byte, node string) (run string, seq, ts int64, delayed, ok bool) {
	if !bytes.Contains(el, []byte(nsPubsubEvent)) {
		return "", 0, 0, false, false
	}
	i := bytes.Index(el, []byte("<items"))
	if i < 0 || attr(startTag(el[i:]), "node") != node {
		return "", 0, 0, false, false
	}
	items := el[i:]
	j := bytes.Index(items, []byte("<m "))
	if j < 0 {
		return "", 0, 0, false, false
	}
	run = attr(startTag(items[j:]), "run")
	txt, found := childText(items, "m")
	if !found {
		return "", 0, 0, false, false
	}
	seq, ts, ok = parseBody(txt)
	return run, seq, ts, hasChild(el, "delay"), ok
}

// publishIQ is the hub's publish of item "current" to node, with payload
// <m xmlns='urn:xmpp:bench:pep' run='RUN'>SEQ TS</m>.
func publishIQ(b []byte, id, run string, seq, ts int64) []byte {
	b = append(b, "<iq type='set' id='"...)
	b = append(b, id...)
	b = append(b, "'><pubsub xmlns='"+nsPubsub+"'><publish node='"+pepNode+"'><item id='current'><m xmlns='"+pepNode+"' run='"...)
	b = append(b, run...)
	b = append(b, "'>"...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, ts, 10)
	return append(b, "</m></item></publish></pubsub></iq>"...)
}

func nonce() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// pep: the hub user, with K mutual contacts online that advertise
// "urn:xmpp:bench:pep+notify" through XEP-0115 caps (a ver new to the
// server in every run, answered when the server asks), publishes R items
// to its PEP node (at most W publishes whose notifications are not all in);
// every contact must be notified of every item.
func runPEP(o *opts) (result, error) {
	k := o.k
	hubBare := o.bare(o.hub)
	run := nonce()
	// The nonce in the identity's name makes the ver new in every run, so
	// that every server asks for it (ejabberd keeps verified caps on disk
	// across restarts, imppd and Prosody in memory) and old items (other
	// runs) are told apart from this run's.
	info := capsInfo{
		identities: []capsIdentity{{category: "client", typ: "pc", name: "xmppbench " + run}},
		features:   []string{nsCaps, nsDiscoInfo, pepNode + "+notify"},
	}
	initial := "<iq type='get' id='roster1'><query xmlns='jabber:iq:roster'/></iq><presence>" + info.c(capsNode) + "</presence>"
	cs, err := o.loginHubContacts("pep")
	defer closeAll(cs)
	if err != nil {
		return nil, err
	}
	maxR := o.r
	if maxR <= 0 { // -r 0: publish for -t instead (profiling)
		maxR = pepMaxR
	}
	counts := make([]atomic.Int32, maxR)
	tokens := make(chan struct{}, o.window)
	release := func() {
		select {
		case <-tokens:
		default:
		}
	}
	var lat samples
	var got, readyN, queries, stale, delayed, dupes, reordered, errStanzas, sawHub atomic.Int64
	var readyAt, lastRecv atomic.Int64
	var firstErr, firstDupe struct {
		sync.Mutex
		s string
	}
	keepErr := func(el []byte) {
		firstErr.Lock()
		if firstErr.s == "" {
			firstErr.s = describe(el)
		}
		firstErr.Unlock()
	}
	allReady := make(chan struct{})
	for _, c := range cs {
		// Touched by this contact's reader goroutine only.
		ready, seenHub := false, false
		last := int64(-1)
		seen := make([]uint64, (maxR+63)/64) // seqs notified
		c.answer = func(el []byte) string {
			r := info.answer(el)
			if r != "" {
				queries.Add(1)
			}
			return r
		}
		go c.serve(func(el []byte) {
			switch {
			case el[1] == 'p' && elName(el) == "presence":
				if !seenHub && attr(el, "type") == "" && bareOf(attr(el, "from")) == hubBare {
					seenHub = true
					sawHub.Add(1)
				}
				return
			case el[1] != 'm' || elName(el) != "message" || bareOf(attr(el, "from")) != hubBare:
				return
			}
			if attr(el, "type") == "error" {
				errStanzas.Add(1)
				keepErr(el)
				return
			}
			r, seq, ts, isDelayed, ok := pepEvent(el, pepNode)
			if !ok {
				return
			}
			if r != run {
				stale.Add(1) // an item of an earlier run, sent as the last one
				return
			}
			if !ready {
				ready = true
				if readyN.Add(1) == int64(k) {
					readyAt.Store(now())
					close(allReady)
				}
			}
			if seq < 0 { // warm-up
				return
			}
			if isDelayed {
				delayed.Add(1)
				return
			}
			if int(seq) >= len(counts) {
				return
			}
			t := now()
			w, bit := seq/64, uint64(1)<<(seq%64)
			if seen[w]&bit != 0 {
				// Counted once: Prosody 0.12 sends each to the bare
				// and to the full JID (see docs/PERFORMANCE.md).
				if dupes.Add(1) == 1 {
					firstDupe.Lock()
					firstDupe.s = describe(el)
					firstDupe.Unlock()
				}
				return
			}
			seen[w] |= bit
			if seq < last {
				reordered.Add(1)
			}
			last = seq
			lat.add(t - ts)
			lastRecv.Store(t)
			got.Add(1)
			if counts[seq].Add(1) == int32(k) {
				release()
			}
		})
	}

	// Contacts' initial presence with caps; the server asks one of them
	// (or each, before it knows the answer) for disco#info at node#ver.
	srv0 := procCPU(o.pid)
	t0 := now()
	for _, c := range cs {
		c.send(initial)
	}
	hub, err := o.login(o.hub, "pep")
	if err != nil {
		return nil, fmt.Errorf("hub login: %w", err)
	}
	defer hub.close()
	pubSent := make([]atomic.Int64, maxR)
	var ackLat samples
	var pubOK, pubErr, warmErr atomic.Int64
	warmAck := make(chan struct{}, 1)
	go hub.serve(func(el []byte) {
		name := elName(el)
		if name == "message" && attr(el, "type") == "error" {
			errStanzas.Add(1)
			keepErr(el)
			return
		}
		if name != "iq" {
			return
		}
		id, typ := attr(el, "id"), attr(el, "type")
		if typ != "result" && typ != "error" {
			return
		}
		if rest, ok := strings.CutPrefix(id, "pub"); ok {
			seq, err := strconv.Atoi(rest)
			if err != nil || seq < 0 || seq >= maxR {
				return
			}
			if typ == "error" {
				keepErr(el)
				pubErr.Add(1)
				release() // no notification will come for it
				return
			}
			ackLat.add(now() - pubSent[seq].Load())
			pubOK.Add(1)
			return
		}
		if strings.HasPrefix(id, "warm") {
			if typ == "error" {
				keepErr(el)
				warmErr.Add(1)
			}
			select {
			case warmAck <- struct{}{}:
			default:
			}
		}
	})
	hub.send("<iq type='get' id='roster1'><query xmlns='jabber:iq:roster'/></iq><presence/>")

	// Ready: every contact has been notified of an item, i.e. the server
	// knows its "+notify" interest. The hub publishes warm-up items (seq -1)
	// until then, one at a time (the next once the previous is
	// acknowledged), at most one per 10 ms.
	var buf []byte
	warm := 0
	readyDeadline := time.Now().Add(60 * time.Second)
warmup:
	for {
		if time.Now().After(readyDeadline) || warmErr.Load() > 3 {
			res := result{"contacts_ready": readyN.Load(), "contacts_saw_hub": sawHub.Load(),
				"caps_queries": queries.Load(), "warmup_publishes": warm, "caps_ver": info.ver()}
			firstErr.Lock()
			defer firstErr.Unlock()
			return res, fmt.Errorf("only %d of %d contacts were notified of the hub's warm-up items (%d saw its presence, "+
				"%d caps queries answered, %d warm-up publishes, %d refused; first error: %s)",
				readyN.Load(), k, sawHub.Load(), queries.Load(), warm, warmErr.Load(), firstErr.s)
		}
		sentAt := time.Now()
		buf = publishIQ(buf[:0], "warm"+strconv.Itoa(warm), run, -1, now())
		if err := hub.sendBytes(buf); err != nil {
			return nil, fmt.Errorf("hub: %w", err)
		}
		warm++
		select {
		case <-allReady:
			break warmup
		case <-warmAck:
		case <-time.After(time.Second):
		}
		select {
		case <-allReady:
			break warmup
		case <-time.After(time.Until(sentAt.Add(10 * time.Millisecond))):
		}
	}
	srvReady := procCPU(o.pid) - srv0
	readyMs := float64(readyAt.Load()-t0) / 1e6

	srv1 := procCPU(o.pid)
	start := now()
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
		t := now()
		pubSent[seq].Store(t)
		buf = publishIQ(buf[:0], "pub"+strconv.Itoa(seq), run, int64(seq), t)
		if err := hub.sendBytes(buf); err != nil {
			return nil, fmt.Errorf("hub: %w", err)
		}
	}
	expected := func() int64 { return (int64(seq) - pubErr.Load()) * int64(k) }
	waitFor(func() bool { return got.Load() >= expected() && pubOK.Load()+pubErr.Load() >= int64(seq) }, o.drain)
	end := now()
	srvPhase := procCPU(o.pid) - srv1
	if t := lastRecv.Load(); t > start {
		end = t
	}
	n, want := got.Load(), expected()
	res := result{
		"k": k, "publishes": seq, "window": o.window,
		"notifications": n, "lost": want - n,
		"notif_per_s":      round(float64(n)/(float64(end-start)/1e9), 1),
		"p50_ms":           round(lat.pct(50), 2),
		"p99_ms":           round(lat.pct(99), 2),
		"publish_ok":       pubOK.Load(),
		"publish_errors":   pubErr.Load(),
		"publish_p50_ms":   round(ackLat.pct(50), 2),
		"publish_p99_ms":   round(ackLat.pct(99), 2),
		"error_stanzas":    errStanzas.Load(),
		"dupes":            dupes.Load(),
		"reordered":        reordered.Load(),
		"delayed":          delayed.Load(),
		"stale":            stale.Load(),
		"caps_queries":     queries.Load(),
		"caps_ver":         info.ver(),
		"ready_ms":         round(readyMs, 1),
		"warmup_publishes": warm,
		"tls":              cs[0].tlsV,
	}
	if o.pid > 0 {
		res["server_cpu_ready_s"] = round(srvReady, 2)
		res["server_cpu_phase_s"] = round(srvPhase, 2)
	}
	firstDupe.Lock()
	if firstDupe.s != "" {
		res["first_dupe"] = firstDupe.s
	}
	firstDupe.Unlock()
	firstErr.Lock()
	defer firstErr.Unlock()
	if firstErr.s != "" {
		res["first_error"] = firstErr.s
	}
	switch {
	case pubErr.Load() > 0:
		return res, fmt.Errorf("%d of %d publishes refused, first: %s", pubErr.Load(), seq, firstErr.s)
	case n != want:
		return res, fmt.Errorf("%d of %d PEP notifications missing after a %s drain wait", want-n, want, o.drain)
	case errStanzas.Load() > 0:
		return res, fmt.Errorf("%d error stanzas, first: %s", errStanzas.Load(), firstErr.s)
	}
	return res, nil
}
