package sealedfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"github.com/sealfs/sealfs/crypt"
)

func testKey(t testing.TB) crypt.LocalKey {
	t.Helper()
	mk, err := crypt.NewMasterKey()
	if err != nil {
		t.Fatal(err)
	}
	rid, _ := crypt.NewRepoID()
	k, err := crypt.DeriveKeys(mk, rid)
	if err != nil {
		t.Fatal(err)
	}
	return k.LocalKey()
}

func create(t testing.TB, key crypt.LocalKey, name string) (*File, string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f")
	f, err := Create(p, name, key)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, p
}

func readAll(t *testing.T, f *File) []byte {
	t.Helper()
	b := make([]byte, f.Size())
	if n, err := f.ReadAt(b, 0); n != len(b) || (err != nil && err != io.EOF) {
		t.Fatalf("read %d of %d: %v", n, len(b), err)
	}
	return b
}

// TestRandomOps runs random writes, truncations, hole punches, reads and
// reopenings against a sealed file and a plain reference file; both must
// read the same at every step, and the sealed file must never show a
// byte of the plaintext on disk.
func TestRandomOps(t *testing.T) {
	key := testKey(t)
	for seed := range uint64(8) {
		rng := rand.New(rand.NewPCG(seed, 1))
		f, p := create(t, key, "staging/x")
		ref, err := os.Create(filepath.Join(t.TempDir(), "ref"))
		if err != nil {
			t.Fatal(err)
		}
		var refSize int64
		span := int64(1 + rng.IntN(6)*BlockSize/2)
		for op := range 300 {
			off := rng.Int64N(3 * span)
			n := rng.IntN(int(span)) + 1
			switch r := rng.IntN(10); {
			case r < 5:
				b := make([]byte, n)
				for i := range b {
					b[i] = byte(rng.IntN(255) + 1)
				}
				if w, err := f.WriteAt(b, off); w != n || err != nil {
					t.Fatalf("seed %d op %d: write %d at %d: %d, %v", seed, op, n, off, w, err)
				}
				ref.WriteAt(b, off)
				refSize = max(refSize, off+int64(n))
			case r < 7:
				if err := f.Truncate(off); err != nil {
					t.Fatalf("seed %d op %d: truncate %d: %v", seed, op, off, err)
				}
				ref.Truncate(off)
				refSize = off
			case r < 8:
				mode := uint32(fallocPunchHole | fallocKeepSize)
				if rng.IntN(2) == 0 {
					mode = fallocZeroRange
				}
				if err := f.Allocate(off, int64(n), mode); err != nil {
					t.Fatalf("seed %d op %d: allocate %#x %d+%d: %v", seed, op, mode, off, n, err)
				}
				if err := syscall.Fallocate(int(ref.Fd()), mode, off, int64(n)); err != nil {
					t.Fatal(err)
				}
				if fi, _ := ref.Stat(); fi.Size() > refSize {
					refSize = fi.Size()
				}
			case r < 9:
				got, want := make([]byte, n), make([]byte, n)
				gn, gerr := f.ReadAt(got, off)
				wn, werr := ref.ReadAt(want, off)
				if gn != wn || (gerr == nil) != (werr == nil) || !bytes.Equal(got[:gn], want[:wn]) {
					t.Fatalf("seed %d op %d: read %d at %d: got %d, %v; want %d, %v", seed, op, n, off, gn, gerr, wn, werr)
				}
			default:
				f.Close()
				if f, err = Open(p, "staging/x", key, true); err != nil {
					t.Fatal(err)
				}
			}
			if f.Size() != refSize {
				t.Fatalf("seed %d op %d: size %d, want %d", seed, op, f.Size(), refSize)
			}
		}
		want := make([]byte, refSize)
		ref.ReadAt(want, 0)
		if !bytes.Equal(readAll(t, f), want) {
			t.Fatalf("seed %d: content differs", seed)
		}
		ref.Close()
		f.Close()
	}
}

// TestHolesAndLargeOffsets: a write past 4 GiB makes a sparse file that
// reads zeros before it and its bytes at it, and takes little disk.
func TestHolesAndLargeOffsets(t *testing.T) {
	key := testKey(t)
	f, p := create(t, key, "staging/big")
	if _, err := f.WriteAt([]byte("head"), 10); err != nil {
		t.Fatal(err)
	}
	off := int64(5<<30 + 12345)
	if _, err := f.WriteAt([]byte("past four gibibytes"), off); err != nil {
		t.Fatal(err)
	}
	if f.Size() != off+19 {
		t.Fatalf("size %d", f.Size())
	}
	var st syscall.Stat_t
	syscall.Stat(p, &st)
	if st.Blocks*512 > 1<<20 {
		t.Fatalf("a sparse file takes %d bytes on disk", st.Blocks*512)
	}
	buf := make([]byte, 64)
	if _, err := f.ReadAt(buf, off-45); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	if !bytes.Equal(buf[:45], make([]byte, 45)) || string(buf[45:]) != "past four gibibytes" {
		t.Fatalf("read around the far write: %q", buf)
	}
	if _, err := f.ReadAt(buf, 3<<30); err != nil || !bytes.Equal(buf, make([]byte, 64)) {
		t.Fatalf("hole: %q, %v", buf, err)
	}
	if _, err := f.ReadAt(buf[:4], 10); err != nil || string(buf[:4]) != "head" {
		t.Fatalf("head: %q, %v", buf[:4], err)
	}
	// SEEK_DATA / SEEK_HOLE in plaintext offsets.
	if h, err := f.Seek(0, 4); err != nil || h <= 10 || h > BlockSize {
		t.Fatalf("SEEK_HOLE from 0 = %d, %v", h, err)
	}
	if d, err := f.Seek(1<<30, 3); err != nil || d > off || d < off-BlockSize {
		t.Fatalf("SEEK_DATA from 1 GiB = %d, %v (data at %d)", d, err, off)
	}
	// Shrinking to a size inside the first block keeps its head.
	if err := f.Truncate(12); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, f); !bytes.Equal(got, append(make([]byte, 10), "he"...)) {
		t.Fatalf("after truncate: %q", got)
	}
	if fi, _ := os.Stat(p); fi.Size() != 12+crypt.Overhead || PlainSize(fi.Size()) != 12 {
		t.Fatalf("stored length %d", fi.Size())
	}
}

// TestNoPlaintextOnDisk: what is written is nowhere in the stored bytes.
func TestNoPlaintextOnDisk(t *testing.T) {
	f, p := create(t, testKey(t), "staging/m")
	marker := bytes.Repeat([]byte("SEALFS-MARKER-"), 2000)
	f.WriteAt(marker, 0)
	f.WriteAt(marker[:100], 5000)
	b, _ := os.ReadFile(p)
	if bytes.Contains(b, []byte("SEALFS-MARKER")) {
		t.Fatal("plaintext on disk")
	}
}

// TestTamper: a flipped byte, blocks swapped within a file, a block from
// another file, the file under another name, a cut inside a block: each
// read of the block fails with ErrDamaged (and crypt.ErrAuth), returning
// no bytes; the other blocks still read.
func TestTamper(t *testing.T) {
	key := testKey(t)
	content := make([]byte, 4*BlockSize+100)
	for i := range content {
		content[i] = byte(i*7 + 1)
	}
	setup := func(t *testing.T, name string) string {
		f, p := create(t, key, name)
		if _, err := f.WriteAt(content, 0); err != nil {
			t.Fatal(err)
		}
		f.Close()
		return p
	}
	cases := []struct {
		name  string
		edit  func(t *testing.T, stored []byte, p string) []byte
		block int64 // the block that must fail
		open  string
	}{
		{"flipped-byte", func(_ *testing.T, b []byte, _ string) []byte { b[PageSize+100] ^= 1; return b }, 1, "staging/a"},
		{"flipped-nonce", func(_ *testing.T, b []byte, _ string) []byte { b[2*PageSize] ^= 0x80; return b }, 2, "staging/a"},
		{"swapped-blocks", func(_ *testing.T, b []byte, _ string) []byte {
			tmp := append([]byte(nil), b[PageSize:2*PageSize]...)
			copy(b[PageSize:], b[2*PageSize:3*PageSize])
			copy(b[2*PageSize:], tmp)
			return b
		}, 1, "staging/a"},
		{"block-from-another-file", func(t *testing.T, b []byte, _ string) []byte {
			other, _ := os.ReadFile(setup(t, "staging/b"))
			copy(b[3*PageSize:4*PageSize], other[3*PageSize:])
			return b
		}, 3, "staging/a"},
		{"opened-under-another-name", func(_ *testing.T, b []byte, _ string) []byte { return b }, 0, "staging/c"},
		{"cut-inside-last-block", func(_ *testing.T, b []byte, _ string) []byte { return b[:len(b)-40] }, 4, "staging/a"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := setup(t, "staging/a")
			b, _ := os.ReadFile(p)
			os.WriteFile(p, c.edit(t, b, p), 0o600)
			f, err := Open(p, c.open, key, false)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			buf := make([]byte, 64)
			n, err := f.ReadAt(buf, c.block*BlockSize+10)
			if !errors.Is(err, ErrDamaged) || !errors.Is(err, crypt.ErrAuth) || n != 0 {
				t.Fatalf("read of the tampered block: %d bytes, %v", n, err)
			}
			if !bytes.Equal(buf, make([]byte, 64)) {
				t.Fatal("bytes released from a damaged block")
			}
			whole := make([]byte, len(content))
			if n, err := f.ReadAt(whole, 0); n != 0 || !errors.Is(err, ErrDamaged) {
				t.Fatalf("whole read: %d bytes, %v", n, err)
			}
			if c.open == "staging/a" && c.block != 0 {
				if n, err := f.ReadAt(buf, 10); n != len(buf) || err != nil || !bytes.Equal(buf, content[10:74]) {
					t.Fatalf("an intact block: %d, %v", n, err)
				}
			}
		})
	}
}

// TestTornFragment: a piece at the end too short to be a block (a torn
// write) is no data, and is cut off when the file is opened for writing.
func TestTornFragment(t *testing.T) {
	key := testKey(t)
	f, p := create(t, key, "staging/t")
	data := bytes.Repeat([]byte{7}, 2*BlockSize)
	f.WriteAt(data, 0)
	f.Close()
	fd, _ := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	fd.Write(make([]byte, 20))
	fd.Close()
	if f, _ = Open(p, "staging/t", key, false); f.Size() != 2*BlockSize {
		t.Fatalf("size with a fragment: %d", f.Size())
	}
	f.Close()
	if f, _ = Open(p, "staging/t", key, true); !bytes.Equal(readAll(t, f), data) {
		t.Fatal("content changed")
	}
	f.Close()
	if fi, _ := os.Stat(p); fi.Size() != 2*PageSize {
		t.Fatalf("fragment left: %d bytes", fi.Size())
	}
}

// TestConcurrentWrites: writers into different bytes of the same blocks,
// with readers beside them, lose no write (each block is read, changed
// and sealed again under the lock).
func TestConcurrentWrites(t *testing.T) {
	f, _ := create(t, testKey(t), "staging/c")
	const writers, per = 8, 200
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := range per {
				if _, err := f.WriteAt([]byte{byte(w + 1)}, int64(i*writers+w)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			buf := make([]byte, 300)
			for range per {
				if _, err := f.ReadAt(buf, 0); err != nil && err != io.EOF {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	got := readAll(t, f)
	for i, b := range got {
		if int(b) != i%writers+1 {
			t.Fatalf("byte %d = %d, want %d", i, b, i%writers+1)
		}
	}
}

// TestAllocate: fallocate mode 0 grows the file with zeros and reserves
// space; KEEP_SIZE leaves the size.
func TestAllocate(t *testing.T) {
	f, p := create(t, testKey(t), "staging/a")
	f.WriteAt([]byte("abc"), 0)
	if err := f.Allocate(1, 3*BlockSize, 0); err != nil {
		t.Fatal(err)
	}
	if f.Size() != 3*BlockSize+1 {
		t.Fatalf("size %d", f.Size())
	}
	if got := readAll(t, f); string(got[:3]) != "abc" || !bytes.Equal(got[3:], make([]byte, len(got)-3)) {
		t.Fatal("allocated range does not read as zeros")
	}
	if err := f.Allocate(0, 10*BlockSize, fallocKeepSize); err != nil || f.Size() != 3*BlockSize+1 {
		t.Fatalf("keep size: %d, %v", f.Size(), err)
	}
	if fi, _ := os.Stat(p); PlainSize(fi.Size()) != f.Size() {
		t.Fatalf("stored length %d", fi.Size())
	}
	if err := f.Allocate(0, 1, 0x08); !errors.Is(err, syscall.EOPNOTSUPP) {
		t.Fatalf("collapse range: %v", err)
	}
}

// TestSeekHoleMap: the data regions Seek reports for a sparse file written
// in 4 KiB pages are those pages, exactly, though blocks are not aligned to
// them: a file copied in keeps its holes where they were.
func TestSeekHoleMap(t *testing.T) {
	f, _ := create(t, testKey(t), "staging/s")
	page := bytes.Repeat([]byte{0xa5}, 4096)
	want := [][2]int64{{0, 4096}, {40960, 49152}, {300 << 20, 300<<20 + 4096}, {1<<30 - 4096, 1 << 30}}
	for _, w := range want {
		for off := w[0]; off < w[1]; off += 4096 {
			if _, err := f.WriteAt(page, off); err != nil {
				t.Fatal(err)
			}
		}
	}
	f.Truncate(1<<30 + 5000) // a hole at the end too
	var got [][2]int64
	for off := int64(0); off < f.Size(); {
		d, err := f.Seek(off, 3)
		if errors.Is(err, syscall.ENXIO) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		h, err := f.Seek(d, 4)
		if err != nil || h <= d {
			t.Fatalf("SEEK_HOLE from data at %d = %d, %v: no progress", d, h, err)
		}
		got = append(got, [2]int64{d, h})
		off = h
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("data regions %v, want %v", got, want)
	}
}

// TestSeekHoleInAllocatedRange: data written into an allocated range ends
// where the write ended, as on ext4 (xfstests generic/436, test 16): the
// disk may report the allocated blocks after it as data (it does for
// dirty pages of unwritten extents, in whole folios), but they read as
// zeros, so SEEK_HOLE skips every zero block before the hole it finds.
func TestSeekHoleInAllocatedRange(t *testing.T) {
	f, _ := create(t, testKey(t), "staging/fa")
	const size = 4 << 20
	if err := f.Allocate(0, size, 0); err != nil {
		t.Fatal(err)
	}
	page := bytes.Repeat([]byte{0x5a}, 4096)
	for _, off := range []int64{0, size / 2} {
		if _, err := f.WriteAt(page, off); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct{ off, want int64 }{{0, 4096}, {1, 4096}, {size / 2, size/2 + 4096}} {
		if h, err := f.Seek(c.off, 4); err != nil || h != c.want {
			t.Errorf("SEEK_HOLE from %d = %d, %v; want %d", c.off, h, err, c.want)
		}
	}
	if d, err := f.Seek(4096, 3); err != nil || d != size/2 {
		t.Errorf("SEEK_DATA from 4096 = %d, %v; want %d", d, err, size/2)
	}
}
