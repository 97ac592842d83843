package repo_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"runtime"
	"testing"

	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/repo"
)

// TestSmallFileAllocations: storing a small file allocates a few times its
// size, not a chunker buffer of 64 KiB for each (a commit of Go's src
// allocated 800 MB for its 120 MB, most of it in chunker buffers, and the
// collector spent a third of the daemon's time on it).
func TestSmallFileAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocations are not counted under the race detector")
	}
	env := testutil.NewRepo(t, repo.InitOptions{})
	ctx := context.Background()
	const files, size = 200, 2000
	save := func(i int) {
		data := bytes.Repeat(fmt.Appendf(nil, "file %d ", i), size/8)
		if _, _, err := env.Repo.SaveFile(ctx, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
	}
	save(-1) // warm up
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := range files {
		save(i)
	}
	runtime.ReadMemStats(&after)
	per := (after.TotalAlloc - before.TotalAlloc) / files
	t.Logf("%d bytes allocated a file", per)
	if per > 32<<10 {
		t.Fatalf("storing a %d-byte file allocated %d bytes", size, per)
	}
}

// TestLargeFileAllocations: storing a file allocates about its sealed
// size once (the packs), not a copy of each 64 KiB segment as well.
func TestLargeFileAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocations are not counted under the race detector")
	}
	env := testutil.NewRepo(t, repo.InitOptions{})
	ctx := context.Background()
	const size = 32 << 20
	data := make([]byte, size)
	rand.Read(data)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if _, _, err := env.Repo.SaveFile(ctx, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	ratio := float64(after.TotalAlloc-before.TotalAlloc) / size
	t.Logf("%.2f bytes allocated a byte stored", ratio)
	if ratio > 4.1 { // 4.78 with a copy of each segment, 3.48 without
		t.Fatalf("storing %d bytes allocated %.2f times as much", size, ratio)
	}
}

// TestEncoderMemory: the compressors keep a small history each, not twice
// zstd's 8 MiB default window (three held 28 MiB for good once used, the
// largest part of a writing daemon's heap).
func TestEncoderMemory(t *testing.T) {
	if raceEnabled {
		t.Skip("the heap is not measured under the race detector")
	}
	env := testutil.NewRepo(t, repo.InitOptions{})
	ctx := context.Background()
	heap := func() uint64 {
		runtime.GC() // twice: pooled buffers (chunker, segments) go at the second
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	// Compressible content through every worker at once, and a large tree.
	done := make(chan error)
	for i := range 4 {
		go func() {
			data := bytes.Repeat(fmt.Appendf(nil, "writer %d compresses this line ", i), (4<<20)/32)
			_, _, err := env.Repo.SaveFile(ctx, bytes.NewReader(data))
			done <- err
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	tree := &repo.Tree{}
	for i := range 5000 {
		tree.Nodes = append(tree.Nodes, &repo.Node{Name: fmt.Appendf(nil, "file-%06d", i), Type: repo.NodeFile, Mode: 0o644})
	}
	if _, err := env.Repo.SaveTree(ctx, tree); err != nil {
		t.Fatal(err)
	}
	if err := env.Repo.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	after := heap()
	runtime.KeepAlive(tree)
	grown := int64(after) - int64(before)
	t.Logf("the heap grew by %d KiB", grown>>10)
	if grown > 6<<20 {
		t.Fatalf("writing left the heap %d MiB larger", grown>>20)
	}
}
