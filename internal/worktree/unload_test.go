package worktree

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/repo"
)

// loadedEntries counts the entries of the folders loaded, the root's
// among them.
func (t *Tree) loadedEntries() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	var walk func(dir *Inode)
	walk = func(dir *Inode) {
		n += len(dir.children)
		for _, c := range dir.children {
			if c.children != nil {
				walk(c)
			}
		}
	}
	walk(t.root)
	return n
}

// manyFolders commits tops folders tNN of folders folders dNNN of files
// small files fNNNN each, holding their paths.
func manyFolders(t *testing.T, env *testutil.Env, tops, folders, files int) {
	t.Helper()
	ctx := t.Context()
	tr := openTestTree(t, env.Repo)
	defer tr.Close()
	mk := func(dir *Inode, name string, typ repo.NodeType) *Inode {
		in, _, err := tr.Create(ctx, dir, name, NewEntry{Type: typ, Mode: 0o755})
		if err != nil {
			t.Fatal(err)
		}
		return in
	}
	for tn := range tops {
		top := mk(tr.Root(), fmt.Sprintf("t%02d", tn), repo.NodeDir)
		for d := range folders {
			dir := mk(top, fmt.Sprintf("d%03d", d), repo.NodeDir)
			for f := range files {
				in := mk(dir, fmt.Sprintf("f%04d", f), repo.NodeFile)
				writeAll(t, tr, in, fmt.Sprintf("t%02d/d%03d/f%04d", tn, d, f))
			}
		}
	}
	if _, err := tr.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}

func writeAll(t *testing.T, tr *Tree, in *Inode, data string) {
	t.Helper()
	h, err := tr.OpenFile(in, true, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.WriteAt([]byte(data), 0); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestUnloadBounded: walking a tree of 4,000 files with a bound of 500
// loaded entries keeps at most about that many loaded, and every file
// still reads back (a walk of a tree that was written and committed, as
// after a remount: all of it was loaded before).
func TestUnloadBounded(t *testing.T) {
	env := testutil.NewRepo(t, repo.InitOptions{})
	manyFolders(t, env, 1, 40, 100)
	ctx := t.Context()
	tr, err := Open(ctx, env.Repo, Options{Dir: t.TempDir(), MaxLoaded: 500})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	most := 0
	for d := range 40 {
		dir := lookupIn(t, tr, "t00", fmt.Sprintf("d%03d", d))
		entries, err := tr.ReadDir(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 100 {
			t.Fatalf("d%03d lists %d entries, want 100", d, len(entries))
		}
		for _, e := range entries {
			if _, _, err := tr.Lookup(ctx, dir, e.Name); err != nil {
				t.Fatal(err)
			}
		}
		most = max(most, tr.loadedEntries())
	}
	t.Logf("at most %d entries loaded", most)
	if most > 500+100+41 { // the bound, a folder loaded over it, t00 and the root
		t.Fatalf("%d entries loaded with a bound of 500", most)
	}
	for _, d := range []int{0, 17, 39} {
		p := fmt.Sprintf("t00/d%03d/f%04d", d, 42)
		if got := readAll(t, tr, lookupIn(t, tr, "t00", fmt.Sprintf("d%03d", d), "f0042")); got != p {
			t.Errorf("%s reads %q", p, got)
		}
	}
}

// TestUnloadKeepsHeldInodes: an inode held (as the kernel holds what it
// looked up) while its folder is unloaded keeps its number and identity
// when the folder loads again, and a change made through it (chmod,
// xattr, write, link, rename, unlink through a held folder) lands in the
// tree and in the next commit; an inode nobody held comes back as a new
// one.
func TestUnloadKeepsHeldInodes(t *testing.T) {
	env := testutil.NewRepo(t, repo.InitOptions{})
	manyFolders(t, env, 2, 4, 50)
	ctx := t.Context()
	tr, err := Open(ctx, env.Repo, Options{Dir: t.TempDir(), MaxLoaded: 60})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	held := lookupIn(t, tr, "t00", "d000", "f0001")
	heldDir := lookupIn(t, tr, "t00", "d001")
	ino, dirIno := tr.Attr(held).Ino, tr.Attr(heldDir).Ino
	other := lookupIn(t, tr, "t00", "d000", "f0002").Ino
	unload := func() {
		t.Helper()
		for d := range 4 {
			if _, err := tr.ReadDir(ctx, lookupIn(t, tr, "t01", fmt.Sprintf("d%03d", d))); err != nil {
				t.Fatal(err)
			}
		}
		tr.mu.Lock()
		defer tr.mu.Unlock()
		if detachedBelow(held) == nil || detachedBelow(heldDir) == nil {
			t.Fatal("t00 was not unloaded")
		}
	}
	unload()
	runtime.GC() // the inodes nobody holds go
	if in := lookupIn(t, tr, "t00", "d000", "f0001"); in != held || in.Ino != ino {
		t.Fatalf("a held inode came back as another (%d, was %d)", in.Ino, ino)
	}
	if in := lookupIn(t, tr, "t00", "d000", "f0002"); in.Ino == other {
		t.Fatal("an inode nobody held kept its number: the folder was not unloaded")
	}
	steps := []struct {
		name string
		do   func() error
	}{
		{"chmod", func() error { _, err := tr.SetAttr(held, SetAttr{Mode: new(uint32(0o600))}); return err }},
		{"setxattr", func() error { return tr.SetXattr(held, "user.k", []byte("v"), 0) }},
		{"write", func() error {
			h, err := tr.OpenFile(held, true, false)
			if err != nil {
				return err
			}
			if _, err := h.WriteAt([]byte("T000"), 0); err != nil {
				return err
			}
			return h.Close()
		}},
		{"create in held folder", func() error {
			_, _, err := tr.Create(ctx, heldDir, "new", NewEntry{Type: repo.NodeFile, Mode: 0o644})
			return err
		}},
		{"rename in held folder", func() error { return tr.Rename(ctx, heldDir, "f0003", heldDir, "g0003", 0) }},
		{"unlink in held folder", func() error { return tr.Unlink(ctx, heldDir, "f0004") }},
		{"link", func() error { _, err := tr.Link(ctx, held, heldDir, "link"); return err }},
	}
	for _, s := range steps {
		if _, err := tr.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		unload()
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
	}
	if tr.Attr(heldDir).Ino != dirIno || tr.Attr(held).Ino != ino {
		t.Fatal("a held inode changed its number")
	}
	if _, err := tr.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	r, err := env.Reopen(t, t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := Open(ctx, r, Options{Dir: t.TempDir(), ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	f := lookupIn(t, fresh, "t00", "d000", "f0001")
	a := fresh.Attr(f)
	if a.Mode != 0o600 || a.Nlink != 2 {
		t.Errorf("t00/d000/f0001: mode %o nlink %d, want 600 and 2", a.Mode, a.Nlink)
	}
	if v, err := fresh.GetXattr(f, "user.k"); err != nil || string(v) != "v" {
		t.Errorf("t00/d000/f0001's xattr: %q, %v", v, err)
	}
	if got := readAll(t, fresh, lookupIn(t, fresh, "t00", "d001", "link")); got != "T000d000/f0001" {
		t.Errorf("t00/d001/link reads %q", got)
	}
	entries, err := fresh.ReadDir(ctx, lookupIn(t, fresh, "t00", "d001"))
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, e := range entries {
		names[e.Name] = true
	}
	if len(entries) != 51 || !names["new"] || !names["g0003"] || names["f0003"] || names["f0004"] || !names["link"] {
		t.Errorf("t00/d001 holds %d entries (new %v, g0003 %v, f0003 %v, f0004 %v, link %v)", len(entries),
			names["new"], names["g0003"], names["f0003"], names["f0004"], names["link"])
	}
}

// TestUnloadNotWithLinks: a tree holding hard links stays loaded (a
// commit loads it whole to number its link groups: folders unloaded would
// be loaded again at every commit).
func TestUnloadNotWithLinks(t *testing.T) {
	env := testutil.NewRepo(t, repo.InitOptions{})
	manyFolders(t, env, 1, 10, 50)
	ctx := t.Context()
	tr, err := Open(ctx, env.Repo, Options{Dir: t.TempDir(), MaxLoaded: 60})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if _, err := tr.Link(ctx, lookupIn(t, tr, "t00", "d000", "f0000"), lookupIn(t, tr, "t00", "d001"), "link"); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	for d := range 10 {
		if _, err := tr.ReadDir(ctx, lookupIn(t, tr, "t00", fmt.Sprintf("d%03d", d))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tr.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if n := tr.loadedEntries(); n != 1+10+10*50+1 {
		t.Fatalf("%d entries loaded in a tree with a hard link, want all %d", n, 1+10+10*50+1)
	}
}

// TestUnloadForgetsRemovedFolders (review): folders removed (rmdir, or
// dropped by a rebase) leave the list of loaded folders the unloading
// chooses from: each stayed there for the life of the tree, with its
// inode, and was sorted at every trim (an rm -rf of 100,000 folders kept
// 100,000 dead inodes and made every folder load sort them).
func TestUnloadForgetsRemovedFolders(t *testing.T) {
	ctx := t.Context()
	env := testutil.NewRepo(t, repo.InitOptions{})
	tr := openTestTree(t, env.Repo)
	defer tr.Close()
	const n = 300
	for i := range n {
		d, _, err := tr.Create(ctx, tr.root, fmt.Sprintf("d%d", i), NewEntry{Type: repo.NodeDir, Mode: 0o755})
		if err != nil {
			t.Fatal(err)
		}
		in, _, err := tr.Create(ctx, d, "f", NewEntry{Type: repo.NodeFile, Mode: 0o644})
		if err != nil {
			t.Fatal(err)
		}
		writeAll(t, tr, in, "x")
	}
	if _, err := tr.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		d, _, err := tr.Lookup(ctx, tr.root, fmt.Sprintf("d%d", i))
		if err != nil {
			t.Fatal(err)
		}
		if err := tr.Unlink(ctx, d, "f"); err != nil {
			t.Fatal(err)
		}
		if err := tr.Rmdir(ctx, tr.root, fmt.Sprintf("d%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tr.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	tr.mu.Lock()
	left := len(tr.loaded)
	tr.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d folders removed still listed as loaded", left)
	}
}
