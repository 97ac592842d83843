package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sealfs/sealfs/internal/daemon"
	"github.com/sealfs/sealfs/internal/humanize"
	"github.com/sealfs/sealfs/internal/progress"
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
			var watch *drainWatch
			stopped, err := daemon.Unmount(mp, timeout, daemonMountpoint, func(st daemon.Status) {
				fmt.Fprintf(cmd.ErrOrStderr(), "unmounting %s: committing and uploading %d queued files (%s)...\n", mp, st.PendingFiles, humanize.Bytes(st.PendingBytes))
				watch = watchDrain(cmd.ErrOrStderr(), g.quiet, mp, st)
			})
			if watch != nil {
				var final *daemon.Status
				if stopped != nil {
					final = stopped.Final
				}
				watch.done(final)
			}
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
		mp, st.PendingFiles, humanize.Bytes(st.PendingBytes), shownName(st.LastError))
	for _, p := range st.QueuedPaths {
		fmt.Fprintf(w, "  queued: %s\n", shownName(p))
	}
	if more := st.PendingFiles - len(st.QueuedPaths); more > 0 && len(st.QueuedPaths) > 0 {
		fmt.Fprintf(w, "  ... and %d more\n", more)
	}
}

func newStatusCmd(g *globals) *cobra.Command {
	var asJSON, watch bool
	var interval time.Duration
	cmd := &cobra.Command{
		Use:   "status MOUNTPOINT",
		Short: "Show a mount's snapshot, upload queue, last error and lease",
		Long: `Show a mount's snapshot, upload queue, what it sent since it started (files,
bytes, upload rate, the queue's ETA), commits and errors, the cache and the lease.
--watch shows it again every --interval until Ctrl-C: the whole status redrawn on
a terminal, one line per interval otherwise (a log, a pipe).`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if interval < 100*time.Millisecond {
				return usageError{fmt.Errorf("--interval %s is too short (100ms at least)", interval)}
			}
			if watch && asJSON {
				return usageError{errors.New("--watch is for people; a program reads status --json as often as it likes")}
			}
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
			if watch {
				return watchStatus(cmd.Context(), cmd.OutOrStdout(), mp, st, interval)
			}
			printStatus(cmd.OutOrStdout(), st)
			return nil
		},
	}
	addJSONFlag(cmd, &asJSON, false)
	cmd.Flags().BoolVar(&watch, "watch", false, "show the status again every --interval until Ctrl-C (a line per interval when stdout is no terminal)")
	cmd.Flags().DurationVar(&interval, "interval", time.Second, "with --watch: how often")
	return cmd
}

// watchStatus shows the status of the mount at mp every interval until
// ctx ends (Ctrl-C) or the mount goes away: redrawn whole on a terminal,
// else as one line each time. first is the status read already.
func watchStatus(ctx context.Context, out io.Writer, mp string, first *daemon.Status, interval time.Duration) error {
	tty := progress.IsTerminal(out)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	st := first
	for {
		if tty {
			fmt.Fprint(out, "\x1b[H\x1b[2J") // home, clear
			printStatus(out, st)
			fmt.Fprintf(out, "\nevery %s; Ctrl-C to stop\n", interval)
		} else {
			fmt.Fprintln(out, statusLine(time.Now(), st))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		next, err := daemon.ReadStatus(mp, daemon.StatusWait)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("%s is no longer a live sealfs mount: %w", mp, err)
		}
		st = next
	}
}

// statusLine is the status on one line, for a log: the time, the queue,
// what was sent, the upload and the last error.
func statusLine(now time.Time, st *daemon.Status) string {
	line := fmt.Sprintf("%s snapshot %d; queued %d files, %s; sent %d files, %s; uploaded %s at %s/s",
		now.UTC().Format(time.RFC3339), st.SnapshotSeq, st.PendingFiles, humanize.Bytes(st.PendingBytes),
		st.SentFiles, humanize.Bytes(st.SentBytes), humanize.Bytes(st.UploadedBytes), humanize.Bytes(uint64(st.UploadRate)))
	if st.QueueETA > 0 {
		line += fmt.Sprintf(", ETA %s", time.Duration(st.QueueETA)*time.Second)
	}
	line += fmt.Sprintf("; %d commits", st.Commits)
	if st.Committing {
		line += " (committing)"
	}
	if st.LastError != "" {
		line += fmt.Sprintf("; last error %s: %s", st.LastErrorTime.UTC().Format(time.RFC3339), shownName(st.LastError))
	}
	return line
}

// printStatus shows a mount's status to a person. Its text comes from
// the mount (any FUSE mount of type fuse.sealfs answers it): shownName
// shows a terminal escape in it, not obeys it.
func printStatus(out io.Writer, st *daemon.Status) {
	fmt.Fprintf(out, "mount:       %s (daemon pid %d)\nremote:      %s\nrepository:  %s\nsnapshot:    %d\n", shownName(st.Mountpoint), st.PID, shownName(st.Remote), shownName(st.Repository), st.SnapshotSeq)
	fmt.Fprintf(out, "queued:      %d files, %s\ncommitting:  %v\n", st.PendingFiles, humanize.Bytes(st.PendingBytes), st.Committing)
	if !st.LastCommit.IsZero() {
		fmt.Fprintf(out, "last commit: %s\n", st.LastCommit.Local().Format(time.DateTime))
	}
	if st.LastError != "" {
		fmt.Fprintf(out, "last error:  %s: %s\n", st.LastErrorTime.Local().Format(time.DateTime), shownName(st.LastError))
	}
	fmt.Fprintf(out, "lease:       %s\n", shownName(st.Lease))
	fmt.Fprintf(out, "sent:        %d files, %s, since the mount (%s uploaded)\n", st.SentFiles, humanize.Bytes(st.SentBytes), humanize.Bytes(st.UploadedBytes))
	eta := ""
	if st.QueueETA > 0 {
		eta = fmt.Sprintf("; the queue in about %s", time.Duration(st.QueueETA)*time.Second)
	}
	fmt.Fprintf(out, "upload:      %s/s over the last 10 s%s\n", humanize.Bytes(uint64(st.UploadRate)), eta)
	fmt.Fprintf(out, "commits:     %d since the mount", st.Commits)
	if len(st.CommitFailures) > 0 {
		var failed []string
		for _, cause := range daemon.FailureCauses {
			if n := st.CommitFailures[cause]; n > 0 {
				failed = append(failed, fmt.Sprintf("%d %s", n, cause))
			}
		}
		fmt.Fprintf(out, "; failed: %s", strings.Join(failed, ", "))
	}
	fmt.Fprintln(out)
	if st.IntegrityErrors > 0 {
		fmt.Fprintf(out, "integrity:   %d objects failed verification (see the log)\n", st.IntegrityErrors)
	}
	if st.Cache.Limit > 0 {
		fmt.Fprintf(out, "cache:       %s of %s; %d chunks read from it, %d fetched\n", humanize.Bytes(uint64(st.Cache.Bytes)), humanize.Bytes(uint64(st.Cache.Limit)), st.Cache.Hits, st.Cache.Misses)
	}
	if st.BwLimit != "" {
		fmt.Fprintf(out, "transfers:   %d\nbwlimit:     %s (now: up %s, down %s)\n", st.Transfers, shownName(st.BwLimit), rateText(st.BwLimitUp), rateText(st.BwLimitDown))
	}
	if f := st.Forget; f != nil {
		fmt.Fprintf(out, "retention:   %s, at most every %s\n", shownName(f.Policy), shownName(f.Interval))
		switch {
		case f.Last.IsZero():
			fmt.Fprintf(out, "forget:      not run yet (after the next commit)\n")
		case f.Error != "":
			fmt.Fprintf(out, "forget:      %s: %s\n", f.Last.Local().Format(time.DateTime), shownName(f.Error))
		default:
			fmt.Fprintf(out, "forget:      %s: forgot %d snapshots (%d since the mount)\n", f.Last.Local().Format(time.DateTime), f.Forgotten, f.Total)
		}
	}
	if st.ConflictCount > 0 {
		fmt.Fprintf(out, "conflicts:   %d path(s) changed here while offline were changed by another writer too; theirs keeps the name:\n", st.ConflictCount)
		for _, c := range st.Conflicts {
			// The names come from the snapshots: a terminal escape
			// in one is shown, not obeyed (shownName).
			ours := "deleted"
			if c.Kept != "" {
				ours = shownName("/" + c.Kept)
			}
			fmt.Fprintf(out, "  %s: %s (ours: %s; snapshot %d)\n", shownName("/"+c.Path), c.Kind, ours, c.Snapshot)
		}
	}
}

// rateText shows a limit in bytes per second; 0 is none.
func rateText(perSecond int64) string {
	if perSecond <= 0 {
		return "unlimited"
	}
	return humanize.Bytes(uint64(perSecond)) + "/s"
}
