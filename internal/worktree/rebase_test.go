package worktree_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/internal/worktree"
	"github.com/sealfs/sealfs/remote/faulty"
	"github.com/sealfs/sealfs/repo"
)

// overwrite writes data into path (truncating it first when trunc is set,
// else in place over its stored content).
func overwrite(t *testing.T, tr *worktree.Tree, data string, trunc bool, path ...string) {
	t.Helper()
	in := lookup(t, tr, path...)
	h, err := tr.OpenFile(in, true, trunc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.WriteAt([]byte(data), 0); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
}

func lookup(t *testing.T, tr *worktree.Tree, path ...string) *worktree.Inode {
	t.Helper()
	in := tr.Root()
	for _, p := range path {
		var err error
		if in, _, err = tr.Lookup(t.Context(), in, p); err != nil {
			t.Fatalf("lookup %s: %v", strings.Join(path, "/"), err)
		}
	}
	return in
}

// otherWriter is another machine writing to env's repository: a client
// of its own, on a cache of its own, holding the writer lease.
func otherWriter(t *testing.T, env *testutil.Env) (*repo.Repository, *worktree.Tree) {
	t.Helper()
	r, err := env.Reopen(t, t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Lock(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	return r, open(t, r, t.TempDir())
}

// commitAndLeave commits what tr holds and lets go of r's writer lease
// (the writer stops, or goes offline).
func commitAndLeave(t *testing.T, r *repo.Repository, tr *worktree.Tree) {
	t.Helper()
	if _, err := tr.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := r.Unlock(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// comeBackAndCommit takes r's writer lease again and commits what tr
// holds, on top of whatever another writer stored meanwhile (a rebase).
func comeBackAndCommit(t *testing.T, r *repo.Repository, tr *worktree.Tree) {
	t.Helper()
	if err := r.Lock(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func mkdir(t *testing.T, tr *worktree.Tree, dir *worktree.Inode, name string) *worktree.Inode {
	t.Helper()
	in, _, err := tr.Create(t.Context(), dir, name, worktree.NewEntry{Type: repo.NodeDir, Mode: 0o755})
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// TestRebaseMergeRules: a tree opened on snapshot 1 without the lease (an
// offline start) changes files while another writer commits snapshot 2;
// once it holds the lease, its commit carries its changes over onto
// snapshot 2: what only one side changed takes that side's version, a path
// both changed keeps theirs under its name and ours as
// name.conflict-HOST-TIME, a deletion against a change keeps the change,
// directories merge entry by entry. Each conflict is listed.
func TestRebaseMergeRules(t *testing.T) {
	ctx := context.Background()
	env := testutil.NewRepo(t, repo.InitOptions{})
	trA := open(t, env.Repo, t.TempDir())
	for _, name := range []string{"x", "only-ours", "only-theirs", "del-ours", "del-theirs", "untouched"} {
		writeFile(t, trA, trA.Root(), name, []byte("base "+name), true)
	}
	d := mkdir(t, trA, trA.Root(), "d")
	writeFile(t, trA, d, "in-d", []byte("base in-d"), true)
	writeFile(t, trA, mkdir(t, trA, trA.Root(), "gone-there"), "f", []byte("base f"), true)
	commitAndLeave(t, env.Repo, trA) // A goes "offline"

	// B, another machine, commits snapshot 2.
	rB, trB := otherWriter(t, env)
	overwrite(t, trB, "theirs x", true, "x")
	overwrite(t, trB, "theirs only-theirs", true, "only-theirs")
	overwrite(t, trB, "theirs del-ours", true, "del-ours")
	if err := trB.Unlink(t.Context(), trB.Root(), "del-theirs"); err != nil {
		t.Fatal(err)
	}
	writeFile(t, trB, trB.Root(), "z", []byte("theirs z"), true)
	writeFile(t, trB, lookup(t, trB, "d"), "theirs-in-d", []byte("theirs in d"), true)
	writeFile(t, trB, trB.Root(), "both-new", []byte("theirs both-new"), true)
	if err := trB.Unlink(t.Context(), lookup(t, trB, "gone-there"), "f"); err != nil {
		t.Fatal(err)
	}
	if err := trB.Rmdir(t.Context(), trB.Root(), "gone-there"); err != nil {
		t.Fatal(err)
	}
	commitAndLeave(t, rB, trB)

	// Meanwhile A, offline, changes its tree on snapshot 1.
	overwrite(t, trA, "ours x", true, "x")
	overwrite(t, trA, "ours", false, "only-ours")  // in place: an overlay
	overwrite(t, trA, "ours", false, "del-theirs") // in place too
	if err := trA.Unlink(t.Context(), trA.Root(), "del-ours"); err != nil {
		t.Fatal(err)
	}
	writeFile(t, trA, trA.Root(), "y", []byte("ours y"), true)
	writeFile(t, trA, lookup(t, trA, "d"), "ours-in-d", []byte("ours in d"), true)
	writeFile(t, trA, trA.Root(), "both-new", []byte("ours both-new"), true)

	// A takes the lease and commits.
	if err := env.Repo.Lock(ctx, false); err != nil {
		t.Fatal(err)
	}
	snap, err := trA.Commit(ctx)
	if err != nil || snap == nil || snap.Seq != 3 {
		t.Fatalf("commit after the rebase: %v, %v", snap, err)
	}
	conflicts, total := trA.Conflicts()
	kinds := map[string]worktree.Conflict{}
	for _, c := range conflicts {
		kinds[c.Path] = c
	}
	host, _ := os.Hostname()
	for path, kind := range map[string]string{
		"x": worktree.ConflictBoth, "both-new": worktree.ConflictBoth,
		"del-ours": worktree.ConflictDeletedHere, "del-theirs": worktree.ConflictDeletedThere,
	} {
		c, ok := kinds[path]
		if !ok || c.Kind != kind || c.Snapshot != 2 {
			t.Errorf("conflict on %s = %+v, want kind %q on snapshot 2", path, c, kind)
		}
		if kind == worktree.ConflictBoth && !strings.HasPrefix(c.Kept, path+".conflict-"+host+"-") {
			t.Errorf("our %s kept as %q", path, c.Kept)
		}
	}
	if len(conflicts) != 4 || total != 4 {
		t.Errorf("%d conflicts, want 4: %+v", len(conflicts), conflicts)
	}

	// A fresh client sees the merge.
	r3, err := env.Reopen(t, t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	tr3 := open(t, r3, t.TempDir())
	want := map[string]string{
		"x": "theirs x", kinds["x"].Kept: "ours x",
		"both-new": "theirs both-new", kinds["both-new"].Kept: "ours both-new",
		"y": "ours y", "z": "theirs z",
		"only-ours": "ours only-ours", "only-theirs": "theirs only-theirs",
		"del-ours": "theirs del-ours", "del-theirs": "ours del-theirs",
		"untouched": "base untouched",
		"d/in-d":    "base in-d", "d/ours-in-d": "ours in d", "d/theirs-in-d": "theirs in d",
	}
	for path, content := range want {
		if got := readFile(t, tr3, strings.Split(path, "/")...); string(got) != content {
			t.Errorf("%s = %q, want %q", path, got, content)
		}
	}
	if _, _, err := tr3.Lookup(t.Context(), tr3.Root(), "gone-there"); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("a directory the other side removed (and we left alone) came back: %v", err)
	}
	entries, err := tr3.ReadDir(t.Context(), tr3.Root())
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 12 { // the 11 names above at the root, and d
		var names []string
		for _, e := range entries {
			names = append(names, e.Name)
		}
		t.Errorf("root holds %v", names)
	}

	// The rebased journal stands on snapshot 2: a crash now and a restart
	// on the same work directory find nothing more to do.
	if _, err := trA.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if _, n := trA.Conflicts(); n != 4 {
		t.Errorf("a second commit rebased again: %d conflicts", n)
	}
}

// TestRebaseCrashAfterRebase: the journal rewritten by a rebase brings the
// merged tree back after a crash, on top of the newest snapshot.
func TestRebaseCrashAfterRebase(t *testing.T) {
	ctx := context.Background()
	env := testutil.NewRepo(t, repo.InitOptions{})
	work := t.TempDir()
	trA := open(t, env.Repo, work)
	writeFile(t, trA, trA.Root(), "x", []byte("base x"), true)
	if _, err := trA.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	env.Repo.Unlock(ctx)
	rB, trB := otherWriter(t, env)
	overwrite(t, trB, "theirs x", true, "x")
	writeFile(t, trB, trB.Root(), "z", []byte("theirs z"), true)
	if _, err := trB.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	rB.Unlock(ctx)

	overwrite(t, trA, "ours x", true, "x")
	writeFile(t, trA, trA.Root(), "y", []byte("ours y"), true)
	if err := env.Repo.Lock(ctx, false); err != nil {
		t.Fatal(err)
	}
	// The commit rebases, then its snapshot upload fails: the "crash".
	env.Remote.FailOn("put", "snapshots/", 1, faulty.FailBefore)
	if _, err := trA.Commit(ctx); err == nil {
		t.Fatal("commit with a failing remote succeeded")
	}
	conflicts, _ := trA.Conflicts()
	if len(conflicts) != 1 {
		t.Fatalf("conflicts: %+v", conflicts)
	}
	kept := conflicts[0].Kept
	if ns, _ := filepath.Glob(filepath.Join(work, "journal.*")); len(ns) == 0 {
		t.Fatal("no journal left")
	}
	tr2 := open(t, env.Repo, work)
	for path, content := range map[string]string{"x": "theirs x", kept: "ours x", "y": "ours y", "z": "theirs z"} {
		if got := readFile(t, tr2, path); string(got) != content {
			t.Errorf("after the crash, %s = %q, want %q", path, got, content)
		}
	}
}

// TestRebaseAtOpen: a mount that started offline stops (or crashes) with
// its changes still queued while another writer commits; the next start,
// online, finds the journals based on an older snapshot than the newest.
// Those changes were never committed: they are replayed on their own base
// and rebased onto the newest snapshot at once, not put aside.
func TestRebaseAtOpen(t *testing.T) {
	ctx := context.Background()
	env := testutil.NewRepo(t, repo.InitOptions{})
	work := t.TempDir()
	trA := open(t, env.Repo, work)
	writeFile(t, trA, trA.Root(), "x", []byte("base x"), true)
	if _, err := trA.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	env.Repo.Unlock(ctx)
	overwrite(t, trA, "ours x", true, "x")
	writeFile(t, trA, trA.Root(), "y", []byte("ours y"), true)
	// trA is left as it is: the "crash".

	rB, trB := otherWriter(t, env)
	overwrite(t, trB, "theirs x", true, "x")
	writeFile(t, trB, trB.Root(), "z", []byte("theirs z"), true)
	if _, err := trB.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	rB.Unlock(ctx)

	if err := env.Repo.Lock(ctx, false); err != nil { // the next start, online
		t.Fatal(err)
	}
	tr2 := open(t, env.Repo, work)
	conflicts, _ := tr2.Conflicts()
	if len(conflicts) != 1 || conflicts[0].Path != "x" || conflicts[0].Kind != worktree.ConflictBoth {
		t.Fatalf("conflicts at open: %+v", conflicts)
	}
	want := map[string]string{"x": "theirs x", conflicts[0].Kept: "ours x", "y": "ours y", "z": "theirs z"}
	for path, content := range want {
		if got := readFile(t, tr2, path); string(got) != content {
			t.Errorf("at open, %s = %q, want %q", path, got, content)
		}
	}
	if snap, err := tr2.Commit(ctx); err != nil || snap == nil || snap.Seq != 3 {
		t.Fatalf("commit: %v, %v", snap, err)
	}
	r3, err := env.Reopen(t, t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	tr3 := open(t, r3, t.TempDir())
	for path, content := range want {
		if got := readFile(t, tr3, path); string(got) != content {
			t.Errorf("committed %s = %q, want %q", path, got, content)
		}
	}

	// A journal with nothing in it (a clean stop) on an older snapshot is
	// no reason to rebase: the next start shows the newest snapshot.
	env.Repo.Unlock(ctx)
	rB.Lock(ctx, false)
	trB2 := open(t, rB, t.TempDir())
	writeFile(t, trB2, trB2.Root(), "w", []byte("theirs w"), true)
	if _, err := trB2.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	rB.Unlock(ctx)
	if err := env.Repo.Lock(ctx, false); err != nil {
		t.Fatal(err)
	}
	tr4 := open(t, env.Repo, work)
	if c, n := tr4.Conflicts(); n != 0 || tr4.Dirty() {
		t.Fatalf("a clean start rebased: %+v, dirty %v", c, tr4.Dirty())
	}
	if got := readFile(t, tr4, "w"); string(got) != "theirs w" {
		t.Fatalf("w = %q", got)
	}
}

// TestRebaseSupersededCommit: a commit whose snapshot upload failed, then
// the writer stopped; another writer (its lease gone) committed that
// sequence number. The journals of the failed commit are based on the
// number the other writer took; the changes they hold (a new file here)
// are replayed on the failed commit's parent and rebased onto the newest
// snapshot at the next start, not lost.
func TestRebaseSupersededCommit(t *testing.T) {
	ctx := context.Background()
	env := testutil.NewRepo(t, repo.InitOptions{})
	work := t.TempDir()
	trA := open(t, env.Repo, work)
	writeFile(t, trA, trA.Root(), "x", []byte("base x"), true)
	if _, err := trA.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	writeFile(t, trA, trA.Root(), "n", []byte("new n"), true)
	overwrite(t, trA, "ours x", true, "x")
	env.Remote.FailOn("put", "snapshots/", 1, faulty.FailBefore)
	if _, err := trA.Commit(ctx); err == nil {
		t.Fatal("commit with a failing snapshot upload succeeded")
	}
	env.Repo.Unlock(ctx) // A stops; its lease goes (or is broken)

	rB, trB := otherWriter(t, env)
	writeFile(t, trB, trB.Root(), "z", []byte("theirs z"), true)
	overwrite(t, trB, "theirs x", true, "x")
	if _, err := trB.Commit(ctx); err != nil {
		t.Fatal(err)
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
	conflicts, _ := tr2.Conflicts()
	if len(conflicts) != 1 || conflicts[0].Path != "x" {
		t.Fatalf("conflicts: %+v", conflicts)
	}
	want := map[string]string{"n": "new n", "z": "theirs z", "x": "theirs x", conflicts[0].Kept: "ours x"}
	for path, content := range want {
		if got := readFile(t, tr2, path); string(got) != content {
			t.Errorf("%s = %q, want %q", path, got, content)
		}
	}
	if rA.Superseded() != 0 {
		t.Error("the superseded commit is still remembered after the rebase")
	}
	if snap, err := tr2.Commit(ctx); err != nil || snap == nil || snap.Seq != 3 {
		t.Fatalf("commit: %v, %v", snap, err)
	}
	r3, err := env.Reopen(t, t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	tr3 := open(t, r3, t.TempDir())
	for path, content := range want {
		if got := readFile(t, tr3, path); string(got) != content {
			t.Errorf("committed %s = %q, want %q", path, got, content)
		}
	}
}

// TestRebaseCommitLandedAsFork: a commit whose snapshot upload was held
// while the writer stopped; another writer committed that sequence number;
// then the held upload landed: a fork (SPEC §8), whose newest snapshot is
// the other writer's (the later one). At the next start on its cache the
// writer's changes of that snapshot (a new file, a change) are not only in
// the fork: they are replayed on its parent and rebased onto the newest
// snapshot, and the next commit records the fork.
func TestRebaseCommitLandedAsFork(t *testing.T) {
	ctx := context.Background()
	env := testutil.NewRepo(t, repo.InitOptions{})
	work := t.TempDir()
	trA := open(t, env.Repo, work)
	writeFile(t, trA, trA.Root(), "x", []byte("base x"), true)
	if _, err := trA.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	writeFile(t, trA, trA.Root(), "n", []byte("new n"), true)
	overwrite(t, trA, "ours x", true, "x")
	env.Remote.FailOn("put", "snapshots/", 1, faulty.FailBefore)
	if _, err := trA.Commit(ctx); err == nil {
		t.Fatal("commit with a failing snapshot upload succeeded")
	}
	env.Repo.Unlock(ctx) // A stops; its lease goes (or is broken)
	// The upload the remote held, as A sealed it.
	b, err := os.ReadFile(filepath.Join(env.Repo.StateDir(), "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Unstored struct {
			ID     crypt.ID `json:"id"`
			Sealed []byte   `json:"sealed"`
		} `json:"unstored"`
	}
	if err := json.Unmarshal(b, &st); err != nil || st.Unstored.ID.IsZero() {
		t.Fatalf("no unstored snapshot in A's state: %v", err)
	}

	rB, trB := otherWriter(t, env)
	writeFile(t, trB, trB.Root(), "z", []byte("theirs z"), true)
	overwrite(t, trB, "theirs x", true, "x")
	if _, err := trB.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	rB.Unlock(ctx)
	if err := os.WriteFile(filepath.Join(env.Dir, "snapshots", st.Unstored.ID.String()), st.Unstored.Sealed, 0o644); err != nil {
		t.Fatal(err)
	}

	rA, err := env.Reopen(t, "", false) // A starts again, on its cache
	if err != nil {
		t.Fatal(err)
	}
	if err := rA.Lock(ctx, false); err != nil {
		t.Fatal(err)
	}
	defer rA.Unlock(ctx)
	if f := rA.Forks(); len(f) != 1 || f[0].ID != st.Unstored.ID {
		t.Fatalf("forks %v, want A's snapshot 2", f)
	}
	tr2 := open(t, rA, work)
	conflicts, _ := tr2.Conflicts()
	if len(conflicts) != 1 || conflicts[0].Path != "x" {
		t.Fatalf("conflicts: %+v", conflicts)
	}
	want := map[string]string{"n": "new n", "z": "theirs z", "x": "theirs x", conflicts[0].Kept: "ours x"}
	for path, content := range want {
		if got := readFile(t, tr2, path); string(got) != content {
			t.Errorf("%s = %q, want %q", path, got, content)
		}
	}
	snap, err := tr2.Commit(ctx)
	if err != nil || snap == nil || snap.Seq != 3 || len(snap.Forks) != 1 || snap.Forks[0] != st.Unstored.ID {
		t.Fatalf("commit: %+v, %v; want snapshot 3 recording the fork", snap, err)
	}
	r3, err := env.Reopen(t, t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	tr3 := open(t, r3, t.TempDir())
	for path, content := range want {
		if got := readFile(t, tr3, path); string(got) != content {
			t.Errorf("committed %s = %q, want %q", path, got, content)
		}
	}
}
