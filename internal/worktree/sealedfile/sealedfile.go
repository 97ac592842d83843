// Package sealedfile is a local file sealed block by block with AES-256-GCM
// (docs/SPEC.md §12.1): random reads and writes at any offset, sparse
// holes, truncation, files far past 4 GiB, and a size that survives a crash
// because it follows from the file's length on disk.
//
// The plaintext is cut into blocks of BlockSize bytes. Block i is stored at
// byte i*PageSize of the file as nonce || ciphertext || tag, one page per
// block, sealed under the file's own key with the block number as
// associated data: a block does not open in another file or at another
// position. Every write of a block seals it again with a fresh random nonce.
// Only the last block may be shorter. A block whose stored bytes are all
// zero is a hole and reads as zeros (a sparse region, or space reserved by
// fallocate). A block never straddles a page, so a write that a SIGKILL
// interrupts leaves each block either old or new, never torn.
package sealedfile

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/sealfs/sealfs/crypt"
)

// The block geometry of format version 1.
const (
	// PageSize is the size of a sealed block on disk.
	PageSize = 4096
	// BlockSize is the plaintext size of a full block.
	BlockSize = PageSize - crypt.Overhead
)

// maxBatch bounds the blocks sealed or opened per system call, and so the
// buffers a call needs.
const maxBatch = 256

// ErrDamaged is returned (wrapped, with crypt.ErrAuth) when a block does not
// authenticate: it was changed, moved, or torn. No byte of it is released.
var ErrDamaged = errors.New("sealed block is damaged")

// File is a sealed local file. It is safe for concurrent use: reads run in
// parallel, writes one at a time. Every File of one path must be the same
// value (a second one would not see the first's writes as atomic).
type File struct {
	mu   sync.RWMutex
	f    *os.File
	s    *crypt.LocalFile
	path string
	size int64 // plaintext size
	geo  geometry

	// A Deferred file holds its content in mem while inMem (f is nil
	// then), up to memLimit bytes.
	mem      []byte
	memLimit int64
	inMem    bool
	shared   bool // mem was handed out by Bytes: copied before a change
	// onDisk is set once f is (at open, or when a Deferred file is
	// written out): Reserve reads it without the lock.
	onDisk atomic.Bool
}

// geometry is the block layout; v1 uses PageSize pages. Tests and
// benchmarks try others.
type geometry struct{ page, block int64 }

var v1 = geometry{page: PageSize, block: BlockSize}

// Create creates a new, empty sealed file at path (it must not exist),
// sealed under the key of the local file called name.
func Create(path, name string, key crypt.LocalKey) (*File, error) {
	return open(path, name, key, os.O_RDWR|os.O_CREATE|os.O_EXCL, v1)
}

// Open opens the sealed file at path, for writing too if write is set.
// A fragment too short to be a block at its end (a torn write) is ignored,
// and cut off when it is opened for writing.
func Open(path, name string, key crypt.LocalKey, write bool) (*File, error) {
	flag := os.O_RDONLY
	if write {
		flag = os.O_RDWR
	}
	return open(path, name, key, flag, v1)
}

func open(path, name string, key crypt.LocalKey, flag int, geo geometry) (*File, error) {
	s, err := key.LocalFile(name)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, flag, 0o600)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	phys := fi.Size()
	if flag&(os.O_RDWR|os.O_WRONLY) != 0 && geo.fragment(phys) {
		if err := f.Truncate(phys - phys%geo.page); err != nil {
			f.Close()
			return nil, fmt.Errorf("failed to cut a torn block off %s: %w", path, err)
		}
	}
	file := &File{f: f, s: s, path: path, size: geo.plainSize(phys), geo: geo}
	file.onDisk.Store(true)
	return file, nil
}

// PlainSize returns the plaintext size of a sealed file that is phys bytes
// long on disk. It needs no key.
func PlainSize(phys int64) int64 { return v1.plainSize(phys) }

// plainSize maps a length on disk to a plaintext size.
func (g geometry) plainSize(phys int64) int64 {
	q, r := phys/g.page, phys%g.page
	if r <= crypt.Overhead {
		return q * g.block // r > 0: a torn fragment, no data
	}
	return q*g.block + r - crypt.Overhead
}

// fragment reports whether a file of length phys ends in a piece too short
// to be a block.
func (g geometry) fragment(phys int64) bool {
	r := phys % g.page
	return r > 0 && r <= crypt.Overhead
}

// physSize maps a plaintext size to the length on disk.
func (g geometry) physSize(size int64) int64 {
	q, r := size/g.block, size%g.block
	if r == 0 {
		return q * g.page
	}
	return q*g.page + r + crypt.Overhead
}

// blockLen returns the plaintext length of block i in a file of size bytes.
func (g geometry) blockLen(i, size int64) int64 {
	return min(g.block, size-i*g.block)
}

func blockAD(i int64) []byte {
	var ad [8]byte
	binary.BigEndian.PutUint64(ad[:], uint64(i))
	return ad[:]
}

var zeroPage [PageSize]byte

func isZero(b []byte) bool {
	for len(b) > 0 {
		n := min(len(b), len(zeroPage))
		if !bytes.Equal(b[:n], zeroPage[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}

// The buffers of reads and writes: a batch of maxBatch pages, or, for the
// small reads and writes most are (the files of an untar, a block read
// back around a write), smallBatch pages, so that each goroutine at work
// holds 64 KiB and not 1 MiB of the heap.
var (
	bufPool      = sync.Pool{New: func() any { b := make([]byte, maxBatch*PageSize); return &b }}
	smallBufPool = sync.Pool{New: func() any { b := make([]byte, smallBatch*PageSize); return &b }}
)

// smallBatch is the size in pages of the small buffers.
const smallBatch = 16

func (f *File) getBuf(n int64) (*[]byte, []byte) {
	if n > maxBatch*PageSize {
		b := make([]byte, n)
		return nil, b
	}
	pool := &bufPool
	if n <= smallBatch*PageSize {
		pool = &smallBufPool
	}
	p := pool.Get().(*[]byte)
	return p, (*p)[:n]
}

func putBuf(p *[]byte) {
	switch {
	case p == nil:
	case cap(*p) == smallBatch*PageSize:
		smallBufPool.Put(p)
	default:
		bufPool.Put(p)
	}
}

// Size returns the plaintext size.
func (f *File) Size() int64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.size
}

// openBlocks authenticates and decrypts, in place, the stored blocks
// first, first+1, ... in buf (as read from disk, the last one possibly
// short), returning each block's plaintext in order through fn.
func (f *File) openBlocks(buf []byte, first int64, fn func(i int64, pt []byte) error) error {
	for i := first; len(buf) > 0; i++ {
		n := min(int64(len(buf)), f.geo.page)
		sealed := buf[:n]
		buf = buf[n:]
		var pt []byte
		if isZero(sealed) {
			pt = sealed[crypt.NonceSize:max(n-crypt.TagSize, crypt.NonceSize)] // a hole
		} else {
			var err error
			pt, err = f.s.Open(sealed[crypt.NonceSize:crypt.NonceSize], blockAD(i), sealed)
			if err != nil {
				return fmt.Errorf("%w: %s, block %d: %w", ErrDamaged, f.path, i, err)
			}
		}
		if err := fn(i, pt); err != nil {
			return err
		}
	}
	return nil
}

// readPhys reads len(buf) stored bytes at off, failing on a short read.
func (f *File) readPhys(buf []byte, off int64) error {
	n, err := f.f.ReadAt(buf, off)
	if n == len(buf) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = fmt.Errorf("%w: %s ends at %d, inside block %d", ErrDamaged, f.path, off+int64(n), (off+int64(n))/f.geo.page)
	}
	return err
}

// ReadAt reads the plaintext at off, as io.ReaderAt: fewer bytes than
// len(p) only with an error (io.EOF at the end of the file). A block that
// does not authenticate fails the read with ErrDamaged.
func (f *File) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("sealedfile: negative offset %d", off)
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.inMem {
		return f.memRead(p, off)
	}
	want := len(p)
	if off >= f.size {
		return 0, io.EOF
	}
	if int64(len(p)) > f.size-off {
		p = p[:f.size-off]
	}
	g := f.geo
	done := 0
	for done < len(p) {
		pos := off + int64(done)
		first := pos / g.block
		last := min((off+int64(len(p))-1)/g.block, first+maxBatch-1)
		physEnd := min(g.physSize(f.size), (last+1)*g.page)
		bp, buf := f.getBuf(physEnd - first*g.page)
		err := f.readPhys(buf, first*g.page)
		if err == nil {
			err = f.openBlocks(buf, first, func(i int64, pt []byte) error {
				from := max(pos-i*g.block, 0)
				done += copy(p[done:], pt[from:])
				return nil
			})
		}
		putBuf(bp)
		if err != nil {
			return 0, err // no partial result: nothing unverified, nothing short
		}
	}
	if done < want {
		return done, io.EOF
	}
	return done, nil
}

// readBlock returns the plaintext of block i (zeros past the end of the
// file are not included) into dst.
func (f *File) readBlock(dst []byte, i int64) ([]byte, error) {
	n := f.geo.blockLen(i, f.size)
	if n <= 0 {
		return dst[:0], nil
	}
	buf := dst[:n+crypt.Overhead]
	if err := f.readPhys(buf, i*f.geo.page); err != nil {
		return nil, err
	}
	var out []byte
	err := f.openBlocks(buf, i, func(_ int64, pt []byte) error { out = pt; return nil })
	return out, err
}

// WriteAt writes p at off, growing the file (with a hole between) when off
// is past its end. On an error it returns how many bytes of p are known to
// be stored, and the size follows what reached the disk.
func (f *File) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("sealedfile: negative offset %d", off)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if ok, err := f.memFits(off + int64(len(p))); err != nil {
		return 0, err
	} else if ok {
		return f.memWrite(p, off), nil
	}
	return f.writeLocked(p, off)
}

func (f *File) writeLocked(p []byte, off int64) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if off > f.size {
		if err := f.extendLocked(off); err != nil {
			return 0, err
		}
	}
	g := f.geo
	done := 0
	for done < len(p) {
		pos := off + int64(done)
		first := pos / g.block
		last := min((off+int64(len(p))-1)/g.block, first+maxBatch-1)
		end := min(off+int64(len(p)), (last+1)*g.block) // plaintext end of this batch
		newSize := max(f.size, end)
		physEnd := min(g.physSize(newSize), (last+1)*g.page)
		bp, out := f.getBuf(physEnd - first*g.page)
		out = out[:0]
		var err error
		for i := first; i <= last && err == nil; i++ {
			bstart := i * g.block
			blen := g.blockLen(i, newSize)
			from, to := max(pos, bstart), min(end, bstart+blen)
			seg := out[len(out) : len(out)+crypt.NonceSize+int(blen)]
			pt := seg[crypt.NonceSize:]
			if from > bstart || to < bstart+blen {
				// A partly written block: keep what it held.
				// readBlock opens it in place: its plaintext lands in pt.
				var old []byte
				if old, err = f.readBlock(out[len(out):cap(out)], i); err != nil {
					break
				}
				clear(pt[len(old):])
			}
			copy(pt[from-bstart:], p[done+int(from-pos):done+int(to-pos)])
			out, err = f.s.Seal(out, blockAD(i), pt)
		}
		var n int
		if err == nil {
			n, err = f.f.WriteAt(out, first*g.page)
		}
		putBuf(bp)
		if err != nil {
			return done + f.landed(n, first, pos, end), f.resync(fmt.Errorf("failed to write %s: %w", f.path, err))
		}
		f.size = newSize
		done += int(end - pos)
	}
	return done, nil
}

// landed returns how many bytes of [pos, end) are in the blocks that the
// first n stored bytes of a write at block first hold in full.
func (f *File) landed(n int, first, pos, end int64) int {
	whole := first + int64(n)/f.geo.page
	return int(min(max(whole*f.geo.block-pos, 0), end-pos))
}

// resync sets the size from the length on disk after a failed write, and
// returns err.
func (f *File) resync(err error) error {
	if fi, serr := f.f.Stat(); serr == nil {
		f.size = f.geo.plainSize(fi.Size())
	}
	return err
}

// extendLocked grows the file to size with zeros: the last block is filled
// up with zeros and sealed again, and the rest is a hole.
func (f *File) extendLocked(size int64) error {
	g := f.geo
	if r := f.size % g.block; r != 0 {
		last := f.size / g.block
		bp, buf := f.getBuf(2 * g.page)
		defer putBuf(bp)
		old, err := f.readBlock(buf[g.page:], last)
		if err != nil {
			return err
		}
		blen := g.blockLen(last, size)
		pt := buf[crypt.NonceSize : crypt.NonceSize+blen]
		copy(pt, old)
		clear(pt[len(old):])
		sealed, err := f.s.Seal(buf[:0], blockAD(last), pt)
		if err != nil {
			return err
		}
		if _, err := f.f.WriteAt(sealed, last*g.page); err != nil {
			return f.resync(fmt.Errorf("failed to write %s: %w", f.path, err))
		}
		f.size = last*g.block + blen
	}
	if size > f.size {
		if err := f.f.Truncate(g.physSize(size)); err != nil {
			return f.resync(fmt.Errorf("failed to extend %s: %w", f.path, err))
		}
		f.size = size
	}
	return nil
}

// Truncate changes the size: a shrunk last block is sealed again, a grown
// file gets a hole. A crash in the middle of a shrink may leave the file
// cut at the start of the new last block, never a block that does not open.
func (f *File) Truncate(size int64) error {
	if size < 0 {
		return fmt.Errorf("sealedfile: negative size %d", size)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if ok, err := f.memFits(size); err != nil {
		return err
	} else if ok {
		f.memResize(size)
		return nil
	}
	return f.truncateLocked(size)
}

func (f *File) truncateLocked(size int64) error {
	g := f.geo
	switch {
	case size == f.size:
		return nil
	case size > f.size:
		return f.extendLocked(size)
	}
	last, r := size/g.block, size%g.block
	if r == 0 {
		if err := f.f.Truncate(last * g.page); err != nil {
			return f.resync(fmt.Errorf("failed to truncate %s: %w", f.path, err))
		}
		f.size = size
		return nil
	}
	bp, buf := f.getBuf(2 * g.page)
	defer putBuf(bp)
	old, err := f.readBlock(buf[g.page:], last)
	if err != nil {
		return err
	}
	sealed, err := f.s.Seal(buf[:0], blockAD(last), old[:r])
	if err != nil {
		return err
	}
	if err := f.f.Truncate(last * g.page); err != nil {
		return f.resync(fmt.Errorf("failed to truncate %s: %w", f.path, err))
	}
	f.size = last * g.block
	if _, err := f.f.WriteAt(sealed, last*g.page); err != nil {
		return f.resync(fmt.Errorf("failed to write %s: %w", f.path, err))
	}
	f.size = size
	return nil
}

// The fallocate(2) modes Allocate knows.
const (
	fallocKeepSize  = 0x01
	fallocPunchHole = 0x02
	fallocZeroRange = 0x10
)

// Allocate does what fallocate(2) with mode does on a plain file, for the
// modes 0 (reserve and grow), FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE
// and FALLOC_FL_ZERO_RANGE; others fail with EOPNOTSUPP. Reserved space
// reads as zeros, and a full disk fails with ENOSPC as it would.
func (f *File) Allocate(off, length int64, mode uint32) error {
	if off < 0 || length <= 0 {
		return syscall.EINVAL
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.inMem {
		if err := f.spillLocked(); err != nil {
			return err
		}
	}
	g := f.geo
	end := off + length
	switch mode {
	case 0, fallocKeepSize:
		// Space on disk first, without changing the stored length: under
		// blocks that hold data or are holes already (zeros read as
		// holes), or past the end. Then, for mode 0, the new size.
		start, physEnd := off/g.block*g.page, (end+g.block-1)/g.block*g.page
		if err := syscall.Fallocate(int(f.f.Fd()), fallocKeepSize, start, physEnd-start); err != nil {
			return err
		}
		if mode == 0 && end > f.size {
			return f.extendLocked(end)
		}
		return nil
	case fallocPunchHole | fallocKeepSize, fallocZeroRange, fallocZeroRange | fallocKeepSize:
		if mode == fallocZeroRange && end > f.size {
			if err := f.extendLocked(end); err != nil {
				return err
			}
		}
		return f.zeroLocked(off, min(end, f.size))
	}
	return syscall.EOPNOTSUPP
}

// zeroLocked makes [off, end) read as zeros: whole blocks become holes,
// the partly covered ones at the edges are written.
func (f *File) zeroLocked(off, end int64) error {
	g := f.geo
	if off >= end {
		return nil
	}
	first, last := (off+g.block-1)/g.block, end/g.block // whole blocks: [first, last)
	if end == f.size {
		last = (end + g.block - 1) / g.block // the last block, short or not
	}
	if first < last {
		start, stop := first*g.page, min(last*g.page, g.physSize(f.size))
		if err := syscall.Fallocate(int(f.f.Fd()), fallocPunchHole|fallocKeepSize, start, stop-start); err != nil {
			return err
		}
	}
	edge := func(from, to int64) error {
		if from >= to {
			return nil
		}
		_, err := f.writeLocked(make([]byte, to-from), from)
		return err
	}
	if first >= last {
		return edge(off, end)
	}
	if err := edge(off, first*g.block); err != nil {
		return err
	}
	return edge(min(last*g.block, end), end)
}

// holeAlign is the granularity at which Seek reports the edges of holes
// inside a block: the page size of plain files, so that the data and
// holes of a file copied in are found again where the source had them.
const holeAlign = 4096

// Seek answers SEEK_DATA and SEEK_HOLE (whence 3 and 4) in plaintext
// offsets. Holes are the blocks that are holes (all zeros) on disk, whatever
// the disk's own SEEK_HOLE says of allocated ones, widened into the
// blocks at their edges by the runs of zeros there, in whole 4 KiB pages:
// data reported is a superset of the data written, and what is skipped as
// a hole reads as zeros.
func (f *File) Seek(off int64, whence int) (int64, error) {
	const seekData, seekHole = 3, 4
	if whence != seekData && whence != seekHole {
		return 0, syscall.EINVAL
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.inMem {
		return f.memSeek(off, whence)
	}
	g := f.geo
	if off < 0 || off >= f.size {
		return 0, syscall.ENXIO
	}
	phys := g.physSize(f.size)
	bp, buf := f.getBuf(g.page)
	defer putBuf(bp)
	if whence == seekData {
		for from := off / g.block * g.page; ; {
			r, err := f.f.Seek(from, seekData)
			if err != nil {
				return 0, err
			}
			if r >= phys {
				return 0, syscall.ENXIO
			}
			k := r / g.page
			pt, err := f.readBlock(buf, k)
			if err != nil {
				return 0, err
			}
			lo := max(off, k*g.block)
			if i := firstNonzero(pt[lo-k*g.block:]); i >= 0 {
				z := lo + int64(i)
				return max(lo, z/holeAlign*holeAlign), nil
			}
			from = (k + 1) * g.page // zeros to the end of the block
		}
	}
	r, err := f.f.Seek(off/g.block*g.page, seekHole)
	if err != nil {
		return 0, err
	}
	h := min(r, phys) / g.page // the first hole block, or the block count
	if r >= phys {
		h = (f.size + g.block - 1) / g.block
	}
	// The disk may report allocated blocks that were never written as data
	// (the dirty folios of unwritten extents, in whole folios): all zeros
	// on disk, they are holes as any other.
	for first := off / g.block; h > first; h-- {
		zero, err := f.zeroOnDisk(buf, h-1)
		if err != nil {
			return 0, err
		}
		if !zero {
			break
		}
	}
	hole := max(off, min(h*g.block, f.size))
	if hole == off || h == 0 {
		return hole, nil
	}
	// The block before the hole may end in zeros.
	pt, err := f.readBlock(buf, h-1)
	if err != nil {
		return 0, err
	}
	lo := max(off, (h-1)*g.block)
	i := lastNonzero(pt[lo-(h-1)*g.block:])
	end := lo + int64(i) + 1 // past the last byte that is not zero
	if i < 0 {
		end = lo
	}
	return max(off, min(hole, (end+holeAlign-1)/holeAlign*holeAlign)), nil
}

// zeroOnDisk tells whether block i is all zeros on disk: never written (a
// hole, or allocated only), it reads as zeros.
func (f *File) zeroOnDisk(buf []byte, i int64) (bool, error) {
	n := f.geo.blockLen(i, f.size)
	if n <= 0 {
		return true, nil
	}
	b := buf[:n+crypt.Overhead]
	if err := f.readPhys(b, i*f.geo.page); err != nil {
		return false, err
	}
	return isZero(b), nil
}

func firstNonzero(b []byte) int {
	for i, c := range b {
		if c != 0 {
			return i
		}
	}
	return -1
}

func lastNonzero(b []byte) int {
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] != 0 {
			return i
		}
	}
	return -1
}

// Sync makes the file durable on disk (a Deferred one still in memory:
// nothing to do, its owner keeps it).
func (f *File) Sync() error {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.inMem {
		return nil
	}
	return f.f.Sync()
}

// Reserve allocates the disk space that a write of [off, off+length)
// takes, without changing the file's content or length (fallocate with
// FALLOC_FL_KEEP_SIZE): a full disk fails it with ENOSPC, and the write
// made later does not fail for want of space. It takes no lock: it
// changes nothing a reader or writer of the file sees.
func (f *File) Reserve(off, length int64) error {
	if off < 0 || length <= 0 {
		return syscall.EINVAL
	}
	if !f.onDisk.Load() {
		f.mu.Lock()
		ok, err := f.memFits(off + length)
		f.mu.Unlock()
		if err != nil || ok {
			return err // in memory: no space to take
		}
	}
	g := f.geo
	start, physEnd := off/g.block*g.page, g.physSize(off+length)
	return syscall.Fallocate(int(f.f.Fd()), fallocKeepSize, start, physEnd-start)
}

// Close closes the file; a Deferred one still in memory stays readable.
func (f *File) Close() error {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.inMem {
		return nil
	}
	return f.f.Close()
}
