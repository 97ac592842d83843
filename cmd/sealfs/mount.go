package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sealfs/sealfs/internal/daemon"
	"github.com/sealfs/sealfs/internal/fusefs"
	"github.com/sealfs/sealfs/internal/mountopts"
	"github.com/sealfs/sealfs/internal/sdnotify"
	"github.com/sealfs/sealfs/internal/unlock"
	"github.com/sealfs/sealfs/remote"
	"github.com/sealfs/sealfs/remote/counted"
	"github.com/sealfs/sealfs/remote/mirror"
	"github.com/sealfs/sealfs/remote/rcloneremote"
	"github.com/sealfs/sealfs/remote/shaped"
	"github.com/sealfs/sealfs/repo"
	"github.com/sealfs/sealfs/repo/format"
)

type mountFlags struct {
	foreground   bool
	readOnly     bool
	breakLease   bool
	allowOther   bool
	options      optionList // the kernel's VFS options (mountopts.KernelOptions)
	kernel       mountopts.Kernel
	commitDelay  time.Duration
	drainTimeout time.Duration
	sync         string
	logFile      string
	logFormat    string
	cacheSize    int64
	remoteShape  shaped.Shape // a slow link put in front of the remote (benchmarks, trials)
	leaseTTL     time.Duration
	snapshotsDir string
	// metricsListen: the Prometheus endpoint's address (empty: none);
	// metricsRemote allows one that is not a loopback address.
	metricsListen string
	metricsRemote bool
	retention     policyFlags   // the mount thins its own snapshots by this policy
	forgetEvery   time.Duration // at most this often
	readyFD       int           // internal: the background child reports readiness here
	codeFD        int           // internal: the background child reads the code here
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
			if d := mf.snapshotsDir; d == "." || d == ".." || strings.ContainsAny(d, "/\x00") || len(d) > 255 {
				return usageError{fmt.Errorf("--snapshots-dir must be a name for a folder at the root (or empty for none), not %q", d)}
			}
			if err := mf.checkMetrics(); err != nil {
				return err
			}
			var err error
			if mf.kernel, err = mountopts.ParseKernel(mf.options); err != nil {
				return usageError{err}
			}
			if err := mf.checkRetention(); err != nil {
				return err
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
	f.Var(&mf.options, "options", "mount(8) options for the kernel, comma-separated: nosuid,nodev (the default) or suid,dev; noexec; sync; relatime (the default), strictatime or noatime; nodiratime ...")
	f.DurationVar(&mf.commitDelay, "commit-delay", 5*time.Second, "quiet period after the last change before a commit")
	f.DurationVar(&mf.drainTimeout, "drain-timeout", 5*time.Minute, "how long unmounting may spend uploading what is queued")
	f.StringVar(&mf.sync, "sync", "local", "what fsync waits for: local (the local queue) or remote (a commit)")
	f.StringVar(&mf.logFile, "log-file", "", "daemon log in the background (default: in the cache directory)")
	f.StringVar(&mf.logFormat, "log-format", "text", "log format: text (journald reads it well) or json")
	f.StringVar(&mf.snapshotsDir, "snapshots-dir", fusefs.DefaultSnapshotsDir, "name of the read-only folder at the root that shows every snapshot (empty: none)")
	f.StringVar(&mf.metricsListen, "metrics-listen", "", "serve Prometheus metrics at http://ADDRESS/metrics, e.g. 127.0.0.1:9570 (a loopback address unless --metrics-allow-remote)")
	f.BoolVar(&mf.metricsRemote, "metrics-allow-remote", false, "let --metrics-listen take an address other machines reach (the metrics have no authentication)")
	g.addTransfersFlag(cmd)
	g.addBwlimitFlag(cmd)
	f.Int64Var(&mf.cacheSize, "cache-size", 1<<30, "bytes of encrypted chunks kept on local disk for rereads (0: none)")
	f.Var(&mf.remoteShape, "remote-shape", "make the remote look like one across a slow link, e.g. latency=40ms,up=100Mbit,down=100Mbit (for benchmarks and trials)")
	addPolicyFlags(f, &mf.retention)
	f.DurationVar(&mf.forgetEvery, "forget-interval", daemon.DefaultForgetInterval, "with a --keep-* policy: apply it after a commit at most this often")
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
	rem, _, _, err := g.openMirrored(ctx, args[0], mf.remoteShape, nil)
	if err != nil {
		return err
	}
	// Say "no repository" before asking for a key; the daemon opens it.
	if _, err := repo.Find(ctx, rem); err != nil {
		return err
	}
	secret, err := g.sources().Read()
	if err != nil {
		return err
	}
	logFile := mf.logFile
	if logFile == "" {
		base, err := g.cacheBase()
		if err != nil {
			return err
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
	mp, err := daemon.CanonicalPath(args[1])
	if err != nil {
		return usageError{fmt.Errorf("mount point %s: %w", args[1], err)}
	}
	child, readyR, err := startDaemon(cmd, args[0], mp, logf, secret)
	if err != nil {
		return err
	}
	// The daemon may send notes (what it waits for) before its verdict.
	v := daemon.WaitReady(readyR, func(note string) {
		fmt.Fprintf(cmd.ErrOrStderr(), "sealfs: %s\n", note)
	})
	readyR.Close()
	switch {
	case v.Ready:
		fmt.Fprintf(cmd.OutOrStdout(), "mounted %s at %s (daemon pid %d, log %s)\nstop it with: sealfs umount %s\n", rcloneremote.Redact(args[0]), args[1], child.Process.Pid, logFile, args[1])
		child.Process.Release()
		return nil
	case v.Failed:
		child.Wait()
		return daemonExit{code: v.Code, msg: v.Message, hint: v.Hint}
	}
	child.Wait()
	return fmt.Errorf("the mount daemon stopped before the mount was ready; see %s", logFile)
}

// startDaemon starts the background daemon of a mount of source at the
// canonical mountpoint, logging to logf, and hands it secret (the code or
// password) through a pipe: never an argument or the environment. It
// returns the child and the pipe on which it reports readiness.
func startDaemon(cmd *cobra.Command, source, mountpoint string, logf *os.File, secret unlock.Secret) (*exec.Cmd, *os.File, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, nil, err
	}
	// The daemon shows redacted arguments (its mount point absolute, for
	// umount to recognise it); the real ones go through a memory file.
	childArgs := daemonArgs(cmd, source, mountpoint)
	shownArgs, _ := redactArgs(childArgs)
	argsF, err := argsFile(childArgs, false)
	if err != nil {
		return nil, nil, err
	}
	defer argsF.Close()
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	codeR, codeW, err := os.Pipe()
	if err != nil {
		readyR.Close()
		readyW.Close()
		return nil, nil, err
	}
	child := exec.Command(self, shownArgs...)
	child.Stdin, child.Stdout, child.Stderr = nil, logf, logf
	child.ExtraFiles = []*os.File{readyW, codeR, argsF}
	child.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	child.Env = append(withoutEnv(os.Environ(), unlock.CodeEnv), argsFDEnv+"=5")
	err = child.Start()
	readyW.Close()
	codeR.Close()
	if err != nil {
		readyR.Close()
		codeW.Close()
		return nil, nil, fmt.Errorf("failed to start the mount daemon: %w", err)
	}
	// A daemon that did not get it all says so through the ready pipe.
	secret.WriteTo(codeW)
	codeW.Close()
	return child, readyR, nil
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

// daemonExit carries an exit code, error and hint reported by the
// background daemon.
type daemonExit struct {
	code int
	msg  string
	hint string
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

// runForeground opens the repository and runs the mount (daemon.Run)
// until it is unmounted or signalled.
func runForeground(cmd *cobra.Command, g *globals, mf *mountFlags, source, mountpoint string) (err error) {
	var ready *daemon.ReadyPipe
	if mf.readyFD > 0 {
		ready = daemon.NewReadyPipe(os.NewFile(uintptr(mf.readyFD), "ready"))
		defer func() {
			if err != nil {
				code, hint := outcome(err)
				ready.Fail(code, err, hint)
			}
			ready.Close()
		}()
	}
	log, err := newLogger(mf.logFormat)
	if err != nil {
		return err
	}
	stopProfiling, err := startProfiling(log)
	if err != nil {
		return err
	}
	defer stopProfiling()
	metrics, err := mf.listenMetrics()
	if err != nil {
		return err
	}
	ctx := context.Background()
	rem, traffic, remoteDir, err := g.openMirrored(ctx, source, mf.remoteShape, log)
	if err != nil {
		return err
	}
	if !mf.remoteShape.IsZero() {
		log.Info("the remote is reached through a shaped link (--remote-shape)", "shape", mf.remoteShape.String())
	}
	found, err := repo.Find(ctx, rem)
	if err != nil {
		return err
	}
	var secret unlock.Secret
	if mf.codeFD > 0 {
		secret, err = g.sources().FromPipe(os.NewFile(uintptr(mf.codeFD), "code"))
	} else {
		secret, err = g.sources().Read()
	}
	if err != nil {
		return err
	}
	opts, err := g.options()
	if err != nil {
		return err
	}
	opts.CacheSize = mf.cacheSize
	opts.LeaseTTL = mf.leaseTTL
	// Reads through the mount trust the segments' authentication for a
	// whole chunk as for a part of one (docs/SPEC.md §6.2); check and
	// restore recompute every chunk's id.
	opts.TrustSegments = true
	opts.NoCacheWrites = sameFileSystem(remoteDir, opts.CacheDir)
	r, err := found.Open(ctx, secret.Unlocker(), opts)
	if err != nil {
		return err
	}
	abs, err := daemon.CanonicalPath(mountpoint)
	if err != nil {
		return usageError{fmt.Errorf("mount point %s: %w", mountpoint, err)}
	}
	_, by, err := mf.retention.parse()
	if err != nil {
		return err
	}
	// cmd's context ends on SIGTERM or SIGINT (main): one that came while
	// the repository was opened stops the mount once it is ready.
	return daemon.Run(cmd.Context(), daemon.Config{
		Repo: r, Source: rcloneremote.Redact(source), Mountpoint: abs, ReadOnly: mf.readOnly, CommitDelay: mf.commitDelay,
		SyncRemote: mf.sync == "remote", AllowOther: mf.allowOther, DrainTimeout: mf.drainTimeout, Log: log,
		BreakLease: mf.breakLease, Ready: ready, DaemonCommandLine: daemonMountpoint, Kernel: mf.kernel, LimitMemory: true,
		Retention: mf.retention.policy, RetentionGroupBy: by, ForgetInterval: mf.forgetEvery,
		SnapshotsDir: mf.snapshotsDir, Traffic: traffic, Metrics: metrics,
		Transfers: g.transfers, BwLimit: g.bwlimit,
	}, sdnotify.Systemd{})
}

// checkMetrics checks --metrics-listen: a host:port whose host is a
// loopback address, or any with --metrics-allow-remote.
func (mf *mountFlags) checkMetrics() error {
	if mf.metricsListen == "" {
		if mf.metricsRemote {
			return usageError{errors.New("--metrics-allow-remote needs --metrics-listen")}
		}
		return nil
	}
	host, _, err := net.SplitHostPort(mf.metricsListen)
	if err != nil {
		return usageError{fmt.Errorf("--metrics-listen %q: %w (write HOST:PORT, e.g. 127.0.0.1:9570)", mf.metricsListen, err)}
	}
	if mf.metricsRemote {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return usageError{fmt.Errorf("--metrics-listen %s is not a loopback address: the metrics have no authentication; give 127.0.0.1:PORT or [::1]:PORT, or add --metrics-allow-remote to serve them to other machines", mf.metricsListen)}
	}
	return nil
}

// listenMetrics opens the metrics endpoint's socket (nil without
// --metrics-listen): an address in use fails the mount before it starts.
func (mf *mountFlags) listenMetrics() (net.Listener, error) {
	if mf.metricsListen == "" {
		return nil, nil
	}
	l, err := net.Listen("tcp", mf.metricsListen)
	if err != nil {
		return nil, fmt.Errorf("failed to serve metrics at %s: %w (pick another port, or leave out --metrics-listen)", mf.metricsListen, err)
	}
	return l, nil
}

// checkRetention checks the mount's retention flags: a policy needs a
// writable mount, and an interval of at least a second.
func (mf *mountFlags) checkRetention() error {
	p, _, err := mf.retention.parse()
	switch {
	case err != nil:
		return err
	case !p.Empty() && mf.readOnly:
		return usageError{errors.New("a retention policy (--keep-*) forgets snapshots, which a --read-only mount cannot")}
	case mf.forgetEvery < time.Second:
		return usageError{fmt.Errorf("--forget-interval %s is too short (1s at least)", mf.forgetEvery)}
	}
	return nil
}

// optionList is a flag that collects comma-separated lists, given once or
// more; it prints as one list, which reads back the same.
type optionList []string

func (l *optionList) String() string { return strings.Join(*l, ",") }

func (l *optionList) Set(s string) error {
	for o := range strings.SplitSeq(s, ",") {
		if o != "" {
			*l = append(*l, o)
		}
	}
	return nil
}

func (l *optionList) Type() string { return "list" }

// newLogger returns the daemon's logger on stderr in format (--log-format).
func newLogger(format string) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: slog.LevelInfo}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, usageError{fmt.Errorf("--log-format must be text or json, not %q", format)}
}

// openMirrored opens the remote for a mount, keeping local copies of what
// the repository is opened from, so that a mount comes up from local state
// when the remote is down at boot. shape, if not zero, slows the link to the
// remote below the retries and the mirror, where the network would be. log,
// if set, hears of the first fallback. traffic counts what goes over the
// link (below the mirror: the local copies do not count). dir is the
// directory the remote is when it is a local one nothing slows (see
// openShapedRemoteDir).
func (g *globals) openMirrored(ctx context.Context, source string, shape shaped.Shape, log *slog.Logger) (_ remote.Remote, traffic *counted.Remote, dir string, _ error) {
	shapedRem, dir, err := g.openShapedRemoteDir(ctx, source, shape)
	if err != nil {
		return nil, nil, "", err
	}
	inner := counted.New(shapedRem)
	base, err := g.cacheBase()
	if err != nil {
		return nil, nil, "", err
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
	return m, inner, dir, nil
}

// sameFileSystem reports whether directory dir (none: "") is on the file
// system that holds cacheDir: a remote there is read with one pread a
// request (rcloneremote), and a copy of what is read in the cache would
// only cost a write of every byte (repo.Options.NoCacheWrites). A remote
// on another disk or on a network file system keeps its cache.
func sameFileSystem(dir, cacheDir string) bool {
	if dir == "" {
		return false
	}
	var a, b syscall.Stat_t
	return syscall.Stat(dir, &a) == nil && syscall.Stat(cacheDir, &b) == nil && a.Dev == b.Dev
}
