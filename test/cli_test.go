package test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/internal/pgtest"
	"github.com/sealfs/sealfs/internal/unlock"
	"github.com/sealfs/sealfs/remote/rcloneremote"
	"github.com/sealfs/sealfs/repo"
)

// sealfsBin and vaultBin are the commands under test, side by side in one
// folder as make install puts them.
var sealfsBin, vaultBin string

// TestMain builds the commands as they ship: sealfs without cgo (one
// static binary), sealfs-vault with it (PKCS#11).
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sealfs-bin")
	if err != nil {
		panic(err)
	}
	sealfsBin = filepath.Join(dir, "sealfs")
	vaultBin = filepath.Join(dir, "sealfs-vault")
	for _, b := range []struct{ out, pkg, cgo string }{{sealfsBin, "../cmd/sealfs", "0"}, {vaultBin, "../cmd/sealfs-vault", "1"}} {
		build := exec.Command("go", "build", "-o", b.out, b.pkg)
		build.Env = append(os.Environ(), "CGO_ENABLED="+b.cgo)
		if out, err := build.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "failed to build %s with CGO_ENABLED=%s: %v\n%s", b.pkg, b.cgo, err, out)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	pgtest.Stop()
	os.Exit(code)
}

type result struct {
	stdout, stderr string
	code           int
}

// sealfs runs the binary with env added to a clean environment.
func sealfs(t *testing.T, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(sealfsBin, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	return run(t, cmd)
}

// run runs cmd to its end and returns its output and exit code.
func run(t *testing.T, cmd *exec.Cmd) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{stdout.String(), stderr.String(), code}
}

func expect(t *testing.T, r result, code int, stderrHas string) {
	t.Helper()
	if r.code != code || !strings.Contains(r.stderr, stderrHas) {
		t.Fatalf("exit %d (want %d), stderr %q (want it to contain %q), stdout %q", r.code, code, r.stderr, stderrHas, r.stdout)
	}
}

// cliRepo is a repository made with `sealfs init`.
type cliRepo struct {
	remote, cache, codeFile string
}

func (c cliRepo) flags() []string { return []string{"--cache-dir", c.cache, "--code-file", c.codeFile} }

func (c cliRepo) run(t *testing.T, args ...string) result {
	t.Helper()
	return sealfs(t, nil, append(c.flags(), args...)...)
}

// openInProcess opens the repository of c in this process, as a new client
// on a cache of its own, and returns it with its remote.
func (c cliRepo) openInProcess(t *testing.T) (*repo.Repository, *rcloneremote.Remote) {
	t.Helper()
	ctx := context.Background()
	rem, err := rcloneremote.Open(ctx, c.remote)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(c.codeFile)
	code, err := crypt.ParseRecoveryCode(string(raw))
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Open(ctx, rem, unlock.WithCode(code), repo.Options{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatalf("opening the repository: %v", err)
	}
	return r, rem
}

var codeLine = regexp.MustCompile(`(?m)^    ([0-9A-F]{4}  ){3}[0-9A-F]{4}$`)

func initRepo(t *testing.T) cliRepo {
	t.Helper()
	dir := t.TempDir()
	c := cliRepo{remote: filepath.Join(dir, "remote"), cache: filepath.Join(dir, "cache"), codeFile: filepath.Join(dir, "code")}
	r := sealfs(t, nil, "init", "--cache-dir", c.cache, "--code-file", c.codeFile, c.remote)
	expect(t, r, 0, "")
	if n := len(codeLine.FindAllString(r.stdout, -1)); n != 4 {
		t.Fatalf("init printed %d lines of code, want 4:\n%s", n, r.stdout)
	}
	if !strings.Contains(r.stdout, "Write this recovery code down") {
		t.Fatalf("init gave no warning:\n%s", r.stdout)
	}
	fi, err := os.Stat(c.codeFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("code file: %v, mode %v; want 0600", err, fi.Mode())
	}
	// The printed code and the file agree.
	printed := strings.Join(strings.Fields(strings.Join(codeLine.FindAllString(r.stdout, -1), " ")), "")
	b, _ := os.ReadFile(c.codeFile)
	if strings.ReplaceAll(strings.TrimSpace(string(b)), " ", "") != printed {
		t.Fatal("the code file differs from the printed code")
	}
	return c
}

func TestInitRefusesExistingRepository(t *testing.T) {
	c := initRepo(t)
	expect(t, sealfs(t, nil, "init", "--cache-dir", c.cache, c.remote), 6, "already exists")
	// An existing code file is never overwritten.
	expect(t, sealfs(t, nil, "init", "--code-file", c.codeFile, filepath.Join(t.TempDir(), "r2")), 2, "exists already")
}

func TestCodeInputs(t *testing.T) {
	c := initRepo(t)
	raw, _ := os.ReadFile(c.codeFile)
	code := strings.TrimSpace(string(raw))
	env := func(v string) []string { return []string{"SEALFS_RECOVERY_CODE=" + v} }
	snapshots := []string{"snapshots", "--cache-dir", c.cache, c.remote}

	expect(t, c.run(t, "snapshots", c.remote), 0, "")
	expect(t, sealfs(t, env(code), snapshots...), 0, "")
	expect(t, sealfs(t, env(strings.ToLower(strings.ReplaceAll(code, " ", "-"))), snapshots...), 0, "")

	typo := []byte(code)
	if typo[5] == '0' {
		typo[5] = '1'
	} else {
		typo[5] = '0'
	}
	expect(t, sealfs(t, env(string(typo)), snapshots...), 3, "typo")
	expect(t, sealfs(t, env(code[:40]), snapshots...), 3, "typo")
	other, _ := crypt.NewRecoveryCode()
	expect(t, sealfs(t, env(other.Reveal()), snapshots...), 4, "does not belong to this repository")
	// No code and no terminal: a usage error that says how to give one.
	expect(t, sealfs(t, nil, snapshots...), 2, "--code-file")
	// The code is never taken as an argument.
	expect(t, sealfs(t, nil, "snapshots", "--cache-dir", c.cache, c.remote, code), 2, "")
	// No repository there.
	expect(t, sealfs(t, env(code), "snapshots", filepath.Join(t.TempDir(), "empty")), 5, "sealfs init")
}

func TestBackupRestoreCheck(t *testing.T) {
	c := initRepo(t)
	src := t.TempDir()
	files := map[string]string{"a.txt": "alpha", "sub/b.bin": strings.Repeat("b", 3<<20), "sub/deeper/c": "c"}
	for name, data := range files {
		p := filepath.Join(src, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(data), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	expect(t, c.run(t, "backup", src, c.remote), 0, "")
	os.WriteFile(filepath.Join(src, "a.txt"), []byte("alpha v2"), 0o640)
	r := c.run(t, "backup", src, c.remote)
	expect(t, r, 0, "")
	if !strings.Contains(r.stdout, "snapshot 2") {
		t.Fatalf("second backup: %s", r.stdout)
	}
	r = c.run(t, "snapshots", c.remote)
	if !regexp.MustCompile(`(?m)^1 .*\n2 `).MatchString(r.stdout) {
		t.Fatalf("snapshots:\n%s", r.stdout)
	}
	for seq, want := range map[string]string{"1": "alpha", "2": "alpha v2"} {
		dst := filepath.Join(t.TempDir(), "dst")
		// A new machine: only the code, a fresh cache.
		expect(t, sealfs(t, nil, "restore", "--snapshot", seq, "--cache-dir", t.TempDir(), "--code-file", c.codeFile, c.remote, dst), 0, "")
		got, _ := os.ReadFile(filepath.Join(dst, "a.txt"))
		big, _ := os.ReadFile(filepath.Join(dst, "sub/b.bin"))
		if string(got) != want || string(big) != files["sub/b.bin"] {
			t.Fatalf("restore of snapshot %s: a.txt = %q", seq, got)
		}
	}
	r = c.run(t, "check", "--read-data", c.remote)
	expect(t, r, 0, "")
	if !strings.Contains(r.stdout, "no problems found") {
		t.Fatalf("check: %s", r.stdout)
	}
	// Damage the first blob of every pack: check names each and exits 7;
	// restore fails with 7.
	packs, _ := filepath.Glob(filepath.Join(c.remote, "data", "*", "*"))
	for _, p := range packs {
		b, _ := os.ReadFile(p)
		b[10] ^= 0xff
		os.WriteFile(p, b, 0o644)
	}
	r = c.run(t, "check", "--read-data", c.remote)
	expect(t, r, 7, "problems found")
	for _, p := range packs {
		if !strings.Contains(r.stdout, filepath.Base(p)) {
			t.Fatalf("check did not name the damaged pack %s:\n%s", filepath.Base(p), r.stdout)
		}
	}
	expect(t, sealfs(t, nil, "restore", "--cache-dir", t.TempDir(), "--code-file", c.codeFile, c.remote, filepath.Join(t.TempDir(), "d")), 7, "integrity")
}

func TestKeyCommands(t *testing.T) {
	c := initRepo(t)
	r := c.run(t, "key", "list", c.remote)
	expect(t, r, 0, "")
	firstSlot := strings.Fields(strings.Split(r.stdout, "\n")[1])[0]
	expect(t, c.run(t, "key", "remove", firstSlot, c.remote), 1, "last key slot")
	newCode := filepath.Join(t.TempDir(), "code2")
	r = c.run(t, "key", "add-code", "--new-code-file", newCode, c.remote)
	expect(t, r, 0, "")
	if len(codeLine.FindAllString(r.stdout, -1)) != 4 {
		t.Fatalf("add-code did not print a code:\n%s", r.stdout)
	}
	expect(t, c.run(t, "key", "remove", firstSlot, c.remote), 0, "")
	// The old code no longer opens; the new one does.
	expect(t, c.run(t, "snapshots", c.remote), 4, "does not belong")
	expect(t, sealfs(t, nil, "snapshots", "--cache-dir", c.cache, "--code-file", newCode, c.remote), 0, "")
}

func TestUnreachableRemote(t *testing.T) {
	c := initRepo(t)
	spec := ":s3,provider=Other,access_key_id=a,secret_access_key=b,endpoint='http://127.0.0.1:1':bucket"
	expect(t, sealfs(t, nil, "snapshots", "--code-file", c.codeFile, spec), 8, "could not be reached")
}

func TestRollbackAndLock(t *testing.T) {
	c := initRepo(t)
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "f"), []byte("1"), 0o644)
	expect(t, c.run(t, "backup", src, c.remote), 0, "")
	old := filepath.Join(t.TempDir(), "old")
	if out, err := exec.Command("cp", "-a", c.remote, old).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	expect(t, c.run(t, "backup", src, c.remote), 0, "")
	os.RemoveAll(c.remote)
	os.Rename(old, c.remote)
	expect(t, c.run(t, "snapshots", c.remote), 10, "number 1")
	expect(t, c.run(t, "snapshots", "--accept-rollback", c.remote), 0, "")

	// Another writer holds the lease: backup exits 9 and names it.
	ctx := context.Background()
	rem, err := rcloneremote.Open(ctx, c.remote)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(c.codeFile)
	code, _ := crypt.ParseRecoveryCode(string(raw))
	w, err := repo.Open(ctx, rem, unlock.WithCode(code), repo.Options{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Lock(ctx, false); err != nil {
		t.Fatal(err)
	}
	defer w.Unlock(ctx)
	expect(t, c.run(t, "backup", src, c.remote), 9, fmt.Sprintf("pid %d", os.Getpid()))
}

// TestRcloneConfig: a remote named in an rclone.conf is found through
// RCLONE_CONFIG (which the rclone library itself ignores) and --rclone-config.
func TestRcloneConfig(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "rclone.conf")
	if err := os.WriteFile(conf, []byte("[backupdisk]\ntype = local\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	spec := "backupdisk:" + filepath.Join(dir, "repo")
	code := filepath.Join(dir, "code")
	expect(t, sealfs(t, []string{"RCLONE_CONFIG=" + conf}, "init", "--cache-dir", dir, "--code-file", code, spec), 0, "")
	if _, err := os.Stat(filepath.Join(dir, "repo", "config")); err != nil {
		t.Fatalf("the repository is not where the configured remote points: %v", err)
	}
	expect(t, sealfs(t, nil, "snapshots", "--rclone-config", conf, "--cache-dir", dir, "--code-file", code, spec), 0, "")
	// Without the config the remote name is unknown.
	r := sealfs(t, nil, "snapshots", "--cache-dir", dir, "--code-file", code, spec)
	if r.code == 0 {
		t.Fatal("an unconfigured remote name worked")
	}
}
