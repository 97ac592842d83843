package repo_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/internal/unlock"
	"github.com/sealfs/sealfs/remote"
	"github.com/sealfs/sealfs/repo"
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

// TestConsolidationUnderFaultsAndCrashes: commits through a remote that
// fails a share of its calls (before landing, after, or leaving half an
// object), the writer killed now and then after a failed commit (a new
// process on the same cache goes on, with whatever merges and snapshot the
// old one left unstored): a new client reads every file of every commit
// that succeeded, and check --read-data is clean.
func TestConsolidationUnderFaultsAndCrashes(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "remote")
	fr := testutil.NewRemote(t, dir)
	cache := t.TempDir()
	r, code, err := repo.Init(ctx, fr, repo.InitOptions{Options: repo.Options{CacheDir: cache}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Lock(ctx, false); err != nil {
		t.Fatal(err)
	}
	open := func(cacheDir string, rem remote.Remote) (*repo.Repository, error) {
		return repo.Open(ctx, rem, unlock.WithCode(code), repo.Options{CacheDir: cacheDir})
	}
	h := &history{t: t, r: r, files: map[string][]byte{}}
	seed := uint64(7)
	if s, err := strconv.ParseUint(os.Getenv("REVIEW3_SEED"), 10, 64); err == nil {
		seed = s
	}
	rng := rand.New(rand.NewPCG(seed, seed))
	crashes, failed, prunes := 0, 0, 0
	for i := range 160 {
		fr.SetPartialWrites(rng.IntN(2) == 0)
		fr.SetFailRate(0.08)
		err := h.commit(i)
		fr.SetFailRate(0)
		if err == nil && i%30 == 29 {
			// Right after a commit (and its merge): forget all but
			// the newest two, prune.
			snaps, err := h.r.Snapshots(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var ids []crypt.ID
			for _, s := range snaps[:max(0, len(snaps)-2)] {
				ids = append(ids, s.ID)
			}
			if err := h.r.Forget(ctx, ids); err != nil {
				t.Fatalf("forget: %v", err)
			}
			fr.SetFailRate(0.03 * float64(rng.IntN(2)))
			_, perr := h.r.Prune(ctx, repo.PruneOptions{MaxUnusedPct: -1})
			fr.SetFailRate(0)
			if errors.Is(perr, repo.ErrIntegrity) {
				t.Fatalf("prune after commit %d: %v", i, perr)
			}
			if perr == nil {
				prunes++
			}
		}
		if err == nil {
			continue
		}
		failed++
		if rng.IntN(3) != 0 {
			continue
		}
		// Killed: a new process on the same cache, its own remote.
		crashes++
		fr = testutil.NewRemote(t, dir)
		r2, err := open(cache, fr)
		if err != nil {
			t.Fatalf("reopen after crash %d: %v", crashes, err)
		}
		if err := r2.Lock(ctx, true); err != nil {
			t.Fatalf("lock after crash %d: %v", crashes, err)
		}
		h.r = r2
		// The tree is saved again: blobs the dead process held are
		// not known to this one.
		var nodes []*repo.Node
		for _, n := range h.tree.Nodes {
			content, size, err := r2.SaveFile(ctx, bytes.NewReader(h.files[string(n.Name)]))
			if err != nil {
				t.Fatal(err)
			}
			c := *n
			c.Content, c.Size = content, size
			nodes = append(nodes, &c)
		}
		h.tree = repo.Tree{Nodes: nodes}
	}
	for i := 160; i < 170; i++ {
		if err := h.commit(i); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d commits failed, %d crashes, %d prunes; the newest names %d index objects", failed, crashes, prunes, len(h.r.Latest().Indexes))
	h.verify(func(c string) *repo.Repository {
		r, err := open(c, testutil.NewRemote(t, dir))
		if err != nil {
			t.Fatal(err)
		}
		return r
	})
	_ = h.r.Unlock(ctx)
}

// TestForgetVerifiesStubs: a storage attacker swaps the names of two
// snapshots an open leaves unopened (4 and 5: the listing still holds
// every number). Forgetting one of them by id must not write the number
// its name claims into a sealed forget record (which every client then
// trusts) nor delete anything: Forget opens what it records first.
func TestForgetVerifiesStubs(t *testing.T) {
	ctx := context.Background()
	env, names := longHistory(t, 12)
	obj := func(name string) string { return filepath.Join(env.Dir, name) }
	_, id4, _ := format.ParseSnapshotName(names[4])
	_, id5, _ := format.ParseSnapshotName(names[5])
	if err := os.Rename(obj(names[4]), obj("tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(obj(names[5]), obj(format.SnapshotSeqName(4, id5))); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(obj("tmp"), obj(format.SnapshotSeqName(5, id4))); err != nil {
		t.Fatal(err)
	}
	r, err := env.Reopen(t, t.TempDir(), false)
	if err != nil {
		t.Fatalf("open (the swap is seen when either is opened): %v", err)
	}
	if err := r.Lock(ctx, false); err != nil {
		t.Fatal(err)
	}
	defer r.Unlock(ctx)
	err = r.Forget(ctx, []crypt.ID{id4})
	expectIntegrity(t, "forget of a renamed snapshot", err, "renamed")
	if len(r.Forgotten()) != 0 {
		t.Fatalf("forget records %v", r.Forgotten())
	}
	if _, err := os.Stat(obj(format.SnapshotSeqName(5, id4))); err != nil {
		t.Fatalf("the renamed snapshot was deleted: %v", err)
	}
}

// TestDeletedBesideLateForkSeenWhenOpened: a fork's snapshot lands late
// below the newest (a dead writer's upload), and the storage deletes the
// main line's snapshot of its number: the fork then holds the number
// alone, and only the parent of the main line's snapshot above it says
// so. An open that leaves that one unopened cannot tell; the listing of
// every snapshot opens it and must (before, it listed the fork as the
// main line's snapshot 2 and went on).
func TestDeletedBesideLateForkSeenWhenOpened(t *testing.T) {
	ctx := context.Background()
	env := chainEnv(t, 1)
	if err := env.Repo.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	fork := copyRemote(t, env.Dir)
	r := lockedReopen(t, env)
	ours2 := storeFile(t, r, "ours", []byte("ours 2"))
	for i := range 5 {
		storeFile(t, r, "ours", randomData(uint64(90+i), 300))
	}
	if err := r.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	forkEnv := *env
	forkEnv.Dir = fork
	fr := lockedReopen(t, &forkEnv)
	storeFile(t, fr, "theirs", []byte("theirs 2"))
	_ = fr.Unlock(ctx)
	testutil.CopyMissing(t, fork, env.Dir)
	if err := os.Remove(filepath.Join(env.Dir, format.SnapshotSeqName(ours2.Seq, ours2.ID))); err != nil {
		t.Fatal(err)
	}
	fresh, err := env.Reopen(t, t.TempDir(), false)
	if err != nil {
		expectIntegrity(t, "open", err, "missing")
		return
	}
	_, err = fresh.Snapshots(ctx)
	expectIntegrity(t, "listing the snapshots", err, "missing")
	if _, err := fresh.SnapshotBySeq(ctx, 3); err == nil {
		t.Fatal("snapshot 3, whose parent is gone, opens")
	}
}

// TestDeletedBesideRecordedFork: the main line's snapshot of a fork's
// number is deleted after a writer recorded the fork. The fork's snapshot
// then holds the number alone; the newest snapshot's forks say it is not
// the main line's: open reports it (before, it was taken for the main
// line's and the snapshot above left unopened).
func TestDeletedBesideRecordedFork(t *testing.T) {
	ctx := context.Background()
	f := newForkRepo(t)
	r, err := f.env.Reopen(t, t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Lock(ctx, false); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		storeFile(t, r, "ours", randomData(uint64(110+i), 300))
	}
	if err := r.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(f.env.Dir, format.SnapshotSeqName(f.ours2.Seq, f.ours2.ID))); err != nil {
		t.Fatal(err)
	}
	for _, cache := range []string{f.env.CacheDir, t.TempDir()} {
		_, err := f.env.Reopen(t, cache, false)
		expectIntegrity(t, "main line's snapshot 2 deleted beside a recorded fork", err, "the main line's was deleted")
	}
}
