package repo

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/sealfs/sealfs/chunker"
	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/remote/rcloneremote"
	"github.com/sealfs/sealfs/repo/format"
)

// writerRepo opens a repository for writing on rclone's memory backend
// with small chunks and packs, without a lease on the remote.
func writerRepo(t *testing.T) *Repository {
	t.Helper()
	mk, _ := crypt.NewMasterKey()
	id, _ := crypt.NewRepoID()
	cfg := &format.Config{Version: 1, Repository: id.String(), ChunkMin: 16 << 10, ChunkAvg: 64 << 10,
		ChunkMax: 256 << 10, PackSize: 1 << 20, Compression: CompressionZstd}
	rem, err := rcloneremote.Open(context.Background(), ":memory:"+t.Name())
	if err != nil {
		t.Fatal(err)
	}
	r, err := newRepository(rem, cfg, id, mk, Options{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	r.lease = &leaseHolder{}
	return r
}

// sequentialExtents chunks data as FileWriter.Write must, one chunk after
// the other: holes for chunks of zeros (merged), keyed ids for the others.
func sequentialExtents(t *testing.T, r *Repository, data []byte) []Extent {
	t.Helper()
	c, err := chunker.New(bytes.NewReader(data), r.gear, r.cfg.Chunking())
	if err != nil {
		t.Fatal(err)
	}
	var want []Extent
	for {
		chunk, err := c.Next()
		if err == io.EOF {
			return want
		}
		if err != nil {
			t.Fatal(err)
		}
		n := uint64(len(chunk))
		switch {
		case !isZero(chunk):
			want = append(want, Extent{ID: r.keys.BlobID(crypt.TypeDataBlob, chunk), Size: n})
		case len(want) > 0 && want[len(want)-1].Hole:
			want[len(want)-1].Size += n
		default:
			want = append(want, Extent{Hole: true, Size: n})
		}
	}
}

// TestWriteKeepsChunkOrder: the parallel pipeline gives the extents of a
// sequential writer, holes and repeated chunks included, adds new blobs to
// the packs in file order, stores a repeated chunk once, and reads back.
func TestWriteKeepsChunkOrder(t *testing.T) {
	ctx := context.Background()
	r := writerRepo(t)
	rng := rand.New(rand.NewPCG(5, 6))
	data := make([]byte, 6<<20)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	clear(data[1<<20 : 2<<20])                 // a run of zeros: holes
	copy(data[4<<20:5<<20], data[2<<20:3<<20]) // repeated content: deduplicated chunks
	clear(data[len(data)-300<<10:])            // ends in zeros
	w := r.NewFileWriter()
	if err := w.Write(ctx, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	got, size := w.Content()
	want := sequentialExtents(t, r, data)
	if size != uint64(len(data)) || len(got) != len(want) {
		t.Fatalf("%d extents of %d bytes, want %d of %d", len(got), size, len(want), len(data))
	}
	distinct := map[crypt.ID]bool{}
	var last Location
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("extent %d is %+v, want %+v", i, got[i], want[i])
		}
		if want[i].Hole || distinct[want[i].ID] {
			continue
		}
		distinct[want[i].ID] = true
		l, ok := r.Index().Lookup(want[i].ID)
		if !ok {
			t.Fatalf("extent %d is not in the index", i)
		}
		if l.Pack == last.Pack && l.Offset <= last.Offset {
			t.Fatalf("extent %d lies before the one written before it in pack %s", i, l.Pack.Short())
		}
		last = l
	}
	if st := r.Stats(); st.Blobs != uint64(len(distinct)) {
		t.Fatalf("%d blobs stored for %d distinct chunks", st.Blobs, len(distinct))
	}
	var buf bytes.Buffer
	if _, err := r.OpenFile(&Node{Size: size, Content: got}).CopyTo(ctx, &buf); err != nil || !bytes.Equal(buf.Bytes(), data) {
		t.Fatalf("read back: %v", err)
	}
}
