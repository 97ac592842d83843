package repo_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/remote/faulty"
	"github.com/sealfs/sealfs/repo"
	"github.com/sealfs/sealfs/repo/format"
)

// coldEnv is a repository of n snapshots, snapshot i holding /f with
// content randomData(1000+i, …): each commit replaces the root tree, so
// merges move the older roots into cold index objects.
func coldEnv(t *testing.T, n int) (*testutil.Env, [][]byte) {
	return coldEnvSized(t, n, 300, 0)
}

// coldEnvSized is coldEnv with files of size+i bytes, in packs of
// packSize (0: the default).
func coldEnvSized(t *testing.T, n, size, packSize int) (*testutil.Env, [][]byte) {
	t.Helper()
	env := testutil.NewRepo(t, repo.InitOptions{PackSize: packSize})
	var contents [][]byte
	for i := range n {
		data := randomData(uint64(1000+i), size+i)
		contents = append(contents, data)
		storeFile(t, env.Repo, "f", data)
	}
	head := env.Repo.Latest()
	if head.Version != format.SnapshotColdVersion || len(head.Cold) == 0 {
		t.Fatalf("head of version %d names %d cold index objects", head.Version, len(head.Cold))
	}
	return env, contents
}

// TestColdIndexOpen: the newest snapshot names cold index objects holding
// the older snapshots' roots; a fresh open loads only the main ones (an
// old root is not in its index), and still reads every snapshot (through
// the cold objects), and check --read-data is clean.
func TestColdIndexOpen(t *testing.T) {
	env, contents := coldEnv(t, 40)
	snaps := snapshots(t, env.Repo)
	fresh, err := env.Reopen(t, t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	inMain := 0
	for _, s := range snaps[:len(snaps)-1] {
		if _, ok := fresh.Index().Lookup(s.Tree); ok {
			inMain++
		}
	}
	if inMain > 8 {
		t.Fatalf("%d of %d older roots in the index a fresh open loads", inMain, len(snaps)-1)
	}
	// The newest snapshot is read without the cold objects.
	if got, err := readFileIn(fresh, fresh.Latest(), "f"); err != nil || !bytes.Equal(got, contents[len(contents)-1]) {
		t.Fatalf("the newest snapshot of a fresh open: %d bytes, %v", len(got), err)
	}
	if repo.ColdLoadedForTest(fresh) {
		t.Fatal("reading the newest snapshot loaded the cold index objects")
	}
	for _, s := range snaps {
		got, err := readFileIn(fresh, s, "f")
		if err != nil || !bytes.Equal(got, contents[s.Seq-1]) {
			t.Fatalf("snapshot %d of a fresh open: %d bytes, %v", s.Seq, len(got), err)
		}
	}
	checkAll(t, env, contents, false)
}

// folderPutBack is a history whose folder x (one file) is in the first 4
// snapshots, gone from the next 16 — merges move its tree into cold index
// objects — and put back the same in the 21st, so that the newest root
// reaches a tree only a cold object lists (the writer finds the tree and
// does not store it again).
type folderPutBack struct {
	sub    crypt.ID                // x's tree
	commit func(i int, withX bool) // commits a root of a file n (randomData(seed+i, 100+i)) and, withX, x
}

// newFolderPutBack commits that history in r, x holding file with data.
func newFolderPutBack(t *testing.T, r *repo.Repository, data []byte, seed uint64) folderPutBack {
	t.Helper()
	ctx := context.Background()
	content, size, err := r.SaveFile(ctx, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	sub, err := r.SaveTree(ctx, &repo.Tree{Nodes: []*repo.Node{{Name: []byte("file"), Type: repo.NodeFile, Mode: 0o644, Size: size, Content: content}}})
	if err != nil {
		t.Fatal(err)
	}
	h := folderPutBack{sub: sub}
	h.commit = func(i int, withX bool) {
		t.Helper()
		c, sz, err := r.SaveFile(ctx, bytes.NewReader(randomData(seed+uint64(i), 100+i)))
		if err != nil {
			t.Fatal(err)
		}
		nodes := []*repo.Node{{Name: []byte("n"), Type: repo.NodeFile, Mode: 0o644, Size: sz, Content: c}}
		if withX {
			nodes = append(nodes, &repo.Node{Name: []byte("x"), Type: repo.NodeDir, Mode: 0o755, Subtree: sub})
		}
		root, err := r.SaveTree(ctx, &repo.Tree{Nodes: nodes})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Commit(ctx, root, repo.CommitInfo{}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 21 {
		h.commit(i, i < 4 || i == 20)
	}
	return h
}

// TestColdMisclassifiedRead: a folder removed (its tree goes cold) and
// then put back the same (the writer finds its tree and stores nothing) is
// reached by the newest root through a tree only a cold object lists: a
// fresh open reads it through the fallback, nothing is missed.
func TestColdMisclassifiedRead(t *testing.T) {
	env := testutil.NewRepo(t, repo.InitOptions{})
	ctx := context.Background()
	data := randomData(5, 4000)
	sub := newFolderPutBack(t, env.Repo, data, 600).sub
	fresh, err := env.Reopen(t, t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := fresh.Index().Lookup(sub); ok {
		t.Fatal("precondition: the folder's tree is in the main index objects")
	}
	head := fresh.Latest()
	root, err := fresh.LoadTree(ctx, head.Tree)
	if err != nil {
		t.Fatal(err)
	}
	x, err := fresh.LoadTree(ctx, root.Find([]byte("x")).Subtree)
	if err != nil {
		t.Fatalf("the put-back folder of the newest snapshot: %v", err)
	}
	var buf bytes.Buffer
	if _, err := fresh.OpenFile(x.Find([]byte("file"))).CopyTo(ctx, &buf); err != nil || !bytes.Equal(buf.Bytes(), data) {
		t.Fatalf("x/file reads %d bytes, %v", buf.Len(), err)
	}
	rep, err := fresh.Check(ctx, repo.CheckOptions{ReadData: true})
	if err != nil || !rep.OK() {
		t.Fatalf("check: %v %v", err, rep.Problems)
	}
}

// TestColdIndexDeleted: a deleted cold index object leaves the newest
// snapshot open and readable; reading older history is an integrity error
// naming the object, and check reports it.
func TestColdIndexDeleted(t *testing.T) {
	env, contents := coldEnv(t, 40)
	head := env.Repo.Latest()
	name := format.IndexName(head.Cold[0])
	if err := os.Remove(filepath.Join(env.Dir, name)); err != nil {
		t.Fatal(err)
	}
	fresh, err := env.Reopen(t, t.TempDir(), false)
	if err != nil {
		t.Fatalf("open without a cold index object: %v", err)
	}
	if got, err := readFileIn(fresh, fresh.Latest(), "f"); err != nil || !bytes.Equal(got, contents[len(contents)-1]) {
		t.Fatalf("the newest snapshot: %d bytes, %v", len(got), err)
	}
	old, err := fresh.SnapshotBySeq(context.Background(), 2)
	if err != nil {
		t.Fatal(err)
	}
	err = fresh.LoadIndexesOf(context.Background(), old)
	if err == nil {
		_, err = readFileIn(fresh, old, "f")
	}
	if !errors.Is(err, repo.ErrIntegrity) || !strings.Contains(err.Error(), name) {
		t.Fatalf("reading snapshot 2: %v, want an integrity error naming %s", err, name)
	}
	rep, err := fresh.Check(context.Background(), repo.CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || !strings.Contains(fmt.Sprint(rep.Problems), name) {
		t.Fatalf("check: %v, want a problem naming %s", rep.Problems, name)
	}
}

// TestColdPruneAfterForget: a prune that rewrites nothing keeps the cold
// index objects (the newest snapshot names them); forget of every other
// snapshot and a prune that rewrites leave every retained snapshot
// readable byte for byte, and check --read-data clean.
func TestColdPruneAfterForget(t *testing.T) {
	// Packs of one commit each, none small (a prune keeps them as they
	// are): the first prune rewrites nothing.
	env, contents := coldEnvSized(t, 40, 300<<10, 1<<20)
	ctx := context.Background()
	r := env.Repo
	byTree := map[crypt.ID][]byte{}
	for _, s := range snapshots(t, r) {
		byTree[s.Tree] = contents[s.Seq-1]
	}
	rep, err := r.Prune(ctx, repo.PruneOptions{MaxUnusedPct: 100})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Snapshot != nil || len(r.Latest().Cold) == 0 {
		t.Fatalf("precondition: a prune that rewrites nothing: %+v", rep)
	}
	for _, x := range r.Latest().Cold {
		if _, err := os.Stat(filepath.Join(env.Dir, format.IndexName(x))); err != nil {
			t.Fatalf("a prune deleted cold index object %s the newest snapshot names: %v", x.Short(), err)
		}
	}
	checkRetained(t, env, byTree, 40)
	var forget []crypt.ID
	for _, s := range snapshots(t, r) {
		if s.Seq%2 == 1 && s.Seq < 39 {
			forget = append(forget, s.ID)
		}
	}
	if err := r.Forget(ctx, forget); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Prune(ctx, repo.PruneOptions{MaxUnusedPct: 0}); err != nil {
		t.Fatal(err)
	}
	// More commits after the prune: merges go cold again.
	for i := range 20 {
		data := randomData(uint64(2000+i), 300+i)
		byTree[storeFile(t, r, "f", data).Tree] = data
	}
	if len(r.Latest().Cold) == 0 {
		t.Fatal("no cold index object after the prune's commits")
	}
	checkRetained(t, env, byTree, 40-len(forget)+20)
}

// checkRetained opens the repository on a fresh cache, checks it with
// --read-data (no problem), and reads /f of every snapshot, whose content
// must be byTree's for its root tree; at least n snapshots.
func checkRetained(t *testing.T, env *testutil.Env, byTree map[crypt.ID][]byte, n int) {
	t.Helper()
	r, err := env.Reopen(t, t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := r.Check(context.Background(), repo.CheckOptions{ReadData: true})
	if err != nil || !rep.OK() {
		t.Fatalf("check: %v %v", err, rep.Problems)
	}
	snaps := snapshots(t, r)
	if len(snaps) < n {
		t.Fatalf("%d snapshots, want at least %d", len(snaps), n)
	}
	for _, s := range snaps {
		want, ok := byTree[s.Tree]
		got, err := readFileIn(r, s, "f")
		if !ok || err != nil || !bytes.Equal(got, want) {
			t.Fatalf("snapshot %d reads %d bytes (%v), want %d", s.Seq, len(got), err, len(want))
		}
	}
}

// TestColdFork: a fork snapshot whose own writer moved trees cold is read
// through its cold objects before a writer records it, through the
// newest snapshot's lists after (the recording names them), after merges
// of ours moved its trees cold again, and after a prune; check
// --read-data stays clean.
func TestColdFork(t *testing.T) {
	ctx := context.Background()
	f := newForkRepo(t)
	if len(f.theirs.Cold) == 0 {
		t.Fatalf("precondition: the fork snapshot names no cold index object (version %d)", f.theirs.Version)
	}
	readTheirs := func(step string) {
		t.Helper()
		fresh, err := f.env.Reopen(t, t.TempDir(), false)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if err := fresh.LoadIndexesOf(ctx, f.theirs); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if got, err := readFileIn(fresh, f.theirs, "theirs"); err != nil || string(got) != "theirs 2" {
			t.Fatalf("%s: theirs reads %q, %v", step, got, err)
		}
		rep, err := fresh.Check(ctx, repo.CheckOptions{ReadData: true})
		if err != nil || !rep.OK() {
			t.Fatalf("%s: check: %v %v", step, err, rep.Problems)
		}
	}
	readTheirs("unrecorded")
	r := lockedReopen(t, f.env)
	storeFile(t, r, "ours", []byte("ours 4"))
	if len(r.UnrecordedForks()) != 0 {
		t.Fatal("the fork is not recorded")
	}
	readTheirs("recorded")
	for i := range 30 {
		storeFile(t, r, "ours", randomData(uint64(3000+i), 200))
	}
	readTheirs("after merges")
	if _, err := r.Prune(ctx, repo.PruneOptions{MaxUnusedPct: 0}); err != nil {
		t.Fatal(err)
	}
	readTheirs("after a prune")
}

// TestColdCrashBetweenSteps: a writer dies at each step of commits that
// move trees cold (their own index object, the cold object, the merged
// one, the snapshot; each failing before or after it lands, or landing in
// part), and the next run on its cache goes on: every snapshot reads back
// byte for byte on a fresh client, check --read-data finds no problem,
// and the newest snapshot still names cold objects.
func TestColdCrashBetweenSteps(t *testing.T) {
	ctx := context.Background()
	for _, mode := range []faulty.Mode{faulty.FailBefore, faulty.FailAfter, faulty.FailPartial} {
		for _, step := range []struct {
			prefix string
			n      int
		}{{"index/", 1}, {"index/", 2}, {"index/", 3}, {"snapshots/", 1}} {
			t.Run(fmt.Sprintf("%s%d-mode%d", step.prefix, step.n, mode), func(t *testing.T) {
				env, _ := coldEnv(t, 12)
				byTree := map[crypt.ID][]byte{}
				for _, s := range snapshots(t, env.Repo) {
					got, err := readFileIn(env.Repo, s, "f")
					if err != nil {
						t.Fatal(err)
					}
					byTree[s.Tree] = got
				}
				env.Remote.FailOn("put", step.prefix, step.n, mode)
				r := env.Repo
				died := false
				for i := 0; i < 4 && !died; i++ {
					data := randomData(uint64(4000+i), 300)
					content, size, err := r.SaveFile(ctx, bytes.NewReader(data))
					if err != nil {
						t.Fatal(err)
					}
					root, err := r.SaveTree(ctx, &repo.Tree{Nodes: []*repo.Node{{Name: []byte("f"), Type: repo.NodeFile, Mode: 0o644, Size: size, Content: content}}})
					if err != nil {
						t.Fatal(err)
					}
					byTree[root] = data
					if _, err := r.Commit(ctx, root, repo.CommitInfo{}); err != nil {
						if !errors.Is(err, faulty.ErrInjected) {
							t.Fatal(err)
						}
						died = true // the writer is gone here
					}
				}
				if !died {
					t.Fatal("no step failed")
				}
				next, err := env.Reopen(t, "", false)
				if err != nil && errors.Is(err, repo.ErrIntegrity) && mode == faulty.FailPartial && step.prefix == "snapshots/" {
					// A cut-off snapshot: the next run on the same
					// cache stores it whole (TestCommitCrashDuringSnapshotUpload).
					next, err = env.Reopen(t, "", true)
				}
				if err != nil {
					t.Fatalf("reopen on the dead writer's cache: %v", err)
				}
				if err := next.Lock(ctx, true); err != nil {
					t.Fatal(err)
				}
				for i := range 12 {
					data := randomData(uint64(5000+i), 300)
					byTree[storeFile(t, next, "f", data).Tree] = data
				}
				if len(next.Latest().Cold) == 0 {
					t.Fatal("the newest snapshot names no cold index object")
				}
				_ = next.Unlock(ctx)
				checkRetained(t, env, byTree, 20)
			})
		}
	}
}

// TestColdConcurrentLoad: readers of old snapshots on a fresh open, all at
// once, load the cold index objects once between them and read right
// (run with -race).
func TestColdConcurrentLoad(t *testing.T) {
	env, contents := coldEnv(t, 40)
	fresh, err := env.Reopen(t, t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	snaps := snapshots(t, fresh)
	errs := make(chan error, len(snaps))
	for _, s := range snaps {
		go func() {
			got, err := readFileIn(fresh, s, "f")
			if err == nil && !bytes.Equal(got, contents[s.Seq-1]) {
				err = fmt.Errorf("snapshot %d reads other content", s.Seq)
			}
			errs <- err
		}()
	}
	for range snaps {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
