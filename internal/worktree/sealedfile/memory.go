package sealedfile

import (
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/sealfs/sealfs/crypt"
)

// Deferred returns a sealed file that holds its plaintext (data, which it
// never changes: it copies it first) in memory, not on disk, while it is at most limit bytes: the
// file of a small new file, whose owner keeps its content elsewhere (a
// sealfs journal record) so that no file is created for it. It is written
// to disk at path, sealed as Create's, once it would grow past limit, or
// is allocated or reserved past it: first under a temporary name (path
// with ".tmp"), then renamed, so a crash leaves it whole or not at all.
// Sync of a file still in memory does nothing, and Close keeps its content
// readable: both are the owner's.
func Deferred(path, name string, key crypt.LocalKey, limit int64, data []byte) (*File, error) {
	s, err := key.LocalFile(name)
	if err != nil {
		return nil, err
	}
	return &File{s: s, path: path, size: int64(len(data)), geo: v1, mem: data, memLimit: limit, inMem: true, shared: true}, nil
}

// InMemory reports whether the file is held in memory (Deferred) and not
// written to disk yet.
func (f *File) InMemory() bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.inMem
}

// Bytes returns the content of a file held in memory, and false once it
// is on disk. The caller must not change it; it stays as it is (the file
// copies it before its next change), so it can be kept without a copy.
func (f *File) Bytes() ([]byte, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.inMem {
		return nil, false
	}
	f.shared = true
	return f.mem[:f.size:f.size], true
}

// Spill writes a file held in memory (Deferred) to disk now, as growing
// past its limit would; a file on disk already is left as it is.
func (f *File) Spill() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.inMem {
		return nil
	}
	return f.spillLocked()
}

// memRead is ReadAt of a file in memory. f.mu is held.
func (f *File) memRead(p []byte, off int64) (int, error) {
	if off >= f.size {
		return 0, io.EOF
	}
	n := copy(p, f.mem[off:f.size])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// memFits reports whether the file, in memory, can take a size of end
// bytes and stay there; if it cannot, it goes to disk (spillLocked).
// f.mu is held.
func (f *File) memFits(end int64) (bool, error) {
	if !f.inMem {
		return false, nil
	}
	if end <= f.memLimit {
		return true, nil
	}
	return false, f.spillLocked()
}

// memResize sets the size of a file in memory, zeros past the old end.
// f.mu is held.
func (f *File) memResize(size int64) {
	if f.shared || size > int64(cap(f.mem)) {
		// Handed out by Bytes, or too small: a new buffer.
		c := int64(cap(f.mem))
		if size > c {
			c = min(max(2*c, size), f.memLimit)
		}
		m := make([]byte, size, c)
		f.shared = false
		copy(m, f.mem[:f.size])
		f.mem = m
	} else {
		old := f.size
		f.mem = f.mem[:size]
		if size > old {
			clear(f.mem[old:size])
		}
	}
	f.size = size
}

// memWrite is WriteAt of a file that stays in memory. f.mu is held.
func (f *File) memWrite(p []byte, off int64) int {
	if end := off + int64(len(p)); end > f.size || f.shared {
		f.memResize(max(end, f.size))
	}
	return copy(f.mem[off:], p)
}

// spillLocked writes a file held in memory to disk at its path (under a
// temporary name first, then renamed) and makes it a file on disk. f.mu is
// held.
func (f *File) spillLocked() error {
	tmp := f.path + ".tmp"
	fd, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	mem, size := f.mem[:f.size], f.size
	f.f, f.inMem, f.size = fd, false, 0
	fail := func(err error) error {
		fd.Close()
		os.Remove(tmp)
		f.f, f.inMem, f.size = nil, true, size
		return fmt.Errorf("failed to write %s: %w", f.path, err)
	}
	if size > 0 {
		if _, err := f.writeLocked(mem, 0); err != nil {
			return fail(err)
		}
	}
	if err := os.Rename(tmp, f.path); err != nil {
		return fail(err)
	}
	f.mem = nil
	f.onDisk.Store(true)
	return nil
}

// memSeek is Seek of a file in memory: all of it is data.
func (f *File) memSeek(off int64, whence int) (int64, error) {
	if off < 0 || off >= f.size {
		return 0, syscall.ENXIO
	}
	if whence == 3 { // SEEK_DATA
		return off, nil
	}
	return f.size, nil
}
