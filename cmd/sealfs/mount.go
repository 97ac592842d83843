package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/sealfs/sealfs/internal/daemon"
	"github.com/sealfs/sealfs/internal/fusefs"
	"github.com/sealfs/sealfs/internal/sdnotify"
	"github.com/sealfs/sealfs/remote"
	"github.com/sealfs/sealfs/remote/mirror"
	"github.com/sealfs/sealfs/remote/rcloneremote"
	"github.com/sealfs/sealfs/repo"
	"github.com/sealfs/sealfs/repo/format"
)

type mountFlags struct {
	foreground   bool
	readOnly     bool
	breakLease   bool
	allowOther   bool
	commitDelay  time.Duration
	drainTimeout time.Duration
	sync         string
	logFile      string
	logFormat    string
	cacheSize    int64
	leaseTTL     time.Duration
	readyFD      int // internal: the background child reports readiness here
	codeFD       int // internal: the background child reads the code here
}

func newMountCmd(g *globals) *cobra.Command {
	var mf mountFlags
	cmd := &cobra.Command{
		Use:   "mount [flags] REMOTE MOUNTPOINT",
		Short: "Mount the repository as a folder; writes are encrypted and uploaded",
		Long: `Mount the repository's newest snapshot read-write at MOUNTPOINT. Programs write
there as into any folder; sealfs chunks and encrypts what they write, queues it
in the cache directory, and commits a new snapshot after a quiet period
(--commit-delay), on fsync with --sync=remote, and on unmount.

The command returns once the mount is ready and the daemon runs in the
background (logging to --log-file); --foreground keeps it attached (systemd).
Stop it with: sealfs umount MOUNTPOINT (or SIGTERM), which drains the queue.`,
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if mf.sync != "local" && mf.sync != "remote" {
				return usageError{fmt.Errorf("--sync must be local or remote, not %q", mf.sync)}
			}
			if fi, err := os.Stat(args[1]); err != nil && !errors.Is(err, syscall.ENOTCONN) {
				return usageError{fmt.Errorf("mount point %s: %w", args[1], err)}
			} else if err == nil && !fi.IsDir() {
				return usageError{fmt.Errorf("mount point %s is not a directory", args[1])}
			}
			if mf.foreground {
				return runForeground(cmd, g, &mf, args[0], args[1])
			}
			return runBackground(cmd, g, &mf, args)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&mf.foreground, "foreground", false, "stay attached (for systemd); log to stderr")
	f.BoolVar(&mf.readOnly, "read-only", false, "mount read-only, without taking the writer lease")
	f.BoolVar(&mf.breakLease, "break-lease", false, "take the writer lease even if another writer holds it (only if it is gone)")
	f.BoolVar(&mf.allowOther, "allow-other", false, "let other users see the mount (the kernel still checks file modes)")
	f.DurationVar(&mf.commitDelay, "commit-delay", 5*time.Second, "quiet period after the last change before a commit")
	f.DurationVar(&mf.drainTimeout, "drain-timeout", 5*time.Minute, "how long unmounting may spend uploading what is queued")
	f.StringVar(&mf.sync, "sync", "local", "what fsync waits for: local (the local queue) or remote (a commit)")
	f.StringVar(&mf.logFile, "log-file", "", "daemon log in the background (default: in the cache directory)")
	f.StringVar(&mf.logFormat, "log-format", "text", "log format: text (journald reads it well) or json")
	f.Int64Var(&mf.cacheSize, "cache-size", 1<<30, "bytes of encrypted chunks kept on local disk for rereads (0: none)")
	f.DurationVar(&mf.leaseTTL, "lease-ttl", repo.LeaseTTL, "lifetime of the writer lease, renewed every third of it (for tests)")
	f.MarkHidden("lease-ttl")
	f.IntVar(&mf.readyFD, "ready-fd", 0, "")
	f.IntVar(&mf.codeFD, "code-fd", 0, "")
	f.MarkHidden("ready-fd")
	f.MarkHidden("code-fd")
	return cmd
}

// runBackground reads the code, starts the daemon as a child process and
// waits until it reports that the mount is ready (or why it failed).
func runBackground(cmd *cobra.Command, g *globals, mf *mountFlags, args []string) error {
	ctx := cmd.Context()
	rem, err := g.openMirrored(ctx, args[0], nil)
	if err != nil {
		return err
	}
	if _, err := repo.ReadConfig(ctx, rem); err != nil {
		return err
	}
	secret, err := g.readUnlockSecret()
	if err != nil {
		return err
	}
	logFile := mf.logFile
	if logFile == "" {
		base := g.cacheDir
		if base == "" {
			if base, err = repo.DefaultCacheDir(); err != nil {
				return err
			}
		}
		abs, _ := filepath.Abs(args[1])
		logFile = filepath.Join(base, "mount"+strings.ReplaceAll(abs, "/", "-")+".log")
	}
	if err := os.MkdirAll(filepath.Dir(logFile), 0o700); err != nil {
		return err
	}
	logf, err := os.OpenFile(logFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("failed to open the log file: %w", err)
	}
	defer logf.Close()
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return err
	}
	codeR, codeW, err := os.Pipe()
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	mp, err := canonicalPath(args[1])
	if err != nil {
		return usageError{fmt.Errorf("mount point %s: %w", args[1], err)}
	}
	// The daemon shows redacted arguments (its mount point absolute, for
	// umount to recognise it); the real ones go through a memory file.
	childArgs := daemonArgs(cmd, args[0], mp)
	shownArgs, _ := redactArgs(childArgs)
	argsF, err := argsFile(childArgs, false)
	if err != nil {
		return err
	}
	defer argsF.Close()
	child := exec.Command(self, shownArgs...)
	child.Stdin, child.Stdout, child.Stderr = nil, logf, logf
	child.ExtraFiles = []*os.File{readyW, codeR, argsF}
	child.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	child.Env = append(withoutEnv(os.Environ(), codeEnv), argsFDEnv+"=5")
	if err := child.Start(); err != nil {
		return fmt.Errorf("failed to start the mount daemon: %w", err)
	}
	readyW.Close()
	codeR.Close()
	// The code or password goes through a pipe: never an argument or the
	// environment.
	codeW.Write(secret.text())
	codeW.Close()
	// The daemon may send notes (what it waits for) before its verdict.
	var line string
	br := bufio.NewReader(readyR)
	for {
		line, _ = br.ReadString('\n')
		line = strings.TrimSpace(line)
		note, isNote := strings.CutPrefix(line, "note ")
		if !isNote {
			break
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "sealfs: %s\n", note)
	}
	readyR.Close()
	switch {
	case line == "ready":
		fmt.Fprintf(cmd.OutOrStdout(), "mounted %s at %s (daemon pid %d, log %s)\nstop it with: sealfs umount %s\n", rcloneremote.Redact(args[0]), args[1], child.Process.Pid, logFile, args[1])
		child.Process.Release()
		return nil
	case strings.HasPrefix(line, "error "):
		child.Wait()
		parts := strings.SplitN(line, " ", 3)
		n, _ := strconv.Atoi(parts[1])
		msg := ""
		if len(parts) > 2 {
			msg = parts[2]
		}
		return daemonExit{code: n, msg: msg}
	}
	child.Wait()
	return fmt.Errorf("the mount daemon stopped before the mount was ready; see %s", logFile)
}

// daemonArgs are the arguments of the background daemon of a mount: the
// flags given to this one, then the remote and the (canonical) mount point.
func daemonArgs(cmd *cobra.Command, source, mountpoint string) []string {
	args := []string{"mount"}
	cmd.Flags().Visit(func(f *pflag.Flag) {
		args = append(args, "--"+f.Name+"="+f.Value.String())
	})
	return append(args, "--foreground", "--ready-fd=3", "--code-fd=4", "--", source, mountpoint)
}

// daemonExit carries an exit code reported by the background daemon.
type daemonExit struct {
	code int
	msg  string
}

func (e daemonExit) Error() string { return e.msg }

func withoutEnv(env []string, name string) []string {
	out := env[:0:0]
	for _, e := range env {
		if !strings.HasPrefix(e, name+"=") {
			out = append(out, e)
		}
	}
	return out
}

// runForeground mounts and serves until unmounted or signalled.
func runForeground(cmd *cobra.Command, g *globals, mf *mountFlags, source, mountpoint string) (err error) {
	var ready *os.File
	if mf.readyFD > 0 {
		ready = os.NewFile(uintptr(mf.readyFD), "ready")
		defer func() {
			if err != nil {
				fmt.Fprintf(ready, "error %d %s\n", exitCode(err), strings.ReplaceAll(err.Error(), "\n", " "))
			}
			ready.Close()
		}()
	}
	var log *slog.Logger
	switch mf.logFormat {
	case "text":
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	case "json":
		log = slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	default:
		return usageError{fmt.Errorf("--log-format must be text or json, not %q", mf.logFormat)}
	}
	// Listen for SIGTERM before anything else: a umount that follows
	// readiness at once must not find the signal unheard (main's own
	// handler would swallow it, and the daemon would never stop).
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sig)
	ctx := context.Background()
	rem, err := g.openMirrored(ctx, source, log)
	if err != nil {
		return err
	}
	if _, err := repo.ReadConfig(ctx, rem); err != nil {
		return err
	}
	var secret unlockSecret
	if mf.codeFD > 0 {
		b, _ := io.ReadAll(io.LimitReader(os.NewFile(uintptr(mf.codeFD), "code"), 4096))
		secret, err = g.unlockSecretFromText(b)
	} else {
		secret, err = g.readUnlockSecret()
	}
	if err != nil {
		return err
	}
	opts := g.options()
	opts.CacheSize = mf.cacheSize
	opts.LeaseTTL = mf.leaseTTL
	r, err := repo.Open(ctx, rem, g.unlocker(secret), opts)
	if err != nil {
		return err
	}
	unleased := false
	if !mf.readOnly {
		err := r.Lock(ctx, mf.breakLease)
		if errors.Is(err, repo.ErrLocked) && !mf.breakLease && waitForDeparting(ctx, r, log, ready) {
			err = r.Lock(ctx, false)
		}
		if err != nil {
			switch {
			case errors.Is(err, repo.ErrLocked):
				return fmt.Errorf("%w (mount with --read-only to look without writing)", err)
			case remote.IsTransient(err) || remote.IsUnreachable(err):
				unleased = true
				log.Warn("the remote cannot be reached: mounting read-write from the local state; changes queue locally and go up once it answers", "err", err)
			default:
				return err
			}
		}
	}
	abs, err := canonicalPath(mountpoint)
	if err != nil {
		return usageError{fmt.Errorf("mount point %s: %w", mountpoint, err)}
	}
	d, err := daemon.Start(ctx, daemon.Config{
		Repo: r, Source: rcloneremote.Redact(source), Mountpoint: abs, ReadOnly: mf.readOnly, CommitDelay: mf.commitDelay,
		SyncRemote: mf.sync == "remote", AllowOther: mf.allowOther, DrainTimeout: mf.drainTimeout, Log: log,
		Unleased: unleased, BreakLease: mf.breakLease,
	})
	if err != nil {
		if !mf.readOnly && !unleased {
			r.Unlock(ctx)
		}
		return err
	}
	log.Info("mounted", "remote", rcloneremote.Redact(source), "mountpoint", abs, "repository", r.ID().String(), "read_only", mf.readOnly)
	if ready != nil {
		fmt.Fprintln(ready, "ready")
		ready.Close()
		ready = nil
	}
	// systemd (Type=notify): ready now that the mount answers; then the
	// queue as STATUS, and the watchdog if one is set.
	if _, err := sdnotify.Send("READY=1\nSTATUS=" + statusLine(d.Status())); err != nil {
		log.Warn("failed to notify systemd", "err", err)
	}
	unmounted := make(chan struct{})
	go func() { d.Wait(); close(unmounted) }()
	stopNotify := make(chan struct{})
	go notifyLoop(d, stopNotify)
	select {
	case s := <-sig:
		log.Info("stopping: committing and draining the queue", "signal", s.String(), "drain_timeout", mf.drainTimeout.String())
	case <-unmounted:
		log.Info("unmounted from outside: committing and draining the queue")
	}
	close(stopNotify)
	st := d.Status()
	sdnotify.Send(fmt.Sprintf("STOPPING=1\nSTATUS=stopping: uploading %d queued files (%s)", st.PendingFiles, humanBytes(st.PendingBytes)))
	err = d.Stop()
	log.Info("stopped")
	return err
}

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
			mp, err := canonicalPath(args[0])
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
			st, err := readStatus(mp, min(timeout, statusWait))
			if errors.Is(err, errNoAnswer) {
				return fmt.Errorf("%w; to detach the mount anyway: umount -l %s (what it queued goes up at the next mount)", err, mp)
			}
			if err != nil {
				if daemon.CleanStaleMount(mp, nil) {
					fmt.Fprintf(cmd.OutOrStdout(), "cleaned up the dead mount at %s (its daemon was gone; what it had queued goes up at the next mount)\n", mp)
					return nil
				}
				return fmt.Errorf("cannot read the status of the sealfs mount at %s: %w", mp, err)
			}
			// The status names a pid: hold it with a pidfd (so that the
			// pid cannot be reused under us), check that it is the daemon
			// serving this mount, and only then signal it.
			pidfd, err := unix.PidfdOpen(st.PID, 0)
			if err != nil {
				return fmt.Errorf("the daemon of %s (pid %d) is not running: %w; detach the mount with: umount -l %s", mp, st.PID, err, mp)
			}
			defer unix.Close(pidfd)
			if err := verifyDaemon(st.PID, mp); err != nil {
				return fmt.Errorf("refusing to signal pid %d named by the status of %s: %w. To unmount anyway, run: umount %s (a sealfs daemon then uploads what is queued and exits by itself)", st.PID, mp, err, mp)
			}
			if err := unix.PidfdSendSignal(pidfd, unix.SIGTERM, nil, 0); err != nil {
				return fmt.Errorf("failed to signal the daemon (pid %d): %w", st.PID, err)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "unmounting %s: committing and uploading %d queued files (%s)...\n", mp, st.PendingFiles, humanBytes(st.PendingBytes))
			exited, err := waitPidfd(pidfd, timeout)
			if err != nil {
				return fmt.Errorf("failed to wait for the daemon (pid %d): %w", st.PID, err)
			}
			if !exited {
				return fmt.Errorf("the daemon (pid %d) is still draining after %v; it keeps going in the background", st.PID, timeout)
			}
			var final daemon.Status
			if b, err := os.ReadFile(filepath.Join(st.StateDir, daemon.ExitStatusFile)); err == nil && json.Unmarshal(b, &final) == nil && final.PID == st.PID {
				if final.PendingFiles > 0 || final.QueuedChanges || final.LastError != "" {
					printQueued(cmd.OutOrStdout(), mp, final)
					return errStillQueued
				}
				fmt.Fprintf(cmd.OutOrStdout(), "unmounted %s; everything is committed as snapshot %d\n", mp, final.SnapshotSeq)
				return nil
			}
			// Every daemon that stops writes its exit status: without
			// one, it died on the way (killed, out of memory) and may
			// have left its queue undrained and its mount point dead.
			left := "its mount point is gone"
			if daemon.CleanStaleMount(mp, nil) {
				left = "the dead mount it left is cleaned up"
			}
			return fmt.Errorf("the daemon of %s (pid %d) exited without reporting how it ended: it was killed or crashed (see its log); %s. What it had queued stays in the cache and goes up at the next mount", mp, st.PID, left)
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Minute, "how long to wait for the daemon to drain and stop")
	return cmd
}

// waitPidfd waits until the process of pidfd has exited (true) or timeout
// has passed (false).
func waitPidfd(pidfd int, timeout time.Duration) (bool, error) {
	deadline := time.Now().Add(timeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return false, nil
		}
		fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, int(min(left, time.Minute).Milliseconds())+1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return false, err
		}
		if n > 0 {
			return true, nil
		}
	}
}

func newStatusCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status MOUNTPOINT",
		Short: "Show a mount's snapshot, upload queue, last error and lease",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			mp, err := canonicalPath(args[0])
			if err != nil {
				return usageError{fmt.Errorf("mount point %s: %w", args[0], err)}
			}
			if m, err := daemon.LookupMount(mp); err != nil {
				return err
			} else if m == nil || m.FSType != daemon.FSType {
				return fmt.Errorf("%s is not a sealfs mount point", args[0])
			}
			st, err := readStatus(mp, statusWait)
			if err != nil {
				return fmt.Errorf("%s is not a live sealfs mount: %w", args[0], err)
			}
			out := cmd.OutOrStdout()
			if asJSON {
				b, _ := json.MarshalIndent(st, "", "  ")
				fmt.Fprintln(out, string(b))
				return nil
			}
			fmt.Fprintf(out, "mount:       %s (daemon pid %d)\nremote:      %s\nrepository:  %s\nsnapshot:    %d\n", st.Mountpoint, st.PID, st.Remote, st.Repository, st.SnapshotSeq)
			fmt.Fprintf(out, "queued:      %d files, %s\ncommitting:  %v\n", st.PendingFiles, humanBytes(st.PendingBytes), st.Committing)
			if !st.LastCommit.IsZero() {
				fmt.Fprintf(out, "last commit: %s\n", st.LastCommit.Local().Format(time.DateTime))
			}
			if st.LastError != "" {
				fmt.Fprintf(out, "last error:  %s\n", st.LastError)
			}
			fmt.Fprintf(out, "lease:       %s\n", st.Lease)
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
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the status as JSON")
	return cmd
}

// statusWait is how long a daemon may take to answer for its status.
const statusWait = 30 * time.Second

// errNoAnswer: the daemon of a mount did not answer for its status.
var errNoAnswer = errors.New("its daemon does not answer (hung or stopped)")

// readStatus reads the status of the mount at mountpoint, waiting at most
// within for its daemon to answer: a hung daemon hangs every access to its
// mount, and the read that waits for it is left behind.
func readStatus(mountpoint string, within time.Duration) (*daemon.Status, error) {
	type answer struct {
		b   []byte
		err error
	}
	got := make(chan answer, 1)
	go func() {
		buf := make([]byte, 64<<10)
		n, err := unix.Getxattr(mountpoint, fusefs.StatusXattr, buf)
		if err != nil {
			n = 0
		}
		got <- answer{buf[:n], err}
	}()
	var a answer
	select {
	case a = <-got:
	case <-time.After(within):
		return nil, fmt.Errorf("the sealfs mount at %s gave no status within %v: %w", mountpoint, within, errNoAnswer)
	}
	if a.err != nil {
		return nil, a.err
	}
	var st daemon.Status
	if err := json.Unmarshal(a.b, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

func statusLine(st daemon.Status) string {
	line := fmt.Sprintf("snapshot %d, %d files queued (%s)", st.SnapshotSeq, st.PendingFiles, humanBytes(st.PendingBytes))
	if st.LastError != "" {
		line += "; remote failing: " + st.LastError
	}
	if st.ConflictCount > 0 {
		line += fmt.Sprintf("; %d conflicts with another writer's changes (sealfs status)", st.ConflictCount)
	}
	return line
}

// notifyLoop sends the queue to systemd as STATUS every few seconds, and
// WATCHDOG=1 when systemd asks for it.
func notifyLoop(d *daemon.Daemon, stop chan struct{}) {
	interval := 5 * time.Second
	if w := sdnotify.WatchdogInterval(); w > 0 && w < interval {
		interval = w
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			msg := "STATUS=" + statusLine(d.Status())
			if sdnotify.WatchdogInterval() > 0 {
				msg += "\nWATCHDOG=1"
			}
			sdnotify.Send(msg)
		}
	}
}

// openMirrored opens the remote for a mount, keeping local copies of what
// the repository is opened from, so that a mount comes up from local state
// when the remote is down at boot. log, if set, hears of the first fallback.
func (g *globals) openMirrored(ctx context.Context, source string, log *slog.Logger) (remote.Remote, error) {
	inner, err := g.openRemote(ctx, source)
	if err != nil {
		return nil, err
	}
	base := g.cacheDir
	if base == "" {
		if base, err = repo.DefaultCacheDir(); err != nil {
			return nil, err
		}
	}
	sum := sha256.Sum256([]byte(source))
	m := mirror.New(inner, filepath.Join(base, "remotes", hex.EncodeToString(sum[:8])),
		mirror.Names{Object: format.MetadataName, Folder: format.MetadataFolder})
	if log != nil {
		var once sync.Once
		m.OnFallback = func(name string, err error) {
			once.Do(func() {
				log.Warn("the remote cannot be reached: using the local copy of the repository's metadata", "err", err)
			})
		}
	}
	return m, nil
}

// printQueued says exactly what a stopped daemon left queued locally.
func printQueued(w io.Writer, mp string, st daemon.Status) {
	fmt.Fprintf(w, "unmounted %s; not everything is on the remote yet: %d files (%s) and the changes to names and attributes stay queued locally and go up at the next mount of this cache (last error: %s)\n",
		mp, st.PendingFiles, humanBytes(st.PendingBytes), st.LastError)
	for _, p := range st.QueuedPaths {
		fmt.Fprintf(w, "  queued: %s\n", p)
	}
	if more := st.PendingFiles - len(st.QueuedPaths); more > 0 && len(st.QueuedPaths) > 0 {
		fmt.Fprintf(w, "  ... and %d more\n", more)
	}
}
