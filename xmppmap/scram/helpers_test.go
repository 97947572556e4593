package scram

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"math/big"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/sasl"

	"github.com/imppd/imppd/core"
)

const (
	testUser     = "user"
	testPassword = "pencil"
	testIter     = 4096
)

// testCreds are the credentials of testUser and of "a,b=c" (escaping).
var testCreds = sync.OnceValues(func() ([]core.Credentials, error) {
	return NewCredentials(testPassword, testIter)
})

func testLookup(t testing.TB) Lookup {
	t.Helper()
	creds, err := testCreds()
	if err != nil {
		t.Fatal(err)
	}
	return func(username, hash string) (core.Credentials, bool) {
		if username != testUser && username != "a,b=c" {
			return core.Credentials{}, false
		}
		for _, c := range creds {
			if c.Hash == hash {
				return c, true
			}
		}
		return core.Credentials{}, false
	}
}

// client is a minimal SCRAM client (RFC 5802 §3) independent of the server
// code.
type client struct {
	hash   string
	user   string // unescaped
	pass   string
	gs2    string // gs2 header, e.g. "n,,"
	cbData []byte
	cbGS2  *string // gs2 header placed in c=, when it should differ
	nonce  string
	rOver  *string // r= to send, when it should differ

	bare  string
	wantV string
}

func escapeName(s string) string {
	return strings.NewReplacer("=", "=3D", ",", "=2C").Replace(s)
}

func (c *client) first() []byte {
	if c.nonce == "" {
		c.nonce = "fyko+d2lbbFgONRv9qkxdawL"
	}
	c.bare = "n=" + escapeName(c.user) + ",r=" + c.nonce
	return []byte(c.gs2 + c.bare)
}

func (c *client) final(t testing.TB, serverFirst []byte) []byte {
	t.Helper()
	h, ok := hashByName(c.hash)
	if !ok {
		t.Fatalf("bad hash %q", c.hash)
	}
	var r string
	var salt []byte
	iter := -1
	for _, f := range strings.Split(string(serverFirst), ",") {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "r":
			r = v
		case "s":
			var err error
			if salt, err = base64.StdEncoding.DecodeString(v); err != nil {
				t.Fatal(err)
			}
		case "i":
			iter, _ = strconv.Atoi(v)
		}
	}
	if !strings.HasPrefix(r, c.nonce) || len(r) == len(c.nonce) || len(salt) == 0 || iter < 1 {
		t.Fatalf("bad server-first %q", serverFirst)
	}
	salted, err := pbkdf2.Key(h.new, c.pass, salt, iter, h.size)
	if err != nil {
		t.Fatal(err)
	}
	mac := func(key []byte, s string) []byte {
		m := hmac.New(h.new, key)
		m.Write([]byte(s))
		return m.Sum(nil)
	}
	clientKey := mac(salted, "Client Key")
	d := h.new()
	d.Write(clientKey)
	storedKey := d.Sum(nil)
	gs2 := c.gs2
	if c.cbGS2 != nil {
		gs2 = *c.cbGS2
	}
	if c.rOver != nil {
		r = *c.rOver
	}
	without := "c=" + base64.StdEncoding.EncodeToString(append([]byte(gs2), c.cbData...)) + ",r=" + r
	auth := c.bare + "," + string(serverFirst) + "," + without
	sig := mac(storedKey, auth)
	proof := make([]byte, len(sig))
	for i := range sig {
		proof[i] = clientKey[i] ^ sig[i]
	}
	c.wantV = "v=" + base64.StdEncoding.EncodeToString(mac(mac(salted, "Server Key"), auth))
	return []byte(without + ",p=" + base64.StdEncoding.EncodeToString(proof))
}

// attempt runs one exchange through a mellium server Negotiator and returns
// server-final or the first error.
func attempt(t testing.TB, name string, opts Options, state *tls.ConnectionState, res *Result, first []byte, final func([]byte) []byte) ([]byte, error) {
	t.Helper()
	m, ok := Mechanism(name, opts, res)
	if !ok {
		t.Fatalf("Mechanism(%q) not found", name)
	}
	var sopts []sasl.Option
	if state != nil {
		sopts = append(sopts, sasl.TLSState(*state))
	}
	srv := sasl.NewServer(m, nil, sopts...)
	more, sf, err := srv.Step(first)
	if err != nil {
		return nil, err
	}
	if !more {
		t.Fatal("server done after client-first")
	}
	more, sfin, err := srv.Step(final(sf))
	if err != nil {
		return nil, err
	}
	if more {
		t.Fatal("server wants more after client-final")
	}
	return sfin, nil
}

// newCert makes a self-signed certificate signed with key.
func newCert(t testing.TB, key crypto.Signer) tls.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "example.com"},
		DNSNames:     []string{"example.com"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

func ecdsaCert(t testing.TB, curve elliptic.Curve) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return newCert(t, key)
}

func ed25519Cert(t testing.TB) tls.Certificate {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return newCert(t, key)
}

// tlsStates does a real TLS handshake over net.Pipe and returns the server
// and client connection states.
func tlsStates(t testing.TB, cert tls.Certificate, version uint16) (srv, cli *tls.ConnectionState) {
	t.Helper()
	a, b := net.Pipe()
	s := tls.Server(a, &tls.Config{
		Certificates:           []tls.Certificate{cert},
		MinVersion:             version,
		MaxVersion:             version,
		SessionTicketsDisabled: true, // no post-handshake write on the pipe
	})
	c := tls.Client(b, &tls.Config{
		InsecureSkipVerify: true,
		MinVersion:         version,
		MaxVersion:         version,
	})
	// Close the pipe, not TLS: close_notify would block on the unread pipe.
	t.Cleanup(func() { a.Close(); b.Close() })
	errc := make(chan error, 1)
	go func() { errc <- s.Handshake() }()
	if err := c.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	ss, cs := s.ConnectionState(), c.ConnectionState()
	if ss.Version != version {
		t.Fatalf("negotiated %x, want %x", ss.Version, version)
	}
	return &ss, &cs
}

func exporter(t testing.TB, st *tls.ConnectionState) []byte {
	t.Helper()
	b, err := st.ExportKeyingMaterial("EXPORTER-Channel-Binding", nil, 32)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func isSentinel(err error) bool {
	return errors.Is(err, ErrMalformed) || errors.Is(err, ErrNotAuthorized) || errors.Is(err, ErrChannelBinding)
}

func fixedNonce(s string) func() string { return func() string { return s } }

func ptr[T any](v T) *T { return &v }
