package worktree

import (
	"errors"
	"iter"
	"os"
	"path/filepath"
	"syscall"
)

// The reserve is space a Tree keeps allocated on the cache disk for its own
// bookkeeping. When a journal write meets a full disk, the reserve is given
// up and the write tried again: so a commit can still start its journal
// (and then free the staging space it uploaded), a file can still be
// deleted, and a stopping daemon can still record what it left queued. It
// is allocated again once a commit has freed space.
const (
	reserveName = "reserve"
	reserveSize = 1 << 20
)

// makeReserveLocked allocates the reserve if it is not held; on a full
// disk, or a filesystem without fallocate, the Tree goes on without.
func (t *Tree) makeReserveLocked() {
	if t.reserved {
		return
	}
	p := filepath.Join(t.opts.Dir, reserveName)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return
	}
	err = syscall.Fallocate(int(f.Fd()), 0, 0, reserveSize)
	f.Close()
	if err != nil {
		os.Remove(p)
		return
	}
	t.reserved = true
}

// releaseReserveLocked gives up the reserve; it reports whether there was
// one to give.
func (t *Tree) releaseReserveLocked() bool {
	if !t.reserved {
		return false
	}
	t.reserved = false
	t.opts.Log.Warn("the cache disk is full: using the space kept in reserve for the journal; free space on it", "dir", t.opts.Dir)
	return os.Remove(filepath.Join(t.opts.Dir, reserveName)) == nil
}

// withReserve runs a journal write, and once more after giving up the
// reserve if it met a full disk.
func (t *Tree) withReserve(write func() error) error {
	err := write()
	if errors.Is(err, syscall.ENOSPC) && t.releaseReserveLocked() {
		err = write()
	}
	return err
}

// startJournalLocked creates journal n (see newJournal), with the reserve
// to fall back on.
func (t *Tree) startJournalLocked(n, base uint64, recs iter.Seq[record]) (*journal, error) {
	var j *journal
	err := t.withReserve(func() error {
		var err error
		j, err = newJournal(t.opts.Dir, t.localKey, n, base, recs)
		return err
	})
	if err == nil {
		t.pointInline(j)
	}
	return j, err
}

// Close ends the Tree's background work (a file still being chunked as it
// is written is chunked by a later commit instead; folders being loaded
// ahead of a walk are left), closes the journal and
// gives the reserve back to the disk. The Tree must not be used after.
func (t *Tree) Close() error {
	t.stopPrefetch()
	t.stopSmall()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.reserved {
		t.reserved = false
		os.Remove(filepath.Join(t.opts.Dir, reserveName))
	}
	t.closeOldJournalsLocked()
	if t.journal == nil {
		return nil
	}
	err := t.journal.close()
	t.journal = nil
	return err
}
