package config

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func testConfig(t *testing.T, domains ...string) *Config {
	t.Helper()
	c := Default()
	c.Domains = domains
	c.Resolve(t.TempDir())
	return c
}

func captureLogger() (*slog.Logger, *bytes.Buffer) {
	var buf bytes.Buffer
	return slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), &buf
}

func leaf(t *testing.T, cert tls.Certificate) *x509.Certificate {
	t.Helper()
	l, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestSelfSignedGenerateReuseRegenerate(t *testing.T) {
	c := testConfig(t, "example.org", "chat.example.org")
	certFile, keyFile := c.SelfSignedPaths()
	if certFile != filepath.Join(c.DataDir, "tls", "selfsigned.crt") || keyFile != filepath.Join(c.DataDir, "tls", "selfsigned.key") {
		t.Fatalf("paths %q %q", certFile, keyFile)
	}

	// First use generates.
	log, buf := captureLogger()
	cert, err := c.TLSCertificate(log)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "level=INFO") || !strings.Contains(buf.String(), `msg="generated self-signed certificate"`) ||
		!strings.Contains(buf.String(), "path="+certFile) {
		t.Errorf("log: %s", buf.String())
	}
	l := leaf(t, cert)
	if !slices.Equal(l.DNSNames, []string{"example.org", "chat.example.org"}) {
		t.Errorf("SANs %v", l.DNSNames)
	}
	if pub, ok := l.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Errorf("key %T", l.PublicKey)
	}
	if life := l.NotAfter.Sub(l.NotBefore); life < 10*365*24*time.Hour || life > 10*366*24*time.Hour {
		t.Errorf("validity %v", life)
	}
	if m := mode(t, keyFile); m != 0o600 {
		t.Errorf("key mode %v", m)
	}
	if m := mode(t, filepath.Dir(certFile)); m != 0o700 {
		t.Errorf("tls dir mode %v", m)
	}
	if m := mode(t, c.DataDir); m != 0o700 {
		t.Errorf("data dir mode %v", m)
	}
	// Clients can trust the file itself.
	pool := x509.NewCertPool()
	pem, _ := os.ReadFile(certFile)
	pool.AppendCertsFromPEM(pem)
	if _, err := l.Verify(x509.VerifyOptions{DNSName: "chat.example.org", Roots: pool}); err != nil {
		t.Errorf("verify: %v", err)
	}

	// Second use reuses, silently.
	log, buf = captureLogger()
	again, err := c.TLSCertificate(log)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.Certificate[0], cert.Certificate[0]) || buf.Len() != 0 {
		t.Errorf("not reused; log: %s", buf.String())
	}

	// Fewer domains: still covered, reused.
	c.Domains = []string{"example.org"}
	if again, _ = c.TLSCertificate(nil); !bytes.Equal(again.Certificate[0], cert.Certificate[0]) {
		t.Error("regenerated for a subset of domains")
	}

	// A new domain: regenerated.
	c.Domains = []string{"example.org", "example.net"}
	log, buf = captureLogger()
	regen, err := c.TLSCertificate(log)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(regen.Certificate[0], cert.Certificate[0]) || !strings.Contains(buf.String(), "generated self-signed certificate") {
		t.Errorf("not regenerated; log: %s", buf.String())
	}
	if err := leaf(t, regen).VerifyHostname("example.net"); err != nil {
		t.Error(err)
	}
	onDisk, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil || !bytes.Equal(onDisk.Certificate[0], regen.Certificate[0]) {
		t.Errorf("disk does not hold the new certificate: %v", err)
	}
	if m := mode(t, keyFile); m != 0o600 {
		t.Errorf("key mode after regeneration %v", m)
	}
}

func TestSelfSignedCorruptRegenerated(t *testing.T) {
	c := testConfig(t, "localhost")
	certFile, keyFile := c.SelfSignedPaths()
	if err := os.MkdirAll(filepath.Dir(certFile), 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(certFile, []byte("garbage"), 0o644)
	os.WriteFile(keyFile, []byte("garbage"), 0o600)
	log, buf := captureLogger()
	cert, err := c.TLSCertificate(log)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "level=WARN") || leaf(t, cert).VerifyHostname("localhost") != nil {
		t.Errorf("log: %s", buf.String())
	}
}

func TestSelfSignedIPDomain(t *testing.T) {
	c := testConfig(t, "127.0.0.1", "localhost")
	cert, err := c.TLSCertificate(nil)
	if err != nil {
		t.Fatal(err)
	}
	l := leaf(t, cert)
	if l.VerifyHostname("127.0.0.1") != nil || l.VerifyHostname("localhost") != nil {
		t.Errorf("IPs %v DNS %v", l.IPAddresses, l.DNSNames)
	}
}

// writePair generates a certificate for domains into dir.
func writePair(t *testing.T, dir string, domains ...string) (certFile, keyFile string) {
	t.Helper()
	certPEM, keyPEM, err := generateSelfSigned(domains, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	if err := os.WriteFile(certFile, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func TestConfiguredCertificate(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := writePair(t, dir, "example.org")
	p := filepath.Join(dir, "config.toml")
	os.WriteFile(p, []byte("domains = [\"example.org\", \"other.net\"]\n[tls]\ncert = \"server.crt\"\nkey = \"server.key\"\n"), 0o644)
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	log, buf := captureLogger()
	cert, err := c.TLSCertificate(log)
	if err != nil {
		t.Fatal(err)
	}
	if leaf(t, cert).VerifyHostname("example.org") != nil {
		t.Error("wrong certificate")
	}
	out := buf.String()
	if !strings.Contains(out, "level=WARN") || !strings.Contains(out, "domain=other.net") || strings.Contains(out, "domain=example.org") ||
		!strings.Contains(out, certFile) {
		t.Errorf("log: %s", out)
	}
	// Nothing generated.
	if sc, _ := c.SelfSignedPaths(); fileExists(sc) {
		t.Error("self-signed certificate generated although one is configured")
	}

	// Missing and invalid files are named.
	c.TLS.Cert = filepath.Join(dir, "missing.crt")
	if _, err := c.TLSCertificate(nil); err == nil || !strings.Contains(err.Error(), "tls.cert") || !strings.Contains(err.Error(), c.TLS.Cert) {
		t.Errorf("missing cert: %v", err)
	}
	c.TLS.Cert, c.TLS.Key = certFile, filepath.Join(dir, "missing.key")
	if _, err := c.TLSCertificate(nil); err == nil || !strings.Contains(err.Error(), "tls.key") || !strings.Contains(err.Error(), c.TLS.Key) {
		t.Errorf("missing key: %v", err)
	}
	bad := filepath.Join(dir, "bad.crt")
	os.WriteFile(bad, []byte("not PEM"), 0o644)
	c.TLS.Cert, c.TLS.Key = bad, keyFile
	if _, err := c.TLSCertificate(nil); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("invalid cert: %v", err)
	}
	// Key of another certificate.
	otherDir := t.TempDir()
	_, otherKey := writePair(t, otherDir, "example.org")
	c.TLS.Cert, c.TLS.Key = certFile, otherKey
	if _, err := c.TLSCertificate(nil); err == nil || !strings.Contains(err.Error(), otherKey) {
		t.Errorf("mismatched key: %v", err)
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
