package test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestMountInlineFilesKilled: small new files live in journal records, not
// in staging files (docs/SPEC.md §12.2, content records). An untar-like
// run writes 300 small files (up to 64 KiB) into nested folders through
// the real binary, with no commit in between, then rewrites one, truncates
// one (to a smaller size, and another to zero with O_TRUNC and no write),
// and grows one past 64 KiB, all closed. Only the grown one and the three
// changed after their content was recorded may have a staging file. The daemon is then killed (SIGKILL): a new mount shows
// every file byte-exact (from the journal alone), and so does a mount on a
// fresh cache after that one's unmount (from the remote).
func TestMountInlineFilesKilled(t *testing.T) {
	needRoot(t)
	c := initRepo(t)
	mnt := mountpoint(t)
	expect(t, c.mount(t, mnt, "--commit-delay", "1h"), 0, "")
	defer stopMount(t, mnt)
	rng := rand.New(rand.NewPCG(11, 12))
	want := map[string][]byte{}
	for i := range 300 {
		name := filepath.Join(fmt.Sprintf("d%d", i%7), fmt.Sprintf("e%d", i%3), fmt.Sprintf("f%03d", i))
		b := make([]byte, rng.IntN(64<<10+1))
		for k := range b {
			b[k] = byte(rng.Uint32())
		}
		if err := os.MkdirAll(filepath.Join(mnt, filepath.Dir(name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(mnt, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
		want[name] = b
	}
	change := func(name string, fn func(f *os.File, b []byte) []byte, flag int) {
		t.Helper()
		f, err := os.OpenFile(filepath.Join(mnt, name), os.O_RDWR|flag, 0)
		if err != nil {
			t.Fatal(err)
		}
		want[name] = fn(f, want[name])
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	change("d1/e1/f001", func(f *os.File, b []byte) []byte { // rewritten in place
		f.WriteAt([]byte("rewritten"), 3)
		return append(append(append([]byte(nil), b[:3]...), "rewritten"...), b[12:]...)
	}, 0)
	if len(want["d1/e1/f001"]) < 12 {
		t.Fatal("test file too short")
	}
	change("d2/e2/f002", func(f *os.File, b []byte) []byte { f.Truncate(5); return b[:5] }, 0)
	change("d3/e0/f003", func(f *os.File, b []byte) []byte { return nil }, os.O_TRUNC)
	change("d4/e1/f004", func(f *os.File, b []byte) []byte { // past 64 KiB: to disk
		more := bytes.Repeat([]byte("grown"), 20000)
		f.WriteAt(more, int64(len(b)))
		return append(append([]byte(nil), b...), more...)
	}, 0)
	// The grown one's, and those of the three changed after their content
	// was recorded (written to disk, not into the journal again; the
	// kernel may send the O_TRUNC as a truncation).
	staged, _ := filepath.Glob(filepath.Join(c.cache, "*", "work", "staging", "*"))
	if len(staged) > 4 {
		t.Errorf("%d staging files for 300 small files, three changed after they were closed and one grown past 64 KiB, want at most 4", len(staged))
	}
	pid := mountPID(mnt)
	if pid == 0 {
		t.Fatal("no daemon pid")
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for processAliveTest(pid) {
		time.Sleep(5 * time.Millisecond)
	}
	if out, err := exec.Command("fusermount3", "-uz", mnt).CombinedOutput(); err != nil {
		t.Fatalf("fusermount3 -uz: %v %s", err, out)
	}
	check := func(when string) {
		t.Helper()
		for n, b := range want {
			got, err := os.ReadFile(filepath.Join(mnt, n))
			if err != nil {
				t.Errorf("%s: %s: %v", when, n, err)
			} else if !bytes.Equal(got, b) {
				t.Errorf("%s: %s reads %d bytes, not the %d written", when, n, len(got), len(b))
			}
		}
	}
	expect(t, c.mount(t, mnt, "--commit-delay", "1h"), 0, "")
	check("after the kill")
	c.umount(t, mnt)
	c.cache = t.TempDir()
	expect(t, c.mount(t, mnt, "--read-only"), 0, "")
	check("from the remote")
	c.umount(t, mnt)
}

// TestMountSyncOtherDescriptor: fsync(2) on a descriptor that wrote
// nothing makes durable what another descriptor of the file wrote (a small
// new file, whose content the daemon holds in memory while it is open;
// and a stored file changed in place): after a SIGKILL of the daemon a new
// mount reads both as written.
func TestMountSyncOtherDescriptor(t *testing.T) {
	needRoot(t)
	c := initRepo(t)
	mnt := mountpoint(t)
	expect(t, c.mount(t, mnt, "--commit-delay", "1h"), 0, "")
	defer stopMount(t, mnt)
	stored := bytes.Repeat([]byte("stored "), 40000)
	if err := os.WriteFile(filepath.Join(mnt, "stored"), stored, 0o644); err != nil {
		t.Fatal(err)
	}
	c.umount(t, mnt) // commits it
	expect(t, c.mount(t, mnt, "--commit-delay", "1h"), 0, "")
	small := []byte("a small file written through one descriptor")
	want := map[string][]byte{"small": small, "stored": append([]byte(nil), stored...)}
	copy(want["stored"][150000:], "CHANGED")
	var keep []*os.File
	defer func() {
		for _, f := range keep {
			f.Close()
		}
	}()
	for _, name := range []string{"small", "stored"} {
		w, err := os.OpenFile(filepath.Join(mnt, name), os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		keep = append(keep, w)
		p, off := small, int64(0)
		if name == "stored" {
			p, off = []byte("CHANGED"), 150000
		}
		if _, err := w.WriteAt(p, off); err != nil {
			t.Fatal(err)
		}
		r, err := os.Open(filepath.Join(mnt, name))
		if err != nil {
			t.Fatal(err)
		}
		keep = append(keep, r)
		if err := r.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	pid := mountPID(mnt)
	if pid == 0 {
		t.Fatal("no daemon pid")
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for processAliveTest(pid) {
		time.Sleep(5 * time.Millisecond)
	}
	for _, f := range keep {
		f.Close()
	}
	keep = nil
	if out, err := exec.Command("fusermount3", "-uz", mnt).CombinedOutput(); err != nil {
		t.Fatalf("fusermount3 -uz: %v %s", err, out)
	}
	expect(t, c.mount(t, mnt, "--commit-delay", "1h"), 0, "")
	for n, b := range want {
		got, err := os.ReadFile(filepath.Join(mnt, n))
		if err != nil {
			t.Errorf("after the kill: %s: %v", n, err)
		} else if !bytes.Equal(got, b) {
			t.Errorf("after the kill: %s reads %d bytes, not the %d written and fsynced (through another descriptor)", n, len(got), len(b))
		}
	}
	c.umount(t, mnt)
}
