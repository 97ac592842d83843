package worktree_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/internal/worktree"
	"github.com/sealfs/sealfs/repo"
)

// TestOverlayPunchHole (issue 8 review): fallocate(2) that punches a hole
// in (or zeroes a range of) a stored file changed in place reads back as
// zeros, before and after the commit; it never leaves the old bytes
// readable as if the call had done nothing.
func TestOverlayPunchHole(t *testing.T) {
	ctx := context.Background()
	for _, mode := range []uint32{unix.FALLOC_FL_PUNCH_HOLE | unix.FALLOC_FL_KEEP_SIZE, unix.FALLOC_FL_ZERO_RANGE} {
		env := testutil.NewRepo(t, repo.InitOptions{})
		tr := open(t, env.Repo, t.TempDir())
		want := bytes.Repeat([]byte("a"), 64<<10)
		writeFile(t, tr, tr.Root(), "f", want, true)
		if _, err := tr.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		in, _, err := tr.Lookup(t.Context(), tr.Root(), "f")
		if err != nil {
			t.Fatal(err)
		}
		h, err := tr.OpenFile(in, true, false)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.Allocate(4096, 4096, mode); err != nil {
			t.Fatalf("mode %#x: %v", mode, err)
		}
		h.Close()
		clear(want[4096:8192])
		if got := readFile(t, tr, "f"); !bytes.Equal(got, want) {
			t.Errorf("mode %#x: after fallocate, bytes 4096..8192 = %q..., want zeros", mode, got[4096:4100])
		}
		if _, err := tr.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if got := readFile(t, tr, "f"); !bytes.Equal(got, want) {
			t.Errorf("mode %#x: after the commit, bytes 4096..8192 = %q..., want zeros", mode, got[4096:4100])
		}
	}
}

// TestDamagedStagingStallsNothingElse (issue 8 review): one staging copy
// that no longer opens (a block torn by a power cut, a bad disk sector)
// fails that file, not every commit after it: the other closed files
// reach the remote.
func TestDamagedStagingStallsNothingElse(t *testing.T) {
	ctx := context.Background()
	env := testutil.NewRepo(t, repo.InitOptions{})
	dir := t.TempDir()
	tr := open(t, env.Repo, dir)
	// Written out of order, so that the commit reads them from staging.
	for _, name := range []string{"damaged", "intact"} {
		in, _, err := tr.Create(t.Context(), tr.Root(), name, worktree.NewEntry{Type: repo.NodeFile, Mode: 0o644})
		if err != nil {
			t.Fatal(err)
		}
		h, err := tr.OpenFile(in, true, false)
		if err != nil {
			t.Fatal(err)
		}
		size := 96 << 10 // past what a journal record holds: a staging file
		if name == "intact" {
			size = 8 << 10
		}
		h.WriteAt(bytes.Repeat([]byte(name[:1]), size-100), 100)
		h.WriteAt(bytes.Repeat([]byte(name[:1]), 100), 0)
		if err := h.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// Damage a block in the middle of the larger staging copy.
	staged, _ := filepath.Glob(filepath.Join(dir, "staging", "*"))
	damaged := false
	for _, p := range staged {
		if fi, err := os.Stat(p); err == nil && fi.Size() > 32<<10 {
			f, err := os.OpenFile(p, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteAt([]byte{0xff, 0xff, 0xff, 0xff}, 5*4096+100)
			f.Close()
			damaged = true
		}
	}
	if !damaged {
		t.Fatalf("no staging copy to damage among %q", staged)
	}
	if _, err := tr.Commit(ctx); err != nil {
		t.Fatalf("one damaged queued file failed the whole commit: %v", err)
	}
	// The damaged one stays queued, to be written again or deleted.
	if files, _ := tr.Pending(); files != 1 {
		t.Fatalf("%d files queued after the commit, want the damaged one", files)
	}
	r2, err := env.Reopen(t, t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	tr2 := open(t, r2, t.TempDir())
	in, _, err := tr2.Lookup(t.Context(), tr2.Root(), "intact")
	if err != nil {
		t.Fatalf("the intact file never reached the remote: %v", err)
	}
	h, err := tr2.OpenFile(in, false, false)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	got := make([]byte, 8<<10)
	if n, err := h.ReadAt(t.Context(), got, 0); n != len(got) || !bytes.Equal(got, bytes.Repeat([]byte("i"), 8<<10)) {
		t.Fatalf("the intact file reads back wrong: %d bytes, %v", n, err)
	}
	if _, _, err := tr2.Lookup(t.Context(), tr2.Root(), "damaged"); err == nil {
		t.Fatal("a new file whose queued copy is damaged was committed anyway")
	}
}
