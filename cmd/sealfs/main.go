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

	"github.com/spf13/cobra"

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
	// Called as mount(8)'s helper (mount.sealfs or mount.fuse.sealfs), or
	// as the program mount.fuse3 runs for a fuse.sealfs mount without
	// one: translate its arguments into `sealfs mount`.
	if name := filepath.Base(os.Args[0]); name == "mount.sealfs" || name == "mount.fuse.sealfs" {
		args = helperArgs(name, args, mountopts.Parse)
	} else if genericHelperForm(root, args) {
		args = helperArgs("sealfs", args, mountopts.ParseGeneric)
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

// helperArgs turns a mount helper's arguments into those of `sealfs
// mount`, by parse; it exits on a usage error, and after printing them
// for -f (and -v).
func helperArgs(name string, args []string, parse func([]string) (*mountopts.Parsed, error)) []string {
	p, err := parse(args)
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
	return args
}

// genericHelperForm reports whether args are those mount.fuse3 gives the
// program of a fuse.sealfs mount when there is no mount.fuse.sealfs
// (`sealfs REMOTE MOUNTPOINT -o OPTIONS`, docs/SYSTEMD.md): no subcommand,
// the first argument not a flag, the second an existing folder, and no
// third operand: a mistyped command (`sealfs restor REMOTE DIR`) is told
// it is unknown, not taken for a mount.
func genericHelperForm(root *cobra.Command, args []string) bool {
	if len(args) < 2 || strings.HasPrefix(args[0], "-") {
		return false
	}
	operands := 0
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "-o":
			i++
		case strings.HasPrefix(a, "-") && a != "-":
		default:
			operands++
		}
	}
	if operands != 2 {
		return false
	}
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	if c, _, err := root.Find(args); err == nil && c != root {
		return false
	}
	fi, err := os.Stat(args[1])
	return err == nil && fi.IsDir()
}
