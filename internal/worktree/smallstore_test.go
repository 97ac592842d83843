package worktree

import (
	"bytes"
	"context"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/repo"
)

// TestStoreWholeSameExtents: a new file written in one sequential run is
// stored from one read of its staging copy (storeWhole); the extents must
// be those the sparse path stores for the same bytes (the same file
// written out of order), holes included: zero pages at the start, zeros
// to the end past a page boundary, all zeros, zeros in the middle.
func TestStoreWholeSameExtents(t *testing.T) {
	ctx := context.Background()
	env := testutil.NewRepo(t, repo.InitOptions{})
	tr, err := Open(ctx, env.Repo, Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	data := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rnd.Uint32() | 1)
		}
		return b
	}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	zeros := func(n int) []byte { return make([]byte, n) }
	cases := map[string][]byte{
		"empty":           nil,
		"one":             data(1),
		"small":           data(10000),
		"zero-page-first": cat(zeros(4096), data(3000)),
		"zeros-first":     cat(zeros(4095), data(3000)),
		"zeros-last":      cat(data(100), zeros(7900)),
		"zeros-to-page":   cat(data(4000), zeros(96)),
		"zeros-past-page": cat(data(4000), zeros(97)),
		"all-zeros":       zeros(9000),
		"zeros-middle":    cat(data(5000), zeros(20000), data(5000)),
		"last-block-zero": cat(data(4100), zeros(4000)),
		"zero-block-last": cat(data(4068), zeros(10)),
		"zeros-4067":      cat(zeros(4067), data(10)),
		"zeros-4068":      cat(zeros(4068), data(10)),
		"whole-limit":     data(smallWhole),
		"over-limit":      data(smallWhole + 1),
	}
	write := func(name string, b []byte, inOrder bool) *Inode {
		in, _, err := tr.Create(ctx, tr.root, name, NewEntry{Type: repo.NodeFile, Mode: 0o644})
		if err != nil {
			t.Fatal(err)
		}
		h, err := tr.OpenFile(in, true, false)
		if err != nil {
			t.Fatal(err)
		}
		half := len(b) / 2
		pieces := [][2]int{{0, half}, {half, len(b)}}
		if !inOrder {
			pieces[0], pieces[1] = pieces[1], pieces[0]
		}
		for _, p := range pieces {
			if _, err := h.WriteAt(b[p[0]:p[1]], int64(p[0])); err != nil {
				t.Fatal(err)
			}
		}
		if err := h.Close(); err != nil {
			t.Fatal(err)
		}
		return in
	}
	for _, name := range []string{"one", "small", "zeros-middle", "last-block-zero", "zeros-4067", "whole-limit"} {
		if zeroEdge(cases[name]) {
			t.Fatalf("%s: meant to be stored whole, zeroEdge says no", name)
		}
	}
	ins := map[string][2]*Inode{}
	for name, b := range cases {
		ins[name] = [2]*Inode{write(name+".seq", b, true), write(name+".sparse", b, false)}
	}
	for name, pair := range ins {
		seq, sparse := pair[0].stream, pair[1].stream
		if len(cases[name]) > 1 && (seq == nil || !seq.sequential(uint64(len(cases[name]))) || sparse == nil || sparse.sequential(uint64(len(cases[name])))) {
			t.Fatalf("%s: the sequential file must take storeWhole and the other not", name)
		}
	}
	if _, err := tr.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	for name, pair := range ins {
		a, b := pair[0].meta.Content, pair[1].meta.Content
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%s: stored whole %v, sparse %v", name, a, b)
		}
		if got := readAllOf(t, tr, name+".seq"); !bytes.Equal(got, cases[name]) {
			t.Errorf("%s: read back %d bytes, not what was written", name, len(got))
		}
	}
}
