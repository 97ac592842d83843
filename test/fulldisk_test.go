package test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The full disk matrix (issue 8): the cache directory lives on a small
// tmpfs that is filled at each stage of a mount's life, then freed. Every
// file whose writes and close returned 0 must reach the remote (checked on
// a fresh cache), the cache must always mount again, and every error a
// writer sees must be ENOSPC, only while the disk is full.

// smallDisk mounts a size-limited tmpfs and returns its path.
func smallDisk(t *testing.T, size string) string {
	t.Helper()
	needRoot(t)
	dir := filepath.Join(t.TempDir(), "small-cache")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot make a small disk with tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

// filler takes a disk's free space, all but a few pages of it.
type filler struct {
	t    *testing.T
	path string
}

const page = 4096

// fill writes the filler until the disk is full, then gives back
// leavePages pages.
func fill(t *testing.T, disk string, leavePages int) *filler {
	t.Helper()
	f := &filler{t: t, path: filepath.Join(disk, "filler")}
	fh, err := os.OpenFile(f.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	for _, chunk := range []int{1 << 20, page} {
		buf := make([]byte, chunk)
		for {
			if _, err := fh.Write(buf); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatal(err)
				}
				break
			}
		}
	}
	fi, err := fh.Stat()
	if err != nil {
		t.Fatal(err)
	}
	size := fi.Size() / page * page
	if err := fh.Truncate(max(0, size-int64(leavePages*page))); err != nil {
		t.Fatal(err)
	}
	return f
}

// spendReserve removes the space the daemon keeps in reserve for its
// journal (work/reserve), as if a full disk had taken it already: the
// journal then meets the full disk itself.
func spendReserve(t *testing.T, disk string) {
	t.Helper()
	found, _ := filepath.Glob(filepath.Join(disk, "*", "work", "reserve"))
	for _, p := range found { // none: spent already
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
}

func (f *filler) free() {
	if err := os.Remove(f.path); err != nil {
		f.t.Fatal(err)
	}
}

// diskFile is a file written through the mount, with what the writer saw.
type diskFile struct {
	name string
	data []byte
	ok   bool // every write and the close returned 0
}

func fileContent(name string, size int) []byte {
	rng := rand.New(rand.NewPCG(uint64(len(name)), uint64(size)))
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(rng.Uint32()) ^ name[i%len(name)]
	}
	return b
}

// fullDisk tracks the files of a matrix run and the errors writers saw.
type fullDisk struct {
	t       *testing.T
	files   []*diskFile
	enospc  int // writes that hit a full disk
	stages  int
	refused int // commits and mounts that failed on a full disk
}

// write writes a file through the mount in 256 KiB writes. When full is
// false, the disk has room, and any error fails the test; when it is true,
// an error must be ENOSPC.
func (d *fullDisk) write(mnt, name string, size int, full bool) *diskFile {
	d.t.Helper()
	df := &diskFile{name: name, data: fileContent(name, size)}
	d.files = append(d.files, df)
	err := func() error {
		f, err := os.Create(filepath.Join(mnt, name))
		if err != nil {
			return err
		}
		for off := 0; off < len(df.data); off += 256 << 10 {
			if _, err := f.Write(df.data[off:min(len(df.data), off+256<<10)]); err != nil {
				f.Close()
				return err
			}
		}
		return f.Close()
	}()
	d.check(name, err, full)
	df.ok = err == nil
	return df
}

// check judges an error a writer saw.
func (d *fullDisk) check(what string, err error, full bool) {
	d.t.Helper()
	switch {
	case err == nil:
	case !full:
		d.t.Fatalf("%s failed with free space on the cache disk: %v", what, err)
	case !errors.Is(err, syscall.ENOSPC):
		d.t.Fatalf("%s on a full cache disk failed with %v, want ENOSPC", what, err)
	default:
		d.enospc++
	}
}

// fsync opens a file of the mount and fsyncs it: with --sync remote, a
// commit.
func fsyncMount(mnt, name string) error {
	f, err := os.Open(filepath.Join(mnt, name))
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// verify mounts the remote on a fresh cache and compares every file whose
// writes and close returned 0. It returns the files verified and the wrong
// bytes (a missing file counts all its bytes).
func (d *fullDisk) verify(c cliRepo, mnt string) (files, wrong int) {
	d.t.Helper()
	fresh := cliRepo{remote: c.remote, cache: d.t.TempDir(), codeFile: c.codeFile}
	expect(d.t, fresh.mount(d.t, mnt, "--read-only"), 0, "")
	defer fresh.umount(d.t, mnt)
	for _, f := range d.files {
		if !f.ok {
			continue
		}
		got, err := os.ReadFile(filepath.Join(mnt, f.name))
		w := 0
		if err != nil {
			w = len(f.data)
		} else {
			w = max(len(got), len(f.data)) - min(len(got), len(f.data))
			for i := range min(len(got), len(f.data)) {
				if got[i] != f.data[i] {
					w++
				}
			}
		}
		if w > 0 {
			d.t.Errorf("%s: %d wrong bytes on the remote (read error %v)", f.name, w, err)
		}
		files++
		wrong += w
	}
	return files, wrong
}

// mountFull mounts with the flags the matrix uses: no chunk cache, commits
// only when asked (fsync, unmount), the log outside the small disk.
func mountFull(t *testing.T, c cliRepo, mnt string) result {
	t.Helper()
	return c.mount(t, mnt, "--cache-size", "0", "--commit-delay", "1h", "--sync", "remote",
		"--log-file", filepath.Join(t.TempDir(), "log"))
}

func umountCommitted(t *testing.T, c cliRepo, mnt string) {
	t.Helper()
	r := c.umount(t, mnt)
	if r.code != 0 || !strings.Contains(r.stdout, "everything is committed") {
		t.Fatalf("umount after the disk was freed: %+v", r)
	}
}

// TestFullDiskMatrix fills the cache disk while a file streams, before
// commits (at several amounts of free space, so each local write of a
// commit and of its journal rotation meets the full disk in turn), before
// an unmount, and before a mount replays what a killed daemon queued;
// half of the stages with the daemon's reserve spent first.
func TestFullDiskMatrix(t *testing.T) {
	needRoot(t)
	d := &fullDisk{t: t}
	c := initRepo(t)
	disk := smallDisk(t, "24m")
	c.cache = disk
	mnt := mountpoint(t)

	// Stage 1: the disk fills while a file streams in.
	expect(t, mountFull(t, c, mnt), 0, "")
	d.write(mnt, "before-stream", 300<<10, false)
	func() {
		d.stages++
		f, err := os.Create(filepath.Join(mnt, "streaming"))
		if err != nil {
			t.Fatal(err)
		}
		data := fileContent("streaming", 4<<20)
		if _, err := f.Write(data[:1<<20]); err != nil {
			t.Fatal(err)
		}
		fl := fill(t, disk, 0)
		var werr error
		for off := 1 << 20; off < len(data) && werr == nil; off += 256 << 10 {
			_, werr = f.Write(data[off : off+256<<10])
		}
		if werr == nil {
			t.Fatal("4 MiB streamed into a full cache disk without an error")
		}
		d.check("a write while the disk is full", werr, true)
		d.check("close of the file that hit the full disk", f.Close(), true)
		d.write(mnt, "while-full", 10<<10, true)
		fl.free()
		// Once there is room again, everything works at once.
		d.write(mnt, "after-stream", 700<<10, false)
	}()

	// Stages 2..: commits (with their journal rotation) on a disk with
	// k pages free; then a commit once the disk is freed.
	for _, k := range []int{0, 1, 2, 3, 4, 6, 8, 16} {
		d.stages++
		d.write(mnt, fmt.Sprintf("queued-%02d", k), 100<<10+k, false)
		if k%2 == 1 {
			spendReserve(t, disk)
		}
		fl := fill(t, disk, k)
		if err := fsyncMount(mnt, "before-stream"); err != nil {
			d.check(fmt.Sprintf("commit with %d pages free", k), err, true)
			d.refused++
		}
		d.write(mnt, fmt.Sprintf("full-%02d", k), 5000, true)
		fl.free()
		d.write(mnt, fmt.Sprintf("freed-%02d", k), 3000+k, false)
		d.check("commit after the disk was freed", fsyncMount(mnt, "before-stream"), false)
	}
	umountCommitted(t, c, mnt)

	// Stage: umount on a full disk. The daemon falls back on its reserve
	// to commit; if it cannot, it names what stays queued.
	d.stages++
	expect(t, mountFull(t, c, mnt), 0, "")
	d.write(mnt, "umount-full-a", 150<<10, false)
	d.write(mnt, "umount-full-b", 10, false)
	fl := fill(t, disk, 0)
	r := c.umount(t, mnt)
	committed := r.code == 0 && strings.Contains(r.stdout, "everything is committed")
	queued := r.code == 13 && strings.Contains(r.stdout, "queued: /umount-full-a\n") && strings.Contains(r.stdout, "queued: /umount-full-b\n")
	if !committed && !queued {
		t.Fatalf("umount on a full disk: %+v", r)
	}
	fl.free()

	// Stages: a daemon killed with changes queued; the disk is full (k
	// pages free) when the next mount replays them. The mount may fail
	// then, saying why; once freed, it mounts and everything commits.
	for _, k := range []int{0, 1, 2, 4, 8} {
		d.stages++
		expect(t, mountFull(t, c, mnt), 0, "")
		d.write(mnt, fmt.Sprintf("replay-%02d", k), 200<<10+k, false)
		pid := mountStatus(t, mnt).PID
		syscall.Kill(pid, syscall.SIGKILL)
		for processAliveTest(pid) {
			time.Sleep(10 * time.Millisecond)
		}
		syscall.Unmount(mnt, syscall.MNT_DETACH)
		if k%2 == 0 {
			spendReserve(t, disk)
		}
		fl := fill(t, disk, k)
		r := mountFull(t, c, mnt)
		if r.code == 0 {
			d.write(mnt, fmt.Sprintf("replay-full-%02d", k), 5000, true)
		} else if !strings.Contains(r.stderr, "no space left on device") {
			t.Fatalf("a mount on a full cache disk failed without saying the disk is full: %+v", r)
		} else {
			d.refused++
		}
		fl.free()
		if r.code == 0 {
			umountCommitted(t, c, mnt)
		}
		expect(t, mountFull(t, c, mnt), 0, "")
		d.write(mnt, fmt.Sprintf("replay-freed-%02d", k), 1000+k, false)
		umountCommitted(t, c, mnt)
	}

	files, wrong := d.verify(c, mnt)
	t.Logf("full disk matrix: %d stages, %d writes hit ENOSPC, %d commits or mounts refused on the full disk (then done), %d files verified on a fresh cache, %d wrong bytes",
		d.stages, d.enospc, d.refused, files, wrong)
	if files < 20 {
		t.Fatalf("only %d files verified; the matrix did not exercise much", files)
	}
}

// TestUmountSaysWhatIsQueued: when the queue cannot drain before the
// drain timeout (here the remote refuses every upload), umount names the
// files still queued; they go up at the next mount.
func TestUmountSaysWhatIsQueued(t *testing.T) {
	needRoot(t)
	d := &fullDisk{t: t}
	c := initRepo(t)
	mnt := mountpoint(t)
	expect(t, c.mount(t, mnt, "--commit-delay", "1h", "--drain-timeout", "2s"), 0, "")
	d.write(mnt, "first", 1000, false)
	if err := os.MkdirAll(filepath.Join(mnt, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	d.write(mnt, "sub/second", 70000, false)
	// The remote's folder becomes a file: every upload fails.
	if err := os.Rename(c.remote, c.remote+".away"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.remote, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	r := c.umount(t, mnt)
	if r.code != 13 {
		t.Fatalf("umount that could not drain exited %d, want 13: %+v", r.code, r)
	}
	for _, want := range []string{"not everything is on the remote yet: 2 files", "queued: /first\n", "queued: /sub/second\n"} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("umount that could not drain said %q, want it to contain %q", r.stdout, want)
		}
	}
	os.Remove(c.remote)
	if err := os.Rename(c.remote+".away", c.remote); err != nil {
		t.Fatal(err)
	}
	expect(t, c.mount(t, mnt, "--commit-delay", "1h", "--break-lease"), 0, "")
	umountCommitted(t, c, mnt)
	if files, wrong := d.verify(c, mnt); files != 2 || wrong != 0 {
		t.Fatalf("%d files verified, %d wrong bytes", files, wrong)
	}
}
