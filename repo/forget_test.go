package repo_test

import (
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

	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/remote/faulty"
	"github.com/sealfs/sealfs/repo"
)

// chainEnv is a repository with n snapshots, each holding one more file.
func chainEnv(t *testing.T, n int) *testutil.Env {
	env := testutil.NewRepo(t, repo.InitOptions{})
	for i := range n {
		storeFile(t, env.Repo, "f", randomData(uint64(i), 1000+i))
	}
	return env
}

func snapshotPath(env *testutil.Env, r *repo.Repository, seq uint64) string {
	for _, s := range r.Snapshots() {
		if s.Seq == seq {
			return filepath.Join(env.Dir, "snapshots", s.ID.String())
		}
	}
	return ""
}

// copyRemote copies the remote's directory, as a provider keeping an old
// state would.
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
		if err := os.Remove(snapshotPath(env, env.Repo, seq)); err != nil {
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

// TestChainForkedSnapshot: a snapshot from a fork of the repository (the
// same keys, another history) put beside or in place of ours is detected:
// two snapshots with one sequence number, or a parent that is not the
// snapshot before.
func TestChainForkedSnapshot(t *testing.T) {
	ctx := context.Background()
	env := chainEnv(t, 1)
	if err := env.Repo.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	fork := copyRemote(t, env.Dir)
	r, err := env.Reopen(t, t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Lock(ctx, false); err != nil {
		t.Fatal(err)
	}
	ours2 := storeFile(t, r, "ours", []byte("ours 2"))
	storeFile(t, r, "ours", []byte("ours 3"))
	if err := r.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	forkEnv := *env
	forkEnv.Dir = fork
	fr, err := forkEnv.Reopen(t, t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	if err := fr.Lock(ctx, false); err != nil {
		t.Fatal(err)
	}
	theirs2 := storeFile(t, fr, "theirs", []byte("theirs 2"))
	_ = fr.Unlock(ctx)
	theirs, err := os.ReadFile(filepath.Join(fork, "snapshots", theirs2.ID.String()))
	if err != nil {
		t.Fatal(err)
	}
	// Beside ours: two snapshots with sequence number 2.
	extra := filepath.Join(env.Dir, "snapshots", theirs2.ID.String())
	if err := os.WriteFile(extra, theirs, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = env.Reopen(t, t.TempDir(), false)
	expectIntegrity(t, "a second snapshot 2", err, "sequence number 2")
	// In place of ours: snapshot 3 does not follow it.
	if err := os.Remove(filepath.Join(env.Dir, "snapshots", ours2.ID.String())); err != nil {
		t.Fatal(err)
	}
	_, err = env.Reopen(t, t.TempDir(), false)
	expectIntegrity(t, "snapshot 2 replaced", err, "its parent is")
}

// TestForget: forgotten snapshots leave a record that the chain check
// accepts; a forgotten one is not found by number (and is not an integrity
// error); the newest cannot be forgotten.
func TestForget(t *testing.T) {
	ctx := context.Background()
	env := chainEnv(t, 5)
	if err := env.Repo.Forget(ctx, []uint64{5}); err == nil {
		t.Fatal("the newest snapshot was forgotten")
	}
	if err := env.Repo.Forget(ctx, []uint64{2, 1}); err != nil {
		t.Fatal(err)
	}
	// Stopped after the record, before one of the deletes: valid, and
	// forgetting again finishes.
	env.Remote.FailOn("delete", "snapshots/", 1, faulty.FailBefore)
	if err := env.Repo.Forget(ctx, []uint64{4}); !errors.Is(err, faulty.ErrInjected) {
		t.Fatalf("forget with a failing delete = %v", err)
	}
	if _, err := env.Reopen(t, t.TempDir(), false); err != nil {
		t.Fatalf("open with a recorded, not yet deleted snapshot: %v", err)
	}
	if err := env.Repo.Forget(ctx, []uint64{4}); err != nil {
		t.Fatal(err)
	}
	// A record that fails to store deletes nothing.
	env.Remote.FailOn("put", "snapshots/forget/", 1, faulty.FailBefore)
	if err := env.Repo.Forget(ctx, []uint64{3}); !errors.Is(err, faulty.ErrInjected) {
		t.Fatalf("forget with a failing record = %v", err)
	}
	if snapshotPath(env, env.Repo, 3) == "" {
		t.Fatal("snapshot 3 was dropped although its record was not stored")
	}
	for _, cache := range []string{"", t.TempDir()} {
		r, err := env.Reopen(t, cache, false)
		if err != nil {
			t.Fatalf("open after forget: %v", err)
		}
		var seqs []uint64
		for _, s := range r.Snapshots() {
			seqs = append(seqs, s.Seq)
		}
		if len(seqs) != 2 || seqs[0] != 3 || seqs[1] != 5 || len(r.Forgotten()) != 3 {
			t.Fatalf("after forgetting 1, 2 and 4: snapshots %v, forgotten %v", seqs, r.Forgotten())
		}
		if _, err := r.SnapshotBySeq(2); !errors.Is(err, repo.ErrNoSnapshot) || !strings.Contains(err.Error(), "forgotten") {
			t.Fatalf("lookup of a forgotten snapshot = %v", err)
		}
		if _, err := r.SnapshotBySeq(9); !errors.Is(err, repo.ErrNoSnapshot) {
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
	if err := other.Repo.Forget(ctx, []uint64{1}); err != nil {
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
	if err := os.Remove(snapshotPath(env, env.Repo, 1)); err != nil {
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
	if err := env2.Repo.Forget(ctx, []uint64{1}); err != nil {
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
	go func() { done <- env.Repo.Forget(ctx, []uint64{1}) }()
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
	for _, s := range env.Repo.Snapshots() {
		seqs = append(seqs, s.Seq)
	}
	if !slices.Equal(seqs, []uint64{2, 3, 4}) {
		t.Fatalf("snapshots %v after the forget, want [2 3 4]", seqs)
	}
	if _, err := env.Reopen(t, t.TempDir(), false); err != nil {
		t.Fatalf("open after the forget: %v", err)
	}
}
