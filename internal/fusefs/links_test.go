package fusefs_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/internal/worktree"
)

func lstat(t *testing.T, p string) *syscall.Stat_t {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return &st
}

func wantErrno(t *testing.T, what string, err error, want syscall.Errno) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: %v, want %v", what, err, want)
	}
}

// commitAll commits until nothing is left queued (close(2) returns before
// the kernel's RELEASE reaches the daemon).
func commitAll(t *testing.T, tr *worktree.Tree) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := tr.Commit(context.Background()); err != nil {
			t.Fatalf("commit: %v", err)
		}
		if files, _ := tr.Pending(); files == 0 && !tr.Dirty() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the queue never emptied")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestHardLinks: link(2) gives a file further names that share one inode
// (content, mode, owner, times, nlink), as on ext4: a write or chmod
// through any name shows through every name; unlink and rename of one
// name, or a rename onto one, leave the others whole; a directory cannot
// be linked (EPERM), an existing name cannot be linked over (EEXIST). The
// links survive a commit and a mount of the snapshot on a fresh cache.
func TestHardLinks(t *testing.T) {
	dir, tr, env := mount(t)
	p := func(s string) string { return filepath.Join(dir, s) }
	for _, d := range []string{"a", "b"} {
		if err := os.Mkdir(p(d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(p("a/f"), []byte("one"), 0o640); err != nil {
		t.Fatal(err)
	}
	// Each link changes the inode's ctime (and the directory's mtime and
	// ctime), as on ext4.
	for _, to := range []string{"b/g", "a/h", "top"} {
		before, dirBefore := lstat(t, p("a/f")), lstat(t, filepath.Dir(p(to)))
		if err := os.Link(p("a/f"), p(to)); err != nil {
			t.Fatalf("link a/f %s: %v", to, err)
		}
		after, dirAfter := lstat(t, p("a/f")), lstat(t, filepath.Dir(p(to)))
		if after.Ctim.Nano() <= before.Ctim.Nano() || after.Mtim != before.Mtim {
			t.Errorf("link %s: ctime %d -> %d, mtime %d -> %d; want a later ctime, the same mtime", to,
				before.Ctim.Nano(), after.Ctim.Nano(), before.Mtim.Nano(), after.Mtim.Nano())
		}
		if dirAfter.Mtim.Nano() <= dirBefore.Mtim.Nano() || dirAfter.Ctim.Nano() <= dirBefore.Ctim.Nano() {
			t.Errorf("link %s: its directory's mtime and ctime did not move", to)
		}
	}
	testutil.SameInode(t, 4, "one", p("a/f"), p("b/g"), p("a/h"), p("top"))

	// Content, mode, owner and times are the inode's.
	if err := os.WriteFile(p("b/g"), []byte("two!"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p("a/h"), 0o604); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(p("top"), 1234, 5678); err != nil {
		t.Fatal(err)
	}
	when := time.Unix(1500000000, 123456789)
	if err := os.Chtimes(p("a/f"), when, when); err != nil {
		t.Fatal(err)
	}
	testutil.SameInode(t, 4, "two!", p("a/f"), p("b/g"), p("a/h"), p("top"))
	if st := lstat(t, p("b/g")); st.Mode&07777 != 0o604 || st.Uid != 1234 || st.Gid != 5678 || st.Mtim.Nano() != when.UnixNano() {
		t.Errorf("b/g: mode %o owner %d:%d mtime %d after chmod, chown, utimes through other names", st.Mode&07777, st.Uid, st.Gid, st.Mtim.Nano())
	}

	wantErrno(t, "link of a directory", os.Link(p("a"), p("c")), syscall.EPERM)
	wantErrno(t, "link onto an existing name", os.Link(p("a/f"), p("b/g")), syscall.EEXIST)
	wantErrno(t, "link of a missing name", os.Link(p("a/nothing"), p("c")), syscall.ENOENT)

	// Unlink of one name leaves the others, and changes their ctime.
	before := lstat(t, p("a/f"))
	if err := os.Remove(p("a/h")); err != nil {
		t.Fatal(err)
	}
	testutil.SameInode(t, 3, "two!", p("a/f"), p("b/g"), p("top"))
	if after := lstat(t, p("a/f")); after.Ctim.Nano() <= before.Ctim.Nano() {
		t.Errorf("unlink of a link left the ctime of the others at %d", after.Ctim.Nano())
	}
	// A rename of a linked name; a rename between two names of one inode
	// does nothing (POSIX).
	if err := os.Rename(p("b/g"), p("b/g2")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(p("top"), p("a/f")); err != nil {
		t.Fatal(err)
	}
	testutil.SameInode(t, 3, "two!", p("a/f"), p("b/g2"), p("top"))
	// A rename onto a linked name replaces that name only.
	if err := os.WriteFile(p("other"), []byte("other"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(p("other"), p("top")); err != nil {
		t.Fatal(err)
	}
	testutil.SameInode(t, 2, "two!", p("a/f"), p("b/g2"))
	testutil.SameInode(t, 1, "other", p("top"))
	// A rename of a directory holding links.
	if err := os.Rename(p("a"), p("a2")); err != nil {
		t.Fatal(err)
	}
	testutil.SameInode(t, 2, "two!", p("a2/f"), p("b/g2"))
	// Extended attributes are the inode's too.
	if err := unix.Setxattr(p("a2/f"), "user.linked", []byte("shared"), 0); err != nil {
		t.Fatal(err)
	}

	// RENAME_EXCHANGE of one name of a linked inode swaps that name only.
	if err := os.WriteFile(p("x"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	exchange := func() {
		t.Helper()
		if err := unix.Renameat2(unix.AT_FDCWD, p("b/g2"), unix.AT_FDCWD, p("x"), unix.RENAME_EXCHANGE); err != nil {
			t.Fatal(err)
		}
	}
	exchange()
	testutil.SameInode(t, 2, "two!", p("a2/f"), p("x"))
	testutil.SameInode(t, 1, "x", p("b/g2"))
	exchange()
	os.Remove(p("x"))

	// A file still being written gets a name; the writes show through it.
	w, err := os.Create(p("w"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.WriteString("part1 ")
	if err := os.Link(p("w"), p("b/w2")); err != nil {
		t.Fatalf("link of a file being written: %v", err)
	}
	w.WriteString("part2")
	testutil.SameInode(t, 2, "part1 part2", p("w"), p("b/w2"))
	if _, err := tr.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	w.WriteString(" part3")
	w.Close()
	// A committed file, staged again, gets a name before its next commit.
	if err := os.WriteFile(p("b/g2"), []byte("three"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(p("b/g2"), p("b/g3")); err != nil {
		t.Fatal(err)
	}
	commitAll(t, tr)
	check := func(root string) {
		t.Helper()
		q := func(s string) string { return filepath.Join(root, s) }
		testutil.SameInode(t, 3, "three", q("a2/f"), q("b/g2"), q("b/g3"))
		testutil.SameInode(t, 2, "part1 part2 part3", q("w"), q("b/w2"))
		testutil.SameInode(t, 1, "other", q("top"))
		buf := make([]byte, 64)
		if n, err := unix.Getxattr(q("b/g3"), "user.linked", buf); err != nil || string(buf[:n]) != "shared" {
			t.Errorf("b/g3: user.linked set through a2/f reads %q, %v", buf[:max(n, 0)], err)
		}
	}
	check(dir)

	// A mount of the snapshot on a fresh cache: one inode per link group.
	r2, err := env.Reopen(t, t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	tr2, err := worktree.Open(context.Background(), r2, worktree.Options{Dir: t.TempDir(), ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	dir2 := mountTree(t, tr2)
	check(dir2)
	if got := r2.Latest().Files; got != 6 {
		t.Errorf("the snapshot counts %d files (names), want 6", got)
	}
}

// TestDirNlink: a directory's nlink is 2 + its subdirectories, as on ext4,
// through mkdir, rmdir and rename, and on a fresh mount of the snapshot
// once a folder is listed (1, "not known", before).
func TestDirNlink(t *testing.T) {
	dir, tr, env := mount(t)
	p := func(s string) string { return filepath.Join(dir, s) }
	for _, d := range []string{"d", "d/x", "d/y", "d/z", "e"} {
		if err := os.Mkdir(p(d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(p("d/file"), nil, 0o644)
	// The kernel may keep a "not known" 1 a moment (a clock tick) after
	// the folder is loaded: each is asked again for up to two seconds.
	nlinks := func(root string, want map[string]uint64) {
		t.Helper()
		for d, n := range want {
			st := lstat(t, filepath.Join(root, d))
			for deadline := time.Now().Add(2 * time.Second); st.Nlink != n && n != 1 && time.Now().Before(deadline); {
				time.Sleep(20 * time.Millisecond)
				st = lstat(t, filepath.Join(root, d))
			}
			if st.Nlink != n {
				t.Errorf("%s: nlink %d, want %d", d, st.Nlink, n)
			}
		}
	}
	nlinks(dir, map[string]uint64{".": 4, "d": 5, "d/x": 2, "e": 2})
	if err := os.Remove(p("d/x")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(p("d/y"), p("e/y")); err != nil {
		t.Fatal(err)
	}
	nlinks(dir, map[string]uint64{".": 4, "d": 3, "e": 3})
	// A directory renamed over an empty one: one subdirectory fewer here.
	if err := syscall.Rename(p("e/y"), p("d/z")); err != nil {
		t.Fatal(err)
	}
	nlinks(dir, map[string]uint64{".": 4, "d": 3, "e": 2})
	commitAll(t, tr)

	r2, err := env.Reopen(t, t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	tr2, err := worktree.Open(context.Background(), r2, worktree.Options{Dir: t.TempDir(), ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	dir2 := mountTree(t, tr2)
	// Stat never waits on the remote: a folder whose tree is not fetched
	// yet says 1, "not known" (as find(1) reads it, and as btrfs says of
	// every folder); once listed, 2 + its subdirectories.
	nlinks(dir2, map[string]uint64{"d": 1, "e": 1})
	for _, d := range []string{"d", "e", "d/z"} {
		if _, err := os.ReadDir(filepath.Join(dir2, d)); err != nil {
			t.Fatal(err)
		}
	}
	nlinks(dir2, map[string]uint64{".": 4, "d": 3, "d/z": 2, "e": 2})
	if b, err := os.ReadDir(dir2); err != nil || len(b) != 2 {
		t.Errorf("root lists %d entries, %v", len(b), err)
	}
}
