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
	"github.com/sealfs/sealfs/repo/format"
)

// LoadBlob fetches blob id of type t with one range request, authenticates
// and decrypts it, decompresses it and checks that its content hashes to
// id (for a segmented blob, unless Options.TrustSegments). Any failure is an error wrapping ErrIntegrity that names the pack and
// the blob; no unverified byte is ever returned. Callers asking for the
// same blob at the same time share one fetch (fetchGroup). When ctx is done
// first, LoadBlob returns at once with an error wrapping ctx's error, and
// nothing is cached. Callers must not modify the data.
func (r *Repository) LoadBlob(ctx context.Context, t crypt.ObjectType, id crypt.ID) ([]byte, error) {
	l, err := r.locate(ctx, t, id)
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

// locate finds blob id of type t in the index, in the cold index objects
// when the main ones do not list it (cold.go).
func (r *Repository) locate(ctx context.Context, t crypt.ObjectType, id crypt.ID) (Location, error) {
	l, ok, err := r.lookup(ctx, id)
	if err != nil {
		return l, err
	}
	if !ok {
		return l, integrityError(fmt.Sprintf("%s %s", t, id), "not in any index")
	}
	if !format.AsRequested(l.Type, t) {
		return l, integrityError(fmt.Sprintf("%s %s", t, id), "the index lists it as a %s", l.Type)
	}
	return l, nil
}

// loadLocal loads a blob without the remote: from memory, from the pack
// being built, or from the blob cache. ok is false when it must be fetched.
func (r *Repository) loadLocal(t crypt.ObjectType, id crypt.ID, l Location) (data []byte, ok bool, err error) {
	data, ok, err = r.loadLocalUncounted(t, id, l)
	if ok && t == crypt.TypeDataBlob {
		r.cacheHits.Add(1)
	}
	return data, ok, err
}

func (r *Repository) loadLocalUncounted(t crypt.ObjectType, id crypt.ID, l Location) (data []byte, ok bool, err error) {
	if r.recent != nil && t == crypt.TypeDataBlob {
		if data := r.recent.get(memKey{id, wholeChunk}); data != nil {
			return data, true, nil
		}
	}
	if sealed := r.blobFromPacker(l); sealed != nil {
		data, err := r.openRead(t, id, l, sealed)
		if err == nil {
			r.remember(t, id, data)
		}
		return data, true, err
	}
	if cached := r.blobs.get(id); cached != nil {
		if data, err := r.openOwned(t, id, l, cached); err == nil {
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
	if t == crypt.TypeDataBlob {
		r.cacheMisses.Add(1)
	}
	sealed, err := r.getRange(ctx, t, id, l, 0, int64(l.Length))
	if err != nil {
		return nil, err
	}
	return r.openFetched(t, id, l, sealed)
}

// openFetched opens blob id, fetched from the remote into sealed (which
// the caller gives up), keeps it in memory and its sealed form in the
// disk cache.
func (r *Repository) openFetched(t crypt.ObjectType, id crypt.ID, l Location, sealed []byte) ([]byte, error) {
	// The copy for the disk cache is written before the blob is opened
	// (in place, in sealed's own storage) and enters the cache only once
	// it checked out.
	keep := func(bool) {}
	if !r.opts.NoCacheWrites {
		keep = r.blobs.stage(id, sealed)
	}
	data, err := r.openOwned(t, id, l, sealed)
	if err != nil {
		keep(false)
		return nil, err
	}
	// Memory first: a reader that arrives while the copy enters the
	// disk cache must not read it back from there and open it again.
	r.remember(t, id, data)
	keep(true)
	return data, nil
}

// openOwned is openRead for a sealed blob the caller gives up: a
// segmented one is opened in its own storage when its segments' places
// allow (openSegmentedInPlace), which halves what a read allocates.
// Whatever the outcome, the caller must not use sealed afterwards.
func (r *Repository) openOwned(t crypt.ObjectType, id crypt.ID, l Location, sealed []byte) ([]byte, error) {
	if l.Type == crypt.TypeSegmentedBlob {
		if data, ok, err := r.openSegmentedInPlace(id, l, sealed, !r.opts.TrustSegments); ok {
			return data, err
		}
	}
	return r.openRead(t, id, l, sealed)
}

// remember keeps a verified data blob in memory for the reads that follow.
func (r *Repository) remember(t crypt.ObjectType, id crypt.ID, data []byte) {
	if r.recent != nil && t == crypt.TypeDataBlob {
		r.recent.put(memKey{id, wholeChunk}, data)
	}
}

// prefetch loads a data blob into the caches in the background, once. It
// runs on a context of its own, without ctx's cancellation: the read that
// asked for it ends long before, and other readers may be waiting on the
// same fetch. The remote's own time-outs bound it. It reports false when
// it started nothing because Options.Transfers prefetches are under way
// already.
func (r *Repository) prefetch(ctx context.Context, id crypt.ID) bool {
	if r.blobs == nil || r.recent.get(memKey{id, wholeChunk}) != nil {
		return true
	}
	l, err := r.locate(ctx, crypt.TypeDataBlob, id)
	if err != nil {
		return true // it surfaces at the real read
	}
	if r.prefetching.Add(1) > int64(r.transfers()) {
		r.prefetching.Add(-1)
		return false
	}
	started := r.fetches.start(ctx, id, func(fctx context.Context) ([]byte, error) {
		defer r.prefetching.Add(-1)
		if data, ok, err := r.loadLocal(crypt.TypeDataBlob, id, l); ok {
			return data, err
		}
		return r.fetchBlob(fctx, crypt.TypeDataBlob, id, l)
	})
	if !started {
		r.prefetching.Add(-1)
	}
	return true
}

// spanMax bounds the bytes one request of read-ahead fetches: the chunks
// ahead of a sequential reader that lie one after the other in a pack
// come in one range request (prefetchRun), as the window allows. Fewer
// requests cost fewer round trips, and a remote that reads past a range's
// end (rclone's sftp backend streams a window of requests ahead, cut off
// when the range is read) wastes less of it.
const spanMax = readAheadMax

// prefetchRun starts fetching data blobs ids, the chunks that follow
// each other in a file, in the background: those from the first that lie
// one after the other in one pack, are in no cache and are not being
// fetched, and span at most spanMax bytes, in one range request. It
// returns how many of ids it dealt with (at least one: a chunk it left
// alone, such as one in memory, counts), or 0 when Options.Transfers
// fetches are under way already.
func (r *Repository) prefetchRun(ctx context.Context, ids []crypt.ID) int {
	locs := r.runOf(ctx, ids)
	if len(locs) < 2 {
		if !r.prefetch(ctx, ids[0]) {
			return 0
		}
		return 1
	}
	if r.prefetching.Add(1) > int64(r.transfers()) {
		r.prefetching.Add(-1)
		return 0
	}
	fctx, done, calls := r.fetches.claim(ctx, ids[:len(locs)])
	if len(calls) == 0 {
		done()
		r.prefetching.Add(-1)
		return 1 // being fetched
	}
	go func() {
		defer r.prefetching.Add(-1)
		defer done()
		r.fetchRun(fctx, ids[:len(calls)], locs[:len(calls)], calls)
	}()
	return len(calls)
}

// underWay reports whether data blob id is in memory or being fetched.
func (r *Repository) underWay(id crypt.ID) bool {
	if r.recent.get(memKey{id, wholeChunk}) != nil {
		return true
	}
	r.fetches.mu.Lock()
	defer r.fetches.mu.Unlock()
	return r.fetches.calls[id] != nil
}

// runOf returns the places of the blobs of ids from the first that lie
// one after the other in one pack within spanMax bytes, and are neither
// in memory nor in the disk cache; none when the first is.
func (r *Repository) runOf(ctx context.Context, ids []crypt.ID) []Location {
	var locs []Location
	for _, id := range ids {
		if r.blobs == nil || r.recent.get(memKey{id, wholeChunk}) != nil || r.blobs.has(id) {
			break
		}
		l, err := r.locate(ctx, crypt.TypeDataBlob, id)
		if err != nil {
			break
		}
		if n := len(locs); n > 0 && (l.Pack != locs[0].Pack || l.Offset != locs[n-1].Offset+locs[n-1].Length ||
			uint64(l.Offset)+uint64(l.Length)-uint64(locs[0].Offset) > spanMax) {
			break
		}
		locs = append(locs, l)
	}
	return locs
}

// fetchRun fetches the blobs ids at locs, one after the other in one
// pack, with one range request, opens each, and ends its call. When the
// request fails, each is loaded on its own as prefetch does (that tells a
// missing pack from a moved blob, and a blob still in the pack being
// uploaded from one not stored).
func (r *Repository) fetchRun(ctx context.Context, ids []crypt.ID, locs []Location, calls []*fetchCall) {
	first, last := locs[0], locs[len(locs)-1]
	span, err := r.remote.Get(ctx, format.PackName(first.Pack), int64(first.Offset), int64(last.Offset+last.Length-first.Offset))
	for i, c := range calls {
		id, l := ids[i], locs[i]
		var data []byte
		var ok bool
		var oerr error
		if err == nil && len(span) == int(last.Offset+last.Length-first.Offset) {
			r.cacheMisses.Add(1)
			at := l.Offset - first.Offset
			data, oerr = r.openFetched(crypt.TypeDataBlob, id, l, span[at:at+l.Length:at+l.Length])
		} else if data, ok, oerr = r.loadLocal(crypt.TypeDataBlob, id, l); !ok {
			data, oerr = r.fetchBlob(ctx, crypt.TypeDataBlob, id, l)
		}
		r.fetches.finish(id, c, data, oerr)
	}
}

// transfers is how many requests to the remote may run in parallel.
func (r *Repository) transfers() int {
	if r.opts.Transfers > 0 {
		return r.opts.Transfers
	}
	return DefaultTransfers
}

// openRead is openBlob for reads of content: with
// Options.TrustSegments a segmented blob's id is not recomputed.
func (r *Repository) openRead(t crypt.ObjectType, id crypt.ID, l Location, sealed []byte) ([]byte, error) {
	if l.Type == crypt.TypeSegmentedBlob {
		return r.openSegmentedWhole(id, l, sealed, !r.opts.TrustSegments)
	}
	return r.openBlob(t, id, l, sealed)
}

// openBlob verifies and decodes the sealed form of a blob, a segmented
// one included (l.Type says which), whole, and checks that its content
// hashes to id.
func (r *Repository) openBlob(t crypt.ObjectType, id crypt.ID, l Location, sealed []byte) ([]byte, error) {
	if l.Type == crypt.TypeSegmentedBlob {
		return r.openSegmentedWhole(id, l, sealed, true)
	}
	where := blobWhere(t, id, l)
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
// what it needs: sequential reads load whole chunks, with a read-ahead
// window that grows as they go on; other reads load only the segments
// they cover (docs/SPEC.md §6.2). It caches the last whole chunk it read.
// It is safe for concurrent use.
type FileReader struct {
	r      *Repository
	node   *Node
	starts []uint64 // offset of each extent

	mu      sync.Mutex
	lastID  crypt.ID
	lastBuf []byte
	// Where the last read ended, where the run of reads that led to it
	// began and how many bytes it read, the read-ahead window, and the
	// chunk the window last grew at.
	lastEnd  int64
	runStart int64
	runBytes int64
	window   int64
	grownAt  int
	// The last chunk that failed to load, and when: the kernel asks for
	// the pages of a chunk in several reads, and each would otherwise
	// wait through the remote's retries again before failing. A
	// damaged segment (an integrity error of a partial read) is held as
	// failSegs, the segments that read covered, and fails only reads of
	// those: the chunk's other segments read as they are.
	failID   crypt.ID
	failErr  error
	failAt   time.Time
	failSegs [2]int // first and last; both -1: the whole chunk

	// onSegments, when set, gets the segments that partial reads open
	// (OnSegments).
	onSegments func(off int64, data []byte)
}

// OnSegments has fn called, on the reading goroutine, with the whole
// segments every partial read of a segmented chunk opened (docs/SPEC.md
// §6.2), verified, and where they lie in the file: a read of 4 KiB
// authenticates and decrypts 64 KiB, and a mount hands the rest to the
// kernel's page cache. fn must not modify or keep data past the content's
// life (it is shared with the reader's cache). Call it before the first
// read.
func (f *FileReader) OnSegments(fn func(off int64, data []byte)) { f.onSegments = fn }

// failHold is how long a chunk that failed to load fails again at once
// for the same reader, rather than being fetched again.
const failHold = 5 * time.Second

// Read-ahead: a read that starts within seqSlack of where the last one
// ended goes on a run of reads (the kernel may deliver a stream's reads
// slightly out of order). The run is sequential once it began at the
// start of the file or has read seqRun bytes: a reader of a few small
// pieces in a row (a database page, a header) reads only their segments,
// and so does one whose reads at random happen to fall near each other.
// The window starts at readAheadMin and doubles at each chunk a
// sequential reader enters, up to readAheadMax (half the memory cache of
// chunks, which holds what it fetches).
const (
	seqSlack     = 512 << 10
	seqRun       = 256 << 10
	readAheadMin = 1 << 20
	readAheadMax = (memCacheBytes - segCacheBytes) / 2
)

// OpenFile returns a reader for a file node.
func (r *Repository) OpenFile(n *Node) *FileReader {
	starts := make([]uint64, len(n.Content))
	var off uint64
	for i, e := range n.Content {
		starts[i] = off
		off += e.Size
	}
	return &FileReader{r: r, node: n, starts: starts, window: readAheadMin, grownAt: -1}
}

// Size returns the file's size.
func (f *FileReader) Size() int64 { return int64(f.node.Size) }

// ReadAt reads len(p) bytes at off, as io.ReaderAt does: it returns io.EOF
// at the end of the file. When ctx is done before the chunks it needs are
// fetched, it fails with an error wrapping ctx's error; the read-ahead it
// started goes on. It never returns fewer bytes than asked without an
// error.
func (f *FileReader) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("negative offset %d", off)
	}
	seq := f.sequential(off, len(p))
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
		within := uint64(off) - f.starts[i]
		n := int(min(uint64(len(p)), e.Size-within))
		switch {
		case e.Hole:
			clear(p[:n])
		case seq:
			f.readAhead(ctx, i)
			data, err := f.chunk(ctx, e)
			if err != nil {
				return total, err
			}
			copy(p[:n], data[within:])
		default:
			data, err := f.part(ctx, e, f.starts[i], int(within), n)
			if err != nil {
				return total, err
			}
			copy(p[:n], data)
		}
		p, off, total = p[n:], off+int64(n), total+n
	}
	return total, nil
}

// sequential notes a read of n bytes at off and reports whether it is
// part of a sequential run; a read that does not go on from the last one
// starts a new run and shrinks the read-ahead window back.
func (f *FileReader) sequential(off int64, n int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if off < f.lastEnd-seqSlack || off > f.lastEnd+seqSlack {
		f.runStart, f.runBytes, f.window, f.grownAt = off, 0, readAheadMin, -1
	}
	f.lastEnd = off + int64(n)
	f.runBytes += int64(n)
	return f.runStart == 0 || f.runBytes >= seqRun
}

// readAhead starts fetching the chunks after extent i that lie within the
// read-ahead window, which doubles whenever the reader enters a new
// chunk, the chunks that follow each other in a pack in one request
// (prefetchRun). It waits until what is in memory or being fetched ends
// within the first half of the window, so that each request fetches at
// least half of it. At most Options.Transfers fetches run at once: the
// reads that follow start the rest.
func (f *FileReader) readAhead(ctx context.Context, i int) {
	f.mu.Lock()
	if i > f.grownAt {
		if f.grownAt >= 0 {
			f.window = min(2*f.window, readAheadMax)
		}
		f.grownAt = i
	}
	window := f.window
	f.mu.Unlock()
	from := f.starts[i] + f.node.Content[i].Size
	end := from + uint64(window)
	for j := i + 1; j < len(f.node.Content) && f.starts[j] < end; {
		if e := f.node.Content[j]; e.Hole || f.r.underWay(e.ID) {
			j++
			continue
		}
		if f.starts[j] >= from+uint64(window)/2 {
			return // later, in a run of at least half the window
		}
		var ids []crypt.ID
		for k := j; k < len(f.node.Content) && f.starts[k] < end && !f.node.Content[k].Hole; k++ {
			ids = append(ids, f.node.Content[k].ID)
		}
		n := f.r.prefetchRun(ctx, ids)
		if n == 0 {
			return
		}
		j += n
	}
}

// chunk returns the content of data extent e, loaded whole (its id
// verified). A read abandoned by its caller (ctx done) says nothing about
// the chunk: it is not held as failed.
func (f *FileReader) chunk(ctx context.Context, e Extent) ([]byte, error) {
	if data, err := f.held(e.ID, -1, -1); data != nil || err != nil {
		return data, err
	}
	data, err := f.r.LoadBlob(ctx, crypt.TypeDataBlob, e.ID)
	if err == nil && uint64(len(data)) != e.Size {
		err = integrityError(fmt.Sprintf("data blob %s", e.ID), "it is %d bytes, the tree says %d", len(data), e.Size)
	}
	if err != nil {
		f.failed(ctx, e.ID, -1, -1, err)
		return nil, err
	}
	f.mu.Lock()
	f.lastID, f.lastBuf = e.ID, data
	f.mu.Unlock()
	return data, nil
}

// part returns the n bytes at within of data extent e, opening only the
// segments that hold them when the chunk is stored segmented and not in
// memory whole.
func (f *FileReader) part(ctx context.Context, e Extent, start uint64, within, n int) ([]byte, error) {
	first, last := within/format.SegmentSize, (within+n-1)/format.SegmentSize
	if data, err := f.held(e.ID, first, last); data != nil || err != nil {
		if err != nil {
			return nil, err
		}
		return data[within : within+n], nil
	}
	l, err := f.r.locate(ctx, crypt.TypeDataBlob, e.ID)
	if err == nil && l.Type != crypt.TypeSegmentedBlob {
		data, err := f.chunk(ctx, e)
		if err != nil {
			return nil, err
		}
		return data[within : within+n], nil
	}
	if err == nil && uint64(l.RawLength) != e.Size {
		err = integrityError(fmt.Sprintf("data blob %s", e.ID), "it is %d bytes, the tree says %d", l.RawLength, e.Size)
	}
	var span []byte
	var spanAt int
	if err == nil {
		span, spanAt, err = f.r.readPart(ctx, e.ID, l, within, n)
	}
	if err != nil {
		f.failed(ctx, e.ID, first, last, err)
		return nil, err
	}
	if f.onSegments != nil {
		f.onSegments(int64(start)+int64(spanAt), span)
	}
	return span[within-spanAt : within-spanAt+n], nil
}

// held returns the chunk id when it is the last one read whole, or the
// error a read of its segments first to last (-1, -1: the whole chunk)
// failed with moments ago; nil and nil otherwise. An integrity error of
// some segments fails only reads of them, and reads of the whole chunk;
// any other error (the remote's) fails every read of the chunk.
func (f *FileReader) held(id crypt.ID, first, last int) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.lastBuf != nil && f.lastID == id {
		return f.lastBuf, nil
	}
	if f.failErr == nil || f.failID != id || time.Since(f.failAt) >= failHold {
		return nil, nil
	}
	if first >= 0 && errors.Is(f.failErr, ErrIntegrity) &&
		(f.failSegs[0] < 0 || last < f.failSegs[0] || first > f.failSegs[1]) {
		return nil, nil // other segments than the damaged ones
	}
	return nil, f.failErr
}

// failed holds the error a read of chunk id's segments first to last
// (-1, -1: the whole chunk) failed with, unless the read was abandoned
// (ctx done), which says nothing about the chunk.
func (f *FileReader) failed(ctx context.Context, id crypt.ID, first, last int, err error) {
	if ctx.Err() != nil {
		return
	}
	f.mu.Lock()
	f.failID, f.failErr, f.failAt, f.failSegs = id, err, time.Now(), [2]int{first, last}
	f.mu.Unlock()
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
