package worktree_test

import (
	"context"
	"errors"
	"syscall"
	"testing"

	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/internal/worktree"
	"github.com/sealfs/sealfs/repo"
)

// TestOpenSnapshot: a Tree opened on an old snapshot shows it as it was,
// read-only, while the live tree has moved on; opening it reads nothing;
// Trees sharing one Inos never share an inode number.
func TestOpenSnapshot(t *testing.T) {
	ctx := context.Background()
	env := testutil.NewRepo(t, repo.InitOptions{})
	live := open(t, env.Repo, t.TempDir())
	writeFile(t, live, live.Root(), "a", []byte("one"), true)
	old, err := live.Commit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, live, live.Root(), "b", []byte("two"), true)
	if err := live.Unlink(ctx, live.Root(), "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := live.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := worktree.Open(ctx, env.Repo, worktree.Options{Snapshot: old}); err == nil {
		t.Fatal("an old snapshot opened for writing")
	}
	// Opening reads nothing from the remote.
	rootIno := live.Inos().Next()
	before := env.Remote.Stats()
	tr, err := worktree.Open(ctx, env.Repo, worktree.Options{ReadOnly: true, Snapshot: old, Inos: live.Inos(), RootIno: rootIno})
	if err != nil {
		t.Fatal(err)
	}
	if after := env.Remote.Stats(); after.Gets != before.Gets || after.Lists != before.Lists {
		t.Fatalf("opening an old snapshot made %d gets and %d lists", after.Gets-before.Gets, after.Lists-before.Lists)
	}
	if got, want := tr.Attr(tr.Root()), worktree.SnapshotRootAttr(old, rootIno); got != want {
		t.Fatalf("root attributes %+v, SnapshotRootAttr says %+v", got, want)
	}
	if got := readFile(t, tr, "a"); string(got) != "one" {
		t.Fatalf("old a = %q", got)
	}
	if _, _, err := tr.Lookup(ctx, tr.Root(), "b"); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("b in the old snapshot: %v", err)
	}
	if _, _, err := tr.Create(ctx, tr.Root(), "c", worktree.NewEntry{Type: repo.NodeFile}); !errors.Is(err, syscall.EROFS) {
		t.Fatalf("create in the old snapshot: %v", err)
	}
	oldA, _, _ := tr.Lookup(ctx, tr.Root(), "a")
	liveB, _, _ := live.Lookup(ctx, live.Root(), "b")
	seen := map[uint64]bool{}
	for _, ino := range []uint64{live.Attr(live.Root()).Ino, tr.Attr(tr.Root()).Ino, tr.Attr(oldA).Ino, live.Attr(liveB).Ino} {
		if seen[ino] {
			t.Fatalf("inode number %d given twice", ino)
		}
		seen[ino] = true
	}
}
