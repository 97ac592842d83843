package test

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// Hints the command prints after an error, one line each (cmd/sealfs's
// table): the tests below expect each exactly once.
const (
	hintWrongCode  = "sealfs: this code is valid but belongs to another repository, or its key slot was removed; try another code you have for this one\n"
	hintNoRepo     = "sealfs: check the remote's name; to create a repository there, run: sealfs init REMOTE\n"
	hintLocked     = "sealfs: another sealfs is writing to this repository: wait for it to finish, or mount with --read-only to look without writing\n"
	hintWrongPass  = "sealfs: when no attempts are left the vault destroys the key for good (after 10 wrong passwords in a row at one vault, fewer at each of k of n vaults); if unsure, unlock with the recovery code instead (--code-file, without --vault)\n"
	hintVaultKey   = "sealfs: the password is right, but the key slot it opened is not this repository's; unlock with the recovery code instead (--code-file, without --vault)\n"
	hintNoVaultKey = "sealfs: unlock with the recovery code, and add a vault key slot with: sealfs key add-vault --vault URL REMOTE\n"
)

// expectStderr checks a failure's exit code and its whole stderr: what
// failed, then the advice, once.
func expectStderr(t *testing.T, what string, r result, code int, stderr string) {
	t.Helper()
	if r.code != code || r.stderr != stderr {
		t.Errorf("%s: exit %d (want %d), stderr:\n%s\nwant:\n%s", what, r.code, code, r.stderr, stderr)
	}
}

// TestUnlockFailuresAdviseOnce: a wrong recovery code, a missing
// repository and a wrong vault password each print what failed and then
// what to do, once, in exactly these words; a vault whose secret opens no
// slot says it was the vault, not a recovery code.
func TestUnlockFailuresAdviseOnce(t *testing.T) {
	c := initRepo(t)
	other := initRepo(t)
	snapshots := func(codeFile, remote string) result {
		return sealfs(t, nil, "snapshots", "--cache-dir", t.TempDir(), "--code-file", codeFile, remote)
	}
	expectStderr(t, "wrong code", snapshots(other.codeFile, c.remote), 4,
		"sealfs: this recovery code does not belong to this repository (it opens none of the repository's 1 recovery-code slots)\n"+hintWrongCode)
	empty := filepath.Join(t.TempDir(), "empty")
	expectStderr(t, "no repository", snapshots(c.codeFile, empty), 5,
		"sealfs: no sealfs repository at "+empty+"\n"+hintNoRepo)

	url := startVaultServer(t, directServe())
	dir := t.TempDir()
	pw := writeFileT(t, dir, "pw", "a long and happy passphrase\n")
	bad := writeFileT(t, dir, "bad", "not the passphrase at all\n")
	expect(t, sealfs(t, nil, "key", "add-vault", "--cache-dir", c.cache, "--code-file", c.codeFile, "--vault", url, "--password-file", pw, c.remote), 0, "")
	vault := func(pwFile, remote string) result {
		return sealfs(t, nil, "snapshots", "--cache-dir", t.TempDir(), "--vault", url, "--password-file", pwFile, remote)
	}
	expectStderr(t, "wrong password", vault(bad, c.remote), 11,
		"sealfs: wrong password: 9 attempts left before the vault destroys the key\n"+hintWrongPass)
	expectStderr(t, "no vault slot", vault(pw, other.remote), 4,
		"sealfs: the repository has no key slot for the vault at "+url+"\n"+hintNoVaultKey)
	// The vault slot of one repository copied into another: the vault
	// gives its secret for the right password, and it opens nothing here.
	copyVaultSlot(t, c.remote, other.remote)
	expectStderr(t, "vault secret opens no slot", vault(pw, other.remote), 4,
		"sealfs: the vault's secret does not open any key slot of this repository\n"+hintVaultKey)
	expect(t, vault(pw, c.remote), 0, "") // the right password, the right repository
}

// copyVaultSlot copies the vault key slot objects of the repository at
// from into the one at to.
func copyVaultSlot(t *testing.T, from, to string) {
	t.Helper()
	slots, err := filepath.Glob(filepath.Join(from, "keys", "*"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, p := range slots {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), `"kind":"vault"`) {
			continue
		}
		if err := os.WriteFile(filepath.Join(to, "keys", filepath.Base(p)), b, 0o600); err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 1 {
		t.Fatalf("%d vault slots copied, want 1", n)
	}
}

// TestLeaseHeldAdvisesOnce: a second writer, as a background mount (its
// verdict crosses the daemon's readiness pipe) and as a backup, is told
// who holds the lease and what to do, once.
func TestLeaseHeldAdvisesOnce(t *testing.T) {
	needRoot(t)
	c := initRepo(t)
	mnt := mountpoint(t)
	expect(t, c.mount(t, mnt), 0, "")
	host, _ := os.Hostname()
	held := regexp.MustCompile(`^sealfs: the repository is locked by another writer: host ` + regexp.QuoteMeta(host) +
		` pid ` + strconv.Itoa(mountPID(mnt)) + ` since [0-9: -]+ \(valid until [0-9: -]+\)\n` + regexp.QuoteMeta(hintLocked) + `$`)
	second := cliRepo{remote: c.remote, cache: t.TempDir(), codeFile: c.codeFile}
	r := second.mount(t, mountpoint(t))
	if r.code != 9 || !held.MatchString(r.stderr) {
		t.Errorf("second mount: exit %d (want 9), stderr:\n%s\nwant it to match %s", r.code, r.stderr, held)
	}
	r = second.run(t, "backup", t.TempDir(), c.remote)
	if r.code != 9 || !held.MatchString(r.stderr) {
		t.Errorf("backup: exit %d (want 9), stderr:\n%s\nwant it to match %s", r.code, r.stderr, held)
	}
}

// configGets counts the GET requests for the config object of the
// repositories an S3 server holds.
type configGets struct {
	inner http.Handler
	n     atomic.Int64
}

func (c *configGets) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/config") {
		c.n.Add(1)
	}
	c.inner.ServeHTTP(w, r)
}

// TestUnlockReadsConfigOnce: a command that opens the repository reads its
// config once; a background mount once in the command (to say "no
// repository" before asking for a key) and once in its daemon.
func TestUnlockReadsConfigOnce(t *testing.T) {
	needRoot(t)
	gets := &configGets{inner: gofakes3.New(s3mem.New()).Server()}
	c := newFaultyS3Over(t, gets).initRepo(t, "bucket")
	gets.n.Store(0)
	expect(t, c.run(t, "snapshots", c.remote), 0, "")
	if n := gets.n.Swap(0); n != 1 {
		t.Errorf("sealfs snapshots read the config %d times, want 1", n)
	}
	mnt := mountpoint(t)
	expect(t, c.mount(t, mnt), 0, "")
	if n := gets.n.Swap(0); n != 2 {
		t.Errorf("a background mount read the config %d times, want 2 (the command, its daemon)", n)
	}
}

// TestUnlockCacheDirDefault: without --cache-dir the state goes to
// $XDG_CACHE_HOME/sealfs; with no place for it, the command says so and
// what to do, once.
func TestUnlockCacheDirDefault(t *testing.T) {
	c := initRepo(t)
	xdg := t.TempDir()
	expect(t, sealfs(t, []string{"XDG_CACHE_HOME=" + xdg}, "snapshots", "--code-file", c.codeFile, c.remote), 0, "")
	if states, _ := filepath.Glob(filepath.Join(xdg, "sealfs", "*", "state.json")); len(states) != 1 {
		t.Errorf("state files under $XDG_CACHE_HOME/sealfs: %v, want one", states)
	}
	cmd := exec.Command(sealfsBin, "snapshots", "--code-file", c.codeFile, c.remote)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	expectStderr(t, "no cache directory", run(t, cmd), 1,
		"sealfs: failed to find a cache directory: neither $XDG_CACHE_HOME nor $HOME are defined\nsealfs: set XDG_CACHE_HOME, or give --cache-dir DIR\n")
}
