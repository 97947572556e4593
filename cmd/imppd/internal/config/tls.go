package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Self-signed certificates live 10 years and are renewed in their last 30 days.
const (
	selfSignedValidity = 10 * 365 * 24 * time.Hour
	selfSignedRenew    = 30 * 24 * time.Hour
)

// SelfSignedPaths are the files of the generated certificate: data_dir/tls/.
func (c *Config) SelfSignedPaths() (certFile, keyFile string) {
	dir := filepath.Join(c.DataDir, "tls")
	return filepath.Join(dir, "selfsigned.crt"), filepath.Join(dir, "selfsigned.key")
}

// TLSCertificate returns the configured certificate, or, when tls.cert and
// tls.key are empty, the self-signed one in data_dir/tls, generating it when
// missing or when it does not cover every served domain. Call after Resolve.
// logger may be nil.
func (c *Config) TLSCertificate(logger *slog.Logger) (tls.Certificate, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if c.TLS.Cert != "" || c.TLS.Key != "" {
		return c.loadCertificate(logger)
	}
	return c.selfSigned(logger)
}

func (c *Config) loadCertificate(logger *slog.Logger) (tls.Certificate, error) {
	certPEM, err := os.ReadFile(c.TLS.Cert)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tls.cert: %w", err)
	}
	keyPEM, err := os.ReadFile(c.TLS.Key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tls.key: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tls.cert %s with tls.key %s: %w", c.TLS.Cert, c.TLS.Key, err)
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return tls.Certificate{}, fmt.Errorf("tls.cert %s: %w", c.TLS.Cert, err)
		}
	}
	for _, d := range c.Domains {
		if cert.Leaf.VerifyHostname(d) != nil {
			logger.Warn("TLS certificate does not cover a served domain; clients will reject it", "domain", d, "path", c.TLS.Cert)
		}
	}
	if time.Now().After(cert.Leaf.NotAfter) {
		logger.Warn("TLS certificate has expired", "path", c.TLS.Cert, "not_after", cert.Leaf.NotAfter)
	}
	return cert, nil
}

func (c *Config) selfSigned(logger *slog.Logger) (tls.Certificate, error) {
	certFile, keyFile := c.SelfSignedPaths()
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err == nil && cert.Leaf == nil {
		cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0])
	}
	switch {
	case err == nil && covers(cert.Leaf, c.Domains) && time.Until(cert.Leaf.NotAfter) > selfSignedRenew:
		return cert, nil
	case err == nil:
		logger.Info("self-signed certificate does not cover the served domains or is expiring; regenerating", "path", certFile)
	case !errors.Is(err, fs.ErrNotExist):
		logger.Warn("unusable self-signed certificate; regenerating", "path", certFile, "err", err)
	}

	certPEM, keyPEM, err := generateSelfSigned(c.Domains, time.Now())
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("generating self-signed certificate: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(certFile), 0o700); err != nil {
		return tls.Certificate{}, fmt.Errorf("generating self-signed certificate: %w", err)
	}
	// Key first: a certificate on disk always has its key.
	if err := writeFileAtomic(keyFile, keyPEM, 0o600); err != nil {
		return tls.Certificate{}, fmt.Errorf("writing self-signed key: %w", err)
	}
	if err := writeFileAtomic(certFile, certPEM, 0o644); err != nil {
		return tls.Certificate{}, fmt.Errorf("writing self-signed certificate: %w", err)
	}
	logger.Info("generated self-signed certificate", "path", certFile, "domains", c.Domains)
	return tls.X509KeyPair(certPEM, keyPEM)
}

func covers(leaf *x509.Certificate, domains []string) bool {
	for _, d := range domains {
		if leaf.VerifyHostname(d) != nil {
			return false
		}
	}
	return true
}

// generateSelfSigned makes an ECDSA P-256 certificate naming every domain.
// It is its own CA so clients can trust the file directly.
func generateSelfSigned(domains []string, now time.Time) (certPEM, keyPEM []byte, err error) {
	if len(domains) == 0 {
		return nil, nil, errors.New("no domains")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: domains[0], Organization: []string{"imppd self-signed"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(selfSignedValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	for _, d := range domains {
		if ip := net.ParseIP(d); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, d)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), nil
}

// writeFileAtomic writes via a temporary file and rename.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
