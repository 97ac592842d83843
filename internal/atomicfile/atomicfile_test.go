package atomicfile_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/sealfs/sealfs/internal/atomicfile"
)

// leftovers lists what is in dir besides want.
func leftovers(t *testing.T, dir, want string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var extra []string
	for _, e := range entries {
		if e.Name() != want {
			extra = append(extra, e.Name())
		}
	}
	return extra
}

// TestWriteReplacesWhole: a reader running beside the writer only ever
// sees one whole version of the file, the file gets the mode asked for
// (whatever the umask and the old file's mode), and no temporary file stays.
func TestWriteReplacesWhole(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	versions := [][]byte{bytes.Repeat([]byte("a"), 1<<20), bytes.Repeat([]byte("b"), 3<<20)}
	if err := os.WriteFile(path, versions[0], 0o666); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var torn atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			b, err := os.ReadFile(path)
			if err != nil || !(bytes.Equal(b, versions[0]) || bytes.Equal(b, versions[1])) {
				torn.Add(1)
			}
		}
	}()
	for i := range 40 {
		if err := atomicfile.Write(path, versions[(i+1)%2], 0o640); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	if n := torn.Load(); n > 0 {
		t.Errorf("a reader saw %d reads that were neither the old nor the new content", n)
	}
	b, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(b, versions[0]) {
		t.Errorf("after the last write the file holds %d bytes (%v), want the last version", len(b), err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v (%v), want 0640", fi.Mode().Perm(), err)
	}
	if extra := leftovers(t, dir, "state.json"); len(extra) > 0 {
		t.Errorf("left behind: %v", extra)
	}
}

// TestWriteFailureKeepsOld: a write that fails half-way (here the file
// size limit, as a full disk would) reports it, and leaves the old content
// and no temporary file.
func TestWriteFailureKeepsOld(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: 4096, Max: lim.Max}); err != nil {
		t.Fatal(err)
	}
	err := atomicfile.Write(path, make([]byte, 1<<20), 0o600)
	if rerr := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); rerr != nil {
		t.Fatal(rerr)
	}
	if !errors.Is(err, syscall.EFBIG) {
		t.Fatalf("Write over the size limit returned %v, want EFBIG", err)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "old" {
		t.Errorf("after a failed write the file holds %d bytes (%v), want the old content", len(b), err)
	}
	if extra := leftovers(t, dir, "f"); len(extra) > 0 {
		t.Errorf("left behind: %v", extra)
	}
}

// syncRecorder is the root directory of a loopback FUSE mount that counts
// the fsyncs of itself and answers them with errno.
type syncRecorder struct {
	gofs.LoopbackNode
	syncs atomic.Int32
	errno syscall.Errno
}

var _ = (gofs.NodeOpendirHandler)((*syncRecorder)(nil))

func (n *syncRecorder) OpendirHandle(context.Context, uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	return (*dirHandle)(n), 0, 0
}

type dirHandle syncRecorder

var _ = (gofs.FileFsyncdirer)((*dirHandle)(nil))

func (h *dirHandle) Fsyncdir(context.Context, uint32) syscall.Errno {
	h.syncs.Add(1)
	return h.errno
}

// mountRecorder mounts a loopback of a fresh directory whose root records
// fsyncs, and unmounts it at cleanup.
func mountRecorder(t *testing.T, errno syscall.Errno) (string, *syncRecorder) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root here")
	}
	back := t.TempDir()
	var st syscall.Stat_t
	if err := syscall.Stat(back, &st); err != nil {
		t.Fatal(err)
	}
	lr := &gofs.LoopbackRoot{Path: back, Dev: st.Dev}
	root := &syncRecorder{LoopbackNode: gofs.LoopbackNode{RootData: lr}, errno: errno}
	lr.RootNode = root
	mnt := t.TempDir()
	srv, err := gofs.Mount(mnt, root, &gofs.Options{MountOptions: fuse.MountOptions{FsName: "atomicfile-test", DirectMount: true}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
		}
	})
	return mnt, root
}

// TestWriteSyncsDirectory: the rename is made durable by an fsync of the
// directory, and a directory that fails to sync fails the write.
func TestWriteSyncsDirectory(t *testing.T) {
	mnt, root := mountRecorder(t, 0)
	path := filepath.Join(mnt, "f")
	if err := atomicfile.Write(path, []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}
	if n := root.syncs.Load(); n != 1 {
		t.Errorf("the directory was synced %d times, want once", n)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "new" {
		t.Errorf("the file holds %q (%v)", b, err)
	}

	mnt, root = mountRecorder(t, syscall.EIO)
	if err := atomicfile.Write(filepath.Join(mnt, "f"), []byte("new"), 0o600); !errors.Is(err, syscall.EIO) {
		t.Errorf("Write with a directory that fails to sync returned %v, want EIO", err)
	}
	if n := root.syncs.Load(); n != 1 {
		t.Errorf("the directory was synced %d times, want once", n)
	}
}
