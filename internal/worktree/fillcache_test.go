package worktree_test

import (
	"bytes"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/internal/worktree"
	"github.com/sealfs/sealfs/repo"
)

// TestFillCacheWaitsBeforeStaging: a small read of a stored file in the
// middle hands the whole segments it opened to the handle's FillCache,
// right bytes at their place; an open for writing and a truncation wait
// until every fill under way is done (a fill landing after a write went
// through the kernel's cache would put the old bytes back), and a staged
// file gets no fills.
func TestFillCacheWaitsBeforeStaging(t *testing.T) {
	env := testutil.NewRepo(t, repo.InitOptions{})
	tr := open(t, env.Repo, t.TempDir())
	data := make([]byte, 4<<20)
	rng := rand.New(rand.NewPCG(7, 7))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	writeFile(t, tr, tr.Root(), "f", data, true)
	if _, err := tr.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	in, _, err := tr.Lookup(t.Context(), tr.Root(), "f")
	if err != nil {
		t.Fatal(err)
	}
	type fill struct {
		off  int64
		data []byte
	}
	for _, change := range []string{"open for writing", "truncate"} {
		t.Run(change, func(t *testing.T) {
			h, err := tr.OpenFile(in, false, false)
			if err != nil {
				t.Fatal(err)
			}
			fills, release := make(chan fill, 16), make(chan struct{})
			var once sync.Once
			// A failure below must not leave the fill waiting.
			defer once.Do(func() { close(release) })
			h.FillCache(func(off int64, data []byte) {
				fills <- fill{off, bytes.Clone(data)}
				<-release
			})
			const at = 3<<20 + 5000
			size := int64(tr.Attr(in).Size)
			buf := make([]byte, 4096)
			if _, err := h.ReadAt(t.Context(), buf, at); err != nil || !bytes.Equal(buf, data[at:at+4096]) {
				t.Fatalf("read at %d: %v, or other bytes", at, err)
			}
			var f fill
			select {
			case f = <-fills:
			case <-time.After(30 * time.Second):
				t.Fatal("a read in the middle of a stored file made no fill")
			}
			// (Not always a whole 64 KiB: the segment around at may be
			// its chunk's last, shorter: the chunker key is random.)
			if f.off > at || f.off+int64(len(f.data)) < at+4096 || f.off+int64(len(f.data)) > size ||
				!bytes.Equal(f.data, data[f.off:f.off+int64(len(f.data))]) {
				t.Fatalf("a fill of %d bytes at %d: not the segment around %d, or other bytes", len(f.data), f.off, at)
			}
			done := make(chan error, 1)
			go func() {
				if change == "truncate" {
					small := uint64(1 << 20)
					_, err := tr.SetAttr(in, worktree.SetAttr{Size: &small})
					done <- err
					return
				}
				w, err := tr.OpenFile(in, true, false)
				if err == nil {
					err = w.Close()
				}
				done <- err
			}()
			select {
			case err := <-done:
				t.Fatalf("the %s returned (%v) while a fill of the stored content was under way", change, err)
			case <-time.After(300 * time.Millisecond):
			}
			once.Do(func() { close(release) })
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			// Staged now: reads get no fills.
			if _, err := h.ReadAt(t.Context(), buf, 512<<10+9000); err != nil {
				t.Fatal(err)
			}
			if _, err := h.ReadAt(t.Context(), buf, 100<<10); err != nil {
				t.Fatal(err)
			}
			select {
			case f := <-fills:
				t.Fatalf("a fill at %d of a staged file", f.off)
			case <-time.After(100 * time.Millisecond):
			}
			// Stored again, unstaged, for the next case.
			if err := h.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := tr.Commit(t.Context()); err != nil {
				t.Fatal(err)
			}
			data = readFile(t, tr, "f")
		})
	}
}

// TestFillsBounded: random small reads each hand their segments to the
// kernel's cache on a goroutine; while the fills under way are stuck (a
// kernel slow to take them), at most worktree.MaxFills start, the reads
// go on returning the right bytes, and fills start again once those end.
func TestFillsBounded(t *testing.T) {
	env := testutil.NewRepo(t, repo.InitOptions{})
	tr := open(t, env.Repo, t.TempDir())
	data := make([]byte, 8<<20)
	rng := rand.New(rand.NewPCG(8, 8))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	writeFile(t, tr, tr.Root(), "f", data, true)
	if _, err := tr.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	in, _, err := tr.Lookup(t.Context(), tr.Root(), "f")
	if err != nil {
		t.Fatal(err)
	}
	h, err := tr.OpenFile(in, false, false)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	started, release := make(chan struct{}, 1000), make(chan struct{})
	var once sync.Once
	defer once.Do(func() { close(release) })
	h.FillCache(func(int64, []byte) {
		started <- struct{}{}
		<-release
	})
	buf := make([]byte, 4096)
	read := func(seg int) {
		at := int64(seg)*(64<<10) + 100
		if _, err := h.ReadAt(t.Context(), buf, at); err != nil || !bytes.Equal(buf, data[at:at+4096]) {
			t.Fatalf("read at %d: %v, or other bytes", at, err)
		}
	}
	// Every other segment, far apart: each read is a run of its own.
	for i := range 3 * worktree.MaxFills {
		read(i * 2 * 11 % 128)
	}
	time.Sleep(100 * time.Millisecond)
	if n := len(started); n != worktree.MaxFills {
		t.Fatalf("%d fills under way after %d random reads, want %d", n, 3*worktree.MaxFills, worktree.MaxFills)
	}
	once.Do(func() { close(release) })
	// The stuck fills end on their own goroutines: reads of new
	// segments start fills again soon.
	for len(started) > 0 {
		<-started
	}
	deadline := time.Now().Add(30 * time.Second)
	for seg := 1; len(started) == 0; seg = (seg + 2) % 128 {
		if time.Now().After(deadline) {
			t.Fatal("no fill once the stuck ones ended")
		}
		read(seg)
		time.Sleep(10 * time.Millisecond)
	}
}
