package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sealfs/sealfs/internal/testutil"
)

// copyFile copies a file from to to, with mode.
func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, mode); err != nil {
		t.Fatal(err)
	}
}

// TestDemo runs the README's one command (scripts/demo.sh, what `make
// demo` runs after building) in a copy of the project's layout: it starts
// the vault on its embedded SoftHSM2 token, creates a repository on a
// local directory, enrols a password, and mounts by that password; the
// sample it copies is committed, and the remote holds none of its bytes in
// the clear. Then what `make demo-stop` does: unmount, stop the vault.
func TestDemo(t *testing.T) {
	needRoot(t)
	root := t.TempDir()
	for _, dir := range []string{"scripts", "bin", "docs"} {
		if err := os.MkdirAll(filepath.Join(root, dir), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(t, filepath.Join("..", "scripts", "demo.sh"), filepath.Join(root, "scripts", "demo.sh"), 0o755)
	copyFile(t, sealfsBin, filepath.Join(root, "bin", "sealfs"), 0o755)
	copyFile(t, vaultBin, filepath.Join(root, "bin", "sealfs-vault"), 0o755)
	copyFile(t, filepath.Join("..", "README.md"), filepath.Join(root, "README.md"), 0o644)
	copyFile(t, filepath.Join("..", "docs", "SPEC.md"), filepath.Join(root, "docs", "SPEC.md"), 0o644)
	demo := filepath.Join(root, "demo")
	t.Cleanup(func() {
		exec.Command(filepath.Join(root, "bin", "sealfs"), "umount", filepath.Join(demo, "mnt")).Run()
		if pid, err := os.ReadFile(filepath.Join(demo, "vault.pid")); err == nil {
			exec.Command("kill", strings.TrimSpace(string(pid))).Run()
		}
	})

	out, err := exec.Command(filepath.Join(root, "scripts", "demo.sh")).CombinedOutput()
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}
	for _, want := range []string{"Starting the Backup Key Vault", "Added vault key slot", "unlocked with the password through the vault", "lease:       held by this mount"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the demo's output lacks %q:\n%s", want, out)
		}
	}
	mnt := filepath.Join(demo, "mnt")
	st := mountStatus(t, mnt)
	if st.PID == 0 {
		t.Fatalf("no daemon behind %s", mnt)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	samples, _ := filepath.Glob(filepath.Join(mnt, "sample-*", "README.md"))
	if len(samples) != 1 {
		t.Fatalf("samples in the mount: %v", samples)
	}
	if got, err := os.ReadFile(samples[0]); err != nil || string(got) != string(readme) {
		t.Fatalf("the sample reads %d bytes, %v; want the README", len(got), err)
	}
	// The demo's own sealfs stops it: umount signals only a daemon that
	// runs the same executable as itself.
	if out, err := exec.Command(filepath.Join(root, "bin", "sealfs"), "umount", mnt).CombinedOutput(); err != nil || isMounted(mnt) {
		logs, _ := filepath.Glob(filepath.Join(demo, "cache", "*.log"))
		for _, l := range logs {
			b, _ := os.ReadFile(l)
			t.Logf("%s:\n%s", l, b)
		}
		t.Fatalf("umount: %v\n%s", err, out)
	}
	// Any 64 bytes of the sample, in the clear, on the remote would be a leak.
	if file, off, err := testutil.FindInDir(filepath.Join(demo, "remote"), readme[:64]); err != nil || file != "" {
		t.Fatalf("the README's first bytes are in the clear on the remote: %s at %d (%v)", file, off, err)
	}
	if pid, err := os.ReadFile(filepath.Join(demo, "vault.pid")); err != nil {
		t.Fatalf("the demo's vault left no pid file: %v", err)
	} else if err := exec.Command("kill", strings.TrimSpace(string(pid))).Run(); err != nil {
		t.Fatalf("the demo's vault is not running: %v", err)
	}
}
