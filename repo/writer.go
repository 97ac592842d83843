package repo

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"reflect"
	"time"

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
// packs; a pack is uploaded when it reaches the configured size.
func (r *Repository) SaveBlob(ctx context.Context, t crypt.ObjectType, data []byte) (crypt.ID, error) {
	if !format.ValidBlobType(t) {
		return crypt.ID{}, fmt.Errorf("cannot store a %s as a blob", t)
	}
	if len(data) > format.MaxBlobSize {
		return crypt.ID{}, fmt.Errorf("blob of %d bytes is over the %d-byte limit", len(data), format.MaxBlobSize)
	}
	id := r.keys.BlobID(t, data)
	if _, ok := r.Index().Lookup(id); ok {
		r.mu.Lock()
		r.stats.DedupBlobs++
		r.mu.Unlock()
		return id, nil
	}
	b, err := r.sealBlob(t, id, data)
	if err != nil {
		return id, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lease == nil {
		return id, ErrReadOnly
	}
	if _, ok := r.index.Lookup(id); ok { // stored meanwhile by another goroutine
		r.stats.DedupBlobs++
		return id, nil
	}
	if r.packer != nil && r.packer.finished {
		// A finished pack whose upload failed takes no more blobs: it
		// goes up with the bytes of its first attempt before anything new.
		if err := r.flushPackLocked(ctx); err != nil {
			return id, err
		}
	}
	if r.packer == nil {
		p, err := newPackBuilder(r.cfg.PackSize + r.cfg.PackSize/8)
		if err != nil {
			return id, err
		}
		r.packer = p
	}
	loc := r.packer.add(b)
	r.index.add(id, loc)
	if t == crypt.TypeTreeBlob && r.blobs != nil {
		// Directories we wrote stay readable from the cache, so that a
		// mount can come up while the remote is down.
		r.blobs.put(id, bytes.Clone(r.packer.buf[loc.Offset:loc.Offset+loc.Length]))
	}
	r.stats.Blobs++
	r.stats.RawBytes += uint64(len(data))
	if len(r.packer.buf) >= r.cfg.PackSize {
		return id, r.flushPackLocked(ctx)
	}
	return id, nil
}

// flushPackLocked uploads the pack being built. r.mu is held.
func (r *Repository) flushPackLocked(ctx context.Context) error {
	p := r.packer
	if p == nil || len(p.entries) == 0 {
		return nil
	}
	data, err := p.finish(r.keys)
	if err != nil {
		return err
	}
	if err := r.remote.Put(ctx, format.PackName(p.id), data); err != nil {
		// Keep the finished pack for a later try with the same bytes: its
		// blobs are in the index already.
		return fmt.Errorf("failed to upload pack %s: %w", p.id.Short(), err)
	}
	r.pending = append(r.pending, p.entries...)
	r.stats.Packs++
	r.stats.PackBytes += uint64(len(data))
	r.packer = nil
	return nil
}

// Flush uploads the pack being built, if any.
func (r *Repository) Flush(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.flushPackLocked(ctx)
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

// Write chunks everything rd yields and stores it.
func (w *FileWriter) Write(ctx context.Context, rd io.Reader) error {
	c, err := chunker.New(rd, w.r.gear, w.r.cfg.Chunking())
	if err != nil {
		return err
	}
	for {
		chunk, err := c.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if isZero(chunk) {
			w.Hole(uint64(len(chunk)))
			continue
		}
		id, err := w.r.SaveBlob(ctx, crypt.TypeDataBlob, chunk)
		if err != nil {
			return err
		}
		w.content = append(w.content, Extent{ID: id, Size: uint64(len(chunk))})
		w.size += uint64(len(chunk))
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

// CommitInfo describes a snapshot being committed.
type CommitInfo struct {
	Host         string
	Files, Bytes uint64
	// Root, if set, is stored as the root directory's attributes (in a
	// snapshot of version format.SnapshotRootVersion).
	Root *format.RootAttr
}

// Commit makes a snapshot of the tree root: it uploads the pack being
// built, then an index object for the new packs, then the snapshot, whose
// sequence number is one above the newest. A crash between any two steps
// leaves only unreferenced objects behind, never a broken snapshot.
//
// A failed step is retried by the next Commit without losing anything: an
// index that was stored stays named by every later snapshot until one of
// them is stored, and a snapshot whose upload failed is uploaded again with
// the same bytes (same id, same sequence number) before anything newer, so
// an upload that failed but landed never gives two snapshots one sequence
// number (docs/SPEC.md, "Commit").
func (r *Repository) Commit(ctx context.Context, root crypt.ID, info CommitInfo) (*Snapshot, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lease == nil {
		return nil, ErrReadOnly
	}
	if err := r.lease.check(); err != nil {
		return nil, err
	}
	retried := r.unstored != nil
	if retried {
		if err := r.storeSnapshotLocked(ctx, r.unstored); err != nil {
			return nil, err
		}
		r.unstored = nil
	}
	if err := r.flushPackLocked(ctx); err != nil {
		return nil, err
	}
	if err := r.storeIndexesLocked(ctx); err != nil {
		return nil, err
	}
	if _, ok := r.index.Lookup(root); !ok {
		return nil, fmt.Errorf("root tree %s is not stored", root.Short())
	}
	var parent *Snapshot
	if len(r.snapshots) > 0 {
		parent = r.snapshots[len(r.snapshots)-1]
	}
	if retried && parent.Tree == root && sameRoot(parent.Root, info.Root) && len(r.unnamed) == 0 {
		return parent, nil // the retried snapshot is this commit
	}
	u, err := r.sealSnapshotLocked(root, info, parent)
	if err != nil {
		return nil, err
	}
	// Remembered before the upload: after a crash, the next run stores
	// these same bytes (or drops them if another writer went on meanwhile).
	r.state.Unstored = &unstoredState{ID: u.snap.ID, Sealed: u.sealed}
	if err := r.state.save(r.stateDir); err != nil {
		r.state.Unstored = nil
		return nil, err
	}
	if err := r.storeSnapshotLocked(ctx, u); err != nil {
		r.unstored = u
		return nil, err
	}
	return u.snap, nil
}

// sameRoot reports whether two snapshots' root attributes are the same.
func sameRoot(a, b *format.RootAttr) bool {
	return reflect.DeepEqual(a, b)
}

// storeIndexesLocked seals the blobs of the packs uploaded since the last
// index into index objects, and uploads every index not stored yet, oldest
// first. A stored index stays unnamed until a stored snapshot names it.
// r.mu is held.
func (r *Repository) storeIndexesLocked(ctx context.Context) error {
	for len(r.pending) > 0 {
		n := min(len(r.pending), format.MaxIndexEntries)
		xid, err := crypt.NewRandomID()
		if err != nil {
			return err
		}
		sealed, err := r.keys.Seal(nil, crypt.TypeIndex, xid, format.EncodeIndex(r.pending[:n]))
		if err != nil {
			return err
		}
		r.unsentIndexes = append(r.unsentIndexes, sealedObject{id: xid, sealed: sealed})
		r.pending = r.pending[n:]
	}
	for len(r.unsentIndexes) > 0 {
		x := r.unsentIndexes[0]
		if err := r.remote.Put(ctx, format.IndexName(x.id), x.sealed); err != nil {
			return fmt.Errorf("failed to upload index: %w", err)
		}
		r.unnamed = append(r.unnamed, x.id)
		r.unsentIndexes = r.unsentIndexes[1:]
	}
	return nil
}

// sealSnapshotLocked makes the snapshot of the tree root that follows
// parent (nil for the first): it names the parent's indexes and every
// unnamed one. It is sealed under a fresh id, not stored. r.mu is held.
func (r *Repository) sealSnapshotLocked(root crypt.ID, info CommitInfo, parent *Snapshot) (*unstoredSnapshot, error) {
	s := &Snapshot{Version: format.FormatVersion, Seq: 1, Time: time.Now().UTC(), Host: info.Host, Tree: root, Files: info.Files, Bytes: info.Bytes}
	if info.Root != nil {
		s.Version, s.Root = format.SnapshotRootVersion, info.Root
	}
	if s.Host == "" {
		s.Host, _ = os.Hostname()
	}
	if parent != nil {
		s.Seq, s.Parent = parent.Seq+1, parent.ID
		s.Indexes = append(s.Indexes, parent.Indexes...)
	}
	s.Indexes = append(s.Indexes, r.unnamed...)
	var err error
	if s.ID, err = crypt.NewRandomID(); err != nil {
		return nil, err
	}
	pt, err := format.EncodeSnapshot(s)
	if err != nil {
		return nil, err
	}
	sealed, err := r.keys.Seal(nil, crypt.TypeSnapshot, s.ID, pt)
	if err != nil {
		return nil, err
	}
	return &unstoredSnapshot{snap: s, sealed: sealed}, nil
}

// sealedObject is an object sealed and not yet stored.
type sealedObject struct {
	id     crypt.ID
	sealed []byte
}

// unstoredSnapshot is a sealed snapshot whose upload has not succeeded yet.
type unstoredSnapshot struct {
	snap   *Snapshot
	sealed []byte
}

// storeSnapshotLocked uploads a sealed snapshot and, once it is stored,
// makes it the newest: the indexes it names are no longer unnamed. r.mu is
// held.
func (r *Repository) storeSnapshotLocked(ctx context.Context, u *unstoredSnapshot) error {
	// Checked again after the uploads before it, which may have taken long.
	if err := r.lease.check(); err != nil {
		return err
	}
	if err := r.remote.Put(ctx, format.SnapshotName(u.snap.ID), u.sealed); err != nil {
		return fmt.Errorf("failed to upload snapshot %d: %w", u.snap.Seq, err)
	}
	named := map[crypt.ID]bool{}
	for _, x := range u.snap.Indexes {
		named[x] = true
	}
	keep := r.unnamed[:0]
	for _, x := range r.unnamed {
		if !named[x] {
			keep = append(keep, x)
		}
	}
	r.unnamed = keep
	r.snapshots = append(r.snapshots, u.snap)
	r.state.Unstored = nil
	return r.rememberSeq(u.snap.Seq, true)
}

// blobFromPacker returns the sealed bytes of a blob still in the pack being
// built, or nil.
func (r *Repository) blobFromPacker(l Location) []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.packer == nil || r.packer.id != l.Pack {
		return nil
	}
	return bytes.Clone(r.packer.buf[l.Offset : l.Offset+l.Length])
}
