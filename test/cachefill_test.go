package test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// TestMountCacheFillsSeeWrites: small reads at random of a stored file
// hand the rest of the segments they open to the kernel's page cache,
// while readers go on reading, a writer opens the file, writes ranges
// and reads each back at once through another descriptor (the page cache
// is the inode's): it always sees its own bytes, never a fill's older
// ones; a file truncated while readers read it keeps its new size, and
// reads past it find nothing. Every read the writer does not touch
// returns the right bytes, and a fresh mount reads every file as the
// writer left it.
func TestMountCacheFillsSeeWrites(t *testing.T) {
	needRoot(t)
	c := initRepo(t)
	mnt := mountpoint(t)
	const files, size = 4, 6 << 20
	model := map[string][]byte{}
	expect(t, c.mount(t, mnt), 0, "")
	for i := range files {
		name := fmt.Sprintf("f%d", i)
		model[name] = randomBytes(uint64(80+i), size)
		if err := os.WriteFile(filepath.Join(mnt, name), model[name], 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c.umount(t, mnt)
	expect(t, c.mount(t, mnt, "--commit-delay", "100ms"), 0, "")
	for i := range files {
		name := fmt.Sprintf("f%d", i)
		path := filepath.Join(mnt, name)
		rng := rand.New(rand.NewPCG(uint64(i), 3))
		// The writer's ranges, chosen first: readers check every read
		// that touches none of them.
		type rng2 struct{ off, n int64 }
		var writes []rng2
		for range 12 {
			n := int64(4096 << rng.IntN(5))
			writes = append(writes, rng2{rng.Int64N(size-n) &^ 4095, n})
		}
		touched := func(off, n int64) bool {
			for _, w := range writes {
				if off < w.off+w.n && w.off < off+n {
					return true
				}
			}
			return false
		}
		old := bytes.Clone(model[name])
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var readErr error
		var mu sync.Mutex
		fail := func(err error) {
			mu.Lock()
			readErr = errors.Join(readErr, err)
			mu.Unlock()
		}
		var warm sync.WaitGroup // each reader's first 300 reads, before the writer starts
		for r := range 3 {
			wg.Add(1)
			warm.Add(1)
			go func() {
				defer wg.Done()
				warmed := false
				defer func() {
					if !warmed {
						warm.Done()
					}
				}()
				fd, err := unix.Open(path, unix.O_RDONLY, 0)
				if err != nil {
					fail(err)
					return
				}
				defer unix.Close(fd)
				rr := rand.New(rand.NewPCG(uint64(i), uint64(r)))
				buf := make([]byte, 4096)
				for k := 0; ; k++ {
					if k == 300 {
						warm.Done()
						warmed = true
					}
					select {
					case <-stop:
						return
					default:
					}
					off := rr.Int64N(size) &^ 4095
					n, err := preadRetry(fd, buf, off)
					switch {
					case i == files-1:
						// The truncated file: any length, checked below.
					case err != nil || n != len(buf):
						fail(fmt.Errorf("%s: read at %d: %d bytes, %v", name, off, n, err))
						return
					case !touched(off, 4096) && !bytes.Equal(buf, old[off:off+4096]):
						fail(fmt.Errorf("%s: read at %d: other bytes", name, off))
						return
					}
				}
			}()
		}
		warm.Wait()
		check, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		if i == files-1 {
			// Truncated while read: the size stays, nothing lies past it.
			if err := os.Truncate(path, 1<<20); err != nil {
				t.Fatal(err)
			}
			model[name] = model[name][:1<<20]
			for range 50 {
				off := 1<<20 + rng.Int64N(size-1<<20)
				if n, err := check.ReadAt(make([]byte, 4096), off); n != 0 {
					t.Fatalf("%s: a read at %d past the truncation returned %d bytes (%v)", name, off, n, err)
				}
				if fi, err := check.Stat(); err != nil || fi.Size() != 1<<20 {
					t.Fatalf("%s: size %v after the truncation (%v)", name, fi.Size(), err)
				}
			}
		} else {
			w, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, wr := range writes {
				b := randomBytes(rng.Uint64(), int(wr.n))
				if _, err := w.WriteAt(b, wr.off); err != nil {
					t.Fatal(err)
				}
				copy(model[name][wr.off:], b)
				got := make([]byte, wr.n)
				if _, err := check.ReadAt(got, wr.off); err != nil || !bytes.Equal(got, b) {
					t.Fatalf("%s: the range %d+%d just written reads back other bytes (%v)", name, wr.off, wr.n, err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
		}
		close(stop)
		wg.Wait()
		check.Close()
		if readErr != nil {
			t.Fatal(readErr)
		}
	}
	c.umount(t, mnt)
	expect(t, (cliRepo{remote: c.remote, cache: t.TempDir(), codeFile: c.codeFile}).mount(t, mnt, "--read-only"), 0, "")
	for name, want := range model {
		got, err := os.ReadFile(filepath.Join(mnt, name))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s after a fresh mount: %d bytes, %v; want the writer's %d", name, len(got), err, len(want))
		}
	}
	c.umount(t, mnt)
}
