package worktree

import (
	"bytes"
	"testing"

	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/repo"
)

// TestReloadDropsChangedHeldInode (session 8 review; failed before): an inode still held
// (by the kernel) when its folder was unloaded is put back when the folder
// loads again if its entry is the same; if a rebase changed the entry
// meanwhile, the held inode must leave the namespace (fillDirLocked: "out
// of the namespace"), as a rebase leaves the inodes of a loaded folder
// whose entries it replaces. It stayed with its parent set, in no folder:
// taken for attached, a chmod through it was journaled under the path of
// the new entry, and a write through it staged content no commit stores.
// (The rebase is stood in for by giving the unloaded folder the tree a
// rebase would.)
func TestReloadDropsChangedHeldInode(t *testing.T) {
	ctx := t.Context()
	env := testutil.NewRepo(t, repo.InitOptions{})
	tr, err := Open(ctx, env.Repo, Options{Dir: t.TempDir(), MaxLoaded: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	a, _, err := tr.Create(ctx, tr.root, "a", NewEntry{Type: repo.NodeDir, Mode: 0o755})
	if err != nil {
		t.Fatal(err)
	}
	d, _, err := tr.Create(ctx, a, "d", NewEntry{Type: repo.NodeDir, Mode: 0o755})
	if err != nil {
		t.Fatal(err)
	}
	c, _, err := tr.Create(ctx, d, "f", NewEntry{Type: repo.NodeFile, Mode: 0o644})
	if err != nil {
		t.Fatal(err)
	}
	h, err := tr.OpenFile(c, true, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.WriteAt([]byte("ours"), 0); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// The entry as another writer changed it: other content, other mode.
	other, size, err := env.Repo.SaveFile(ctx, bytes.NewReader([]byte("theirs!")))
	if err != nil {
		t.Fatal(err)
	}
	tr.mu.Lock()
	n := c.meta
	n.Name, n.Content, n.Size, n.Mode = []byte("f"), other, size, 0o640
	tr.mu.Unlock()
	id, err := env.Repo.SaveTree(ctx, &repo.Tree{Nodes: []*repo.Node{&n}})
	if err != nil {
		t.Fatal(err)
	}
	tr.mu.Lock()
	if tr.unloadLocked(d) == 0 {
		tr.mu.Unlock()
		t.Fatal("the folder did not unload")
	}
	d.meta.Subtree = id // what a rebase does to an unloaded folder it changes
	tr.mu.Unlock()
	// The kernel still holds c: a chmod through it loads the folder.
	m := uint32(0o600)
	_, err = tr.SetAttr(c, SetAttr{Mode: &m})
	now, _, lerr := tr.Lookup(ctx, d, "f")
	if lerr != nil {
		t.Fatal(lerr)
	}
	if now == c {
		t.Fatal("the held inode was put back although its entry changed")
	}
	tr.mu.Lock()
	parent, inFolder := c.parent, d.children["f"] == c
	tr.mu.Unlock()
	if parent != nil && !inFolder {
		t.Fatalf("the held inode of a changed entry is in no folder but still has one (chmod through it: %v)", err)
	}
	if got := tr.Attr(now).Mode & 0o7777; got != 0o640 {
		t.Errorf("the new entry's mode is %o, want the rebase's 0640", got)
	}
}

// TestReloadDroppedFolderHeldBelow (session 8 review; failed before): a file held (by the
// kernel) two folders down from a folder a rebase replaced while both were
// unloaded is out of the namespace; a chmod through it must not be
// journaled under a path it does not have. Its folder, dropped, had no
// parent, so its path was its bare name: replayed after a crash, the chmod
// landed on /f, another file.
func TestReloadDroppedFolderHeldBelow(t *testing.T) {
	ctx := t.Context()
	env := testutil.NewRepo(t, repo.InitOptions{})
	dir := t.TempDir()
	tr, err := Open(ctx, env.Repo, Options{Dir: dir, MaxLoaded: -1})
	if err != nil {
		t.Fatal(err)
	}
	mk := func(parent *Inode, name string, typ repo.NodeType) *Inode {
		in, _, err := tr.Create(ctx, parent, name, NewEntry{Type: typ, Mode: 0o755})
		if err != nil {
			t.Fatal(err)
		}
		return in
	}
	mk(tr.root, "f", repo.NodeFile) // the victim: /f
	a := mk(tr.root, "a", repo.NodeDir)
	d := mk(a, "d", repo.NodeDir)
	e := mk(d, "e", repo.NodeDir)
	f := mk(e, "f", repo.NodeFile)
	if _, err := tr.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// d as a rebase changed it: e now another folder (empty, other mode).
	tr.mu.Lock()
	n := e.meta
	tr.mu.Unlock()
	empty, err := env.Repo.SaveTree(ctx, &repo.Tree{})
	if err != nil {
		t.Fatal(err)
	}
	n.Name, n.Subtree, n.Mode = []byte("e"), empty, 0o700
	id, err := env.Repo.SaveTree(ctx, &repo.Tree{Nodes: []*repo.Node{&n}})
	if err != nil {
		t.Fatal(err)
	}
	tr.mu.Lock()
	if tr.unloadLocked(e) == 0 || tr.unloadLocked(d) == 0 {
		tr.mu.Unlock()
		t.Fatal("the folders did not unload")
	}
	d.meta.Subtree = id
	tr.mu.Unlock()
	m := uint32(0o600)
	tr.SetAttr(f, SetAttr{Mode: &m}) // through the held node; may fail
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	// A crash here: the next open replays the journal.
	tr2, err := Open(ctx, env.Repo, Options{Dir: dir, MaxLoaded: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer tr2.Close()
	victim, _, err := tr2.Lookup(ctx, tr2.root, "f")
	if err != nil {
		t.Fatal(err)
	}
	if got := tr2.Attr(victim).Mode & 0o7777; got != 0o755 {
		t.Fatalf("/f has mode %o after the replay, not 0755: a chmod of a/d/e/f, out of the namespace, landed on it", got)
	}
}
