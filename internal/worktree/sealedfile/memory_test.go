package sealedfile

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestDeferred: a Deferred file reads, writes, truncates and seeks in
// memory with no file on disk, up to its limit; past it, it is written to
// disk whole (no temporary file left) and goes on there, and the file on
// disk opens with the same content.
func TestDeferred(t *testing.T) {
	key := testKey(t)
	p := filepath.Join(t.TempDir(), "d")
	f, err := Deferred(p, "d", key, 10000, []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	want := []byte("hello")
	if _, err := f.WriteAt([]byte("world"), 8); err != nil {
		t.Fatal(err)
	}
	want = append(want, 0, 0, 0, 'w', 'o', 'r', 'l', 'd')
	if err := f.Truncate(12); err != nil {
		t.Fatal(err)
	}
	want = want[:12]
	if err := f.Reserve(0, 9000); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if off, err := f.Seek(3, 4); err != nil || off != 12 {
		t.Fatalf("SEEK_HOLE: %d %v", off, err)
	}
	if _, err := f.Seek(12, 3); !errors.Is(err, syscall.ENXIO) {
		t.Fatalf("SEEK_DATA at the end: %v", err)
	}
	check := func(f *File, when string) {
		t.Helper()
		got := make([]byte, len(want)+5)
		n, err := f.ReadAt(got, 0)
		if n != len(want) || err != io.EOF || !bytes.Equal(got[:n], want) || f.Size() != int64(len(want)) {
			t.Fatalf("%s: read %d %q, %v; size %d; want %q", when, n, got[:n], err, f.Size(), want)
		}
	}
	check(f, "in memory")
	if b, ok := f.Bytes(); !ok || !bytes.Equal(b, want) || !f.InMemory() {
		t.Fatalf("Bytes %q %v", b, ok)
	}
	if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a file in memory is on disk: %v", err)
	}
	big := bytes.Repeat([]byte("z"), 12000)
	if _, err := f.WriteAt(big, 6); err != nil {
		t.Fatal(err)
	}
	want = append(want[:6], big...)
	check(f, "on disk")
	if _, ok := f.Bytes(); ok || f.InMemory() {
		t.Fatal("a file past its limit still in memory")
	}
	if _, err := os.Stat(p + ".tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temporary file left: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	g, err := Open(p, "d", key, false)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	check(g, "opened again")
}
