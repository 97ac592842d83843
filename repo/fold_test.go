package repo_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/remote"
	"github.com/sealfs/sealfs/remote/faulty"
	"github.com/sealfs/sealfs/repo"
	"github.com/sealfs/sealfs/repo/format"
)

// foldEnv is a repository of n snapshots, snapshot i holding file f with
// content randomData(i, …), written with folds keeping keep snapshots.
func foldEnv(t *testing.T, n int, keep uint64) (*testutil.Env, [][]byte) {
	t.Helper()
	repo.SetFoldKeepForTest(t, keep)
	env := testutil.NewRepo(t, repo.InitOptions{})
	var contents [][]byte
	for i := range n {
		data := randomData(uint64(i), 500+i)
		contents = append(contents, data)
		storeFile(t, env.Repo, "f", data)
	}
	return env, contents
}

// listNames lists the object names below dir of the remote in env.
func listNames(t *testing.T, env *testutil.Env, dir string) []string {
	t.Helper()
	var names []string
	if err := env.Remote.List(context.Background(), dir, func(e remote.Entry) error { names = append(names, e.Name); return nil }); err != nil {
		t.Fatal(err)
	}
	return names
}

// checkAll opens the repository on a fresh cache, checks it with
// --read-data (clean: no problem, and unreferenced objects only as
// allowed), and reads every snapshot's f, which must be contents[seq-1].
func checkAll(t *testing.T, env *testutil.Env, contents [][]byte, allowUnreferenced bool) *repo.Repository {
	t.Helper()
	r, err := env.Reopen(t, t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := r.Check(context.Background(), repo.CheckOptions{ReadData: true})
	if err != nil {
		t.Fatal(err)
	}
	// Index objects replaced by merges are unreferenced anyway (prune
	// removes them); a fold leaves no snapshot or segment behind.
	var left []string
	for _, u := range rep.Unreferenced {
		if !strings.HasPrefix(u, format.IndexDir+"/") {
			left = append(left, u)
		}
	}
	if !rep.OK() || (!allowUnreferenced && len(left) > 0) {
		t.Fatalf("check: %v, unreferenced %v", rep.Problems, left)
	}
	forgotten := map[uint64]bool{}
	for _, f := range r.Forgotten() {
		forgotten[f.Seq] = true
	}
	snaps := snapshots(t, r)
	want := 0
	for seq := 1; seq <= len(contents); seq++ {
		if !forgotten[uint64(seq)] {
			want++
		}
	}
	if len(snaps) != want || rep.Snapshots != want {
		t.Fatalf("%d snapshots listed, %d checked, want %d", len(snaps), rep.Snapshots, want)
	}
	for _, s := range snaps {
		got, err := readFileIn(r, s, "f")
		if err != nil || !bytes.Equal(got, contents[s.Seq-1]) {
			t.Fatalf("snapshot %d reads other content", s.Seq)
		}
		one, err := r.SnapshotBySeq(context.Background(), s.Seq)
		if err != nil || one.ID != s.ID {
			t.Fatalf("snapshot by number %d: %v %v", s.Seq, one, err)
		}
	}
	return r
}

// storeFileErr stores data as /name, alone, in a new snapshot, and
// returns the commit's error.
func storeFileErr(r *repo.Repository, name string, data []byte) (*repo.Snapshot, error) {
	ctx := context.Background()
	content, size, err := r.SaveFile(ctx, bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	root, err := r.SaveTree(ctx, &repo.Tree{Nodes: []*repo.Node{{Name: []byte(name), Type: repo.NodeFile, Mode: 0o644, Size: size, Content: content}}})
	if err != nil {
		return nil, err
	}
	return r.Commit(ctx, root, repo.CommitInfo{Files: 1, Bytes: size})
}

// TestFoldBoundsSnapshots: with folding, snapshots/ holds at most about
// 2 × keep snapshots however many commits, the newest snapshot names a
// bounded number of history segments, an open on a fresh cache lists and
// opens only those, and every snapshot still lists, reads and checks.
func TestFoldBoundsSnapshots(t *testing.T) {
	const n, keep = 60, 3
	env, contents := foldEnv(t, n, keep)
	snapNames := listNames(t, env, format.SnapshotsDir)
	if len(snapNames) > 2*keep+1 {
		t.Fatalf("%d snapshot objects after %d commits, want at most %d", len(snapNames), n, 2*keep+1)
	}
	head := env.Repo.Latest()
	if head.Version < format.SnapshotHistoryVersion || head.Folded() < n-2*keep-1 {
		t.Fatalf("head of version %d folds up to %d", head.Version, head.Folded())
	}
	segs := listNames(t, env, format.HistoryDir)
	if len(segs) != len(head.History) || len(segs) > 8 {
		t.Fatalf("%d history segments stored, the head names %d", len(segs), len(head.History))
	}
	r := checkAll(t, env, contents, false)
	// A fresh open holds only the unfolded snapshots until asked.
	fresh, err := env.Reopen(t, t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	if got := repo.LoadedSnapshotsForTest(fresh); got > 2*keep+1 {
		t.Fatalf("a fresh open holds %d snapshots", got)
	}
	s, err := fresh.SnapshotBySeq(context.Background(), 2)
	if err != nil {
		t.Fatalf("snapshot 2 of a fresh open: %v", err)
	}
	if got, err := readFileIn(fresh, s, "f"); err != nil || !bytes.Equal(got, contents[1]) {
		t.Fatalf("snapshot 2 of a fresh open reads %d bytes, %v", len(got), err)
	}
	_ = r
	// A writer that listed every snapshot holds them until its next fold
	// only: its list stays bounded, however long it runs.
	if got := len(snapshots(t, env.Repo)); got != n {
		t.Fatalf("%d snapshots listed", got)
	}
	for i := range 2*keep + 1 {
		storeFile(t, env.Repo, "f", randomData(uint64(500+i), 10))
	}
	if got := repo.LoadedSnapshotsForTest(env.Repo); got > 2*keep+1 {
		t.Fatalf("the writer holds %d snapshots after a fold", got)
	}
}

// TestFoldDeletedSegment: deleting a history segment, or replacing it by
// another one, is an integrity error naming it for any reader of the old
// history and for check; an open, which reads no segment, still opens the
// newest snapshot.
func TestFoldDeletedSegment(t *testing.T) {
	env, _ := foldEnv(t, 30, 2)
	head := env.Repo.Latest()
	seg := format.HistoryName(head.History[0].ID)
	for _, how := range []string{"delete", "swap"} {
		t.Run(how, func(t *testing.T) {
			path := filepath.Join(env.Dir, seg)
			orig, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			defer os.WriteFile(path, orig, 0o644)
			if how == "delete" {
				os.Remove(path)
			} else {
				other := filepath.Join(env.Dir, format.HistoryName(head.History[len(head.History)-1].ID))
				b, _ := os.ReadFile(other)
				if len(head.History) < 2 {
					t.Skip("one segment")
				}
				os.WriteFile(path, b, 0o644)
			}
			r, err := env.Reopen(t, t.TempDir(), false)
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			_, err = r.Snapshots(context.Background())
			expectIntegrity(t, "list after "+how, err, seg)
			_, err = r.SnapshotBySeq(context.Background(), 1)
			expectIntegrity(t, "snapshot 1 after "+how, err, seg)
			rep, err := r.Check(context.Background(), repo.CheckOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK() || !strings.Contains(errors.Join(rep.Problems...).Error(), seg) {
				t.Fatalf("check after %s: %v", how, rep.Problems)
			}
		})
	}
}

// TestFoldDeletedUnfoldedSnapshot: deleting the oldest snapshot left in
// snapshots/ (the one above the history segments) is found at open.
func TestFoldDeletedUnfoldedSnapshot(t *testing.T) {
	env, _ := foldEnv(t, 30, 2)
	head := env.Repo.Latest()
	names := listNames(t, env, format.SnapshotsDir)
	var oldest string
	for _, n := range names {
		if seq, _, ok := format.ParseSnapshotName(n); ok && seq == head.Folded()+1 {
			oldest = n
		}
	}
	if oldest == "" {
		t.Fatalf("no snapshot %d in %v", head.Folded()+1, names)
	}
	os.Remove(filepath.Join(env.Dir, oldest))
	for _, cache := range []string{"", t.TempDir()} {
		_, err := env.Reopen(t, cache, false)
		expectIntegrity(t, "open", err, "is missing")
	}
}

// TestFoldInterrupted: a fold's steps failing or cut off — the segment's
// upload, the snapshot's upload (landed or not), each delete after it —
// leave a repository that opens on a fresh cache, checks clean with
// --read-data (at worst with unreferenced objects) and reads every
// snapshot; the next commits finish the job.
func TestFoldInterrupted(t *testing.T) {
	const keep = 2
	for _, c := range []struct {
		op, prefix string
		mode       faulty.Mode
	}{
		{"put", format.HistoryDir + "/", faulty.FailBefore},
		{"put", format.HistoryDir + "/", faulty.FailAfter},
		{"put", format.HistoryDir + "/", faulty.FailPartial},
		{"put", format.SnapshotsDir + "/", faulty.FailBefore},
		{"put", format.SnapshotsDir + "/", faulty.FailAfter},
		{"put", format.SnapshotsDir + "/", faulty.FailPartial},
		{"delete", format.SnapshotsDir + "/", faulty.FailBefore},
		{"delete", format.HistoryDir + "/", faulty.FailBefore},
	} {
		for n := 1; n <= 3; n++ {
			name := c.op + " " + c.prefix + " " + []string{"before", "after", "partial"}[c.mode] + " " + string(rune('0'+n))
			t.Run(name, func(t *testing.T) {
				env, contents := foldEnv(t, 2*keep+1, keep)
				env.Remote.FailOn(c.op, c.prefix, n, c.mode)
				// Commits until one folds and one more succeeds. A
				// snapshot whose upload failed is stored by the
				// next commit (the commits failing meanwhile fail
				// on it, before sealing their own).
				var pending []byte
				for i := 0; i < 3*keep; i++ {
					data := randomData(uint64(100+i), 700+i)
					_, err := storeFileErr(env.Repo, "f", data)
					if err != nil {
						if pending == nil && strings.Contains(err.Error(), "failed to upload snapshot") {
							pending = data
						}
						continue
					}
					if pending != nil {
						contents, pending = append(contents, pending), nil
					}
					contents = append(contents, data)
				}
				checkAll(t, env, contents, true)
				// The objects a failure left are gone after one more
				// fold, but for segments no snapshot names.
				for i := 0; i < 2*keep+1; i++ {
					data := randomData(uint64(200+i), 900+i)
					storeFile(t, env.Repo, "f", data)
					contents = append(contents, data)
				}
				checkAll(t, env, contents, true)
				if got := len(listNames(t, env, format.SnapshotsDir)); got > 2*keep+1 {
					t.Fatalf("%d snapshot objects left", got)
				}
				// Prune removes the segments no snapshot names.
				if _, err := env.Repo.Prune(context.Background(), repo.PruneOptions{}); err != nil {
					t.Fatal(err)
				}
				contents = append(contents, contents[len(contents)-1])
				checkAll(t, env, contents, false)
				if got, want := len(listNames(t, env, format.HistoryDir)), len(env.Repo.Latest().History); got != want {
					t.Fatalf("%d history segments after prune, the newest snapshot names %d", got, want)
				}
			})
		}
	}
}

// TestFoldForget: a folded snapshot is forgotten like any (a forget
// record; its entry stays in its segment until a merge drops it), and
// prune on a folded history keeps every retained snapshot readable.
func TestFoldForget(t *testing.T) {
	env, contents := foldEnv(t, 30, 2)
	ctx := context.Background()
	snaps := snapshots(t, env.Repo)
	if err := env.Repo.Forget(ctx, []crypt.ID{snaps[2].ID, snaps[5].ID}); err != nil {
		t.Fatal(err)
	}
	checkAll(t, env, contents, false)
	if _, err := env.Repo.SnapshotBySeq(ctx, 3); !errors.Is(err, repo.ErrNoSnapshot) {
		t.Fatalf("forgotten folded snapshot 3: %v", err)
	}
	for i := range 10 {
		data := randomData(uint64(300+i), 600+i)
		storeFile(t, env.Repo, "f", data)
		contents = append(contents, data)
	}
	checkAll(t, env, contents, false)
	if _, err := env.Repo.Prune(ctx, repo.PruneOptions{}); err != nil {
		t.Fatal(err)
	}
	// Prune's snapshot holds the newest's tree.
	contents = append(contents, contents[len(contents)-1])
	checkAll(t, env, contents, false)
	if h := env.Repo.Latest(); !h.Prune || len(h.History) == 0 {
		t.Fatalf("prune's snapshot names no history (%+v)", h)
	}
	storeFile(t, env.Repo, "f", randomData(1000, 10))
}

// TestFoldCrashBeforeSnapshotUpload: a writer dies after storing a fold's
// segment, its snapshot cut off mid-upload. The next run on its cache
// stores that snapshot, deletes the snapshots it folded, and the
// repository checks clean and reads every snapshot; the next commits
// record no folded snapshot as a fork.
func TestFoldCrashBeforeSnapshotUpload(t *testing.T) {
	ctx := context.Background()
	const keep = 2
	env, contents := foldEnv(t, 2*keep+1, keep)
	data := randomData(77, 3000)
	env.Remote.FailOn("put", format.SnapshotsDir+"/", 1, faulty.FailPartial)
	if _, err := storeFileErr(env.Repo, "f", data); !errors.Is(err, faulty.ErrInjected) {
		t.Fatalf("commit = %v", err)
	}
	contents = append(contents, data)
	r, err := env.Reopen(t, "", false)
	if err != nil {
		t.Fatalf("reopen on the crashed writer's cache: %v", err)
	}
	if err := r.Lock(ctx, true); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		data := randomData(uint64(80+i), 3000+i)
		storeFile(t, r, "f", data)
		contents = append(contents, data)
	}
	if f := r.Forks(); len(f) != 0 {
		t.Fatalf("forks after the crash: %v", f)
	}
	if h := r.Latest(); len(h.Forks) != 0 {
		t.Fatalf("the newest snapshot records forks %v", h.Forks)
	}
	_ = r.Unlock(ctx)
	checkAll(t, env, contents, false)
	if got := len(listNames(t, env, format.SnapshotsDir)); got > 2*keep+1 {
		t.Fatalf("%d snapshot objects left", got)
	}
}

// TestFoldLateFork: a fork snapshot that lands after its number was
// folded (a dead writer's late upload) is a fork for every reader — listed,
// readable with its own index objects — and the next commit records it;
// deleting it then is found at open. The snapshot 1 object the late
// writer's copy still had, put back, is a fold's leftover: left out, and
// deleted by the next commit.
func TestFoldLateFork(t *testing.T) {
	ctx := context.Background()
	repo.SetFoldKeepForTest(t, 2)
	env := chainEnv(t, 1)
	if err := env.Repo.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	fork := copyRemote(t, env.Dir)
	r := lockedReopen(t, env)
	for i := range 12 {
		storeFile(t, r, "ours", randomData(uint64(i), 100))
	}
	if r.Latest().Folded() < 2 {
		t.Fatalf("folded up to %d only", r.Latest().Folded())
	}
	if err := r.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	forkEnv := *env
	forkEnv.Dir = fork
	fr := lockedReopen(t, &forkEnv)
	theirs := storeFile(t, fr, "theirs", []byte("theirs 2"))
	_ = fr.Unlock(ctx)
	testutil.CopyMissing(t, fork, env.Dir)

	for _, cache := range []string{"", t.TempDir()} {
		fresh, err := env.Reopen(t, cache, false)
		if err != nil {
			t.Fatalf("open with a late fork: %v", err)
		}
		if f := fresh.Forks(); len(f) != 1 || f[0].ID != theirs.ID {
			t.Fatalf("forks at open: %v", f)
		}
		all := snapshots(t, fresh)
		if len(all) != 14 {
			t.Fatalf("%d snapshots listed, want 14", len(all))
		}
		if f := fresh.Forks(); len(f) != 1 || f[0].ID != theirs.ID {
			t.Fatalf("forks with the history loaded: %v", f)
		}
		for _, s := range all {
			if s.ID == theirs.ID {
				if err := fresh.LoadIndexesOf(ctx, s); err != nil {
					t.Fatal(err)
				}
				if got, err := readFileIn(fresh, s, "theirs"); err != nil || string(got) != "theirs 2" {
					t.Fatalf("the late fork reads %q, %v", got, err)
				}
			}
		}
	}
	w, err := env.Reopen(t, "", false)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Lock(ctx, false); err != nil {
		t.Fatal(err)
	}
	storeFile(t, w, "ours", []byte("after the fork"))
	if h := w.Latest(); len(h.Forks) != 1 || h.Forks[0] != theirs.ID {
		t.Fatalf("the newest snapshot records forks %v", h.Forks)
	}
	_ = w.Unlock(ctx)
	for _, n := range listNames(t, env, format.SnapshotsDir) {
		if seq, _, ok := format.ParseSnapshotName(n); ok && seq == 1 {
			t.Fatalf("the leftover %s was not deleted", n)
		}
	}
	rep, err := w.Check(ctx, repo.CheckOptions{ReadData: true})
	if err != nil || !rep.OK() || len(rep.Forks) != 1 {
		t.Fatalf("check: %v %v, forks %v", err, rep.Problems, rep.Forks)
	}
	if err := os.Remove(filepath.Join(env.Dir, format.SnapshotSeqName(theirs.Seq, theirs.ID))); err != nil {
		t.Fatal(err)
	}
	for _, cache := range []string{"", t.TempDir()} {
		_, err := env.Reopen(t, cache, false)
		expectIntegrity(t, "open after deleting the recorded fork", err, "records it as a fork")
	}
}
