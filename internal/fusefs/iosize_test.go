package fusefs_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/sealfs/sealfs/internal/fusefs"
)

// TestIOSize: a file's st_blksize is the mount's write size, so that cp
// and cat move 1 MiB a request (at 4 KiB, cp wrote 128 KiB a request and
// a sequential write took 8 times the round trips to the daemon).
func TestIOSize(t *testing.T) {
	dir, _, _ := mount(t)
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	if st.Blksize != fusefs.IOSize {
		t.Fatalf("st_blksize %d, want %d", st.Blksize, fusefs.IOSize)
	}
}
