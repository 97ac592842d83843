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
type streamer struct {
	t  *Tree
	in *Inode

	f         *stagingFile // its own reference to the staging file
	closeOnce sync.Once

	mu      sync.Mutex
	cond    *sync.Cond
	avail   uint64 // bytes written sequentially so far
	closed  bool   // no writer left: what is there is all
	invalid bool
	done    chan struct{}

	content []repo.Extent // when done and valid
	total   uint64
	err     error
}

// startStreamLocked starts a streamer for an empty staged file. t.mu is held.
func (t *Tree) startStreamLocked(in *Inode) {
	s := &streamer{t: t, in: in, f: in.file.retain(), done: make(chan struct{})}
	s.cond = sync.NewCond(&s.mu)
	in.stream = s
	go s.run()
}

// wrote tells the streamer about a write at off of n bytes. t.mu is held.
func (s *streamer) wrote(off, n uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if off != s.avail {
		s.invalid = true
	} else {
		s.avail += n
	}
	s.cond.Broadcast()
}

// stop gives up (invalid) or says no more data comes (closed).
func (s *streamer) stop(invalid bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if invalid {
		s.invalid = true
	} else {
		s.closed = true
	}
	s.cond.Broadcast()
}

// Read follows the staging file as it grows.
func (s *streamer) read(p []byte, pos uint64) (int, error) {
	s.mu.Lock()
	for pos >= s.avail && !s.closed && !s.invalid {
		s.cond.Wait()
	}
	invalid, avail := s.invalid, s.avail
	s.mu.Unlock()
	if invalid {
		return 0, errStreamInvalid
	}
	if pos >= avail {
		return 0, io.EOF
	}
	return s.f.ReadAt(p[:min(uint64(len(p)), avail-pos)], int64(pos))
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
}

// closeFile releases the streamer's reference to the staging file, once.
func (s *streamer) closeFile() { s.closeOnce.Do(func() { s.f.Close() }) }

// result returns the streamed content if it is complete for size bytes.
func (s *streamer) result(size uint64) ([]repo.Extent, bool) {
	select {
	case <-s.done:
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
