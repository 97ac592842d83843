package worktree_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/internal/worktree"
	"github.com/sealfs/sealfs/repo"
)

// TestUnloadHeldFolderRebased (review): a folder held (the kernel's node of
// a shell's working directory) whose folder was unloaded, and whose
// content another writer changed meanwhile, is still that folder once a
// rebase brought the change in: a file made in it lands in the tree, and
// its files read as the other writer left them; as without unloading.
func TestUnloadHeldFolderRebased(t *testing.T) {
	for _, max := range []int{-1, 4} {
		t.Run(fmt.Sprintf("max%d", max), func(t *testing.T) {
			env := testutil.NewRepo(t, repo.InitOptions{})
			tr, err := worktree.Open(context.Background(), env.Repo, worktree.Options{Dir: t.TempDir(), MaxLoaded: max})
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			d := mkdir(t, tr, mkdir(t, tr, tr.Root(), "p"), "d")
			writeFile(t, tr, d, "f", []byte("ours"), true)
			// Held from here on, as the kernel holds a working directory.
			held := lookup(t, tr, "p", "d")
			if held != d {
				t.Fatal("not the same inode")
			}
			for i := range 8 {
				o := mkdir(t, tr, tr.Root(), fmt.Sprintf("o%d", i))
				for j := range 3 {
					writeFile(t, tr, o, fmt.Sprintf("f%d", j), []byte("x"), true)
				}
			}
			commitAndLeave(t, env.Repo, tr)
			if max > 0 && (tr.LoadedChildren(lookup(t, tr, "p")) || tr.LoadedChildren(held)) {
				t.Fatal("p and p/d still loaded: the test unloads nothing")
			}

			r2, other := otherWriter(t, env)
			overwrite(t, other, "theirs", true, "p", "d", "f")
			commitAndLeave(t, r2, other)
			other.Close()

			comeBackAndCommit(t, env.Repo, tr)
			if _, _, err := tr.Create(t.Context(), held, "new", worktree.NewEntry{Type: repo.NodeFile, Mode: 0o644}); err != nil {
				t.Fatalf("create in the held folder: %v", err)
			}
			in, _, err := tr.Lookup(t.Context(), held, "f")
			if err != nil {
				t.Fatal(err)
			}
			if got := tr.Attr(in).Size; got != uint64(len("theirs")) {
				t.Errorf("p/d/f through the held folder: size %d, want %d (theirs)", got, len("theirs"))
			}
			if got := string(readFile(t, tr, "p", "d", "f")); got != "theirs" {
				t.Errorf("p/d/f = %q, want theirs", got)
			}
			if _, err := tr.Commit(t.Context()); err != nil {
				t.Fatal(err)
			}
			lookup(t, tr, "p", "d", "new")
		})
	}
}

// TestUnloadHeldChangesCrash (review): with a bound of 1 loaded entry,
// changes made through inodes held (the kernel's nodes) whose folders
// commits unloaded meanwhile (chmod, utimes, xattr, truncate, overwrite,
// append, rename to another folder, unlink, create in a held folder) are
// all there after a crash (a second tree on the same work folder, the
// journal replayed) and, once committed, from a fresh cache.
func TestUnloadHeldChangesCrash(t *testing.T) {
	ctx := t.Context()
	env := testutil.NewRepo(t, repo.InitOptions{})
	work := t.TempDir()
	openMax := func(r *repo.Repository, dir string) *worktree.Tree { return openMaxLoaded1(t, r, dir) }
	tr := openMax(env.Repo, work)
	for a := range 3 {
		top := mkdir(t, tr, tr.Root(), fmt.Sprintf("t%d", a))
		for d := range 3 {
			sub := mkdir(t, tr, top, fmt.Sprintf("d%d", d))
			for f := range 3 {
				writeFile(t, tr, sub, fmt.Sprintf("f%d", f), []byte(fmt.Sprintf("t%d/d%d/f%d", a, d, f)), true)
			}
		}
	}
	if _, err := tr.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	held := map[string]*worktree.Inode{}
	for _, p := range []string{"t0/d0/f0", "t0/d1/f1", "t1/d0/f2", "t1/d2/f0", "t2/d1/f1", "t2/d2/f2", "t0/d2"} {
		held[p] = lookup(t, tr, strings.Split(p, "/")...)
	}
	// Commits and walks unload the folders (a bound of 1).
	for range 2 {
		if _, err := tr.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		for a := range 3 {
			for d := range 3 {
				lookup(t, tr, fmt.Sprintf("t%d", a), fmt.Sprintf("d%d", d), "f0")
			}
		}
	}
	for _, top := range []string{"t0", "t1"} {
		if tr.LoadedChildren(lookup(t, tr, top)) {
			t.Fatalf("%s still loaded: its held inodes are not detached", top)
		}
	}
	mode := uint32(0o600)
	mtime := int64(1_000_000_000_123)
	if _, err := tr.SetAttr(held["t0/d0/f0"], worktree.SetAttr{Mode: &mode, MtimeNs: &mtime}); err != nil {
		t.Fatal(err)
	}
	if err := tr.SetXattr(held["t0/d1/f1"], "user.review", []byte("x"), 0); err != nil {
		t.Fatal(err)
	}
	size := uint64(3)
	if _, err := tr.SetAttr(held["t1/d0/f2"], worktree.SetAttr{Size: &size}); err != nil {
		t.Fatal(err)
	}
	h, err := tr.OpenFile(held["t1/d2/f0"], true, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.WriteAt([]byte("rewritten"), 0); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	h, err = tr.OpenFile(held["t2/d1/f1"], true, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.WriteAt([]byte("+tail"), int64(len("t2/d1/f1"))); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if err := tr.Rename(ctx, lookup(t, tr, "t2", "d2"), "f2", lookup(t, tr, "t0", "d0"), "moved", 0); err != nil {
		t.Fatal(err)
	}
	if err := tr.Unlink(ctx, lookup(t, tr, "t2", "d0"), "f0"); err != nil {
		t.Fatal(err)
	}
	writeFile(t, tr, held["t0/d2"], "new", []byte("new in held"), true)

	verify := func(what string, tr *worktree.Tree) {
		t.Helper()
		for p, want := range map[string]string{
			"t0/d0/f0": "t0/d0/f0", "t1/d0/f2": "t1/", "t1/d2/f0": "rewritten", "t2/d1/f1": "t2/d1/f1+tail",
			"t0/d0/moved": "t2/d2/f2", "t0/d2/new": "new in held", "t0/d1/f1": "t0/d1/f1",
		} {
			if got := string(readFile(t, tr, strings.Split(p, "/")...)); got != want {
				t.Errorf("%s: %s = %q, want %q", what, p, got, want)
			}
		}
		a := tr.Attr(lookup(t, tr, "t0", "d0", "f0"))
		if a.Mode&0o7777 != 0o600 || a.MtimeNs != mtime {
			t.Errorf("%s: t0/d0/f0 mode %o mtime %d", what, a.Mode, a.MtimeNs)
		}
		if v, err := tr.GetXattr(lookup(t, tr, "t0", "d1", "f1"), "user.review"); err != nil || string(v) != "x" {
			t.Errorf("%s: xattr %q, %v", what, v, err)
		}
		for _, p := range [][]string{{"t2", "d2", "f2"}, {"t2", "d0", "f0"}} {
			if _, _, err := tr.Lookup(ctx, lookup(t, tr, p[0], p[1]), p[2]); !errors.Is(err, syscall.ENOENT) {
				t.Errorf("%s: %s: %v, want ENOENT", what, strings.Join(p, "/"), err)
			}
		}
	}
	verify("before the crash", tr)
	tr2 := openMax(env.Repo, work) // tr "crashed": never closed
	verify("after the crash", tr2)
	if _, err := tr2.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	tr2.Close()
	r3, err := env.Reopen(t, t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	tr3 := openMax(r3, t.TempDir())
	defer tr3.Close()
	verify("fresh cache", tr3)
}

// TestUnloadHeldLinked (review): a file held while commits unloaded its
// folder is given a second name in another folder; written through that
// name, both names read the new content (one inode), before and after a
// crash, and from a fresh cache once committed.
func TestUnloadHeldLinked(t *testing.T) {
	ctx := t.Context()
	env := testutil.NewRepo(t, repo.InitOptions{})
	work := t.TempDir()
	openMax := func(r *repo.Repository, dir string) *worktree.Tree { return openMaxLoaded1(t, r, dir) }
	tr := openMax(env.Repo, work)
	for a := range 3 {
		top := mkdir(t, tr, tr.Root(), fmt.Sprintf("t%d", a))
		for d := range 3 {
			sub := mkdir(t, tr, top, fmt.Sprintf("d%d", d))
			writeFile(t, tr, sub, "f", []byte(fmt.Sprintf("t%d/d%d/f", a, d)), true)
		}
	}
	if _, err := tr.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	f := lookup(t, tr, "t0", "d0", "f")
	for range 2 {
		if _, err := tr.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		for a := 1; a < 3; a++ {
			for d := range 3 {
				lookup(t, tr, fmt.Sprintf("t%d", a), fmt.Sprintf("d%d", d), "f")
			}
		}
	}
	if tr.LoadedChildren(lookup(t, tr, "t0")) {
		t.Fatal("t0 still loaded: the held file is not detached")
	}
	if _, err := tr.Link(ctx, f, lookup(t, tr, "t2", "d1"), "L"); err != nil {
		t.Fatal(err)
	}
	overwrite(t, tr, "through L", true, "t2", "d1", "L")
	verify := func(what string, tr *worktree.Tree) {
		t.Helper()
		for _, p := range [][]string{{"t0", "d0", "f"}, {"t2", "d1", "L"}} {
			if got := string(readFile(t, tr, p...)); got != "through L" {
				t.Errorf("%s: %s = %q", what, strings.Join(p, "/"), got)
			}
		}
		a, b := lookup(t, tr, "t0", "d0", "f"), lookup(t, tr, "t2", "d1", "L")
		if a != b || tr.Attr(a).Nlink != 2 {
			t.Errorf("%s: not one inode of 2 links (%v, nlink %d)", what, a == b, tr.Attr(a).Nlink)
		}
	}
	crashThenFresh(t, env, work, tr, verify)
}

// TestUnloadRenamedAboveHeld (review): a folder whose folders below are
// unloaded, with a file held in one of them, is renamed into another
// folder; a chmod and a write through the held file land at its new path,
// before and after a crash, and from a fresh cache once committed.
func TestUnloadRenamedAboveHeld(t *testing.T) {
	ctx := t.Context()
	env := testutil.NewRepo(t, repo.InitOptions{})
	work := t.TempDir()
	openMax := func(r *repo.Repository, dir string) *worktree.Tree { return openMaxLoaded1(t, r, dir) }
	tr := openMax(env.Repo, work)
	for a := range 3 {
		top := mkdir(t, tr, tr.Root(), fmt.Sprintf("t%d", a))
		for d := range 3 {
			sub := mkdir(t, tr, top, fmt.Sprintf("d%d", d))
			writeFile(t, tr, sub, "f", []byte(fmt.Sprintf("t%d/d%d/f", a, d)), true)
		}
	}
	if _, err := tr.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	f := lookup(t, tr, "t0", "d1", "f")
	for range 2 {
		if _, err := tr.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		for a := 1; a < 3; a++ {
			for d := range 3 {
				lookup(t, tr, fmt.Sprintf("t%d", a), fmt.Sprintf("d%d", d), "f")
			}
		}
	}
	if tr.LoadedChildren(lookup(t, tr, "t0")) {
		t.Fatal("t0 still loaded: the held file is not detached")
	}
	if err := tr.Rename(ctx, tr.Root(), "t0", lookup(t, tr, "t2", "d2"), "moved", 0); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := tr.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		lookup(t, tr, "t1", "d0", "f")
		lookup(t, tr, "t1", "d1", "f")
	}
	mode := uint32(0o640)
	if _, err := tr.SetAttr(f, worktree.SetAttr{Mode: &mode}); err != nil {
		t.Fatal(err)
	}
	h, err := tr.OpenFile(f, true, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.WriteAt([]byte("written held"), 0); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	verify := func(what string, tr *worktree.Tree) {
		t.Helper()
		p := []string{"t2", "d2", "moved", "d1", "f"}
		if got := string(readFile(t, tr, p...)); got != "written held" {
			t.Errorf("%s: %s = %q", what, strings.Join(p, "/"), got)
		}
		if m := tr.Attr(lookup(t, tr, p...)).Mode & 0o7777; m != 0o640 {
			t.Errorf("%s: mode %o", what, m)
		}
		if _, _, err := tr.Lookup(ctx, tr.Root(), "t0"); !errors.Is(err, syscall.ENOENT) {
			t.Errorf("%s: t0: %v", what, err)
		}
		if got := string(readFile(t, tr, "t2", "d2", "moved", "d0", "f")); got != "t0/d0/f" {
			t.Errorf("%s: moved/d0/f = %q", what, got)
		}
	}
	crashThenFresh(t, env, work, tr, verify)
}

// TestUnloadHeldExchanged (review): two files held while commits unloaded
// their folders are exchanged across folders (RENAME_EXCHANGE); a chmod
// and a rewrite through each held inode land at its new name, before and
// after a crash, and from a fresh cache once committed.
func TestUnloadHeldExchanged(t *testing.T) {
	ctx := t.Context()
	env := testutil.NewRepo(t, repo.InitOptions{})
	work := t.TempDir()
	openMax := func(r *repo.Repository, dir string) *worktree.Tree { return openMaxLoaded1(t, r, dir) }
	tr := openMax(env.Repo, work)
	for a := range 3 {
		top := mkdir(t, tr, tr.Root(), fmt.Sprintf("t%d", a))
		for d := range 3 {
			sub := mkdir(t, tr, top, fmt.Sprintf("d%d", d))
			writeFile(t, tr, sub, "f", []byte(fmt.Sprintf("t%d/d%d/f", a, d)), true)
		}
	}
	if _, err := tr.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	x, y := lookup(t, tr, "t0", "d0", "f"), lookup(t, tr, "t1", "d1", "f")
	for range 2 {
		if _, err := tr.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		for d := range 3 {
			lookup(t, tr, "t2", fmt.Sprintf("d%d", d), "f")
		}
	}
	for _, top := range []string{"t0", "t1"} {
		if tr.LoadedChildren(lookup(t, tr, top)) {
			t.Fatalf("%s still loaded: the held files are not detached", top)
		}
	}
	if err := tr.Rename(ctx, lookup(t, tr, "t0", "d0"), "f", lookup(t, tr, "t1", "d1"), "f", worktree.RenameExchange); err != nil {
		t.Fatal(err)
	}
	mode := uint32(0o604)
	if _, err := tr.SetAttr(x, worktree.SetAttr{Mode: &mode}); err != nil {
		t.Fatal(err)
	}
	h, err := tr.OpenFile(y, true, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.WriteAt([]byte("y rewritten"), 0); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	verify := func(what string, tr *worktree.Tree) {
		t.Helper()
		if got := string(readFile(t, tr, "t1", "d1", "f")); got != "t0/d0/f" {
			t.Errorf("%s: t1/d1/f = %q", what, got)
		}
		if m := tr.Attr(lookup(t, tr, "t1", "d1", "f")).Mode & 0o7777; m != 0o604 {
			t.Errorf("%s: t1/d1/f mode %o", what, m)
		}
		if got := string(readFile(t, tr, "t0", "d0", "f")); got != "y rewritten" {
			t.Errorf("%s: t0/d0/f = %q", what, got)
		}
	}
	crashThenFresh(t, env, work, tr, verify)
}

// openMaxLoaded1 opens a tree over r in dir that unloads every folder it
// can (a bound of one loaded entry).
func openMaxLoaded1(t *testing.T, r *repo.Repository, dir string) *worktree.Tree {
	t.Helper()
	tr, err := worktree.Open(context.Background(), r, worktree.Options{Dir: dir, MaxLoaded: 1})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// crashThenFresh checks tr with verify, then as after a crash (tr never
// closed: a new tree on the same cache dir work replays its journal), then,
// once that tree committed, on a fresh cache.
func crashThenFresh(t *testing.T, env *testutil.Env, work string, tr *worktree.Tree, verify func(string, *worktree.Tree)) {
	t.Helper()
	verify("before the crash", tr)
	tr2 := openMaxLoaded1(t, env.Repo, work)
	verify("after the crash", tr2)
	if _, err := tr2.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	tr2.Close()
	r3, err := env.Reopen(t, t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	tr3 := openMaxLoaded1(t, r3, t.TempDir())
	defer tr3.Close()
	verify("fresh cache", tr3)
}
