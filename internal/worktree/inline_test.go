package worktree_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/internal/worktree"
	"github.com/sealfs/sealfs/repo"
)

// stagingFiles counts the files in the staging area of work.
func stagingFiles(t *testing.T, work string) int {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(work, "staging", "*"))
	if err != nil {
		t.Fatal(err)
	}
	return len(m)
}

// checkFiles reads every file of want from tr.
func checkFiles(t *testing.T, when string, tr *worktree.Tree, want map[string][]byte) {
	t.Helper()
	for name, b := range want {
		if got := readFile(t, tr, name); !bytes.Equal(got, b) {
			t.Errorf("%s: %s reads %d bytes %.20q, want %d %.20q", when, name, len(got), got, len(b), b)
		}
	}
}

// TestInlineFilesReplayed: small new files leave no staging file; their
// content, changed after they were closed (rewritten in place, truncated
// by path, emptied by an O_TRUNC open with no write, grown past what a
// record holds), reads as left through two crashes in a row (the second
// replays the journal the first replay wrote), then from the remote.
func TestInlineFilesReplayed(t *testing.T) {
	env := testutil.NewRepo(t, repo.InitOptions{})
	work := t.TempDir()
	tr := open(t, env.Repo, work)
	want := map[string][]byte{}
	for i := range 20 {
		name := fmt.Sprintf("f%02d", i)
		want[name] = bytes.Repeat([]byte{byte('a' + i)}, 1000*i+1)
		writeFile(t, tr, tr.Root(), name, want[name], true)
	}
	if n := stagingFiles(t, work); n != 0 {
		t.Fatalf("%d staging files for 20 small files, want none", n)
	}
	// Rewritten in place, after it was closed.
	h, err := tr.OpenFile(lookup(t, tr, "f03"), true, false)
	if err != nil {
		t.Fatal(err)
	}
	h.WriteAt([]byte("XYZ"), 10)
	copy(want["f03"][10:], "XYZ")
	h.Close()
	// Truncated by path, shorter and then longer.
	for _, size := range []uint64{7, 20} {
		if _, err := tr.SetAttr(lookup(t, tr, "f04"), worktree.SetAttr{Size: &size}); err != nil {
			t.Fatal(err)
		}
	}
	want["f04"] = append(want["f04"][:7:7], make([]byte, 13)...)
	// Emptied by an open with O_TRUNC, nothing written.
	if h, err = tr.OpenFile(lookup(t, tr, "f05"), true, true); err != nil {
		t.Fatal(err)
	}
	h.Close()
	want["f05"] = nil
	// Grown past 64 KiB: a staging file.
	if h, err = tr.OpenFile(lookup(t, tr, "f06"), true, false); err != nil {
		t.Fatal(err)
	}
	more := bytes.Repeat([]byte("g"), 70000)
	h.WriteAt(more, int64(len(want["f06"])))
	want["f06"] = append(want["f06"], more...)
	h.Close()
	// The grown file's, and those of f03 and f04, changed again after
	// their content was recorded: written to disk, not into the journal
	// again (TestInlineRewritesBoundJournal).
	if n := stagingFiles(t, work); n != 3 {
		t.Fatalf("%d staging files, want 3: the grown file's and the changed files'", n)
	}
	checkFiles(t, "before the crash", tr, want)
	tr2 := open(t, env.Repo, work) // tr never closed: a crash
	checkFiles(t, "after the crash", tr2, want)
	tr3 := open(t, env.Repo, work)
	checkFiles(t, "after the second crash", tr3, want)
	if _, err := tr3.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	checkFiles(t, "after the commit", tr3, want)
	tr3.Close()
	r4, err := env.Reopen(t, t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	tr4 := open(t, r4, t.TempDir())
	defer tr4.Close()
	checkFiles(t, "fresh cache", tr4, want)
}

// TestInlineHeldAcrossCommit: a small file held open (for reading, and one
// for writing with its content flushed) while a commit stores it stays
// readable after the commit once closed and opened again, and after a
// crash: its content record was in the journal the commit closed.
func TestInlineHeldAcrossCommit(t *testing.T) {
	env := testutil.NewRepo(t, repo.InitOptions{})
	work := t.TempDir()
	tr := open(t, env.Repo, work)
	want := map[string][]byte{"r": []byte("held for reading"), "w": []byte("held for writing")}
	writeFile(t, tr, tr.Root(), "r", want["r"], true)
	hw := writeFile(t, tr, tr.Root(), "w", want["w"], false)
	if err := hw.Sync(); err != nil {
		t.Fatal(err)
	}
	hr, err := tr.OpenFile(lookup(t, tr, "r"), false, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.CommitOpen(t.Context()); err != nil {
		t.Fatal(err)
	}
	hr.Close()
	hw.Close()
	checkFiles(t, "after the commit", tr, want)
	// A second commit carries them into its journal again.
	if _, err := tr.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	checkFiles(t, "after the second commit", tr, want)
	tr2 := open(t, env.Repo, work)
	defer tr2.Close()
	checkFiles(t, "after the crash", tr2, want)
}

// TestInlineJournalDamaged: a small file whose content record cannot be
// read back (the journal damaged under it) fails its reads with an error,
// never with other bytes.
func TestInlineJournalDamaged(t *testing.T) {
	env := testutil.NewRepo(t, repo.InitOptions{})
	work := t.TempDir()
	tr := open(t, env.Repo, work)
	defer tr.Close()
	data := bytes.Repeat([]byte("x"), 5000)
	// Written out of order: not for the small-file worker, which could
	// hold it open (read) when the test reads it.
	h := writeFile(t, tr, tr.Root(), "f", data[100:], false)
	h.WriteAt(data[:100], 0)
	h.Close()
	js, _ := filepath.Glob(filepath.Join(work, "journal.*"))
	if len(js) != 1 {
		t.Fatalf("journals %q", js)
	}
	f, err := os.OpenFile(js[0], os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := f.Stat()
	// The content record is the largest: flip a byte in its middle.
	f.WriteAt([]byte{0xff}, fi.Size()-4000)
	f.Close()
	h, err = tr.OpenFile(lookup(t, tr, "f"), false, false)
	if err == nil {
		buf := make([]byte, len(data))
		n, rerr := h.ReadAt(t.Context(), buf, 0)
		h.Close()
		t.Fatalf("a damaged content record opened: read %d bytes, %v", n, rerr)
	}
}

// TestInlineNeverWritten: a new file opened for writing and closed with
// nothing written (touch) commits, and is there after a crash.
func TestInlineNeverWritten(t *testing.T) {
	env := testutil.NewRepo(t, repo.InitOptions{})
	work := t.TempDir()
	tr := open(t, env.Repo, work)
	in, _, err := tr.Create(t.Context(), tr.Root(), "empty", worktree.NewEntry{Type: repo.NodeFile, Mode: 0o644})
	if err != nil {
		t.Fatal(err)
	}
	h, err := tr.OpenFile(in, true, false)
	if err != nil {
		t.Fatal(err)
	}
	h.Close()
	if _, err := tr.Commit(t.Context()); err != nil {
		t.Fatalf("commit of a file never written: %v", err)
	}
	tr2 := open(t, env.Repo, work)
	defer tr2.Close()
	checkFiles(t, "after the crash", tr2, map[string][]byte{"empty": nil})
}

// TestInlineDamagedCommits: a small file whose content record is damaged
// is left out of the commit, and the rest is committed.
func TestInlineDamagedCommits(t *testing.T) {
	env := testutil.NewRepo(t, repo.InitOptions{})
	work := t.TempDir()
	tr := open(t, env.Repo, work)
	defer tr.Close()
	data := bytes.Repeat([]byte("x"), 5000)
	h := writeFile(t, tr, tr.Root(), "f", data, false)
	h.WriteAt(data[:100], 0) // out of order: not for the small-file worker
	h.Close()
	js, _ := filepath.Glob(filepath.Join(work, "journal.*"))
	f, err := os.OpenFile(js[0], os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := f.Stat()
	f.WriteAt([]byte{0xff}, fi.Size()-4000)
	f.Close()
	writeFile(t, tr, tr.Root(), "g", []byte("intact"), true)
	if _, err := tr.Commit(t.Context()); err != nil {
		t.Fatalf("a damaged small file failed the commit: %v", err)
	}
	r2, err := env.Reopen(t, t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	tr2 := open(t, r2, t.TempDir())
	defer tr2.Close()
	checkFiles(t, "fresh cache", tr2, map[string][]byte{"g": []byte("intact")})
}
