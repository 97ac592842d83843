package repo_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/repo/format"
)

// TestDeletedSnapshotBesideForgottenFork: a storage attacker deletes a
// main-line snapshot whose number a forgotten fork also held. The forget
// record still holds that number, so only the parent of the snapshot
// above says one is missing: an open must read it (before, it was left a
// stub and the deletion went unnoticed until a check).
func TestDeletedSnapshotBesideForgottenFork(t *testing.T) {
	ctx := context.Background()
	f := newForkRepo(t)
	r, err := f.env.Reopen(t, t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Lock(ctx, false); err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		storeFile(t, r, "ours", randomData(uint64(70+i), 300))
	}
	theirs := filepath.Join(f.env.Dir, format.SnapshotSeqName(f.theirs.Seq, f.theirs.ID))
	kept, err := os.ReadFile(theirs)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Forget(ctx, []crypt.ID{f.theirs.ID}); err != nil {
		t.Fatal(err)
	}
	if err := r.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := f.env.Reopen(t, t.TempDir(), false); err != nil {
		t.Fatalf("open before the delete: %v", err)
	}
	if err := os.Remove(filepath.Join(f.env.Dir, format.SnapshotSeqName(f.ours2.Seq, f.ours2.ID))); err != nil {
		t.Fatal(err)
	}
	for _, cache := range []string{f.env.CacheDir, t.TempDir()} {
		_, err := f.env.Reopen(t, cache, false)
		expectIntegrity(t, "main-line snapshot 2 deleted beside a forgotten fork", err, "is missing")
	}
	// The same with the forgotten fork put back (as a forget cut short
	// before its delete leaves it).
	if err := os.WriteFile(theirs, kept, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, cache := range []string{f.env.CacheDir, t.TempDir()} {
		_, err := f.env.Reopen(t, cache, false)
		expectIntegrity(t, "main-line snapshot 2 deleted beside a forgotten fork still there", err, "is missing")
	}
}
