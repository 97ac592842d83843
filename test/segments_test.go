package test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"golang.org/x/sys/unix"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/repo"
	"github.com/sealfs/sealfs/repo/format"
)

// countingS3 is an in-process S3 server on loopback that counts the bytes
// it sends in answer to GETs of pack objects.
type countingS3 struct {
	srv       *httptest.Server
	packBytes atomic.Int64
}

// countingWriter counts what a handler writes.
type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (w countingWriter) Write(b []byte) (int, error) {
	n, err := w.ResponseWriter.Write(b)
	w.n.Add(int64(n))
	return n, err
}

func newCountingS3(t *testing.T) *countingS3 {
	c := &countingS3{}
	inner := gofakes3.New(s3mem.New()).Server()
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/data/") {
			w = countingWriter{w, &c.packBytes}
		}
		inner.ServeHTTP(w, r)
	}))
	t.Cleanup(c.srv.Close)
	return c
}

// storeBig mounts c on mnt, writes 24 MiB of random data (from seed) to
// the file big (chunks of several segments each) and unmounts; it returns
// the data.
func storeBig(t *testing.T, c cliRepo, mnt string, seed uint64) []byte {
	t.Helper()
	expect(t, c.mount(t, mnt), 0, "")
	data := randomBytes(seed, 24<<20)
	if err := os.WriteFile(filepath.Join(mnt, "big"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	c.umount(t, mnt)
	return data
}

// catFailsAt runs cat on path, which holds data but for a chunk damaged
// from byte start on: cat must fail, after only right bytes and none from
// start on.
func catFailsAt(t *testing.T, path string, data []byte, start uint64) {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command("cat", path)
	cmd.Stdout = &out
	if err := cmd.Run(); err == nil {
		t.Errorf("cat of a file with a damaged chunk exited 0 after %d of %d bytes", out.Len(), len(data))
	}
	if uint64(out.Len()) > start || !bytes.Equal(out.Bytes(), data[:out.Len()]) {
		t.Errorf("cat returned %d bytes (the damaged chunk starts at %d), or wrong ones", out.Len(), start)
	}
}

// chunkInMiddle opens the repository of c in process and returns a data
// extent of file name (of the newest snapshot) with at least three
// segments that starts at or after off, where it starts, and where its
// blob is stored.
func chunkInMiddle(t *testing.T, c cliRepo, name string, off uint64) (repo.Extent, uint64, repo.Location) {
	t.Helper()
	ctx := context.Background()
	r, _ := c.openInProcess(t)
	root, err := r.LoadTree(ctx, r.Latest().Tree)
	if err != nil {
		t.Fatal(err)
	}
	n := root.Find([]byte(name))
	if n == nil {
		t.Fatalf("no %s in the newest snapshot", name)
	}
	var start uint64
	for _, e := range n.Content {
		if start >= off && !e.Hole && e.Size > 2*format.SegmentSize {
			l, _ := r.Index().Lookup(e.ID)
			if l.Type != crypt.TypeSegmentedBlob {
				t.Fatalf("a chunk written through the mount is a %s, want a segmented data blob", l.Type)
			}
			return e, start, l
		}
		start += e.Size
	}
	t.Fatalf("no chunk of three segments after %d", off)
	return repo.Extent{}, 0, repo.Location{}
}

// TestMountRandomReadFetchesSegments: through the real mount, on a fresh
// cache, a 4 KiB read in the middle of a big file fetches from the remote
// (an in-process S3 server counting the bytes of pack GETs) the chunk's
// segment table and one segment, far less than the chunk, and returns
// the right bytes.
func TestMountRandomReadFetchesSegments(t *testing.T) {
	needRoot(t)
	s3 := newCountingS3(t)
	dir := t.TempDir()
	c := cliRepo{remote: "", cache: filepath.Join(dir, "cache"), codeFile: filepath.Join(dir, "code")}
	c.remote = ":s3,provider=Other,access_key_id=k,secret_access_key=s,region=us-east-1,force_path_style=true,endpoint='" + s3.srv.URL + "':bucket/repo"
	expect(t, sealfs(t, nil, "init", "--cache-dir", c.cache, "--code-file", c.codeFile, c.remote), 0, "")
	mnt := mountpoint(t)
	data := storeBig(t, c, mnt, 61)
	e, start, l := chunkInMiddle(t, c, "big", 12<<20)

	fresh := cliRepo{remote: c.remote, cache: t.TempDir(), codeFile: c.codeFile}
	expect(t, fresh.mount(t, mnt, "--read-only"), 0, "")
	defer fresh.umount(t, mnt)
	path := filepath.Join(mnt, "big")
	f, err := os.Open(path) // loads the root folder, from a pack
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	off := int64(start+format.SegmentSize) &^ 4095
	if off < int64(start+format.SegmentSize) {
		off += 4096
	}
	before := s3.packBytes.Load()
	buf := make([]byte, 4096)
	if _, err := f.ReadAt(buf, off); err != nil || !bytes.Equal(buf, data[off:off+4096]) {
		t.Fatalf("a 4 KiB read at %d: %v", off, err)
	}
	got := s3.packBytes.Load() - before
	t.Logf("a 4 KiB read fetched %d bytes of pack; its chunk is %d bytes sealed", got, l.Length)
	if max := int64(format.SegmentSize + 1024); got > max || got == 0 {
		t.Fatalf("a 4 KiB read in a %d-byte chunk fetched %d bytes of pack, want the segment and its table (at most %d)", e.Size, got, max)
	}
}

// TestMountDamagedSegmentMidFile: one segment damaged in a chunk in the
// middle of a big file written through the mount: on a fresh cache a read
// of that segment fails with EIO while a read of another segment of the
// same chunk returns the right bytes; `cat` fails (not a short file), after
// only right bytes and nothing past the damaged chunk; the log names the
// pack.
func TestMountDamagedSegmentMidFile(t *testing.T) {
	needRoot(t)
	c := initRepo(t)
	mnt := mountpoint(t)
	data := storeBig(t, c, mnt, 62)
	_, start, l := chunkInMiddle(t, c, "big", 12<<20)
	// Random data is stored raw: segment i is 29 bytes over its 64 KiB.
	table := int64(format.SegmentTableLen(l.RawLength))
	seg1 := int64(l.Offset) + table + int64(crypt.Overhead+1+format.SegmentSize)
	pack := filepath.Join(c.remote, format.PackName(l.Pack))
	b, err := os.ReadFile(pack)
	if err != nil {
		t.Fatal(err)
	}
	b[seg1+1000] ^= 0x20
	if err := os.WriteFile(pack, b, 0o644); err != nil {
		t.Fatal(err)
	}

	fresh := cliRepo{remote: c.remote, cache: t.TempDir(), codeFile: c.codeFile}
	expect(t, fresh.mount(t, mnt, "--read-only"), 0, "")
	path := filepath.Join(mnt, "big")
	fd, err := unix.Open(path, unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	intact := int64(start+2*format.SegmentSize+8192) &^ 4095
	if n, err := unix.Pread(fd, buf, intact); err != nil || n != len(buf) || !bytes.Equal(buf, data[intact:intact+4096]) {
		t.Errorf("a read of an intact segment of the damaged chunk: %d bytes, %v", n, err)
	}
	damaged := int64(start+format.SegmentSize+8192) &^ 4095
	if n, err := unix.Pread(fd, buf, damaged); !errors.Is(err, unix.EIO) {
		t.Errorf("a read of the damaged segment: %d bytes, %v; want EIO", n, err)
	}
	unix.Close(fd)
	fresh.umount(t, mnt)

	fresh = cliRepo{remote: c.remote, cache: t.TempDir(), codeFile: c.codeFile}
	expect(t, fresh.mount(t, mnt, "--read-only"), 0, "")
	catFailsAt(t, path, data, start)
	fresh.umount(t, mnt)
	log, _ := os.ReadFile(filepath.Join(fresh.cache, "test-mount.log"))
	if !strings.Contains(string(log), "integrity") || !strings.Contains(string(log), format.PackName(l.Pack)) {
		t.Errorf("the daemon log does not name the damaged pack %s:\n%s", format.PackName(l.Pack), log)
	}
}
