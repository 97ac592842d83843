package worktree

import (
	"sync"
)

// Write-behind. An append to a new file being written sequentially (the
// file has a streamer, is no overlay, and the write starts at its end, past
// its first streamStart bytes) is copied and queued, and the writer returns at once; a goroutine of the
// staging file seals the queued writes into it, in order, and tells the
// streamer what landed. So the kernel hands the next write over while the
// last one is sealed and written to disk, on another core: a cp waited
// for the sealing and the disk write of every request before.
//
// Everything else that touches a staging file's content (reads, other
// writes, truncation, fallocate, SEEK_DATA, fsync, the commit's reads,
// the last close) waits for the queue to drain first (stagingFile's
// methods), so no one sees the file without a write that returned. The
// goroutine takes no lock but the staging file's own and the streamer's:
// callers may drain while holding the tree's lock.
//
// The space a queued write takes on disk is reserved before it is queued
// (sealedfile.File.Reserve), so a full disk fails the write that meets it,
// as before. A queued write that fails all the same (an I/O error, a disk
// that reserved space and still ran out) drops the writes queued after it
// (the file keeps what landed, a prefix: never a hole where a write that
// returned should be). The handles whose writes failed or were dropped
// fail every later write, flush (close) and fsync with its error, and
// the first of them sets the file's size back to what landed
// (Handle.behindFailed); no write is queued until then. Until the queue
// drains, a crash of the daemon loses what is queued of a file not yet closed or fsynced (at most
// behindLimit bytes and one write per writer more), as it would lose a
// write that had not returned; a close and an fsync drain first.

// behindLimit bounds the bytes queued for one staging file: a writer that
// finds more waits (outside every lock) until they landed.
const behindLimit = 4 << 20

// behindFault, set by tests, fails the queued write at off before it is
// made (a disk that fails after the space was reserved).
var behindFault = func(off int64) error { return nil }

// behindBufs holds the queue's copy buffers (*[]byte).
var behindBufs sync.Pool

// behindWrite is a queued write: a copy of its bytes, where they go, and
// the streamer to tell once they landed (nil if none).
type behindWrite struct {
	h      *Handle
	buf    *[]byte
	off    int64
	stream *streamer
}

// writeBehind is a staging file's queue. Guarded by mu.
type writeBehind struct {
	mu      sync.Mutex
	cond    *sync.Cond
	queue   []behindWrite
	bytes   int  // queued, and the write being made
	running bool // the goroutine is writing
	failed  bool // a queued write failed; the size is not set back yet
}

// queueBehind copies p, a write of h, and queues it to be written at
// off, telling stream (if any) once it landed. It reports false, queueing
// nothing, after a queued write failed, until the size is set back
// (behindFailed), and when a write of h failed. The caller holds t.mu,
// and waits for room (waitRoom) once it let go of it.
func (s *stagingFile) queueBehind(h *Handle, stream *streamer, p []byte, off int64) bool {
	w := &s.behind
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.failed || h.behindErr.Load() != nil {
		return false
	}
	if w.cond == nil {
		w.cond = sync.NewCond(&w.mu)
	}
	bp, ok := behindBufs.Get().(*[]byte)
	if !ok || cap(*bp) < len(p) {
		b := make([]byte, 0, max(len(p), 128<<10))
		bp = &b
	}
	*bp = append((*bp)[:0], p...)
	w.queue = append(w.queue, behindWrite{h: h, buf: bp, off: off, stream: stream})
	w.bytes += len(p)
	if !w.running {
		w.running = true
		go s.writeQueued()
	}
	return true
}

// waitRoom waits until at most behindLimit bytes are queued.
func (s *stagingFile) waitRoom() {
	w := &s.behind
	w.mu.Lock()
	for w.bytes > behindLimit {
		w.cond.Wait()
	}
	w.mu.Unlock()
}

// drain waits until every queued write has landed or failed.
func (s *stagingFile) drain() {
	w := &s.behind
	w.mu.Lock()
	for w.running {
		w.cond.Wait()
	}
	w.mu.Unlock()
}

// behindFailed reports, once, that a queued write failed; drain first.
func (s *stagingFile) behindFailed() bool {
	w := &s.behind
	w.mu.Lock()
	defer w.mu.Unlock()
	failed := w.failed
	w.failed = false
	return failed
}

// writeQueued writes the queue out in order, until it is empty.
func (s *stagingFile) writeQueued() {
	w := &s.behind
	w.mu.Lock()
	for len(w.queue) > 0 {
		q := w.queue[0]
		w.queue[0] = behindWrite{}
		w.queue = w.queue[1:]
		w.mu.Unlock()
		var n int
		err := behindFault(q.off)
		if err == nil {
			n, err = s.File.WriteAt(*q.buf, q.off)
		}
		size := len(*q.buf)
		kept := false
		if q.stream != nil && n > 0 {
			// The streamer may keep the bytes, to chunk them from
			// memory rather than read them back.
			kept = q.stream.wrote(uint64(q.off), uint64(n), s, q.buf)
		}
		if !kept {
			behindBufs.Put(q.buf)
		}
		w.mu.Lock()
		w.bytes -= size
		if err != nil {
			w.failed = true
			q.h.behindErr.CompareAndSwap(nil, &err)
			for _, d := range w.queue { // never written after a gap
				d.h.behindErr.CompareAndSwap(nil, &err)
				w.bytes -= len(*d.buf)
				behindBufs.Put(d.buf)
			}
			w.queue = nil
		}
		w.cond.Broadcast()
	}
	w.queue = nil
	w.running = false
	w.cond.Broadcast()
	w.mu.Unlock()
}

// The staging file's methods that read or change its content, or close
// it, drain the queue first.

// ReadAt reads the content, queued writes included.
func (s *stagingFile) ReadAt(p []byte, off int64) (int, error) {
	s.drain()
	return s.File.ReadAt(p, off)
}

// WriteAt writes p at off after the queued writes.
func (s *stagingFile) WriteAt(p []byte, off int64) (int, error) {
	s.drain()
	return s.File.WriteAt(p, off)
}

// Truncate sets the size once the queued writes landed.
func (s *stagingFile) Truncate(size int64) error {
	s.drain()
	return s.File.Truncate(size)
}

// Allocate is fallocate(2) once the queued writes landed.
func (s *stagingFile) Allocate(off, length int64, mode uint32) error {
	s.drain()
	return s.File.Allocate(off, length, mode)
}

// Seek is SEEK_DATA or SEEK_HOLE once the queued writes landed.
func (s *stagingFile) Seek(off int64, whence int) (int64, error) {
	s.drain()
	return s.File.Seek(off, whence)
}

// Size is the content's size once the queued writes landed.
func (s *stagingFile) Size() int64 {
	s.drain()
	return s.File.Size()
}

// Sync makes the content durable, queued writes included.
func (s *stagingFile) Sync() error {
	s.drain()
	return s.File.Sync()
}
