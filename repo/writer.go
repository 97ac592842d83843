package repo

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/sealfs/sealfs/chunker"
	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/repo/format"
)

// Blob plaintext flags: the first byte of a sealed blob's plaintext.
const (
	blobRaw  = 0
	blobZstd = 1
)

// probeSize is how much of a large chunk is test-compressed first: data that
// does not compress there (media, archives, encrypted files) is stored raw
// without paying for compressing all of it.
const probeSize = 64 << 10

// saves reports whether compressed output of n bytes (flag byte included)
// saves at least 1/32 of raw bytes.
func saves(n, raw int) bool { return n-1 < raw-raw/32 }

// encodeBlob returns flag || payload, compressing when the repository asks
// for it and compression saves at least 1/32 of the size.
func (r *Repository) encodeBlob(data []byte) []byte {
	if r.cfg.Compression == CompressionZstd && len(data) >= 64 {
		compress := true
		if len(data) > 2*probeSize {
			probe := r.zenc.EncodeAll(data[:probeSize], []byte{blobZstd})
			compress = saves(len(probe), probeSize)
		}
		if compress {
			out := r.zenc.EncodeAll(data, append(make([]byte, 0, len(data)/2+16), blobZstd))
			if saves(len(out), len(data)) {
				return out
			}
		}
	}
	out := make([]byte, 0, len(data)+1)
	out = append(out, blobRaw)
	return append(out, data...)
}

// sealedBlob is a blob sealed for a pack, not yet in one: its id, the
// type its index entry records, its sealed bytes and its raw length.
type sealedBlob struct {
	id     crypt.ID
	t      crypt.ObjectType
	sealed []byte
	raw    int
}

// sealBlob encodes (compresses, when it pays) and seals data as blob id of
// type t: a data blob as a segmented one (docs/SPEC.md §6.2), a tree blob
// whole. It takes no lock: callers seal in parallel, then add the result
// to the pack being built under r.mu.
func (r *Repository) sealBlob(t crypt.ObjectType, id crypt.ID, data []byte) (sealedBlob, error) {
	if t == crypt.TypeDataBlob && !r.wholeDataBlobs {
		sealed, err := r.sealSegmented(id, data)
		if err != nil {
			return sealedBlob{}, err
		}
		return sealedBlob{id: id, t: crypt.TypeSegmentedBlob, sealed: sealed, raw: len(data)}, nil
	}
	sealed, err := r.keys.Seal(nil, t, id, r.encodeBlob(data))
	if err != nil {
		return sealedBlob{}, err
	}
	return sealedBlob{id: id, t: t, sealed: sealed, raw: len(data)}, nil
}

// SaveBlob stores data as a blob of type t, unless a blob with the same
// content is stored already, and returns its id. Blobs are gathered into
// packs; a full pack goes up in the background (upload.go), so SaveBlob
// waits only while Options.Transfers packs are still on their way up.
func (r *Repository) SaveBlob(ctx context.Context, t crypt.ObjectType, data []byte) (crypt.ID, error) {
	if err := checkBlob(t, data); err != nil {
		return crypt.ID{}, err
	}
	b, err := r.prepareBlob(t, data)
	if err != nil {
		return b.id, err
	}
	return b.id, r.addBlob(ctx, b)
}

// checkBlob refuses what cannot be stored as a blob.
func checkBlob(t crypt.ObjectType, data []byte) error {
	if !format.ValidBlobType(t) {
		return fmt.Errorf("cannot store a %s as a blob", t)
	}
	if len(data) > format.MaxBlobSize {
		return fmt.Errorf("blob of %d bytes is over the %d-byte limit", len(data), format.MaxBlobSize)
	}
	return nil
}

// preparedBlob is a blob ready to go into a pack: its id, and its sealed
// form unless it was stored already when it was prepared.
type preparedBlob struct {
	t      crypt.ObjectType
	id     crypt.ID
	data   []byte
	sealed *sealedBlob // nil: stored already
}

// prepareBlob computes a blob's id and seals it, unless it is stored
// already: the work that takes no lock, done for several chunks in
// parallel by FileWriter.Write.
func (r *Repository) prepareBlob(t crypt.ObjectType, data []byte) (preparedBlob, error) {
	b := preparedBlob{t: t, id: r.keys.BlobID(t, data), data: data}
	if _, ok := r.Index().Lookup(b.id); ok {
		return b, nil
	}
	sb, err := r.sealBlob(t, b.id, data)
	if err != nil {
		return b, err
	}
	b.sealed = &sb
	return b, nil
}

// addBlob adds a prepared blob to the pack being built, unless a blob with
// its id is stored already, and starts the pack's upload once it is full.
func (r *Repository) addBlob(ctx context.Context, b preparedBlob) error {
	added, err := r.addBlobLocked(ctx, &b)
	if err != nil || !added {
		return err
	}
	if b.t == crypt.TypeTreeBlob && r.blobs != nil {
		// Directories we wrote stay readable from the cache, so that a
		// mount can come up while the remote is down.
		r.blobs.put(b.id, b.sealed.sealed)
	}
	return nil
}

// addBlobLocked is addBlob's part under r.mu; it reports whether the blob
// went into a pack.
func (r *Repository) addBlobLocked(ctx context.Context, b *preparedBlob) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	// Without the lease, the index is not known to be the newest: a prune
	// elsewhere may have deleted a blob it lists, so a match in it proves
	// nothing. A blob "stored already" is only taken as stored by a writer
	// (whose Lock loaded the newest index, which no prune changes while it
	// holds the lease); otherwise the caller stores it again later.
	if r.lease == nil {
		return false, ErrReadOnly
	}
	for r.packer == nil || b.sealed == nil {
		if _, ok := r.Index().Lookup(b.id); ok {
			break
		}
		switch {
		case b.sealed == nil:
			// Stored when it was prepared, but not in the index now
			// (Check swaps it for a while): seal it after all.
			r.mu.Unlock()
			sb, err := r.sealBlob(b.t, b.id, b.data)
			r.mu.Lock()
			if err != nil {
				return false, err
			}
			b.sealed = &sb
		case r.packSlots < r.maxPacks():
			p, err := newPackBuilder(r.packCapacity(), r.spare)
			if err != nil {
				return false, err
			}
			r.packer, r.spare = p, nil
			r.packSlots++
		default:
			if err := r.packSlotLocked(ctx); err != nil {
				return false, err
			}
		}
	}
	// Stored meanwhile, perhaps by another goroutine.
	if _, ok := r.Index().Lookup(b.id); ok {
		r.stats.DedupBlobs++
		return false, nil
	}
	if r.lease == nil {
		return false, ErrReadOnly
	}
	loc := r.packer.add(*b.sealed)
	r.Index().add(b.id, loc)
	r.stats.Blobs++
	r.stats.RawBytes += uint64(b.sealed.raw)
	if len(r.packer.buf) >= r.cfg.PackSize {
		return true, r.finishPackLocked(ctx)
	}
	return true, nil
}

// Stats returns what this writer stored so far.
func (r *Repository) Stats() WriteStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

func isZero(b []byte) bool {
	for len(b) >= 8 {
		if b[0]|b[1]|b[2]|b[3]|b[4]|b[5]|b[6]|b[7] != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// FileWriter chunks a file's content as it streams in and stores each chunk
// as a data blob; runs of zero bytes become holes that are not stored.
type FileWriter struct {
	r       *Repository
	content []Extent
	size    uint64
}

// chunkBufs holds the buffers of finished chunkers (*[]byte): a commit
// of thousands of small files allocated a 64 KiB buffer for each (58 % of
// the bytes a commit of Go's src allocated, and the collector's work).
var chunkBufs sync.Pool

// NewFileWriter starts a new file.
func (r *Repository) NewFileWriter() *FileWriter { return &FileWriter{r: r} }

// Hole appends n zero bytes without reading them (a hole of a sparse file).
func (w *FileWriter) Hole(n uint64) {
	if n == 0 {
		return
	}
	if k := len(w.content); k > 0 && w.content[k-1].Hole {
		w.content[k-1].Size += n
	} else {
		w.content = append(w.content, Extent{Hole: true, Size: n})
	}
	w.size += n
}

// Append appends an extent stored already (a chunk kept from an earlier
// version of the file).
func (w *FileWriter) Append(e Extent) {
	if e.Hole {
		w.Hole(e.Size)
		return
	}
	w.content = append(w.content, e)
	w.size += e.Size
}

// Write chunks everything rd yields and stores it. The chunks' ids and
// sealing are computed on all cores (sealPipeline); they go into packs in
// the order of the file.
func (w *FileWriter) Write(ctx context.Context, rd io.Reader) error {
	c, err := chunker.New(rd, w.r.gear, w.r.cfg.Chunking())
	if err != nil {
		return err
	}
	if b, ok := chunkBufs.Get().(*[]byte); ok {
		c.Reuse(*b)
	}
	var p *sealPipeline
	defer func() {
		if p != nil {
			p.stop()
		}
		// No chunk of c is referenced any more: the pipeline and
		// SaveBlob keep copies.
		b := c.Buffer()
		chunkBufs.Put(&b)
	}()
	for first := true; ; first = false {
		chunk, err := c.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		switch {
		case p != nil:
			if err := w.pushOrSave(ctx, p, chunk); err != nil {
				return err
			}
		case isZero(chunk):
			w.Hole(uint64(len(chunk)))
		case first || sealWorkers() == 1:
			// A file of one chunk, the most common kind, needs no workers;
			// nor does the first chunk of a longer one, nor a single core.
			if err := w.save(ctx, chunk); err != nil {
				return err
			}
		default:
			p = w.r.newSealPipeline()
			if err := w.pushOrSave(ctx, p, chunk); err != nil {
				return err
			}
		}
	}
	if p == nil {
		return nil
	}
	return w.collect(ctx, p, 0)
}

// pushOrSave hands chunk to the pipeline, or, when the repository's
// budget of chunks in pipelines is used up (other files are being written
// at once), stores it inline once the chunks before it are stored.
func (w *FileWriter) pushOrSave(ctx context.Context, p *sealPipeline, chunk []byte) error {
	if p.push(chunk) {
		return w.collect(ctx, p, p.limit-1)
	}
	if err := w.collect(ctx, p, 0); err != nil {
		return err
	}
	return w.save(ctx, chunk)
}

// save stores one data chunk and appends its extent.
func (w *FileWriter) save(ctx context.Context, chunk []byte) error {
	id, err := w.r.SaveBlob(ctx, crypt.TypeDataBlob, chunk)
	if err != nil {
		return err
	}
	w.content = append(w.content, Extent{ID: id, Size: uint64(len(chunk))})
	w.size += uint64(len(chunk))
	return nil
}

// collect adds the sealed chunks at the head of p's queue to packs, in
// order: those ready, and more, waiting for them, until at most keep are
// left in the queue.
func (w *FileWriter) collect(ctx context.Context, p *sealPipeline, keep int) error {
	for {
		j := p.next(keep)
		if j == nil {
			return nil
		}
		if j.err != nil {
			return j.err
		}
		if j.hole {
			w.Hole(j.size)
			continue
		}
		err := w.r.addBlob(ctx, j.blob)
		putSealed(&j.blob)
		if err != nil {
			return err
		}
		w.content = append(w.content, Extent{ID: j.blob.id, Size: j.size})
		w.size += j.size
	}
}

// Content returns the extents written so far and the total size.
func (w *FileWriter) Content() ([]Extent, uint64) { return w.content, w.size }

// SaveFile stores everything rd yields as a file's content.
func (r *Repository) SaveFile(ctx context.Context, rd io.Reader) ([]Extent, uint64, error) {
	w := r.NewFileWriter()
	if err := w.Write(ctx, rd); err != nil {
		return nil, 0, err
	}
	c, n := w.Content()
	return c, n, nil
}

// SaveTree sorts and stores a directory as a tree blob.
func (r *Repository) SaveTree(ctx context.Context, t *Tree) (crypt.ID, error) {
	t.Sort()
	b, err := format.EncodeTree(t)
	if err != nil {
		return crypt.ID{}, fmt.Errorf("failed to encode directory: %w", err)
	}
	return r.SaveBlob(ctx, crypt.TypeTreeBlob, b)
}

// TreeID sorts a directory and returns the id SaveTree would store it
// under, storing nothing: a tree equal to a stored one has its id.
func (r *Repository) TreeID(t *Tree) (crypt.ID, error) {
	t.Sort()
	b, err := format.EncodeTree(t)
	if err != nil {
		return crypt.ID{}, fmt.Errorf("failed to encode directory: %w", err)
	}
	return r.keys.BlobID(crypt.TypeTreeBlob, b), nil
}
