package test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// parallelModel is what writers closed through a mount: name -> content.
type parallelModel struct {
	mu    sync.Mutex
	files map[string][]byte
	names []string // files never written again, for the readers
}

func (m *parallelModel) closed(name string, data []byte, final bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.files[name] = data
	if final {
		m.names = append(m.names, name)
	}
}

// pick returns a file no writer writes again, and its content.
func (m *parallelModel) pick(rng *rand.Rand) (string, []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.names) == 0 {
		return "", nil
	}
	n := m.names[rng.IntN(len(m.names))]
	return n, m.files[n]
}

func randomBytes2(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := rng.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// TestParallelWritersShaped: writers through one mount write many files at
// once, small and big (some with the same content at once, some with one
// block repeated, some with runs of zeros, some changed in place after
// they were closed), over a slow cloud-shaped link with commits every few
// hundred milliseconds, while readers read back what was closed. Then the
// mount stops, and a client on a fresh cache reads every file byte for
// byte; check --read-data is clean.
func TestParallelWritersShaped(t *testing.T) {
	needRoot(t)
	s3 := newFaultyS3(t)
	c := s3.initRepo(t, "bucket")
	mnt := mountpoint(t)
	t.Cleanup(func() { stopMount(t, mnt) })
	expect(t, c.mount(t, mnt, "--commit-delay", "50ms", "--transfers", "4",
		"--remote-shape", "latency=20ms,up=40Mbit,down=100Mbit"), 0, "")
	m := &parallelModel{files: map[string][]byte{}}
	shared := randomBytes2(rand.New(rand.NewPCG(99, 1)), 3<<20)
	var writers, readers sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 6 {
		writers.Add(1)
		go func() {
			defer writers.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 2))
			dir := filepath.Join(mnt, fmt.Sprintf("w%d", w))
			if err := os.Mkdir(dir, 0o755); err != nil {
				errs <- err
				return
			}
			for i := range 14 {
				name := filepath.Join(fmt.Sprintf("w%d", w), fmt.Sprintf("f%d", i))
				var data []byte
				switch i % 7 {
				case 0: // big
					data = randomBytes2(rng, 2<<20+rng.IntN(2<<20))
				case 1: // the same content in every writer at once
					data = bytes.Clone(shared)
				case 2: // one block four times
					blk := randomBytes2(rng, 700<<10)
					data = bytes.Repeat(blk, 4)
				case 3: // runs of zeros
					data = randomBytes2(rng, 3<<20)
					clear(data[512<<10 : 2<<20])
				default: // small
					data = randomBytes2(rng, rng.IntN(64<<10))
				}
				if err := writeSynced(filepath.Join(mnt, name), data); err != nil {
					errs <- err
					return
				}
				changed := i%5 == 4 && len(data) > 0
				m.closed(name, data, !changed)
				if changed {
					// Changed in place: a range written over.
					patch := randomBytes2(rng, min(len(data), 10<<10))
					off := rng.IntN(len(data) - len(patch) + 1)
					f, err := os.OpenFile(filepath.Join(mnt, name), os.O_WRONLY, 0)
					if err == nil {
						_, err = f.WriteAt(patch, int64(off))
						if cerr := f.Close(); err == nil {
							err = cerr
						}
					}
					if err != nil {
						errs <- err
						return
					}
					next := bytes.Clone(data)
					copy(next[off:], patch)
					m.closed(name, next, true)
				}
			}
		}()
	}
	stop := make(chan struct{})
	var reads, wrongReads int
	var rmu sync.Mutex
	for r := range 3 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			rng := rand.New(rand.NewPCG(uint64(r), 3))
			for {
				select {
				case <-stop:
					return
				default:
				}
				name, want := m.pick(rng)
				if name == "" {
					time.Sleep(5 * time.Millisecond)
					continue
				}
				got, err := os.ReadFile(filepath.Join(mnt, name))
				rmu.Lock()
				reads++
				if err != nil || !bytes.Equal(got, want) {
					wrongReads++
					t.Errorf("reading %s while writing: %v (%d bytes, want %d)", name, err, len(got), len(want))
				}
				rmu.Unlock()
			}
		}()
	}
	writers.Wait()
	close(stop)
	readers.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if r := c.umount(t, mnt); !strings.Contains(r.stdout, "everything is committed") {
		log, _ := os.ReadFile(filepath.Join(c.cache, "test-mount.log"))
		t.Fatalf("umount said %q %q; log:\n%s", r.stdout, r.stderr, tail(log, 3000))
	}
	n, wrong := verifyFresh(t, c, mnt, fileSet(m.files), nil)
	t.Logf("%d reads while writing (%d wrong); %d files verified on a fresh cache, %d wrong bytes", reads, wrongReads, n, wrong)
	if n != len(m.files) {
		t.Errorf("%d files read back of %d", n, len(m.files))
	}
	if r := c.run(t, "check", "--read-data", c.remote); r.code != 0 || !strings.Contains(r.stdout, "no problems found") {
		t.Errorf("check --read-data: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}
