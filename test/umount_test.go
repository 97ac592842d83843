package test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/sealfs/sealfs/internal/fusefs"
)

// victim starts a process that `sealfs umount` must never signal.
func victim(t *testing.T) *exec.Cmd {
	t.Helper()
	v := exec.Command("sleep", "600")
	if err := v.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Process.Kill(); v.Wait() })
	return v
}

func forgedStatus(pid int, mountpoint string) []byte {
	b, _ := json.Marshal(map[string]any{"pid": pid, "mountpoint": mountpoint, "state_dir": "/nonexistent"})
	return b
}

// fakeSealfs is a FUSE filesystem of type fuse.sealfs that is not sealfs:
// its root serves whatever status document it is given.
type fakeSealfs struct {
	gofs.Inode
	status []byte
}

var _ gofs.NodeGetxattrer = (*fakeSealfs)(nil)

func (f *fakeSealfs) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	if attr != fusefs.StatusXattr {
		return 0, syscall.ENODATA
	}
	if len(dest) < len(f.status) {
		return uint32(len(f.status)), syscall.ERANGE
	}
	return uint32(copy(dest, f.status)), 0
}

// mountFake serves a fake fuse.sealfs mount at a new directory.
func mountFake(t *testing.T, status func(mnt string) []byte) string {
	t.Helper()
	mnt := filepath.Join(t.TempDir(), "fake")
	os.Mkdir(mnt, 0o755)
	root := &fakeSealfs{status: status(mnt)}
	srv, err := gofs.Mount(mnt, root, &gofs.Options{MountOptions: fuse.MountOptions{Name: "sealfs", FsName: "fake", DirectMount: true}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Unmount(); err != nil {
			t.Errorf("unmounting the fake: %v", err)
		}
	})
	return mnt
}

// TestUmountTrustsNoXattr (issue 8, defect 6): `sealfs umount` signals only
// the sealfs daemon serving a fuse.sealfs mount point, whatever a status
// xattr claims: a forged status on a plain folder, on a tmpfs, or served
// by a fake fuse.sealfs filesystem, naming a victim process or the daemon
// of another mount, is refused with a clear error and the victim lives.
func TestUmountTrustsNoXattr(t *testing.T) {
	needRoot(t)
	v := victim(t)

	plain := t.TempDir()
	if err := unix.Setxattr(plain, fusefs.StatusXattr, forgedStatus(v.Process.Pid, plain), 0); err != nil {
		t.Fatalf("setting the forged xattr: %v", err)
	}
	tmpfs := filepath.Join(t.TempDir(), "tmpfs")
	os.Mkdir(tmpfs, 0o755)
	if err := unix.Mount("tmpfs", tmpfs, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(tmpfs, unix.MNT_DETACH) })
	if err := unix.Setxattr(tmpfs, fusefs.StatusXattr, forgedStatus(v.Process.Pid, tmpfs), 0); err != nil {
		t.Fatalf("setting the forged xattr on tmpfs: %v", err)
	}
	fake := mountFake(t, func(mnt string) []byte { return forgedStatus(v.Process.Pid, mnt) })

	// A real sealfs mount, whose daemon a fake mount names.
	c := initRepo(t)
	real := mountpoint(t)
	expect(t, c.mount(t, real), 0, "")
	daemonPID := mountStatus(t, real).PID
	fakeOfReal := mountFake(t, func(mnt string) []byte { return forgedStatus(daemonPID, mnt) })

	for _, tc := range []struct{ name, dir, msg string }{
		{"plain folder", plain, "not a mount point"},
		{"tmpfs", tmpfs, "tmpfs mount, not a sealfs one"},
		{"fake fuse.sealfs", fake, "refusing to signal pid"},
		{"fake naming another mount's daemon", fakeOfReal, "is the sealfs daemon of " + real + ", not of " + fakeOfReal},
	} {
		r := sealfs(t, nil, "umount", tc.dir)
		if r.code == 0 || !strings.Contains(r.stderr, tc.msg) {
			t.Errorf("%s: umount exited %d, stderr %q; want a refusal saying %q", tc.name, r.code, r.stderr, tc.msg)
		}
		if !processAliveTest(v.Process.Pid) {
			t.Fatalf("%s: umount killed the victim process", tc.name)
		}
		if !processAliveTest(daemonPID) || !isMounted(real) {
			t.Fatalf("%s: umount stopped the daemon of another mount", tc.name)
		}
	}
	// The daemon of the real mount is stopped by umount of its own mount.
	c.umount(t, real)
	if processAliveTest(daemonPID) {
		t.Fatal("the daemon still runs after sealfs umount returned")
	}
}

// TestMountRightAfterUmount (issue 8, defect 10): a mount right after an
// unmount of the same repository and cache succeeds, whether the unmount
// was `sealfs umount` (which returns once the daemon has let go and
// exited) or umount(8) (which returns at once; the next mount waits for
// the departing daemon). Every file written before an unmount is there.
func TestMountRightAfterUmount(t *testing.T) {
	needRoot(t)
	c := initRepo(t)
	mnt := mountpoint(t)
	const rounds = 8
	for i := range rounds {
		expect(t, c.mount(t, mnt), 0, "")
		pid := mountStatus(t, mnt).PID
		// Something to upload makes the daemon linger after the unmount.
		if err := os.WriteFile(filepath.Join(mnt, fmt.Sprintf("f%d", i)), bytes.Repeat([]byte{byte(i)}, 1<<20), 0o644); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			r := c.umount(t, mnt)
			expect(t, r, 0, "")
			if processAliveTest(pid) {
				t.Fatalf("round %d: sealfs umount returned while its daemon (pid %d) runs", i, pid)
			}
		} else if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Fatalf("round %d: umount(8): %v\n%s", i, err, out)
		}
	}
	expect(t, c.mount(t, mnt), 0, "")
	for i := range rounds {
		b, err := os.ReadFile(filepath.Join(mnt, fmt.Sprintf("f%d", i)))
		if err != nil || !bytes.Equal(b, bytes.Repeat([]byte{byte(i)}, 1<<20)) {
			t.Fatalf("f%d after %d unmounts: %d bytes, %v", i, rounds, len(b), err)
		}
	}
	c.umount(t, mnt)
}

// TestUmountWithoutPtrace (issue 8, defect 6): a daemon is not dumpable,
// so a caller without CAP_SYS_PTRACE cannot see its executable; umount
// still stops a real daemon, and still refuses a fake mount that names
// another sealfs process (also not dumpable) that serves no mount.
func TestUmountWithoutPtrace(t *testing.T) {
	needRoot(t)
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv (util-linux) is not installed")
	}
	c := initRepo(t)
	// The victim: a sealfs command waiting for its code on a fifo.
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	v := exec.Command(sealfsBin, "snapshots", "--cache-dir", c.cache, "--code-file", fifo, c.remote)
	if err := v.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Process.Kill(); v.Wait() })
	w, err := os.OpenFile(fifo, os.O_WRONLY, 0) // returns once it waits on the fifo
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	fake := mountFake(t, func(mnt string) []byte { return forgedStatus(v.Process.Pid, mnt) })
	real := mountpoint(t)
	expect(t, c.mount(t, real), 0, "")
	noPtrace := func(mnt string) result {
		cmd := exec.Command(setpriv, "--bounding-set=-sys_ptrace", sealfsBin, "umount", mnt)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		return result{stdout: out.String(), stderr: out.String(), code: code}
	}
	r := noPtrace(fake)
	if r.code == 0 || !strings.Contains(r.stderr, "not a sealfs mount daemon") {
		t.Errorf("umount of the fake without ptrace: exit %d, %q; want a refusal", r.code, r.stderr)
	}
	if !processAliveTest(v.Process.Pid) {
		t.Fatal("umount killed the victim")
	}
	r = noPtrace(real)
	if r.code != 0 || isMounted(real) {
		t.Fatalf("umount of a real mount without ptrace: exit %d, %q", r.code, r.stderr)
	}
}

// TestSigtermRightAfterReady: a SIGTERM that arrives the moment the daemon
// says it is ready (as `sealfs umount` right after `sealfs mount` sends it)
// stops the daemon. It used to be swallowed when it came before the daemon
// listened for it, and the umount waited forever.
func TestSigtermRightAfterReady(t *testing.T) {
	needRoot(t)
	c := initRepo(t)
	mnt := mountpoint(t)
	for round := range 10 {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(sealfsBin, "mount", "--cache-dir", c.cache, "--code-file", c.codeFile,
			"--foreground", "--ready-fd=3", "--", c.remote, mnt)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
		cmd.ExtraFiles = []*os.File{w}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		w.Close()
		line := make([]byte, 64)
		n, _ := r.Read(line)
		r.Close()
		if !strings.HasPrefix(string(line[:n]), "ready") {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("round %d: the daemon did not get ready: %q\n%s", round, line[:n], stderr.String())
		}
		cmd.Process.Signal(syscall.SIGTERM)
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		select {
		case err := <-exited:
			if err != nil {
				t.Fatalf("round %d: the daemon stopped with %v\n%s", round, err, stderr.String())
			}
		case <-time.After(60 * time.Second):
			cmd.Process.Kill()
			<-exited
			exec.Command("fusermount3", "-uz", mnt).Run()
			t.Fatalf("round %d: a SIGTERM sent right after readiness was not heard: the daemon still runs a minute later", round)
		}
	}
}

// TestRelativeCacheDir: a mount started with a relative --cache-dir (as
// the demo does) is stopped cleanly by `sealfs umount` run from another
// folder: the daemon tells where its state is as an absolute path, so
// umount finds the exit status there (it said the daemon "was killed or
// crashed").
func TestRelativeCacheDir(t *testing.T) {
	needRoot(t)
	c := initRepo(t)
	base := filepath.Dir(c.cache)
	mnt := mountpoint(t)
	mount := exec.Command(sealfsBin, "mount", "--cache-dir", "cache", "--code-file", "code", "remote", mnt)
	mount.Dir = base
	if out, err := mount.CombinedOutput(); err != nil {
		t.Fatalf("mount: %v\n%s", err, out)
	}
	if st := mountStatus(t, mnt); !filepath.IsAbs(st.StateDir) {
		t.Errorf("the status names its state directory as %q, not an absolute path", st.StateDir)
	}
	if err := os.WriteFile(filepath.Join(mnt, "f"), []byte("queued"), 0o644); err != nil {
		t.Fatal(err)
	}
	umount := exec.Command(sealfsBin, "umount", mnt)
	umount.Dir = t.TempDir()
	out, err := umount.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "everything is committed as snapshot 1") {
		t.Fatalf("umount from another folder: %v\n%s", err, out)
	}
}
