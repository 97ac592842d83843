package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/sealfs/sealfs/internal/daemon"
	"github.com/sealfs/sealfs/internal/humanize"
)

func newUmountCmd(g *globals) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "umount MOUNTPOINT",
		Short: "Commit, drain the upload queue and unmount",
		Long: `Ask the daemon serving MOUNTPOINT to commit, upload what is queued and unmount,
and wait until it has released the writer lease and exited. Only a sealfs
mount point is touched, and only the sealfs daemon serving it is signalled.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			mp, err := daemon.CanonicalPath(args[0])
			if err != nil {
				return usageError{fmt.Errorf("mount point %s: %w", args[0], err)}
			}
			m, err := daemon.LookupMount(mp)
			if err != nil {
				return err
			}
			if m == nil {
				return fmt.Errorf("%s is not a mount point; nothing to unmount", args[0])
			}
			if m.FSType != daemon.FSType {
				return fmt.Errorf("%s is a %s mount, not a sealfs one; refusing to touch it", args[0], m.FSType)
			}
			stopped, err := daemon.Unmount(mp, timeout, daemonMountpoint, func(st daemon.Status) {
				fmt.Fprintf(cmd.ErrOrStderr(), "unmounting %s: committing and uploading %d queued files (%s)...\n", mp, st.PendingFiles, humanize.Bytes(st.PendingBytes))
			})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if stopped.Cleaned {
				fmt.Fprintf(out, "cleaned up the dead mount at %s (its daemon was gone; what it had queued goes up at the next mount)\n", mp)
				return nil
			}
			final := stopped.Final
			if final.PendingFiles > 0 || final.QueuedChanges || final.LastError != "" {
				printQueued(out, mp, *final)
				return errStillQueued
			}
			fmt.Fprintf(out, "unmounted %s; everything is committed as snapshot %d\n", mp, final.SnapshotSeq)
			return nil
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Minute, "how long to wait for the daemon to drain and stop")
	return cmd
}

// printQueued says exactly what a stopped daemon left queued locally.
func printQueued(w io.Writer, mp string, st daemon.Status) {
	fmt.Fprintf(w, "unmounted %s; not everything is on the remote yet: %d files (%s) and the changes to names and attributes stay queued locally and go up at the next mount of this cache (last error: %s)\n",
		mp, st.PendingFiles, humanize.Bytes(st.PendingBytes), st.LastError)
	for _, p := range st.QueuedPaths {
		fmt.Fprintf(w, "  queued: %s\n", p)
	}
	if more := st.PendingFiles - len(st.QueuedPaths); more > 0 && len(st.QueuedPaths) > 0 {
		fmt.Fprintf(w, "  ... and %d more\n", more)
	}
}

func newStatusCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status MOUNTPOINT",
		Short: "Show a mount's snapshot, upload queue, last error and lease",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			mp, err := daemon.CanonicalPath(args[0])
			if err != nil {
				return usageError{fmt.Errorf("mount point %s: %w", args[0], err)}
			}
			if m, err := daemon.LookupMount(mp); err != nil {
				return err
			} else if m == nil || m.FSType != daemon.FSType {
				return fmt.Errorf("%s is not a sealfs mount point", args[0])
			}
			st, err := daemon.ReadStatus(mp, daemon.StatusWait)
			if err != nil {
				return fmt.Errorf("%s is not a live sealfs mount: %w", args[0], err)
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), newStatusJSON(st))
			}
			printStatus(cmd.OutOrStdout(), st)
			return nil
		},
	}
	addJSONFlag(cmd, &asJSON, false)
	return cmd
}

// printStatus shows a mount's status to a person.
func printStatus(out io.Writer, st *daemon.Status) {
	fmt.Fprintf(out, "mount:       %s (daemon pid %d)\nremote:      %s\nrepository:  %s\nsnapshot:    %d\n", st.Mountpoint, st.PID, st.Remote, st.Repository, st.SnapshotSeq)
	fmt.Fprintf(out, "queued:      %d files, %s\ncommitting:  %v\n", st.PendingFiles, humanize.Bytes(st.PendingBytes), st.Committing)
	if !st.LastCommit.IsZero() {
		fmt.Fprintf(out, "last commit: %s\n", st.LastCommit.Local().Format(time.DateTime))
	}
	if st.LastError != "" {
		fmt.Fprintf(out, "last error:  %s\n", st.LastError)
	}
	fmt.Fprintf(out, "lease:       %s\n", st.Lease)
	if f := st.Forget; f != nil {
		fmt.Fprintf(out, "retention:   %s, at most every %s\n", f.Policy, f.Interval)
		switch {
		case f.Last.IsZero():
			fmt.Fprintf(out, "forget:      not run yet (after the next commit)\n")
		case f.Error != "":
			fmt.Fprintf(out, "forget:      %s: %s\n", f.Last.Local().Format(time.DateTime), f.Error)
		default:
			fmt.Fprintf(out, "forget:      %s: forgot %d snapshots (%d since the mount)\n", f.Last.Local().Format(time.DateTime), f.Forgotten, f.Total)
		}
	}
	if st.ConflictCount > 0 {
		fmt.Fprintf(out, "conflicts:   %d path(s) changed here while offline were changed by another writer too; theirs keeps the name:\n", st.ConflictCount)
		for _, c := range st.Conflicts {
			ours := "deleted"
			if c.Kept != "" {
				ours = "/" + c.Kept
			}
			fmt.Fprintf(out, "  /%s: %s (ours: %s; snapshot %d)\n", c.Path, c.Kind, ours, c.Snapshot)
		}
	}
}
