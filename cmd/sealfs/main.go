// Command sealfs is the end-to-end encrypted backup filesystem's command
// line: it creates repositories on rclone remotes, manages their key slots,
// stores and restores directory trees, lists snapshots and checks
// repositories. docs/CLI.md documents its commands and exit codes.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/sealfs/sealfs/internal/mountopts"
)

func main() {
	// Before anything secret is read: no core dumps, no tracing.
	if err := noCoreDumps(); err != nil {
		fmt.Fprintf(os.Stderr, "sealfs: %v\n", err)
		os.Exit(exitError)
	}
	args, err := realArgs()
	if err != nil {
		fmt.Fprintf(os.Stderr, "sealfs: %v\n", err)
		os.Exit(exitError)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	root := newRootCmd()
	// Called as mount(8)'s helper (mount.sealfs or mount.fuse.sealfs):
	// translate its arguments into `sealfs mount`.
	if name := filepath.Base(os.Args[0]); name == "mount.sealfs" || name == "mount.fuse.sealfs" {
		p, err := mountopts.Parse(args)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
			os.Exit(exitUsage)
		}
		args = append(append([]string{"mount"}, p.Args...), p.Source, p.Mountpoint)
		if p.Verbose || p.Fake {
			shown, _ := redactArgs(args)
			fmt.Fprintf(os.Stderr, "%s: sealfs %s\n", name, strings.Join(shown, " "))
		}
		if p.Fake {
			os.Exit(exitOK)
		}
	}
	root.SetArgs(args)
	err = root.ExecuteContext(ctx)
	stop()
	if err != nil {
		if errors.Is(err, context.Canceled) {
			err = errors.New("interrupted")
		}
		fmt.Fprintf(os.Stderr, "sealfs: %v\n", err)
		if h := hints[exitCode(err)]; h != "" {
			fmt.Fprintf(os.Stderr, "sealfs: %s\n", h)
		}
	}
	os.Exit(exitCode(err))
}

// hints say what to do next, per exit code.
var hints = map[int]string{
	exitCodeTypo:    "check each group of four digits against what you wrote down; case, spaces and dashes do not matter",
	exitWrongKey:    "this code is valid but belongs to another repository, or its key slot was removed; try another code you have for this one",
	exitRepoExists:  "to use it, run a command that opens it (sealfs snapshots REMOTE); to start afresh, choose another remote path",
	exitIntegrity:   "the storage returned data that fails verification; nothing wrong was read. Run: sealfs check --read-data REMOTE, to list every damaged object",
	exitUnreachable: "the remote could not be reached: check the network, the remote's address, and your rclone config (rclone lsd REMOTE)",
	exitLocked:      "another sealfs is writing to this repository",
	exitWrongPass:   "after 10 wrong passwords in a row the vault destroys the key for good; if unsure, unlock with the recovery code instead (--code-file, without --vault)",
	exitLockedOut:   "the recovery code is now the only way back: unlock with it (--code-file), then enrol a new password with: sealfs key add-vault --vault URL REMOTE",
}
