package worktree

import (
	"errors"
	"io"
	"sync"

	"github.com/sealfs/sealfs/repo"
)

// errStreamInvalid stops a streamer: the file was not written sequentially.
var errStreamInvalid = errors.New("not a sequential write")

// streamer chunks, encrypts and packs a new file while it is written, from
// its staging copy as the bytes arrive, so that closing a large file leaves
// little for the commit to do. It never slows the writer: it follows the
// staging file and may fall behind. Any write that is not an append, a
// truncation, or a failure gives up, and the commit chunks the file then.
//
// It starts once streamStart bytes are written: a small file is closed
// long before the chunker has anything to cut, and a goroutine, a second
// reference to its staging file and a blob of its own for each of the
// thousands of small files an untar writes cost the writer more than the
// commit spends chunking them from their staging copies (Go's src: tar
// took twice as long).
type streamer struct {
	t  *Tree
	in *Inode

	f         *stagingFile // its own reference to the staging file, once started
	closeOnce sync.Once

	mu      sync.Mutex
	cond    sync.Cond // on mu
	avail   uint64    // bytes written sequentially so far
	closed  bool      // no writer left: what is there is all
	invalid bool
	started bool          // run is running, or has run
	small   int           // the small-file store's state (smallstore.go)
	done    chan struct{} // made when run starts, closed when it ends

	// data is a small file's content as its last writer closed it, held
	// for the small-file worker (smallstore.go), so that it does not read
	// it back from the journal.
	data []byte

	content []repo.Extent // when done and valid
	total   uint64
	err     error

	// mem holds the latest appends that were written behind, in order,
	// once it started: it reads them from here instead of opening them
	// again from the staging file (streamMem bytes at most; what is not
	// here it reads from the file).
	mem      []memPiece
	memBytes int
}

// memPiece is an append that landed at off, as written (a buffer of
// behindBufs, returned once read).
type memPiece struct {
	off uint64
	buf *[]byte
}

// streamMem bounds the appends a streamer keeps.
const streamMem = 4 << 20

// streamStart is how many bytes a new file has before it is streamed.
const streamStart = 1 << 20

// startStreamLocked sets a streamer up for an empty staged file; it runs
// once streamStart bytes are written sequentially. t.mu is held. Until
// then it is one small object (an untar makes thousands): its channel is
// made when it starts.
func (t *Tree) startStreamLocked(in *Inode) {
	s := &streamer{t: t, in: in}
	s.cond.L = &s.mu
	in.stream = s
}

// wrote tells the streamer about a write at off of n bytes that landed in
// the staging file f, and starts it when it has enough. t.mu is held, or
// f's write-behind goroutine calls it (behind.go), with buf, the n bytes
// written: it reports whether it kept buf, which is then its own.
func (s *streamer) wrote(off, n uint64, f *stagingFile, buf *[]byte) (kept bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if off != s.avail {
		s.invalid = true
		s.releaseMemLocked()
	} else {
		if buf != nil && uint64(len(*buf)) == n && s.started && !s.invalid && s.memBytes+len(*buf) <= streamMem {
			select {
			case <-s.done: // it ended: no one would read it
			default:
				s.mem = append(s.mem, memPiece{off: off, buf: buf})
				s.memBytes += len(*buf)
				kept = true
			}
		}
		s.avail += n
	}
	if !s.started && !s.invalid && !s.closed && s.done == nil && s.avail >= streamStart && f != nil {
		s.started = true
		s.done = make(chan struct{})
		s.f = f.retain()
		go s.run()
	}
	s.cond.Broadcast()
	return kept
}

// stop gives up (invalid) or says no more data comes (closed).
func (s *streamer) stop(invalid bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if invalid {
		s.invalid = true
		s.releaseMemLocked()
	} else {
		s.closed = true
	}
	s.cond.Broadcast()
}

// releaseMemLocked gives the appends kept back. s.mu is held.
func (s *streamer) releaseMemLocked() {
	for _, m := range s.mem {
		behindBufs.Put(m.buf)
	}
	s.mem, s.memBytes = nil, 0
}

// readMemLocked copies what the appends kept hold at pos into p, after
// giving back those wholly before pos; it reports 0 when they do not hold
// pos. s.mu is held.
func (s *streamer) readMemLocked(p []byte, pos uint64) int {
	for len(s.mem) > 0 && s.mem[0].off+uint64(len(*s.mem[0].buf)) <= pos {
		s.memBytes -= len(*s.mem[0].buf)
		behindBufs.Put(s.mem[0].buf)
		s.mem[0] = memPiece{}
		s.mem = s.mem[1:]
	}
	if len(s.mem) == 0 || s.mem[0].off > pos {
		return 0
	}
	return copy(p, (*s.mem[0].buf)[pos-s.mem[0].off:])
}

// Read follows the staging file as it grows.
func (s *streamer) read(p []byte, pos uint64) (int, error) {
	s.mu.Lock()
	for pos >= s.avail && !s.closed && !s.invalid {
		s.cond.Wait()
	}
	invalid, avail := s.invalid, s.avail
	if !invalid && pos < avail {
		if n := s.readMemLocked(p, pos); n > 0 {
			s.mu.Unlock()
			return n, nil
		}
	}
	s.mu.Unlock()
	if invalid {
		return 0, errStreamInvalid
	}
	if pos >= avail {
		return 0, io.EOF
	}
	// Only what landed (avail): no need to wait for queued writes.
	return s.f.File.ReadAt(p[:min(uint64(len(p)), avail-pos)], int64(pos))
}

type streamReader struct {
	s   *streamer
	pos uint64
}

func (r *streamReader) Read(p []byte) (int, error) {
	n, err := r.s.read(p, r.pos)
	r.pos += uint64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

func (s *streamer) run() {
	defer close(s.done)
	defer s.closeFile()
	w := s.t.r.NewFileWriter()
	err := w.Write(s.t.life, &streamReader{s: s})
	content, total := w.Content()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil && s.invalid {
		err = errStreamInvalid
	}
	s.content, s.total, s.err = content, total, err
	s.releaseMemLocked()
}

// closeFile releases the streamer's reference to the staging file, once.
// t.mu is held, or run ends.
func (s *streamer) closeFile() {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		f := s.f
		s.mu.Unlock()
		if f != nil {
			f.Close()
		}
	})
}

// sequential reports whether the file was written in one sequential run
// from its start to size, with no truncation, fallocate or write elsewhere
// (so its staging copy has no hole on disk).
func (s *streamer) sequential(size uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.invalid && s.avail == size
}

// result returns the streamed content if it is complete for size bytes
// (never for a streamer that did not start).
func (s *streamer) result(size uint64) ([]repo.Extent, bool) {
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	if done == nil {
		return nil, false
	}
	select {
	case <-done:
	default:
		return nil, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil || s.invalid || !s.closed || s.total != size {
		return nil, false
	}
	return s.content, true
}
