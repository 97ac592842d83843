package worktree_test

import (
	"bytes"
	"context"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/sealfs/sealfs/internal/testutil"
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
		in, _, err := tr.Lookup(tr.Root(), "f")
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
