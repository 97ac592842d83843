package worktree

import (
	"bytes"
	"context"
	"testing"

	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/repo"
)

// attrRecords returns the setattr records of path in tr's journal.
func attrRecords(t *testing.T, tr *Tree, path string) []record {
	t.Helper()
	tr.mu.Lock()
	j := tr.journal
	tr.mu.Unlock()
	_, recs, err := readJournal(j.path, tr.localKey, j.n)
	if err != nil {
		t.Fatal(err)
	}
	var out []record
	for _, r := range recs {
		if r.Op == opSetattr && string(r.Path) == path {
			out = append(out, r)
		}
	}
	return out
}

// TestCloseRecordsAttrOnce: a close(2) is a FLUSH then a RELEASE, and each
// recorded the written file's attributes in the journal: the release
// records nothing when nothing changed since the flush, and records again
// when something did; a replay finds the last size either way.
func TestCloseRecordsAttrOnce(t *testing.T) {
	ctx := context.Background()
	env := testutil.NewRepo(t, repo.InitOptions{})
	work := t.TempDir()
	tr, err := Open(ctx, env.Repo, Options{Dir: work})
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, writes ...[]byte) {
		in, _, err := tr.Create(ctx, tr.root, name, NewEntry{Type: repo.NodeFile, Mode: 0o644})
		if err != nil {
			t.Fatal(err)
		}
		h, err := tr.OpenFile(in, true, false)
		if err != nil {
			t.Fatal(err)
		}
		off := int64(0)
		for i, b := range writes {
			if i > 0 {
				if err := h.Flush(); err != nil { // a close(2) of a dup
					t.Fatal(err)
				}
			}
			if _, err := h.WriteAt(b, off); err != nil {
				t.Fatal(err)
			}
			off += int64(len(b))
		}
		if err := h.Flush(); err != nil {
			t.Fatal(err)
		}
		if err := h.Close(); err != nil {
			t.Fatal(err)
		}
	}
	write("once", []byte("hello"))
	if got := attrRecords(t, tr, "once"); len(got) != 1 || got[0].Meta.Size != 5 {
		t.Fatalf("a write, flush and release recorded %d setattr records, want one of size 5: %+v", len(got), got)
	}
	write("twice", []byte("hello"), []byte(" world"))
	got := attrRecords(t, tr, "twice")
	if len(got) != 2 || got[1].Meta.Size != 11 {
		t.Fatalf("a write, flush, write, flush and release recorded %d setattr records, want two, the last of size 11: %+v", len(got), got)
	}
	// A crash: the replay finds both files whole.
	tr, err = Open(ctx, env.Repo, Options{Dir: work})
	if err != nil {
		t.Fatal(err)
	}
	if b := readAllOf(t, tr, "once"); !bytes.Equal(b, []byte("hello")) {
		t.Fatalf("once after a replay: %q", b)
	}
	if b := readAllOf(t, tr, "twice"); !bytes.Equal(b, []byte("hello world")) {
		t.Fatalf("twice after a replay: %q", b)
	}
}
