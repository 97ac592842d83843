package worktree_test

import (
	"context"
	"syscall"
	"testing"

	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/internal/unlock"
	"github.com/sealfs/sealfs/internal/worktree"
	"github.com/sealfs/sealfs/repo"
)

// TestStatNeverFetches: looking up a folder and asking its attributes
// never fetch its tree from the remote (a stat must not wait on it: an
// `ls -l` would fetch every subfolder, a hung remote would hang every
// stat); its nlink is 1, "not known", until something inside it is looked
// up or listed, and then 2 + its subdirectories.
func TestStatNeverFetches(t *testing.T) {
	ctx := context.Background()
	env := testutil.NewRepo(t, repo.InitOptions{})
	tr := open(t, env.Repo, t.TempDir())
	d, _, err := tr.Create(ctx, tr.Root(), "d", worktree.NewEntry{Type: repo.NodeDir, Mode: 0o755})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"x", "y"} {
		if _, _, err := tr.Create(ctx, d, name, worktree.NewEntry{Type: repo.NodeDir, Mode: 0o755}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tr.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	tr.Close()

	rem := testutil.NewRemote(t, env.Dir)
	r, err := repo.Open(ctx, rem, unlock.WithCode(env.Code), repo.Options{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := worktree.Open(ctx, r, worktree.Options{Dir: t.TempDir(), ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	if _, _, err := fresh.Lookup(ctx, fresh.Root(), "nothing"); err != syscall.ENOENT {
		t.Fatalf("lookup of a missing name: %v", err) // this loads the root
	}
	gets := rem.Stats().Gets
	d2, a, err := fresh.Lookup(ctx, fresh.Root(), "d")
	if err != nil {
		t.Fatal(err)
	}
	if a = fresh.Attr(d2); rem.Stats().Gets != gets {
		t.Fatalf("looking up and stating a folder made %d remote reads", rem.Stats().Gets-gets)
	}
	if a.Nlink != 1 || !a.NlinkUnknown() {
		t.Fatalf("an unloaded folder's nlink is %d (unknown: %v), want 1, not known", a.Nlink, a.NlinkUnknown())
	}
	if _, err := fresh.ReadDir(ctx, d2); err != nil {
		t.Fatal(err)
	}
	if a := fresh.Attr(d2); a.Nlink != 4 || a.NlinkUnknown() {
		t.Fatalf("a listed folder's nlink is %d, want 4", a.Nlink)
	}
}
