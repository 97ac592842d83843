package fusefs_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/hanwen/go-fuse/v2/posixtest"

	"github.com/sealfs/sealfs/internal/fusefs"
	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/internal/worktree"
	"github.com/sealfs/sealfs/repo"
)

// mount mounts a fresh repository in-process at a temporary directory and
// unmounts it at cleanup, failing the test if it will not go.
func mount(t *testing.T) (string, *worktree.Tree, *testutil.Env) {
	t.Helper()
	return mountWith(t, fusefs.Options{})
}

// mountWith is mount with the filesystem's options o.
func mountWith(t *testing.T, o fusefs.Options) (string, *worktree.Tree, *testutil.Env) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root here")
	}
	env := testutil.NewRepo(t, repo.InitOptions{})
	tr, err := worktree.Open(context.Background(), env.Repo, worktree.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return mountTreeWith(t, tr, o), tr, env
}

// mountTree mounts tr at a fresh directory until cleanup.
func mountTree(t *testing.T, tr *worktree.Tree) string {
	t.Helper()
	return mountTreeWith(t, tr, fusefs.Options{})
}

// mountTreeWith is mountTree with the filesystem's options o.
func mountTreeWith(t *testing.T, tr *worktree.Tree, o fusefs.Options) string {
	t.Helper()
	dir := t.TempDir()
	srv, err := fusefs.Mount(dir, fusefs.New(tr, o),
		fuse.MountOptions{FsName: "test", Name: "sealfs", DirectMount: true, Options: []string{"default_permissions"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
		}
	})
	return dir
}

// boundedMount is a fresh repository mounted in-process whose tree keeps
// at most a given number of entries loaded (worktree.Options.MaxLoaded):
// folders are unloaded and the kernel asked to forget their entries.
type boundedMount struct {
	env     *testutil.Env
	tr      *worktree.Tree
	fs      *fusefs.FS
	dir     string
	unmount func() // unmounts and closes the filesystem, once (also at cleanup)
}

// mountBounded mounts a fresh repository with at most maxLoaded entries loaded.
func mountBounded(t *testing.T, maxLoaded int) *boundedMount {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root here")
	}
	m := &boundedMount{env: testutil.NewRepo(t, repo.InitOptions{}), dir: t.TempDir()}
	var err error
	if m.tr, err = worktree.Open(context.Background(), m.env.Repo, worktree.Options{Dir: t.TempDir(), MaxLoaded: maxLoaded}); err != nil {
		t.Fatal(err)
	}
	m.fs = fusefs.New(m.tr, fusefs.Options{})
	srv, err := fusefs.Mount(m.dir, m.fs, fuse.MountOptions{FsName: "test", Name: "sealfs", DirectMount: true})
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	m.unmount = func() {
		once.Do(func() {
			if err := srv.Unmount(); err != nil {
				t.Errorf("unmount: %v", err)
			}
			m.fs.Close()
		})
	}
	t.Cleanup(m.unmount)
	return m
}

// TestPosix runs go-fuse's POSIX behaviour suite on a mount.
func TestPosix(t *testing.T) {
	skip := map[string]string{
		"FcntlFlockLocksFile": "locks are not forwarded",
		"FcntlFlockSetLk":     "locks are not forwarded",
		"DirectIO":            "no direct I/O mode",
	}
	for name, test := range posixtest.All {
		t.Run(name, func(t *testing.T) {
			if why, ok := skip[name]; ok {
				t.Skip(why)
			}
			dir, _, _ := mount(t)
			test(t, dir)
		})
	}
}

func TestWriteCommitRead(t *testing.T) {
	dir, tr, env := mount(t)
	data := bytes.Repeat([]byte("sealfs "), 500000)
	if err := os.MkdirAll(filepath.Join(dir, "a", "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "a", "b", "f"), data, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("b/f", filepath.Join(dir, "a", "link")); err != nil {
		t.Fatal(err)
	}
	// close(2) returns before the kernel's RELEASE reaches the daemon, and
	// a file still open for writing waits for the next commit: commit
	// until the file is in.
	deadline := time.Now().Add(5 * time.Second)
	for {
		snap, err := tr.Commit(context.Background())
		if err != nil {
			t.Fatalf("commit: %v", err)
		}
		if snap != nil && snap.Files == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the closed file never got into a snapshot")
		}
		time.Sleep(10 * time.Millisecond)
	}
	got, err := os.ReadFile(filepath.Join(dir, "a", "link"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read through the mount after commit: %v", err)
	}
	r2, err := env.Reopen(t, t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	if r2.Latest().Files != 1 {
		t.Fatalf("snapshot holds %d files", r2.Latest().Files)
	}
}
