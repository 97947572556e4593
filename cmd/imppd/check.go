package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
)

// check validates what serve would use, reporting every problem it finds.
func check(args []string, stdout io.Writer) error {
	f, err := parseFlags("check", args, false)
	if err != nil {
		return err
	}
	cfg, err := loadConfig(f.config)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, "configuration: ok; domains", cfg.Domains)
	bad := 0
	if cfg.TLS.Cert == "" {
		crt, _ := cfg.SelfSignedPaths()
		if _, err := os.Stat(crt); err != nil {
			fmt.Fprintln(stdout, "certificate: none yet; a self-signed one will be generated at", crt)
		} else if _, err := cfg.TLSCertificate(slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
			fmt.Fprintln(stdout, "certificate:", err)
			bad++
		} else {
			fmt.Fprintln(stdout, "certificate: ok (self-signed)", crt)
		}
	} else if _, err := cfg.TLSCertificate(slog.New(slog.NewTextHandler(stdout, nil))); err != nil {
		fmt.Fprintln(stdout, "certificate:", err)
		bad++
	} else {
		fmt.Fprintln(stdout, "certificate: ok", cfg.TLS.Cert)
	}
	if _, err := os.Stat(cfg.Storage.Database); err != nil {
		fmt.Fprintln(stdout, "database: none yet; it will be created at", cfg.Storage.Database)
	} else {
		store, err := openDB(context.Background(), cfg)
		if err == nil {
			err = store.Check(context.Background())
			store.Close()
		}
		if err != nil {
			fmt.Fprintln(stdout, "database:", err)
			bad++
		} else {
			fmt.Fprintln(stdout, "database: ok", cfg.Storage.Database)
		}
	}
	if bad > 0 {
		return fmt.Errorf("%d problem(s) found", bad)
	}
	return nil
}
