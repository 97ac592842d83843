package worktree_test

import (
	"context"
	"testing"

	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/internal/worktree"
	"github.com/sealfs/sealfs/repo"
)

// TestRootAttrsCommitAndRebase: the root directory's own mode, owner and
// xattrs are committed with the snapshot and read back by a fresh client.
// A tree started offline on an older snapshot takes the root attributes
// another writer committed meanwhile when it left its own alone (it only
// changed entries below the root), and keeps its own when it changed
// them, as a directory's attributes merge (SPEC §12.3).
func TestRootAttrsCommitAndRebase(t *testing.T) {
	ctx := context.Background()
	for _, oursChanged := range []bool{false, true} {
		env := testutil.NewRepo(t, repo.InitOptions{})
		trA := open(t, env.Repo, t.TempDir())
		d := mkdir(t, trA, trA.Root(), "d")
		commitAndLeave(t, env.Repo, trA) // A goes offline
		rB, trB := otherWriter(t, env)
		mode, uid := uint32(0o700), uint32(1234)
		if _, err := trB.SetAttr(trB.Root(), worktree.SetAttr{Mode: &mode, UID: &uid}); err != nil {
			t.Fatal(err)
		}
		if err := trB.SetXattr(trB.Root(), "user.who", []byte("theirs"), 0); err != nil {
			t.Fatal(err)
		}
		commitAndLeave(t, rB, trB)
		// A, offline, changes an entry below the root, and maybe the root.
		writeFile(t, trA, d, "f", []byte("ours"), true)
		want, wantXattr := uint32(0o700), "theirs"
		if oursChanged {
			want, wantXattr = 0o750, "ours"
			if _, err := trA.SetAttr(trA.Root(), worktree.SetAttr{Mode: &want}); err != nil {
				t.Fatal(err)
			}
			if err := trA.SetXattr(trA.Root(), "user.who", []byte("ours"), 0); err != nil {
				t.Fatal(err)
			}
		}
		if err := env.Repo.Lock(ctx, false); err != nil {
			t.Fatal(err)
		}
		if snap, err := trA.Commit(ctx); err != nil || snap == nil || snap.Seq != 3 {
			t.Fatalf("commit after the rebase: %v, %v", snap, err)
		}
		r3, err := env.Reopen(t, t.TempDir(), false)
		if err != nil {
			t.Fatal(err)
		}
		tr3 := open(t, r3, t.TempDir())
		a := tr3.Attr(tr3.Root())
		v, err := tr3.GetXattr(tr3.Root(), "user.who")
		if a.Mode != want || string(v) != wantXattr || err != nil {
			t.Errorf("ours changed %v: the root has mode %o, user.who %q (%v); want %o, %q", oursChanged, a.Mode, v, err, want, wantXattr)
		}
		if !oursChanged && a.UID != 1234 {
			t.Errorf("the root's owner is %d, theirs 1234", a.UID)
		}
		if got := readFile(t, tr3, "d", "f"); string(got) != "ours" {
			t.Errorf("d/f = %q", got)
		}
	}
}

// TestRootAttrsTwoCrashes: the root's mode and xattrs survive two crashes
// in a row: the first replay writes the replayed state as one journal,
// which must hold the root's attributes too (it held only the entries).
func TestRootAttrsTwoCrashes(t *testing.T) {
	env := testutil.NewRepo(t, repo.InitOptions{})
	work := t.TempDir()
	tr := open(t, env.Repo, work)
	mode := uint32(0o700)
	if _, err := tr.SetAttr(tr.Root(), worktree.SetAttr{Mode: &mode}); err != nil {
		t.Fatal(err)
	}
	if err := tr.SetXattr(tr.Root(), "user.r", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	for crash := 1; crash <= 2; crash++ {
		tr = open(t, env.Repo, work) // the last one never closed: a crash
		v, err := tr.GetXattr(tr.Root(), "user.r")
		if a := tr.Attr(tr.Root()); a.Mode != mode || string(v) != "v" || err != nil {
			t.Errorf("after crash %d: the root has mode %o, user.r %q (%v)", crash, a.Mode, v, err)
		}
	}
}
