package test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/repo"
	"github.com/sealfs/sealfs/repo/format"
)

// TestMountSegmentTamperRandomReads: a chunk in the middle of a big file
// is damaged inside its segmented blob as someone holding the remote
// would (its table flipped or replaced by another chunk's, segments
// swapped, duplicated, taken from another chunk, zeroed, a tag flipped,
// the pack cut off inside it); through a fresh read-only mount, random
// reads of 4 KiB to 128 KiB (most of them inside that chunk) either return
// every byte asked for, right, or fail with EIO; a read that covers a
// damaged segment always fails; `cat` fails after only right bytes, none
// past the damaged chunk's start.
func TestMountSegmentTamperRandomReads(t *testing.T) {
	needRoot(t)
	c := initRepo(t)
	mnt := mountpoint(t)
	data := storeBig(t, c, mnt, 63)
	te, tStart, tl := chunkInMiddle(t, c, "big", 12<<20)
	_, _, ol := chunkInMiddle(t, c, "big", tStart+te.Size) // the next one: most likely in the same pack
	if ol.Offset == tl.Offset && ol.Pack == tl.Pack {
		t.Fatal("the same chunk twice")
	}
	// Random data is stored raw: every segment but the last is sealed to
	// the same length.
	seal := int64(crypt.Overhead + 1 + format.SegmentSize)
	segAt := func(l repo.Location, i int) int64 {
		return int64(l.Offset) + int64(format.SegmentTableLen(l.RawLength)) + int64(i)*seal
	}
	tbl, obl := tl, ol
	count := format.SegmentCount(tl.RawLength)
	all := map[int]bool{}
	for i := range count {
		all[i] = true
	}
	lastEnd := int64(tl.Offset) + int64(tl.Length)
	type fault struct {
		name    string
		damaged map[int]bool
		apply   func(t *testing.T, b []byte) []byte
	}
	faults := []fault{
		{"table bit flip", all, func(t *testing.T, b []byte) []byte { b[tl.Offset+7] ^= 1; return b }},
		{"segments 1 and 2 swapped", map[int]bool{1: true, 2: true}, func(t *testing.T, b []byte) []byte {
			s1 := bytes.Clone(b[segAt(tbl, 1):segAt(tbl, 2)])
			copy(b[segAt(tbl, 1):], b[segAt(tbl, 2):segAt(tbl, 3)])
			copy(b[segAt(tbl, 2):], s1)
			return b
		}},
		{"segment 1 over segment 2", map[int]bool{2: true}, func(t *testing.T, b []byte) []byte {
			copy(b[segAt(tbl, 2):], b[segAt(tbl, 1):segAt(tbl, 2)])
			return b
		}},
		{"segment 1 of another chunk", map[int]bool{1: true}, func(t *testing.T, b []byte) []byte {
			if ol.Pack != tl.Pack {
				t.Skip("the other chunk is in another pack")
			}
			copy(b[segAt(tbl, 1):], b[segAt(obl, 1):segAt(obl, 2)])
			return b
		}},
		{"segment 1 zeroed", map[int]bool{1: true}, func(t *testing.T, b []byte) []byte {
			clear(b[segAt(tbl, 1):segAt(tbl, 2)])
			return b
		}},
		{"last segment's tag flipped", map[int]bool{count - 1: true}, func(t *testing.T, b []byte) []byte { b[lastEnd-1] ^= 0x80; return b }},
		{"segment 0 and the one before the last swapped", map[int]bool{0: true, count - 2: true}, func(t *testing.T, b []byte) []byte {
			s0 := bytes.Clone(b[segAt(tbl, 0):segAt(tbl, 1)])
			copy(b[segAt(tbl, 0):], b[segAt(tbl, count-2):segAt(tbl, count-1)])
			copy(b[segAt(tbl, count-2):], s0)
			return b
		}},
		{"table of another chunk", all, func(t *testing.T, b []byte) []byte {
			if ol.Pack != tl.Pack || format.SegmentCount(ol.RawLength) != count {
				t.Skip("no other chunk of as many segments in the pack")
			}
			n := format.SegmentTableLen(tl.RawLength)
			copy(b[tl.Offset:], b[ol.Offset:int(ol.Offset)+n])
			return b
		}},
		{"pack cut off in segment 2", nil, func(t *testing.T, b []byte) []byte {
			for i := 2; i < count; i++ {
				all[i] = true
			}
			return b[:segAt(tbl, 2)+100]
		}},
	}
	cases, reads, failed, short := 0, 0, 0, 0
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			if f.damaged == nil {
				f.damaged = map[int]bool{}
				for i := 2; i < count; i++ {
					f.damaged[i] = true
				}
			}
			dir := filepath.Join(t.TempDir(), "remote")
			copyRemote(t, c.remote, dir)
			pack := filepath.Join(dir, format.PackName(tl.Pack))
			b, err := os.ReadFile(pack)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(pack, f.apply(t, b), 0o644); err != nil {
				t.Fatal(err)
			}
			cases++
			fresh := cliRepo{remote: dir, cache: t.TempDir(), codeFile: c.codeFile}
			expect(t, fresh.mount(t, mnt, "--read-only"), 0, "")
			defer fresh.umount(t, mnt)
			path := filepath.Join(mnt, "big")
			fd, err := unix.Open(path, unix.O_RDONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(fd)
			rng := rand.New(rand.NewPCG(uint64(cases), 11))
			buf := make([]byte, 128<<10)
			for range 150 {
				var off int64
				if rng.IntN(5) > 0 {
					off = int64(tStart) + rng.Int64N(int64(te.Size))
				} else {
					off = rng.Int64N(int64(len(data)))
				}
				size := int64(4096 << rng.IntN(6))
				off &^= 4095
				n, err := preadRetry(fd, buf[:size], off)
				reads++
				want := min(size, int64(len(data))-off)
				touches := func(from, to int64) bool {
					for i := range count {
						s := int64(tStart) + int64(i)*format.SegmentSize
						e := min(s+format.SegmentSize, int64(tStart+te.Size))
						if f.damaged[i] && from < e && to > s {
							return true
						}
					}
					return false
				}
				switch {
				case err != nil && !errors.Is(err, unix.EIO):
					t.Errorf("pread %d+%d: %v, want EIO or the bytes", off, size, err)
				case err != nil:
					failed++
				case !bytes.Equal(buf[:n], data[off:off+int64(n)]):
					t.Errorf("pread %d+%d: WRONG BYTES", off, size)
				case touches(off, off+int64(n)):
					t.Errorf("pread %d+%d returned %d bytes covering a damaged segment", off, size, n)
				case int64(n) < want:
					// The pages before a failing one may come back
					// (POSIX read). Reading on gives right bytes until
					// EIO or the range's end, never an early end of
					// file. (The next pages may read: the request that
					// failed could reach past the range, the kernel's
					// read-ahead, into a damaged segment.)
					if at, err := readOnUntil(fd, buf, data, off+int64(n), off+want); err != nil && !errors.Is(err, unix.EIO) || err == nil && at < off+want {
						t.Errorf("pread %d+%d: %d bytes, then reading on to %d: %v at %d, want the bytes or EIO", off, size, n, off+want, err, at)
					}
					short++
				}
			}
			catFailsAt(t, path, data, tStart)
		})
	}
	t.Logf("%d tampering cases, %d random reads (%d failed with EIO, %d short reads: the pages before a failing request, reading on gave the right bytes or EIO)", cases, reads, failed, short)
}

// readOnUntil reads fd from off on, checking every byte against data,
// until end, an error or the end of the file; it returns where it stopped
// and the error (nil: it read to end, or to the end of the file).
func readOnUntil(fd int, buf, data []byte, off, end int64) (int64, error) {
	for off < end {
		n, err := preadRetry(fd, buf[:min(int64(len(buf)), end-off)], off)
		if err != nil || n == 0 {
			return off, err
		}
		if !bytes.Equal(buf[:n], data[off:off+int64(n)]) {
			return off, fmt.Errorf("wrong bytes at %d", off)
		}
		off += int64(n)
	}
	return off, nil
}

// preadRetry is pread(2), again when a signal interrupted it.
func preadRetry(fd int, p []byte, off int64) (int, error) {
	for {
		n, err := unix.Pread(fd, p, off)
		if !errors.Is(err, unix.EINTR) {
			return n, err
		}
	}
}
