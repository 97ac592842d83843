package worktree

import (
	"sync"
	"sync/atomic"

	"github.com/sealfs/sealfs/repo"
)

// Small new files are stored in the background once closed: an untar
// closes thousands of them, each a staging file the commit would
// otherwise open, read, chunk, compress, seal and pack only when it runs
// (after the untar, at the unmount), while a core sat idle during the
// untar. One worker stores them in the order they were closed, from one
// read of their staging copy (storeWhole); the streamer of the file holds
// the result, which the commit takes if the file did not change since
// (streamer.result: the same size, every write an append). A commit that
// meets a file still queued takes it over (so that it is not stored
// twice); one being stored, it waits for.
//
// What this stores is only content, as a streamer's packs are: the
// commit makes it part of a snapshot. Crash, delete or change before
// then leaves only unreferenced blobs (prune's to collect); the staging
// copy and journal are as they were.

// Small-file store states of a streamer (streamer.small).
const (
	smallNone    = iota // not queued (or taken over by a commit)
	smallQueued         // waiting for the worker
	smallRunning        // being stored; done closes when it ends
)

// smallQueueMax bounds the queue (each entry a pointer): files closed
// while it is full are left to the commit.
const smallQueueMax = 1 << 14

// smallDataMax bounds the content of small files held in memory for the
// worker; the files queued past it are read back from the journal.
const smallDataMax = 8 << 20

// smallStore is the queue of small files to store and its worker.
type smallStore struct {
	mu      sync.Mutex
	queue   []*streamer
	running bool
	stopped bool
	// dataBytes counts the content the queued files hold (streamer.data),
	// at most smallDataMax (atomic: taken back under a streamer's lock).
	dataBytes atomic.Int64
	wg        sync.WaitGroup
}

// queueSmallLocked queues the file just closed by its last writer, if it
// is new, written in one sequential run, and small (streamed files are
// stored as they are written). t.mu is held.
func (t *Tree) queueSmallLocked(in *Inode) {
	s := in.stream
	if s == nil || in.overlay || in.parent == nil || t.opts.ReadOnly {
		return
	}
	s.mu.Lock()
	ok := !s.started && !s.invalid && s.closed && s.small == smallNone && s.done == nil &&
		s.avail > 0 && s.avail <= smallWhole && s.avail == in.meta.Size
	if ok {
		s.small, s.done = smallQueued, make(chan struct{})
	}
	s.mu.Unlock()
	if !ok {
		return
	}
	q := &t.small
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.stopped || len(q.queue) >= smallQueueMax {
		s.mu.Lock()
		s.small, s.done = smallNone, nil
		s.mu.Unlock()
		return
	}
	q.queue = append(q.queue, s)
	if in.file != nil && q.dataBytes.Load()+int64(in.meta.Size) <= smallDataMax {
		if b, ok := in.file.Bytes(); ok && uint64(len(b)) == in.meta.Size {
			s.mu.Lock()
			s.data = b
			s.mu.Unlock()
			q.dataBytes.Add(int64(len(b)))
		}
	}
	if !q.running {
		q.running = true
		q.wg.Go(t.smallWorker)
	}
}

// smallWorker stores the queued files until none is left.
func (t *Tree) smallWorker() {
	q := &t.small
	for {
		q.mu.Lock()
		if len(q.queue) == 0 || q.stopped {
			q.running = false
			q.mu.Unlock()
			return
		}
		s := q.queue[0]
		q.queue[0] = nil
		q.queue = q.queue[1:]
		if len(q.queue) == 0 {
			q.queue = nil // let the array go
		}
		q.mu.Unlock()
		t.storeSmall(s)
	}
}

// storeSmall stores one queued file, unless a commit took it over, and
// hands the result to its streamer.
func (t *Tree) storeSmall(s *streamer) {
	s.mu.Lock()
	if s.small != smallQueued {
		s.mu.Unlock()
		return // taken over
	}
	s.small = smallRunning
	size := s.avail
	data := t.takeData(s)
	s.mu.Unlock()

	t.mu.Lock()
	id, current := s.in.staging, s.in.stream == s && s.in.parent != nil
	t.mu.Unlock()
	var (
		content []repo.Extent
		err     = errStreamInvalid // deleted, truncated or rewritten: the commit's, if any
	)
	if current && data != nil && uint64(len(data)) == size {
		var ok bool
		content, ok, err = t.storeBytes(t.life, data)
		if !ok && err == nil {
			err = errStreamInvalid // a hole to keep: the commit stores it
		}
	} else if current && id != "" {
		if f, oerr := t.openStaging(id, false); oerr == nil {
			var ok bool
			content, ok, err = t.storeWhole(t.life, f, size)
			if !ok && err == nil {
				err = errStreamInvalid // a hole to keep: the commit stores it
			}
			f.Close()
		}
	}
	s.mu.Lock()
	s.content, s.total, s.err = content, size, err
	s.small = smallNone
	close(s.done)
	s.mu.Unlock()
}

// takeSmall makes a commit's job the owner of a file still queued (the
// worker skips it), or waits for the worker storing it. After it the
// streamer's result is final.
func (s *streamer) takeSmall() {
	s.mu.Lock()
	switch s.small {
	case smallQueued:
		s.small, s.done = smallNone, nil
		s.t.takeData(s)
	case smallRunning:
		done := s.done
		s.mu.Unlock()
		<-done
		return
	}
	s.mu.Unlock()
}

// stopSmall ends the worker (the queue is left to the commits) and waits
// for it.
func (t *Tree) stopSmall() {
	q := &t.small
	q.mu.Lock()
	q.stopped = true
	q.mu.Unlock()
	q.wg.Wait()
}

// takeData takes the content s holds for the worker, and lets its budget
// go. s.mu is held.
func (t *Tree) takeData(s *streamer) []byte {
	d := s.data
	if d == nil {
		return nil
	}
	s.data = nil
	t.small.dataBytes.Add(-int64(len(d)))
	return d
}
