package test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sealfs/sealfs/internal/daemon"
)

// sealfsLimited runs the binary like sealfs, with its address space limited
// to limitMiB (ulimit -v), and returns its peak resident set size too.
func sealfsLimited(t *testing.T, limitMiB int, args ...string) (result, int64) {
	t.Helper()
	script := `ulimit -v "$1"; shift; exec "$@"`
	cmd := exec.Command("sh", append([]string{"-c", script, "sh", strconv.Itoa(limitMiB << 10), sealfsBin}, args...)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	r := run(t, cmd)
	var rss int64
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rss = ru.Maxrss << 10
	}
	return r, rss
}

// TestHostileObjectSize: an 8 GiB (sparse) object in place of the config,
// a key slot, a snapshot, an index or the lease is refused before it is
// read: the integrity exit code, a message naming the object, and no more
// memory than usual, with the address space limited below the object's size.
func TestHostileObjectSize(t *testing.T) {
	c := initRepo(t)
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "f"), []byte("content"), 0o644)
	expect(t, c.run(t, "backup", src, c.remote), 0, "")
	index, _ := filepath.Glob(filepath.Join(c.remote, "index", "*"))
	if len(index) != 1 {
		t.Fatalf("want one index object, have %v", index)
	}
	packs, _ := filepath.Glob(filepath.Join(c.remote, "data", "*", "*"))
	if len(packs) != 1 {
		t.Fatalf("want one pack, have %v", packs)
	}
	pack, _ := filepath.Rel(c.remote, packs[0])
	fresh := strings.Repeat("5e", 32)
	for _, tc := range []struct {
		object  string
		command string
	}{
		{pack, "check"},             // its header length says 4 GiB
		{pack, "check --read-data"}, // the whole pack is read
		{"config", "snapshots"},
		{"keys/" + fresh, "snapshots"},
		{"snapshots/" + fresh, "snapshots"},
		{"index/" + filepath.Base(index[0]), "snapshots"},
		{"lease", "backup"},
	} {
		p := filepath.Join(c.remote, tc.object)
		orig, err := os.ReadFile(p)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		if err := os.Truncate(p, 8<<30); errors.Is(err, os.ErrNotExist) {
			f, err := os.Create(p)
			if err != nil {
				t.Fatal(err)
			}
			err = f.Truncate(8 << 30)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
		} else if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(tc.object, "data/") {
			f, err := os.OpenFile(p, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			_, err = f.WriteAt([]byte{0xff, 0xff, 0xff, 0x00}, 8<<30-4)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
		}
		args := append(c.flags(), strings.Fields(tc.command)...)
		if tc.command == "backup" {
			args = append(args, src)
		}
		r, rss := sealfsLimited(t, 4096, append(args, c.remote)...)
		said := r.stdout + r.stderr // check lists its problems on stdout
		if r.code != 7 || !strings.Contains(said, tc.object) || !strings.Contains(said, "over the") {
			t.Errorf("8 GiB %s, %s: exit %d (want 7), output %.300q (want it to name the object and its limit)", tc.object, tc.command, r.code, said)
		}
		if rss > 512<<20 {
			t.Errorf("8 GiB %s: sealfs %s peaked at %d MiB resident", tc.object, tc.command, rss>>20)
		}
		if orig != nil {
			err = os.WriteFile(p, orig, 0o644)
		} else {
			err = os.Remove(p)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	expect(t, c.run(t, "check", "--read-data", c.remote), 0, "")
}

// TestDeletedOlderSnapshot: an older snapshot deleted from the remote is an
// integrity error (exit 7) naming it, in check and in restore; a snapshot
// that never existed is a usage error.
func TestDeletedOlderSnapshot(t *testing.T) {
	c := initRepo(t)
	src := t.TempDir()
	for _, content := range []string{"1", "22", "333"} {
		os.WriteFile(filepath.Join(src, "f"), []byte(content), 0o644)
		expect(t, c.run(t, "backup", src, c.remote), 0, "")
	}
	expect(t, c.run(t, "restore", "--snapshot", "9", c.remote, t.TempDir()), 2, "no snapshot 9")
	// Which object is snapshot 1: the listing gives its id's first 8 digits.
	out := c.run(t, "snapshots", c.remote)
	expect(t, out, 0, "")
	var first string
	for _, line := range strings.Split(out.stdout, "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "1" {
			matches, _ := filepath.Glob(filepath.Join(c.remote, "snapshots", "*"+f[1]+"*"))
			if len(matches) == 1 {
				first = matches[0]
			}
		}
	}
	if first == "" {
		t.Fatalf("cannot tell which object is snapshot 1 from:\n%s", out.stdout)
	}
	if err := os.Remove(first); err != nil {
		t.Fatal(err)
	}
	for _, cache := range []string{c.cache, t.TempDir()} {
		fresh := cliRepo{remote: c.remote, cache: cache, codeFile: c.codeFile}
		expect(t, fresh.run(t, "check", "--read-data", c.remote), 7, "snapshot 1 is missing")
		expect(t, fresh.run(t, "restore", "--snapshot", "1", c.remote, t.TempDir()), 7, "snapshot 1 is missing")
	}
}

// waitStatus polls the mount's status until ok accepts it.
func waitStatus(t *testing.T, mnt, what string, ok func(daemon.Status) bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		st := mountStatus(t, mnt)
		if ok(st) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: status %+v", what, st)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestMountSnapshotUploadFails: through the mount, on a local-directory
// remote whose snapshots folder refuses new objects for a while (immutable),
// a commit fails after its index was stored; the next commit succeeds. A
// fresh client then reads the file byte for byte: the retried commit named
// the index of its blobs.
func TestMountSnapshotUploadFails(t *testing.T) {
	needRoot(t)
	if _, err := exec.LookPath("chattr"); err != nil {
		t.Fatal("this test needs chattr (e2fsprogs)")
	}
	c := initRepo(t)
	mnt := mountpoint(t)
	expect(t, c.mount(t, mnt, "--commit-delay", "100ms"), 0, "")
	if err := os.WriteFile(filepath.Join(mnt, "first"), []byte("first"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, mnt, "the first commit", func(st daemon.Status) bool { return st.SnapshotSeq >= 1 && st.PendingFiles == 0 })
	snapDir := filepath.Join(c.remote, "snapshots")
	chattr := func(flag string) {
		if out, err := exec.Command("chattr", flag, snapDir).CombinedOutput(); err != nil {
			t.Fatalf("chattr %s: %v %s", flag, err, out)
		}
	}
	chattr("+i")
	t.Cleanup(func() { exec.Command("chattr", "-i", snapDir).Run() })
	data := randomBytes(11, 3<<20)
	if err := os.WriteFile(filepath.Join(mnt, "second"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, mnt, "a failed commit", func(st daemon.Status) bool { return st.LastError != "" })
	indexes, _ := filepath.Glob(filepath.Join(c.remote, "index", "*"))
	if len(indexes) < 2 {
		t.Fatalf("the failed commit stored no index (%d index objects): the fault hit the wrong step", len(indexes))
	}
	chattr("-i")
	waitStatus(t, mnt, "the retried commit", func(st daemon.Status) bool {
		return st.LastError == "" && st.PendingFiles == 0 && !st.Committing
	})
	c.umount(t, mnt)

	fresh := cliRepo{remote: c.remote, cache: t.TempDir(), codeFile: c.codeFile}
	expect(t, fresh.mount(t, mnt, "--read-only"), 0, "")
	got, err := os.ReadFile(filepath.Join(mnt, "second"))
	fresh.umount(t, mnt)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the file of the retried commit reads back wrong on a fresh client: %d bytes, %v", len(got), err)
	}
	if r := fresh.run(t, "check", "--read-data", c.remote); r.code != 0 || !strings.Contains(r.stdout, "no problems found") {
		t.Fatalf("check after the retried commit: %+v", r)
	}
}
