package fusefs

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/internal/worktree"
	"github.com/sealfs/sealfs/repo"
)

// TestSnapshotsListingIsLazy: `ls -l .snapshots` (a listing, then a stat
// of each folder) reads nothing from the remote and opens no snapshot's
// tree; browsing one opens that one only.
func TestSnapshotsListingIsLazy(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root here")
	}
	env := testutil.NewRepo(t, repo.InitOptions{})
	tr, err := worktree.Open(context.Background(), env.Repo, worktree.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "b", "c"} {
		if _, _, err := tr.Create(t.Context(), tr.Root(), name, worktree.NewEntry{Type: repo.NodeDir, Mode: 0o755}); err != nil {
			t.Fatal(err)
		}
		if _, err := tr.Commit(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	f := New(tr, Options{SnapshotsDir: ".snapshots"})
	dir := mountFS(t, f)
	view := filepath.Join(dir, ".snapshots")
	before := env.Remote.Stats()
	es, err := os.ReadDir(view)
	snaps, serr := env.Repo.Snapshots(context.Background())
	if serr != nil {
		t.Fatal(serr)
	}
	if err != nil || len(es) != len(snaps)+1 {
		t.Fatalf("ls .snapshots: %d entries, %v", len(es), err)
	}
	for _, e := range es {
		if _, err := os.Lstat(filepath.Join(view, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	if after := env.Remote.Stats(); after.Gets != before.Gets || after.Lists != before.Lists {
		t.Fatalf("ls -l .snapshots made %d gets and %d lists", after.Gets-before.Gets, after.Lists-before.Lists)
	}
	if n := f.view.opened(); n != 0 {
		t.Fatalf("ls -l .snapshots opened %d snapshots' trees", n)
	}
	if _, err := os.ReadDir(filepath.Join(view, "latest")); err != nil {
		t.Fatal(err)
	}
	if n := f.view.opened(); n != 1 {
		t.Fatalf("browsing one snapshot opened %d trees", n)
	}
}
