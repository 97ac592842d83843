package test

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startVaultServer runs the real `sealfs vault serve` on a free loopback
// port with its embedded SoftHSM2 token, and waits for /healthz.
func startVaultServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(sealfsBin, "vault", "serve", "--listen", addr, "--data-dir", filepath.Join(t.TempDir(), "vault"))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	})
	url := "http://" + addr
	for deadline := time.Now().Add(20 * time.Second); ; {
		if r, err := http.Get(url + "/healthz"); err == nil && r.StatusCode == 200 {
			r.Body.Close()
			return url
		}
		if time.Now().After(deadline) {
			t.Fatalf("the vault did not come up:\n%s", log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func writeFileT(t *testing.T, dir, name, content string) string {
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestVaultRecovery: enrol at init, recover on a "new machine" with only
// the password, mount and read; wrong passwords say how many attempts are
// left; the password changes without touching data; after 10 wrong ones
// the key is gone and the recovery code is the only way back.
func TestVaultRecovery(t *testing.T) {
	needRoot(t)
	url := startVaultServer(t)
	dir := t.TempDir()
	pw := writeFileT(t, dir, "pw", "a long and happy passphrase\n")
	bad := writeFileT(t, dir, "bad", "not the passphrase at all\n")
	short := writeFileT(t, dir, "short", "short\n")
	c := cliRepo{remote: filepath.Join(dir, "remote"), cache: filepath.Join(dir, "cache"), codeFile: filepath.Join(dir, "code")}
	expect(t, sealfs(t, nil, "init", "--cache-dir", c.cache, "--code-file", c.codeFile, "--vault", url, "--password-file", short, c.remote), 2, "at least")
	expect(t, sealfs(t, nil, "init", "--cache-dir", c.cache, "--code-file", c.codeFile, "--vault", url, "--password-file", pw, c.remote), 0, "")
	mnt := mountpoint(t)
	expect(t, c.mount(t, mnt), 0, "")
	os.WriteFile(filepath.Join(mnt, "f"), []byte("kept by the vault"), 0o644)
	c.umount(t, mnt)

	vault := func(pwFile string, args ...string) result {
		return sealfs(t, nil, append([]string{"--cache-dir", t.TempDir(), "--vault", url, "--password-file", pwFile}, args...)...)
	}
	// A new machine: fresh cache, the password, no code.
	r := sealfs(t, nil, "mount", "--cache-dir", t.TempDir(), "--vault", url, "--password-file", pw, "--read-only", c.remote, mnt)
	expect(t, r, 0, "")
	if got, err := os.ReadFile(filepath.Join(mnt, "f")); err != nil || string(got) != "kept by the vault" {
		t.Fatalf("read through a vault-unlocked mount: %q %v", got, err)
	}
	sealfs(t, nil, "umount", mnt)
	for i := 1; i <= 9; i++ {
		expect(t, vault(bad, "snapshots", c.remote), 11, fmt.Sprintf("%d attempts left", 10-i))
	}
	expect(t, vault(pw, "snapshots", c.remote), 0, "") // the 10th try is right: it works and resets

	// Change the password: the old one stops working, the data stays.
	pw2 := writeFileT(t, dir, "pw2", "an even longer and happier passphrase\n")
	expect(t, sealfs(t, nil, "key", "passwd", "--cache-dir", t.TempDir(), "--vault", url, "--password-file", pw, "--new-password-file", pw2, c.remote), 0, "")
	expect(t, vault(pw, "snapshots", c.remote), 11, "")
	r = vault(pw2, "snapshots", c.remote)
	expect(t, r, 0, "")
	if !strings.Contains(r.stdout, "1 ") {
		t.Fatalf("snapshots after passwd: %s", r.stdout)
	}

	// Ten wrong guesses in a row destroy the key.
	var last result
	for range 10 {
		last = vault(bad, "snapshots", c.remote)
	}
	expect(t, last, 12, "recovery code is now the only way back")
	expect(t, vault(pw2, "snapshots", c.remote), 12, "destroyed")
	// The recovery code still opens it, and a new password can be enrolled.
	expect(t, c.run(t, "snapshots", c.remote), 0, "")
	expect(t, sealfs(t, nil, "key", "add-vault", "--cache-dir", c.cache, "--code-file", c.codeFile, "--vault", url, "--password-file", pw, c.remote), 0, "")
	expect(t, vault(pw, "snapshots", c.remote), 0, "")
}

func TestVaultRefusesPlainHTTPOffLoopback(t *testing.T) {
	r := sealfs(t, nil, "vault", "serve", "--listen", "0.0.0.0:0", "--data-dir", t.TempDir())
	expect(t, r, 2, "refusing plain HTTP")
}
