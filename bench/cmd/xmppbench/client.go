package main

import (
	"bufio"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// target is the server under test.
type target struct {
	addr     string // host:port of the STARTTLS listener
	domain   string
	password string
	mech     string // SASL mechanism wanted; "" = the best SCRAM offered
	timeout  time.Duration
	tls      *tls.Config
	cache    *keyCache
}

// client is one authenticated, bound XMPP session, driven by hand over
// crypto/tls: no DOM, no reflection, one TLS record per stanza written.
type client struct {
	user string
	jid  string // full JID bound by the server
	raw  net.Conn
	conn *tls.Conn
	fr   *framer
	wmu  sync.Mutex
	tlsV string
	// answer, when set before serve, may answer the server's IQ get/set
	// requests itself (the whole <iq/> to send back); "" leaves them to
	// serve's empty result.
	answer func(el []byte) string

	closed atomic.Bool
}

var streamHeader = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' " +
	"xmlns:stream='http://etherx.jabber.org/streams' version='1.0' to='%s'>"

// login connects, negotiates STARTTLS, authenticates with SCRAM and binds
// resource. It returns when the server has confirmed the bound JID.
func (t *target) login(user, resource string) (*client, error) {
	deadline := time.Now().Add(t.timeout)
	raw, err := net.DialTimeout("tcp", t.addr, t.timeout)
	if err != nil {
		return nil, err
	}
	c := &client{user: user, raw: raw}
	fail := func(step string, err error) (*client, error) {
		raw.Close()
		return nil, fmt.Errorf("%s: %s: %w", user, step, err)
	}
	raw.SetDeadline(deadline)
	fr := newFramer(bufio.NewReaderSize(raw, 4096))
	hdr := fmt.Sprintf(streamHeader, t.domain)
	if _, err := raw.Write([]byte(hdr)); err != nil {
		return fail("stream", err)
	}
	feats, err := openStream(fr)
	if err != nil {
		return fail("stream", err)
	}
	if !hasChild(feats, "starttls") {
		return fail("features", fmt.Errorf("no STARTTLS offered: %s", describe(feats)))
	}
	if _, err := raw.Write([]byte("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")); err != nil {
		return fail("starttls", err)
	}
	_, el, err := fr.next()
	if err != nil {
		return fail("starttls", err)
	}
	if elName(el) != "proceed" {
		return fail("starttls", fmt.Errorf("got %s", describe(el)))
	}
	tc := tls.Client(raw, t.tls)
	if err := tc.Handshake(); err != nil {
		return fail("tls", err)
	}
	c.conn = tc
	st := tc.ConnectionState()
	c.tlsV = tls.VersionName(st.Version)
	fr.reset(bufio.NewReaderSize(tc, 8192))
	c.fr = fr
	if _, err := tc.Write([]byte(hdr)); err != nil {
		return fail("stream", err)
	}
	feats, err = openStream(fr)
	if err != nil {
		return fail("stream", err)
	}
	if err := t.authenticate(c, feats); err != nil {
		return fail("sasl", err)
	}
	fr.reset(bufio.NewReaderSize(tc, 8192))
	if _, err := tc.Write([]byte(hdr)); err != nil {
		return fail("stream", err)
	}
	feats, err = openStream(fr)
	if err != nil {
		return fail("stream", err)
	}
	if !hasChild(feats, "bind") {
		return fail("features", fmt.Errorf("no bind offered: %s", describe(feats)))
	}
	if _, err := tc.Write([]byte("<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>" +
		escape(resource) + "</resource></bind></iq>")); err != nil {
		return fail("bind", err)
	}
	for {
		_, el, err := fr.next()
		if err != nil {
			return fail("bind", err)
		}
		if elName(el) != "iq" || attr(el, "id") != "bind1" {
			continue
		}
		if attr(el, "type") != "result" {
			return fail("bind", fmt.Errorf("%s", describe(el)))
		}
		j, _ := childText(el, "jid")
		if j == "" {
			return fail("bind", fmt.Errorf("no jid in %s", describe(el)))
		}
		c.jid = j
		break
	}
	raw.SetDeadline(time.Time{})
	return c, nil
}

// openStream reads the server's stream header and its features.
func openStream(fr *framer) ([]byte, error) {
	for {
		kind, el, err := fr.next()
		if err != nil {
			return nil, err
		}
		switch kind {
		case frameOpen:
			continue
		case frameClose:
			return nil, errors.New("stream closed")
		}
		switch elName(el) {
		case "stream:features", "features":
			return el, nil
		case "stream:error", "error":
			return nil, fmt.Errorf("stream error: %s", describe(el))
		}
	}
}

// send writes one stanza (or several, concatenated) in one TLS record.
func (c *client) send(s string) error {
	c.wmu.Lock()
	_, err := c.conn.Write([]byte(s))
	c.wmu.Unlock()
	return err
}

// sendBytes is send without the string conversion.
func (c *client) sendBytes(b []byte) error {
	c.wmu.Lock()
	_, err := c.conn.Write(b)
	c.wmu.Unlock()
	return err
}

// serve reads stanzas until the stream ends, answering the server's IQ
// requests (pings, roster pushes) with c.answer's reply or an empty result,
// and passing every stanza to h. It returns when the connection closes.
func (c *client) serve(h func(el []byte)) error {
	for {
		kind, el, err := c.fr.next()
		if err != nil {
			return err
		}
		if kind == frameClose {
			return errors.New("stream closed by server")
		}
		if kind != frameStanza {
			continue
		}
		if el[1] == 'i' && elName(el) == "iq" {
			if typ := attr(el, "type"); (typ == "get" || typ == "set") && !c.answerIQ(el) {
				from := attr(el, "from")
				reply := "<iq type='result' id='" + escape(attr(el, "id")) + "'"
				if from != "" {
					reply += " to='" + escape(from) + "'"
				}
				c.send(reply + "/>")
			}
		}
		if h != nil {
			h(el)
		}
	}
}

// answerIQ sends c.answer's reply to a request, if it has one.
func (c *client) answerIQ(el []byte) bool {
	if c.answer == nil {
		return false
	}
	reply := c.answer(el)
	if reply == "" {
		return false
	}
	c.send(reply)
	return true
}

// close ends the stream politely and closes the socket without waiting.
func (c *client) close() {
	if c.closed.Swap(true) {
		return
	}
	c.raw.SetWriteDeadline(time.Now().Add(2 * time.Second))
	c.send("</stream:stream>")
	c.raw.Close()
}

// SCRAM (RFC 5802 / RFC 7677), client side, without channel binding (gs2
// "n"). The SaltedPassword is cached per (user, hash, salt, iterations) so
// that the client's PBKDF2 is not part of what is measured.

type scramHash struct {
	name string
	new  func() hash.Hash
	size int
}

var scramHashes = map[string]scramHash{
	"SCRAM-SHA-256": {"SHA-256", sha256.New, sha256.Size},
	"SCRAM-SHA-1":   {"SHA-1", sha1.New, sha1.Size},
}

func (t *target) authenticate(c *client, feats []byte) error {
	offered := map[string]bool{}
	s := string(feats)
	for {
		i := strings.Index(s, "<mechanism>")
		if i < 0 {
			break
		}
		s = s[i+len("<mechanism>"):]
		j := strings.Index(s, "</mechanism>")
		if j < 0 {
			break
		}
		offered[strings.TrimSpace(s[:j])] = true
		s = s[j:]
	}
	mech := t.mech
	if mech == "" {
		for _, m := range []string{"SCRAM-SHA-256", "SCRAM-SHA-1"} {
			if offered[m] {
				mech = m
				break
			}
		}
	}
	h, ok := scramHashes[mech]
	if !ok || !offered[mech] {
		return fmt.Errorf("mechanism %q not offered (offered: %v)", mech, offered)
	}
	nonce := make([]byte, 18)
	rand.Read(nonce)
	cnonce := base64.RawStdEncoding.EncodeToString(nonce)
	clientFirstBare := "n=" + saslName(c.user) + ",r=" + cnonce
	const gs2 = "n,,"
	if err := c.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='" + mech + "'>" +
		base64.StdEncoding.EncodeToString([]byte(gs2+clientFirstBare)) + "</auth>"); err != nil {
		return err
	}
	el, err := c.saslNext()
	if err != nil {
		return err
	}
	if elName(el) != "challenge" {
		return fmt.Errorf("expected challenge, got %s", describe(el))
	}
	serverFirst, err := base64.StdEncoding.DecodeString(strings.TrimSpace(text(el)))
	if err != nil {
		return fmt.Errorf("challenge: %w", err)
	}
	var snonce, salt64 string
	iter := 0
	for _, kv := range strings.Split(string(serverFirst), ",") {
		if len(kv) < 2 || kv[1] != '=' {
			continue
		}
		switch kv[0] {
		case 'r':
			snonce = kv[2:]
		case 's':
			salt64 = kv[2:]
		case 'i':
			iter, _ = strconv.Atoi(kv[2:])
		}
	}
	if !strings.HasPrefix(snonce, cnonce) || salt64 == "" || iter <= 0 {
		return fmt.Errorf("bad server-first-message %q", serverFirst)
	}
	salt, err := base64.StdEncoding.DecodeString(salt64)
	if err != nil {
		return fmt.Errorf("salt: %w", err)
	}
	salted := t.cache.salted(h, c.user, t.password, salt, iter)
	clientFinalBare := "c=" + base64.StdEncoding.EncodeToString([]byte(gs2)) + ",r=" + snonce
	proof, serverSig := scramProof(h, salted, clientFirstBare+","+string(serverFirst)+","+clientFinalBare)
	final := clientFinalBare + ",p=" + base64.StdEncoding.EncodeToString(proof)
	if err := c.send("<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>" +
		base64.StdEncoding.EncodeToString([]byte(final)) + "</response>"); err != nil {
		return err
	}
	el, err = c.saslNext()
	if err != nil {
		return err
	}
	name := elName(el)
	if name == "challenge" { // additional data as a challenge (older servers)
		if err := c.send("<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"); err != nil {
			return err
		}
		data := el
		if el, err = c.saslNext(); err != nil {
			return err
		}
		name = elName(el)
		if name == "success" && strings.TrimSpace(text(el)) == "" {
			el = data
		}
	}
	if name != "success" {
		return fmt.Errorf("authentication failed: %s", describe(el))
	}
	if v := strings.TrimSpace(text(el)); v != "" && v != "=" {
		b, err := base64.StdEncoding.DecodeString(v)
		if err != nil || string(b) != "v="+base64.StdEncoding.EncodeToString(serverSig) {
			return fmt.Errorf("server signature mismatch (%q)", b)
		}
	}
	return nil
}

// scramProof returns the ClientProof and the expected ServerSignature for
// an AuthMessage (RFC 5802 §3).
func scramProof(h scramHash, salted []byte, authMsg string) (proof, serverSig []byte) {
	clientKey := hmacSum(h, salted, "Client Key")
	storedKey := h.new()
	storedKey.Write(clientKey)
	sig := hmacSum(h, storedKey.Sum(nil), authMsg)
	proof = make([]byte, len(clientKey))
	for i := range proof {
		proof[i] = clientKey[i] ^ sig[i]
	}
	return proof, hmacSum(h, hmacSum(h, salted, "Server Key"), authMsg)
}

func (c *client) saslNext() ([]byte, error) {
	kind, el, err := c.fr.next()
	if err != nil {
		return nil, err
	}
	if kind != frameStanza {
		return nil, fmt.Errorf("unexpected frame during SASL")
	}
	return el, nil
}

func saslName(u string) string {
	return strings.NewReplacer("=", "=3D", ",", "=2C").Replace(u)
}

func hmacSum(h scramHash, key []byte, msg string) []byte {
	m := hmac.New(h.new, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// keyCache remembers SaltedPassword values, optionally in a file shared by
// runs (they depend only on password, salt and iterations).
type keyCache struct {
	mu     sync.Mutex
	m      map[string][]byte
	path   string
	dirty  bool
	misses atomic.Int64
}

func loadKeyCache(path string) *keyCache {
	k := &keyCache{m: map[string][]byte{}, path: path}
	if path == "" {
		return k
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return k
	}
	var m map[string]string
	if json.Unmarshal(b, &m) == nil {
		for key, v := range m {
			if d, err := hex.DecodeString(v); err == nil {
				k.m[key] = d
			}
		}
	}
	return k
}

func (k *keyCache) salted(h scramHash, user, pass string, salt []byte, iter int) []byte {
	key := h.name + "|" + user + "|" + base64.StdEncoding.EncodeToString(salt) + "|" + strconv.Itoa(iter)
	k.mu.Lock()
	v, ok := k.m[key]
	k.mu.Unlock()
	if ok {
		return v
	}
	k.misses.Add(1)
	v, err := pbkdf2.Key(h.new, pass, salt, iter, h.size)
	if err != nil {
		panic(err)
	}
	k.mu.Lock()
	k.m[key] = v
	k.dirty = true
	k.mu.Unlock()
	return v
}

func (k *keyCache) save() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.path == "" || !k.dirty {
		return nil
	}
	m := make(map[string]string, len(k.m))
	for key, v := range k.m {
		m[key] = hex.EncodeToString(v)
	}
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	tmp := k.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	k.dirty = false
	return os.Rename(tmp, k.path)
}
