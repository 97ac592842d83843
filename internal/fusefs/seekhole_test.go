package fusefs_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestSeekHoleAfterFallocate: in a fallocated file, the data written ends
// where the write ended, as on ext4 (xfstests generic/436, test 16: sealfs
// answered 16 KiB further, the folio the staging file's disk reported).
func TestSeekHoleAfterFallocate(t *testing.T) {
	dir, _, _ := mount(t)
	f, err := os.Create(filepath.Join(dir, "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const size = 4 << 20
	if err := unix.Fallocate(int(f.Fd()), 0, 0, size); err != nil {
		t.Fatal(err)
	}
	page := bytes.Repeat([]byte{0x5a}, 4096)
	for _, off := range []int64{0, size / 2} {
		if _, err := f.WriteAt(page, off); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		off    int64
		whence int
		want   int64
	}{{0, unix.SEEK_HOLE, 4096}, {size / 2, unix.SEEK_HOLE, size/2 + 4096}, {4096, unix.SEEK_DATA, size / 2}} {
		if got, err := unix.Seek(int(f.Fd()), c.off, c.whence); err != nil || got != c.want {
			t.Errorf("lseek(%d, whence %d) = %d, %v; want %d", c.off, c.whence, got, err, c.want)
		}
	}
}
