package repo_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/internal/unlock"
	"github.com/sealfs/sealfs/repo"
	"github.com/sealfs/sealfs/repo/format"
)

// longHistory commits n small files one at a time and returns the
// environment, unlocked, and the snapshots' object names by sequence
// number.
func longHistory(t *testing.T, n int) (*testutil.Env, map[uint64]string) {
	t.Helper()
	repo.SetFoldKeepForTest(t, uint64(n)) // no fold: every snapshot listed
	env := testutil.NewRepo(t, repo.InitOptions{})
	h := &history{t: t, r: env.Repo, files: map[string][]byte{}}
	for i := range n {
		if err := h.commit(i); err != nil {
			t.Fatal(err)
		}
	}
	if err := env.Repo.Unlock(context.Background()); err != nil {
		t.Fatal(err)
	}
	names := map[uint64]string{}
	for _, s := range snapshots(t, env.Repo) {
		names[s.Seq] = format.SnapshotSeqName(s.Seq, s.ID)
		if _, err := os.Stat(filepath.Join(env.Dir, names[s.Seq])); err != nil {
			t.Fatalf("snapshot %d is not stored under its name: %v", s.Seq, err)
		}
	}
	return env, names
}

// TestOpenReadsOnlyTheNewest: opening a repository of a long history reads
// the newest snapshot and its index objects, not every snapshot, on a
// fresh cache as on the writer's; the snapshots' summaries are opened once
// when asked for (Snapshots), then come from the cache directory.
func TestOpenReadsOnlyTheNewest(t *testing.T) {
	ctx := context.Background()
	env, names := longHistory(t, 60)
	for _, cache := range []string{env.CacheDir, t.TempDir()} {
		rem := testutil.NewRemote(t, env.Dir)
		r, err := repo.Open(ctx, rem, unlock.WithCode(env.Code), repo.Options{CacheDir: cache})
		if err != nil {
			t.Fatal(err)
		}
		// The config, the key slot, the newest snapshot, its index
		// objects (each a stat and a get).
		if got, want := rem.Stats().Gets, int64(3+len(r.Latest().Indexes)); got > want {
			t.Fatalf("open read %d objects, want %d at most", got, want)
		}
		before := rem.Stats().Gets
		snaps := snapshots(t, r)
		if len(snaps) != len(names) || rem.Stats().Gets-before != int64(len(names)-1) {
			t.Fatalf("Snapshots gave %d snapshots and read %d objects; want %d and %d", len(snaps), rem.Stats().Gets-before, len(names), len(names)-1)
		}
		for i, s := range snaps {
			if s.Seq != uint64(i+1) || s.Tree.IsZero() || s.Host == "" || s.Time.IsZero() || (i > 0 && s.Parent != snaps[i-1].ID) {
				t.Fatalf("snapshot %d reads as %+v", i+1, s)
			}
		}
		again, err := repo.Open(ctx, rem, unlock.WithCode(env.Code), repo.Options{CacheDir: cache})
		if err != nil {
			t.Fatal(err)
		}
		before = rem.Stats().Gets
		if len(snapshots(t, again)) != len(names) || rem.Stats().Gets != before {
			t.Fatalf("Snapshots on a cache that has them read %d objects", rem.Stats().Gets-before)
		}
	}
}

// TestOpenDetectsDeletedSnapshot: deleting an old snapshot (not the newest)
// is an integrity error at open, on a fresh cache as on the writer's, and
// in check, which names it.
func TestOpenDetectsDeletedSnapshot(t *testing.T) {
	env, names := longHistory(t, 30)
	opened, err := env.Reopen(t, t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(env.Dir, names[7])); err != nil {
		t.Fatal(err)
	}
	for _, cache := range []string{env.CacheDir, t.TempDir()} {
		_, err := env.Reopen(t, cache, false)
		expectIntegrity(t, "deleted snapshot 7", err, "snapshot 7 is missing")
	}
	rep, err := opened.Check(context.Background(), repo.CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	expectIntegrity(t, "check of deleted snapshot 7", errors.Join(rep.Problems...), "snapshot 7 is missing")
}

// TestOpenCatchesRenamedSnapshot: a snapshot object moved to the name of
// another sequence number, or copied to a second name, is an integrity
// error: at open when it would change the chain or the newest, and in
// check always (check opens every snapshot).
func TestOpenCatchesRenamedSnapshot(t *testing.T) {
	env, names := longHistory(t, 12)
	obj := func(name string) string { return filepath.Join(env.Dir, name) }
	move := func(from, to string) func() {
		if err := os.Rename(obj(from), obj(to)); err != nil {
			t.Fatal(err)
		}
		return func() {
			if err := os.Rename(obj(to), obj(from)); err != nil {
				t.Fatal(err)
			}
		}
	}
	seqName := func(seq uint64, of string) string {
		_, id, _ := format.ParseSnapshotName(of)
		return format.SnapshotSeqName(seq, id)
	}
	opened, err := env.Reopen(t, t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		what, want string
		tamper     func() (undo func())
	}{
		{"snapshot 5 renamed as 13, above the newest", "it was renamed", func() func() { return move(names[5], seqName(13, names[5])) }},
		{"snapshot 12 renamed as 3, beside snapshot 3", "it was renamed", func() func() { return move(names[12], seqName(3, names[12])) }},
		{"snapshot 5 copied as 13", "listed twice", func() func() {
			b, err := os.ReadFile(obj(names[5]))
			if err != nil {
				t.Fatal(err)
			}
			to := seqName(13, names[5])
			if err := os.WriteFile(obj(to), b, 0o644); err != nil {
				t.Fatal(err)
			}
			return func() { os.Remove(obj(to)) }
		}},
		{"snapshot 6 deleted, 5 renamed as 6", "snapshot 5 is missing", func() func() {
			b, err := os.ReadFile(obj(names[6]))
			if err != nil {
				t.Fatal(err)
			}
			os.Remove(obj(names[6]))
			undo := move(names[5], seqName(6, names[5]))
			return func() {
				undo()
				os.WriteFile(obj(names[6]), b, 0o644)
			}
		}},
		{"snapshot 5 renamed with its version 1 name", "", func() func() {
			return move(names[5], "snapshots/"+strings.TrimPrefix(names[5], "snapshots/00000000000000000005-"))
		}},
	} {
		undo := c.tamper()
		_, err := env.Reopen(t, t.TempDir(), false)
		rep, cerr := opened.Check(context.Background(), repo.CheckOptions{})
		undo()
		if cerr != nil {
			t.Fatal(cerr)
		}
		if c.want == "" {
			// Not a change to the history: a name a reader accepts.
			if err != nil || !rep.OK() {
				t.Fatalf("%s: open %v, check %v", c.what, err, rep.Problems)
			}
			continue
		}
		expectIntegrity(t, c.what+" (open)", err, c.want)
		if rep.OK() {
			t.Fatalf("%s: check found nothing", c.what)
		}
	}
	// A rename inside the chain that open does not see (it opens only
	// the newest): check, which opens every snapshot, catches it.
	b4, err := os.ReadFile(obj(names[4]))
	if err != nil {
		t.Fatal(err)
	}
	b5, err := os.ReadFile(obj(names[5]))
	if err != nil {
		t.Fatal(err)
	}
	// Swap the contents of 4 and 5: each name now holds a snapshot of
	// another id, which fails authentication.
	os.WriteFile(obj(names[4]), b5, 0o644)
	os.WriteFile(obj(names[5]), b4, 0o644)
	rep, err := opened.Check(context.Background(), repo.CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	expectIntegrity(t, "swapped snapshots 4 and 5 (check)", errors.Join(rep.Problems...), names[4])
}

// TestForkBelowStubs: a fork early in a history whose later snapshots an
// open leaves unopened: a new client finds the same head, main line and
// fork as one that opens every snapshot (check), reads the fork's file, and
// deleting the recorded fork snapshot is an integrity error at open.
func TestForkBelowStubs(t *testing.T) {
	ctx := context.Background()
	f := newForkRepo(t)
	r, err := f.env.Reopen(t, t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Lock(ctx, false); err != nil {
		t.Fatal(err)
	}
	for i := range 8 {
		storeFile(t, r, "ours", randomData(uint64(50+i), 500))
	}
	if err := r.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	rem := testutil.NewRemote(t, f.env.Dir)
	fresh, err := repo.Open(ctx, rem, unlock.WithCode(f.env.Code), repo.Options{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	// The config, the key slot, the newest snapshot and the two of
	// number 2 and the one above them (3), and the index objects.
	if got, max := rem.Stats().Gets, int64(6+len(fresh.Latest().Indexes)); got > max {
		t.Fatalf("open read %d objects, want %d at most", got, max)
	}
	if l := fresh.Latest(); l.Seq != 11 {
		t.Fatalf("newest is %d, want 11", l.Seq)
	}
	if forks := fresh.Forks(); len(forks) != 1 || forks[0].ID != f.theirs.ID || len(fresh.UnrecordedForks()) != 0 {
		t.Fatalf("forks %v (unrecorded %v), want theirs, recorded", forks, fresh.UnrecordedForks())
	}
	if s, err := fresh.SnapshotBySeq(ctx, 2); err != nil || s.ID != f.ours2.ID {
		t.Fatalf("snapshot 2 = %v, %v; want ours", s, err)
	}
	if s, err := fresh.SnapshotBySeq(ctx, 7); err != nil || s.Tree.IsZero() || s.Seq != 7 {
		t.Fatalf("snapshot 7 = %+v, %v", s, err)
	}
	if got, err := readFileIn(fresh, f.theirs, "theirs"); err != nil || string(got) != "theirs 2" {
		t.Fatalf("the fork's file: %q, %v", got, err)
	}
	rep, err := fresh.Check(ctx, repo.CheckOptions{})
	if err != nil || !rep.OK() || len(rep.Forks) != 1 || rep.Forks[0].ID != f.theirs.ID {
		t.Fatalf("check: %v %v, forks %v", err, rep.Problems, rep.Forks)
	}
	if err := os.Remove(filepath.Join(f.env.Dir, format.SnapshotSeqName(f.theirs.Seq, f.theirs.ID))); err != nil {
		t.Fatal(err)
	}
	_, err = f.env.Reopen(t, t.TempDir(), false)
	expectIntegrity(t, "recorded fork deleted", err, "records it as a fork")
}
