package fusefs_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func ctimeOf(t *testing.T, p string) (ctime, mtime time.Time) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return time.Unix(st.Ctim.Unix()), time.Unix(st.Mtim.Unix())
}

// TestCtime: ctime is set to now by every change of a file's content or
// metadata, as on ext4 (POSIX: write, truncate, chmod, chown, utimensat,
// setxattr, removexattr, rename, fallocate of any mode; a directory's when
// its entries change),
// and utimensat sets the times it is given but never ctime.
func TestCtime(t *testing.T) {
	dir, _, _ := mount(t)
	f := filepath.Join(dir, "f")
	if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	past := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	steps := []struct {
		name, path string
		op         func() error
	}{
		{"write", f, func() error {
			h, err := os.OpenFile(f, os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			if _, err := h.WriteAt([]byte("y"), 5); err != nil {
				h.Close()
				return err
			}
			return h.Close()
		}},
		{"truncate", f, func() error { return os.Truncate(f, 2) }},
		{"fallocate", f, func() error { return fallocate(f, 0, 0, 8192) }},
		{"fallocate KEEP_SIZE", f, func() error { return fallocate(f, unix.FALLOC_FL_KEEP_SIZE, 0, 16384) }},
		{"fallocate PUNCH_HOLE", f, func() error {
			return fallocate(f, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 0, 4096)
		}},
		{"fallocate ZERO_RANGE", f, func() error { return fallocate(f, unix.FALLOC_FL_ZERO_RANGE, 4096, 100) }},
		{"chmod", f, func() error { return os.Chmod(f, 0o600) }},
		{"chown", f, func() error { return os.Chown(f, 1234, 5678) }},
		{"utimensat", f, func() error { return os.Chtimes(f, past, past) }},
		{"setxattr", f, func() error { return unix.Setxattr(f, "user.k", []byte("v"), 0) }},
		{"removexattr", f, func() error { return unix.Removexattr(f, "user.k") }},
		{"rename", f, func() error {
			if err := os.Rename(f, f+"2"); err != nil {
				return err
			}
			f += "2"
			return nil
		}},
		{"create in a directory", filepath.Join(dir, "d"), func() error {
			return os.WriteFile(filepath.Join(dir, "d", "g"), nil, 0o644)
		}},
		{"unlink in a directory", filepath.Join(dir, "d"), func() error { return os.Remove(filepath.Join(dir, "d", "g")) }},
		{"rename into a directory", filepath.Join(dir, "d"), func() error { return os.Rename(f, filepath.Join(dir, "d", "h")) }},
	}
	for _, s := range steps {
		p := s.path
		before, _ := ctimeOf(t, p)
		time.Sleep(2 * time.Millisecond) // so that a ctime left alone cannot pass for now
		start := time.Now()
		if err := s.op(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if s.name == "rename" {
			p = f
		}
		ctime, mtime := ctimeOf(t, p)
		if ctime.Before(start) || !ctime.After(before) {
			t.Errorf("%s: ctime %v, was %v; the change began at %v", s.name, ctime, before, start)
		}
		if s.name == "utimensat" && !mtime.Equal(past) {
			t.Errorf("utimensat: mtime %v, want %v", mtime, past)
		}
	}
	// A read is no change.
	g := filepath.Join(dir, "d", "h")
	before, _ := ctimeOf(t, g)
	if _, err := os.ReadFile(g); err != nil {
		t.Fatal(err)
	}
	if after, _ := ctimeOf(t, g); !after.Equal(before) {
		t.Errorf("a read moved ctime from %v to %v", before, after)
	}
}

func fallocate(p string, mode uint32, off, n int64) error {
	h, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer h.Close()
	return unix.Fallocate(int(h.Fd()), mode, off, n)
}
