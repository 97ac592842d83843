package worktree

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/repo"
)

// TestWriteBehindDropsAfterFailure: a queued write that fails (after its
// space was reserved) drops the writes queued after it; the writer's next
// write, every one after and its close fail with the error; the file is
// the prefix that landed, with that size; a new handle appends to it.
func TestWriteBehindDropsAfterFailure(t *testing.T) {
	ctx := t.Context()
	env := testutil.NewRepo(t, repo.InitOptions{})
	tr, err := Open(ctx, env.Repo, Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	in, _, err := tr.Create(ctx, tr.Root(), "f", NewEntry{Type: repo.NodeFile, Mode: 0o644})
	if err != nil {
		t.Fatal(err)
	}
	const step, failAt = 256 << 10, 3 << 20
	injected := errors.New("injected write failure")
	failed := false // once: the goroutine calls it, the test waits for it (drain)
	behindFault = func(off int64) error {
		if off == failAt && !failed {
			failed = true
			return injected
		}
		return nil
	}
	t.Cleanup(func() { behindFault = func(int64) error { return nil } })
	data := make([]byte, 16<<20)
	for i := range data {
		data[i] = byte(i*5 + i>>11)
	}
	w, err := tr.OpenFile(in, true, false)
	if err != nil {
		t.Fatal(err)
	}
	var werr error
	off := 0
	for ; off < len(data) && werr == nil; off += step {
		_, werr = w.WriteAt(data[off:off+step], int64(off))
	}
	if !errors.Is(werr, injected) {
		t.Fatalf("writes past a failed queued write: %v, want the failure", werr)
	}
	if _, err := w.WriteAt(data[off:off+step], int64(off)); !errors.Is(err, injected) {
		t.Fatalf("a later write: %v, want the failure", err)
	}
	if err := w.Close(); !errors.Is(err, injected) {
		t.Fatalf("close: %v, want the failure", err)
	}
	if size := tr.Attr(in).Size; size != failAt {
		t.Fatalf("size %d after the failed write at %d", size, failAt)
	}
	r, err := tr.OpenFile(in, false, false)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, failAt+step)
	n, err := r.ReadAt(ctx, got, 0)
	if err != nil && err != io.EOF {
		t.Fatal(err)
	}
	r.Close()
	if n != failAt || !bytes.Equal(got[:n], data[:failAt]) {
		t.Fatalf("read %d bytes: not the %d before the failed write", n, failAt)
	}
	w2, err := tr.OpenFile(in, true, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w2.WriteAt(data[failAt:failAt+step], failAt); err != nil {
		t.Fatalf("a new handle's append: %v", err)
	}
	if err := w2.Close(); err != nil {
		t.Fatal(err)
	}
	if size := tr.Attr(in).Size; size != failAt+step {
		t.Fatalf("size %d after appending again, want %d", size, failAt+step)
	}
	if _, err := tr.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}
