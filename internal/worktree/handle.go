package worktree

import (
	"context"
	"io"
	"maps"
	"slices"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sealfs/sealfs/repo"
)

// Handle is an open file.
type Handle struct {
	t     *Tree
	in    *Inode
	write bool
	wrote bool
	// flushed is what the last Flush recorded (attrRecord's fields) and
	// flushedGen the inode's gen then: a Flush that would record the same
	// again (the kernel's RELEASE after the FLUSH of a close) records nothing.
	flushed    *repo.Node
	flushedGen uint64
	reader     *repo.FileReader
	readerN    *repo.Node
	fill       func(off int64, data []byte)
	// behindErr is why a write of this handle that was written behind
	// failed or was dropped (behind.go): every later write and flush
	// through it fails with it, so the writer never goes on past bytes
	// the file lacks.
	behindErr atomic.Pointer[error]
}

// FillCache has fn put verified content of the file into the kernel's
// page cache (a FUSE notify-store): the rest of the segments that a small
// read of stored content opened (repo.FileReader.OnSegments), so that the
// reads around it cost no round trip. fn runs on a goroutine of its own.
// Only a file that is not staged gets such fills, and staging it (an open
// for writing, a truncation) first waits for the fills under way: a fill
// landing after a write went through the kernel's cache would put the old
// bytes back over the new ones. Call it before the first read.
func (h *Handle) FillCache(fn func(off int64, data []byte)) { h.fill = fn }

// maxFills bounds the kernel cache fills under way in a tree: each holds
// up to two segments of content (128 KiB) until the kernel has taken them,
// and random reads, each starting one, could otherwise hold any amount
// (at most 8 MiB now, most of it in the read cache anyway). A read that
// finds maxFills under way fills nothing (a fill only saves later reads
// a round trip), so the bound is well above what a random reader keeps
// under way while the goroutines run late on a loaded machine.
const maxFills = 64

// filler is the repo.FileReader.OnSegments of a reader of node nc, the
// inode's stored content when the reader was made: it fills the kernel's
// cache while the inode is not staged and still holds that content.
func (h *Handle) filler(nc *repo.Node) func(off int64, data []byte) {
	t, in, fill := h.t, h.in, h.fill
	return func(off int64, data []byte) {
		t.mu.Lock()
		ok := in.staging == "" && !in.overlay && in.meta.Size == nc.Size &&
			len(in.meta.Content) == len(nc.Content) &&
			(len(nc.Content) == 0 || &in.meta.Content[0] == &nc.Content[0]) &&
			t.filling < maxFills
		if ok {
			in.fills++
			t.filling++
		}
		t.mu.Unlock()
		if ok {
			go func() {
				fill(off, data)
				t.mu.Lock()
				t.filling--
				if in.fills--; in.fills == 0 {
					t.fillsDone.Broadcast()
				}
				t.mu.Unlock()
			}()
		}
	}
}

// OpenFile opens a regular file for reading, or for writing too; trunc
// empties it first. An open file stays readable after it is unlinked.
func (t *Tree) OpenFile(in *Inode, write, trunc bool) (*Handle, error) {
	if in.meta.Type != repo.NodeFile {
		return nil, syscall.EINVAL
	}
	if write && t.opts.ReadOnly {
		return nil, syscall.EROFS
	}
	if write {
		// Stage now: a writer's content lives in the staging area until a
		// commit after it is closed.
		if err := t.stageAndLock(in, trunc); err != nil {
			return nil, err
		}
	} else if err := t.lockAttached(in); err != nil {
		return nil, err
	}
	defer t.mu.Unlock()
	// A staging file is open only while the file is: a tree of 100k
	// queued files must not hold 100k descriptors.
	if in.staging != "" && in.file == nil {
		f, err := t.openStaging(in.staging, false)
		if err != nil {
			return nil, err
		}
		in.file = f
	}
	if trunc && in.file != nil && in.meta.Size != 0 {
		if in.file.InMemory() {
			// Its content record says what it held: one saying empty.
			if err := t.recordContentLocked(in, nil); err != nil {
				return nil, err
			}
		}
		if err := in.file.Truncate(0); err != nil {
			return nil, err
		}
		in.meta.Size = 0
		in.gen++
		if in.stream != nil {
			in.stream.stop(true)
			in.stream = nil
		}
	}
	in.opens++
	if write {
		in.writers++
		if in.stream == nil && in.file != nil && !in.overlay && in.meta.Size == 0 {
			t.startStreamLocked(in)
		}
	}
	h := &Handle{t: t, in: in, write: write}
	t.handles[h] = true
	return h, nil
}

// ReadAt reads from the file's current content, as io.ReaderAt does.
// Fetching stored content from the remote stops when ctx is done.
func (h *Handle) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	t, in := h.t, h.in
	t.mu.Lock()
	if in.overlay {
		v := t.overlayViewLocked(in)
		t.mu.Unlock()
		n, err := v.readAt(ctx, p, off)
		if err == nil || err == io.EOF {
			t.accessed(in)
		}
		return n, err
	}
	f, size := in.file, int64(in.meta.Size)
	if in.staging == "" {
		f = nil
	}
	var rd *repo.FileReader
	if f == nil {
		n := &in.meta
		if h.readerN != n || h.reader == nil {
			nc := in.meta
			h.reader, h.readerN = t.r.OpenFile(&nc), n
			if h.fill != nil {
				h.reader.OnSegments(h.filler(&nc))
			}
		}
		rd = h.reader
	}
	t.mu.Unlock()
	if off >= size {
		return 0, io.EOF
	}
	if int64(len(p)) > size-off {
		p = p[:size-off]
	}
	var got int
	var err error
	if f != nil {
		got, err = f.ReadAt(p, off)
	} else {
		got, err = rd.ReadAt(ctx, p, off)
	}
	if err == io.EOF && got == len(p) {
		err = nil
	}
	if err == nil || err == io.EOF {
		t.accessed(in)
	}
	return got, err
}

// WriteAt writes into the file's staging copy: an append past the first
// streamStart bytes of a new file written sequentially is queued and
// written behind (behind.go). (Below that, a small file of an untar would
// pay a goroutine's hand-over at every close, for no gain.)
func (h *Handle) WriteAt(p []byte, off int64) (int, error) {
	if !h.write {
		return 0, syscall.EBADF
	}
	t, in := h.t, h.in
	t.mu.Lock()
	f := in.file
	behind := h.appendsLocked(f, p, off)
	t.mu.Unlock()
	if f == nil {
		return 0, syscall.EIO
	}
	// Space on disk first, so that a full disk fails this write, not a
	// later one: then it is made here, and meets the full disk itself.
	if behind && f.File.Reserve(off, int64(len(p))) == nil {
		t.mu.Lock()
		if in.file == f && h.appendsLocked(f, p, off) && f.queueBehind(h, in.stream, p, off) {
			h.wroteLocked(uint64(off), uint64(len(p)))
			t.mu.Unlock()
			f.waitRoom()
			return len(p), nil
		}
		t.mu.Unlock()
	}
	if err := h.behindFailed(f); err != nil {
		return 0, err
	}
	n, err := f.WriteAt(p, off)
	t.mu.Lock()
	if in.overlay && n > 0 {
		in.written = in.written.add(uint64(off), uint64(off)+uint64(n))
	}
	if in.stream != nil {
		in.stream.wrote(uint64(off), uint64(n), f, nil)
	}
	h.wroteLocked(uint64(off), uint64(n))
	t.mu.Unlock()
	return n, err
}

// appendsLocked reports whether a write of p at off to the staging file f
// is one to write behind: an append past the first streamStart bytes of a
// new file written sequentially. t.mu is held.
func (h *Handle) appendsLocked(f *stagingFile, p []byte, off int64) bool {
	in := h.in
	return f != nil && in.stream != nil && !in.overlay && len(p) > 0 && off >= streamStart && uint64(off) == in.meta.Size
}

// wroteLocked records a write of n bytes at off: the size, the times and
// the generation. t.mu is held.
func (h *Handle) wroteLocked(off, n uint64) {
	in := h.in
	if end := off + n; end > in.meta.Size {
		in.meta.Size = end
	}
	now := time.Now().UnixNano()
	in.meta.MtimeNs = now
	in.changed(now)
	in.gen++
	h.wrote = true
}

// behindFailed waits for f's queued writes. After a queued write failed,
// the first to come here sets the file's size back to what landed in f
// (its streamer gives up); it returns why a write of h failed or was
// dropped, if one was.
func (h *Handle) behindFailed(f *stagingFile) error {
	f.drain()
	if f.behindFailed() {
		t := h.t
		t.mu.Lock()
		t.behindFailedLocked(h.in, f)
		t.mu.Unlock()
	}
	if err := h.behindErr.Load(); err != nil {
		return *err
	}
	return nil
}

// behindFailedLocked sets the size of in back to what landed in its
// staging file f after a queued write failed (f.behindFailed said so):
// its streamer gives up. t.mu is held.
func (t *Tree) behindFailedLocked(in *Inode, f *stagingFile) {
	if in.file == f {
		in.meta.Size = uint64(f.File.Size())
		in.gen++
		if in.stream != nil {
			in.stream.stop(true)
		}
	}
}

// Flush records the file's new size and times in the journal, so that a
// closed file is found again after a crash of the daemon.
func (h *Handle) Flush() error {
	if !h.wrote {
		return nil
	}
	h.t.mu.Lock()
	f := h.in.file
	h.t.mu.Unlock()
	var werr error
	if f != nil {
		werr = h.behindFailed(f) // recorded below with the size that landed
	}
	h.t.mu.Lock()
	defer h.t.mu.Unlock()
	if h.flushed != nil && h.flushedGen == h.in.gen && sameAttr(h.flushed, &h.in.meta) {
		return werr // recorded already, nothing changed since
	}
	if err := h.t.recordFlushLocked(h.in); err != nil {
		return err
	}
	h.flushed, h.flushedGen = attrRecord("", &h.in.meta).Meta, h.in.gen
	return werr
}

// recordFlushLocked records what a flush of in records: which ranges an
// overlay's staging copy holds, a small file's content held in memory,
// and its size and times. t.mu is held.
func (t *Tree) recordFlushLocked(in *Inode) error {
	if in.overlay && in.parent != nil {
		// Which ranges the staging copy holds, for a replay after a crash.
		if err := t.record(t.stageRecordLocked(in)); err != nil {
			return err
		}
	}
	// A small file's content, held in memory, goes into the journal.
	if err := t.flushInlineLocked(in); err != nil {
		return err
	}
	return t.recordAttrLocked(in)
}

// sameAttr reports whether n has the attributes attrRecord recorded in r.
func sameAttr(r, n *repo.Node) bool {
	return r.Mode == n.Mode && r.UID == n.UID && r.GID == n.GID && r.MtimeNs == n.MtimeNs &&
		r.AtimeNs == n.AtimeNs && r.CtimeNs == n.CtimeNs && r.Size == n.Size
}

// Sync makes the file's content and the journal durable on local disk:
// what every handle wrote, as fsync(2) does whichever of the file's
// descriptors it is given (the kernel sends it with that one's handle).
func (h *Handle) Sync() error {
	t, in := h.t, h.in
	if err := h.Flush(); err != nil {
		return err
	}
	t.mu.Lock()
	f := in.file
	if !h.wrote && in.writers > 0 {
		// What the writers wrote, recorded as their flush would: an
		// overlay's ranges, a small file's content held in memory.
		if err := t.recordFlushLocked(in); err != nil {
			t.mu.Unlock()
			return err
		}
	}
	t.mu.Unlock()
	if f != nil {
		if err := f.Sync(); err != nil {
			return err
		}
	}
	return t.Sync()
}

// Sync makes the journal durable on local disk: every change of names and
// metadata made so far survives a crash (fsync of a directory).
func (t *Tree) Sync() error {
	t.mu.Lock()
	j := t.journal
	t.mu.Unlock()
	if j != nil {
		return j.sync()
	}
	return nil
}

// Gen returns the file's generation, which every change of its content
// advances: CommittedSince(Gen()) after a commit says that the commit (or
// a later one) holds what the file held then.
func (h *Handle) Gen() uint64 {
	h.t.mu.Lock()
	defer h.t.mu.Unlock()
	return h.in.gen
}

// CommittedSince reports whether the file's content as of generation gen is
// in a stored snapshot: it is not queued, or a commit stored it at gen or
// later. A file deleted since has nothing to commit.
func (h *Handle) CommittedSince(gen uint64) bool {
	h.t.mu.Lock()
	defer h.t.mu.Unlock()
	in := h.in
	if in.parent == nil || !h.t.staged[in] {
		return true
	}
	return in.committed != nil && in.cleanGen >= gen
}

// Close releases the handle; a second Close does nothing. The last close
// of an unlinked file removes its staging copy.
func (h *Handle) Close() error {
	t, in := h.t, h.in
	t.mu.Lock()
	open := t.handles[h]
	delete(t.handles, h)
	t.mu.Unlock()
	if !open {
		return nil
	}
	err := h.Flush()
	t.mu.Lock()
	in.opens--
	if h.write {
		in.writers--
		if in.writers == 0 && in.stream != nil {
			in.stream.stop(false)
			t.queueSmallLocked(in)
		}
	}
	if in.opens == 0 && in.parent == nil && in != t.root {
		t.unstageLocked(in)
	}
	if in.opens == 0 && in.file != nil {
		in.file.Close()
		in.file = nil
	}
	t.mu.Unlock()
	if h.wrote {
		t.changed()
	}
	return err
}

// CloseHandles closes the handles still open. Once the kernel has let go
// of the mount no file is open, though it may not have said so for every
// one: a release it dropped as it tore a detached mount down left the
// file counted as still being written, so it stayed out of the last
// commits.
func (t *Tree) CloseHandles() error {
	t.mu.Lock()
	hs := slices.Collect(maps.Keys(t.handles))
	t.mu.Unlock()
	var first error
	for _, h := range hs {
		if err := h.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Allocate reserves space in the staging copy, as fallocate(2) with mode.
func (h *Handle) Allocate(off, size uint64, mode uint32) error {
	if !h.write {
		return syscall.EBADF
	}
	t, in := h.t, h.in
	t.mu.Lock()
	f := in.file
	t.mu.Unlock()
	if f == nil {
		return syscall.EIO
	}
	if err := f.Allocate(int64(off), int64(size), mode); err != nil {
		return err
	}
	t.mu.Lock()
	if in.stream != nil {
		in.stream.stop(true)
	}
	newSize := uint64(f.Size())
	if in.overlay && mode&(unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_ZERO_RANGE) != 0 {
		// The range reads as zeros now: from the staging copy, not
		// from the stored content it overlays.
		if end := min(off+size, newSize); off < end {
			in.written = in.written.add(off, end)
		}
	}
	// As ext4: ctime always, mtime when the content or size changed
	// (ext4_alloc_file_blocks, ext4_punch_hole, ext4_zero_range).
	now := time.Now().UnixNano()
	in.changed(now)
	if newSize != in.meta.Size || mode&(unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_ZERO_RANGE) != 0 {
		in.meta.MtimeNs = now
	}
	in.meta.Size = newSize
	in.gen++
	h.wrote = true
	t.mu.Unlock()
	return nil
}

// Seek answers lseek(2) with SEEK_DATA or SEEK_HOLE (whence 3 or 4), so
// that tar, cp and rsync find the holes of sparse files.
func (h *Handle) Seek(off int64, whence int) (int64, error) {
	const seekData, seekHole = 3, 4
	t, in := h.t, h.in
	t.mu.Lock()
	f, size, content, overlay := in.file, int64(in.meta.Size), in.meta.Content, in.overlay
	t.mu.Unlock()
	if off < 0 || off >= size {
		return 0, syscall.ENXIO
	}
	if overlay { // all data, as a filesystem without hole tracking
		if whence == seekHole {
			return size, nil
		}
		return off, nil
	}
	if f != nil {
		return f.Seek(off, whence)
	}
	var start int64
	for _, e := range content {
		end := start + int64(e.Size)
		if end > off && ((whence == seekData && !e.Hole) || (whence == seekHole && e.Hole)) {
			return max(start, off), nil
		}
		start = end
	}
	if whence == seekHole {
		return size, nil
	}
	return 0, syscall.ENXIO
}
