package main

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// prosodyAccounts writes Prosody internal_hashed account files
// (DATA/HOST/accounts/USER.dat) directly: the same content
// "prosodyctl register" writes (SCRAM-SHA-1 stored_key/server_key, salt,
// iteration_count), without starting Lua once per user.
func prosodyAccounts(args []string) error {
	fs := flag.NewFlagSet("prosody-accounts", flag.ExitOnError)
	data := fs.String("data", "", "Prosody data_path")
	host := fs.String("domain", "localhost", "virtual host")
	prefix := fs.String("prefix", "u", "user name prefix")
	n := fs.Int("users", 500, "users PREFIX0..PREFIX(N-1)")
	extra := fs.String("extra", "hub,o0,o1", "further user names, comma-separated")
	pass := fs.String("password", "benchpass", "password")
	iter := fs.Int("iterations", 10000, "PBKDF2 iterations (Prosody's default is 10000)")
	fs.Parse(args)
	if *data == "" {
		return fmt.Errorf("-data is required")
	}
	dir := filepath.Join(*data, prosodyEncode(*host), "accounts")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	var users []string
	for i := 0; i < *n; i++ {
		users = append(users, fmt.Sprintf("%s%d", *prefix, i))
	}
	if *extra != "" {
		users = append(users, strings.Split(*extra, ",")...)
	}
	written := 0
	for _, u := range users {
		path := filepath.Join(dir, prosodyEncode(u)+".dat")
		if _, err := os.Stat(path); err == nil {
			continue
		}
		salt := uuid()
		salted, err := pbkdf2.Key(sha1.New, *pass, []byte(salt), *iter, sha1.Size)
		if err != nil {
			return err
		}
		h := scramHashes["SCRAM-SHA-1"]
		clientKey := hmacSum(h, salted, "Client Key")
		stored := sha1.Sum(clientKey)
		server := hmacSum(h, salted, "Server Key")
		body := fmt.Sprintf("return {\n\t[\"iteration_count\"] = %d;\n\t[\"salt\"] = %q;\n\t[\"stored_key\"] = %q;\n\t[\"server_key\"] = %q;\n};\n",
			*iter, salt, hex.EncodeToString(stored[:]), hex.EncodeToString(server))
		if err := os.WriteFile(path, []byte(body), 0o640); err != nil {
			return err
		}
		written++
	}
	fmt.Printf("prosody accounts: %d written, %d already present\n", written, len(users)-written)
	return nil
}

// prosodyEncode is Prosody's datamanager file name encoding.
func prosodyEncode(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02x", c)
		}
	}
	return b.String()
}

func uuid() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
