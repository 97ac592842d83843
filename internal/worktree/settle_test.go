package worktree

import (
	"io"
	"testing"

	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/repo"
)

// TestOpenWhileCommitSettles: a file opened for writing, or truncated,
// just as a commit that stored it lets go of its staging copy (the file
// is clean again) writes and truncates as any other. The open found the
// copy gone between staging the file and opening the copy: every write
// through that handle failed with EIO, and a truncation failed (found by
// TestHammerColdTree, a write racing the daemon's commits).
func TestOpenWhileCommitSettles(t *testing.T) {
	ctx := t.Context()
	env := testutil.NewRepo(t, repo.InitOptions{})
	tr := openTestTree(t, env.Repo)
	defer tr.Close()
	in, _, err := tr.Create(ctx, tr.Root(), "f", NewEntry{Type: repo.NodeFile, Mode: 0o644})
	if err != nil {
		t.Fatal(err)
	}
	write := func(data string) {
		t.Helper()
		h, err := tr.OpenFile(in, true, true)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.WriteAt([]byte(data), 0); err != nil {
			t.Fatalf("write %q: %v", data, err)
		}
		if err := h.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// The commit comes once, right after the file was found staged.
	settle := func() {
		stagedHook = nil
		if _, err := tr.Commit(ctx); err != nil {
			t.Error(err)
		}
	}
	defer func() { stagedHook = nil }()
	write("first")
	stagedHook = settle
	write("second")
	if got := readAll(t, tr, in); got != "second" {
		t.Fatalf("f reads %q after the second write", got)
	}
	size := uint64(3)
	if _, err := tr.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	write("third")
	stagedHook = settle
	if _, err := tr.SetAttr(in, SetAttr{Size: &size}); err != nil {
		t.Fatalf("truncate: %v", err)
	}
	if got := readAll(t, tr, in); got != "thi" {
		t.Fatalf("f reads %q after truncating it to 3 bytes", got)
	}
}

// readAll reads a file whole.
func readAll(t *testing.T, tr *Tree, in *Inode) string {
	t.Helper()
	h, err := tr.OpenFile(in, false, false)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	buf := make([]byte, tr.Attr(in).Size)
	if n, err := h.ReadAt(t.Context(), buf, 0); (err != nil && err != io.EOF) || n != len(buf) {
		t.Fatalf("read %d of %d: %v", n, len(buf), err)
	}
	return string(buf)
}
