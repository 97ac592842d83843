// Command sealfs-vault runs the Backup Key Vault (docs/VAULT.md): the
// server that lets a person recover a repository with a password, through
// an HSM that never sees it. It is a command of its own because the server
// needs cgo (PKCS#11) and the sealfs command is one static binary without
// it; `sealfs vault serve` hands over to it. docs/CLI.md documents it.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/sealfs/sealfs/internal/nodump"
)

// Exit codes (docs/CLI.md): 0 success, 1 any other failure, 2 usage.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// usageError marks errors in how the command was called.
type usageError struct{ error }

// Unwrap returns the error in how the command was called.
func (u usageError) Unwrap() error { return u.error }

func main() {
	// Before the HSM's PIN is read: no core dumps, no tracing.
	if err := nodump.Enable(); err != nil {
		fmt.Fprintf(os.Stderr, "sealfs-vault: %v\n", err)
		os.Exit(exitError)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCmd().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "sealfs-vault: %v\n", err)
	}
	os.Exit(exitCode(err))
}

func exitCode(err error) int {
	var ue usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		return exitUsage
	}
	return exitError
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "sealfs-vault",
		Short: "The Backup Key Vault of sealfs: password recovery through an HSM",
		Long: `sealfs-vault serves the Backup Key Vault: with it, a sealfs repository can be
unlocked with a password on a new machine, while the vault never sees the
password, counts every guess in its HSM and destroys the key after 10 wrong
ones in a row. See docs/VAULT.md.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(newServeCmd())
	return root
}
