package fusefs_test

import (
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/sealfs/sealfs/internal/fusefs"
	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/internal/worktree"
	"github.com/sealfs/sealfs/repo"
)

// TestFsyncDir: fsync(2) of a directory succeeds, as on ext4 (it gave
// ENOTSUP, which breaks the write-temp, rename, fsync-the-directory pattern
// of databases and package managers), and with --sync=remote it commits,
// as fsync of a file does.
func TestFsyncDir(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root here")
	}
	env := testutil.NewRepo(t, repo.InitOptions{})
	tr, err := worktree.Open(context.Background(), env.Repo, worktree.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	var commits atomic.Int32
	dir := t.TempDir()
	fsys := fusefs.New(tr, fusefs.Options{SyncRemote: func(ctx context.Context) error {
		commits.Add(1)
		_, err := tr.Commit(ctx)
		return err
	}})
	srv, err := fusefs.Mount(dir, fsys, fuse.MountOptions{FsName: "test", Name: "sealfs", DirectMount: true, Options: []string{"default_permissions"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
		}
	})

	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sub, "tmp"), []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(sub, "tmp"), filepath.Join(sub, "final")); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{sub, dir} {
		f, err := os.Open(d)
		if err != nil {
			t.Fatal(err)
		}
		before := commits.Load()
		if err := f.Sync(); err != nil {
			t.Errorf("fsync of the directory %s: %v", d, err)
		} else if commits.Load() == before {
			t.Errorf("fsync of the directory %s did not commit with --sync=remote", d)
		}
		f.Close()
	}
}
