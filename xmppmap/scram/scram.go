// Package scram implements SCRAM (RFC 5802, RFC 7677) SASL mechanisms for the
// server side, on stored keys only.
package scram

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"errors"
	"fmt"
	"hash"

	"golang.org/x/text/secure/precis"

	"github.com/imppd/imppd/core"
)

// Hash names as stored in core.Credentials.Hash.
const (
	SHA1   = "SHA-1"
	SHA256 = "SHA-256"
	SHA512 = "SHA-512"
)

// saltLen is the salt size NewCredentials uses and decoys imitate.
const saltLen = 16

type hashFunc struct {
	name string
	new  func() hash.Hash
	size int
}

var hashes = []hashFunc{
	{SHA512, sha512.New, sha512.Size},
	{SHA256, sha256.New, sha256.Size},
	{SHA1, sha1.New, sha1.Size},
}

func hashByName(name string) (hashFunc, bool) {
	for _, h := range hashes {
		if h.name == name {
			return h, true
		}
	}
	return hashFunc{}, false
}

// preparePassword stands in for SASLprep (RFC 4013), now PRECIS OpaqueString
// (RFC 8265 §4.2).
func preparePassword(password string) (string, error) {
	p, err := precis.OpaqueString.String(password)
	if err != nil {
		return "", fmt.Errorf("scram: password: %w", err)
	}
	return p, nil
}

func hmacSum(h hashFunc, key []byte, parts ...[]byte) []byte {
	m := hmac.New(h.new, key)
	for _, p := range parts {
		m.Write(p)
	}
	return m.Sum(nil)
}

func hashSum(h hashFunc, b []byte) []byte {
	d := h.new()
	d.Write(b)
	return d.Sum(nil)
}

// keys computes StoredKey and ServerKey from SaltedPassword (RFC 5802 §3).
func keys(h hashFunc, password string, salt []byte, iterations int) (storedKey, serverKey []byte, err error) {
	salted, err := pbkdf2.Key(h.new, password, salt, iterations, h.size)
	if err != nil {
		return nil, nil, fmt.Errorf("scram: %w", err)
	}
	clientKey := hmacSum(h, salted, []byte("Client Key"))
	return hashSum(h, clientKey), hmacSum(h, salted, []byte("Server Key")), nil
}

// Derive computes the stored credentials for password (RFC 5802 §3). hash is
// "SHA-1", "SHA-256" or "SHA-512".
func Derive(hash string, password string, salt []byte, iterations int) (core.Credentials, error) {
	h, ok := hashByName(hash)
	switch {
	case !ok:
		return core.Credentials{}, fmt.Errorf("scram: unsupported hash %q", hash)
	case iterations < 1:
		return core.Credentials{}, errors.New("scram: iteration count must be positive")
	case len(salt) == 0:
		return core.Credentials{}, errors.New("scram: empty salt")
	}
	p, err := preparePassword(password)
	if err != nil {
		return core.Credentials{}, err
	}
	stored, server, err := keys(h, p, salt, iterations)
	if err != nil {
		return core.Credentials{}, err
	}
	return core.Credentials{
		Hash:       h.name,
		Salt:       append([]byte(nil), salt...),
		Iterations: iterations,
		StoredKey:  stored,
		ServerKey:  server,
	}, nil
}

// NewCredentials derives credentials for every supported hash, strongest
// first, each with its own random salt. RFC 7677 §4 asks for iterations of at
// least 4096.
func NewCredentials(password string, iterations int) ([]core.Credentials, error) {
	out := make([]core.Credentials, 0, len(hashes))
	for _, h := range hashes {
		salt := make([]byte, saltLen)
		rand.Read(salt)
		c, err := Derive(h.name, password, salt, iterations)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// VerifyPlain reports whether password matches c, for SASL PLAIN (RFC 4616):
// it recomputes StoredKey and compares in constant time.
func VerifyPlain(c core.Credentials, password string) bool {
	h, ok := hashByName(c.Hash)
	if !ok || c.Iterations < 1 || len(c.Salt) == 0 || len(c.StoredKey) != h.size {
		return false
	}
	p, err := preparePassword(password)
	if err != nil {
		return false
	}
	stored, _, err := keys(h, p, c.Salt, c.Iterations)
	if err != nil {
		return false
	}
	return subtle.ConstantTimeCompare(stored, c.StoredKey) == 1
}
