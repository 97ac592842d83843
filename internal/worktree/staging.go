package worktree

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"github.com/sealfs/sealfs/internal/worktree/sealedfile"
)

// stagingFile is an open staging file: the content of a changed file,
// sealed under a key of its own (docs/SPEC.md §12.1). Everyone who reads or
// writes the same staging file (the inode's handles, its streamer, a
// commit) shares one stagingFile, so that the read-modify-write of a
// sealed block is never seen half done. Close releases one reference; the
// file is closed with the last.
type stagingFile struct {
	*sealedfile.File
	t    *Tree
	id   string
	refs int // guarded by t.stagingMu

	behind writeBehind // appends not written yet (behind.go)
}

// stagingName is a staging file's name in the cache directory, which its
// key is bound to.
func stagingName(id string) string { return stagingDir + "/" + id }

// openStaging returns the staging file id, opening it (creating it when
// create is set) unless it is open already. Callers may hold t.mu.
func (t *Tree) openStaging(id string, create bool) (*stagingFile, error) {
	t.stagingMu.Lock()
	defer t.stagingMu.Unlock()
	if s := t.stagingOpen[id]; s != nil && !create {
		s.refs++
		return s, nil
	}
	var f *sealedfile.File
	var err error
	if ref, ok := t.inline[id]; ok && !create {
		// In a journal record (inline.go): read into memory again.
		var data []byte
		if data, err = inlineData(ref); err == nil {
			f, err = sealedfile.Deferred(t.stagingPath(id), stagingName(id), t.localKey, inlineMax, data)
		}
	} else if create {
		f, err = sealedfile.Create(t.stagingPath(id), stagingName(id), t.localKey)
	} else {
		f, err = sealedfile.Open(t.stagingPath(id), stagingName(id), t.localKey, true)
	}
	if err != nil {
		return nil, err
	}
	s := &stagingFile{File: f, t: t, id: id, refs: 1}
	t.stagingOpen[id] = s
	return s, nil
}

// retain adds a reference.
func (s *stagingFile) retain() *stagingFile {
	s.t.stagingMu.Lock()
	defer s.t.stagingMu.Unlock()
	s.refs++
	return s
}

// Close releases a reference, and closes the file with the last one; the
// queued writes land first.
func (s *stagingFile) Close() error {
	s.drain()
	s.t.stagingMu.Lock()
	defer s.t.stagingMu.Unlock()
	if s.refs <= 0 {
		return os.ErrClosed
	}
	s.refs--
	if s.refs > 0 {
		return nil
	}
	if s.t.stagingOpen[s.id] == s {
		delete(s.t.stagingOpen, s.id)
		if b, ok := s.File.Bytes(); !ok {
			delete(s.t.inline, s.id) // went to disk: newer than its record
		} else if _, ok := s.t.inline[s.id]; !ok {
			// Never flushed (nothing written, or its record failed):
			// what it holds stays readable, from memory.
			s.t.inline[s.id] = inlineRef{data: b}
		}
	}
	return s.File.Close()
}

// stagedSize returns the content size of a staging file from its length on
// disk, without opening it.
func stagedSize(physical int64) uint64 { return uint64(sealedfile.PlainSize(physical)) }

// sealLegacyStaging copies the plaintext staging file id of an older sealfs
// into a new sealed one, holes kept, and returns the new id. The plaintext
// file is removed by replay once the journal naming the copy is stored.
func (t *Tree) sealLegacyStaging(id string) (string, error) {
	if nid, ok := t.legacyStaging[id]; ok {
		return nid, nil
	}
	src, err := os.Open(t.stagingPath(id))
	if err != nil {
		return "", err
	}
	defer src.Close()
	fi, err := src.Stat()
	if err != nil {
		return "", err
	}
	nid := newStagingID()
	dst, err := t.openStaging(nid, true)
	if err != nil {
		return "", err
	}
	defer dst.Close()
	size := fi.Size()
	buf := make([]byte, 1<<20)
	for off := int64(0); off < size; {
		data, err := src.Seek(off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // only a hole is left
		} else if err != nil {
			data = off // no SEEK_DATA here: copy it all
		}
		hole, err := src.Seek(data, unix.SEEK_HOLE)
		if err != nil || hole > size {
			hole = size
		}
		for off = data; off < hole; {
			n, err := src.ReadAt(buf[:min(int64(len(buf)), hole-off)], off)
			if n > 0 {
				if _, werr := dst.WriteAt(buf[:n], off); werr != nil {
					return "", werr
				}
			}
			off += int64(n)
			if err != nil && !(errors.Is(err, io.EOF) && off >= hole) {
				return "", fmt.Errorf("failed to read the plaintext staging file %s: %w", id, err)
			}
		}
	}
	if err := dst.Truncate(size); err != nil {
		return "", err
	}
	if err := dst.Sync(); err != nil {
		return "", err
	}
	t.legacyStaging[id] = nid
	return nid, nil
}
