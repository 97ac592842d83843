package test

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMountHelper: `mount -t fuse.sealfs` with fstab-style options mounts,
// reads and writes; plain umount(8) makes the daemon commit and stop.
// installMountHelper installs the sealfs binary as mount.fuse.sealfs for
// the test, or skips it if another one is there.
func installMountHelper(t *testing.T) {
	t.Helper()
	needRoot(t)
	helper := "/sbin/mount.fuse.sealfs"
	if _, err := os.Lstat(helper); err == nil {
		t.Skipf("%s exists already; not replacing it", helper)
	}
	if err := os.Symlink(sealfsBin, helper); err != nil {
		t.Skipf("cannot install the helper: %v", err)
	}
	t.Cleanup(func() { os.Remove(helper) })
}

func TestMountHelper(t *testing.T) {
	installMountHelper(t)
	c := initRepo(t)
	mnt := mountpoint(t)
	opts := "code_file=" + c.codeFile + ",cache_dir=" + c.cache + ",_netdev,nofail,x-systemd.automount,default_permissions,allow_other,commit_delay=1h"
	if out, err := exec.Command("mount", "-t", "fuse.sealfs", c.remote, mnt, "-o", opts).CombinedOutput(); err != nil {
		t.Fatalf("mount -t fuse.sealfs: %v\n%s", err, out)
	}
	if err := os.WriteFile(filepath.Join(mnt, "via-fstab"), []byte("helper"), 0o644); err != nil {
		t.Fatal(err)
	}
	pid := mountStatus(t, mnt).PID
	if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
		t.Fatalf("umount: %v %s", err, out)
	}
	for deadline := time.Now().Add(30 * time.Second); processAliveTest(pid); {
		if time.Now().After(deadline) {
			t.Fatal("the daemon did not stop after umount")
		}
		time.Sleep(20 * time.Millisecond)
	}
	r := c.run(t, "snapshots", c.remote)
	if !strings.Contains(r.stdout, "1 ") {
		t.Fatalf("no snapshot after umount(8): %s %s", r.stdout, r.stderr)
	}
	// A bad option is refused clearly, and nothing is mounted.
	out, err := exec.Command("mount", "-t", "fuse.sealfs", c.remote, mnt, "-o", "code_file="+c.codeFile+",frobnicate").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "unknown mount option") || isMounted(mnt) {
		t.Fatalf("bad option: %v %s", err, out)
	}
}

// helperShellPath is the path the shell mount.fuse3 starts searches for
// the program of a fuse.sealfs mount: mount(8) (util-linux 2.38, Debian
// 12) runs its helpers without PATH, and dash then searches its default.
var helperShellPath = []string{"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"}

// TestGenericFUSEHelper: with no mount.fuse.sealfs, `mount -t fuse.sealfs
// REMOTE MNT -o OPTS` runs mount.fuse3, which runs `sealfs REMOTE MNT -o
// OPTS` through /bin/sh, found on the shell's path; with the binary there
// (and nowhere else), the mount comes up with the options given, reads
// and writes, and unmounts with what was written committed. It runs in a
// mount namespace of its own, where a folder holding only the binary is
// /usr/local/bin; first, without it, the mount fails for want of the
// program (so nothing else mounted it).
func TestGenericFUSEHelper(t *testing.T) {
	needRoot(t)
	for _, p := range []string{"/sbin/mount.fuse.sealfs", "/usr/sbin/mount.fuse.sealfs", "/sbin/mount.sealfs"} {
		if _, err := os.Lstat(p); err == nil {
			t.Skipf("%s exists: mount(8) would run it instead of the generic helper", p)
		}
	}
	for _, d := range helperShellPath {
		if _, err := os.Stat(filepath.Join(d, "sealfs")); err == nil {
			t.Skipf("%s/sealfs is installed: the test would run it, not the binary under test", d)
		}
	}
	if _, err := os.Stat("/sbin/mount.fuse3"); err != nil {
		t.Skipf("no mount.fuse3 (the fuse3 package): %v", err)
	}
	c := initRepo(t)
	src := t.TempDir()
	writeFileT(t, src, "a", "backed up")
	expect(t, c.run(t, "backup", src, c.remote), 0, "")
	bin := t.TempDir()
	raw, err := os.ReadFile(sealfsBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "sealfs"), raw, 0o755); err != nil {
		t.Fatal(err)
	}
	mnt := mountpoint(t)
	opts := "code_file=" + c.codeFile + ",cache_dir=" + c.cache + ",log_file=" + filepath.Join(c.cache, "generic.log") +
		",_netdev,nofail,x-systemd.automount,allow_other,noatime,commit_delay=1h"
	script := `
mount -t fuse.sealfs "$REMOTE" "$MNT" -o "$OPTS" 2>&1 && { echo "mounted without the program on the path"; exit 1; }
mount --bind "$BIN" /usr/local/bin || exit 1
trap 'umount -l "$MNT" 2>/dev/null' EXIT
mount -t fuse.sealfs "$REMOTE" "$MNT" -o "$OPTS" || exit 1
echo "options: $(grep " $MNT fuse.sealfs " /proc/self/mounts | cut -d' ' -f4)"
echo "read: $(cat "$MNT/a")"
echo generic > "$MNT/b" || exit 1
sealfs umount "$MNT" || exit 1
echo "left: $(grep -c " $MNT " /proc/self/mounts)"
exit 0
`
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", script)
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "HOME=" + t.TempDir(),
		"REMOTE=" + c.remote, "MNT=" + mnt, "OPTS=" + opts, "BIN=" + bin}
	r := run(t, cmd)
	if r.code != 0 {
		log, _ := os.ReadFile(filepath.Join(c.cache, "generic.log"))
		t.Fatalf("exit %d:\n%s\n%s\ndaemon log:\n%s", r.code, r.stdout, r.stderr, log)
	}
	said := map[string]string{}
	for _, l := range strings.Split(r.stdout, "\n") {
		if k, v, ok := strings.Cut(l, ": "); ok {
			said[k] = v
		}
	}
	if !strings.Contains(r.stdout, "sealfs: not found") {
		t.Errorf("without sealfs on the path, the first mount did not fail for want of it:\n%s", r.stdout)
	}
	opt := "," + said["options"] + ","
	for _, o := range []string{"nosuid", "nodev", "noatime", "allow_other"} {
		if !strings.Contains(opt, ","+o+",") {
			t.Errorf("mounted with %s; want %s (mount.fuse3 adds suid and dev: ignored)", said["options"], o)
		}
	}
	if said["read"] != "backed up" || said["left"] != "0" {
		t.Errorf("read %q, mounts left %q:\n%s", said["read"], said["left"], r.stdout)
	}
	if isMounted(mnt) {
		t.Error("the mount is visible outside its namespace")
	}
	ls := c.run(t, "ls", c.remote, "latest")
	expect(t, ls, 0, "")
	if !strings.Contains(ls.stdout, "/b") {
		t.Errorf("the file written through the generic helper's mount is not in the newest snapshot:\n%s", ls.stdout)
	}
}

// TestSystemdNotify runs the daemon as systemd would (Type=notify): READY=1
// comes only once the mount answers, STATUS lines carry the queue, and
// SIGTERM gives STOPPING=1, a drain and a clean exit.
func TestSystemdNotify(t *testing.T) {
	needRoot(t)
	c := initRepo(t)
	mnt := mountpoint(t)
	sock := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	creds := t.TempDir()
	raw, _ := os.ReadFile(c.codeFile)
	os.WriteFile(filepath.Join(creds, "sealfs-recovery-code"), raw, 0o600)
	cmd := exec.Command(sealfsBin, "mount", "--foreground", "--cache-dir", c.cache, "--commit-delay", "1h", c.remote, mnt)
	// The code comes as a systemd credential, not a flag or the environment.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "NOTIFY_SOCKET=" + sock, "CREDENTIALS_DIRECTORY=" + creds}
	var logs bytes.Buffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	read := func() string {
		conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		buf := make([]byte, 4096)
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("no notification: %v\n%s", err, logs.String())
		}
		return string(buf[:n])
	}
	msg := read()
	if !strings.HasPrefix(msg, "READY=1") || !strings.Contains(msg, "STATUS=snapshot 0, 0 files queued") {
		t.Fatalf("first notification %q", msg)
	}
	// READY means the mount answers.
	if st := mountStatus(t, mnt); st.PID != cmd.Process.Pid {
		t.Fatalf("status pid %d, daemon %d", st.PID, cmd.Process.Pid)
	}
	os.WriteFile(filepath.Join(mnt, "queued"), bytes.Repeat([]byte("q"), 5000), 0o644)
	cmd.Process.Signal(syscall.SIGTERM)
	for {
		msg = read()
		if strings.HasPrefix(msg, "STOPPING=1") {
			break
		}
	}
	if !strings.Contains(msg, "uploading 1 queued files") {
		t.Fatalf("stopping notification %q", msg)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("daemon exit: %v\n%s", err, logs.String())
	}
	if isMounted(mnt) {
		t.Fatal("still mounted after SIGTERM")
	}
	if r := c.run(t, "snapshots", c.remote); !strings.Contains(r.stdout, "1 ") {
		t.Fatalf("the queue was not drained on SIGTERM: %s", r.stdout)
	}
}

// TestSigtermDeadRemote: with the remote down, SIGTERM still ends the
// daemon within the drain timeout; the queue stays in the journal and the
// next mount uploads it.
func TestSigtermDeadRemote(t *testing.T) {
	needRoot(t)
	s3 := newFaultyS3(t)
	c := s3.initRepo(t, "dead")
	mnt := mountpoint(t)
	expect(t, c.mount(t, mnt, "--commit-delay", "1h", "--drain-timeout", "2s"), 0, "")
	os.WriteFile(filepath.Join(mnt, "survivor"), []byte("queued while the remote was down"), 0o644)
	pid := mountStatus(t, mnt).PID
	s3.setRate(1000)
	start := time.Now()
	syscall.Kill(pid, syscall.SIGTERM)
	for processAliveTest(pid) {
		if time.Since(start) > 15*time.Second {
			t.Fatal("the daemon did not stop within the drain timeout (2s) and the lease release (5s), plus margin")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("stopped %v after SIGTERM with a dead remote", time.Since(start))
	if log, _ := os.ReadFile(filepath.Join(c.cache, "test-mount.log")); len(log) > 0 {
		t.Logf("daemon log:\n%s", log)
	}
	if isMounted(mnt) {
		t.Fatal("still mounted")
	}
	s3.setRate(0)
	expect(t, c.mount(t, mnt, "--commit-delay", "100ms"), 0, "")
	r := c.umount(t, mnt)
	if !strings.Contains(r.stdout, "everything is committed") {
		t.Fatalf("after the restart: %q", r.stdout)
	}
	fresh := cliRepo{remote: c.remote, cache: t.TempDir(), codeFile: c.codeFile}
	expect(t, fresh.mount(t, mnt, "--read-only"), 0, "")
	defer fresh.umount(t, mnt)
	if got, _ := os.ReadFile(filepath.Join(mnt, "survivor")); string(got) != "queued while the remote was down" {
		t.Fatalf("survivor = %q", got)
	}
}

// TestUnitFiles: the units pass systemd-analyze verify (with the binary
// path pointed at the one under test, as make install does).
func TestUnitFiles(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("systemd-analyze is missing in CI: .ci/run installs systemd")
		}
		t.Skip("systemd-analyze not installed (apt-get install systemd)")
	}
	dir := t.TempDir()
	for _, name := range []string{"sealfs@.service", "sealfs-check@.service", "sealfs-check@.timer", "mnt-backup.mount", "mnt-backup.automount"} {
		b, err := os.ReadFile(filepath.Join("..", "contrib", "systemd", name))
		if err != nil {
			t.Fatal(err)
		}
		b = bytes.ReplaceAll(b, []byte("/usr/local/bin/sealfs"), []byte(sealfsBin))
		name = strings.Replace(name, "@.", "@demo.", 1)
		os.WriteFile(filepath.Join(dir, name), b, 0o644)
	}
	cmd := exec.Command("systemd-analyze", "verify", "--man=no", "./sealfs@demo.service", "./sealfs-check@demo.service", "./sealfs-check@demo.timer", "./mnt-backup.mount", "./mnt-backup.automount")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestMountOfflineAtBoot: with the remote down, a mount still comes up
// read-write from local state (the cached snapshot), says so, queues what
// is written, and uploads it once the remote answers.
func TestMountOfflineAtBoot(t *testing.T) {
	needRoot(t)
	s3 := newFaultyS3(t)
	c := s3.initRepo(t, "offline")
	mnt := mountpoint(t)
	expect(t, c.mount(t, mnt, "--commit-delay", "100ms"), 0, "")
	os.MkdirAll(filepath.Join(mnt, "dir"), 0o755)
	os.WriteFile(filepath.Join(mnt, "dir", "before"), []byte("written while up"), 0o644)
	c.umount(t, mnt)

	s3.setRate(1000) // the remote is down at "boot"
	expect(t, c.mount(t, mnt, "--commit-delay", "100ms"), 0, "")
	if _, err := os.Stat(filepath.Join(mnt, "dir", "before")); err != nil {
		t.Fatalf("the cached snapshot is not visible offline: %v", err)
	}
	st := mountStatus(t, mnt)
	if !strings.Contains(st.Lease, "not held yet") {
		t.Fatalf("status does not say the mount is offline: %+v", st)
	}
	log, _ := os.ReadFile(filepath.Join(c.cache, "test-mount.log"))
	if !strings.Contains(string(log), "cannot be reached") {
		t.Fatalf("the log does not say the remote is down:\n%s", log)
	}
	if err := os.WriteFile(filepath.Join(mnt, "dir", "offline"), []byte("written while down"), 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if st := mountStatus(t, mnt); st.PendingFiles == 0 {
		t.Fatalf("nothing queued while the remote is down: %+v", st)
	}
	s3.setRate(0)
	for deadline := time.Now().Add(90 * time.Second); ; {
		st := mountStatus(t, mnt)
		if st.PendingFiles == 0 && st.LastError == "" && !strings.Contains(st.Lease, "not held") && st.SnapshotSeq >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the queue did not go up once the remote answered: %+v", st)
		}
		time.Sleep(200 * time.Millisecond)
	}
	c.umount(t, mnt)
	fresh := cliRepo{remote: c.remote, cache: t.TempDir(), codeFile: c.codeFile}
	expect(t, fresh.mount(t, mnt, "--read-only"), 0, "")
	defer fresh.umount(t, mnt)
	for name, want := range map[string]string{"before": "written while up", "offline": "written while down"} {
		if got, err := os.ReadFile(filepath.Join(mnt, "dir", name)); err != nil || string(got) != want {
			t.Fatalf("%s = %q, %v", name, got, err)
		}
	}
}
