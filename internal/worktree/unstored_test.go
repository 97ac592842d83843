package worktree_test

import (
	"context"
	"testing"

	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/internal/worktree"
	"github.com/sealfs/sealfs/remote/faulty"
	"github.com/sealfs/sealfs/repo"
)

// unstoredCrash commits snapshot 1 (a), then dies in the commit of b after
// it sealed snapshot 2 and remembered it, before its upload landed (the
// next commit stores it first, repo.Repository.Commit), and starts again
// on the same cache: the journals are replayed with snapshot 2 pending.
func unstoredCrash(t *testing.T, env *testutil.Env, work string) *worktree.Tree {
	t.Helper()
	ctx := context.Background()
	tr := open(t, env.Repo, work)
	writeFile(t, tr, tr.Root(), "a", []byte("file a"), true)
	if _, err := tr.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	writeFile(t, tr, tr.Root(), "b", []byte("file b"), true)
	env.Remote.FailOn("put", "snapshots/", 1, faulty.FailBefore)
	if _, err := tr.Commit(ctx); err == nil {
		t.Fatal("a commit whose snapshot upload failed succeeded")
	}
	tr.Close() // the kill
	return open(t, env.Repo, work)
}

// wantFiles reopens the tree on work (a restart after a kill) and reads
// every file back.
func wantFiles(t *testing.T, env *testutil.Env, work string, files map[string]string) {
	t.Helper()
	tr := open(t, env.Repo, work)
	defer tr.Close()
	for name, content := range files {
		if _, _, err := tr.Lookup(t.Context(), tr.Root(), name); err != nil {
			t.Errorf("%s, closed before the kill: %v", name, err)
			continue
		}
		if got := readFile(t, tr, name); string(got) != content {
			t.Errorf("%s = %q, want %q", name, got, content)
		}
	}
}

// TestUnstoredRetryJournalBase (TestCrashMatrix: new files fsynced and
// closed were gone after a kill): a kill left snapshot 2 sealed and
// unstored; the next commit stores it, then its own as 3. Its journal
// was based on 2 (one above the newest when it started), so once the
// commit after it started journal 4 and was killed too, the journal
// holding c was taken for committed (based below the newest, 3) and put
// aside: c, created after the commit of 3 started, was gone.
func TestUnstoredRetryJournalBase(t *testing.T) {
	ctx := context.Background()
	env := testutil.NewRepo(t, repo.InitOptions{})
	work := t.TempDir()
	tr := unstoredCrash(t, env, work)
	writeFile(t, tr, tr.Root(), "c", []byte("file c"), true)
	if snap, err := tr.Commit(ctx); err != nil || snap.Seq != 3 {
		t.Fatalf("the commit after the kill: %v, %v (want snapshot 3, after the retried 2)", snap, err)
	}
	writeFile(t, tr, tr.Root(), "d", []byte("file d"), true)
	env.Remote.FailOn("put", "snapshots/", 1, faulty.FailBefore)
	if _, err := tr.Commit(ctx); err == nil {
		t.Fatal("a commit whose snapshot upload failed succeeded")
	}
	tr.Close() // the kill
	wantFiles(t, env, work, map[string]string{"a": "file a", "b": "file b", "c": "file c", "d": "file d"})
}

// TestUnstoredRetryReplayedJournalBase: a kill left snapshot 2 sealed and
// unstored; the journal written whole at the next start was based on 1.
// The next commit stored 2 (what the tree held at the first kill) and was
// killed before its own snapshot: the replayed journal, based below the
// newest (2), was put aside, and c, created before that commit, was gone.
func TestUnstoredRetryReplayedJournalBase(t *testing.T) {
	ctx := context.Background()
	env := testutil.NewRepo(t, repo.InitOptions{})
	work := t.TempDir()
	tr := unstoredCrash(t, env, work)
	writeFile(t, tr, tr.Root(), "c", []byte("file c"), true)
	// The retried snapshot 2 lands, then the commit fails (the kill).
	env.Remote.FailOn("put", "index/", 1, faulty.FailBefore)
	if _, err := tr.Commit(ctx); err == nil {
		t.Fatal("a commit whose index upload failed succeeded")
	}
	if s := env.Repo.Latest(); s == nil || s.Seq != 2 {
		t.Fatalf("newest snapshot %v, want the retried 2", s)
	}
	tr.Close()
	wantFiles(t, env, work, map[string]string{"a": "file a", "b": "file b", "c": "file c"})
}

// TestUnstoredSupersededAfterReplay: a kill left snapshot 2 sealed and
// unstored, the next start replayed the journals (the journal written
// whole then is based on 2, which it follows), and the writer stopped
// again before any commit; another writer then committed its own 2. At
// the next start the journal based on 2 builds on 1, not on their 2: it
// is replayed on 1 and rebased onto theirs, keeping both sides' files.
func TestUnstoredSupersededAfterReplay(t *testing.T) {
	ctx := context.Background()
	env := testutil.NewRepo(t, repo.InitOptions{})
	work := t.TempDir()
	tr := unstoredCrash(t, env, work)
	writeFile(t, tr, tr.Root(), "c", []byte("file c"), true)
	tr.Close() // killed again, before any commit
	env.Repo.Unlock(ctx)

	rB, trB := otherWriter(t, env)
	writeFile(t, trB, trB.Root(), "z", []byte("theirs z"), true)
	if snap, err := trB.Commit(ctx); err != nil || snap.Seq != 2 {
		t.Fatalf("their commit: %v, %v", snap, err)
	}
	rB.Unlock(ctx)

	rA, err := env.Reopen(t, "", false) // A starts again, on its cache
	if err != nil {
		t.Fatal(err)
	}
	if err := rA.Lock(ctx, false); err != nil {
		t.Fatal(err)
	}
	defer rA.Unlock(ctx)
	if rA.Superseded() != 2 {
		t.Fatalf("superseded = %d, want 2", rA.Superseded())
	}
	tr2 := open(t, rA, work)
	want := map[string]string{"a": "file a", "b": "file b", "c": "file c", "z": "theirs z"}
	for name, content := range want {
		if _, _, err := tr2.Lookup(t.Context(), tr2.Root(), name); err != nil {
			t.Errorf("%s: %v", name, err)
		} else if got := readFile(t, tr2, name); string(got) != content {
			t.Errorf("%s = %q, want %q", name, got, content)
		}
	}
	if snap, err := tr2.Commit(ctx); err != nil || snap == nil || snap.Seq != 3 {
		t.Fatalf("commit: %v, %v", snap, err)
	}
}
