// Package daemon owns a sealfs mount's life once its repository is open
// (Run): it takes the writer lease (or comes up offline from local state),
// opens the worktree, mounts the FUSE filesystem, reports readiness to the
// command that started it and to systemd, commits after a quiet period
// (with backoff while the remote fails), serves the status document, and
// on a signal or an unmount drains what is queued within a time limit,
// unmounts and writes its exit status. It also holds the other side:
// reading a mount's status and stopping its daemon (Unmount), which checks
// that the process is that daemon before signalling it.
package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/internal/atomicfile"
	"github.com/sealfs/sealfs/internal/fusefs"
	"github.com/sealfs/sealfs/internal/mountopts"
	"github.com/sealfs/sealfs/internal/retention"
	"github.com/sealfs/sealfs/internal/worktree"
	"github.com/sealfs/sealfs/remote/bwlimit"
	"github.com/sealfs/sealfs/remote/counted"
	"github.com/sealfs/sealfs/repo"
)

// Config is what a mount needs.
type Config struct {
	Repo         *repo.Repository
	Source       string // the remote as shown: credentials redacted (the mount table shows it)
	Mountpoint   string
	ReadOnly     bool
	CommitDelay  time.Duration // quiet period before a commit
	SyncRemote   bool          // fsync waits for a commit to the remote
	AllowOther   bool
	DrainTimeout time.Duration // how long a stop may spend uploading
	Log          *slog.Logger
	// BreakLease takes the writer lease even if another writer holds it
	// (at mount, or before the first commit of a mount that came up
	// offline).
	BreakLease bool
	// Ready, if set, is the pipe to the command that started this
	// daemon in the background: Run says there what it waits for and
	// when the mount is ready.
	Ready *ReadyPipe
	// DaemonCommandLine recognises a sealfs daemon's command line; Run
	// uses it to recognise this cache's departing daemon, which holds
	// the lease for a while after its unmount. Without it, a held lease
	// is simply an error.
	DaemonCommandLine CommandLine
	// Kernel holds the mount(2) flags and the access-time mode
	// (nosuid,nodev,relatime when zero).
	Kernel mountopts.Kernel
	// LimitMemory keeps the process's Go heap near what the mount needs
	// (governMemory): for a daemon that is the whole process, not for a
	// test that runs one among others.
	LimitMemory bool
	// Retention, if it has a rule, thins the mount's own snapshots: after
	// a commit, at most once per ForgetInterval (DefaultForgetInterval
	// when zero), the snapshots it does not keep (grouped by
	// RetentionGroupBy, host when empty) are forgotten under this mount's
	// lease. A failure is logged and tried again later; it never stops
	// or fails a commit. Not for a read-only mount.
	Retention        retention.Policy
	RetentionGroupBy retention.GroupBy
	ForgetInterval   time.Duration
	// SnapshotsDir names the read-only folder at the root that shows
	// every snapshot (fusefs.Options.SnapshotsDir); empty: none.
	SnapshotsDir string
	// Traffic, if set, counts what goes over the link to the remote: the
	// remote Repo was opened on, wrapped right above the real one. Status
	// reports its counts (uploaded bytes, upload rate).
	Traffic *counted.Remote
	// Metrics, if set, is where the Prometheus endpoint (/metrics) is
	// served (metrics.go); the daemon closes it when it stops.
	Metrics net.Listener
	// Transfers and BwLimit are the parallel remote requests and the
	// bandwidth limits (--transfers, --bwlimit) the mount's remote was
	// opened with, for the status.
	Transfers int
	BwLimit   bwlimit.Timetable
}

// Status is the document `sealfs status` shows.
type Status struct {
	PID          int       `json:"pid"`
	Remote       string    `json:"remote"`
	Repository   string    `json:"repository"`
	Mountpoint   string    `json:"mountpoint"`
	ReadOnly     bool      `json:"read_only"`
	SnapshotSeq  uint64    `json:"snapshot_seq"`
	PendingFiles int       `json:"pending_files"`
	PendingBytes uint64    `json:"pending_bytes"`
	Committing   bool      `json:"committing"`
	LastCommit   time.Time `json:"last_commit,omitzero"`
	LastError    string    `json:"last_error,omitempty"`
	// LastErrorTime is when LastError happened.
	LastErrorTime time.Time `json:"last_error_time,omitzero"`
	Lease         string    `json:"lease"`
	// LeaseHeld: this mount holds the writer lease.
	LeaseHeld bool   `json:"lease_held"`
	StateDir  string `json:"state_dir"`
	// Since this mount started (metrics.go turns them into counters):
	// commits made and failed (by cause: failureCauses), integrity
	// errors met by commits and by reads, files (and their bytes) the
	// commits stored, and the traffic with the remote (objects bytes,
	// encrypted and compressed). UploadRate is the upload's bytes per
	// second over the last few seconds, QueueETA the time the queue
	// (PendingBytes) takes at that rate (an estimate: queued bytes are
	// not yet compressed); zero when unknown.
	Commits         uint64            `json:"commits"`
	CommitFailures  map[string]uint64 `json:"commit_failures,omitempty"`
	IntegrityErrors uint64            `json:"integrity_errors"`
	SentFiles       uint64            `json:"sent_files"`
	SentBytes       uint64            `json:"sent_bytes"`
	UploadedBytes   uint64            `json:"uploaded_bytes"`
	DownloadedBytes uint64            `json:"downloaded_bytes"`
	UploadRate      float64           `json:"upload_rate"`
	QueueETA        float64           `json:"queue_eta_seconds,omitempty"`
	// Cache: the local cache of encrypted chunks (repo.CacheStats).
	Cache CacheStatus `json:"cache"`
	// In the exit status only: the first queued files, and whether
	// changes (names, attributes, content) are still queued at all.
	QueuedPaths   []string `json:"queued_paths,omitempty"`
	QueuedChanges bool     `json:"queued_changes,omitempty"`
	// Conflicts: paths this mount changed while offline that another
	// writer changed too (docs/CLI.md, "Offline changes and conflicts"):
	// the newest few (newest first), and how many there were since the
	// mount.
	Conflicts     []worktree.Conflict `json:"conflicts,omitempty"`
	ConflictCount int                 `json:"conflict_count,omitempty"`
	// Forget: the mount's thinning of its own snapshots, when it has a
	// retention policy.
	Forget *ForgetStatus `json:"forget,omitempty"`
	// Bandwidth: the parallel remote requests, the --bwlimit as given
	// ("off" without one), and the limits in force now in bytes per
	// second (0: unlimited).
	Transfers   int    `json:"transfers,omitempty"`
	BwLimit     string `json:"bwlimit,omitempty"`
	BwLimitUp   int64  `json:"bwlimit_up,omitempty"`
	BwLimitDown int64  `json:"bwlimit_down,omitempty"`
}

// Bounds of the conflicts the status lists (their size in JSON): the
// status is read as one extended attribute, at most 64 KiB.
const (
	statusConflicts     = 10
	statusConflictBytes = 24 << 10
)

// maxCommitWait is the longest changes wait for a quiet period before they
// are committed anyway.
const maxCommitWait = time.Minute

// commitBatch is how many files may wait in the staging area before a
// commit starts without waiting for a quiet period: each holds memory (its
// inode and streamer, its part of the commit's copy of the namespace)
// until a commit stores it, and the folders of committed files can be
// unloaded. A writer of many files commits as it goes, in batches of
// about this many: 100,000 small files written by four writers staged
// 70,000 before the first commit (a minute in), and the daemon peaked at
// 330 MiB (scripts/bench-mount.sh --only many). An untar of Go's src
// (12,800 entries) stays one commit. A variable for tests.
var commitBatch = 16384

// ExitStatusFile is written to the state directory when the daemon stops.
const ExitStatusFile = "exit-status.json"

// Daemon is a running mount.
type Daemon struct {
	cfg  Config
	tree *worktree.Tree
	fs   *fusefs.FS
	srv  *fuse.Server

	lastChange atomic.Int64
	committing atomic.Bool
	unleased   atomic.Bool
	mu         sync.Mutex
	lastCommit time.Time
	lastErr    error
	lastErrAt  time.Time
	// counts: commits, failures and integrity errors (metrics.go).
	counts counters
	// traffic samples the upload for its rate (sampleTraffic).
	traffic rateMeter
	// metricsSrv serves Config.Metrics (nil without).
	metricsSrv *http.Server
	// forksLogged are the fork snapshots logged already (logForks).
	forksLogged map[crypt.ID]bool
	stopLoop    chan struct{}
	loopDone    chan struct{}
	// loopCtx bounds the commit loop's commits; Stop cancels it once the
	// drain timeout has passed.
	loopCtx    context.Context
	cancelLoop context.CancelFunc
	gone       chan struct{} // closed when the kernel has let go of the mount
	// thin is the retention loop's (Config.Retention); stopThinning ends it.
	thin         thinning
	stopThinning context.CancelFunc
}

// start mounts the repository and returns once the mount answers.
// Unleased: the remote could not be reached at mount, so the writer lease
// is not held yet. Changes queue locally; the lease is taken (with
// BreakLease if set) before the first commit.
func start(ctx context.Context, cfg Config, unleased bool) (*Daemon, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.CommitDelay <= 0 {
		cfg.CommitDelay = 5 * time.Second
	}
	CleanStaleMount(cfg.Mountpoint, cfg.Log)
	d := &Daemon{cfg: cfg, stopLoop: make(chan struct{}), loopDone: make(chan struct{}), gone: make(chan struct{})}
	d.loopCtx, d.cancelLoop = context.WithCancel(context.Background())
	d.initThinning()
	d.unleased.Store(unleased)
	tree, err := worktree.Open(ctx, cfg.Repo, worktree.Options{
		Dir: filepath.Join(cfg.Repo.StateDir(), "work"), ReadOnly: cfg.ReadOnly, Log: cfg.Log,
		Atime: atimeModes[cfg.Kernel.Atime], NoDirAtime: cfg.Kernel.NoDirAtime,
		OnChange: func() { d.lastChange.Store(time.Now().UnixNano()) },
	})
	if err != nil {
		return nil, err
	}
	d.tree = tree
	d.logForks()
	fo := fusefs.Options{Log: cfg.Log, Status: d.statusJSON, Statfs: d.statfs, SnapshotsDir: cfg.SnapshotsDir,
		OnIntegrityError: func() { d.counts.integrity.Add(1) }}
	if cfg.SyncRemote {
		fo.SyncRemote = func(ctx context.Context) error { _, err := d.commitWith(ctx, d.tree.CommitOpen); return err }
	}
	mo := mountOptions(cfg)
	d.fs = fusefs.New(tree, fo)
	d.srv, err = fusefs.Mount(cfg.Mountpoint, d.fs, mo)
	if err != nil {
		return nil, fmt.Errorf("failed to mount at %s: %w", cfg.Mountpoint, err)
	}
	go func() { d.srv.Wait(); close(d.gone) }()
	if !cfg.ReadOnly {
		d.writePresence(false)
	}
	go d.commitLoop()
	go d.sampleTraffic()
	if cfg.Metrics != nil {
		d.serveMetrics(cfg.Metrics)
	}
	var thinCtx context.Context
	thinCtx, d.stopThinning = context.WithCancel(context.Background())
	d.startThinning(thinCtx)
	if cfg.LimitMemory {
		go governMemory(d.cfg.Repo.PackMemory, d.stopLoop)
	}
	// Something replayed from the journal goes up soon.
	if tree.Dirty() {
		d.lastChange.Store(time.Now().UnixNano())
	}
	return d, nil
}

// atimeModes maps the access-time mount options to the worktree's modes.
var atimeModes = map[mountopts.Atime]worktree.AtimeMode{
	"": worktree.Relatime, mountopts.Relatime: worktree.Relatime,
	mountopts.Strictatime: worktree.Strictatime, mountopts.Noatime: worktree.Noatime,
}

// mountOptions are the FUSE mount options of cfg's mount. Root mounts with
// mount(2) and the kernel flags of cfg.Kernel; another user through
// fusermount3, which takes the same flags by name (and drops suid and
// dev).
func mountOptions(cfg Config) fuse.MountOptions {
	k := cfg.Kernel
	if k.Flags == 0 {
		k, _ = mountopts.ParseKernel(nil)
	}
	mo := fuse.MountOptions{
		FsName: cfg.Source, Name: "sealfs", AllowOther: cfg.AllowOther,
		Options:     []string{"default_permissions"},
		MaxWrite:    fusefs.IOSize,
		DirectMount: os.Geteuid() == 0,
	}
	if mo.DirectMount {
		mo.DirectMountFlags = k.Flags
	} else {
		mo.Options = append(mo.Options, k.Names()...)
	}
	if cfg.ReadOnly {
		mo.Options = append(mo.Options, "ro")
	}
	return mo
}

func (d *Daemon) drainTimeout() time.Duration {
	if d.cfg.DrainTimeout <= 0 {
		return 5 * time.Minute
	}
	return d.cfg.DrainTimeout
}

// commit commits now, one at a time, and records the outcome. Without the
// lease (an offline start), it takes the lease first. Files open for
// writing wait for a later commit.
func (d *Daemon) commit(ctx context.Context) (*repo.Snapshot, error) {
	return d.commitWith(ctx, d.tree.Commit)
}

// commitWith commits as commit does, through commitTree: the tree's Commit,
// or its CommitOpen for an fsync with --sync=remote.
func (d *Daemon) commitWith(ctx context.Context, commitTree func(context.Context) (*repo.Snapshot, error)) (*repo.Snapshot, error) {
	if d.unleased.Load() {
		if err := d.cfg.Repo.Lock(ctx, d.cfg.BreakLease); err != nil {
			d.failed(fmt.Errorf("cannot take the writer lease yet: %w", err), CauseLease)
			d.cfg.Log.Warn("the writer lease is not held yet; changes stay queued", "err", err)
			return nil, err
		}
		d.unleased.Store(false)
		d.cfg.Log.Info("the remote answers: took the writer lease; uploading what was queued")
		d.logForks()
	}
	d.committing.Store(true)
	defer d.committing.Store(false)
	s, err := commitTree(ctx)
	if err != nil {
		d.failed(err, "")
	} else {
		d.mu.Lock()
		d.lastErr = nil
		if s != nil {
			d.lastCommit = time.Now()
		}
		d.mu.Unlock()
	}
	if err == nil && s != nil {
		d.counts.commits.Add(1)
		d.committedNow()
	}
	if err != nil {
		d.cfg.Log.Warn("commit failed; the changes stay queued locally and are retried", "err", err)
	} else if s != nil {
		files, bytes := d.tree.Pending()
		d.cfg.Log.Info("committed", "snapshot", s.Seq, "still_queued_files", files, "still_queued_bytes", bytes)
	}
	return s, err
}

// retryAfter is how long the commit loop waits after a commit failed with
// err, having waited prev before: from 1 s, doubling, up to 5 minutes for a
// failing remote; but only up to 10 s for a full cache disk, which space
// freed by the user mends at once, without anything to wait for.
func retryAfter(prev time.Duration, err error) time.Duration {
	limit := 5 * time.Minute
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		limit = 10 * time.Second
	}
	return min(max(2*prev, time.Second), limit)
}

// commitLoop commits after a quiet period, backing off while it fails.
func (d *Daemon) commitLoop() {
	defer close(d.loopDone)
	if d.cfg.ReadOnly {
		<-d.stopLoop
		return
	}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	backoff := time.Duration(0)
	var next, dirtySince time.Time
	for {
		select {
		case <-d.stopLoop:
			return
		case <-tick.C:
		}
		if !d.tree.Dirty() {
			dirtySince = time.Time{}
			continue
		}
		if dirtySince.IsZero() {
			dirtySince = time.Now()
		}
		// Commit after a quiet period, or anyway when changes keep coming
		// for long (a backup that writes for an hour commits as it goes)
		// or many files wait (commitBatch).
		quiet := time.Since(time.Unix(0, d.lastChange.Load())) >= d.cfg.CommitDelay
		overdue := time.Since(dirtySince) >= max(maxCommitWait, d.cfg.CommitDelay)
		// Files still open for writing wait too, but a commit cannot
		// store them: counted, they would start one at every tick.
		full := d.tree.Committable() >= commitBatch
		if (!quiet && !overdue && !full) || time.Now().Before(next) {
			continue
		}
		if _, err := d.commit(d.loopCtx); err != nil {
			backoff = retryAfter(backoff, err)
			next = time.Now().Add(backoff)
			continue
		}
		backoff, dirtySince = 0, time.Time{}
	}
}

// Stop commits and drains the queue within the drain timeout, unmounts,
// and releases the lease. It reports what is still queued: it stays in
// the local journal and goes up at the next mount.
func (d *Daemon) Stop() error {
	if !d.cfg.ReadOnly {
		// The next mount of this cache waits for us from now on.
		d.writePresence(true)
		defer d.removePresence()
	}
	ctx, cancel := context.WithTimeout(context.Background(), d.drainTimeout())
	defer cancel()
	// A commit of the loop under way is part of the drain: it ends with
	// the drain timeout (one waiting on an upload that hangs held the
	// stop for as long as the remote did).
	context.AfterFunc(ctx, d.cancelLoop)
	defer d.cancelLoop()
	// No thinning while stopping: a forget under way is cut short (what
	// it left is finished by the next one) before the lease goes.
	d.stopThinning()
	close(d.stopLoop)
	<-d.loopDone
	d.drain(ctx)
	umountErr := d.unmount()
	<-d.gone
	// No file is open any more, whatever releases the kernel dropped as
	// it let go of the mount.
	d.fs.Close()
	if err := d.tree.CloseHandles(); err != nil {
		d.cfg.Log.Warn("failed to record a file closed at the unmount; it goes up at the next mount", "err", err)
	}
	// Writes that raced with the unmount go up too.
	d.drain(ctx)
	files, bytes := d.tree.Pending()
	var queued []string
	if files > 0 || d.tree.Dirty() {
		queued, _ = d.tree.Queued(maxQueuedNamed)
		d.cfg.Log.Warn("stopped with changes still queued locally; they are uploaded at the next mount",
			"files", files, "bytes", bytes, "queued", queued, "last_error", d.Status().LastError)
	}
	// The journal is closed and its reserve given back, so that the exit
	// status can be written even on a full cache disk.
	if err := d.tree.Close(); err != nil {
		d.cfg.Log.Warn("failed to close the journal", "err", err)
	}
	d.writeExitStatus(queued)
	d.stopMetrics()
	<-d.thin.done
	if !d.cfg.ReadOnly {
		// Bounded: with the remote down, the lease simply expires.
		uctx, ucancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer ucancel()
		if err := d.cfg.Repo.Unlock(uctx); err != nil {
			d.cfg.Log.Warn("failed to release the writer lease; it expires by itself", "err", err)
		}
	}
	return umountErr
}

// unmount unmounts, detaching a busy mount point; a mount already gone
// (umount(8) from outside) is no error.
func (d *Daemon) unmount() error {
	select {
	case <-d.gone:
		return nil
	default:
	}
	err := d.srv.Unmount()
	if err == nil || !d.stillMounted() {
		return nil
	}
	d.cfg.Log.Warn("mount point is busy; detaching it (open files there stop working)", "mountpoint", d.cfg.Mountpoint, "err", err)
	if err := syscall.Unmount(d.cfg.Mountpoint, syscall.MNT_DETACH); err != nil && d.stillMounted() {
		return fmt.Errorf("failed to unmount %s: %w", d.cfg.Mountpoint, err)
	}
	return nil
}

// stillMounted reports whether our mount point is still a sealfs mount
// whose daemon has not seen the end of it (true when unsure).
func (d *Daemon) stillMounted() bool {
	select {
	case <-d.gone:
		return false
	default:
	}
	m, err := LookupMount(d.cfg.Mountpoint)
	return err != nil || (m != nil && m.FSType == FSType)
}

// drain commits until nothing is dirty or ctx ends.
func (d *Daemon) drain(ctx context.Context) {
	if d.cfg.ReadOnly {
		return
	}
	backoff := 200 * time.Millisecond
	for d.tree.Dirty() && ctx.Err() == nil {
		if _, err := d.commit(ctx); err == nil {
			continue
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// Status returns the current status.
func (d *Daemon) Status() Status {
	files, bytes := d.tree.Pending()
	s := Status{
		PID: os.Getpid(), Remote: d.cfg.Source, Repository: d.cfg.Repo.ID().String(), Mountpoint: d.cfg.Mountpoint,
		ReadOnly: d.cfg.ReadOnly, PendingFiles: files, PendingBytes: bytes, Committing: d.committing.Load(),
		StateDir: d.cfg.Repo.StateDir(), Lease: "held by this mount", LeaseHeld: true,
		Transfers: d.cfg.Transfers, BwLimit: d.cfg.BwLimit.String(),
	}
	now := d.cfg.BwLimit.At(time.Now())
	s.BwLimitUp, s.BwLimitDown = now.Up, now.Down
	if d.cfg.ReadOnly {
		s.Lease, s.LeaseHeld = "none (read-only)", false
	} else if d.unleased.Load() {
		s.Lease, s.LeaseHeld = "not held yet: the remote was unreachable at mount; changes queue locally", false
	}
	d.fillCounts(&s)
	if l := d.cfg.Repo.Latest(); l != nil {
		s.SnapshotSeq = l.Seq
	}
	recent, total := d.tree.Conflicts()
	s.ConflictCount = total
	size := 0
	for i := len(recent) - 1; i >= 0 && len(s.Conflicts) < statusConflicts; i-- {
		// By its size in JSON: '&', '<', '>' and control characters
		// take six bytes there, invalid UTF-8 three.
		b, _ := json.Marshal(recent[i])
		if size += len(b); size > statusConflictBytes {
			break
		}
		s.Conflicts = append(s.Conflicts, recent[i])
	}
	d.mu.Lock()
	s.LastCommit = d.lastCommit
	if d.lastErr != nil {
		s.LastError = d.lastErr.Error()
		s.LastErrorTime = d.lastErrAt
	}
	if d.retentionOn() {
		f := d.thin.status
		s.Forget = &f
	}
	d.mu.Unlock()
	return s
}

func (d *Daemon) statusJSON() []byte {
	b, _ := json.Marshal(d.Status())
	return b
}

// maxQueuedNamed is how many queued files the exit status names.
const maxQueuedNamed = 100

func (d *Daemon) writeExitStatus(queued []string) {
	st := d.Status()
	st.QueuedPaths = queued
	st.QueuedChanges = d.tree.Dirty()
	b, _ := json.MarshalIndent(st, "", "  ")
	_ = atomicfile.Write(filepath.Join(d.cfg.Repo.StateDir(), ExitStatusFile), b, 0o600)
}

// statfs reports the cache disk's space: writes queue there first.
func (d *Daemon) statfs(out *fuse.StatfsOut) {
	var st syscall.Statfs_t
	if syscall.Statfs(d.cfg.Repo.StateDir(), &st) == nil {
		out.Blocks, out.Bfree, out.Bavail = st.Blocks, st.Bfree, st.Bavail
		out.Files, out.Ffree = st.Files, st.Ffree
		out.Bsize, out.Frsize = uint32(st.Bsize), uint32(st.Frsize)
	}
}

// CleanStaleMount detaches dead FUSE mounts (left by killed daemons) at
// mountpoint, so that they are no obstacle to a new mount. A mount is dead
// when statfs(2), which the kernel never answers from its caches, says the
// transport is not connected; dead mounts may be stacked, so it repeats.
func CleanStaleMount(mountpoint string, log *slog.Logger) bool {
	cleaned := false
	for range 16 {
		var st syscall.Statfs_t
		if err := syscall.Statfs(mountpoint, &st); !errors.Is(err, syscall.ENOTCONN) {
			return cleaned
		}
		if log != nil {
			log.Warn("cleaning up a dead mount left by a stopped daemon", "mountpoint", mountpoint)
		}
		if err := syscall.Unmount(mountpoint, syscall.MNT_DETACH); err != nil {
			return cleaned
		}
		cleaned = true
	}
	return cleaned
}

// logForks logs, once each, the snapshots of a fork that the newest
// snapshot does not record yet (docs/SPEC.md §8): another writer's changes
// that are not in the mounted tree, and how to get them back. A writer's
// next commit records them.
func (d *Daemon) logForks() {
	for _, s := range d.cfg.Repo.UnrecordedForks() {
		d.mu.Lock()
		seen := d.forksLogged[s.ID]
		if d.forksLogged == nil {
			d.forksLogged = map[crypt.ID]bool{}
		}
		d.forksLogged[s.ID] = true
		d.mu.Unlock()
		if seen {
			continue
		}
		d.cfg.Log.Warn(fmt.Sprintf("snapshot %d (%s) is on a fork: another writer stored it with a number the newest snapshot's history also has (a writer that stopped while its upload was under way); its changes are not in this mount; restore them with: sealfs restore --snapshot %s %s DIR",
			s.Seq, s.ID.Short(), s.ID, d.cfg.Source),
			"snapshot", s.Seq, "id", s.ID.String(), "time", s.Time, "host", s.Host)
	}
}
