package fusefs_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sealfs/sealfs/internal/fusefs"
	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/internal/unlock"
	"github.com/sealfs/sealfs/internal/worktree"
	"github.com/sealfs/sealfs/remote"
	"github.com/sealfs/sealfs/repo"
)

// stallingRemote makes every Get hang, while stall is set, until its
// caller gives up; it counts the Gets that hung and those given up.
type stallingRemote struct {
	remote.Remote
	stall           atomic.Bool
	hung, abandoned atomic.Int64
	hanging         chan struct{} // receives a value as a Get starts hanging
}

func newStallingRemote(inner remote.Remote) *stallingRemote {
	return &stallingRemote{Remote: inner, hanging: make(chan struct{}, 16)}
}

// Get hangs while stall is set, until ctx is done.
func (s *stallingRemote) Get(ctx context.Context, name string, off, n int64) ([]byte, error) {
	if s.stall.Load() {
		s.hung.Add(1)
		select {
		case s.hanging <- struct{}{}:
		default:
		}
		<-ctx.Done()
		s.abandoned.Add(1)
		return nil, ctx.Err()
	}
	return s.Remote.Get(ctx, name, off, n)
}

// committedTree stores folders a and b, with a file in each, and a file f
// at the top, as a snapshot of env's repository.
func committedTree(t *testing.T, env *testutil.Env) {
	t.Helper()
	ctx := t.Context()
	tr, err := worktree.Open(ctx, env.Repo, worktree.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	for _, d := range []string{"a", "b"} {
		dir, _, err := tr.Create(ctx, tr.Root(), d, worktree.NewEntry{Type: repo.NodeDir, Mode: 0o755})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := tr.Create(ctx, dir, "x", worktree.NewEntry{Type: repo.NodeFile, Mode: 0o644}); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := tr.Create(ctx, tr.Root(), "f", worktree.NewEntry{Type: repo.NodeFile, Mode: 0o644}); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}

// openOver opens env's repository again on a fresh cache, through the
// remote wrap makes of the real one, and mounts a tree of it.
func openOver(t *testing.T, env *testutil.Env, wrap func(remote.Remote) remote.Remote) (string, *worktree.Tree) {
	t.Helper()
	r, err := repo.Open(t.Context(), wrap(testutil.NewRemote(t, env.Dir)), unlock.WithCode(env.Code),
		repo.Options{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := worktree.Open(t.Context(), r, worktree.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	status := func() []byte {
		files, bytes := tr.Pending()
		b, _ := json.Marshal(map[string]any{"pending_files": files, "pending_bytes": bytes})
		return b
	}
	return mountTreeWith(t, tr, fusefs.Options{Status: status}), tr
}

// within runs f and fails the test if it has not returned after d (it is
// then left running: what it waits on is released at cleanup).
func within(t *testing.T, what string, d time.Duration, f func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("%s: %v", what, err)
		}
	case <-time.After(d):
		t.Errorf("%s did not return in %v while a folder's load hung on the remote", what, d)
	}
}

// TestColdLoadOutsideLock: while one folder's tree hangs on the remote
// (an `ls` of a folder not loaded yet), the rest of the mount answers: a
// lookup in a loaded folder, a new file written, the status xattr. And
// interrupting the waiting `ls` ends its wait and the fetch. (The load
// held the tree's lock: everything froze until the remote answered.)
func TestColdLoadOutsideLock(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root here")
	}
	env := testutil.NewRepo(t, repo.InitOptions{})
	committedTree(t, env)
	var stalling *stallingRemote
	mnt, _ := openOver(t, env, func(r remote.Remote) remote.Remote { stalling = newStallingRemote(r); return stalling })
	// The top folder loads (a lookup, not a listing: b stays unknown to
	// the kernel).
	if _, err := os.Lstat(filepath.Join(mnt, "a")); err != nil {
		t.Fatal(err)
	}
	stalling.stall.Store(true)
	ls := exec.Command("ls", filepath.Join(mnt, "a"))
	var out bytes.Buffer
	ls.Stdout, ls.Stderr = &out, &out
	if err := ls.Start(); err != nil {
		t.Fatal(err)
	}
	lsDone := make(chan error, 1)
	go func() { err := ls.Wait(); lsDone <- err; close(lsDone) }()
	t.Cleanup(func() {
		stalling.stall.Store(false)
		ls.Process.Kill()
		<-lsDone
	})
	select {
	case <-stalling.hanging:
	case err := <-lsDone:
		t.Fatalf("ls returned before the remote was asked: %v: %s", err, out.Bytes())
	case <-time.After(30 * time.Second):
		t.Fatal("ls never reached the remote")
	}

	const wait = 10 * time.Second
	within(t, "stat of an entry of a loaded folder", wait, func() error {
		_, err := os.Lstat(filepath.Join(mnt, "b"))
		return err
	})
	within(t, "writing a new file", wait, func() error {
		return os.WriteFile(filepath.Join(mnt, "new"), []byte("written while a load hangs"), 0o644)
	})
	within(t, "the status xattr", wait, func() error {
		_, err := unix.Getxattr(mnt, fusefs.StatusXattr, make([]byte, 4096))
		return err
	})
	if t.Failed() {
		return
	}

	// Interrupting the waiting ls ends its wait, and the fetch that
	// nobody waits for any more.
	if err := ls.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lsDone:
	case <-time.After(30 * time.Second):
		t.Fatal("the interrupted ls did not return")
	}
	deadline := time.Now().Add(30 * time.Second)
	for stalling.abandoned.Load() < stalling.hung.Load() {
		if time.Now().After(deadline) {
			t.Fatalf("%d fetches hung, %d abandoned after the interrupt", stalling.hung.Load(), stalling.abandoned.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The folder loads once the remote answers.
	stalling.stall.Store(false)
	if ents, err := os.ReadDir(filepath.Join(mnt, "a")); err != nil || len(ents) != 1 {
		t.Fatalf("listing a afterwards: %v, %d entries", err, len(ents))
	}
}
