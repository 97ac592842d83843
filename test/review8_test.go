package test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestMountSmallFilesKilledMidStore (session 8 review): small files are
// stored in the background once closed, and a commit deletes the staging
// files it settled after letting go of the tree's lock. Four writers make,
// append to, rewrite in place, truncate, rename over each other, link and
// delete small files through the mount while commits land every 30 ms;
// the daemon is killed (SIGKILL) the moment they stop, with the
// small-file worker and a commit likely under way. A new mount must show
// every file as the writers left it (from the journal and the staging
// files), and so must a mount after that one's unmount (from the remote
// alone, on a fresh cache).
func TestMountSmallFilesKilledMidStore(t *testing.T) {
	needRoot(t)
	c := initRepo(t)
	mnt := mountpoint(t)
	expect(t, c.mount(t, mnt, "--commit-delay", "30ms"), 0, "")
	defer stopMount(t, mnt)
	const writers, files, steps = 4, 6, 150
	want := make([]map[string][]byte, writers)
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		want[w] = map[string][]byte{}
		wg.Go(func() {
			if err := smallFilesWriter(mnt, w, files, steps, want[w]); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	pid := mountPID(mnt)
	if pid == 0 {
		t.Fatal("no daemon pid")
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for processAliveTest(pid) {
		time.Sleep(5 * time.Millisecond)
	}
	if out, err := exec.Command("fusermount3", "-uz", mnt).CombinedOutput(); err != nil {
		t.Fatalf("fusermount3 -uz: %v %s", err, out)
	}
	all := map[string][]byte{}
	for _, m := range want {
		for n, b := range m {
			all[n] = b
		}
	}
	check := func(when string) {
		t.Helper()
		entries, err := os.ReadDir(mnt)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != len(all) {
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			t.Errorf("%s: %d files %v, want %d", when, len(entries), names, len(all))
		}
		for n, b := range all {
			got, err := os.ReadFile(filepath.Join(mnt, n))
			if err != nil {
				t.Errorf("%s: %s: %v", when, n, err)
				continue
			}
			if !bytes.Equal(got, b) {
				t.Errorf("%s: %s reads %d bytes, not the %d left", when, n, len(got), len(b))
			}
		}
	}
	expect(t, c.mount(t, mnt), 0, "")
	check("after the kill")
	c.umount(t, mnt)
	c.cache = t.TempDir()
	expect(t, c.mount(t, mnt, "--read-only"), 0, "")
	check("from the remote")
	c.umount(t, mnt)
}

// smallFilesWriter does steps random operations on files w<w>-<k> (k <
// files, and links l<w>-<k> to them) in mnt, and leaves in want what
// each name holds.
func smallFilesWriter(mnt string, w, files, steps int, want map[string][]byte) error {
	rng := rand.New(rand.NewPCG(uint64(w), 8))
	name := func() string { return fmt.Sprintf("w%d-%d", w, rng.IntN(files)) }
	path := func(n string) string { return filepath.Join(mnt, n) }
	data := func(n int) []byte { return randomBytes(rng.Uint64(), n) }
	// links[n] names the other names of n's file (a hard link).
	links := map[string]string{}
	set := func(n string, b []byte) {
		want[n] = b
		if o, ok := links[n]; ok {
			want[o] = b
		}
	}
	drop := func(n string) {
		if o, ok := links[n]; ok {
			delete(links, o)
			delete(links, n)
		}
		delete(want, n)
	}
	for range steps {
		n := name()
		cur, ok := want[n]
		switch op := rng.IntN(8); {
		case !ok || op == 0:
			b := data(1 + rng.IntN(30000))
			if err := os.WriteFile(path(n), b, 0o644); err != nil {
				return err
			}
			set(n, b)
		case op == 1:
			b := data(1 + rng.IntN(5000))
			f, err := os.OpenFile(path(n), os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				return err
			}
			_, err = f.Write(b)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
			set(n, append(bytes.Clone(cur), b...))
		case op == 2 && len(cur) > 0:
			off := rng.IntN(len(cur))
			b := data(1 + rng.IntN(len(cur)-off))
			f, err := os.OpenFile(path(n), os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			_, err = f.WriteAt(b, int64(off))
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
			nb := bytes.Clone(cur)
			copy(nb[off:], b)
			set(n, nb)
		case op == 3:
			size := rng.IntN(len(cur) + 3000)
			if err := os.Truncate(path(n), int64(size)); err != nil {
				return err
			}
			nb := make([]byte, size)
			copy(nb, cur)
			set(n, nb)
		case op == 4:
			to := name()
			if to == n || links[n] == to {
				continue
			}
			if err := os.Rename(path(n), path(to)); err != nil {
				return err
			}
			drop(to)
			if o, ok := links[n]; ok {
				delete(links, n)
				links[to], links[o] = o, to
			}
			want[to] = cur
			delete(want, n)
		case op == 5:
			if err := os.Remove(path(n)); err != nil {
				return err
			}
			if o, ok := links[n]; ok {
				delete(links, o)
				delete(links, n)
			}
			delete(want, n)
		case op == 6:
			if _, ok := links[n]; ok {
				continue
			}
			to := fmt.Sprintf("l%d-%d", w, rng.IntN(files))
			if _, ok := want[to]; ok {
				continue
			}
			if err := os.Link(path(n), path(to)); err != nil {
				return err
			}
			links[n], links[to] = to, n
			want[to] = cur
		default:
			time.Sleep(time.Millisecond)
		}
	}
	return nil
}

// TestMountWriteBehindKilled (session 8 review): appends past a new
// file's first MiB are written behind, queued while the writer goes on.
// A file closed (or fsynced) must be whole after the daemon is killed
// right after: close and fsync wait for the queue. A file still being
// written when the daemon dies comes back as a prefix of what was written
// holding at least what was fsynced: never zeros where a write was, never
// more than was written.
func TestMountWriteBehindKilled(t *testing.T) {
	needRoot(t)
	c := initRepo(t)
	mnt := mountpoint(t)
	expect(t, c.mount(t, mnt, "--commit-delay", "1h"), 0, "")
	defer stopMount(t, mnt)
	write := func(f *os.File, b []byte) {
		t.Helper()
		for off := 0; off < len(b); off += 128 << 10 {
			if _, err := f.Write(b[off:min(off+128<<10, len(b))]); err != nil {
				t.Fatal(err)
			}
		}
	}
	closed := map[string][]byte{}
	for i := range 4 {
		n := fmt.Sprintf("closed%d", i)
		b := randomBytes(uint64(100+i), 3<<20+i*77777)
		f, err := os.Create(filepath.Join(mnt, n))
		if err != nil {
			t.Fatal(err)
		}
		write(f, b)
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		closed[n] = b
	}
	open := randomBytes(200, 8<<20)
	f, err := os.Create(filepath.Join(mnt, "open"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const synced = 5 << 20
	write(f, open[:synced])
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	write(f, open[synced:])
	pid := mountPID(mnt)
	if pid == 0 {
		t.Fatal("no daemon pid")
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for processAliveTest(pid) {
		time.Sleep(5 * time.Millisecond)
	}
	f.Close()
	if out, err := exec.Command("fusermount3", "-uz", mnt).CombinedOutput(); err != nil {
		t.Fatalf("fusermount3 -uz: %v %s", err, out)
	}
	expect(t, c.mount(t, mnt), 0, "")
	for n, b := range closed {
		got, err := os.ReadFile(filepath.Join(mnt, n))
		if err != nil || !bytes.Equal(got, b) {
			t.Errorf("%s (closed before the kill): %d bytes, want the %d written (%v)", n, len(got), len(b), err)
		}
	}
	got, err := os.ReadFile(filepath.Join(mnt, "open"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) < synced || len(got) > len(open) || !bytes.Equal(got, open[:len(got)]) {
		t.Errorf("the file being written: %d bytes back, not a prefix of the %d written holding the %d fsynced", len(got), len(open), synced)
	}
	c.umount(t, mnt)
}

// TestMountWriteBehindFullDiskContent (session 8 review): a file written
// sequentially (its appends written behind) into a cache disk that fills
// up: the write that meets the full disk fails, and once the disk has
// room and the mount is gone, the file on the remote is a prefix of what
// was written holding every byte whose write returned 0, with no zeros
// for them.
func TestMountWriteBehindFullDiskContent(t *testing.T) {
	for _, leave := range []int{0, 37, 300} {
		t.Run(fmt.Sprintf("%d-pages-free", leave), func(t *testing.T) { writeBehindFullDisk(t, leave) })
	}
}

func writeBehindFullDisk(t *testing.T, leave int) {
	needRoot(t)
	c := initRepo(t)
	disk := smallDisk(t, "24m")
	c.cache = disk
	mnt := mountpoint(t)
	expect(t, mountFull(t, c, mnt), 0, "")
	defer stopMount(t, mnt)
	data := fileContent("big", 12<<20)
	f, err := os.Create(filepath.Join(mnt, "big"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data[:2<<20]); err != nil {
		t.Fatal(err)
	}
	fl := fill(t, disk, leave)
	ok := 2 << 20
	var werr error
	for ok < len(data) {
		if _, werr = f.Write(data[ok : ok+128<<10]); werr != nil {
			break
		}
		ok += 128 << 10
	}
	if werr == nil {
		t.Fatal("12 MiB written into a full cache disk without an error")
	}
	cerr := f.Close()
	t.Logf("write at %d: %v; close: %v", ok, werr, cerr)
	fl.free()
	umountCommitted(t, c, mnt)
	c.cache = t.TempDir()
	expect(t, c.mount(t, mnt, "--read-only"), 0, "")
	got, err := os.ReadFile(filepath.Join(mnt, "big"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) < ok || len(got) > len(data) || !bytes.Equal(got, data[:len(got)]) {
		i := 0
		for i < len(got) && i < len(data) && got[i] == data[i] {
			i++
		}
		t.Errorf("big on the remote: %d bytes, differing from byte %d; want a prefix of the written holding the %d whose writes returned 0", len(got), i, ok)
	}
	c.umount(t, mnt)
}
