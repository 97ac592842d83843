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
	"github.com/sealfs/sealfs/internal/nodump"
)

func main() {
	// Before anything secret is read: no core dumps, no tracing.
	if err := nodump.Enable(); err != nil {
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
	}
	code, hint := outcome(err)
	if hint != "" {
		fmt.Fprintf(os.Stderr, "sealfs: %s\n", hint)
	}
	os.Exit(code)
}
