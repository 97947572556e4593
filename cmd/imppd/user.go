package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"mellium.im/xmpp/jid"

	"github.com/imppd/imppd/cmd/imppd/internal/config"
	"github.com/imppd/imppd/core"
	"github.com/imppd/imppd/xmppmap/scram"
)

func user(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{"user needs add, passwd, del or list"}
	}
	sub := args[0]
	f, err := parseFlags("user "+sub, args[1:], false)
	if err != nil {
		return err
	}
	switch {
	case sub != "add" && sub != "passwd" && sub != "del" && sub != "list":
		return usageError{"unknown user command " + sub}
	case sub == "list" && f.fs.NArg() != 0:
		return usageError{"user list takes no JID"}
	case sub != "list" && f.fs.NArg() != 1:
		return usageError{"user " + sub + " needs one JID"}
	}
	cfg, err := loadConfig(f.config)
	if err != nil {
		return err
	}
	ctx := context.Background()
	if sub == "list" {
		store, err := openDB(ctx, cfg)
		if err != nil {
			return err
		}
		defer store.Close()
		ids, err := store.ListAccounts(ctx)
		if err != nil {
			return err
		}
		for _, id := range ids {
			fmt.Fprintln(stdout, id)
		}
		return nil
	}
	id, err := accountJID(cfg, f.fs.Arg(0))
	if err != nil {
		return err
	}
	store, err := openDB(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	switch sub {
	case "add", "passwd":
		pass, err := readPassword(stdin, stderr, "Password for "+string(id)+": ")
		if err != nil {
			return err
		}
		creds, err := scram.NewCredentials(pass, cfg.Auth.ScramIterations)
		if err != nil {
			return err
		}
		if sub == "add" {
			err = store.CreateAccount(ctx, core.Account{ID: id, Credentials: creds})
			if errors.Is(err, core.ErrPrincipalExists) {
				return fmt.Errorf("%s already exists", id)
			}
		} else {
			err = store.SetCredentials(ctx, id, creds)
		}
		if errors.Is(err, core.ErrNoSuchPrincipal) {
			return fmt.Errorf("%s does not exist", id)
		}
		if err != nil {
			return err
		}
		if sub == "add" {
			fmt.Fprintln(stdout, "created", id)
		} else {
			fmt.Fprintln(stdout, "password changed for", id)
		}
	case "del":
		if err := store.DeleteAccount(ctx, id); errors.Is(err, core.ErrNoSuchPrincipal) {
			return fmt.Errorf("%s does not exist", id)
		} else if err != nil {
			return err
		}
		fmt.Fprintln(stdout, "deleted", id)
	}
	return nil
}

// accountJID checks that s is a bare JID on a served domain and returns
// it in canonical (PRECIS) form.
func accountJID(cfg *config.Config, s string) (core.PrincipalID, error) {
	j, err := jid.Parse(s)
	if err != nil {
		return "", fmt.Errorf("%q is not a valid JID: %w", s, err)
	}
	if j.Localpart() == "" || j.Resourcepart() != "" {
		return "", fmt.Errorf("%q must be a bare JID user@domain", s)
	}
	for _, d := range cfg.Domains {
		if d == j.Domainpart() {
			return core.PrincipalID(j.String()), nil
		}
	}
	return "", fmt.Errorf("%s is not a served domain (domains = %v)", j.Domainpart(), cfg.Domains)
}

// readPassword prompts without echo on a terminal, or reads one line.
func readPassword(stdin io.Reader, stderr io.Writer, prompt string) (string, error) {
	if f, ok := stdin.(*os.File); ok && isTerminal(f) {
		fmt.Fprint(stderr, prompt)
		p1, err := readNoEcho(f)
		fmt.Fprintln(stderr)
		if err != nil {
			return "", err
		}
		fmt.Fprint(stderr, "Again: ")
		p2, err := readNoEcho(f)
		fmt.Fprintln(stderr)
		if err != nil {
			return "", err
		}
		if p1 != p2 {
			return "", errors.New("the passwords differ")
		}
		return checkPassword(p1)
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return "", fmt.Errorf("reading the password from stdin: %w", err)
	}
	return checkPassword(strings.TrimRight(line, "\r\n"))
}

func checkPassword(p string) (string, error) {
	if p == "" {
		return "", errors.New("empty password")
	}
	return p, nil
}
