package repo

import (
	"context"
	"errors"
	"fmt"
	"io"

	"golang.org/x/sys/unix"
)

// SparseFile is an open local file whose holes can be found with Seek and
// SEEK_DATA or SEEK_HOLE: an *os.File, or a sealed staging file.
type SparseFile interface {
	io.ReaderAt
	Seek(offset int64, whence int) (int64, error)
}

// SaveSparseFile stores the first size bytes of an open local file as a
// file's content: its data regions are chunked and stored, its holes (found
// with SEEK_DATA and SEEK_HOLE) become hole extents without being read. A
// file without SEEK_DATA is read whole. It fails when the file yields
// another size than size.
func (r *Repository) SaveSparseFile(ctx context.Context, f SparseFile, size int64) ([]Extent, uint64, error) {
	w := r.NewFileWriter()
	var off int64
	for off < size {
		data, err := f.Seek(off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) { // only a hole is left
			data = size
		} else if err != nil { // no SEEK_DATA here: read it all
			data = off
		}
		data = min(data, size)
		w.Hole(uint64(data - off))
		if data >= size {
			break
		}
		hole, err := f.Seek(data, unix.SEEK_HOLE)
		if err != nil || hole > size {
			hole = size
		}
		if err := w.Write(ctx, io.NewSectionReader(f, data, hole-data)); err != nil {
			return nil, 0, err
		}
		off = hole
	}
	content, n := w.Content()
	if n != uint64(size) {
		return nil, 0, fmt.Errorf("file changed size while it was read (%d bytes, then %d)", size, n)
	}
	return content, n, nil
}
