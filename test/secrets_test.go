package test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func randomHex(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// TestRemoteCredentialsHidden (issue 8, defect 7): the credentials of a
// connection-string remote appear nowhere another user or a log reader can
// see them: not in /proc/mounts, not in the daemon's arguments (background
// or foreground) or environment, not in `sealfs status`, the daemon's log,
// or what the commands print, even in errors. The mount still works, so
// the real remote reached the daemon.
func TestRemoteCredentialsHidden(t *testing.T) {
	needRoot(t)
	f := newFaultyS3(t)
	keyID, secret := "AKID"+randomHex(t, 8), "SECRET"+randomHex(t, 16)
	remoteOf := func(bucket string) string {
		return fmt.Sprintf(":s3,provider=Other,access_key_id=%s,secret_access_key=%s,region=us-east-1,force_path_style=true,endpoint='%s':%s/repo", keyID, secret, f.srv.URL, bucket)
	}
	dir := t.TempDir()
	c := cliRepo{remote: remoteOf("bucket"), cache: filepath.Join(dir, "cache"), codeFile: filepath.Join(dir, "code")}
	hidden := func(what, text string) {
		t.Helper()
		if strings.Contains(text, secret) || strings.Contains(text, keyID) {
			t.Errorf("%s shows the credentials:\n%s", what, text)
		}
	}
	r := sealfs(t, nil, "init", "--cache-dir", c.cache, "--code-file", c.codeFile, c.remote)
	expect(t, r, 0, "")
	hidden("init's output", r.stdout+r.stderr)
	if !strings.Contains(r.stdout, "secret_access_key=***") {
		t.Errorf("init does not name the remote in redacted form:\n%s", r.stdout)
	}

	mnt := mountpoint(t)
	r = c.mount(t, mnt)
	expect(t, r, 0, "")
	hidden("mount's output", r.stdout+r.stderr)
	if err := os.WriteFile(filepath.Join(mnt, "f"), []byte("through the hidden remote"), 0o644); err != nil {
		t.Fatal(err)
	}
	pid := mountStatus(t, mnt).PID
	mounts, _ := os.ReadFile("/proc/mounts")
	hidden("/proc/mounts", string(mounts))
	if !strings.Contains(string(mounts), "secret_access_key=***") {
		t.Errorf("/proc/mounts does not show the redacted remote:\n%s", mounts)
	}
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	hidden("the daemon's arguments", string(cmdline))
	environ, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	hidden("the daemon's environment", string(environ))
	for _, args := range [][]string{{"status", mnt}, {"status", "--json", mnt}} {
		r := sealfs(t, nil, args...)
		expect(t, r, 0, "")
		hidden(strings.Join(args, " "), r.stdout)
		if !strings.Contains(r.stdout, "secret_access_key=***") {
			t.Errorf("%s does not show the redacted remote:\n%s", strings.Join(args, " "), r.stdout)
		}
	}
	c.umount(t, mnt)
	logText, err := os.ReadFile(filepath.Join(c.cache, "test-mount.log"))
	if err != nil || !strings.Contains(string(logText), "secret_access_key=***") {
		t.Errorf("the daemon's log does not name the redacted remote (%v):\n%s", err, logText)
	}
	hidden("the daemon's log", string(logText))

	// A foreground daemon (systemd's) given the remote as an argument shows
	// it redacted, under the same pid.
	fg := exec.Command(sealfsBin, "mount", "--foreground", "--cache-dir", c.cache, "--code-file", c.codeFile, c.remote, mnt)
	fg.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	var fgErr bytes.Buffer
	fg.Stderr = &fgErr
	if err := fg.Start(); err != nil {
		t.Fatal(err)
	}
	waitMounted(t, mnt, fg)
	cmdline, _ = os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", fg.Process.Pid))
	hidden("the foreground daemon's arguments", string(cmdline))
	if !strings.Contains(string(cmdline), "secret_access_key=***") {
		t.Errorf("the foreground daemon's arguments are not the redacted ones: %q", cmdline)
	}
	b, err := os.ReadFile(filepath.Join(mnt, "f"))
	if err != nil || string(b) != "through the hidden remote" {
		t.Errorf("reading back through the foreground daemon: %q, %v", b, err)
	}
	fg.Process.Signal(syscall.SIGTERM)
	if err := fg.Wait(); err != nil {
		t.Errorf("foreground daemon: %v\n%s", err, fgErr.String())
	}
	hidden("the foreground daemon's log", fgErr.String())

	// Errors name the remote redacted too.
	r = sealfs(t, nil, "snapshots", "--cache-dir", t.TempDir(), "--code-file", c.codeFile, remoteOf("nobucket"))
	if r.code == 0 {
		t.Fatalf("snapshots of an empty bucket succeeded: %+v", r)
	}
	hidden("an error", r.stderr)

	// A fresh cache reads back what was written: the real remote was used.
	dst := filepath.Join(t.TempDir(), "dst")
	expect(t, sealfs(t, nil, "restore", "--cache-dir", t.TempDir(), "--code-file", c.codeFile, c.remote, dst), 0, "")
	if b, _ := os.ReadFile(filepath.Join(dst, "f")); string(b) != "through the hidden remote" {
		t.Fatalf("restored %q", b)
	}
}

// waitMounted waits until mnt is mounted, failing if the daemon exits.
func waitMounted(t *testing.T, mnt string, daemon *exec.Cmd) {
	t.Helper()
	for start := time.Now(); !isMounted(mnt); time.Sleep(20 * time.Millisecond) {
		if daemon.ProcessState != nil || time.Since(start) > time.Minute {
			t.Fatalf("%s was not mounted", mnt)
		}
	}
}

// TestNoCoreDumps (issue 8, defect 7): a process that holds the key writes
// no core file, even when started with core files allowed: its core limit
// is 0 (a crash of the daemon leaves no core), and it is not dumpable (the
// kernel then hands its /proc files to root, and refuses other processes
// of its user ptrace and its memory).
func TestNoCoreDumps(t *testing.T) {
	needRoot(t)
	c := initRepo(t)
	mnt := mountpoint(t)
	cwd := t.TempDir() // where core_pattern "core" would put a core file
	d := exec.Command("sh", "-c", `ulimit -c unlimited && exec "$0" "$@"`, sealfsBin, "mount", "--foreground",
		"--cache-dir", c.cache, "--code-file", c.codeFile, c.remote, mnt)
	d.Dir = cwd
	d.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "GOTRACEBACK=crash"}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	waitMounted(t, mnt, d)
	if limit := coreLimit(t, d.Process.Pid); limit != "0 0" {
		t.Errorf("the daemon may write core files: core limit %s", limit)
	}
	d.Process.Signal(syscall.SIGABRT)
	d.Wait()
	ws := d.ProcessState.Sys().(syscall.WaitStatus)
	if !ws.Signaled() {
		t.Fatalf("the daemon did not crash on SIGABRT: %v", d.ProcessState)
	}
	if ws.CoreDump() {
		t.Error("the daemon dumped core")
	}
	if cores, _ := filepath.Glob(filepath.Join(cwd, "core*")); len(cores) > 0 {
		t.Errorf("core files left: %v", cores)
	}

	// Not dumpable: seen on a command run by an unprivileged user, caught
	// while it waits for the code from a fifo.
	const nobody = 65534
	for _, d := range []string{filepath.Dir(sealfsBin), filepath.Dir(filepath.Dir(c.remote)), filepath.Dir(c.remote)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := exec.Command("chmod", "-R", "a+rX", c.remote).Run(); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(filepath.Dir(c.remote), "code-fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chown(fifo, nobody, nobody)
	home := filepath.Join(filepath.Dir(c.remote), "home")
	os.Mkdir(home, 0o700)
	os.Chown(home, nobody, nobody)
	u := exec.Command(sealfsBin, "snapshots", "--cache-dir", filepath.Join(home, "cache"), "--code-file", fifo, c.remote)
	u.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home}
	u.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	var out bytes.Buffer
	u.Stdout, u.Stderr = &out, &out
	if err := u.Start(); err != nil {
		t.Fatal(err)
	}
	// Opening the fifo for writing returns once the command has opened it.
	w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(fmt.Sprintf("/proc/%d/status", u.Process.Pid), &st); err != nil {
		t.Fatal(err)
	}
	if st.Uid != 0 {
		t.Errorf("a sealfs process of uid %d is dumpable: its /proc files belong to uid %d, not root", nobody, st.Uid)
	}
	if limit := coreLimit(t, u.Process.Pid); limit != "0 0" {
		t.Errorf("the command may write core files: core limit %s", limit)
	}
	code, _ := os.ReadFile(c.codeFile)
	w.Write(code)
	w.Close()
	if err := u.Wait(); err != nil {
		t.Errorf("snapshots as uid %d: %v\n%s", nobody, err, out.String())
	}
}

// coreLimit returns the soft and hard core file limits of a process, as
// /proc/PID/limits shows them.
func coreLimit(t *testing.T, pid int) string {
	t.Helper()
	limits, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(limits), "\n") {
		if rest, ok := strings.CutPrefix(line, "Max core file size"); ok {
			if f := strings.Fields(rest); len(f) >= 2 {
				return f[0] + " " + f[1]
			}
		}
	}
	t.Fatalf("no core limit in /proc/%d/limits", pid)
	return ""
}

// TestSecretFileModeWarning (issue 8, defect 7): a recovery code or
// password file that others can read draws a warning that says what to do.
func TestSecretFileModeWarning(t *testing.T) {
	c := initRepo(t)
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o600, 0o400} {
		if err := os.Chmod(c.codeFile, mode); err != nil {
			t.Fatal(err)
		}
		r := c.run(t, "snapshots", c.remote)
		expect(t, r, 0, "")
		warned := strings.Contains(r.stderr, "can be read by other users") && strings.Contains(r.stderr, "chmod 600 "+c.codeFile)
		if want := mode&0o044 != 0; warned != want {
			t.Errorf("code file mode %04o: warned %v, want %v; stderr %q", mode, warned, want, r.stderr)
		}
	}
	pw := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(pw, []byte("a password of some length\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The vault is not there; the warning comes before it is asked.
	r := sealfs(t, nil, "snapshots", "--cache-dir", c.cache, "--vault", "http://127.0.0.1:1", "--password-file", pw, c.remote)
	if !strings.Contains(r.stderr, "chmod 600 "+pw) {
		t.Errorf("no warning for a password file of mode 0644: %q", r.stderr)
	}
}
