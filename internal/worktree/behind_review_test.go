package worktree

import (
	"bytes"
	"errors"
	"testing"

	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/repo"
)

// TestWriteBehindFailedNotCommitted (session 8 review; failed before): a queued write
// that failed, before its writer heard of it, must not reach a snapshot
// as zeros: a commit of the open file (fsync with --sync=remote) stores
// either the prefix that landed or nothing, never the size the queued
// writes promised with a hole where they failed.
func TestWriteBehindFailedNotCommitted(t *testing.T) {
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
	const step, failAt, total = 256 << 10, 2 << 20, 3 << 20
	injected := errors.New("injected write failure")
	behindFault = func(off int64) error {
		if off == failAt {
			return injected
		}
		return nil
	}
	t.Cleanup(func() { behindFault = func(int64) error { return nil } })
	data := make([]byte, total)
	for i := range data {
		data[i] = byte(i*7+i>>9) | 1
	}
	w, err := tr.OpenFile(in, true, false)
	if err != nil {
		t.Fatal(err)
	}
	for off := 0; off < total; off += step {
		if _, err := w.WriteAt(data[off:off+step], int64(off)); err != nil {
			break // the failure may be heard already: then nothing to see
		}
	}
	in.file.drain() // the failure happened; the writer did not hear of it yet
	if _, err := tr.CommitOpen(ctx); err != nil {
		t.Logf("commit: %v", err)
	}
	if err := w.Close(); !errors.Is(err, injected) {
		t.Fatalf("close: %v, want the failure", err)
	}
	r2, err := env.Reopen(t, t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	tr2, err := Open(ctx, r2, Options{Dir: t.TempDir(), ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := tr2.Lookup(ctx, tr2.root, "f"); err != nil {
		return // left out: fine
	}
	got := readAllOf(t, tr2, "f")
	if !bytes.Equal(got, data[:len(got)]) {
		i := 0
		for i < len(got) && got[i] == data[i] {
			i++
		}
		t.Fatalf("the snapshot holds %d bytes of f, not what was written from byte %d on (the failed write was at %d)", len(got), i, failAt)
	}
}
