package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/internal/unlock"
	"github.com/sealfs/sealfs/remote/faulty"
	"github.com/sealfs/sealfs/repo"
)

// recorder is a Notifier that keeps what it is told.
type recorder struct {
	watchdog time.Duration
	mu       sync.Mutex
	msgs     []string
	got      chan struct{} // signalled on every message
}

func newRecorder(watchdog time.Duration) *recorder {
	return &recorder{watchdog: watchdog, got: make(chan struct{}, 1)}
}

func (r *recorder) Notify(state string) error {
	r.mu.Lock()
	r.msgs = append(r.msgs, state)
	r.mu.Unlock()
	select {
	case r.got <- struct{}{}:
	default:
	}
	return nil
}

func (r *recorder) WatchdogInterval() time.Duration { return r.watchdog }

func (r *recorder) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.msgs...)
}

// waitFor waits until a message satisfies ok and returns it.
func (r *recorder) waitFor(t *testing.T, what string, ok func(string) bool) string {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		for _, m := range r.all() {
			if ok(m) {
				return m
			}
		}
		select {
		case <-r.got:
		case <-deadline:
			t.Fatalf("no notification with %s; got %q", what, r.all())
		}
	}
}

func needFUSE(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root here")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("no FUSE: %v", err)
	}
}

// mountEnv is a repository on a local remote, opened by a second client
// (the mount's) over its own fault injector, and a mount point.
type mountEnv struct {
	env    *testutil.Env
	remote *faulty.Remote // the mount's remote
	repo   *repo.Repository
	mnt    string
}

func newMountEnv(t *testing.T) *mountEnv {
	t.Helper()
	needFUSE(t)
	env := testutil.NewRepo(t, repo.InitOptions{})
	if err := env.Repo.Unlock(context.Background()); err != nil {
		t.Fatal(err)
	}
	rem := testutil.NewRemote(t, env.Dir)
	r, err := repo.Open(context.Background(), rem, unlock.WithCode(env.Code), repo.Options{CacheDir: filepath.Join(t.TempDir(), "cache")})
	if err != nil {
		t.Fatal(err)
	}
	mnt := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if m, _ := LookupMount(mnt); m != nil {
			syscall.Unmount(mnt, syscall.MNT_DETACH)
			t.Errorf("%s is still mounted", mnt)
		}
	})
	return &mountEnv{env: env, remote: rem, repo: r, mnt: mnt}
}

func (e *mountEnv) config() Config {
	return Config{Repo: e.repo, Source: "test", Mountpoint: e.mnt, CommitDelay: time.Hour, DrainTimeout: 30 * time.Second}
}

// run starts Run and returns its result channel.
func run(ctx context.Context, cfg Config, n Notifier) chan error {
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, n) }()
	return done
}

func wait(t *testing.T, done chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(time.Minute):
		t.Fatal("Run did not return within a minute")
		return nil
	}
}

// TestRunSigterm: Run takes the lease, mounts, says "ready" on the pipe
// and READY with the queue to its notifier, sends STATUS (with WATCHDOG)
// while it serves; on SIGTERM (heard from the moment it is ready) it sends
// STOPPING, commits what is queued, unmounts, writes its exit status and
// lets go of the lease.
func TestRunSigterm(t *testing.T) {
	e := newMountEnv(t)
	rec := newRecorder(20 * time.Millisecond)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cfg := e.config()
	cfg.Ready = NewReadyPipe(pw)
	done := run(context.Background(), cfg, rec)
	if v := WaitReady(pr, func(n string) { t.Errorf("unexpected note %q", n) }); !v.Ready {
		t.Fatalf("verdict %+v, want ready (Run: %v)", v, wait(t, done))
	}
	first := rec.waitFor(t, "READY", func(string) bool { return true })
	if first != "READY=1\nSTATUS=snapshot 0, 0 files queued (0 B)" {
		t.Fatalf("first notification %q", first)
	}
	st, err := ReadStatus(e.mnt, StatusWait)
	if err != nil || st.PID != os.Getpid() || st.Lease != "held by this mount" {
		t.Fatalf("status %+v, %v", st, err)
	}
	if l, err := e.env.Repo.ReadLease(context.Background()); err != nil || l == nil || l.PID != os.Getpid() {
		t.Fatalf("lease %v, %v; want ours", l, err)
	}
	if err := os.WriteFile(filepath.Join(e.mnt, "f"), []byte("queued until the stop"), 0o644); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, "the queued file and the watchdog", func(m string) bool {
		return m == "STATUS=snapshot 0, 1 files queued (21 B)\nWATCHDOG=1"
	})
	syscall.Kill(os.Getpid(), syscall.SIGTERM)
	if err := wait(t, done); err != nil {
		t.Fatalf("Run: %v", err)
	}
	stopping := rec.waitFor(t, "STOPPING", func(m string) bool { return strings.HasPrefix(m, "STOPPING=1") })
	if stopping != "STOPPING=1\nSTATUS=stopping: uploading 1 queued files (21 B)" {
		t.Fatalf("stopping notification %q", stopping)
	}
	if msgs := rec.all(); msgs[len(msgs)-1] != stopping {
		t.Fatalf("notifications after STOPPING: %q", msgs)
	}
	checkStopped(t, e, 1)
}

// TestRunSighup: SIGHUP, which a foreground mount gets when its terminal
// closes, stops the mount as SIGTERM does (commit, drain, unmount) instead
// of killing the daemon and leaving a dead mount with the queue unsent.
func TestRunSighup(t *testing.T) {
	e := newMountEnv(t)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cfg := e.config()
	cfg.Ready = NewReadyPipe(pw)
	done := run(context.Background(), cfg, nil)
	if v := WaitReady(pr, func(n string) { t.Errorf("unexpected note %q", n) }); !v.Ready {
		t.Fatalf("verdict %+v, want ready (Run: %v)", v, wait(t, done))
	}
	if err := os.WriteFile(filepath.Join(e.mnt, "f"), []byte("queued until the hangup"), 0o644); err != nil {
		t.Fatal(err)
	}
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	if err := wait(t, done); err != nil {
		t.Fatalf("Run: %v", err)
	}
	checkStopped(t, e, 1)
}

// checkStopped checks what a stopped read-write mount leaves: nothing
// mounted, no lease, no presence record, an exit status with nothing
// queued at snapshot seq, which another client sees.
func checkStopped(t *testing.T, e *mountEnv, seq uint64) {
	t.Helper()
	if m, err := LookupMount(e.mnt); err != nil || m != nil {
		t.Fatalf("still mounted after Run returned: %+v, %v", m, err)
	}
	var final Status
	b, err := os.ReadFile(filepath.Join(e.repo.StateDir(), ExitStatusFile))
	if err != nil || json.Unmarshal(b, &final) != nil {
		t.Fatalf("exit status: %v %s", err, b)
	}
	if final.PID != os.Getpid() || final.SnapshotSeq != seq || final.PendingFiles != 0 || final.QueuedChanges || final.LastError != "" {
		t.Fatalf("exit status %+v; want snapshot %d, nothing queued", final, seq)
	}
	if p, err := ReadPresence(e.repo.StateDir()); err != nil || p != nil {
		t.Fatalf("presence record left: %+v, %v", p, err)
	}
	if l, err := e.env.Repo.ReadLease(context.Background()); err != nil || l != nil {
		t.Fatalf("lease left: %v, %v", l, err)
	}
	if err := e.env.Repo.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if l := e.env.Repo.Latest(); l == nil || l.Seq != seq {
		t.Fatalf("another client sees snapshot %+v, want %d", l, seq)
	}
}

// TestRunOffline: with the remote failing at mount, Run mounts read-write
// without the lease, says so in the status, queues what is written, and
// takes the lease and commits once the remote answers; the end of its
// context stops it like a signal.
func TestRunOffline(t *testing.T) {
	e := newMountEnv(t)
	cfg := e.config()
	cfg.CommitDelay = 50 * time.Millisecond
	e.remote.SetFailRate(1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rec := newRecorder(0)
	done := run(ctx, cfg, rec)
	rec.waitFor(t, "READY", func(m string) bool { return strings.HasPrefix(m, "READY=1") })
	st, err := ReadStatus(e.mnt, StatusWait)
	if err != nil || !strings.Contains(st.Lease, "not held yet") {
		t.Fatalf("status %+v, %v; want the lease not held", st, err)
	}
	if err := os.WriteFile(filepath.Join(e.mnt, "f"), []byte("written offline"), 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // commits are tried and fail meanwhile
	if st, err := ReadStatus(e.mnt, StatusWait); err != nil || st.PendingFiles != 1 || st.SnapshotSeq != 0 {
		t.Fatalf("status while offline %+v, %v; want 1 file queued", st, err)
	}
	e.remote.SetFailRate(0)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		st, err := ReadStatus(e.mnt, StatusWait)
		if err == nil && st.SnapshotSeq == 1 && st.PendingFiles == 0 && st.Lease == "held by this mount" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the queue did not go up once the remote answered: %+v, %v", st, err)
		}
	}
	cancel()
	if err := wait(t, done); err != nil {
		t.Fatalf("Run: %v", err)
	}
	rec.waitFor(t, "STOPPING", func(m string) bool { return strings.HasPrefix(m, "STOPPING=1") })
	checkStopped(t, e, 1)
}

// TestRunLeaseHeld: with another writer's lease valid, a read-write Run
// fails with ErrLocked before anything is mounted or reported; a
// read-only one mounts, and an unmount from outside ends it.
func TestRunLeaseHeld(t *testing.T) {
	e := newMountEnv(t)
	if err := e.env.Repo.Lock(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	rec := newRecorder(0)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cfg := e.config()
	cfg.Ready = NewReadyPipe(pw)
	err = Run(context.Background(), cfg, rec)
	if !errors.Is(err, repo.ErrLocked) {
		t.Fatalf("Run with the lease held: %v, want ErrLocked", err)
	}
	cfg.Ready.Close()
	if v := WaitReady(pr, func(string) {}); v.Ready || v.Failed {
		t.Fatalf("a failed Run gave the verdict %+v", v)
	}
	if m, _ := LookupMount(e.mnt); m != nil || len(rec.all()) != 0 {
		t.Fatalf("a failed Run mounted (%+v) or notified %q", m, rec.all())
	}

	cfg = e.config()
	cfg.ReadOnly = true
	done := run(context.Background(), cfg, rec)
	rec.waitFor(t, "READY", func(m string) bool { return strings.HasPrefix(m, "READY=1") })
	if st, err := ReadStatus(e.mnt, StatusWait); err != nil || !st.ReadOnly {
		t.Fatalf("status %+v, %v", st, err)
	}
	if err := syscall.Unmount(e.mnt, 0); err != nil {
		t.Fatal(err)
	}
	if err := wait(t, done); err != nil {
		t.Fatalf("Run after an unmount from outside: %v", err)
	}
	if l, err := e.env.Repo.ReadLease(context.Background()); err != nil || l == nil {
		t.Fatalf("the read-only mount touched the other writer's lease: %v, %v", l, err)
	}
}

// TestReadyPipe: notes, then one verdict with its hint; an error's lines
// are joined; nothing after the verdict; a pipe closed without one says so.
func TestReadyPipe(t *testing.T) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p := NewReadyPipe(pw)
	p.note("waiting for a")
	p.note("waiting for b")
	p.Fail(9, errors.New("locked\nby another"), "wait\nfor it")
	p.ready()
	var notes []string
	v := WaitReady(pr, func(n string) { notes = append(notes, n) })
	if v != (Verdict{Failed: true, Code: 9, Message: "locked by another", Hint: "wait for it"}) || strings.Join(notes, "|") != "waiting for a|waiting for b" {
		t.Fatalf("verdict %+v, notes %q", v, notes)
	}
	pr, pw, _ = os.Pipe()
	NewReadyPipe(pw).Close()
	if v := WaitReady(pr, func(string) {}); v != (Verdict{}) {
		t.Fatalf("verdict %+v of a closed pipe", v)
	}
	var nilPipe *ReadyPipe
	nilPipe.note("x")
	nilPipe.ready()
	nilPipe.Fail(1, errors.New("x"), "")
	nilPipe.Close()
}
