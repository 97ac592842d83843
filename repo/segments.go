package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/remote"
	"github.com/sealfs/sealfs/repo/format"
)

// sealSegmented seals a chunk as a segmented data blob (docs/SPEC.md
// §6.2): the sealed table of segment lengths, then each segment of
// format.SegmentSize raw bytes sealed on its own, flag || payload,
// compressed when that saves 1/32 of it. When the first segment does not
// compress (media, archives, encrypted files), no other is tried.
func (r *Repository) sealSegmented(id crypt.ID, data []byte) ([]byte, error) {
	if len(data) == 0 || len(data) > format.MaxBlobSize {
		return nil, fmt.Errorf("cannot seal a chunk of %d bytes", len(data))
	}
	raw := uint32(len(data))
	n := format.SegmentCount(raw)
	tableLen := format.SegmentTableLen(raw)
	out := sealedBuf(tableLen + len(data) + n*(crypt.Overhead+1))[:tableLen] // the table is sealed into it last
	lens := make([]uint32, n)
	compress := r.cfg.Compression == CompressionZstd
	scratch := segmentScratch.Get().(*[]byte)
	defer segmentScratch.Put(scratch)
	for i := range n {
		seg := data[i*format.SegmentSize : i*format.SegmentSize+format.SegmentRawLen(raw, i)]
		pt, compressed := r.encodeSegment(seg, compress, (*scratch)[:0])
		if cap(pt) > cap(*scratch) {
			*scratch = pt[:0] // grown: keep the larger one
		}
		if i == 0 && !compressed {
			compress = false
		}
		start := len(out)
		var err error
		if out, err = r.keys.SealSegment(out, id, uint32(i), i == n-1, pt); err != nil {
			return nil, err
		}
		lens[i] = uint32(len(out) - start)
	}
	table, err := r.keys.SealSegment(out[:0], id, crypt.SegmentTableIndex, false, format.EncodeSegmentTable(lens))
	if err != nil {
		return nil, err
	}
	if len(table) != tableLen {
		return nil, fmt.Errorf("segment table sealed to %d bytes, want %d", len(table), tableLen)
	}
	return out, nil
}

// segmentScratch holds buffers (*[]byte) for a segment's plaintext
// between its encoding and its sealing: one allocated for each segment was
// as many bytes again as every file written.
var segmentScratch = sync.Pool{New: func() any { b := make([]byte, 0, format.SegmentSize+1); return &b }}

// encodeSegment returns flag || payload for one segment, compressed when
// compress is set, the segment is at least 64 bytes and compression saves
// 1/32; compressed says which. It appends to scratch (empty, and grown if
// it is too small): the result is only valid until scratch is reused.
func (r *Repository) encodeSegment(seg []byte, compress bool, scratch []byte) (pt []byte, compressed bool) {
	if compress && len(seg) >= 64 {
		out := r.zenc.EncodeAll(seg, append(scratch, blobZstd))
		if saves(len(out), len(seg)) {
			return out, true
		}
		scratch = out[:0] // reuse what EncodeAll grew
	}
	out := append(scratch, blobRaw)
	return append(out, seg...), false
}

// blobWhere names a blob for an integrity error: its pack, type, id and
// offset.
func blobWhere(t crypt.ObjectType, id crypt.ID, l Location) string {
	return fmt.Sprintf("%s (%s %s at offset %d)", format.PackName(l.Pack), t, id.Short(), l.Offset)
}

// openSegmentTable opens and decodes the sealed table of segmented blob id
// at l.
func (r *Repository) openSegmentTable(id crypt.ID, l Location, sealed []byte) (format.SegmentTable, error) {
	where := blobWhere(l.Type, id, l)
	pt, err := r.keys.OpenSegment(id, crypt.SegmentTableIndex, false, sealed)
	if err != nil {
		return format.SegmentTable{}, integrityError(where, "segment table: %v", err)
	}
	t, err := format.DecodeSegmentTable(pt, l.RawLength, l.Length)
	if err != nil {
		return format.SegmentTable{}, integrityError(where, "%v", err)
	}
	return t, nil
}

// openSegment authenticates, decrypts and decodes segment i of segmented
// blob id at l, whose table is t; it must yield exactly the segment's raw
// length. With inPlace it decrypts into sealed, which the caller gives
// up.
func (r *Repository) openSegment(id crypt.ID, l Location, t format.SegmentTable, i int, sealed []byte, inPlace bool) ([]byte, error) {
	where := blobWhere(l.Type, id, l)
	open := r.keys.OpenSegment
	if inPlace {
		open = r.keys.OpenSegmentInPlace
	}
	pt, err := open(id, uint32(i), i == t.Count()-1, sealed)
	if err != nil {
		return nil, integrityError(where, "segment %d of %d: %v", i, t.Count(), err)
	}
	return r.segmentPayload(where, i, pt, format.SegmentRawLen(l.RawLength, i), nil)
}

// segmentPayload decodes segment i's plaintext pt, flag || payload, which
// must yield exactly want bytes: pt's own payload when stored raw, or the
// payload decompressed into scratch's storage (or a new buffer).
func (r *Repository) segmentPayload(where string, i int, pt []byte, want int, scratch []byte) ([]byte, error) {
	if len(pt) == 0 {
		return nil, integrityError(where, "segment %d is empty", i)
	}
	var data []byte
	switch pt[0] {
	case blobRaw:
		data = pt[1:]
	case blobZstd:
		var err error
		data, err = r.zdec.DecodeAll(pt[1:], scratch[:0])
		if err != nil {
			return nil, integrityError(where, "segment %d: failed to decompress: %v", i, err)
		}
	default:
		return nil, integrityError(where, "segment %d: unknown encoding %d", i, pt[0])
	}
	if len(data) != want {
		return nil, integrityError(where, "segment %d is %d bytes, want %d", i, len(data), want)
	}
	return data, nil
}

// openSegmentedWhole verifies and decodes a whole segmented blob: its
// table and every segment, and then, with verifyID, that the chunk hashes
// to its id. Without verifyID the segments' authentication stands for it,
// as for a range (docs/SPEC.md §6.2: a whole chunk is the range of all its
// segments).
//
// Each segment is decrypted straight into its place in the chunk's buffer,
// which has one spare byte in front: segment i's plaintext, flag ||
// payload, lands with its flag on the byte before its place (the spare
// byte, or the last byte of segment i-1, kept aside and put back).
func (r *Repository) openSegmentedWhole(id crypt.ID, l Location, sealed []byte, verifyID bool) ([]byte, error) {
	where := blobWhere(l.Type, id, l)
	if len(sealed) != int(l.Length) {
		return nil, integrityError(where, "blob is %d bytes, the index says %d", len(sealed), l.Length)
	}
	tl := format.SegmentTableLen(l.RawLength)
	t, err := r.openSegmentTable(id, l, sealed[:tl])
	if err != nil {
		return nil, err
	}
	buf := make([]byte, 1+int(l.RawLength))
	var scratch []byte
	for i := range t.Count() {
		at := 1 + i*format.SegmentSize
		want := format.SegmentRawLen(l.RawLength, i)
		seg := sealed[t.Bounds[i]:t.Bounds[i+1]]
		if len(seg) > crypt.Overhead+1+want {
			// The table's bounds (format.DecodeSegmentTable) rule this
			// out; it would decrypt past the segment's place.
			return nil, integrityError(where, "segment %d is %d bytes sealed, more than %d raw bytes take", i, len(seg), want)
		}
		keep := buf[at-1]
		pt, err := r.keys.OpenSegmentAppend(buf[:at-1], id, uint32(i), i == t.Count()-1, seg)
		if err != nil {
			return nil, integrityError(where, "segment %d of %d: %v", i, t.Count(), err)
		}
		pt = pt[at-1:]
		flag := pt[0]
		data, err := r.segmentPayload(where, i, pt, want, scratch)
		buf[at-1] = keep
		if err != nil {
			return nil, err
		}
		if flag == blobZstd {
			scratch = data
			copy(buf[at:at+want], data)
		}
	}
	out := buf[1:]
	if verifyID && r.keys.BlobID(crypt.TypeDataBlob, out) != id {
		return nil, integrityError(where, "content does not match its id")
	}
	return out, nil
}

// openSegmentedInPlace is openSegmentedWhole decoding into sealed's own
// storage, which the caller gives up: each segment is decrypted where it
// lies, and its content moved down to its place in the chunk, which
// starts at sealed's first byte (the table, opened first, is no longer
// needed). The content of segment i ends at most where segment i+1 begins
// when the segments before it are stored raw, so no move overwrites a
// segment not yet opened. When a segment that compressed well lies
// before some content's place, ok is false and sealed is untouched (the
// caller opens it as openSegmentedWhole does); with ok, on an error the
// content of sealed is undefined.
func (r *Repository) openSegmentedInPlace(id crypt.ID, l Location, sealed []byte, verifyID bool) (data []byte, ok bool, err error) {
	where := blobWhere(l.Type, id, l)
	if len(sealed) != int(l.Length) {
		return nil, true, integrityError(where, "blob is %d bytes, the index says %d", len(sealed), l.Length)
	}
	t, err := r.openSegmentTable(id, l, sealed[:format.SegmentTableLen(l.RawLength)])
	if err != nil {
		return nil, true, err
	}
	for i := range t.Count() {
		if uint64(i*format.SegmentSize+format.SegmentRawLen(l.RawLength, i)) > uint64(t.Bounds[i+1]) {
			return nil, false, nil
		}
	}
	var scratch []byte
	for i := range t.Count() {
		want := format.SegmentRawLen(l.RawLength, i)
		pt, err := r.keys.OpenSegmentInPlace(id, uint32(i), i == t.Count()-1, sealed[t.Bounds[i]:t.Bounds[i+1]])
		if err != nil {
			return nil, true, integrityError(where, "segment %d of %d: %v", i, t.Count(), err)
		}
		flag := pt[0]
		seg, err := r.segmentPayload(where, i, pt, want, scratch)
		if err != nil {
			return nil, true, err
		}
		if flag == blobZstd {
			scratch = seg
		}
		copy(sealed[i*format.SegmentSize:], seg)
	}
	out := sealed[:l.RawLength:l.RawLength]
	if verifyID && r.keys.BlobID(crypt.TypeDataBlob, out) != id {
		return nil, true, integrityError(where, "content does not match its id")
	}
	return out, true, nil
}

// blobSource reads the bytes [off, off+n) of one sealed blob into a buffer
// of the caller's own.
type blobSource func(ctx context.Context, off, n int64) ([]byte, error)

// remoteSource reads a blob's bytes from its pack on the remote, one range
// request a call.
func (r *Repository) remoteSource(t crypt.ObjectType, id crypt.ID, l Location) blobSource {
	return func(ctx context.Context, off, n int64) ([]byte, error) {
		return r.getRange(ctx, t, id, l, off, n)
	}
}

// getRange reads the bytes [off, off+n) of blob id from its pack, into a
// buffer of the caller's own (every remote.Remote returns a new one). A
// pack that is missing or too short is an integrity error naming it.
func (r *Repository) getRange(ctx context.Context, t crypt.ObjectType, id crypt.ID, l Location, off, n int64) ([]byte, error) {
	b, err := r.remote.Get(ctx, format.PackName(l.Pack), int64(l.Offset)+off, n)
	switch {
	case err != nil && ctx.Err() != nil:
		return nil, ctx.Err()
	case errors.Is(err, remote.ErrNotFound):
		if nl, ok := r.relocate(ctx, id, l); ok {
			return r.getRange(ctx, t, id, nl, off, n)
		}
		return nil, integrityError(format.PackName(l.Pack), "the pack is missing (it holds %s %s)", t, id.Short())
	case errors.Is(err, remote.ErrShortRead):
		return nil, integrityError(format.PackName(l.Pack), "the pack is truncated (it should hold %s %s at %d+%d)", t, id.Short(), l.Offset, l.Length)
	case err != nil:
		return nil, err
	}
	return b, nil
}

// bytesSource reads a blob held whole in memory; each read is a copy.
func bytesSource(sealed []byte) blobSource {
	return func(_ context.Context, off, n int64) ([]byte, error) {
		if off+n > int64(len(sealed)) {
			return nil, fmt.Errorf("range %d+%d past a %d-byte blob", off, n, len(sealed))
		}
		return bytes.Clone(sealed[off : off+n]), nil
	}
}

// readPart returns the bytes [off, off+n) of the chunk held by segmented
// blob id at l, opening only the segments that hold them: its table (kept
// in memory), then the segments in one read. Each segment is
// authenticated with the blob id, its index and whether it is the last
// bound in; the chunk's id is not recomputed (docs/SPEC.md §6.2). It
// returns the whole segments that hold the range, span, which starts at
// spanAt in the chunk; callers must not modify it.
func (r *Repository) readPart(ctx context.Context, id crypt.ID, l Location, off, n int) (span []byte, spanAt int, err error) {
	if data := r.recent.get(memKey{id, wholeChunk}); data != nil {
		first, last := off/format.SegmentSize, (off+n-1)/format.SegmentSize
		return data[first*format.SegmentSize : min(len(data), (last+1)*format.SegmentSize)], first * format.SegmentSize, nil
	}
	if sealed := r.blobFromPacker(l); sealed != nil {
		return r.partFrom(ctx, id, l, bytesSource(sealed), off, n)
	}
	if src := r.blobs.source(id); src != nil {
		if span, spanAt, err := r.partFrom(ctx, id, l, src, off, n); err == nil {
			return span, spanAt, nil
		}
		r.blobs.drop(id) // damaged on local disk: read the remote's
	}
	return r.partFrom(ctx, id, l, r.remoteSource(crypt.TypeDataBlob, id, l), off, n)
}

// partFrom is readPart reading the sealed blob from src.
func (r *Repository) partFrom(ctx context.Context, id crypt.ID, l Location, src blobSource, off, n int) (span []byte, spanAt int, err error) {
	t, tableChecked, err := r.startSegmentTable(ctx, id, l, src)
	if err != nil {
		return nil, 0, err
	}
	first, last := off/format.SegmentSize, (off+n-1)/format.SegmentSize
	segs := make([][]byte, last-first+1)
	missFrom, missTo := -1, -1
	for i := first; i <= last; i++ {
		if segs[i-first] = r.recent.get(memKey{id, int32(i)}); segs[i-first] == nil {
			if missFrom < 0 {
				missFrom = i
			}
			missTo = i
		}
	}
	if missFrom >= 0 {
		start, end := t.Bounds[missFrom], t.Bounds[missTo+1]
		sealed, err := src(ctx, int64(start), int64(end-start))
		if err != nil {
			return nil, 0, err
		}
		if err := tableChecked(); err != nil {
			return nil, 0, err
		}
		// Decrypted in place: the bytes are ours alone (a source hands
		// out a fresh buffer each call).
		for i := missFrom; i <= missTo; i++ {
			seg, err := r.openSegment(id, l, t, i, sealed[t.Bounds[i]-start:t.Bounds[i+1]-start], true)
			if err != nil {
				return nil, 0, err
			}
			segs[i-first] = seg
			r.recent.put(memKey{id, int32(i)}, seg)
		}
	}
	if err := tableChecked(); err != nil {
		return nil, 0, err
	}
	if len(segs) == 1 {
		return segs[0], first * format.SegmentSize, nil
	}
	return slices.Concat(segs...), first * format.SegmentSize, nil
}

// startSegmentTable returns the table of segmented blob id at l, and a
// function that reports whether it opened and checked out. When the table
// is not in memory and the index entry fixes every segment's place (all
// stored raw: format.ForcedSegmentTable), the table is read and opened in
// the background while the caller reads the segments, so that a first
// read of a chunk waits for one request, not two; the caller must call
// tableChecked, and have it return nil, before it releases or keeps any
// byte. Otherwise the table is read first and tableChecked returns nil.
func (r *Repository) startSegmentTable(ctx context.Context, id crypt.ID, l Location, src blobSource) (t format.SegmentTable, tableChecked func() error, err error) {
	none := func() error { return nil }
	if t, ok := r.tables.get(id, l); ok {
		return t, none, nil
	}
	forced, ok := format.ForcedSegmentTable(l.RawLength, l.Length)
	if !ok {
		t, err := r.segmentTable(ctx, id, l, src)
		return t, none, err
	}
	done := make(chan error, 1)
	go func() {
		t, err := r.segmentTable(ctx, id, l, src)
		if err == nil && !slices.Equal(t.Bounds, forced.Bounds) {
			err = integrityError(blobWhere(l.Type, id, l), "the segment table does not agree with the blob's length")
		}
		done <- err
	}()
	var checked error
	var waited bool
	return forced, func() error {
		if !waited {
			checked, waited = <-done, true
		}
		return checked
	}, nil
}

// segmentTable returns the table of segmented blob id at l, from memory
// or read from src.
func (r *Repository) segmentTable(ctx context.Context, id crypt.ID, l Location, src blobSource) (format.SegmentTable, error) {
	if t, ok := r.tables.get(id, l); ok {
		return t, nil
	}
	sealed, err := src(ctx, 0, int64(format.SegmentTableLen(l.RawLength)))
	if err != nil {
		return format.SegmentTable{}, err
	}
	t, err := r.openSegmentTable(id, l, sealed)
	if err != nil {
		return format.SegmentTable{}, err
	}
	r.tables.put(id, l, t)
	return t, nil
}

// minReload is the least time between two reloads of the index by
// relocate: a pack that is really missing costs one reload, not one per read.
const minReload = 10 * time.Second

// relocate finds blob id again after the pack the index gave for it (l)
// was not found: a prune elsewhere (docs/SPEC.md §8.2) may have copied it
// into another pack, deleted the old one, and named the new one in a newer
// snapshot's index objects. A client that does not write (no lease: a
// read-only mount, restore, ls) reloads the newest snapshot's index, as
// Refresh does, at most once per minReload; ok is true when the blob is
// now in another pack, with the same sealed bytes (a prune copies them
// unchanged). A writer's index is the newest already: it never reloads.
func (r *Repository) relocate(ctx context.Context, id crypt.ID, l Location) (Location, bool) {
	moved := func() (Location, bool) {
		nl, ok := r.Index().Lookup(id)
		return nl, ok && nl.Pack != l.Pack && nl.Type == l.Type && nl.Length == l.Length && nl.RawLength == l.RawLength
	}
	if nl, ok := moved(); ok {
		return nl, true // reloaded meanwhile
	}
	r.mu.Lock()
	writing := r.lease != nil
	r.mu.Unlock()
	if writing {
		return l, false
	}
	r.reloadMu.Lock()
	defer r.reloadMu.Unlock()
	if nl, ok := moved(); ok {
		return nl, true
	}
	if time.Since(r.reloadedAt) < minReload {
		return l, false
	}
	// The remote's own state, never a local copy kept for offline starts.
	err := r.Refresh(remote.WithoutLocalCopies(ctx))
	r.reloadedAt = time.Now()
	if err != nil {
		return l, false
	}
	return moved()
}
