package worktree

import (
	"context"
	"fmt"
	"io"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/repo"
)

// overlayView is a consistent copy of an overlay file's state: reads of
// written ranges (and of anything at or past baseLimit) come from the
// staging file, the rest from the base content.
type overlayView struct {
	f         io.ReaderAt // the staging file
	base      []repo.Extent
	baseRd    *repo.FileReader
	baseLimit uint64
	written   ranges
	size      uint64
}

func (t *Tree) overlayViewLocked(in *Inode) *overlayView {
	return &overlayView{f: in.file, base: in.base, baseRd: in.baseReader, baseLimit: in.baseLimit,
		written: append(ranges(nil), in.written...), size: in.meta.Size}
}

// readAt reads the file's current content, as io.ReaderAt does; reading
// the base content from the remote stops when ctx is done.
func (v *overlayView) readAt(ctx context.Context, p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("negative offset %d", off)
	}
	total := 0
	pos := uint64(off)
	for len(p) > 0 {
		if pos >= v.size {
			return total, io.EOF
		}
		want := min(uint64(len(p)), v.size-pos)
		in, next := v.written.find(pos)
		var n int
		var err error
		switch {
		case in >= 0:
			n, err = v.f.ReadAt(p[:min(want, v.written[in].End-pos)], int64(pos))
		case pos >= v.baseLimit:
			n, err = v.f.ReadAt(p[:want], int64(pos))
		default:
			end := v.baseLimit
			if next < len(v.written) {
				end = min(end, v.written[next].Start)
			}
			n, err = v.baseRd.ReadAt(ctx, p[:min(want, end-pos)], int64(pos))
		}
		total += n
		pos += uint64(n)
		p = p[n:]
		if err == io.EOF && n > 0 {
			err = nil
		}
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// at returns the view as an io.ReaderAt whose reads use ctx.
func (v *overlayView) at(ctx context.Context) io.ReaderAt { return overlayReader{v, ctx} }

// overlayReader reads an overlayView with a context.
type overlayReader struct {
	v   *overlayView
	ctx context.Context
}

func (r overlayReader) ReadAt(p []byte, off int64) (int, error) { return r.v.readAt(r.ctx, p, off) }

// baseExtent is a base extent with its position, clipped to the base limit.
type baseExtent struct {
	start, end uint64
	hole       bool
	id         crypt.ID
	clipped    bool
}

// overlayContent stores an overlay file's current content and returns its
// extents. Base chunks that no written byte touches are kept as they are;
// each written range is widened to the base chunks it touches, and that
// span is chunked again from its old first boundary to its old last one.
// So only the chunks around a change are read (and stored anew).
func (t *Tree) overlayContent(ctx context.Context, v *overlayView) ([]repo.Extent, error) {
	size := v.size
	lim := min(v.baseLimit, size)
	dirty := v.written.clip(size)
	if lim < size {
		dirty = dirty.add(lim, size)
	}
	var bx []baseExtent
	var pos uint64
	for _, e := range v.base {
		s, end := pos, pos+e.Size
		pos = end
		if s >= lim {
			break
		}
		b := baseExtent{start: s, end: min(end, lim), hole: e.Hole, id: e.ID, clipped: end > lim}
		if b.clipped && !b.hole {
			dirty = dirty.add(b.start, b.end) // a chunk cut short is rechunked
		}
		bx = append(bx, b)
	}
	// Widen dirty spans to the data chunks they touch, until stable.
	for changed := true; changed; {
		changed = false
		for _, b := range bx {
			if b.hole {
				continue
			}
			for _, d := range dirty {
				if d.Start < b.end && b.start < d.End && (d.Start > b.start || d.End < b.end) {
					dirty, changed = dirty.add(b.start, b.end), true
					break
				}
			}
		}
	}
	w := t.r.NewFileWriter()
	keep := func(from, to uint64) error {
		for _, b := range bx {
			s, e := max(b.start, from), min(b.end, to)
			switch {
			case s >= e:
			case b.hole:
				w.Hole(e - s)
			case s != b.start || e != b.end:
				return fmt.Errorf("internal error: kept chunk %s split at %d..%d", b.id.Short(), s, e)
			default:
				w.Append(repo.Extent{ID: b.id, Size: e - s})
			}
		}
		return nil
	}
	p := uint64(0)
	for _, d := range dirty {
		if err := keep(p, min(d.Start, lim)); err != nil {
			return nil, err
		}
		if err := w.Write(ctx, io.NewSectionReader(v.at(ctx), int64(d.Start), int64(d.End-d.Start))); err != nil {
			return nil, err
		}
		p = d.End
	}
	if p < lim {
		if err := keep(p, lim); err != nil {
			return nil, err
		}
	}
	content, n := w.Content()
	if n != size {
		return nil, fmt.Errorf("internal error: rebuilt %d bytes of a %d-byte file", n, size)
	}
	return content, nil
}
