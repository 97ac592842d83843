package worktree

import (
	"bytes"
	"io"
	"testing"

	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/repo"
)

// TestStreamStart: a new file is streamed once streamStart bytes are
// written, from its first byte; a smaller one is chunked by the commit.
// Both read back whole from a fresh cache.
func TestStreamStart(t *testing.T) {
	ctx := t.Context()
	env := testutil.NewRepo(t, repo.InitOptions{})
	tr := openTestTree(t, env.Repo)
	defer tr.Close()
	sizes := map[string]int{"small": streamStart - 1, "large": streamStart + 5000}
	want := map[string][]byte{}
	streams := map[string]*streamer{}
	for name, size := range sizes {
		data := bytes.Repeat([]byte(name+" "), size/len(name)+1)[:size]
		want[name] = data
		in, _, err := tr.Create(ctx, tr.Root(), name, NewEntry{Type: repo.NodeFile, Mode: 0o644})
		if err != nil {
			t.Fatal(err)
		}
		h, err := tr.OpenFile(in, true, false)
		if err != nil {
			t.Fatal(err)
		}
		for off := 0; off < size; off += 4096 {
			if _, err := h.WriteAt(data[off:min(off+4096, size)], int64(off)); err != nil {
				t.Fatal(err)
			}
		}
		streams[name] = in.stream
		if err := h.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if s := streams["small"]; s == nil || s.started {
		t.Errorf("the small file's streamer: %+v, want one that never started", s)
	}
	s := streams["large"]
	if s == nil || !s.started {
		t.Fatalf("the large file's streamer did not start: %+v", s)
	}
	<-s.done
	if _, ok := s.result(uint64(sizes["large"])); !ok {
		t.Errorf("the large file's stream is not whole: %v", s.err)
	}
	if _, err := tr.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	r2, err := env.Reopen(t, t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	tr2, err := Open(ctx, r2, Options{Dir: t.TempDir(), ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range want {
		in, _, err := tr2.Lookup(ctx, tr2.Root(), name)
		if err != nil {
			t.Fatal(err)
		}
		h, err := tr2.OpenFile(in, false, false)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(data)+1)
		n, err := h.ReadAt(ctx, got, 0)
		if (err != nil && err != io.EOF) || !bytes.Equal(got[:n], data) {
			t.Errorf("%s read back %d bytes (want %d): %v", name, n, len(data), err)
		}
		h.Close()
	}
}

// openTestTree opens a work tree of r on a folder of its own; the caller
// closes it.
func openTestTree(t *testing.T, r *repo.Repository) *Tree {
	t.Helper()
	tr, err := Open(t.Context(), r, Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}
