package repo_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/repo/format"
)

// TestForgottenForkNotHead: a storage attacker who deletes the newest
// snapshot while a forgotten fork snapshot of a number at the top is
// present (a forget cut short before its delete, or the attacker's own
// copy of the forgotten object put back) must not make that fork the
// newest snapshot: the newest is never forgotten (SPEC §8.1), so a client
// with no local state, which cannot tell a rollback by sequence number,
// still refuses it as an integrity error. Without the check it opened with
// the forgotten fork's old tree as the newest.
func TestForgottenForkNotHead(t *testing.T) {
	ctx := context.Background()
	f := newForkRepo(t) // ours 1, 2, 3; theirs 2, later than ours 2
	r, err := f.env.Reopen(t, t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Lock(ctx, false); err != nil {
		t.Fatal(err)
	}
	theirsPath := filepath.Join(f.env.Dir, format.SnapshotSeqName(f.theirs.Seq, f.theirs.ID))
	saved, err := os.ReadFile(theirsPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Forget(ctx, []crypt.ID{f.theirs.ID}); err != nil {
		t.Fatal(err)
	}
	if err := r.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	// The attacker: the forgotten fork back, the newest snapshot gone.
	if err := os.WriteFile(theirsPath, saved, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(f.env.Dir, format.SnapshotSeqName(f.ours3.Seq, f.ours3.ID))); err != nil {
		t.Fatal(err)
	}
	fresh, err := f.env.Reopen(t, t.TempDir(), false)
	if err == nil {
		t.Fatalf("opened with newest snapshot %d %s (theirs, forgotten: %v)", fresh.Latest().Seq, fresh.Latest().ID.Short(), fresh.Latest().ID == f.theirs.ID)
	}
	expectIntegrity(t, "forgotten fork as the newest", err, "recorded as forgotten")
}
