package repo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/remote"
	"github.com/sealfs/sealfs/repo/format"
)

// LoadBlob fetches blob id of type t with one range request, authenticates
// and decrypts it, decompresses it and checks that its content hashes to
// id. Any failure is an error wrapping ErrIntegrity that names the pack and
// the blob; no unverified byte is ever returned. Callers asking for the
// same blob at the same time share one fetch (fetchGroup). When ctx is done
// first, LoadBlob returns at once with an error wrapping ctx's error, and
// nothing is cached. Callers must not modify the data.
func (r *Repository) LoadBlob(ctx context.Context, t crypt.ObjectType, id crypt.ID) ([]byte, error) {
	l, err := r.locate(t, id)
	if err != nil {
		return nil, err
	}
	if data, ok, err := r.loadLocal(t, id, l); ok {
		return data, err
	}
	data, err := r.fetches.do(ctx, id, func(fctx context.Context) ([]byte, error) { return r.fetchBlob(fctx, t, id, l) })
	if err != nil && ctx.Err() != nil {
		return nil, fmt.Errorf("reading %s %s was abandoned: %w", t, id.Short(), ctx.Err())
	}
	return data, err
}

// locate finds blob id of type t in the index.
func (r *Repository) locate(t crypt.ObjectType, id crypt.ID) (Location, error) {
	l, ok := r.Index().Lookup(id)
	if !ok {
		return l, integrityError(fmt.Sprintf("%s %s", t, id), "not in any index")
	}
	if l.Type != t {
		return l, integrityError(fmt.Sprintf("%s %s", t, id), "the index lists it as a %s", l.Type)
	}
	return l, nil
}

// loadLocal loads a blob without the remote: from memory, from the pack
// being built, or from the blob cache. ok is false when it must be fetched.
func (r *Repository) loadLocal(t crypt.ObjectType, id crypt.ID, l Location) (data []byte, ok bool, err error) {
	if r.recent != nil && t == crypt.TypeDataBlob {
		if data := r.recent.get(id); data != nil {
			return data, true, nil
		}
	}
	if sealed := r.blobFromPacker(l); sealed != nil {
		data, err := r.openBlob(t, id, l, sealed)
		if err == nil {
			r.remember(t, id, data)
		}
		return data, true, err
	}
	if r.blobs == nil {
		return nil, false, nil
	}
	if cached := r.blobs.get(id); cached != nil {
		if data, err := r.openBlob(t, id, l, cached); err == nil {
			r.remember(t, id, data)
			return data, true, nil
		}
		r.blobs.drop(id) // damaged on local disk: fetch it again
	}
	return nil, false, nil
}

// fetchBlob fetches a blob from the remote and verifies it; only then is it
// cached. A fetch cancelled half-way fails with ctx's error, whatever the
// remote made of it (a body cut off reads as a truncated pack).
func (r *Repository) fetchBlob(ctx context.Context, t crypt.ObjectType, id crypt.ID, l Location) ([]byte, error) {
	sealed, err := r.remote.Get(ctx, format.PackName(l.Pack), int64(l.Offset), int64(l.Length))
	switch {
	case err != nil && ctx.Err() != nil:
		return nil, ctx.Err()
	case errors.Is(err, remote.ErrNotFound):
		return nil, integrityError(format.PackName(l.Pack), "the pack is missing (it holds %s %s)", t, id.Short())
	case errors.Is(err, remote.ErrShortRead):
		return nil, integrityError(format.PackName(l.Pack), "the pack is truncated (it should hold %s %s at %d+%d)", t, id.Short(), l.Offset, l.Length)
	case err != nil:
		return nil, err
	}
	data, err := r.openBlob(t, id, l, sealed)
	if err != nil {
		return nil, err
	}
	if r.blobs != nil {
		r.blobs.put(id, sealed)
	}
	r.remember(t, id, data)
	return data, nil
}

// remember keeps a verified data blob in memory for the reads that follow.
func (r *Repository) remember(t crypt.ObjectType, id crypt.ID, data []byte) {
	if r.recent != nil && t == crypt.TypeDataBlob {
		r.recent.put(id, data)
	}
}

// prefetch loads a data blob into the caches in the background, once. It
// runs on a context of its own, without ctx's cancellation: the read that
// asked for it ends long before, and other readers may be waiting on the
// same fetch. The remote's own time-outs bound it.
func (r *Repository) prefetch(ctx context.Context, id crypt.ID) {
	if r.blobs == nil || r.recent.get(id) != nil {
		return
	}
	l, err := r.locate(crypt.TypeDataBlob, id)
	if err != nil {
		return // it surfaces at the real read
	}
	r.fetches.start(ctx, id, func(fctx context.Context) ([]byte, error) {
		if data, ok, err := r.loadLocal(crypt.TypeDataBlob, id, l); ok {
			return data, err
		}
		return r.fetchBlob(fctx, crypt.TypeDataBlob, id, l)
	})
}

// openBlob verifies and decodes the sealed form of a blob.
func (r *Repository) openBlob(t crypt.ObjectType, id crypt.ID, l Location, sealed []byte) ([]byte, error) {
	where := fmt.Sprintf("%s (%s %s at offset %d)", format.PackName(l.Pack), t, id.Short(), l.Offset)
	pt, err := r.keys.Open(t, id, sealed)
	if err != nil {
		return nil, integrityError(where, "%v", err)
	}
	if len(pt) == 0 {
		return nil, integrityError(where, "empty blob")
	}
	var data []byte
	switch pt[0] {
	case blobRaw:
		data = pt[1:]
	case blobZstd:
		data, err = r.zdec.DecodeAll(pt[1:], make([]byte, 0, l.RawLength))
		if err != nil {
			return nil, integrityError(where, "failed to decompress: %v", err)
		}
	default:
		return nil, integrityError(where, "unknown blob encoding %d", pt[0])
	}
	if uint32(len(data)) != l.RawLength {
		return nil, integrityError(where, "blob is %d bytes, the index says %d", len(data), l.RawLength)
	}
	if r.keys.BlobID(t, data) != id {
		return nil, integrityError(where, "content does not match its id")
	}
	return data, nil
}

// LoadTree loads and parses a tree blob.
func (r *Repository) LoadTree(ctx context.Context, id crypt.ID) (*Tree, error) {
	b, err := r.LoadBlob(ctx, crypt.TypeTreeBlob, id)
	if err != nil {
		return nil, err
	}
	t, err := format.DecodeTree(b)
	if err != nil {
		return nil, integrityError(fmt.Sprintf("tree %s", id), "%v", err)
	}
	return t, nil
}

// FileReader reads a stored file's content at any offset, fetching only
// the chunks it needs; it caches the last chunk it read. It is safe for
// concurrent use.
type FileReader struct {
	r      *Repository
	node   *Node
	starts []uint64 // offset of each extent

	mu      sync.Mutex
	lastID  crypt.ID
	lastBuf []byte
	lastIdx int
	// The last chunk that failed to load, and when: the kernel asks for
	// the pages of a chunk in several reads, and each would otherwise
	// wait through the remote's retries again before failing.
	failID  crypt.ID
	failErr error
	failAt  time.Time
}

// failHold is how long a chunk that failed to load fails again at once
// for the same reader, rather than being fetched again.
const failHold = 5 * time.Second

// OpenFile returns a reader for a file node.
func (r *Repository) OpenFile(n *Node) *FileReader {
	starts := make([]uint64, len(n.Content))
	var off uint64
	for i, e := range n.Content {
		starts[i] = off
		off += e.Size
	}
	return &FileReader{r: r, node: n, starts: starts, lastIdx: -2}
}

// Size returns the file's size.
func (f *FileReader) Size() int64 { return int64(f.node.Size) }

// ReadAt reads len(p) bytes at off, as io.ReaderAt does: it returns io.EOF
// at the end of the file. When ctx is done before the chunks it needs are
// fetched, it fails with an error wrapping ctx's error; the read-ahead it
// started goes on.
func (f *FileReader) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("negative offset %d", off)
	}
	total := 0
	for len(p) > 0 {
		if uint64(off) >= f.node.Size {
			return total, io.EOF
		}
		i := sort.Search(len(f.starts), func(i int) bool { return f.starts[i] > uint64(off) }) - 1
		if i < 0 || f.starts[i]+f.node.Content[i].Size <= uint64(off) {
			return total, fmt.Errorf("file content does not cover offset %d of its %d bytes", off, f.node.Size)
		}
		e := f.node.Content[i]
		f.readAhead(ctx, i)
		within := uint64(off) - f.starts[i]
		n := int(min(uint64(len(p)), e.Size-within))
		if e.Hole {
			clear(p[:n])
		} else {
			data, err := f.chunk(ctx, e)
			if err != nil {
				return total, err
			}
			copy(p[:n], data[within:])
		}
		p, off, total = p[n:], off+int64(n), total+n
	}
	return total, nil
}

// readAheadChunks is how many chunks a sequential reader fetches ahead.
const readAheadChunks = 4

// readAhead starts fetching the chunks after extent i when the reads move
// forward through the file.
func (f *FileReader) readAhead(ctx context.Context, i int) {
	f.mu.Lock()
	sequential := i == f.lastIdx || i == f.lastIdx+1
	f.lastIdx = i
	f.mu.Unlock()
	if !sequential || f.r.blobs == nil {
		return
	}
	for j := i + 1; j < len(f.node.Content) && j <= i+readAheadChunks; j++ {
		if e := f.node.Content[j]; !e.Hole {
			f.r.prefetch(ctx, e.ID)
		}
	}
}

// chunk returns the content of data extent e. A read abandoned by its
// caller (ctx done) says nothing about the chunk: it is not held as failed.
func (f *FileReader) chunk(ctx context.Context, e Extent) ([]byte, error) {
	f.mu.Lock()
	last, lastBuf := f.lastID, f.lastBuf
	failID, failErr, failAt := f.failID, f.failErr, f.failAt
	f.mu.Unlock()
	if lastBuf != nil && last == e.ID {
		return lastBuf, nil
	}
	if failErr != nil && failID == e.ID && time.Since(failAt) < failHold {
		return nil, failErr
	}
	data, err := f.r.LoadBlob(ctx, crypt.TypeDataBlob, e.ID)
	if err == nil && uint64(len(data)) != e.Size {
		err = integrityError(fmt.Sprintf("data blob %s", e.ID), "it is %d bytes, the tree says %d", len(data), e.Size)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err != nil {
		if ctx.Err() == nil {
			f.failID, f.failErr, f.failAt = e.ID, err, time.Now()
		}
		return nil, err
	}
	f.lastID, f.lastBuf = e.ID, data
	return data, nil
}

// CopyTo copies the whole file to w.
func (f *FileReader) CopyTo(ctx context.Context, w io.Writer) (int64, error) {
	var n int64
	for _, e := range f.node.Content {
		var data []byte
		if e.Hole {
			data = make([]byte, min(e.Size, 1<<20))
			for left := e.Size; left > 0; {
				k := min(left, uint64(len(data)))
				m, err := w.Write(data[:k])
				n += int64(m)
				if err != nil {
					return n, err
				}
				left -= k
			}
			continue
		}
		data, err := f.chunk(ctx, e)
		if err != nil {
			return n, err
		}
		m, err := w.Write(data)
		n += int64(m)
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
