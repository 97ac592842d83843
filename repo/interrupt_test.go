package repo_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/internal/unlock"
	"github.com/sealfs/sealfs/remote"
	"github.com/sealfs/sealfs/repo"
)

// hangingRemote is a remote whose Gets of packs hang while it is armed:
// until it heals, or their caller gives up. It counts the Gets it held
// and those given up.
type hangingRemote struct {
	remote.Remote

	mu      sync.Mutex
	release chan struct{} // nil while healed

	gets, held, abandoned atomic.Int64
}

func (h *hangingRemote) Get(ctx context.Context, name string, offset, length int64) ([]byte, error) {
	h.mu.Lock()
	release := h.release
	h.mu.Unlock()
	if strings.HasPrefix(name, "data/") {
		h.gets.Add(1)
		if release != nil {
			h.held.Add(1)
			select {
			case <-release:
			case <-ctx.Done():
				h.abandoned.Add(1)
				return nil, ctx.Err()
			}
		}
	}
	return h.Remote.Get(ctx, name, offset, length)
}

func (h *hangingRemote) arm() {
	h.mu.Lock()
	h.release = make(chan struct{})
	h.mu.Unlock()
}

func (h *hangingRemote) heal() {
	h.mu.Lock()
	if h.release != nil {
		close(h.release)
		h.release = nil
	}
	h.mu.Unlock()
}

// waitCount waits until n reaches want, failing the test after a while.
func waitCount(t *testing.T, what string, n *atomic.Int64, want int64) {
	t.Helper()
	for end := time.Now().Add(30 * time.Second); n.Load() < want; time.Sleep(time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("%s: %d, want %d", what, n.Load(), want)
		}
	}
}

// hangingFile stores a file of several chunks and opens the repository
// again as a new client (nothing cached) over a remote that can hang.
func hangingFile(t *testing.T) (*repo.Repository, *hangingRemote, *repo.Node, []byte) {
	return hangingFileAs(t, false)
}

// hangingFileAs is hangingFile, with data blobs sealed whole (as format
// version 1 first did) when whole is set.
func hangingFileAs(t *testing.T, whole bool) (*repo.Repository, *hangingRemote, *repo.Node, []byte) {
	t.Helper()
	env := testutil.NewRepo(t, repo.InitOptions{PackSize: 1 << 20})
	repo.WholeDataBlobsForTest(env.Repo, whole)
	data := randomData(11, 5<<20)
	snap := storeFile(t, env.Repo, "f", data)
	hr := &hangingRemote{Remote: testutil.NewRemote(t, env.Dir)}
	t.Cleanup(hr.heal)
	r, err := repo.Open(context.Background(), hr, unlock.WithCode(env.Code), repo.Options{CacheDir: t.TempDir(), CacheSize: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	tree, err := r.LoadTree(context.Background(), snap.Tree)
	if err != nil {
		t.Fatal(err)
	}
	node := tree.Nodes[0]
	if len(node.Content) < 3 {
		t.Fatalf("5 MiB made %d chunks", len(node.Content))
	}
	hr.gets.Store(0)
	return r, hr, node, data
}

// lastChunk returns the offset of the node's last chunk.
func lastChunk(n *repo.Node) int64 {
	return int64(n.Size - n.Content[len(n.Content)-1].Size)
}

// read reads n bytes at off through fr with ctx, in the background.
func read(ctx context.Context, fr *repo.FileReader, off int64, n int) chan error {
	done := make(chan error, 1)
	go func() {
		_, err := fr.ReadAt(ctx, make([]byte, n), off)
		done <- err
	}()
	return done
}

// wait returns the error of a read started by read, failing the test when
// it does not end.
func wait(t *testing.T, what string, done chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not return", what)
		return nil
	}
}

// TestReadInterrupted: a read waiting on a remote that hangs returns as
// soon as its context is cancelled, with the context's error; the remote
// request is cancelled; nothing is cached or held as failed, so that the
// next read through the same reader fetches the chunk and returns it.
func TestReadInterrupted(t *testing.T) {
	r, hr, node, data := hangingFile(t)
	fr := r.OpenFile(node)
	off := lastChunk(node) // nothing after it to read ahead
	hr.arm()
	ctx, cancel := context.WithCancel(context.Background())
	done := read(ctx, fr, off, 100)
	// A read of 100 bytes in the middle of a file reads segments: the
	// chunk's segment table and the segment, at once (random data is
	// stored raw, so the index entry says where the segment lies).
	waitCount(t, "gets held", &hr.held, 2)
	cancel()
	if err := wait(t, "an interrupted read", done); !errors.Is(err, context.Canceled) {
		t.Fatalf("an interrupted read returned %v, want context.Canceled", err)
	}
	waitCount(t, "gets abandoned", &hr.abandoned, 2)
	hr.heal()
	buf := make([]byte, 100)
	if _, err := fr.ReadAt(context.Background(), buf, off); err != nil || !bytes.Equal(buf, data[off:off+100]) {
		t.Fatalf("the read after the interrupted one: %v", err)
	}
	if got := hr.gets.Load(); got != 4 {
		t.Fatalf("%d gets, want 4: the two interrupted ones, and the two of the read after them", got)
	}
}

// TestSharedFetchOneReaderInterrupted: two readers of the same chunk wait
// on one fetch; the one interrupted returns at once, the other gets the
// chunk once the remote answers, from the same single request. (The
// chunk is stored whole: the readers, at random offsets, would each read
// only the segments they need from a segmented one.)
func TestSharedFetchOneReaderInterrupted(t *testing.T) {
	r, hr, node, data := hangingFileAs(t, true)
	off := lastChunk(node)
	hr.arm()
	ctxA, cancelA := context.WithCancel(context.Background())
	doneA := read(ctxA, r.OpenFile(node), off, 100)
	waitCount(t, "gets held", &hr.held, 1)
	frB := r.OpenFile(node)
	bufB := make([]byte, 100)
	doneB := make(chan error, 1)
	go func() { _, err := frB.ReadAt(context.Background(), bufB, off); doneB <- err }()
	id := node.Content[len(node.Content)-1].ID
	for end := time.Now().Add(30 * time.Second); repo.FetchWaitersForTest(r, id) < 2; time.Sleep(time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("the second reader never waited on the fetch")
		}
	}
	cancelA()
	if err := wait(t, "the interrupted reader", doneA); !errors.Is(err, context.Canceled) {
		t.Fatalf("the interrupted reader got %v, want context.Canceled", err)
	}
	hr.heal()
	if err := wait(t, "the other reader", doneB); err != nil || !bytes.Equal(bufB, data[off:off+100]) {
		t.Fatalf("the reader sharing the fetch got %v", err)
	}
	if hr.gets.Load() != 1 || hr.abandoned.Load() != 0 {
		t.Fatalf("%d gets, %d abandoned; want one shared get, not abandoned", hr.gets.Load(), hr.abandoned.Load())
	}
}

// TestSharedFetchAllInterrupted: when every reader waiting on a fetch gives
// up, the fetch is cancelled; a later reader starts a new one.
func TestSharedFetchAllInterrupted(t *testing.T) {
	r, hr, node, data := hangingFile(t)
	id := node.Content[1].ID
	hr.arm()
	ctx, cancel := context.WithCancel(context.Background())
	var dones []chan error
	for range 2 {
		done := make(chan error, 1)
		go func() { _, err := r.LoadBlob(ctx, crypt.TypeDataBlob, id); done <- err }()
		dones = append(dones, done)
	}
	waitCount(t, "gets held", &hr.held, 1)
	cancel()
	for _, done := range dones {
		if err := wait(t, "an interrupted reader", done); !errors.Is(err, context.Canceled) {
			t.Fatalf("an interrupted reader got %v, want context.Canceled", err)
		}
	}
	waitCount(t, "gets abandoned", &hr.abandoned, 1)
	hr.heal()
	got, err := r.LoadBlob(context.Background(), crypt.TypeDataBlob, id)
	start := node.Content[0].Size
	if err != nil || !bytes.Equal(got, data[start:start+node.Content[1].Size]) {
		t.Fatalf("a reader after the cancelled fetch: %v", err)
	}
	if hr.gets.Load() != 2 || hr.held.Load() != 1 {
		t.Fatalf("%d gets (%d held), want the cancelled one and a new one", hr.gets.Load(), hr.held.Load())
	}
}

// TestReadAheadOutlivesInterruptedRead: the read-ahead a sequential read
// starts is not cancelled with the read: it fills the caches, and the
// chunks it fetched are read without another request.
func TestReadAheadOutlivesInterruptedRead(t *testing.T) {
	r, hr, node, data := hangingFile(t)
	fr := r.OpenFile(node)
	before := hr.gets.Load()
	// A read from the start is sequential: the chunks in the first
	// read-ahead window after the first chunk are read ahead (at most
	// repo.DefaultTransfers requests at once), those that lie one after
	// the other in a pack with one request; a request starts while the
	// next chunk lies in the first half of the window.
	var ahead, chunks int64
	from, end := node.Content[0].Size, node.Content[0].Size+repo.ReadAheadMinForTest
	for j := 1; j < len(node.Content) && sumSizes(node.Content[:j]) < end && ahead < repo.DefaultTransfers; {
		if sumSizes(node.Content[:j]) >= from+repo.ReadAheadMinForTest/2 {
			break
		}
		ahead++
		prev, _ := r.Index().Lookup(node.Content[j].ID)
		for j++; j < len(node.Content) && sumSizes(node.Content[:j]) < end; j++ {
			l, _ := r.Index().Lookup(node.Content[j].ID)
			if l.Pack != prev.Pack || l.Offset != prev.Offset+prev.Length {
				break
			}
			prev = l
		}
		chunks = int64(j - 1)
	}
	hr.arm()
	ctx, cancel := context.WithCancel(context.Background())
	done := read(ctx, fr, 0, 100)
	waitCount(t, "gets held (the chunk read and those read ahead)", &hr.held, 1+ahead)
	cancel()
	if err := wait(t, "an interrupted read", done); !errors.Is(err, context.Canceled) {
		t.Fatalf("an interrupted read returned %v, want context.Canceled", err)
	}
	waitCount(t, "gets abandoned", &hr.abandoned, 1)
	hr.heal()
	// Each chunk read ahead is in the caches, or still being fetched:
	// reading it costs no request either way.
	off := node.Content[0].Size
	for _, e := range node.Content[1 : 1+chunks] {
		got, err := r.LoadBlob(context.Background(), crypt.TypeDataBlob, e.ID)
		if err != nil || !bytes.Equal(got, data[off:off+e.Size]) {
			t.Fatalf("reading a chunk read ahead: %v", err)
		}
		off += e.Size
	}
	if got := hr.gets.Load() - before; got != 1+ahead {
		t.Fatalf("%d gets, want %d: the chunks read ahead were fetched again", got, 1+ahead)
	}
	if got := hr.abandoned.Load(); got != 1 {
		t.Fatalf("%d gets abandoned, want only the interrupted read's", got)
	}
}

// sumSizes returns the total size of extents.
func sumSizes(es []repo.Extent) uint64 {
	var n uint64
	for _, e := range es {
		n += e.Size
	}
	return n
}
