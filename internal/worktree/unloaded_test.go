package worktree_test

import (
	"bytes"
	"testing"

	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/internal/worktree"
	"github.com/sealfs/sealfs/repo"
)

// storedTree commits a folder with a file and a file at the root, and
// returns a second client on a fresh cache holding the writer lease: a
// mount on a new machine, which has loaded nothing yet.
func storedTree(t *testing.T) (*repo.Repository, *testutil.Env) {
	t.Helper()
	env := testutil.NewRepo(t, repo.InitOptions{})
	tr := open(t, env.Repo, t.TempDir())
	writeFile(t, tr, mkdir(t, tr, tr.Root(), "d"), "f", []byte("inside"), true)
	writeFile(t, tr, tr.Root(), "top", []byte("at the root"), true)
	commitAndLeave(t, env.Repo, tr)
	r, _ := otherWriter(t, env)
	return r, env
}

// wantStored checks that the newest snapshot still holds what storedTree
// stored, read by a third client on a fresh cache.
func wantStored(t *testing.T, env *testutil.Env) {
	t.Helper()
	r, err := env.Reopen(t, t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	tr := open(t, r, t.TempDir())
	if got := readFile(t, tr, "d", "f"); !bytes.Equal(got, []byte("inside")) {
		t.Fatalf("d/f = %q", got)
	}
	if got := readFile(t, tr, "top"); !bytes.Equal(got, []byte("at the root")) {
		t.Fatalf("top = %q", got)
	}
}

// TestCommitUnloadedRootAfterReplay: a mount on a fresh cache that is
// stopped before anything was listed leaves an empty journal; the next
// mount on that cache replays it, and its commit must keep the stored
// tree. It committed an empty root: every file gone from the newest
// snapshot (found by mounting, unmounting and mounting again).
func TestCommitUnloadedRootAfterReplay(t *testing.T) {
	r, env := storedTree(t)
	work := t.TempDir()
	if err := open(t, r, work).Close(); err != nil {
		t.Fatal(err)
	}
	tr := open(t, r, work)
	if _, err := tr.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	wantStored(t, env)
}

// TestCommitUnloadedRootAttrs: changing the root's own attributes (chmod
// of the mount point) before its entries were ever listed must commit
// those attributes over the stored entries, not over an empty folder.
func TestCommitUnloadedRootAttrs(t *testing.T) {
	r, env := storedTree(t)
	tr := open(t, r, t.TempDir())
	mode := uint32(0o700)
	if _, err := tr.SetAttr(tr.Root(), worktree.SetAttr{Mode: &mode}); err != nil {
		t.Fatal(err)
	}
	snap, err := tr.Commit(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if snap == nil || snap.Root == nil || snap.Root.Mode != mode {
		t.Fatalf("the root's mode was not committed: %+v", snap)
	}
	wantStored(t, env)
}
