package repo_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/remote/faulty"
	"github.com/sealfs/sealfs/repo"
	"github.com/sealfs/sealfs/repo/format"
)

// chainEnv is a repository with n snapshots, each holding one more file.
func chainEnv(t *testing.T, n int) *testutil.Env {
	env := testutil.NewRepo(t, repo.InitOptions{})
	for i := range n {
		storeFile(t, env.Repo, "f", randomData(uint64(i), 1000+i))
	}
	return env
}

func snapshotPath(t *testing.T, env *testutil.Env, r *repo.Repository, seq uint64) string {
	for _, s := range snapshots(t, r) {
		if s.Seq == seq {
			return filepath.Join(env.Dir, format.SnapshotSeqName(s.Seq, s.ID))
		}
	}
	return ""
}

// copyRemote copies the remote's directory, as a provider keeping an old
// state would.
// lockedReopen opens env's repository again on a fresh cache directory,
// as another client, and takes the writer lease.
func lockedReopen(t *testing.T, env *testutil.Env) *repo.Repository {
	t.Helper()
	r, err := env.Reopen(t, t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Lock(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	return r
}

func copyRemote(t *testing.T, dir string) string {
	t.Helper()
	to := filepath.Join(t.TempDir(), "copy")
	if out, err := exec.Command("cp", "-a", dir, to).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	return to
}

// TestChainDeletedSnapshot: deleting an older snapshot without a forget
// record is an integrity error naming the missing snapshot, at open, in
// check, and for a lookup by sequence number.
func TestChainDeletedSnapshot(t *testing.T) {
	for _, seq := range []uint64{1, 2} {
		env := chainEnv(t, 3)
		if err := os.Remove(snapshotPath(t, env, env.Repo, seq)); err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("snapshot %d is missing", seq)
		// A client that saw the newest snapshot, and one that never did.
		for _, cache := range []string{"", t.TempDir()} {
			_, err := env.Reopen(t, cache, false)
			expectIntegrity(t, "open after deleting snapshot", err, want)
		}
		rep, err := env.Repo.Check(context.Background(), repo.CheckOptions{ReadData: true})
		if err != nil {
			t.Fatal(err)
		}
		if rep.OK() || !strings.Contains(errors.Join(rep.Problems...).Error(), want) {
			t.Fatalf("check after deleting snapshot %d: %v", seq, rep.Problems)
		}
	}
}

// forkRepo is a repository whose history forked at snapshot 2: ours
// holds snapshots 1 (file f), 2 and 3 (file "ours"), theirs snapshot 2
// (file "theirs"), made by a writer of a copy of the remote and then put
// beside ours with its index and packs (what a dead writer's late upload
// leaves).
type forkRepo struct {
	env                  *testutil.Env
	ours2, ours3, theirs *repo.Snapshot
}

func newForkRepo(t *testing.T) *forkRepo {
	ctx := context.Background()
	env := chainEnv(t, 1)
	if err := env.Repo.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	fork := copyRemote(t, env.Dir)
	r := lockedReopen(t, env)
	f := &forkRepo{env: env}
	f.ours2 = storeFile(t, r, "ours", []byte("ours 2"))
	f.ours3 = storeFile(t, r, "ours", []byte("ours 3"))
	if err := r.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	forkEnv := *env
	forkEnv.Dir = fork
	fr := lockedReopen(t, &forkEnv)
	f.theirs = storeFiles(t, fr, map[string][]byte{"theirs": []byte("theirs 2")})
	_ = fr.Unlock(ctx)
	// Every object of theirs that ours lacks, the lease aside.
	err := filepath.WalkDir(fork, func(p string, d os.DirEntry, err error) error {
		rel, _ := filepath.Rel(fork, p)
		if err != nil || d.IsDir() || rel == "lease" {
			return err
		}
		to := filepath.Join(env.Dir, rel)
		if _, err := os.Stat(to); err == nil {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			return err
		}
		return os.WriteFile(to, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// readFileIn reads /name from snapshot s.
func readFileIn(r *repo.Repository, s *repo.Snapshot, name string) ([]byte, error) {
	ctx := context.Background()
	tree, err := r.LoadTree(ctx, s.Tree)
	if err != nil {
		return nil, err
	}
	n := tree.Find([]byte(name))
	if n == nil {
		return nil, errors.New("not found")
	}
	var buf bytes.Buffer
	_, err = r.OpenFile(n).CopyTo(ctx, &buf)
	return buf.Bytes(), err
}

// TestChainFork: a snapshot of another writer with a number ours has (a
// fork) is accepted at open and in check, shown as a fork (its number
// names the main line's snapshot) and readable once its indexes are
// loaded; deleting our snapshot 2 breaks snapshot 3's parent.
func TestChainFork(t *testing.T) {
	ctx := context.Background()
	f := newForkRepo(t)
	r, err := f.env.Reopen(t, t.TempDir(), false)
	if err != nil {
		t.Fatalf("open with a fork: %v", err)
	}
	if l := r.Latest(); l.ID != f.ours3.ID {
		t.Fatalf("newest %d %s, want ours 3", l.Seq, l.ID.Short())
	}
	if forks := r.Forks(); len(forks) != 1 || forks[0].ID != f.theirs.ID || len(r.UnrecordedForks()) != 1 {
		t.Fatalf("forks %v, unrecorded %v; want theirs", forks, r.UnrecordedForks())
	}
	if s, err := r.SnapshotBySeq(ctx, 2); err != nil || s.ID != f.ours2.ID {
		t.Fatalf("snapshot 2 by number = %v, %v; want the main line's", s, err)
	}
	var s *repo.Snapshot
	for _, x := range snapshots(t, r) {
		if x.ID == f.theirs.ID {
			s = x
		}
	}
	if s == nil {
		t.Fatal("theirs is not listed")
	}
	if _, err := readFileIn(r, s, "theirs"); err == nil {
		t.Fatal("theirs read without its indexes")
	}
	if err := r.LoadIndexesOf(ctx, s); err != nil {
		t.Fatal(err)
	}
	if got, err := readFileIn(r, s, "theirs"); err != nil || string(got) != "theirs 2" {
		t.Fatalf("theirs read %q, %v", got, err)
	}
	rep, err := r.Check(ctx, repo.CheckOptions{ReadData: true})
	if err != nil || !rep.OK() || len(rep.Forks) != 1 || rep.Forks[0].ID != f.theirs.ID {
		t.Fatalf("check with a fork: %v %v, forks %v", err, rep.Problems, rep.Forks)
	}
	// Our snapshot 2 deleted: theirs holds the number, but our 3 has lost its parent.
	if err := os.Remove(filepath.Join(f.env.Dir, format.SnapshotSeqName(f.ours2.Seq, f.ours2.ID))); err != nil {
		t.Fatal(err)
	}
	_, err = f.env.Reopen(t, t.TempDir(), false)
	expectIntegrity(t, "snapshot 2 replaced", err, "its parent "+f.ours2.ID.Short()+" is missing")
}

// TestCommitRecordsFork: the first commit after a fork records it (forks)
// and names its indexes, so a reader reads it from the newest snapshot's
// indexes; then deleting it is detected; forgetting both snapshots 2 (one
// record, one number twice) is not, and later commits drop the forgotten
// fork from forks.
func TestCommitRecordsFork(t *testing.T) {
	ctx := context.Background()
	f := newForkRepo(t)
	r, err := f.env.Reopen(t, t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Lock(ctx, false); err != nil {
		t.Fatal(err)
	}
	s4 := storeFile(t, r, "ours", []byte("ours 4"))
	if len(s4.Forks) != 1 || s4.Forks[0] != f.theirs.ID {
		t.Fatalf("snapshot 4 records forks %v, want theirs", s4.Forks)
	}
	// Theirs' index objects are named (main or cold list), or merged
	// into others: a fresh reader reads theirs (below).
	if len(r.UnrecordedForks()) != 0 {
		t.Fatalf("after the commit, unrecorded forks %v", r.UnrecordedForks())
	}
	other, err := f.env.Reopen(t, t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := readFileIn(other, f.theirs, "theirs"); err != nil || string(got) != "theirs 2" {
		t.Fatalf("theirs read through the newest snapshot's indexes: %q, %v", got, err)
	}
	theirsPath := filepath.Join(f.env.Dir, format.SnapshotSeqName(f.theirs.Seq, f.theirs.ID))
	b, err := os.ReadFile(theirsPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(theirsPath); err != nil {
		t.Fatal(err)
	}
	_, err = f.env.Reopen(t, t.TempDir(), false)
	expectIntegrity(t, "recorded fork deleted", err, "records it as a fork")
	if err := os.WriteFile(theirsPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := r.Forget(ctx, []crypt.ID{f.theirs.ID, f.ours2.ID}); err != nil {
		t.Fatal(err)
	}
	reopened, err := f.env.Reopen(t, t.TempDir(), false)
	if err != nil {
		t.Fatalf("open after forgetting both snapshots 2: %v", err)
	}
	if got := reopened.Forgotten(); len(got) != 2 || got[0].Seq != 2 || got[1].Seq != 2 {
		t.Fatalf("forgotten %v, want two snapshots 2", got)
	}
	if len(reopened.Forks()) != 0 {
		t.Fatalf("forks after forgetting the fork: %v", reopened.Forks())
	}
	if s5 := storeFile(t, r, "ours", []byte("ours 5")); len(s5.Forks) != 0 {
		t.Fatalf("snapshot 5 records forgotten forks %v", s5.Forks)
	}
	if _, err := f.env.Reopen(t, t.TempDir(), false); err != nil {
		t.Fatal(err)
	}
}

// TestForget: forgotten snapshots leave a record that the chain check
// accepts; a forgotten one is not found by number (and is not an integrity
// error); the newest cannot be forgotten.
func TestForget(t *testing.T) {
	ctx := context.Background()
	env := chainEnv(t, 5)
	if err := env.Repo.Forget(ctx, seqIDs(t, env.Repo, 5)); err == nil {
		t.Fatal("the newest snapshot was forgotten")
	}
	if err := env.Repo.Forget(ctx, seqIDs(t, env.Repo, 2, 1)); err != nil {
		t.Fatal(err)
	}
	// Stopped after the record, before one of the deletes: valid, and
	// forgetting again finishes.
	env.Remote.FailOn("delete", "snapshots/", 1, faulty.FailBefore)
	if err := env.Repo.Forget(ctx, seqIDs(t, env.Repo, 4)); !errors.Is(err, faulty.ErrInjected) {
		t.Fatalf("forget with a failing delete = %v", err)
	}
	if _, err := env.Reopen(t, t.TempDir(), false); err != nil {
		t.Fatalf("open with a recorded, not yet deleted snapshot: %v", err)
	}
	if err := env.Repo.Forget(ctx, seqIDs(t, env.Repo, 4)); err != nil {
		t.Fatal(err)
	}
	// A record that fails to store deletes nothing.
	env.Remote.FailOn("put", "snapshots/forget/", 1, faulty.FailBefore)
	if err := env.Repo.Forget(ctx, seqIDs(t, env.Repo, 3)); !errors.Is(err, faulty.ErrInjected) {
		t.Fatalf("forget with a failing record = %v", err)
	}
	if snapshotPath(t, env, env.Repo, 3) == "" {
		t.Fatal("snapshot 3 was dropped although its record was not stored")
	}
	for _, cache := range []string{"", t.TempDir()} {
		r, err := env.Reopen(t, cache, false)
		if err != nil {
			t.Fatalf("open after forget: %v", err)
		}
		var seqs []uint64
		for _, s := range snapshots(t, r) {
			seqs = append(seqs, s.Seq)
		}
		if len(seqs) != 2 || seqs[0] != 3 || seqs[1] != 5 || len(r.Forgotten()) != 3 {
			t.Fatalf("after forgetting 1, 2 and 4: snapshots %v, forgotten %v", seqs, r.Forgotten())
		}
		if _, err := r.SnapshotBySeq(context.Background(), 2); !errors.Is(err, repo.ErrNoSnapshot) || !strings.Contains(err.Error(), "forgotten") {
			t.Fatalf("lookup of a forgotten snapshot = %v", err)
		}
		if _, err := r.SnapshotBySeq(context.Background(), 9); !errors.Is(err, repo.ErrNoSnapshot) {
			t.Fatalf("lookup of a future snapshot = %v", err)
		}
		if got, err := readFile(r, "f"); err != nil || len(got) != 1004 {
			t.Fatalf("newest file after forget: %d bytes, %v", len(got), err)
		}
		rep, err := r.Check(ctx, repo.CheckOptions{ReadData: true})
		if err != nil || !rep.OK() || rep.ForgetRecords != 2 {
			t.Fatalf("check after forget: %v %v, %d records", err, rep.Problems, rep.ForgetRecords)
		}
	}
	// The chain goes on after forgotten snapshots.
	storeFile(t, env.Repo, "f", []byte("six"))
	if _, err := env.Reopen(t, t.TempDir(), false); err != nil {
		t.Fatal(err)
	}
	// Deleting a forget record shows the gaps it covered.
	records, _ := filepath.Glob(filepath.Join(env.Dir, "snapshots", "forget", "*"))
	for _, rec := range records {
		b, _ := os.ReadFile(rec)
		os.Remove(rec)
		_, err := env.Reopen(t, t.TempDir(), false)
		expectIntegrity(t, "deleted forget record", err, "missing (deleted without a forget record")
		os.WriteFile(rec, b, 0o644)
	}
}

// TestForgetRecordForgedOrForeign: a forget record that is not this
// repository's own, sealed with its key, is refused: random bytes, a record
// of another repository, a record under another name.
func TestForgetRecordForgedOrForeign(t *testing.T) {
	ctx := context.Background()
	env := chainEnv(t, 3)
	other := chainEnv(t, 3)
	if err := other.Repo.Forget(ctx, seqIDs(t, other.Repo, 1)); err != nil {
		t.Fatal(err)
	}
	records, _ := filepath.Glob(filepath.Join(other.Dir, "snapshots", "forget", "*"))
	if len(records) != 1 {
		t.Fatalf("want one forget record, have %v", records)
	}
	foreign, err := os.ReadFile(records[0])
	if err != nil {
		t.Fatal(err)
	}
	// Our snapshot 1 deleted, and "covered" by something else.
	if err := os.Remove(snapshotPath(t, env, env.Repo, 1)); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(env.Dir, "snapshots", "forget")
	os.MkdirAll(dir, 0o755)
	ours := filepath.Base(records[0])
	for what, content := range map[string][]byte{
		"foreign": foreign,
		"forged":  randomData(1, len(foreign)),
	} {
		p := filepath.Join(dir, ours)
		if err := os.WriteFile(p, content, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := env.Reopen(t, t.TempDir(), false)
		expectIntegrity(t, what+" forget record", err, "snapshots/forget/"+ours)
		os.Remove(p)
	}
	// Our own record, moved to another name.
	env2 := chainEnv(t, 3)
	if err := env2.Repo.Forget(ctx, seqIDs(t, env2.Repo, 1)); err != nil {
		t.Fatal(err)
	}
	records, _ = filepath.Glob(filepath.Join(env2.Dir, "snapshots", "forget", "*"))
	moved := filepath.Join(filepath.Dir(records[0]), strings.Repeat("ab", 32))
	if err := os.Rename(records[0], moved); err != nil {
		t.Fatal(err)
	}
	_, err = env2.Reopen(t, t.TempDir(), false)
	expectIntegrity(t, "moved forget record", err, "snapshots/forget/"+filepath.Base(moved))
}

// TestForgetDeletesLeaveCommitsAlone: while Forget's deletes hang (a slow
// remote, thousands of snapshots), commits go on: only storing the record
// holds them. Once the deletes end, the forgotten snapshots are gone and
// the commit made meanwhile is the newest.
func TestForgetDeletesLeaveCommitsAlone(t *testing.T) {
	ctx := context.Background()
	env := chainEnv(t, 3)
	env.Remote.FailOn("delete", "snapshots/", 1, faulty.Hang)
	done := make(chan error, 1)
	first := seqIDs(t, env.Repo, 1)
	go func() { done <- env.Repo.Forget(ctx, first) }()
	for deadline := time.Now().Add(10 * time.Second); env.Remote.Held() == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the delete never started")
		}
	}
	committed := make(chan *repo.Snapshot, 1)
	go func() { committed <- storeFile(t, env.Repo, "g", []byte("during the forget")) }()
	select {
	case s := <-committed:
		if s.Seq != 4 {
			t.Fatalf("the commit made snapshot %d, want 4", s.Seq)
		}
	case <-time.After(10 * time.Second):
		env.Remote.Release()
		t.Fatal("a commit waited for the deletes of a forget")
	}
	env.Remote.Release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for _, s := range snapshots(t, env.Repo) {
		seqs = append(seqs, s.Seq)
	}
	if !slices.Equal(seqs, []uint64{2, 3, 4}) {
		t.Fatalf("snapshots %v after the forget, want [2 3 4]", seqs)
	}
	if _, err := env.Reopen(t, t.TempDir(), false); err != nil {
		t.Fatalf("open after the forget: %v", err)
	}
}

// seqIDs returns the ids of r's snapshots with the given sequence numbers
// (on the main line).
func seqIDs(t *testing.T, r *repo.Repository, seqs ...uint64) []crypt.ID {
	t.Helper()
	var ids []crypt.ID
	for _, seq := range seqs {
		s, err := r.SnapshotBySeq(context.Background(), seq)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, s.ID)
	}
	return ids
}

// TestPruneKeepsFork: prune with a fork no writer has recorded (its blobs
// only in its own index objects) records it first and keeps its blobs,
// whether it repacks everything or nothing: afterwards the fork, and our
// snapshot 2 whose index objects were rewritten, still read, and check
// --read-data is clean.
func TestPruneKeepsFork(t *testing.T) {
	for _, pct := range []int{0, 100} {
		ctx := context.Background()
		f := newForkRepo(t)
		r, err := f.env.Reopen(t, t.TempDir(), false)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Prune(ctx, repo.PruneOptions{MaxUnusedPct: pct, DryRun: true}); err != nil {
			t.Fatalf("dry run with a fork: %v", err)
		}
		if err := r.Lock(ctx, false); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Prune(ctx, repo.PruneOptions{MaxUnusedPct: pct}); err != nil {
			t.Fatalf("prune %d%% with a fork: %v", pct, err)
		}
		if err := r.Unlock(ctx); err != nil {
			t.Fatal(err)
		}
		other, err := f.env.Reopen(t, t.TempDir(), false)
		if err != nil {
			t.Fatal(err)
		}
		if head := other.Latest(); !slices.Contains(head.Forks, f.theirs.ID) {
			t.Fatalf("after prune %d%%, the newest snapshot records forks %v", pct, head.Forks)
		}
		for s, want := range map[*repo.Snapshot]string{f.theirs: "theirs 2", f.ours2: "ours 2"} {
			name := "ours"
			if s == f.theirs {
				name = "theirs"
			}
			if err := other.LoadIndexesOf(ctx, s); err != nil {
				t.Fatal(err)
			}
			if got, err := readFileIn(other, s, name); err != nil || string(got) != want {
				t.Errorf("after prune %d%%: %s of snapshot %s = %q, %v", pct, name, s.ID.Short(), got, err)
			}
		}
		rep, err := other.Check(ctx, repo.CheckOptions{ReadData: true})
		if err != nil || !rep.OK() {
			t.Fatalf("check after prune %d%% with a fork: %v %v", pct, err, rep.Problems)
		}
	}
}
