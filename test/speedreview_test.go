package test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestMountFillsAcrossReplacements: readers open a file again and again
// and read 4 KiB at random (each read of stored content hands the rest of
// its segments to the kernel's page cache on a goroutine), while the file
// is replaced under them in every way: rewritten in place, a file of
// another size renamed over it, unlinked and made again, truncated and
// extended, with commits landing every 100 ms (a committed file leaves
// the staging area and is read from the store again). A read never
// returns bytes of a version older than the newest when its open began,
// nor bytes past that version's size; the size a descriptor sees never
// grows past its version's (a fill past the end would extend it). After
// each change a fresh open reads the new version whole, and a fresh mount
// reads the last one.
func TestMountFillsAcrossReplacements(t *testing.T) {
	needRoot(t)
	c := initRepo(t)
	mnt := mountpoint(t)
	expect(t, c.mount(t, mnt, "--commit-delay", "100ms"), 0, "")
	defer c.umount(t, mnt)
	path := filepath.Join(mnt, "f")
	var mu sync.Mutex
	var versions [][]byte
	var published atomic.Int64
	publish := func(b []byte) {
		mu.Lock()
		versions = append(versions, b)
		mu.Unlock()
		published.Store(int64(len(versions) - 1))
	}
	version := func(seed int) []byte { return randomBytes(uint64(1000+seed), 1536<<10+seed*4099%(1<<20)) }
	first := version(0)
	if err := os.WriteFile(path, first, 0o644); err != nil {
		t.Fatal(err)
	}
	publish(first)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var stopOnce sync.Once
	stopReaders := func() { stopOnce.Do(func() { close(stop); wg.Wait() }) }
	defer stopReaders() // before the unmount: a failure stops them too
	var failed error
	var failMu sync.Mutex
	fail := func(err error) {
		failMu.Lock()
		failed = errors.Join(failed, err)
		failMu.Unlock()
	}
	// seq is odd while the file is being changed (a seqlock): a reader
	// whose open and reads all fell within one even seq checks them
	// against that version exactly.
	var seq atomic.Int64
	// pause stops the readers while a commit stores the new version: a
	// file open at a commit stays staged, and only stored content fills.
	var pause sync.RWMutex
	for r := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rr := rand.New(rand.NewPCG(uint64(r), 9))
			buf := make([]byte, 4096)
			for {
				select {
				case <-stop:
					return
				default:
				}
				pause.RLock()
				s0 := seq.Load()
				if s0%2 == 1 {
					pause.RUnlock()
					continue
				}
				mu.Lock()
				want := versions[published.Load()]
				mu.Unlock()
				fd, err := unix.Open(path, unix.O_RDONLY, 0)
				if err != nil {
					pause.RUnlock()
					continue // between an unlink and the new file
				}
				type read struct {
					off  int64
					n    int
					err  error
					data []byte
				}
				var reads []read
				var st unix.Stat_t
				statErr := unix.Fstat(fd, &st)
				for range 20 {
					off := (600<<10 + rr.Int64N(2<<20)) &^ 4095 // past the reader's sequential slack
					n, err := preadRetry(fd, buf, off)
					reads = append(reads, read{off, n, err, bytes.Clone(buf[:max(n, 0)])})
				}
				var st2 unix.Stat_t
				stat2Err := unix.Fstat(fd, &st2)
				unix.Close(fd)
				pause.RUnlock()
				if seq.Load() != s0 {
					continue // changed meanwhile: any mix is allowed
				}
				size := int64(len(want))
				if statErr != nil || stat2Err != nil || st.Size != size || st2.Size != size {
					fail(fmt.Errorf("seq %d: sizes %d then %d (%v, %v), want %d", s0, st.Size, st2.Size, statErr, stat2Err, size))
					continue
				}
				for _, rd := range reads {
					end := min(rd.off+4096, size)
					exp := []byte{}
					if rd.off < size {
						exp = want[rd.off:end]
					}
					if rd.err != nil || !bytes.Equal(rd.data, exp) {
						fail(fmt.Errorf("seq %d: read at %d of a %d-byte file: %d bytes (%v), other bytes than the version's %d", s0, rd.off, size, rd.n, rd.err, len(exp)))
						break
					}
				}
			}
		}()
	}
	rng := rand.New(rand.NewPCG(5, 5))
	for i := 1; i <= 24; i++ {
		next := version(i)
		seq.Add(1)
		switch i % 4 {
		case 0: // in place, same size as now
			mu.Lock()
			next = randomBytes(uint64(5000+i), len(versions[len(versions)-1]))
			mu.Unlock()
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt(next, 0); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
		case 1: // another file renamed over it
			tmp := filepath.Join(mnt, fmt.Sprintf("tmp%d", i))
			if err := os.WriteFile(tmp, next, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, path); err != nil {
				t.Fatal(err)
			}
		case 2: // unlinked and made again
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, next, 0o644); err != nil {
				t.Fatal(err)
			}
		case 3: // truncated shorter, then written
			if err := os.Truncate(path, int64(rng.IntN(10000))); err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Write(next); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
		}
		publish(next)
		seq.Add(1)
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, next) {
			t.Fatalf("change %d: a fresh open reads %d bytes (%v), want the new %d", i, len(got), err, len(next))
		}
		// Let a commit store it, so that reads go to the store and fill.
		pause.Lock()
		time.Sleep(700 * time.Millisecond)
		pause.Unlock()
		for range 5 {
			fd, err := unix.Open(path, unix.O_RDONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			b := make([]byte, 4096)
			off := rng.Int64N(int64(len(next))) &^ 4095
			n, _ := preadRetry(fd, b, off)
			unix.Close(fd)
			if !bytes.Equal(b[:n], next[off:min(off+4096, int64(len(next)))]) {
				t.Fatalf("change %d: a read at %d returns other bytes", i, off)
			}
		}
	}
	stopReaders()
	if failed != nil {
		t.Fatal(failed)
	}
	last := versions[len(versions)-1]
	c.umount(t, mnt)
	expect(t, (cliRepo{remote: c.remote, cache: t.TempDir(), codeFile: c.codeFile}).mount(t, mnt, "--read-only"), 0, "")
	if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, last) {
		t.Fatalf("a fresh mount reads %d bytes (%v), want the last %d", len(got), err, len(last))
	}
}
