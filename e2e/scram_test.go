package e2e

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"hash"
	"strconv"
	"strings"
	"testing"
)

// manualSCRAM runs a SCRAM exchange (RFC 5802) by hand on r, with a GS2
// header and channel-binding data of the test's choosing: mellium's client
// never sends a 'y' flag nor wrong binding data. It returns the SASL
// failure condition, or "" on success (the stream is not restarted).
func manualSCRAM(t *testing.T, r *Raw, mech string, h func() hash.Hash, gs2 string, cbData []byte, user, password string) string {
	t.Helper()
	nonce := make([]byte, 18)
	_, _ = rand.Read(nonce)
	cnonce := base64.RawStdEncoding.EncodeToString(nonce)
	user = strings.NewReplacer("=", "=3D", ",", "=2C").Replace(user)
	clientFirstBare := "n=" + user + ",r=" + cnonce
	r.MustWrite("<auth xmlns='" + NSSASL + "' mechanism='" + mech + "'>" + b64([]byte(gs2+clientFirstBare)) + "</auth>")

	el := r.MustNext()
	if el.Is(NSSASL, "failure") {
		return saslCondition(t, el)
	}
	if !el.Is(NSSASL, "challenge") {
		t.Fatalf("expected a SCRAM challenge, got %s", el)
	}
	serverFirst, err := unb64(el.Text)
	if err != nil {
		t.Fatalf("challenge: %v", err)
	}
	var snonce, salt string
	iter := 0
	for _, f := range strings.Split(string(serverFirst), ",") {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "r":
			snonce = v
		case "s":
			salt = v
		case "i":
			iter, _ = strconv.Atoi(v)
		}
	}
	if !strings.HasPrefix(snonce, cnonce) || salt == "" || iter < 4096 {
		t.Fatalf("bad server-first-message %q", serverFirst)
	}
	saltB, err := base64.StdEncoding.DecodeString(salt)
	if err != nil {
		t.Fatalf("salt: %v", err)
	}
	withoutProof := "c=" + base64.StdEncoding.EncodeToString(append([]byte(gs2), cbData...)) + ",r=" + snonce
	salted, err := pbkdf2.Key(h, password, saltB, iter, h().Size())
	if err != nil {
		t.Fatal(err)
	}
	mac := func(key []byte, msg string) []byte {
		m := hmac.New(h, key)
		m.Write([]byte(msg))
		return m.Sum(nil)
	}
	clientKey := mac(salted, "Client Key")
	hh := h()
	hh.Write(clientKey)
	storedKey := hh.Sum(nil)
	authMessage := clientFirstBare + "," + string(serverFirst) + "," + withoutProof
	sig := mac(storedKey, authMessage)
	proof := make([]byte, len(clientKey))
	for i := range proof {
		proof[i] = clientKey[i] ^ sig[i]
	}
	final := withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof)
	r.MustWrite("<response xmlns='" + NSSASL + "'>" + b64([]byte(final)) + "</response>")

	el = r.MustNext()
	switch {
	case el.Is(NSSASL, "failure"):
		return saslCondition(t, el)
	case el.Is(NSSASL, "success"):
		data, _ := unb64(el.Text)
		want := "v=" + base64.StdEncoding.EncodeToString(mac(mac(salted, "Server Key"), authMessage))
		if string(data) != want {
			t.Errorf("server signature %q, want %q", data, want)
		}
		return ""
	}
	t.Fatalf("expected <success/> or <failure/>, got %s", el)
	return ""
}

func saslCondition(t *testing.T, failure *Element) string {
	t.Helper()
	for _, c := range failure.ChildrenIn(NSSASL) {
		if c.Name.Local != "text" {
			return c.Name.Local
		}
	}
	t.Fatalf("<failure/> without a condition: %s", failure)
	return ""
}

// tlsExporter returns RFC 9266 tls-exporter channel-binding data.
func tlsExporter(t *testing.T, r *Raw) []byte {
	t.Helper()
	st, ok := r.TLSState()
	if !ok {
		t.Fatal("no TLS")
	}
	b, err := st.ExportKeyingMaterial("EXPORTER-Channel-Binding", nil, 32)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tlsServerEndPoint returns RFC 5929 tls-server-end-point data for the
// server's certificate (signed with a SHA-256 based algorithm).
func tlsServerEndPoint(t *testing.T, r *Raw) []byte {
	t.Helper()
	st, ok := r.TLSState()
	if !ok || len(st.PeerCertificates) == 0 {
		t.Fatal("no TLS peer certificate")
	}
	sum := sha256.Sum256(st.PeerCertificates[0].Raw)
	return sum[:]
}
