package worktree_test

import (
	"bytes"
	"errors"
	"io"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/internal/worktree"
	"github.com/sealfs/sealfs/repo"
)

// behindData is n bytes that differ from block to block.
func behindData(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>12)
	}
	return b
}

// TestWriteBehindReadsSeeWrites: appends to a new file are written behind,
// yet a read, SEEK_DATA and the size right after a write see it, from
// another handle and while another goroutine reads; the file commits and
// reads back whole from a fresh tree.
func TestWriteBehindReadsSeeWrites(t *testing.T) {
	ctx := t.Context()
	env := testutil.NewRepo(t, repo.InitOptions{})
	work := t.TempDir()
	tr := open(t, env.Repo, work)
	in, _, err := tr.Create(ctx, tr.Root(), "big", worktree.NewEntry{Type: repo.NodeFile, Mode: 0o644})
	if err != nil {
		t.Fatal(err)
	}
	w, err := tr.OpenFile(in, true, false)
	if err != nil {
		t.Fatal(err)
	}
	r, err := tr.OpenFile(in, false, false)
	if err != nil {
		t.Fatal(err)
	}
	data := behindData(5<<20 + 1234)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // reads at random places while the file grows
		defer wg.Done()
		buf := make([]byte, 5000)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			size := int64(tr.Attr(in).Size)
			if size == 0 {
				continue
			}
			off := int64(i*40503) % size
			n, err := r.ReadAt(ctx, buf, off)
			if err != nil && err != io.EOF {
				t.Errorf("read at %d: %v", off, err)
				return
			}
			if !bytes.Equal(buf[:n], data[off:off+int64(n)]) {
				t.Errorf("read at %d of a file of %d: wrong bytes", off, size)
				return
			}
		}
	}()
	const step = 100_000
	for off := 0; off < len(data); off += step {
		end := min(off+step, len(data))
		if n, err := w.WriteAt(data[off:end], int64(off)); err != nil || n != end-off {
			t.Fatalf("write at %d: %d, %v", off, n, err)
		}
		if size := tr.Attr(in).Size; size != uint64(end) {
			t.Fatalf("size %d after a write up to %d", size, end)
		}
		got := make([]byte, end-off)
		if n, err := r.ReadAt(ctx, got, int64(off)); n != len(got) || (err != nil && err != io.EOF) {
			t.Fatalf("read back at %d: %d, %v", off, n, err)
		}
		if !bytes.Equal(got, data[off:end]) {
			t.Fatalf("read back at %d: wrong bytes", off)
		}
		if pos, err := r.Seek(int64(off), 3); err != nil || pos != int64(off) { // SEEK_DATA
			t.Fatalf("SEEK_DATA at %d = %d, %v", off, pos, err)
		}
	}
	close(stop)
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	tr2 := open(t, env.Repo, t.TempDir())
	defer tr2.Close()
	if !bytes.Equal(readFile(t, tr2, "big"), data) {
		t.Fatal("the committed file differs from what was written")
	}
}

// TestWriteBehindFullDisk: space for a write behind is reserved before
// it is queued, so the write that meets a full disk fails with ENOSPC
// itself (queued, it returned and its bytes were dropped), every write
// that returned is in the file, and it takes writes again once there is
// room.
func TestWriteBehindFullDisk(t *testing.T) {
	ctx := t.Context()
	env := testutil.NewRepo(t, repo.InitOptions{})
	disk := smallDisk(t, "16m")
	work := filepath.Join(disk, "work")
	tr := open(t, env.Repo, work)
	defer tr.Close()
	in, _, err := tr.Create(ctx, tr.Root(), "streaming", worktree.NewEntry{Type: repo.NodeFile, Mode: 0o644})
	if err != nil {
		t.Fatal(err)
	}
	w, err := tr.OpenFile(in, true, false)
	if err != nil {
		t.Fatal(err)
	}
	data := behindData(32 << 20)
	const step = 256 << 10
	off := 0
	for ; off < 2<<20; off += step {
		if _, err := w.WriteAt(data[off:off+step], int64(off)); err != nil {
			t.Fatal(err)
		}
	}
	free := fillDisk(t, disk)
	var werr error
	for off < len(data) {
		if _, werr = w.WriteAt(data[off:off+step], int64(off)); werr != nil {
			break
		}
		off += step
	}
	if !errors.Is(werr, syscall.ENOSPC) {
		t.Fatalf("writes into a full disk: %v, want ENOSPC", werr)
	}
	w.Close() // its error is of no interest here
	free()
	got := readFile(t, tr, "streaming")
	if size := tr.Attr(in).Size; uint64(len(got)) != size {
		t.Fatalf("size %d, content %d bytes", size, len(got))
	}
	if len(got) < off || !bytes.Equal(got[:off], data[:off]) {
		t.Fatalf("the file holds %d bytes, not the %d that writes which returned wrote", len(got), off)
	}
	if !bytes.Equal(got, data[:len(got)]) {
		t.Fatal("the file holds bytes that were not written there")
	}
	size := uint64(len(got))
	w2, err := tr.OpenFile(in, true, false)
	if err != nil {
		t.Fatal(err)
	}
	for o := size; o < size+3*step; o += step {
		if _, err := w2.WriteAt(data[o:o+step], int64(o)); err != nil {
			t.Fatalf("write once there is room: %v", err)
		}
	}
	if err := w2.Close(); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, tr, "streaming"); !bytes.Equal(got, data[:size+3*step]) {
		t.Fatalf("after writing again the file holds %d bytes, not the %d written", len(got), size+3*step)
	}
	if _, err := tr.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}
