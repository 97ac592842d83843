package repo_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/repo"
	"github.com/sealfs/sealfs/repo/format"
)

// Attacks on history segments (docs/SPEC.md §8.3) by a hostile storage
// provider: replays, rollbacks, damaged segments.

// restoreRemote makes dir hold exactly what copy holds (the provider puts
// an old state back).
func restoreRemote(t *testing.T, copy, dir string) {
	t.Helper()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", copy, dir).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
}

// TestHistoryRollback: the whole repository put back to a state before a
// fold, or to one just after a fold, is refused as a rollback by a client
// that saw the later state; a client that was away while its newest seen
// snapshot was folded opens and lists the whole history.
func TestHistoryRollback(t *testing.T) {
	const keep = 2
	env, contents := foldEnv(t, 3, keep)
	before := copyRemote(t, env.Dir) // before any fold
	away := t.TempDir()
	if _, err := env.Reopen(t, away, false); err != nil {
		t.Fatal(err)
	}
	for i := 3; i < 12; i++ {
		data := randomData(uint64(i), 500+i)
		contents = append(contents, data)
		storeFile(t, env.Repo, "f", data)
	}
	if env.Repo.Latest().Folded() < 3 {
		t.Fatalf("folded to %d only", env.Repo.Latest().Folded())
	}
	after := copyRemote(t, env.Dir) // just after a fold
	for i := 12; i < 20; i++ {
		data := randomData(uint64(i), 500+i)
		contents = append(contents, data)
		storeFile(t, env.Repo, "f", data)
	}
	_ = env.Repo.Unlock(context.Background())
	// The client that was away remembers snapshot 3, folded since.
	r, err := env.Reopen(t, away, false)
	if err != nil {
		t.Fatalf("a client away since snapshot 3: %v", err)
	}
	if got := len(snapshots(t, r)); got != len(contents) {
		t.Fatalf("%d snapshots listed, want %d", got, len(contents))
	}
	checkAll(t, env, contents, false)
	now := copyRemote(t, env.Dir)
	for _, c := range []struct{ what, dir string }{{"before a fold", before}, {"just after a fold", after}} {
		restoreRemote(t, c.dir, env.Dir)
		for _, cache := range []string{"", away} {
			if _, err := env.Reopen(t, cache, false); !errors.Is(err, repo.ErrRollback) {
				t.Fatalf("rolled back %s, cache %q: %v", c.what, cache, err)
			}
		}
	}
	restoreRemote(t, now, env.Dir)
	// The away client's snapshot was folded: its segment deleted is an
	// integrity error naming it, never a silent "gone".
	r, err = env.Reopen(t, t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Lock(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	back := t.TempDir()
	if _, err := env.Reopen(t, back, false); err != nil {
		t.Fatal(err)
	}
	for i := 20; i < 30; i++ {
		storeFile(t, r, "f", randomData(uint64(i), 10))
	}
	head := r.Latest()
	var seg string
	for _, ref := range head.History {
		if ref.First <= 20 && 20 <= ref.Last {
			seg = format.HistoryName(ref.ID)
		}
	}
	if seg == "" {
		t.Fatalf("snapshot 20 is not folded: %+v", head.History)
	}
	if err := os.Remove(filepath.Join(env.Dir, seg)); err != nil {
		t.Fatal(err)
	}
	_, err = env.Reopen(t, back, false)
	expectIntegrity(t, "open by a client that saw a folded snapshot whose segment is gone", err, seg)
}

// TestHistoryReplayForgotten: a snapshot forgotten (record stored, object
// deleted) and then folded over, whose object the provider puts back, is
// a forgotten snapshot still present: not a fork, not listed, never
// recorded in a later snapshot's forks; check stays clean.
func TestHistoryReplayForgotten(t *testing.T) {
	ctx := context.Background()
	const keep = 2
	env, contents := foldEnv(t, 4, keep)
	snaps := snapshots(t, env.Repo)
	victim := snaps[1]
	path := filepath.Join(env.Dir, format.SnapshotSeqName(victim.Seq, victim.ID))
	saved, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Repo.Forget(ctx, []crypt.ID{victim.ID}); err != nil {
		t.Fatal(err)
	}
	for i := 4; i < 20; i++ {
		data := randomData(uint64(i), 500+i)
		contents = append(contents, data)
		storeFile(t, env.Repo, "f", data)
	}
	if env.Repo.Latest().Folded() < victim.Seq {
		t.Fatalf("folded to %d only", env.Repo.Latest().Folded())
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("the forgotten snapshot is still there: %v", err)
	}
	if err := os.WriteFile(path, saved, 0o644); err != nil {
		t.Fatal(err)
	}
	_ = env.Repo.Unlock(ctx)
	for _, cache := range []string{"", t.TempDir()} {
		r, err := env.Reopen(t, cache, false)
		if err != nil {
			t.Fatalf("open with the forgotten snapshot put back: %v", err)
		}
		if f := r.Forks(); len(f) != 0 {
			t.Fatalf("forks at open: %v", f)
		}
		for _, s := range snapshots(t, r) {
			if s.ID == victim.ID {
				t.Fatalf("the forgotten snapshot %d is listed", s.Seq)
			}
		}
		if f := r.Forks(); len(f) != 0 {
			t.Fatalf("forks with the history loaded: %v", f)
		}
	}
	w, err := env.Reopen(t, "", false)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Lock(ctx, false); err != nil {
		t.Fatal(err)
	}
	data := randomData(999, 77)
	contents = append(contents, data)
	storeFile(t, w, "f", data)
	if h := w.Latest(); len(h.Forks) != 0 {
		t.Fatalf("the newest snapshot records forks %v", h.Forks)
	}
	_ = w.Unlock(ctx)
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("the forgotten snapshot put back was not deleted: %v", err)
	}
	checkAll(t, env, contents, false)
}

// TestHistoryStaleReader: a reader that opened before a writer's fold
// merged away the segments its newest snapshot names reads the whole
// history afterwards (the segments it knew are gone: it loads the newest
// snapshot again, as for a pack a prune repacked), never an integrity
// error about a segment a legitimate merge deleted.
func TestHistoryStaleReader(t *testing.T) {
	ctx := context.Background()
	const keep = 2
	env, contents := foldEnv(t, 10, keep)
	first := env.Repo.Latest().History
	if len(first) == 0 {
		t.Fatal("no fold")
	}
	reader, err := env.Reopen(t, t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	gone := func() bool {
		for _, ref := range first {
			if _, err := os.Stat(filepath.Join(env.Dir, format.HistoryName(ref.ID))); err == nil {
				return false
			}
		}
		return true
	}
	for i := 10; !gone(); i++ {
		if i > 200 {
			t.Fatal("the first segments were never merged away")
		}
		data := randomData(uint64(i), 500+i)
		contents = append(contents, data)
		storeFile(t, env.Repo, "f", data)
	}
	snaps, err := reader.Snapshots(ctx)
	if err != nil {
		t.Fatalf("a reader that opened before a merge: %v", err)
	}
	if len(snaps) < 10 {
		t.Fatalf("%d snapshots listed", len(snaps))
	}
	if _, err := reader.SnapshotBySeq(ctx, 1); err != nil {
		t.Fatalf("snapshot 1 for a reader that opened before a merge: %v", err)
	}
}

// TestHistoryStaleReaderStubs: a reader that opened before a writer's
// fold deleted the snapshot objects it had listed (and not opened) lists
// the whole history afterwards: those snapshots are in a segment now.
func TestHistoryStaleReaderStubs(t *testing.T) {
	ctx := context.Background()
	const keep = 2
	env, contents := foldEnv(t, 4, keep)
	if env.Repo.Latest().Folded() != 0 {
		t.Fatal("folded already")
	}
	reader, err := env.Reopen(t, t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	for i := 4; i < 7; i++ {
		data := randomData(uint64(i), 500+i)
		contents = append(contents, data)
		storeFile(t, env.Repo, "f", data)
	}
	snaps, err := reader.Snapshots(ctx)
	if err != nil {
		t.Fatalf("a reader that opened before a fold: %v", err)
	}
	if len(snaps) < 6 {
		t.Fatalf("%d snapshots listed", len(snaps))
	}
	for _, s := range snaps {
		if got, err := readFileIn(reader, s, "f"); err != nil || !bytes.Equal(got, contents[s.Seq-1]) {
			t.Fatalf("snapshot %d reads %d bytes, %v", s.Seq, len(got), err)
		}
	}
}

// TestHistoryFoldsPastFork: a fork does not stop folding (snapshots/
// stays bounded): the main line's snapshot of its number is folded, the
// fork's stays in snapshots/ as a fork, listed and readable; after the
// fork is forgotten folding goes on too; every snapshot reads and check
// is clean; deleting the fork snapshot is found at open.
func TestHistoryFoldsPastFork(t *testing.T) {
	ctx := context.Background()
	const keep = 2
	repo.SetFoldKeepForTest(t, keep)
	env := chainEnv(t, 1)
	if err := env.Repo.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	fork := copyRemote(t, env.Dir)
	r := lockedReopen(t, env)
	ours := storeFile(t, r, "ours", []byte("ours 2"))
	_ = r.Unlock(ctx)
	forkEnv := *env
	forkEnv.Dir = fork
	fr := lockedReopen(t, &forkEnv)
	theirs := storeFile(t, fr, "theirs", []byte("theirs 2"))
	_ = fr.Unlock(ctx)
	testutil.CopyMissing(t, fork, env.Dir)
	w := lockedReopen(t, env)
	forks := w.Forks()
	if len(forks) != 1 {
		t.Fatalf("forks %v", forks)
	}
	side := forks[0] // the later of the two is the main line's
	mainID := ours.ID
	if side.ID == ours.ID {
		mainID = theirs.ID
	}
	for i := range 30 {
		storeFile(t, w, "ours", randomData(uint64(i), 10))
	}
	head := w.Latest()
	if head.Folded() < 20 {
		t.Fatalf("a fork at 2 stopped folding at %d", head.Folded())
	}
	if n := len(listNames(t, env, format.SnapshotsDir)); n > 2*keep+2 {
		t.Fatalf("%d objects in snapshots/", n)
	}
	if !slices.Contains(head.Forks, side.ID) {
		t.Fatalf("the newest snapshot records forks %v", head.Forks)
	}
	_ = w.Unlock(ctx)
	for _, cache := range []string{"", t.TempDir()} {
		fresh, err := env.Reopen(t, cache, false)
		if err != nil {
			t.Fatal(err)
		}
		if f := fresh.Forks(); len(f) != 1 || f[0].ID != side.ID {
			t.Fatalf("forks at open: %v", f)
		}
		all := snapshots(t, fresh)
		if len(all) != int(head.Seq)+1 {
			t.Fatalf("%d snapshots listed, want %d", len(all), head.Seq+1)
		}
		if f := fresh.Forks(); len(f) != 1 || f[0].ID != side.ID {
			t.Fatalf("forks with the history loaded: %v", f)
		}
		s2, err := fresh.SnapshotBySeq(ctx, 2)
		if err != nil || s2.ID != mainID {
			t.Fatalf("snapshot 2 of the main line: %v, %v", s2, err)
		}
		for _, s := range all {
			name := "ours"
			if s.ID == theirs.ID {
				name = "theirs"
			}
			if s.Seq == 1 {
				continue
			}
			if s.Seq > 2 && mainID == theirs.ID {
				name = "ours" // w's commits hold only "ours"
			}
			if _, err := readFileIn(fresh, s, name); err != nil {
				t.Fatalf("snapshot %d (%s): %v", s.Seq, s.ID.Short(), err)
			}
		}
		rep, err := fresh.Check(ctx, repo.CheckOptions{ReadData: true})
		if err != nil || !rep.OK() || len(rep.Forks) != 1 {
			t.Fatalf("check: %v %v, forks %v", err, rep.Problems, rep.Forks)
		}
	}
	// Forgotten, the fork goes; folding goes on.
	w, err := env.Reopen(t, "", false)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Lock(ctx, false); err != nil {
		t.Fatal(err)
	}
	if err := w.Forget(ctx, []crypt.ID{side.ID}); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		storeFile(t, w, "ours", randomData(uint64(100+i), 10))
	}
	_ = w.Unlock(ctx)
	if n := len(listNames(t, env, format.SnapshotsDir)); n > 2*keep+3 {
		t.Fatalf("%d objects in snapshots/ after the fork was forgotten", n)
	}
	fresh, err := env.Reopen(t, t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := fresh.Check(ctx, repo.CheckOptions{ReadData: true})
	if err != nil || !rep.OK() || len(rep.Forks) != 0 {
		t.Fatalf("check: %v %v, forks %v", err, rep.Problems, rep.Forks)
	}
}

// TestHistoryForeignSegment: another repository's history segment put in
// place of one of this repository's (under its name) is an integrity
// error naming it for every reader of the old history and for check.
func TestHistoryForeignSegment(t *testing.T) {
	ctx := context.Background()
	env, _ := foldEnv(t, 20, 2)
	other, _ := foldEnv(t, 20, 2)
	seg := format.HistoryName(env.Repo.Latest().History[0].ID)
	theirs, err := os.ReadFile(filepath.Join(other.Dir, format.HistoryName(other.Repo.Latest().History[0].ID)))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(env.Dir, seg), theirs, 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := env.Reopen(t, t.TempDir(), false)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	_, err = r.Snapshots(ctx)
	expectIntegrity(t, "list", err, seg)
	_, err = r.SnapshotBySeq(ctx, 1)
	expectIntegrity(t, "snapshot 1", err, seg)
	rep, err := r.Check(ctx, repo.CheckOptions{})
	if err != nil || rep.OK() || !strings.Contains(errors.Join(rep.Problems...).Error(), seg) {
		t.Fatalf("check: %v %v", err, rep.Problems)
	}
}
