package test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sealfs/sealfs/internal/daemon"
	"github.com/sealfs/sealfs/internal/fusefs"
	"github.com/sealfs/sealfs/internal/testutil"
)

func needRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root (or fusermount3) here")
	}
}

func isMounted(mnt string) bool {
	b, _ := os.ReadFile("/proc/self/mounts")
	abs, _ := filepath.Abs(mnt)
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 2 && f[1] == abs {
			return true
		}
	}
	return false
}

// mountpoint makes a mount point whose mount is always gone at cleanup:
// unmounted cleanly if the test forgot, detached if its daemon is dead.
func mountpoint(t *testing.T) string {
	mnt := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !isMounted(mnt) {
			return
		}
		sealfs(t, nil, "umount", "--timeout", "1m", mnt)
		if isMounted(mnt) {
			syscall.Unmount(mnt, syscall.MNT_DETACH)
		}
		if isMounted(mnt) {
			t.Errorf("%s is still mounted", mnt)
		}
	})
	return mnt
}

func (c cliRepo) mount(t *testing.T, mnt string, extra ...string) result {
	t.Helper()
	logFile := filepath.Join(c.cache, "test-mount.log")
	args := append([]string{"mount", "--cache-dir", c.cache, "--code-file", c.codeFile, "--log-file", logFile}, extra...)
	r := sealfs(t, nil, append(args, c.remote, mnt)...)
	if r.code != 0 {
		log, _ := os.ReadFile(logFile)
		if len(log) > 4000 {
			log = log[len(log)-4000:]
		}
		t.Logf("mount exited %d; daemon log ends:\n%s", r.code, log)
	}
	return r
}

func (c cliRepo) umount(t *testing.T, mnt string) result {
	t.Helper()
	r := sealfs(t, nil, "umount", mnt)
	if isMounted(mnt) {
		t.Fatalf("still mounted after sealfs umount: %+v", r)
	}
	return r
}

func mountStatus(t *testing.T, mnt string) daemon.Status {
	t.Helper()
	st, err := readStatus(mnt)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// readStatus reads the status document of the mount at mnt; it fails when
// the daemon is gone.
func readStatus(mnt string) (daemon.Status, error) {
	var st daemon.Status
	buf := make([]byte, 64<<10)
	n, err := unix.Getxattr(mnt, fusefs.StatusXattr, buf)
	if err != nil {
		return st, fmt.Errorf("status of %s: %w", mnt, err)
	}
	if err := json.Unmarshal(buf[:n], &st); err != nil {
		return st, fmt.Errorf("status of %s: %w", mnt, err)
	}
	return st, nil
}

// makeSourceTree builds the tree the mount tests copy in: nested folders,
// thousands of small files, larger random files, a 1 GiB sparse file,
// symlinks, an empty file and folder, a fifo, modes and times.
func makeSourceTree(t *testing.T, root string, small int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(5, 6))
	write := func(rel string, data []byte, mode os.FileMode) {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, mode); err != nil {
			t.Fatal(err)
		}
	}
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	for i := range small {
		write(fmt.Sprintf("small/%02d/file-%05d.txt", i%37, i), []byte(fmt.Sprintf("file %d %s\n", i, strings.Repeat("x", i%300))), 0o644)
	}
	write("big/random-5m", random(5<<20+77), 0o600)
	write("big/exec", random(100000), 0o755)
	write("empty", nil, 0o644)
	if err := os.MkdirAll(filepath.Join(root, "empty-dir"), 0o700); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(root, "big/sparse-1g"))
	if err != nil {
		t.Fatal(err)
	}
	for _, off := range []int64{0, 300 << 20, 1<<30 - 4096} {
		if _, err := f.WriteAt(random(4096), off); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	os.Symlink("big/exec", filepath.Join(root, "link"))
	os.Symlink("/does/not/exist", filepath.Join(root, "dangling"))
	unix.Mkfifo(filepath.Join(root, "fifo"), 0o640)
	when := time.Date(2020, 1, 2, 3, 4, 5, 600000000, time.UTC)
	filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		ts := []unix.Timespec{unix.NsecToTimespec(when.UnixNano()), unix.NsecToTimespec(when.UnixNano())}
		return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
	})
}

// TestMountRoundTrip: write a tree through the mount, unmount, and read it
// back on a fresh cache directory with only the recovery code.
func TestMountRoundTrip(t *testing.T) {
	needRoot(t)
	c := initRepo(t)
	mnt := mountpoint(t)
	r := c.mount(t, mnt)
	expect(t, r, 0, "")
	if !strings.Contains(r.stdout, "mounted") {
		t.Fatalf("mount said %q", r.stdout)
	}
	b, _ := os.ReadFile("/proc/self/mounts")
	abs, _ := filepath.Abs(mnt)
	if !strings.Contains(string(b), c.remote+" "+abs+" fuse.sealfs ") {
		t.Fatalf("/proc/mounts does not show a fuse.sealfs mount of %s at %s", c.remote, abs)
	}
	src := filepath.Join(t.TempDir(), "src")
	makeSourceTree(t, src, 3000)
	if out, err := exec.Command("cp", "-a", src+"/.", mnt+"/").CombinedOutput(); err != nil {
		t.Fatalf("cp -a into the mount: %v\n%s", err, out)
	}
	if st := mountStatus(t, mnt); st.Remote != c.remote || st.PID == 0 {
		t.Fatalf("status: %+v", st)
	}
	r = c.umount(t, mnt)
	if !strings.Contains(r.stdout, "everything is committed") {
		t.Fatalf("umount said %q %q", r.stdout, r.stderr)
	}

	fresh := cliRepo{remote: c.remote, cache: filepath.Join(t.TempDir(), "fresh"), codeFile: c.codeFile}
	expect(t, fresh.mount(t, mnt, "--read-only"), 0, "")
	if n := testutil.CompareTrees(t, src, mnt); n < 3000 {
		t.Fatalf("compared only %d entries", n)
	}
	fresh.umount(t, mnt)
	expect(t, c.run(t, "check", "--read-data", c.remote), 0, "")
}

func TestMountErrors(t *testing.T) {
	needRoot(t)
	c := initRepo(t)
	mnt := mountpoint(t)
	raw, _ := os.ReadFile(c.codeFile)
	code := strings.TrimSpace(string(raw))
	typo := []byte(code)
	typo[0] ^= 1
	other := filepath.Join(t.TempDir(), "other")
	expect(t, sealfs(t, nil, "init", "--cache-dir", t.TempDir(), "--code-file", other, filepath.Join(t.TempDir(), "r2")), 0, "")
	for _, tc := range []struct {
		name, code string
		exit       int
		msg        string
	}{{"typo", string(typo), 3, "typo"}, {"wrong code", "", 4, "does not belong"}} {
		codeFile := filepath.Join(t.TempDir(), "code")
		if tc.code != "" {
			os.WriteFile(codeFile, []byte(tc.code), 0o600)
		} else {
			codeFile = other
		}
		r := sealfs(t, nil, "mount", "--cache-dir", c.cache, "--code-file", codeFile, c.remote, mnt)
		expect(t, r, tc.exit, tc.msg)
		if isMounted(mnt) {
			t.Fatalf("%s: something is mounted", tc.name)
		}
	}
	// A second writer is refused with exit code 9 and mounts nothing.
	expect(t, c.mount(t, mnt), 0, "")
	mnt2 := mountpoint(t)
	second := cliRepo{remote: c.remote, cache: t.TempDir(), codeFile: c.codeFile}
	expect(t, second.mount(t, mnt2), 9, "--read-only")
	if isMounted(mnt2) {
		t.Fatal("the second writer mounted")
	}
	// Read-only it may look.
	expect(t, second.mount(t, mnt2, "--read-only"), 0, "")
	if err := os.WriteFile(filepath.Join(mnt2, "x"), []byte("x"), 0o644); err == nil {
		t.Fatal("wrote to a read-only mount")
	}
	second.umount(t, mnt2)
	c.umount(t, mnt)
}

// TestMountCrash kills the daemon with SIGKILL in the middle of writes,
// again and again; every file closed before a kill must be there, whole,
// after the next mount, and the remote must pass check.
func TestMountCrash(t *testing.T) {
	needRoot(t)
	c := initRepo(t)
	mnt := mountpoint(t)
	content := func(i int) []byte {
		rng := rand.New(rand.NewPCG(uint64(i), 9))
		b := make([]byte, 1000+rng.IntN(3<<20))
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		return b
	}
	closed := map[int]bool{}
	next := 0
	for round := range 6 {
		expect(t, c.mount(t, mnt, "--commit-delay", "300ms"), 0, "")
		for i := range closed {
			got, err := os.ReadFile(filepath.Join(mnt, fmt.Sprintf("f%04d", i)))
			if err != nil || !bytes.Equal(got, content(i)) {
				t.Fatalf("round %d: file %d, closed before a kill, is missing or wrong: %v", round, i, err)
			}
		}
		pid := mountStatus(t, mnt).PID
		var mu sync.Mutex
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				select {
				case <-stop:
					return
				default:
				}
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if os.WriteFile(filepath.Join(mnt, fmt.Sprintf("f%04d", i)), content(i), 0o644) != nil {
					return
				}
				mu.Lock()
				closed[i] = true
				mu.Unlock()
			}
		}()
		time.Sleep(time.Duration(200+round*250) * time.Millisecond)
		mu.Lock()
		syscall.Kill(pid, syscall.SIGKILL)
		mu.Unlock()
		close(stop)
		<-done
		for processAliveTest(pid) {
			time.Sleep(10 * time.Millisecond)
		}
		t.Logf("round %d: %d files closed so far", round, len(closed))
	}
	expect(t, c.mount(t, mnt), 0, "")
	c.umount(t, mnt)
	expect(t, c.run(t, "check", "--read-data", c.remote), 0, "")
	fresh := cliRepo{remote: c.remote, cache: t.TempDir(), codeFile: c.codeFile}
	expect(t, fresh.mount(t, mnt, "--read-only"), 0, "")
	defer fresh.umount(t, mnt)
	for i := range closed {
		got, err := os.ReadFile(filepath.Join(mnt, fmt.Sprintf("f%04d", i)))
		if err != nil || !bytes.Equal(got, content(i)) {
			t.Fatalf("after the crashes, file %d is missing or wrong on the remote: %v", i, err)
		}
	}
	if len(closed) < 10 {
		t.Fatalf("only %d files were written; the test did not exercise much", len(closed))
	}
}

func processAliveTest(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	return err == nil && !strings.Contains(string(b), ") Z ")
}

// TestMountTamper: a corrupted pack read through a fresh mount gives EIO,
// never other bytes, and the log names the pack.
func TestMountTamper(t *testing.T) {
	needRoot(t)
	c := initRepo(t)
	mnt := mountpoint(t)
	expect(t, c.mount(t, mnt), 0, "")
	data := bytes.Repeat([]byte("precious "), 1<<20)
	os.WriteFile(filepath.Join(mnt, "file"), data, 0o644)
	c.umount(t, mnt)
	packs, _ := filepath.Glob(filepath.Join(c.remote, "data", "*", "*"))
	for _, p := range packs {
		b, _ := os.ReadFile(p)
		b[20] ^= 0x80
		os.WriteFile(p, b, 0o644)
	}
	fresh := cliRepo{remote: c.remote, cache: t.TempDir(), codeFile: c.codeFile}
	logFile := filepath.Join(t.TempDir(), "log")
	r := sealfs(t, nil, "mount", "--cache-dir", fresh.cache, "--code-file", fresh.codeFile, "--read-only", "--log-file", logFile, fresh.remote, mnt)
	if r.code == 0 {
		defer fresh.umount(t, mnt)
		_, err := os.ReadFile(filepath.Join(mnt, "file"))
		if !errorsIsEIO(err) {
			t.Fatalf("reading a tampered file gave %v, want EIO", err)
		}
		log, _ := os.ReadFile(logFile)
		if !strings.Contains(string(log), "integrity") || !strings.Contains(string(log), "data/") {
			t.Fatalf("the log does not name the damaged object:\n%s", log)
		}
		return
	}
	// The root tree lives in a damaged pack too: then the mount itself
	// refuses, with the integrity exit code.
	expect(t, r, 7, "integrity")
}

func errorsIsEIO(err error) bool {
	var pe *os.PathError
	return err != nil && (err == syscall.EIO || (asPathError(err, &pe) && pe.Err == syscall.EIO))
}

func asPathError(err error, pe **os.PathError) bool {
	p, ok := err.(*os.PathError)
	*pe = p
	return ok
}

// TestMountRewrite: changing 1 MiB in the middle of a 256 MiB file through
// the mount uploads less than 4 MiB (rclone crypt would upload 256 MiB).
func TestMountRewrite(t *testing.T) {
	needRoot(t)
	c := initRepo(t)
	mnt := mountpoint(t)
	expect(t, c.mount(t, mnt), 0, "")
	rng := rand.New(rand.NewPCG(1, 1))
	f, err := os.Create(filepath.Join(mnt, "big"))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	for range 256 {
		for i := range buf {
			buf[i] = byte(rng.Uint32())
		}
		if _, err := f.Write(buf); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	c.umount(t, mnt)
	before := dirBytes(t, filepath.Join(c.remote, "data"))

	expect(t, c.mount(t, mnt), 0, "")
	f, err = os.OpenFile(filepath.Join(mnt, "big"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range buf {
		buf[i] = byte(rng.Uint32())
	}
	if _, err := f.WriteAt(buf, 128<<20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	c.umount(t, mnt)
	added := dirBytes(t, filepath.Join(c.remote, "data")) - before
	t.Logf("256 MiB file: first upload %d bytes; after a 1 MiB change, %d bytes more", before, added)
	if added >= 4<<20 {
		t.Fatalf("the 1 MiB change uploaded %d bytes, want < 4 MiB", added)
	}
}

func dirBytes(t *testing.T, dir string) int64 {
	var n int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

// TestMountLargeSparseSyncRemote: a file over 4 GiB with data past the
// 4 GiB mark goes through the mount sparse, and with --sync=remote an
// fsync returns only once a snapshot holds the data.
func TestMountLargeSparseSyncRemote(t *testing.T) {
	needRoot(t)
	c := initRepo(t)
	mnt := mountpoint(t)
	expect(t, c.mount(t, mnt, "--sync", "remote", "--commit-delay", "1h"), 0, "")
	before := mountStatus(t, mnt).SnapshotSeq
	f, err := os.Create(filepath.Join(mnt, "huge"))
	if err != nil {
		t.Fatal(err)
	}
	block := bytes.Repeat([]byte("past four gibibytes "), 50000)
	const off = 4<<30 + 12345
	if err := f.Truncate(5 << 30); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(block, off); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil { // open for writing: commits it all the same
		t.Fatal(err)
	}
	f.Close()
	if after := mountStatus(t, mnt).SnapshotSeq; after <= before {
		t.Fatalf("fsync with --sync=remote did not commit (snapshot %d, then %d)", before, after)
	}
	c.umount(t, mnt)
	if n := dirBytes(t, filepath.Join(c.remote, "data")); n > 8<<20 {
		t.Fatalf("a 5 GiB sparse file with 1 MB of data stored %d bytes", n)
	}
	fresh := cliRepo{remote: c.remote, cache: t.TempDir(), codeFile: c.codeFile}
	expect(t, fresh.mount(t, mnt, "--read-only"), 0, "")
	defer fresh.umount(t, mnt)
	h, err := os.Open(filepath.Join(mnt, "huge"))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if fi, _ := h.Stat(); fi.Size() != 5<<30 {
		t.Fatalf("size %d after remount", fi.Size())
	}
	got := make([]byte, len(block)+10)
	if _, err := h.ReadAt(got, off-5); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[5:5+len(block)], block) || !bytes.Equal(got[:5], make([]byte, 5)) {
		t.Fatal("data past 4 GiB came back wrong")
	}
}

// TestMountManyFiles: 100,000 files through the mount, committed, then
// all listed and read on a fresh cache.
func TestMountManyFiles(t *testing.T) {
	needRoot(t)
	if testing.Short() {
		t.Skip("100k files take a minute")
	}
	c := initRepo(t)
	mnt := mountpoint(t)
	expect(t, c.mount(t, mnt), 0, "")
	const dirs, per = 100, 1000
	var wg sync.WaitGroup
	errs := make(chan error, dirs)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for d := w; d < dirs; d += 4 {
				dir := filepath.Join(mnt, fmt.Sprintf("d%03d", d))
				if err := os.Mkdir(dir, 0o755); err != nil {
					errs <- err
					return
				}
				for i := range per {
					if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%04d", i)), []byte(fmt.Sprintf("%d/%d\n", d, i)), 0o644); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	c.umount(t, mnt)
	fresh := cliRepo{remote: c.remote, cache: t.TempDir(), codeFile: c.codeFile}
	expect(t, fresh.mount(t, mnt, "--read-only"), 0, "")
	defer fresh.umount(t, mnt)
	n := 0
	filepath.Walk(mnt, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n++
		}
		return err
	})
	if n != dirs*per {
		t.Fatalf("found %d files, want %d", n, dirs*per)
	}
	if got, _ := os.ReadFile(filepath.Join(mnt, "d042", "f0777")); string(got) != "42/777\n" {
		t.Fatalf("d042/f0777 = %q", got)
	}
}
