package repo_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/repo"
)

// TestColdMisclassifiedPruned (review): a folder removed (its tree goes
// cold) and put back the same is reached by the newest root through a tree
// only a cold object lists. Every older snapshot forgotten, then a prune
// that rewrites nothing, then one that rewrites every index, then more
// commits that move trees cold again: a fresh open still reads the folder,
// and check --read-data is clean after each step.
func TestColdMisclassifiedPruned(t *testing.T) {
	for _, pct := range []int{100, 0} {
		env := testutil.NewRepo(t, repo.InitOptions{})
		ctx := context.Background()
		r := env.Repo
		data := randomData(7, 40_000)
		h := newFolderPutBack(t, r, data, 900)
		sub, commitRoot := h.sub, h.commit
		verify := func(step string) {
			t.Helper()
			fresh, err := env.Reopen(t, t.TempDir(), false)
			if err != nil {
				t.Fatal(err)
			}
			rep, err := fresh.Check(ctx, repo.CheckOptions{ReadData: true})
			if err != nil || !rep.OK() {
				t.Fatalf("pct %d, %s: check: %v %v", pct, step, err, rep.Problems)
			}
			root, err := fresh.LoadTree(ctx, fresh.Latest().Tree)
			if err != nil {
				t.Fatalf("pct %d, %s: %v", pct, step, err)
			}
			x, err := fresh.LoadTree(ctx, root.Find([]byte("x")).Subtree)
			if err != nil {
				t.Fatalf("pct %d, %s: the put-back folder: %v", pct, step, err)
			}
			var buf bytes.Buffer
			if _, err := fresh.OpenFile(x.Find([]byte("file"))).CopyTo(ctx, &buf); err != nil || !bytes.Equal(buf.Bytes(), data) {
				t.Fatalf("pct %d, %s: x/file reads %d bytes, %v", pct, step, buf.Len(), err)
			}
		}
		if fresh, err := env.Reopen(t, t.TempDir(), false); err != nil {
			t.Fatal(err)
		} else if _, ok := fresh.Index().Lookup(sub); ok {
			t.Fatal("precondition: the folder's tree is in the main index objects")
		}
		verify("before")
		var forget []crypt.ID
		snaps := snapshots(t, r)
		for _, s := range snaps[:len(snaps)-1] {
			forget = append(forget, s.ID)
		}
		if err := r.Forget(ctx, forget); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Prune(ctx, repo.PruneOptions{MaxUnusedPct: pct}); err != nil {
			t.Fatal(err)
		}
		verify("after forget and prune")
		// The folder stays while newer commits move trees cold again.
		for i := 21; i < 45; i++ {
			commitRoot(i, true)
		}
		verify("after more commits")
		snaps = snapshots(t, r)
		forget = forget[:0]
		for _, s := range snaps[:len(snaps)-1] {
			forget = append(forget, s.ID)
		}
		if err := r.Forget(ctx, forget); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Prune(ctx, repo.PruneOptions{MaxUnusedPct: pct}); err != nil {
			t.Fatal(err)
		}
		verify("after a second prune")
	}
}
