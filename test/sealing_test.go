package test

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/sealfs/sealfs/internal/testutil"
)

// TestMountCacheSealed writes through the real mount a file whose name and
// content hold a marker, and looks for the marker in every file of the
// cache directory (journal, staging area, mirror, blob cache, state, log):
// while the file is queued, after a SIGKILL of the daemon, and after the
// remount that replays and commits it. The marker must be nowhere, and
// the file must come back whole.
func TestMountCacheSealed(t *testing.T) {
	needRoot(t)
	const marker = "SEALFS-CACHE-MARKER"
	c := initRepo(t)
	mnt := mountpoint(t)
	grep := func(when string) {
		t.Helper()
		found, n, err := testutil.FindInDir(c.cache, []byte(marker))
		if err != nil {
			t.Fatal(err)
		}
		if found != "" {
			t.Fatalf("%s: plaintext in the cache directory: %s", when, found)
		}
		if n == 0 {
			t.Fatalf("%s: no file in %s", when, c.cache)
		}
	}
	expect(t, c.mount(t, mnt, "--commit-delay", "1h"), 0, "")
	big := bytes.Repeat([]byte(marker+" streamed content. "), 200000) // 7.6 MB
	dir := filepath.Join(mnt, "dir-"+marker)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		filepath.Join(dir, "big-"+marker):   big,
		filepath.Join(dir, "small-"+marker): []byte(marker),
	}
	for p, data := range files {
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(data); err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// An open file with unsynced writes too.
	open, err := os.Create(filepath.Join(dir, "open-"+marker))
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	open.Write(big[:100000])
	st := mountStatus(t, mnt)
	if st.PendingFiles < 2 {
		t.Fatalf("%d files queued; the test wants them queued", st.PendingFiles)
	}
	grep("queued")

	syscall.Kill(st.PID, syscall.SIGKILL)
	for processAliveTest(st.PID) {
		time.Sleep(10 * time.Millisecond)
	}
	open.Close()
	grep("after SIGKILL")

	expect(t, c.mount(t, mnt), 0, "")
	for p, want := range files {
		got, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s after the crash: %d bytes, %v", filepath.Base(p), len(got), err)
		}
	}
	grep("remounted")
	c.umount(t, mnt)
	grep("unmounted")
	fresh := cliRepo{remote: c.remote, cache: t.TempDir(), codeFile: c.codeFile}
	expect(t, fresh.mount(t, mnt, "--read-only"), 0, "")
	defer fresh.umount(t, mnt)
	for p, want := range files {
		if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s on the remote: %d bytes, %v", filepath.Base(p), len(got), err)
		}
	}
}
