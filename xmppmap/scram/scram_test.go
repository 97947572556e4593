package scram

import (
	"bytes"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"testing"

	"mellium.im/sasl"

	"github.com/imppd/imppd/core"
)

// vectors are RFC 5802 §5 and RFC 7677 §3.
var vectors = []struct {
	mech, hash, salt         string
	serverNonce              string
	clientFirst, serverFirst string
	clientFinal, serverFinal string
}{
	{
		mech: "SCRAM-SHA-1", hash: SHA1, salt: "QSXCR+Q6sek8bf92",
		serverNonce: "3rfcNHYJY1ZVvWVs7j",
		clientFirst: "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
		serverFirst: "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
		clientFinal: "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
		serverFinal: "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
	},
	{
		mech: "SCRAM-SHA-256", hash: SHA256, salt: "W22ZaJ0SNY7soEsUEjb6gQ==",
		serverNonce: "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
		clientFirst: "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
		serverFirst: "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
		clientFinal: "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
		serverFinal: "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
	},
}

func vectorOptions(t testing.TB, i int) Options {
	v := vectors[i]
	salt, err := base64.StdEncoding.DecodeString(v.salt)
	if err != nil {
		t.Fatal(err)
	}
	cred, err := Derive(v.hash, "pencil", salt, 4096)
	if err != nil {
		t.Fatal(err)
	}
	return Options{
		Lookup: func(username, hash string) (core.Credentials, bool) {
			return cred, username == "user" && hash == v.hash
		},
		nonce: fixedNonce(v.serverNonce),
	}
}

func TestVectors(t *testing.T) {
	for i, v := range vectors {
		t.Run(v.mech, func(t *testing.T) {
			var res Result
			m, ok := Mechanism(v.mech, vectorOptions(t, i), &res)
			if !ok {
				t.Fatal("no mechanism")
			}
			srv := sasl.NewServer(m, nil)
			more, sf, err := srv.Step([]byte(v.clientFirst))
			if err != nil || !more || string(sf) != v.serverFirst {
				t.Fatalf("server-first = %q, %v, %v; want %q", sf, more, err, v.serverFirst)
			}
			more, sfin, err := srv.Step([]byte(v.clientFinal))
			if err != nil || more || string(sfin) != v.serverFinal {
				t.Fatalf("server-final = %q, %v, %v; want %q", sfin, more, err, v.serverFinal)
			}
			if res.Username != "user" {
				t.Fatalf("Username = %q", res.Username)
			}
			// The exchange is over.
			if _, _, err := srv.Step([]byte(v.clientFinal)); !errors.Is(err, ErrMalformed) {
				t.Fatalf("extra step: %v", err)
			}
		})
	}
}

// TestEmptyInitialResponse: without an initial response the server sends an
// empty challenge first (RFC 6120 §6.4.2), but only once.
func TestEmptyInitialResponse(t *testing.T) {
	v := vectors[0]
	m, _ := Mechanism(v.mech, vectorOptions(t, 0), nil)
	srv := sasl.NewServer(m, nil)
	for i, step := range []struct{ in, out string }{{"", ""}, {v.clientFirst, v.serverFirst}, {v.clientFinal, v.serverFinal}} {
		_, out, err := srv.Step([]byte(step.in))
		if err != nil || string(out) != step.out {
			t.Fatalf("step %d: %q, %v", i, out, err)
		}
	}
	srv = sasl.NewServer(m, nil)
	srv.Step(nil)
	if _, _, err := srv.Step(nil); !errors.Is(err, ErrMalformed) {
		t.Fatalf("second empty: %v", err)
	}
}

// TestMelliumClient runs full exchanges against mellium's client mechanisms,
// the -PLUS ones over a real TLS 1.3 connection with tls-exporter.
func TestMelliumClient(t *testing.T) {
	srvTLS, cliTLS := tlsStates(t, ecdsaCert(t, elliptic.P256()), tls.VersionTLS13)
	if !bytes.Equal(exporter(t, srvTLS), exporter(t, cliTLS)) {
		t.Fatal("exporter mismatch")
	}
	for _, tc := range []struct {
		name   string
		mech   sasl.Mechanism
		tls    bool
		authz  string
		domain string
		gs2    string
		want   error
	}{
		{name: "sha1", mech: sasl.ScramSha1, gs2: "n,,"},
		{name: "sha256", mech: sasl.ScramSha256, gs2: "n,,"},
		{name: "sha256 on tls", mech: sasl.ScramSha256, tls: true, gs2: "n,,"},
		{name: "sha1-plus", mech: sasl.ScramSha1Plus, tls: true, gs2: "p=tls-exporter,,"},
		{name: "sha256-plus", mech: sasl.ScramSha256Plus, tls: true, gs2: "p=tls-exporter,,"},
		{name: "authzid bare jid", mech: sasl.ScramSha256Plus, tls: true, authz: "User@Example.COM", domain: "example.com", gs2: "p=tls-exporter,a=User@Example.COM,"},
		{name: "authzid username", mech: sasl.ScramSha256, authz: "user", gs2: "n,a=user,"},
		{name: "authzid other", mech: sasl.ScramSha256, authz: "other@example.com", domain: "example.com", gs2: "n,a=other@example.com,", want: ErrNotAuthorized},
		{name: "authzid jid without domain", mech: sasl.ScramSha256, authz: "user@example.com", gs2: "n,a=user@example.com,", want: ErrNotAuthorized},
		{name: "authzid full jid", mech: sasl.ScramSha256, authz: "user@example.com/r", domain: "example.com", gs2: "n,a=user@example.com/r,", want: ErrNotAuthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			copts := []sasl.Option{
				sasl.Credentials(func() ([]byte, []byte, []byte) {
					return []byte(testUser), []byte(testPassword), []byte(tc.authz)
				}),
				sasl.RemoteMechanisms(Names(true)...),
			}
			var sopts []sasl.Option
			if tc.tls {
				copts = append(copts, sasl.TLSState(*cliTLS))
				sopts = append(sopts, sasl.TLSState(*srvTLS))
			}
			cli := sasl.NewClient(tc.mech, copts...)
			var res Result
			m, ok := Mechanism(tc.mech.Name, Options{Lookup: testLookup(t), PlusAdvertised: tc.tls, Domain: tc.domain}, &res)
			if !ok {
				t.Fatal("no mechanism")
			}
			srv := sasl.NewServer(m, nil, sopts...)

			_, cf, err := cli.Step(nil)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(string(cf), tc.gs2) {
				t.Fatalf("client-first %q, want gs2 header %q", cf, tc.gs2)
			}
			_, sf, err := srv.Step(cf)
			if tc.want != nil {
				if !errors.Is(err, tc.want) {
					t.Fatalf("err = %v, want %v", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			_, cfin, err := cli.Step(sf)
			if err != nil {
				t.Fatal(err)
			}
			more, sfin, err := srv.Step(cfin)
			if err != nil || more {
				t.Fatalf("server-final: %v, more=%v", err, more)
			}
			if _, _, err := cli.Step(sfin); err != nil {
				t.Fatalf("client rejects server-final: %v", err)
			}
			if res.Username != testUser {
				t.Fatalf("Username = %q", res.Username)
			}
		})
	}
}

// TestMinimalClient covers SHA-512 and tls-server-end-point with the test
// client.
func TestMinimalClient(t *testing.T) {
	cert256 := ecdsaCert(t, elliptic.P256()) // ecdsa-with-SHA256
	cert384 := ecdsaCert(t, elliptic.P384()) // ecdsa-with-SHA384
	srv13, _ := tlsStates(t, cert256, tls.VersionTLS13)
	srv13b, _ := tlsStates(t, cert384, tls.VersionTLS13)
	srv12, cli12 := tlsStates(t, cert256, tls.VersionTLS12)
	if !bytes.Equal(exporter(t, srv12), exporter(t, cli12)) {
		t.Fatal("exporter mismatch")
	}
	h256 := sha256.Sum256(cert256.Certificate[0])
	h384 := sha512.Sum384(cert384.Certificate[0])

	for _, tc := range []struct {
		name, mech, hash string
		state            *tls.ConnectionState
		cert             []byte
		gs2              string
		cb               []byte
	}{
		{name: "sha512", mech: "SCRAM-SHA-512", hash: SHA512, gs2: "n,,"},
		{name: "sha512 y", mech: "SCRAM-SHA-512", hash: SHA512, gs2: "y,,"},
		{name: "sha512-plus exporter", mech: "SCRAM-SHA-512-PLUS", hash: SHA512, state: srv13, gs2: "p=tls-exporter,,", cb: exporter(t, srv13)},
		{name: "sha512-plus exporter tls1.2 ems", mech: "SCRAM-SHA-512-PLUS", hash: SHA512, state: srv12, gs2: "p=tls-exporter,,", cb: exporter(t, cli12)},
		{name: "sha256-plus end-point", mech: "SCRAM-SHA-256-PLUS", hash: SHA256, state: srv13, cert: cert256.Certificate[0], gs2: "p=tls-server-end-point,,", cb: h256[:]},
		{name: "sha512-plus end-point sha384", mech: "SCRAM-SHA-512-PLUS", hash: SHA512, state: srv13b, cert: cert384.Certificate[0], gs2: "p=tls-server-end-point,,", cb: h384[:]},
		{name: "sha1-plus end-point authzid", mech: "SCRAM-SHA-1-PLUS", hash: SHA1, state: srv13, cert: cert256.Certificate[0], gs2: "p=tls-server-end-point,a=user,", cb: h256[:]},
		{name: "escaped username", mech: "SCRAM-SHA-512", hash: SHA512, gs2: "n,,"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			user := testUser
			if tc.name == "escaped username" {
				user = "a,b=c"
			}
			c := &client{hash: tc.hash, user: user, pass: testPassword, gs2: tc.gs2, cbData: tc.cb}
			var res Result
			opts := Options{Lookup: testLookup(t), ServerCertDER: tc.cert}
			sfin, err := attempt(t, tc.mech, opts, tc.state, &res, c.first(), func(sf []byte) []byte { return c.final(t, sf) })
			if err != nil {
				t.Fatal(err)
			}
			if string(sfin) != c.wantV {
				t.Fatalf("server-final %q, want %q", sfin, c.wantV)
			}
			if res.Username != user {
				t.Fatalf("Username = %q", res.Username)
			}
		})
	}
}

// TestFailures: each case fails with the given sentinel and leaves Result
// empty.
func TestFailures(t *testing.T) {
	cert := ecdsaCert(t, elliptic.P256())
	srv13, _ := tlsStates(t, cert, tls.VersionTLS13)
	ekm := exporter(t, srv13)
	tampered := bytes.Clone(ekm)
	tampered[0] ^= 1
	der := cert.Certificate[0]
	h := sha256.Sum256(der)
	badCreds := func(username, hash string) (core.Credentials, bool) {
		return core.Credentials{Hash: SHA1, Salt: []byte("x"), Iterations: 1, StoredKey: make([]byte, 20), ServerKey: make([]byte, 20)}, true
	}

	for _, tc := range []struct {
		name  string
		mech  string
		c     client
		state *tls.ConnectionState
		opts  Options
		want  error
	}{
		{name: "wrong password", mech: "SCRAM-SHA-256", c: client{user: testUser, pass: "wrong", gs2: "n,,"}, want: ErrNotAuthorized},
		{name: "unknown user", mech: "SCRAM-SHA-256", c: client{user: "nobody", pass: testPassword, gs2: "n,,"}, want: ErrNotAuthorized},
		{name: "nil lookup", mech: "SCRAM-SHA-256", c: client{user: testUser, pass: testPassword, gs2: "n,,"}, opts: Options{Lookup: nil}, want: ErrNotAuthorized},
		{name: "credentials for other hash", mech: "SCRAM-SHA-256", c: client{user: testUser, pass: testPassword, gs2: "n,,"}, opts: Options{Lookup: badCreds}, want: ErrNotAuthorized},
		{name: "nonce mismatch", mech: "SCRAM-SHA-256", c: client{user: testUser, pass: testPassword, gs2: "n,,", rOver: ptr("fyko+d2lbbFgONRv9qkxdawLother")}, want: ErrNotAuthorized},
		{name: "authzid mismatch", mech: "SCRAM-SHA-256", c: client{user: testUser, pass: testPassword, gs2: "n,a=admin,"}, want: ErrNotAuthorized},
		{name: "tampered exporter", mech: "SCRAM-SHA-256-PLUS", state: srv13, c: client{user: testUser, pass: testPassword, gs2: "p=tls-exporter,,", cbData: tampered}, want: ErrChannelBinding},
		{name: "exporter missing in c=", mech: "SCRAM-SHA-256-PLUS", state: srv13, c: client{user: testUser, pass: testPassword, gs2: "p=tls-exporter,,"}, want: ErrChannelBinding},
		{name: "c= other gs2 header", mech: "SCRAM-SHA-256", c: client{user: testUser, pass: testPassword, gs2: "n,,", cbGS2: ptr("y,,")}, want: ErrChannelBinding},
		{name: "c= other cb type", mech: "SCRAM-SHA-256-PLUS", state: srv13, opts: Options{ServerCertDER: der}, c: client{user: testUser, pass: testPassword, gs2: "p=tls-exporter,,", cbGS2: ptr("p=tls-server-end-point,,"), cbData: h[:]}, want: ErrChannelBinding},
		{name: "c= with cb data on non-PLUS", mech: "SCRAM-SHA-256", state: srv13, c: client{user: testUser, pass: testPassword, gs2: "n,,", cbData: ekm}, want: ErrChannelBinding},
		{name: "y when plus advertised", mech: "SCRAM-SHA-256", opts: Options{PlusAdvertised: true}, c: client{user: testUser, pass: testPassword, gs2: "y,,"}, want: ErrChannelBinding},
		{name: "p on non-PLUS", mech: "SCRAM-SHA-256", state: srv13, c: client{user: testUser, pass: testPassword, gs2: "p=tls-exporter,,", cbData: ekm}, want: ErrChannelBinding},
		{name: "PLUS with n", mech: "SCRAM-SHA-256-PLUS", state: srv13, c: client{user: testUser, pass: testPassword, gs2: "n,,"}, want: ErrChannelBinding},
		{name: "PLUS with y", mech: "SCRAM-SHA-256-PLUS", state: srv13, c: client{user: testUser, pass: testPassword, gs2: "y,,"}, want: ErrChannelBinding},
		{name: "PLUS without TLS", mech: "SCRAM-SHA-256-PLUS", c: client{user: testUser, pass: testPassword, gs2: "p=tls-exporter,,"}, want: ErrChannelBinding},
		{name: "PLUS tls-unique", mech: "SCRAM-SHA-256-PLUS", state: srv13, c: client{user: testUser, pass: testPassword, gs2: "p=tls-unique,,"}, want: ErrChannelBinding},
		{name: "PLUS end-point without cert", mech: "SCRAM-SHA-256-PLUS", state: srv13, c: client{user: testUser, pass: testPassword, gs2: "p=tls-server-end-point,,", cbData: h[:]}, want: ErrChannelBinding},
		{name: "PLUS end-point ed25519 cert", mech: "SCRAM-SHA-256-PLUS", state: srv13, opts: Options{ServerCertDER: ed25519Cert(t).Certificate[0]}, c: client{user: testUser, pass: testPassword, gs2: "p=tls-server-end-point,,"}, want: ErrChannelBinding},
		{name: "PLUS end-point bad cert", mech: "SCRAM-SHA-256-PLUS", state: srv13, opts: Options{ServerCertDER: []byte("junk")}, c: client{user: testUser, pass: testPassword, gs2: "p=tls-server-end-point,,"}, want: ErrChannelBinding},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.opts.Lookup == nil && tc.name != "nil lookup" {
				tc.opts.Lookup = testLookup(t)
			}
			c := tc.c
			c.hash = SHA256
			var res Result
			_, err := attempt(t, tc.mech, tc.opts, tc.state, &res, c.first(), func(sf []byte) []byte { return c.final(t, sf) })
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if res.Username != "" {
				t.Fatalf("Username = %q after failure", res.Username)
			}
		})
	}

	// Control: 'y' is fine when the server offers no -PLUS variant.
	c := client{hash: SHA256, user: testUser, pass: testPassword, gs2: "y,,"}
	if _, err := attempt(t, "SCRAM-SHA-256", Options{Lookup: testLookup(t)}, nil, nil, c.first(), func(sf []byte) []byte { return c.final(t, sf) }); err != nil {
		t.Fatalf("y without PLUS advertised: %v", err)
	}
}

// TestUnknownUserDecoy: an unknown user gets a stable, plausible
// server-first-message (RFC 5802 §9).
func TestUnknownUserDecoy(t *testing.T) {
	first := func(user string, opts Options) (salt, iter string) {
		t.Helper()
		m, _ := Mechanism("SCRAM-SHA-256", opts, nil)
		_, sf, err := sasl.NewServer(m, nil).Step([]byte("n,,n=" + user + ",r=abc"))
		if err != nil {
			t.Fatal(err)
		}
		f := strings.Split(string(sf), ",")
		return f[1], f[2]
	}
	opts := Options{Lookup: testLookup(t), DecoyIterations: 10000}
	s1, i1 := first("nobody", opts)
	s2, _ := first("nobody", opts)
	s3, _ := first("somebody", opts)
	sReal, iReal := first(testUser, Options{Lookup: testLookup(t)})
	if s1 != s2 || s1 == s3 {
		t.Fatalf("decoy salt not stable per user: %q %q %q", s1, s2, s3)
	}
	if len(s1) != len(sReal) {
		t.Fatalf("decoy salt %q differs in length from %q", s1, sReal)
	}
	if i1 != "i=10000" || iReal != "i=4096" {
		t.Fatalf("iterations %q %q", i1, iReal)
	}
	if _, i := first("nobody", Options{}); i != "i=4096" {
		t.Fatalf("default decoy iterations %q", i)
	}
}

// TestMalformed feeds broken client messages: each must fail with the given
// error and never panic.
func TestMalformed(t *testing.T) {
	long := strings.Repeat("a", 600)
	firsts := []struct {
		in   string
		want error
	}{
		{"n", ErrMalformed},
		{"n,", ErrMalformed},
		{"n,,", ErrMalformed},
		{"n,,n=user", ErrMalformed},
		{"n,,n=user,", ErrMalformed},
		{"n,,r=abc", ErrMalformed},
		{"n,,r=abc,n=user", ErrMalformed},
		{"x,,n=user,r=abc", ErrMalformed},
		{"nn,,n=user,r=abc", ErrMalformed},
		{"p,,n=user,r=abc", ErrMalformed},
		{"p=,,n=user,r=abc", ErrMalformed},
		{"p=tls exporter,,n=user,r=abc", ErrMalformed},
		{"n,b=x,n=user,r=abc", ErrMalformed},
		{"n,a=,n=user,r=abc", ErrMalformed},
		{"n,a=x=41,n=user,r=abc", ErrMalformed},
		{"n,,m=ext,n=user,r=abc", ErrMalformed},
		{"n,,n=,r=abc", ErrMalformed},
		{"n,,n=us=2cer,r=abc", ErrMalformed},
		{"n,,n=us=er,r=abc", ErrMalformed},
		{"n,,n=user=,r=abc", ErrMalformed},
		{"n,,n=user=3,r=abc", ErrMalformed},
		{"n,,n=user=2,r=abc", ErrMalformed},
		{"n,,n=us\x00er,r=abc", ErrMalformed},
		{"n,,n=us\xffer,r=abc", ErrMalformed},
		{"n,,n=user,r=", ErrMalformed},
		{"n,,n=user,r=ab\x01c", ErrMalformed},
		{"n,,n=user,r=ab c", ErrMalformed},
		{"n,,n=user,r=abé", ErrMalformed},
		{"n,,n=user,r=" + long, ErrMalformed},
		{"n,,n=user,r=" + strings.Repeat("a", 5000), ErrMalformed},
		{"n,,n=user,r=abc,x", ErrMalformed},
		{"n,,n=user,r=abc,1=x", ErrMalformed},
		{"n,,n=user,r=abc,x=", ErrMalformed},
		{"n,,N=user,r=abc", ErrMalformed},
		{"n,,n=user,r=abc,x=ok", nil}, // unknown extensions are ignored
		{"n,,n=u=2Cs=3Der,r=abc", nil},
	}
	for _, tc := range firsts {
		m, _ := Mechanism("SCRAM-SHA-256", Options{Lookup: testLookup(t)}, nil)
		_, _, err := sasl.NewServer(m, nil).Step([]byte(tc.in))
		if !errors.Is(err, tc.want) || (err != nil && !isSentinel(err)) {
			t.Errorf("client-first %.40q: err = %v, want %v", tc.in, err, tc.want)
		}
	}

	const nonce = "fyko+d2lbbFgONRv9qkxdawL" + "3rfcNHYJY1ZVvWVs7j"
	proof := base64.StdEncoding.EncodeToString(make([]byte, 32))
	finals := []struct {
		in   string
		want error
	}{
		{"", ErrMalformed},
		{"c=biws", ErrMalformed},
		{"c=biws,r=" + nonce, ErrMalformed},
		{"c=biws,r=" + nonce + ",p=", ErrMalformed},
		{"c=biws,r=" + nonce + ",p=" + proof[:20], ErrMalformed},
		{"c=biws,r=" + nonce + ",p=!!" + proof[2:], ErrMalformed},
		{"c=biws,r=" + nonce + ",p=" + base64.StdEncoding.EncodeToString(make([]byte, 20)), ErrMalformed},
		{"c=biws,r=" + nonce + ",p=" + base64.RawStdEncoding.EncodeToString(make([]byte, 32)), ErrMalformed},
		{"c=biws,r=" + nonce + ",p=" + proof + ",x=1", ErrMalformed},
		{"c=biws,p=" + proof + ",r=" + nonce, ErrMalformed},
		{"r=" + nonce + ",c=biws,p=" + proof, ErrMalformed},
		{"c=,r=" + nonce + ",p=" + proof, ErrMalformed},
		{"c=biw,r=" + nonce + ",p=" + proof, ErrMalformed},
		{"c=b!ws,r=" + nonce + ",p=" + proof, ErrMalformed},
		{"c=biws,r=" + nonce + ",bad,p=" + proof, ErrMalformed},
		{"c=biws,r=" + nonce + ",p=" + proof + "\x00", ErrMalformed},
		{"c=biws,r=" + nonce + strings.Repeat("a", 5000) + ",p=" + proof, ErrMalformed},
		{"c=biws,r=" + nonce + ",p=" + proof, ErrNotAuthorized},
		{"c=biws,r=" + nonce + ",x=ext,p=" + proof, ErrNotAuthorized},
		{"c=biws,r=" + nonce + "x,p=" + proof, ErrNotAuthorized},
		{"c=eSws,r=" + nonce + ",p=" + proof, ErrChannelBinding},
	}
	for _, tc := range finals {
		m, _ := Mechanism("SCRAM-SHA-256", Options{Lookup: testLookup(t), nonce: fixedNonce("3rfcNHYJY1ZVvWVs7j")}, nil)
		srv := sasl.NewServer(m, nil)
		if _, _, err := srv.Step([]byte("n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL")); err != nil {
			t.Fatal(err)
		}
		_, _, err := srv.Step([]byte(tc.in))
		if !errors.Is(err, tc.want) || !isSentinel(err) {
			t.Errorf("client-final %.60q: err = %v, want %v", tc.in, err, tc.want)
		}
	}
}

func TestDerive(t *testing.T) {
	salt := []byte("salt")
	for _, tc := range []struct {
		hash, pass string
		salt       []byte
		iter       int
		ok         bool
	}{
		{SHA1, "pencil", salt, 1, true},
		{SHA256, "pencil", salt, 4096, true},
		{SHA512, "pencil", salt, 2, true},
		{"MD5", "pencil", salt, 1, false},
		{"sha-256", "pencil", salt, 1, false},
		{SHA256, "pencil", salt, 0, false},
		{SHA256, "pencil", nil, 1, false},
		{SHA256, "", salt, 1, false},
		{SHA256, "pen\x00cil", salt, 1, false},
	} {
		c, err := Derive(tc.hash, tc.pass, tc.salt, tc.iter)
		if (err == nil) != tc.ok {
			t.Errorf("Derive(%q, %q, %d): %v", tc.hash, tc.pass, tc.iter, err)
			continue
		}
		if err == nil && (c.Hash != tc.hash || c.Iterations != tc.iter || !bytes.Equal(c.Salt, tc.salt) || len(c.StoredKey) != len(c.ServerKey)) {
			t.Errorf("Derive(%q): %+v", tc.hash, c)
		}
	}
	// OpaqueString maps non-ASCII spaces to U+0020 (RFC 8265 §4.2.1).
	a, _ := Derive(SHA256, "pen cil", salt, 1)
	b, _ := Derive(SHA256, "pen\u00a0cil", salt, 1)
	if !bytes.Equal(a.StoredKey, b.StoredKey) {
		t.Error("password not prepared")
	}
}

func TestNewCredentials(t *testing.T) {
	creds, err := testCreds()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range creds {
		got = append(got, c.Hash)
		if len(c.Salt) != 16 || c.Iterations != testIter {
			t.Errorf("%s: salt %d bytes, %d iterations", c.Hash, len(c.Salt), c.Iterations)
		}
	}
	if !slices.Equal(got, []string{SHA512, SHA256, SHA1}) {
		t.Errorf("hashes %v", got)
	}
	if bytes.Equal(creds[0].Salt, creds[1].Salt) {
		t.Error("salt reused")
	}
	if _, err := NewCredentials("", 1); err == nil {
		t.Error("empty password accepted")
	}
}

func TestVerifyPlain(t *testing.T) {
	creds, err := testCreds()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range creds {
		for _, tc := range []struct {
			pass string
			want bool
		}{
			{testPassword, true},
			{"pencil\u00a0", false},
			{"Pencil", false},
			{"", false},
			{"pencil ", false},
		} {
			if got := VerifyPlain(c, tc.pass); got != tc.want {
				t.Errorf("%s VerifyPlain(%q) = %v", c.Hash, tc.pass, got)
			}
		}
	}
	broken := creds[0]
	broken.Hash = "MD5"
	if VerifyPlain(broken, testPassword) || VerifyPlain(core.Credentials{}, testPassword) {
		t.Error("VerifyPlain accepted broken credentials")
	}
}

func TestNames(t *testing.T) {
	want := []string{"SCRAM-SHA-512", "SCRAM-SHA-256", "SCRAM-SHA-1"}
	if got := Names(false); !slices.Equal(got, want) {
		t.Errorf("Names(false) = %v", got)
	}
	wantPlus := append([]string{"SCRAM-SHA-512-PLUS", "SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS"}, want...)
	if got := Names(true); !slices.Equal(got, wantPlus) {
		t.Errorf("Names(true) = %v", got)
	}
	for _, n := range wantPlus {
		if m, ok := Mechanism(n, Options{}, nil); !ok || m.Name != n {
			t.Errorf("Mechanism(%q) = %q, %v", n, m.Name, ok)
		}
	}
	for _, n := range []string{"", "PLAIN", "SCRAM-SHA-384", "SCRAM-MD5", "scram-sha-256", "SCRAM-SHA-256-PLUS-PLUS", "SHA-256", "SCRAM-SHA-1-plus"} {
		if _, ok := Mechanism(n, Options{}, nil); ok {
			t.Errorf("Mechanism(%q) accepted", n)
		}
	}
	// A server mechanism refuses to act as a client.
	m, _ := Mechanism("SCRAM-SHA-1", Options{}, nil)
	if _, _, err := sasl.NewClient(m).Step(nil); err == nil {
		t.Error("client Start succeeded")
	}
}

func TestChannelBindingTypes(t *testing.T) {
	cert := ecdsaCert(t, elliptic.P256())
	der := cert.Certificate[0]
	srv13, _ := tlsStates(t, cert, tls.VersionTLS13)
	srv12, _ := tlsStates(t, cert, tls.VersionTLS12)
	for _, tc := range []struct {
		name  string
		state *tls.ConnectionState
		der   []byte
		want  []string
	}{
		{"no tls", nil, der, nil},
		{"handshake not done", &tls.ConnectionState{}, der, nil},
		{"tls1.3", srv13, nil, []string{TLSExporter}},
		{"tls1.3 cert", srv13, der, []string{TLSExporter, TLSServerEndPoint}},
		{"tls1.2 ems cert", srv12, der, []string{TLSExporter, TLSServerEndPoint}},
		{"tls1.3 ed25519 cert", srv13, ed25519Cert(t).Certificate[0], []string{TLSExporter}},
	} {
		if got := ChannelBindingTypes(tc.state, tc.der); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestEndPointHash checks RFC 5929 §4.1 hash selection.
func TestEndPointHash(t *testing.T) {
	for _, tc := range []struct {
		alg  x509.SignatureAlgorithm
		size int
	}{
		{x509.MD5WithRSA, 32},
		{x509.SHA1WithRSA, 32},
		{x509.ECDSAWithSHA1, 32},
		{x509.SHA256WithRSA, 32},
		{x509.ECDSAWithSHA256, 32},
		{x509.SHA256WithRSAPSS, 32},
		{x509.SHA384WithRSA, 48},
		{x509.ECDSAWithSHA384, 48},
		{x509.SHA512WithRSAPSS, 64},
		{x509.ECDSAWithSHA512, 64},
		{x509.PureEd25519, 0},
		{x509.UnknownSignatureAlgorithm, 0},
	} {
		f := endPointHash(tc.alg)
		size := 0
		if f != nil {
			size = f().Size()
		}
		if size != tc.size {
			t.Errorf("%v: %d, want %d", tc.alg, size, tc.size)
		}
	}
}
