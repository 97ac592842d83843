package worktree_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/internal/worktree"
	"github.com/sealfs/sealfs/repo"
)

// TestReplayLinkRecords: link records are replayed (a name given to a
// file survives the unlink of the first name) and checked like the other
// records: one without a target or with a path that is no path is refused
// as malformed; one that links a directory, or a name that is not there,
// is not replayed and changes nothing. The hostile records come in a
// plaintext journal of an older sealfs, as in TestHostileJournalRecord.
func TestReplayLinkRecords(t *testing.T) {
	env := testutil.NewRepo(t, repo.InitOptions{})
	work := t.TempDir()
	var journal bytes.Buffer
	for _, line := range []string{
		`{"op":"base","seq":0}`,
		`{"op":"create","path":"ZGly","meta":{"Type":2,"Mode":493}}`,     // "dir"
		`{"op":"create","path":"dmljdGlt","meta":{"Type":1,"Mode":420}}`, // "victim"
		`{"op":"link","path":"dmljdGlt","to":"ZGlyL29r"}`,                // victim -> dir/ok
		`{"op":"link","path":"dmljdGlt","to":"dmljdGltMg=="}`,            // victim -> victim2
		`{"op":"unlink","path":"dmljdGlt"}`,                              // victim
		`{"op":"link","path":"ZGlyL29r"}`,                                // no target
		`{"op":"link","path":"ZGlyL29r","to":"YS8vYg=="}`,                // dir/ok -> "a//b"
		`{"op":"link","path":"ZGly","to":"ZGxpbms="}`,                    // dir -> dlink
		`{"op":"link","path":"bWlzc2luZw==","to":"eA=="}`,                // missing -> x
	} {
		journal.WriteString(line + "\n")
	}
	if err := os.WriteFile(filepath.Join(work, "journal.0000000000000001"), journal.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	var logBuf bytes.Buffer
	tr, err := worktree.Open(context.Background(), env.Repo, worktree.Options{Dir: work, Log: slog.New(slog.NewTextHandler(&logBuf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	dir, _, err := tr.Lookup(ctx, tr.Root(), "dir")
	if err != nil {
		t.Fatal(err)
	}
	ok, a, err := tr.Lookup(ctx, dir, "ok")
	if err != nil {
		t.Fatal(err)
	}
	v2, a2, err := tr.Lookup(ctx, tr.Root(), "victim2")
	if err != nil || v2 != ok || a.Nlink != 2 || a2.Nlink != 2 {
		t.Fatalf("dir/ok and victim2: one inode %v, nlink %d and %d, %v; want one inode with nlink 2", v2 == ok, a.Nlink, a2.Nlink, err)
	}
	for _, name := range []string{"victim", "dlink", "x", "a"} {
		if _, _, err := tr.Lookup(ctx, tr.Root(), name); err == nil {
			t.Errorf("%q is there after the replay", name)
		}
	}
	if d := tr.Attr(dir); d.Nlink != 2 {
		t.Errorf("dir: nlink %d after a refused link of it, want 2", d.Nlink)
	}
	log := logBuf.String()
	if n := strings.Count(log, "malformed journal record"); n != 2 {
		t.Errorf("%d malformed records logged, want 2:\n%s", n, log)
	}
	if n := strings.Count(log, "journal record could not be replayed"); n != 4 {
		t.Errorf("%d records not replayed, want 4:\n%s", n, log)
	}
}

// TestLinkCrashReplay: hard links are found again after a crash of the
// daemon (the Tree reopened on its work folder without a close), twice in
// a row, and after a commit on a fresh cache: a link to a committed file
// whose first name was then unlinked and which was changed through
// another name, and a link to a file still open for writing across a
// commit that left it out (its journal must make it again with both
// names).
func TestLinkCrashReplay(t *testing.T) {
	ctx := context.Background()
	env := testutil.NewRepo(t, repo.InitOptions{})
	work := t.TempDir()
	tr := open(t, env.Repo, work)
	writeFile(t, tr, tr.Root(), "c", []byte("committed"), true)
	d, _, err := tr.Create(ctx, tr.Root(), "d", worktree.NewEntry{Type: repo.NodeDir, Mode: 0o755})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	c, _, _ := tr.Lookup(ctx, tr.Root(), "c")
	link := func(in, dir *worktree.Inode, name string) {
		t.Helper()
		if _, err := tr.Link(ctx, in, dir, name); err != nil {
			t.Fatalf("link %s: %v", name, err)
		}
	}
	link(c, d, "c2")
	link(c, tr.Root(), "x")
	if err := tr.Unlink(ctx, tr.Root(), "c"); err != nil {
		t.Fatal(err)
	}
	mode := uint32(0o600)
	if _, err := tr.SetAttr(c, worktree.SetAttr{Mode: &mode}); err != nil {
		t.Fatal(err)
	}
	h := writeFile(t, tr, tr.Root(), "w", []byte("partial"), false)
	w, _, _ := tr.Lookup(ctx, tr.Root(), "w")
	link(w, d, "w2")
	if err := h.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Commit(ctx); err != nil { // w is open: left out
		t.Fatal(err)
	}
	if _, err := h.WriteAt([]byte(" and more"), 7); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}

	check := func(when string, tr *worktree.Tree) {
		t.Helper()
		for _, g := range []struct {
			names [][]string
			want  string
		}{
			{[][]string{{"d", "c2"}, {"x"}}, "committed"},
			{[][]string{{"w"}, {"d", "w2"}}, "partial and more"},
		} {
			var first *worktree.Inode
			for _, path := range g.names {
				in := tr.Root()
				for _, name := range path {
					if in, _, err = tr.Lookup(ctx, in, name); err != nil {
						t.Fatalf("%s: %v: %v", when, path, err)
					}
				}
				a := tr.Attr(in)
				if first == nil {
					first = in
				}
				if in != first || a.Nlink != 2 {
					t.Errorf("%s: %v is one inode with the others: %v, nlink %d; want nlink 2", when, path, in == first, a.Nlink)
				}
				if got := readFile(t, tr, path...); string(got) != g.want {
					t.Errorf("%s: %v reads %q, want %q", when, path, got, g.want)
				}
			}
		}
		x, _, _ := tr.Lookup(ctx, tr.Root(), "x")
		if a := tr.Attr(x); a.Mode != 0o600 {
			t.Errorf("%s: x has mode %o, want 600 (set through the name that was unlinked)", when, a.Mode)
		}
		if _, _, err := tr.Lookup(ctx, tr.Root(), "c"); err == nil {
			t.Errorf("%s: the unlinked name c is back", when)
		}
	}
	check("before the crash", tr)
	tr2 := open2(t, env.Repo, work)
	check("after a crash", tr2)
	tr3 := open2(t, env.Repo, work)
	check("after a second crash", tr3)
	if _, err := tr3.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	r2, err := env.Reopen(t, t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	check("on a fresh cache", open2(t, r2, filepath.Join(t.TempDir(), "w")))
}

// TestRebaseLinks: a rebase (an offline start while another writer
// committed) keeps hard links on both sides: their changed link group
// comes in as one inode, our new name keeps our inode (the merge goes
// path by path: the name they took over from us is theirs, so our new name
// is no longer a link of it), and nothing is lost.
func TestRebaseLinks(t *testing.T) {
	ctx := context.Background()
	env := testutil.NewRepo(t, repo.InitOptions{})
	trA := open(t, env.Repo, t.TempDir())
	writeFile(t, trA, trA.Root(), "l1", []byte("base"), true)
	d := mkdir(t, trA, trA.Root(), "d")
	if _, err := trA.Link(ctx, lookup(t, trA, "l1"), d, "l2"); err != nil {
		t.Fatal(err)
	}
	writeFile(t, trA, trA.Root(), "u", []byte("base u"), true)
	commitAndLeave(t, env.Repo, trA) // A goes "offline"

	// B, another machine, writes through one name of the group and links u.
	rB, trB := otherWriter(t, env)
	overwrite(t, trB, "theirs", true, "d", "l2")
	if _, err := trB.Link(ctx, lookup(t, trB, "u"), trB.Root(), "u-theirs"); err != nil {
		t.Fatal(err)
	}
	commitAndLeave(t, rB, trB)

	// A, offline, gives u a name of its own, then commits.
	if _, err := trA.Link(ctx, lookup(t, trA, "u"), trA.Root(), "u-ours"); err != nil {
		t.Fatal(err)
	}
	if err := env.Repo.Lock(ctx, false); err != nil {
		t.Fatal(err)
	}
	if snap, err := trA.Commit(ctx); err != nil || snap == nil || snap.Seq != 3 {
		t.Fatalf("commit after the rebase: %v, %v", snap, err)
	}

	r3, err := env.Reopen(t, t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range []*worktree.Tree{trA, open(t, r3, t.TempDir())} {
		group := func(want string, paths ...[]string) {
			t.Helper()
			first := lookup(t, tr, paths[0]...)
			for _, p := range paths {
				in := lookup(t, tr, p...)
				if a := tr.Attr(in); in != first || a.Nlink != uint32(len(paths)) {
					t.Errorf("%v: one inode with %v: %v, nlink %d; want %d", p, paths[0], in == first, a.Nlink, len(paths))
				}
				if got := readFile(t, tr, p...); string(got) != want {
					t.Errorf("%v reads %q, want %q", p, got, want)
				}
			}
		}
		group("theirs", []string{"l1"}, []string{"d", "l2"})
		group("base u", []string{"u"}, []string{"u-theirs"})
		if got := readFile(t, tr, "u-ours"); string(got) != "base u" {
			t.Errorf("u-ours reads %q", got)
		}
	}
}

// TestRebaseLinkIntoNewFolder: another writer gives a hard-linked file a
// further name in a folder of its own making while this mount is offline.
// Across the rebase the new name is a name of the same inode as the names
// that stood (it was a separate copy: a write through it did not show
// through the others, and the next commit dropped it from the group).
func TestRebaseLinkIntoNewFolder(t *testing.T) {
	ctx := context.Background()
	env := testutil.NewRepo(t, repo.InitOptions{})
	trA := open(t, env.Repo, t.TempDir())
	x := mkdir(t, trA, trA.Root(), "x")
	writeFile(t, trA, x, "p", []byte("base"), true)
	if _, err := trA.Link(ctx, lookup(t, trA, "x", "p"), x, "r"); err != nil {
		t.Fatal(err)
	}
	commitAndLeave(t, env.Repo, trA) // A goes "offline"

	rB, trB := otherWriter(t, env)
	y := mkdir(t, trB, trB.Root(), "y")
	if _, err := trB.Link(ctx, lookup(t, trB, "x", "p"), y, "q"); err != nil {
		t.Fatal(err)
	}
	commitAndLeave(t, rB, trB)

	writeFile(t, trA, trA.Root(), "mine", []byte("ours"), true)
	comeBackAndCommit(t, env.Repo, trA)
	overwrite(t, trA, "through q", false, "y", "q")
	if _, err := trA.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	r3, err := env.Reopen(t, t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	for i, tr := range []*worktree.Tree{trA, open(t, r3, t.TempDir())} {
		first := lookup(t, tr, "x", "p")
		for _, p := range [][]string{{"x", "p"}, {"x", "r"}, {"y", "q"}} {
			in := lookup(t, tr, p...)
			if a := tr.Attr(in); in != first || a.Nlink != 3 {
				t.Errorf("tree %d: %v: one inode with x/p: %v, nlink %d; want 3", i, p, in == first, a.Nlink)
			}
			if got := readFile(t, tr, p...); string(got) != "through q" {
				t.Errorf("tree %d: %v reads %q, want %q", i, p, got, "through q")
			}
		}
	}
}

// TestRebaseNewLinkGroup: another writer links a file of ours into a
// folder of its own making while this mount is offline, and this mount
// commits without touching that folder. The snapshot keeps the two names
// one group (the file's name was committed alone, its group left with one
// name in the folder never loaded: a fresh mount saw two files).
func TestRebaseNewLinkGroup(t *testing.T) {
	ctx := context.Background()
	env := testutil.NewRepo(t, repo.InitOptions{})
	trA := open(t, env.Repo, t.TempDir())
	x := mkdir(t, trA, trA.Root(), "x")
	writeFile(t, trA, x, "p", []byte("base"), true)
	commitAndLeave(t, env.Repo, trA) // A goes "offline"

	rB, trB := otherWriter(t, env)
	y := mkdir(t, trB, trB.Root(), "y")
	if _, err := trB.Link(ctx, lookup(t, trB, "x", "p"), y, "q"); err != nil {
		t.Fatal(err)
	}
	commitAndLeave(t, rB, trB)

	writeFile(t, trA, trA.Root(), "mine", []byte("ours"), true)
	comeBackAndCommit(t, env.Repo, trA)
	r3, err := env.Reopen(t, t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	tr := open(t, r3, t.TempDir())
	p, q := lookup(t, tr, "x", "p"), lookup(t, tr, "y", "q")
	if p != q || tr.Attr(p).Nlink != 2 {
		t.Errorf("after the commit x/p and y/q are one inode: %v, nlink %d; want 2", p == q, tr.Attr(p).Nlink)
	}
}

// TestHostileRecordAttributes: a create or setattr record whose
// attributes no tree may hold (xattrs unsorted, repeated or over the
// limits, mode bits beyond 07777, an unknown type, a link group on a
// folder) is refused at replay; the rest of the journal is replayed and
// commits (the entry went into the tree, and every commit after failed:
// nothing more reached the remote).
func TestHostileRecordAttributes(t *testing.T) {
	env := testutil.NewRepo(t, repo.InitOptions{})
	work := t.TempDir()
	var journal bytes.Buffer
	for _, line := range []string{
		`{"op":"base","seq":0}`,
		`{"op":"create","path":"Z29vZA==","meta":{"Type":1,"Mode":420}}`, // "good"
		`{"op":"create","path":"YQ==","meta":{"Type":1,"Mode":420,"Xattrs":[{"Name":"dXNlci5i"},{"Name":"dXNlci5h"}]}}`,
		`{"op":"create","path":"Yg==","meta":{"Type":1,"Mode":420,"Xattrs":[{"Name":"dXNlci5h"},{"Name":"dXNlci5h"}]}}`,
		`{"op":"create","path":"Yw==","meta":{"Type":1,"Mode":33188}}`,
		`{"op":"create","path":"ZA==","meta":{"Type":99,"Mode":420}}`,
		`{"op":"create","path":"ZQ==","meta":{"Type":1,"Mode":420,"Size":5}}`,
		`{"op":"create","path":"Zg==","meta":{"Type":3,"Mode":511}}`,
		`{"op":"setattr","path":"Z29vZA==","meta":{"Mode":33279}}`,
	} {
		journal.WriteString(line + "\n")
	}
	if err := os.WriteFile(filepath.Join(work, "journal.0000000000000001"), journal.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	tr := open(t, env.Repo, work)
	if _, err := tr.Commit(context.Background()); err != nil {
		t.Fatalf("commit after a journal with hostile records: %v", err)
	}
	tr2 := open(t, env.Repo, t.TempDir())
	if a := tr2.Attr(lookup(t, tr2, "good")); a.Mode&^uint32(syscall.S_IFMT) != 0o644 {
		t.Errorf("good has mode %o after the hostile setattr", a.Mode)
	}
}

// TestRebaseNewLinkGroupCrash: as TestRebaseNewLinkGroup, but this mount
// rebases as it starts (its journal is based on the older snapshot) and
// is killed before it commits: the journal written at the rebase keeps
// the two names one group.
func TestRebaseNewLinkGroupCrash(t *testing.T) {
	ctx := context.Background()
	env := testutil.NewRepo(t, repo.InitOptions{})
	work := t.TempDir()
	trA := open(t, env.Repo, work)
	x := mkdir(t, trA, trA.Root(), "x")
	writeFile(t, trA, x, "p", []byte("base"), true)
	if _, err := trA.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	writeFile(t, trA, trA.Root(), "mine", []byte("ours"), true)
	if err := env.Repo.Unlock(ctx); err != nil { // A goes "offline", then dies
		t.Fatal(err)
	}

	rB, trB := otherWriter(t, env)
	y := mkdir(t, trB, trB.Root(), "y")
	if _, err := trB.Link(ctx, lookup(t, trB, "x", "p"), y, "q"); err != nil {
		t.Fatal(err)
	}
	commitAndLeave(t, rB, trB)

	rA, err := env.Reopen(t, t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	if err := rA.Lock(ctx, false); err != nil {
		t.Fatal(err)
	}
	open(t, rA, work) // rebases onto B's snapshot as it starts; killed
	tr := open(t, rA, work)
	if _, err := tr.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	r3, err := env.Reopen(t, t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	tr3 := open(t, r3, t.TempDir())
	p, q := lookup(t, tr3, "x", "p"), lookup(t, tr3, "y", "q")
	if p != q || tr3.Attr(p).Nlink != 2 || string(readFile(t, tr3, "mine")) != "ours" {
		t.Errorf("after the crash and a commit x/p and y/q are one inode: %v, nlink %d; want 2", p == q, tr3.Attr(p).Nlink)
	}
}
