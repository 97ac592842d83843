package repo_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sealfs/sealfs/chunker"
	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/remote"
	"github.com/sealfs/sealfs/remote/faulty"
	"github.com/sealfs/sealfs/repo"
)

// TestUnlockWithQueuedPackBehindHungUpload: with one transfer, one pack
// uploads (the remote holds it) and a second waits behind it. Unlock
// cancels the upload under way; the queued pack must not start then (with
// nothing left to cancel it, it would hang Unlock, and the daemon's stop,
// for good). Afterwards no goroutine of the uploads is left.
func TestUnlockWithQueuedPackBehindHungUpload(t *testing.T) {
	env := testutil.NewRepo(t, repo.InitOptions{PackSize: 1 << 20, Options: repo.Options{Transfers: 1}})
	r := env.Repo
	base := runtime.NumGoroutine()
	env.Remote.FailOn("put", "data/", 1000, faulty.Hang)
	t.Cleanup(env.Remote.Release)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, _, err := r.SaveFile(ctx, bytes.NewReader(randomData(71, 6<<20)))
		done <- err
	}()
	waitHeld(t, env.Remote, 1)
	for end := time.Now().Add(30 * time.Second); repo.PacksInMemoryForTest(r) < 2; time.Sleep(time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("%d packs in memory, want 2", repo.PacksInMemoryForTest(r))
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled write = %v", err)
	}
	within(t, "unlocking", func() {
		if err := r.Unlock(context.Background()); err != nil {
			t.Error(err)
		}
	})
	if held := env.Remote.Held(); held != 0 {
		t.Fatalf("%d uploads still held after Unlock", held)
	}
	for end := time.Now().Add(10 * time.Second); runtime.NumGoroutine() > base; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("%d goroutines after Unlock, %d before the writes", runtime.NumGoroutine(), base)
		}
	}
}

// heapPuts runs a garbage collection before each pack upload and records
// the largest live heap seen then, after a delay that makes the remote
// slower than the writer.
type heapPuts struct {
	remote.Remote
	mu    sync.Mutex
	most  uint64
	delay time.Duration
}

func (h *heapPuts) Put(ctx context.Context, name string, data []byte) error {
	if strings.HasPrefix(name, "data/") {
		h.mu.Lock()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		h.most = max(h.most, ms.HeapAlloc)
		h.mu.Unlock()
		time.Sleep(h.delay)
	}
	return h.Remote.Put(ctx, name, data)
}

// prngReader yields n pseudo-random bytes of a seed without holding them.
type prngReader struct {
	rng *rand.ChaCha8
	n   int64
}

func (p *prngReader) Read(b []byte) (int, error) {
	if p.n <= 0 {
		return 0, io.EOF
	}
	b = b[:min(int64(len(b)), p.n)]
	p.rng.Read(b)
	p.n -= int64(len(b))
	return len(b), nil
}

func newPRNG(seed byte, n int64) *prngReader {
	return &prngReader{rng: rand.NewChaCha8([32]byte{seed}), n: n}
}

// TestWriterMemoryBounded: a writer faster than the remote holds at most
// Transfers+1 packs (plus the chunks the seal pipeline holds): the live
// heap, measured before each pack upload while 96 MiB of random data are
// written through 1 MiB packs, stays within a bound far below the data
// written. The file then reads back whole.
func TestWriterMemoryBounded(t *testing.T) {
	ctx := context.Background()
	const size = 96 << 20
	var hp *heapPuts
	env := newRepoOn(t, func(r remote.Remote) remote.Remote {
		hp = &heapPuts{Remote: r, delay: 20 * time.Millisecond}
		return hp
	}, repo.InitOptions{PackSize: 1 << 20, Chunking: chunker.Params{Min: 64 << 10, Avg: 256 << 10, Max: 1 << 20},
		Options: repo.Options{Transfers: 2}})
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	content, n, err := env.Repo.SaveFile(ctx, newPRNG(7, size))
	if err != nil || n != size {
		t.Fatalf("writing: %v (%d bytes)", err, n)
	}
	if err := env.Repo.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// 3 packs of up to 1.125 MiB, 2 chunks per core in the pipeline (a
	// copy and a sealed one, 1 MiB each at most), the chunker's buffer,
	// and room for the codecs and the runtime.
	bound := base + 3*(9<<17) + uint64(runtime.GOMAXPROCS(0))*4<<20 + 4<<20 + 16<<20
	hp.mu.Lock()
	most := hp.most
	hp.mu.Unlock()
	t.Logf("live heap: %d MiB before, at most %d MiB while writing %d MiB (bound %d MiB)", base>>20, most>>20, size>>20, bound>>20)
	if most > bound {
		t.Fatalf("the live heap reached %d MiB while writing %d MiB, over the bound of %d MiB", most>>20, size>>20, bound>>20)
	}
	var got bytes.Buffer
	if _, err := env.Repo.OpenFile(&repo.Node{Type: repo.NodeFile, Size: n, Content: content}).CopyTo(ctx, &got); err != nil {
		t.Fatal(err)
	}
	want, _ := io.ReadAll(newPRNG(7, size))
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatal("the file does not read back")
	}
}

// TestDedupAgainstFailedPack: a file whose chunks are all in a pack whose
// upload failed (and is not stored yet) is stored by reference to them;
// it reads back from memory meanwhile, a commit of it fails while the pack
// keeps failing, and the next commit stores the pack: a new client reads
// both files and check --read-data is clean.
func TestDedupAgainstFailedPack(t *testing.T) {
	ctx := context.Background()
	env := newRepoOn(t, func(r remote.Remote) remote.Remote { return &failOnePack{Remote: r, fails: 2} },
		repo.InitOptions{PackSize: 1 << 20, Options: repo.Options{Transfers: 1}})
	data := randomData(81, 700<<10)
	a := saveFileNode(t, env.Repo, "a", data)
	if err := env.Repo.Flush(ctx); err == nil {
		t.Fatal("flushing a pack whose upload fails succeeded")
	}
	dedup := env.Repo.Stats().DedupBlobs
	b := saveFileNode(t, env.Repo, "b", data)
	if a == nil || b == nil {
		t.FailNow()
	}
	if got := env.Repo.Stats().DedupBlobs - dedup; got != uint64(len(b.Content)) {
		t.Fatalf("%d of %d chunks deduplicated against the failed pack", got, len(b.Content))
	}
	if got, err := readNode(env.Repo, b); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("reading b from the failed pack: %v", err)
	}
	root, err := env.Repo.SaveTree(ctx, &repo.Tree{Nodes: []*repo.Node{b}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.Repo.Commit(ctx, root, repo.CommitInfo{Files: 1}); !errors.Is(err, faulty.ErrInjected) {
		t.Fatalf("commit while the pack fails = %v", err)
	}
	root, err = env.Repo.SaveTree(ctx, &repo.Tree{Nodes: []*repo.Node{a, b}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.Repo.Commit(ctx, root, repo.CommitInfo{Files: 2}); err != nil {
		t.Fatal(err)
	}
	checkFresh(t, env, map[string][]byte{"a": data, "b": data})
}

// TestConcurrentWritersMemoryBounded: many files written at once, on many
// cores, over a remote slower than the writers: the chunks the seal
// pipelines hold are bounded for the repository, not per file, so the live
// heap (measured at each pack upload) stays within the Transfers+1 packs
// and one pipeline's worth of chunks, whatever the number of writers.
func TestConcurrentWritersMemoryBounded(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(8))
	ctx := context.Background()
	const writers, size = 16, 16 << 20
	var hp *heapPuts
	env := newRepoOn(t, func(r remote.Remote) remote.Remote {
		hp = &heapPuts{Remote: r, delay: 20 * time.Millisecond}
		return hp
	}, repo.InitOptions{PackSize: 1 << 20, Chunking: chunker.Params{Min: 64 << 10, Avg: 128 << 10, Max: 256 << 10},
		Options: repo.Options{Transfers: 2}})
	write := func(seed byte, size int64) {
		var wg sync.WaitGroup
		for i := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, n, err := env.Repo.SaveFile(ctx, newPRNG(seed+byte(i), size)); err != nil || n != uint64(size) {
					t.Errorf("writer %d: %v (%d bytes)", i, err, n)
				}
			}()
		}
		wg.Wait()
		if err := env.Repo.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	write(100, 1<<20) // the codecs' state for as many writers, made once
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	hp.mu.Lock()
	hp.most = 0
	hp.mu.Unlock()
	write(10, size)
	// 3 packs of up to 1.125 MiB; one pipeline's worth of chunks (2 per
	// core, a copy and a sealed one of 256 KiB each at most); a chunker's
	// buffer and a chunk in hand, sealed, per writer (1 MiB); room for the
	// codecs and the runtime. Chunks held per writer instead of per
	// repository took 16 times 512 KiB per writer.
	bound := base + 3*(9<<17) + 8*2*512<<10 + writers*1<<20 + 20<<20
	hp.mu.Lock()
	most := hp.most
	hp.mu.Unlock()
	t.Logf("live heap: %d MiB before, at most %d MiB while %d writers wrote %d MiB (bound %d MiB)", base>>20, most>>20, writers, writers*size>>20, bound>>20)
	if most > bound {
		t.Fatalf("the live heap reached %d MiB, over the bound of %d MiB", most>>20, bound>>20)
	}
}

// failingReader yields data, then fails.
type failingReader struct {
	rd io.Reader
}

func (f *failingReader) Read(p []byte) (int, error) {
	n, err := f.rd.Read(p)
	if err == io.EOF {
		return n, errors.New("the source failed")
	}
	return n, err
}

// TestPipelineEndsCleanly: writes that end half-way (the source fails, or
// the context ends while uploads hang) leave no goroutine of the seal
// pipeline behind and give back every chunk slot; a write after them
// stores a file that reads back.
func TestPipelineEndsCleanly(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	ctx := context.Background()
	env := testutil.NewRepo(t, repo.InitOptions{PackSize: 1 << 20, Chunking: chunker.Params{Min: 64 << 10, Avg: 128 << 10, Max: 256 << 10},
		Options: repo.Options{Transfers: 1}})
	base := runtime.NumGoroutine()
	for i := range 3 {
		if _, _, err := env.Repo.SaveFile(ctx, &failingReader{newPRNG(byte(i), 5<<20)}); err == nil {
			t.Fatal("a write whose source fails succeeded")
		}
	}
	env.Remote.FailOn("put", "data/", 1000, faulty.Hang)
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, _, err := env.Repo.SaveFile(cctx, newPRNG(9, 16<<20))
		done <- err
	}()
	waitHeld(t, env.Remote, 1)
	time.Sleep(100 * time.Millisecond) // the pipeline fills up behind the held upload
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled write = %v", err)
	}
	if n := repo.SealSlotsInUseForTest(env.Repo); n != 0 {
		t.Fatalf("%d chunk slots still taken after the writes ended", n)
	}
	for end := time.Now().Add(10 * time.Second); runtime.NumGoroutine() > base+1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("%d goroutines after the writes ended, %d before (one upload is held)", runtime.NumGoroutine(), base)
		}
	}
	env.Remote.Release()
	data := randomData(91, 3<<20)
	n := saveFileNode(t, env.Repo, "f", data)
	if n == nil {
		t.FailNow()
	}
	if got, err := readNode(env.Repo, n); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back after the failed writes: %v", err)
	}
}
