package repo_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/repo"
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

// TestDeletedHeadBesideForkIsRollback: two snapshots share the newest
// number (a fork at the top); a client that saw the newest of them (the
// later) refuses a remote on which the storage deleted it, so that the
// other, older one became the newest with the same number: a rollback
// (ErrRollback), which the number alone does not show. The client's
// local state remembers the newest snapshot's id (SPEC §9).
func TestDeletedHeadBesideForkIsRollback(t *testing.T) {
	ctx := context.Background()
	env := chainEnv(t, 1)
	if err := env.Repo.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	fork := copyRemote(t, env.Dir)
	r := lockedReopen(t, env)
	ours := storeFile(t, r, "ours", []byte("ours 2"))
	if err := r.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	forkEnv := *env
	forkEnv.Dir = fork
	fr := lockedReopen(t, &forkEnv)
	theirs := storeFile(t, fr, "theirs", []byte("theirs 2")) // later: the newest
	_ = fr.Unlock(ctx)
	testutil.CopyMissing(t, fork, env.Dir)

	cache := t.TempDir()
	seen, err := env.Reopen(t, cache, false)
	if err != nil {
		t.Fatal(err)
	}
	if l := seen.Latest(); l.ID != theirs.ID {
		t.Fatalf("newest %s, want theirs %s (ours %s)", l.ID.Short(), theirs.ID.Short(), ours.ID.Short())
	}
	matches, _ := filepath.Glob(filepath.Join(env.Dir, "snapshots", "*"+theirs.ID.String()))
	if len(matches) != 1 {
		t.Fatalf("theirs is stored as %v", matches)
	}
	if err := os.Remove(matches[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Reopen(t, cache, false); !errors.Is(err, repo.ErrRollback) {
		t.Fatalf("the newest deleted beside a fork of its number: %v; want ErrRollback", err)
	}
	if r, err := env.Reopen(t, cache, true); err != nil || r.Latest().ID != ours.ID {
		t.Fatalf("with --accept-rollback: %v", err)
	}
}
