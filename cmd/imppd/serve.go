package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	_ "net/http/pprof" // served only with -pprof, on loopback
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/imppd/imppd"
	"github.com/imppd/imppd/cmd/imppd/internal/config"
	"github.com/imppd/imppd/core"
	"github.com/imppd/imppd/rosters"
	"github.com/imppd/imppd/xmppmap"
	"github.com/imppd/imppd/xmppmap/xeps"
)

func serve(args []string, stderr io.Writer) error {
	f, err := parseFlags("serve", args, true)
	if err != nil {
		return err
	}
	if f.fs.NArg() > 0 {
		return usageError{"serve takes no arguments"}
	}
	cfg, err := loadConfig(f.config)
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	store, err := openDB(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	cert, err := cfg.TLSCertificate(log)
	if err != nil {
		return err
	}
	tlsConf := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: cfg.TLS.TLSMinVersion()}

	engine := core.New(core.Config{
		Store:        store,
		MaxMessage:   cfg.C2S.MaxStanzaSize,
		OfflineQuota: cfg.Limits.OfflineQuota,
	})
	ros := rosters.New(engine, nil)
	srv, err := xmppmap.New(xmppConfig(cfg, tlsConf), engine, ros, store, log)
	if err != nil {
		return err
	}
	srv.Use(xeps.Modules(xeps.Options{
		Version:          imppd.Version,
		Started:          time.Now(),
		Blocklists:       store,
		Archive:          store,
		PEP:              store,
		AccountData:      store,
		ArchiveRetention: time.Duration(cfg.Archive.RetentionDays) * 24 * time.Hour,
		Logger:           log,
		Accounts:         store,
		OpenRegistration: cfg.Registration.Enabled,
		ScramIterations:  cfg.Auth.ScramIterations,
		Disabled:         cfg.XEPs.Disabled,
	})...)
	var addrs []any
	for _, l := range []struct {
		key, addr string
		direct    bool
	}{{"c2s", cfg.C2S.Listen, false}, {"c2s_direct_tls", cfg.C2S.DirectTLSListen, true}} {
		if l.addr == "" {
			continue
		}
		a, err := srv.Listen(l.addr, l.direct)
		if err != nil {
			_ = srv.Shutdown(context.Background())
			return err
		}
		addrs = append(addrs, l.key, a.String())
	}
	if f.pprof != "" {
		if err := servePprof(f.pprof); err != nil {
			return err
		}
		addrs = append(addrs, "pprof", f.pprof)
	}
	log.Info("ready", append([]any{"version", imppd.Version, "domains", cfg.Domains, "database", cfg.Storage.Database}, addrs...)...)

	<-ctx.Done()
	log.Info("shutting down", "online", srv.OnlineCount())
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("shutdown incomplete", "err", err)
	}
	log.Info("stopped")
	return nil
}

func xmppConfig(c *config.Config, tlsConf *tls.Config) xmppmap.Config {
	return xmppmap.Config{
		Domains:               c.Domains,
		TLS:                   tlsConf,
		RequireTLS:            c.C2S.RequireTLS,
		AllowPlain:            c.Auth.AllowPlain,
		ResourceConflict:      c.C2S.ResourceConflict,
		MaxStanzaSize:         c.C2S.MaxStanzaSize,
		MaxPreauthSize:        c.C2S.MaxPreauthSize,
		MaxDepth:              c.C2S.MaxDepth,
		MaxConnections:        c.C2S.MaxConnections,
		MaxConnsPerIP:         c.C2S.MaxConnectionsPerIP,
		HandshakeTimeout:      c.C2S.HandshakeTimeout.Duration,
		IdleTimeout:           c.C2S.IdleTimeout.Duration,
		PingTimeout:           c.C2S.PingTimeout.Duration,
		ResumeTimeout:         c.C2S.ResumeTimeout.Duration,
		SendQueue:             c.C2S.SendQueue,
		ScramIterations:       c.Auth.ScramIterations,
		MaxFailuresPerStream:  c.Auth.MaxFailuresPerStream,
		MaxFailuresPerIP:      c.Auth.MaxFailuresPerIP,
		MaxFailuresPerAccount: c.Auth.MaxFailuresPerAccount,
		FailureWindow:         c.Auth.FailureWindow.Duration,
		TraceAll:              c.Log.TraceStanzas,
		TraceAccounts:         c.Log.TraceAccounts,
		Admins:                c.Admins,
		DisabledXEPs:          c.XEPs.Disabled,
	}
}

// servePprof exposes profiles for benchmarking; only on loopback.
func servePprof(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("-pprof: %w", err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("-pprof: %s is not a loopback address", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("-pprof: %w", err)
	}
	go func() { _ = http.Serve(ln, http.DefaultServeMux) }()
	return nil
}
