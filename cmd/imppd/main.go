// Command imppd is an XMPP server built on an RFC 2778 presence and
// instant messaging engine.
//
//	imppd [serve] [-config FILE] [-pprof ADDR]
//	imppd user add|passwd|del|list [-config FILE] [JID]
//	imppd check [-config FILE]
//	imppd version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/imppd/imppd"
	"github.com/imppd/imppd/cmd/imppd/internal/config"
	"github.com/imppd/imppd/db"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

const usage = `usage:
  imppd [serve] [-config FILE] [-pprof ADDR]   run the server
  imppd user add|passwd|del|list [-config FILE] [JID]
                                               manage accounts (add and passwd read the
                                               password from the terminal, or one line of stdin)
  imppd check [-config FILE]                   validate configuration, certificate and database
  imppd version                                print the version
`

// run dispatches a command line; it returns the process exit status.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = serve(args, stderr)
	case "user":
		err = user(args, stdin, stdout, stderr)
	case "check":
		err = check(args, stdout)
	case "version":
		fmt.Fprintln(stdout, "imppd", imppd.Version)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprint(stderr, usage)
		return 2
	}
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "imppd %s: %v\n%s", cmd, err, usage)
		return 2
	default:
		fmt.Fprintf(stderr, "imppd %s: %v\n", cmd, err)
		return 1
	}
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// flags parses the flags every command takes.
type flags struct {
	fs     *flag.FlagSet
	config string
	pprof  string
}

func parseFlags(name string, args []string, withPprof bool) (*flags, error) {
	f := &flags{fs: flag.NewFlagSet(name, flag.ContinueOnError)}
	f.fs.SetOutput(io.Discard)
	f.fs.StringVar(&f.config, "config", "", "configuration file (default ./config.toml, else the built-in default)")
	if withPprof {
		f.fs.StringVar(&f.pprof, "pprof", "", "serve net/http/pprof on this loopback address (for profiling)")
	}
	// Flags may come before or after the positional arguments.
	var rest []string
	for {
		if err := f.fs.Parse(args); err != nil {
			return nil, usageError{err.Error()}
		}
		if f.fs.NArg() == 0 {
			break
		}
		rest = append(rest, f.fs.Arg(0))
		args = f.fs.Args()[1:]
	}
	f.fs = flag.NewFlagSet(name, flag.ContinueOnError)
	_ = f.fs.Parse(rest)
	return f, nil
}

// loadConfig reads -config, or ./config.toml, or the embedded default
// (whose relative paths then resolve against the working directory).
func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		if _, err := os.Stat("config.toml"); err == nil {
			path = "config.toml"
		}
	}
	if path != "" {
		return config.Load(path)
	}
	c := config.Default()
	wd, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	c.Resolve(wd)
	return c, c.Validate()
}

func openDB(ctx context.Context, c *config.Config) (*db.DB, error) {
	if err := os.MkdirAll(filepath.Dir(c.Storage.Database), 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	return db.Open(ctx, c.Storage.Database, db.Options{Synchronous: c.Storage.Synchronous})
}

func newLogger(c *config.Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.Log.SlogLevel()}
	if c.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
