package worktree_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/internal/worktree"
	"github.com/sealfs/sealfs/remote/faulty"
	"github.com/sealfs/sealfs/repo"
)

// journalBytes is the size of the journals in work.
func journalBytes(t *testing.T, work string) int64 {
	t.Helper()
	js, err := filepath.Glob(filepath.Join(work, "journal.*"))
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, p := range js {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		n += fi.Size()
	}
	return n
}

// TestInlineRewritesBoundJournal: a small file changed and closed again
// and again (a state file rewritten in place, a log appended to by a
// script) puts its whole content into the journal once, not at every
// close: the journal is read whole at a replay, so it must not grow by
// 64 KiB at each one-byte change; and the file reads as last closed after
// a crash.
func TestInlineRewritesBoundJournal(t *testing.T) {
	env := testutil.NewRepo(t, repo.InitOptions{})
	work := t.TempDir()
	tr := open(t, env.Repo, work)
	want := bytes.Repeat([]byte("s"), 60000)
	writeFile(t, tr, tr.Root(), "state", want, true)
	for i := range 100 {
		h, err := tr.OpenFile(lookup(t, tr, "state"), true, i%2 == 1)
		if err != nil {
			t.Fatal(err)
		}
		want[i] = 'x'
		if _, err := h.WriteAt(want, 0); err != nil {
			t.Fatal(err)
		}
		if err := h.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if n := journalBytes(t, work); n > 1<<20 {
		t.Errorf("100 rewrites of a 60,000-byte file: %d bytes of journal, want < 1 MiB", n)
	}
	checkFiles(t, "before the crash", tr, map[string][]byte{"state": want})
	tr2 := open(t, env.Repo, work)
	defer tr2.Close()
	checkFiles(t, "after the crash", tr2, map[string][]byte{"state": want})
}

// TestInlineLinkedCrash: a small file with two names, rewritten through
// the second, then its first name removed, reads as last closed through
// the name left after a crash, and after a commit from a fresh cache.
func TestInlineLinkedCrash(t *testing.T) {
	ctx := t.Context()
	env := testutil.NewRepo(t, repo.InitOptions{})
	work := t.TempDir()
	tr := open(t, env.Repo, work)
	writeFile(t, tr, tr.Root(), "a", []byte("first content"), true)
	if _, err := tr.Link(ctx, lookup(t, tr, "a"), tr.Root(), "b"); err != nil {
		t.Fatal(err)
	}
	h, err := tr.OpenFile(lookup(t, tr, "b"), true, true)
	if err != nil {
		t.Fatal(err)
	}
	h.WriteAt([]byte("second"), 0)
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{"a": []byte("second"), "b": []byte("second")}
	tr2 := open(t, env.Repo, work)
	checkFiles(t, "after a crash", tr2, want)
	if err := tr2.Unlink(ctx, tr2.Root(), "a"); err != nil {
		t.Fatal(err)
	}
	tr3 := open(t, env.Repo, work)
	checkFiles(t, "after a second crash", tr3, map[string][]byte{"b": []byte("second")})
	if _, err := tr3.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	tr3.Close()
	r4, err := env.Reopen(t, t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	tr4 := open(t, r4, t.TempDir())
	defer tr4.Close()
	checkFiles(t, "fresh cache", tr4, map[string][]byte{"b": []byte("second")})
}

// TestInlineMovedDirCrash: small files in a folder renamed after they were
// closed, then one replaced by a rename over it, read as left after a
// crash.
func TestInlineMovedDirCrash(t *testing.T) {
	ctx := t.Context()
	env := testutil.NewRepo(t, repo.InitOptions{})
	work := t.TempDir()
	tr := open(t, env.Repo, work)
	d, _, err := tr.Create(ctx, tr.Root(), "d", worktree.NewEntry{Type: repo.NodeDir, Mode: 0o755})
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, tr, d, "x", []byte("xxxx"), true)
	writeFile(t, tr, d, "y", []byte("yyyyyyyy"), true)
	if err := tr.Rename(ctx, tr.Root(), "d", tr.Root(), "e", 0); err != nil {
		t.Fatal(err)
	}
	e := lookup(t, tr, "e")
	if err := tr.Rename(ctx, e, "y", e, "x", 0); err != nil {
		t.Fatal(err)
	}
	writeFile(t, tr, tr.Root(), "d", []byte("a new d"), true)
	tr2 := open(t, env.Repo, work)
	defer tr2.Close()
	for p, w := range map[[2]string][]byte{{"e", "x"}: []byte("yyyyyyyy"), {"d"}: []byte("a new d")} {
		path := p[:1]
		if p[1] != "" {
			path = p[:]
		}
		if got := readFile(t, tr2, path...); !bytes.Equal(got, w) {
			t.Errorf("after the crash %v reads %q, want %q", path, got, w)
		}
	}
}

// TestInlineSizesAtLimit: files of exactly the content record's limit,
// and one byte over it, read back whole after a crash and after commits.
func TestInlineSizesAtLimit(t *testing.T) {
	env := testutil.NewRepo(t, repo.InitOptions{})
	work := t.TempDir()
	tr := open(t, env.Repo, work)
	want := map[string][]byte{}
	for _, n := range []int{65535, 65536, 65537} {
		b := bytes.Repeat([]byte{byte(n)}, n)
		b[n-1] = 'E'
		name := string(rune('a' + n - 65535))
		want[name] = b
		writeFile(t, tr, tr.Root(), name, b[:1000], false).Close()
		h, err := tr.OpenFile(lookup(t, tr, name), true, false)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.WriteAt(b[1000:], 1000); err != nil {
			t.Fatal(err)
		}
		if err := h.Close(); err != nil {
			t.Fatal(err)
		}
	}
	tr2 := open(t, env.Repo, work)
	checkFiles(t, "after the crash", tr2, want)
	if _, err := tr2.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	tr3 := open(t, env.Repo, work)
	defer tr3.Close()
	checkFiles(t, "after the commit and a crash", tr3, want)
}

// TestInlineTornTail: a crash in the middle of writing a content record
// (the journal cut short in it) leaves the files closed before it as they
// were, and the torn one as its earlier record had it.
func TestInlineTornTail(t *testing.T) {
	env := testutil.NewRepo(t, repo.InitOptions{})
	work := t.TempDir()
	tr := open(t, env.Repo, work)
	a := bytes.Repeat([]byte("a"), 30000)
	writeFile(t, tr, tr.Root(), "a", a, true)
	before := journalBytes(t, work)
	b := bytes.Repeat([]byte("b"), 30000)
	writeFile(t, tr, tr.Root(), "b", b, true)
	after := journalBytes(t, work)
	js, _ := filepath.Glob(filepath.Join(work, "journal.*"))
	if len(js) != 1 {
		t.Fatalf("journals %q", js)
	}
	// Cut in the middle of b's content record.
	for _, cut := range []int64{before + 4, before + 2, (before + after) / 2} {
		dir := t.TempDir()
		copyDir(t, work, dir)
		if err := os.Truncate(filepath.Join(dir, filepath.Base(js[0])), cut); err != nil {
			t.Fatal(err)
		}
		tr2 := open(t, env.Repo, dir)
		checkFiles(t, "after a torn record", tr2, map[string][]byte{"a": a})
		if in, _, err := tr2.Lookup(t.Context(), tr2.Root(), "b"); err == nil {
			if got := readFile(t, tr2, "b"); len(got) != 0 {
				t.Errorf("cut at %d: b reads %d bytes, want its state before the torn record (empty)", cut, len(got))
			}
			_ = in
		}
		tr2.Close()
	}
}

// copyDir copies the regular files of a work folder (and staging/).
func copyDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.Walk(from, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if fi.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o700)
		}
		if !fi.Mode().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestInlineUnlinkedHeldAcrossCommit: a small file held open for reading,
// then unlinked, reads whole through its handle after a commit closed the
// journal its content record was in.
func TestInlineUnlinkedHeldAcrossCommit(t *testing.T) {
	ctx := t.Context()
	env := testutil.NewRepo(t, repo.InitOptions{})
	work := t.TempDir()
	tr := open(t, env.Repo, work)
	defer tr.Close()
	data := []byte("held and unlinked")
	writeFile(t, tr, tr.Root(), "u", data, true)
	h, err := tr.OpenFile(lookup(t, tr, "u"), false, false)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := tr.Unlink(ctx, tr.Root(), "u"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"o1", "o2"} {
		writeFile(t, tr, tr.Root(), name, []byte(name), true)
		if _, err := tr.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 100)
	n, _ := h.ReadAt(ctx, buf, 0)
	if !bytes.Equal(buf[:n], data) {
		t.Fatalf("read %q through the held handle, want %q", buf[:n], data)
	}
}

// TestInlineSyncOtherHandle: fsync makes a file's content durable whichever
// of its descriptors it is called on (the kernel sends it with the handle
// of the descriptor fsync was given): a small file written through one
// handle, still open, and fsynced through another that wrote nothing (for
// reading, or for writing), reads as written after a crash of the daemon.
func TestInlineSyncOtherHandle(t *testing.T) {
	for _, write := range []bool{false, true} {
		t.Run(fmt.Sprintf("for writing %v", write), func(t *testing.T) {
			env := testutil.NewRepo(t, repo.InitOptions{})
			work := t.TempDir()
			tr := open(t, env.Repo, work)
			data := []byte("written through one handle, fsynced through another")
			w := writeFile(t, tr, tr.Root(), "f", data, false)
			defer w.Close()
			h, err := tr.OpenFile(lookup(t, tr, "f"), write, false)
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			if err := h.Sync(); err != nil {
				t.Fatal(err)
			}
			tr2 := open(t, env.Repo, work)
			defer tr2.Close()
			checkFiles(t, "after a crash", tr2, map[string][]byte{"f": data})
		})
	}
}

// TestOverlaySyncOtherHandle: as TestInlineSyncOtherHandle, for a stored
// file changed in place (its staging copy holds only the ranges written,
// which the journal lists): fsynced through a handle that wrote nothing,
// the bytes written through the other read back after a crash.
func TestOverlaySyncOtherHandle(t *testing.T) {
	env := testutil.NewRepo(t, repo.InitOptions{})
	work := t.TempDir()
	tr := open(t, env.Repo, work)
	data := bytes.Repeat([]byte("stored "), 30000)
	writeFile(t, tr, tr.Root(), "f", data, true)
	if _, err := tr.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	w, err := tr.OpenFile(lookup(t, tr, "f"), true, false)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.WriteAt([]byte("CHANGED"), 100000); err != nil {
		t.Fatal(err)
	}
	copy(data[100000:], "CHANGED")
	h, err := tr.OpenFile(lookup(t, tr, "f"), false, false)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := h.Sync(); err != nil {
		t.Fatal(err)
	}
	tr2 := open(t, env.Repo, work)
	defer tr2.Close()
	checkFiles(t, "after a crash", tr2, map[string][]byte{"f": data})
}

// TestInlineCommitFailsAfterFreeze: a commit that fails after its new
// journal is in place (the snapshot's upload refused) leaves the small
// files it stored in the old journal's content records: they read whole
// after it, after a crash, and after the next commit from a fresh cache.
func TestInlineCommitFailsAfterFreeze(t *testing.T) {
	env := testutil.NewRepo(t, repo.InitOptions{})
	work := t.TempDir()
	tr := open(t, env.Repo, work)
	want := map[string][]byte{"a": []byte("small a"), "b": bytes.Repeat([]byte("b"), 3000)}
	for n, b := range want {
		writeFile(t, tr, tr.Root(), n, b, true)
	}
	env.Remote.FailOn("put", "snapshots", 2, faulty.FailBefore) // each commit's snapshot once
	if _, err := tr.Commit(t.Context()); err == nil {
		t.Fatal("a commit whose snapshot upload fails succeeded")
	}
	checkFiles(t, "after the failed commit", tr, want)
	writeFile(t, tr, tr.Root(), "c", []byte("after the failure"), true)
	want["c"] = []byte("after the failure")
	if _, err := tr.Commit(t.Context()); err == nil {
		t.Fatal("a second commit whose snapshot upload fails succeeded")
	}
	tr2 := open(t, env.Repo, work) // a crash
	checkFiles(t, "after a crash", tr2, want)
	if _, err := tr2.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	tr2.Close()
	r3, err := env.Reopen(t, t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	tr3 := open(t, r3, t.TempDir())
	defer tr3.Close()
	checkFiles(t, "fresh cache", tr3, want)
}

// TestInlineRebased: small files written on an offline start, while
// another writer commits, carried over by the rebase at the next commit,
// and after a crash before that commit's snapshot.
func TestInlineRebased(t *testing.T) {
	env := testutil.NewRepo(t, repo.InitOptions{})
	work := t.TempDir()
	tr := open(t, env.Repo, work)
	if err := env.Repo.Unlock(t.Context()); err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{"ours": []byte("our small file"), "ours2": bytes.Repeat([]byte("2"), 40000)}
	for n, b := range want {
		writeFile(t, tr, tr.Root(), n, b, true)
	}
	r2, tr2 := otherWriter(t, env)
	writeFile(t, tr2, tr2.Root(), "theirs", []byte("their file"), true)
	commitAndLeave(t, r2, tr2)
	tr2.Close()
	comeBackAndCommit(t, env.Repo, tr)
	want["theirs"] = []byte("their file")
	checkFiles(t, "after the rebase", tr, want)
	tr3 := open(t, env.Repo, work)
	defer tr3.Close()
	checkFiles(t, "after a crash", tr3, want)
}

// TestCommitFailuresCloseJournals: commits that fail after their new
// journal is in place (the snapshot's upload refused), then one that
// succeeds, leave only the current journal open: each failed one kept the
// journal before it open (its content records are still read) for the
// life of the mount, a descriptor and the disk space of a deleted file.
func TestCommitFailuresCloseJournals(t *testing.T) {
	openJournals := func(work string) int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Skip("no /proc/self/fd")
		}
		n := 0
		for _, e := range ents {
			l, _ := os.Readlink("/proc/self/fd/" + e.Name())
			if strings.HasPrefix(l, work+"/journal.") {
				n++
			}
		}
		return n
	}
	env := testutil.NewRepo(t, repo.InitOptions{})
	work := t.TempDir()
	tr := open(t, env.Repo, work)
	defer tr.Close()
	want := map[string][]byte{}
	env.Remote.FailOn("put", "snapshots", 10, faulty.FailBefore)
	for i := range 10 {
		name := fmt.Sprint("f", i)
		want[name] = bytes.Repeat([]byte{byte('a' + i)}, 1000+i)
		writeFile(t, tr, tr.Root(), name, want[name], true)
		if _, err := tr.Commit(t.Context()); err == nil {
			t.Fatal("a commit whose snapshot upload fails succeeded")
		}
	}
	checkFiles(t, "after 10 failed commits", tr, want)
	if _, err := tr.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	checkFiles(t, "after the commit", tr, want)
	if n := openJournals(work); n != 1 {
		t.Errorf("%d journals open after 10 failed commits and one that succeeded, want 1", n)
	}
}
