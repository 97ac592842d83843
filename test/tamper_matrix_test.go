package test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// readCheck is what reading a file back through the mount gave.
type readCheck struct {
	returned int64 // bytes returned (all of them, before and after any error)
	wrong    int64 // of those, bytes that differ from the original
	short    int   // times the file seemed to end before its size
	err      error // the first error, nil when the whole file read back
}

// preadCheck reads path with pread calls of bufSize bytes, as an
// application reading a file does, and compares every byte returned with
// want. A read that spans several pages may return the pages before a
// failing one (POSIX read semantics); the next read must then fail. A
// short read that is not followed by an error, or the end of the file
// before its size, is counted as short: the kernel takes a short FUSE read
// for the end of the file, which is how a damaged file would silently
// become a shorter one.
func preadCheck(t *testing.T, path string, want []byte, bufSize int) readCheck {
	t.Helper()
	fd, err := unix.Open(path, unix.O_RDONLY, 0)
	if err != nil {
		return readCheck{err: err}
	}
	defer unix.Close(fd)
	var rc readCheck
	buf := make([]byte, bufSize)
	size := int64(len(want))
	pending := false // the last read was short: this one must fail
	for off := int64(0); ; {
		n, err := unix.Pread(fd, buf, off)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			rc.err = err
			return rc
		}
		if pending {
			rc.short++
			pending = false
		}
		rc.returned += int64(n)
		for i, b := range buf[:n] {
			if off+int64(i) >= size || want[off+int64(i)] != b {
				rc.wrong++
			}
		}
		if n == 0 {
			if off < size {
				rc.short++
			}
			return rc
		}
		pending = int64(n) < min(int64(bufSize), size-off)
		off += int64(n)
	}
}

// randomBytes returns n bytes that do not compress, the same for a seed.
func randomBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 7}).Read(b)
	return b
}

// TestMountDamagedChunkMidFile (issue 8, defect 1): with one byte flipped in
// the middle of each pack of a 64 MiB file, reading the file through a
// fresh mount fails with EIO at the first damaged chunk. It used to end
// early instead: the handle returned the bytes read before the error as a
// short read, the kernel took that for the end of the file, and cat exited 0
// with a truncated copy.
func TestMountDamagedChunkMidFile(t *testing.T) {
	needRoot(t)
	c := initRepo(t)
	mnt := mountpoint(t)
	expect(t, c.mount(t, mnt), 0, "")
	data := randomBytes(1, 64<<20)
	if err := os.WriteFile(filepath.Join(mnt, "big"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	c.umount(t, mnt)
	packs, _ := filepath.Glob(filepath.Join(c.remote, "data", "*", "*"))
	if len(packs) < 3 {
		t.Fatalf("a 64 MiB file made only %d packs", len(packs))
	}
	for _, p := range packs {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)/2] ^= 0x01
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	for _, how := range []string{"pread", "cat"} {
		fresh := cliRepo{remote: c.remote, cache: t.TempDir(), codeFile: c.codeFile}
		expect(t, fresh.mount(t, mnt, "--read-only"), 0, "")
		path := filepath.Join(mnt, "big")
		if how == "cat" {
			var out bytes.Buffer
			cmd := exec.Command("cat", path)
			cmd.Stdout = &out
			err := cmd.Run()
			if err == nil {
				t.Errorf("cat of a damaged file exited 0 after %d of %d bytes", out.Len(), len(data))
			}
			if !bytes.Equal(out.Bytes(), data[:min(out.Len(), len(data))]) {
				t.Errorf("cat returned wrong bytes")
			}
		} else {
			rc := preadCheck(t, path, data, 1<<20+4096)
			if !errors.Is(rc.err, unix.EIO) || rc.wrong != 0 || rc.short != 0 {
				t.Errorf("reading a damaged file: %d bytes returned, %d wrong, %d short reads, error %v; want EIO, no wrong bytes, no short read", rc.returned, rc.wrong, rc.short, rc.err)
			}
		}
		fresh.umount(t, mnt)
		log, _ := os.ReadFile(filepath.Join(fresh.cache, "test-mount.log"))
		if !strings.Contains(string(log), "integrity") || !strings.Contains(string(log), "data/") {
			t.Errorf("the daemon log does not name the damaged pack:\n%s", log)
		}
	}
}
