package fusefs_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sealfs/sealfs/internal/worktree"
	"github.com/sealfs/sealfs/repo"
)

// TestPruneHeldFolderOps (review): a folder held open (as a shell's
// working directory) while walks unload it, its parent and their entries
// (bound: 8 loaded entries) and the kernel is asked to forget them, takes
// changes made relative to it (openat, renameat, unlinkat, fchmodat,
// mkdirat) and every one lands: read back through the mount after more
// walks, and from a new tree on the same repository after a commit.
func TestPruneHeldFolderOps(t *testing.T) {
	m := mountBounded(t, 8)
	env, tr, fs, dir, unmount := m.env, m.tr, m.fs, m.dir, m.unmount
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	const tops, folders, files = 3, 6, 4
	path := func(a, d, f int) string { return fmt.Sprintf("t%d/d%d/f%d", a, d, f) }
	for a := range tops {
		for d := range folders {
			must(os.MkdirAll(filepath.Join(dir, fmt.Sprintf("t%d/d%d", a, d)), 0o755))
			for f := range files {
				must(os.WriteFile(filepath.Join(dir, path(a, d, f)), []byte(path(a, d, f)), 0o644))
			}
		}
	}
	walk := func(skip int) {
		t.Helper()
		for a := range tops {
			if a == skip {
				continue
			}
			for d := range folders {
				for f := range files {
					p := path(a, d, f)
					b, err := os.ReadFile(filepath.Join(dir, p))
					if a == 1 && d == 2 {
						continue // the held folder, changed below
					}
					if err != nil || string(b) != p {
						t.Fatalf("%s reads %q, %v", p, b, err)
					}
				}
			}
		}
	}
	if _, err := tr.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	ino := func(p string) uint64 {
		t.Helper()
		var st unix.Stat_t
		must(unix.Lstat(filepath.Join(dir, p), &st))
		return st.Ino
	}
	siblingIno := ino("t1/d1")
	dfd, err := unix.Open(filepath.Join(dir, "t1/d2"), unix.O_RDONLY|unix.O_DIRECTORY, 0)
	must(err)
	defer unix.Close(dfd)
	for range 3 {
		if _, err := tr.Commit(t.Context()); err != nil {
			t.Fatal(err)
		}
		walk(-1)
	}
	for range 30 {
		runtime.GC() // the inodes nothing holds go: weak pointers die
		if ino("t1/d1") != siblingIno {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("kernel nodes: %d", fs.KernelNodes())
	if ino("t1/d1") == siblingIno {
		// t1/d1 loaded again as a new inode: t1 was unloaded, and the
		// kernel forgot its entries but the held one.
		t.Fatal("t1 was not unloaded: the test tests nothing")
	}
	// t1 is loaded again by that check: unloaded again by commits and
	// walks of the others, as it was above.
	for range 2 {
		if _, err := tr.Commit(t.Context()); err != nil {
			t.Fatal(err)
		}
		walk(1)
	}
	// Relative to the held folder, its folder unloaded and pruned.
	fd, err := unix.Openat(dfd, "new", unix.O_CREAT|unix.O_WRONLY, 0o644)
	must(err)
	_, err = unix.Write(fd, []byte("new file"))
	must(err)
	must(unix.Close(fd))
	must(unix.Renameat(dfd, "f0", dfd, "f0-renamed"))
	must(unix.Unlinkat(dfd, "f1", 0))
	must(unix.Fchmodat(dfd, "f2", 0o600, 0))
	must(unix.Mkdirat(dfd, "sub", 0o700))
	fd, err = unix.Openat(dfd, "f3", unix.O_WRONLY|unix.O_APPEND, 0)
	must(err)
	_, err = unix.Write(fd, []byte("+more"))
	must(err)
	must(unix.Close(fd))
	want := map[string]string{
		"new": "new file", "f0-renamed": "t1/d2/f0", "f2": "t1/d2/f2", "f3": "t1/d2/f3+more", "sub": "dir",
	}
	check := func(what string, read func(name string) (string, os.FileMode, error), list func() ([]string, error)) {
		t.Helper()
		for name, w := range want {
			got, mode, err := read(name)
			if err != nil || got != w {
				t.Errorf("%s: t1/d2/%s = %q, %v; want %q", what, name, got, err, w)
			}
			if name == "f2" && mode.Perm() != 0o600 {
				t.Errorf("%s: t1/d2/f2 mode %v, want 0600", what, mode)
			}
		}
		names, err := list()
		if err != nil || len(names) != len(want) {
			t.Errorf("%s: t1/d2 holds %q, %v; want %d entries", what, names, err, len(want))
		}
	}
	through := func() {
		check("mount", func(name string) (string, os.FileMode, error) {
			p := filepath.Join(dir, "t1/d2", name)
			st, err := os.Stat(p)
			if err != nil {
				return "", 0, err
			}
			if st.IsDir() {
				return "dir", st.Mode(), nil
			}
			b, err := os.ReadFile(p)
			return string(b), st.Mode(), err
		}, func() ([]string, error) {
			es, err := os.ReadDir(filepath.Join(dir, "t1/d2"))
			var names []string
			for _, e := range es {
				names = append(names, e.Name())
			}
			return names, err
		})
	}
	through()
	for range 2 {
		if _, err := tr.Commit(t.Context()); err != nil {
			t.Fatal(err)
		}
		walk(-1)
	}
	through()
	unix.Close(dfd)
	dfd = -1
	unmount()

	// A new tree of the repository, on a cache of its own.
	tr2, err := worktree.Open(context.Background(), env.Repo, worktree.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer tr2.Close()
	ctx := t.Context()
	lookup := func(names ...string) (*worktree.Inode, error) {
		in := tr2.Root()
		for _, n := range names {
			var err error
			if in, _, err = tr2.Lookup(ctx, in, n); err != nil {
				return nil, err
			}
		}
		return in, nil
	}
	check("new tree", func(name string) (string, os.FileMode, error) {
		in, err := lookup("t1", "d2", name)
		if err != nil {
			return "", 0, err
		}
		a := tr2.Attr(in)
		if a.Type == repo.NodeDir {
			return "dir", os.FileMode(a.Mode), nil
		}
		h, err := tr2.OpenFile(in, false, false)
		if err != nil {
			return "", 0, err
		}
		defer h.Close()
		b := make([]byte, a.Size)
		n, err := h.ReadAt(ctx, b, 0)
		if n == len(b) {
			err = nil
		}
		return string(b[:n]), os.FileMode(a.Mode), err
	}, func() ([]string, error) {
		d, err := lookup("t1", "d2")
		if err != nil {
			return nil, err
		}
		es, err := tr2.ReadDir(ctx, d)
		var names []string
		for _, e := range es {
			names = append(names, e.Name)
		}
		return names, err
	})
}
