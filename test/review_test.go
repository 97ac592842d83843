package test

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/sealfs/sealfs/internal/daemon"
)

// TestUmountDaemonDiedWhileDraining (issue 8 review): when the daemon dies
// while it drains (killed, out of memory) and so never reports how it
// ended, `sealfs umount` does not report a clean unmount with exit 0: the
// queue may not have reached the remote and the mount point may be dead.
func TestUmountDaemonDiedWhileDraining(t *testing.T) {
	needRoot(t)
	c := initRepo(t)
	mnt := mountpoint(t)
	expect(t, c.mount(t, mnt), 0, "")
	st := mountStatus(t, mnt)
	data := make([]byte, 64<<20)
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	if err := os.WriteFile(filepath.Join(mnt, "big"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(sealfsBin, "umount", mnt)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill the daemon as soon as it says it is stopping.
	presence := filepath.Join(st.StateDir, daemon.PresenceFile)
	deadline := time.Now().Add(time.Minute)
	for {
		var p daemon.Presence
		if b, err := os.ReadFile(presence); err == nil && json.Unmarshal(b, &p) == nil && !p.Stopping.IsZero() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the daemon never said it was stopping")
		}
		time.Sleep(2 * time.Millisecond)
	}
	syscall.Kill(st.PID, syscall.SIGKILL)
	err := cmd.Wait()
	if _, serr := os.Stat(filepath.Join(st.StateDir, daemon.ExitStatusFile)); serr == nil {
		t.Skip("the daemon finished draining before it could be killed")
	}
	var ee *exec.ExitError
	if err == nil || !errors.As(err, &ee) {
		t.Errorf("sealfs umount exited 0 although its daemon was killed while draining: %q", out.String())
	}
	if isMounted(mnt) {
		t.Errorf("the dead mount is left at %s after sealfs umount", mnt)
	}
}

// TestUmountHungDaemon (issue 8 review): `sealfs umount --timeout` returns
// within about its timeout when the daemon does not answer at all (hung,
// stopped): reading its status must not wait forever.
func TestUmountHungDaemon(t *testing.T) {
	needRoot(t)
	c := initRepo(t)
	mnt := mountpoint(t)
	expect(t, c.mount(t, mnt), 0, "")
	st := mountStatus(t, mnt)
	syscall.Kill(st.PID, syscall.SIGSTOP)
	t.Cleanup(func() { syscall.Kill(st.PID, syscall.SIGCONT) })
	cmd := exec.Command(sealfsBin, "umount", "--timeout", "3s", mnt)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(out.String(), "does not answer") {
			t.Errorf("sealfs umount of a hung daemon: %v, %q; want a failure saying it does not answer", err, out.String())
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Errorf("sealfs umount --timeout 3s of a hung daemon still runs after 30s: %q", out.String())
	}
	syscall.Kill(st.PID, syscall.SIGCONT)
}

// TestCheckRemoteFailureIsNoDamage (issue 8 review): when the remote fails
// the reads of `check --read-data` (a network that stays down past the
// retries), check does not say the objects are damaged or missing and does
// not exit with the integrity code 7, which says the backup was tampered
// with: nothing was found damaged, the check did not finish.
func TestCheckRemoteFailureIsNoDamage(t *testing.T) {
	var failPacks atomic.Bool
	inner := gofakes3.New(s3mem.New()).Server()
	f := newFaultyS3Over(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failPacks.Load() && r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/data/") {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		inner.ServeHTTP(w, r)
	}))
	c := f.initRepo(t, "bucket")
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "f"), bytes.Repeat([]byte("data"), 1000), 0o644); err != nil {
		t.Fatal(err)
	}
	expect(t, c.run(t, "backup", src, c.remote), 0, "")
	expect(t, c.run(t, "check", "--read-data", c.remote), 0, "")
	failPacks.Store(true)
	r := c.run(t, "check", "--read-data", c.remote)
	if r.code == 0 || r.code == 7 || strings.Contains(r.stderr+r.stdout, "damaged or missing") {
		t.Errorf("check --read-data with the remote failing its reads: exit %d (want neither 0 nor 7), output %q", r.code, r.stdout+r.stderr)
	}
}

// TestMountPunchHoleInStoredFile (issue 8 review): fallocate(2) punching a
// hole in a stored file, through the mount, reads back as zeros at once
// and after a remount on a fresh cache.
func TestMountPunchHoleInStoredFile(t *testing.T) {
	needRoot(t)
	c := initRepo(t)
	mnt := mountpoint(t)
	expect(t, c.mount(t, mnt), 0, "")
	want := bytes.Repeat([]byte("a"), 64<<10)
	p := filepath.Join(mnt, "f")
	if err := os.WriteFile(p, want, 0o644); err != nil {
		t.Fatal(err)
	}
	c.umount(t, mnt)
	expect(t, c.mount(t, mnt), 0, "")
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Fallocate(int(f.Fd()), 0x3 /* PUNCH_HOLE|KEEP_SIZE */, 4096, 8192); err != nil {
		f.Close()
		t.Skipf("fallocate through the mount: %v", err)
	}
	f.Close()
	clear(want[4096 : 4096+8192])
	if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, want) {
		t.Errorf("after punching a hole: %v, bytes 4096.. = %q", err, got[4096:4100])
	}
	c.umount(t, mnt)
	c.cache = filepath.Join(t.TempDir(), "fresh")
	expect(t, c.mount(t, mnt), 0, "")
	if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, want) {
		t.Errorf("after a remount on a fresh cache: %v, bytes 4096.. = %q", err, got[4096:4100])
	}
	c.umount(t, mnt)
}
