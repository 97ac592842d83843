package test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/internal/unlock"
	"github.com/sealfs/sealfs/internal/vaultserver"
	"github.com/sealfs/sealfs/keyvault"
	"github.com/sealfs/sealfs/keyvault/shamir"
	"github.com/sealfs/sealfs/repo"
)

// TestVaultKofN: three real vaults, each its own sealfs-vault process
// with its own SoftHSM2 token. init 2-of-3; mount with the password on a
// new machine; a wrong password counts at each vault (5 each, 2 of 3);
// with one vault stopped the password still mounts; with two stopped it
// does not. Then a thief with two vaults' databases and one of their
// HSMs (token files and PIN) tries to get the secret: see
// testKofNThief.
func TestVaultKofN(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	var urls []string
	var stops []func()
	var dataDirs []string
	for i := range 3 {
		d := filepath.Join(dir, fmt.Sprintf("vault%d", i+1))
		u, stop := startVaultIn(t, directServe(), "", "", d)
		urls, stops, dataDirs = append(urls, u), append(stops, stop), append(dataDirs, d)
	}
	all := strings.Join(urls, ",")
	pw := writeFileT(t, dir, "pw", "a long and happy passphrase\n")
	bad := writeFileT(t, dir, "bad", "not the passphrase at all\n")
	c := cliRepo{remote: filepath.Join(dir, "remote"), cache: filepath.Join(dir, "cache"), codeFile: filepath.Join(dir, "code")}
	expect(t, sealfs(t, nil, "init", "--cache-dir", c.cache, "--code-file", c.codeFile, "--vault", all, "--password-file", pw, c.remote), 2, "--vault-threshold")
	expect(t, sealfs(t, nil, "init", "--cache-dir", c.cache, "--code-file", c.codeFile, "--vault", all, "--vault-threshold", "4", "--password-file", pw, c.remote), 2, "1 to 3")
	r := sealfs(t, nil, "init", "--cache-dir", c.cache, "--code-file", c.codeFile, "--vault", all, "--vault-threshold", "2", "--password-file", pw, c.remote)
	expect(t, r, 0, "")
	if !strings.Contains(r.stdout, "any 2 of them recover the key; each allows 5 wrong guesses") {
		t.Fatalf("init says:\n%s", r.stdout)
	}
	mnt := mountpoint(t)
	expect(t, c.mount(t, mnt), 0, "")
	os.WriteFile(filepath.Join(mnt, "f"), []byte("kept by three vaults"), 0o644)
	c.umount(t, mnt)

	vault := func(pwFile, urls string, args ...string) result {
		return sealfs(t, nil, append([]string{"--cache-dir", t.TempDir(), "--vault", urls, "--password-file", pwFile}, args...)...)
	}
	mountRead := func() {
		t.Helper()
		expect(t, sealfs(t, nil, "mount", "--cache-dir", t.TempDir(), "--vault", all, "--password-file", pw, "--read-only", c.remote, mnt), 0, "")
		got, err := os.ReadFile(filepath.Join(mnt, "f"))
		sealfs(t, nil, "umount", mnt)
		if err != nil || string(got) != "kept by three vaults" {
			t.Fatalf("read through a mount unlocked by the vaults: %q %v", got, err)
		}
	}
	mountRead()
	expect(t, vault(pw, urls[0], "snapshots", c.remote), 4, "no key slot for the vault")

	// A new password: the old enrolments are retired at all three vaults,
	// so a copy of the old slot no longer opens with the old password.
	copied := filepath.Join(dir, "remote-copy")
	if out, err := exec.Command("cp", "-a", c.remote, copied).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	pw2 := writeFileT(t, dir, "pw2", "an even longer and happier passphrase\n")
	expect(t, sealfs(t, nil, "key", "passwd", "--cache-dir", t.TempDir(), "--vault", all, "--vault-threshold", "2", "--password-file", pw, "--new-password-file", pw2, c.remote), 0, "")
	expect(t, vault(pw, all, "snapshots", copied), 12, "destroyed or do not know their part")
	expect(t, vault(pw, all, "snapshots", c.remote), 11, "4 attempts left")
	pw = pw2
	expect(t, vault(pw, all, "snapshots", c.remote), 0, "") // resets all three
	expect(t, vault(bad, all, "snapshots", c.remote), 11, "4 attempts left")
	expect(t, vault(bad, all, "snapshots", c.remote), 11, "3 attempts left")
	expect(t, vault(pw, urls[1]+","+urls[2], "snapshots", c.remote), 0, "") // resets vaults 2 and 3 only

	stops[2]() // vault 3 goes down
	// Vault 1 counted 2 wrong guesses and was not reset: its 3 left show.
	expect(t, vault(bad, all, "snapshots", c.remote), 11, "2 attempts left")
	mountRead() // resets vaults 1 and 2
	expect(t, vault(bad, all, "snapshots", c.remote), 11, "4 attempts left")
	expect(t, vault(pw, all, "snapshots", c.remote), 0, "")

	testKofNThief(t, c.remote, "an even longer and happier passphrase", urls, dataDirs, stops)

	// Vaults 1 and 3 down: one vault answers, two are needed.
	expect(t, vault(pw, all, "snapshots", c.remote), 1, "too few of the vaults answered: 1 of the 2 needed")
	// The recovery code still opens it.
	expect(t, c.run(t, "snapshots", c.remote), 0, "")
}

// testKofNThief: vault 3 is down, vault 2 serves; password is the
// slot's. The thief holds the
// databases of vaults 1 and 3 and vault 1's HSM (its token directory and
// PIN: SoftHSM2 keeps keys in plain files), and the slot from the
// storage provider. With vault 1's key it evaluates the password offline
// as often as it likes: for the right password it gets vault 1's share,
// but nothing it holds tells that share from a wrong password's: neither
// vault 1's stored tag MAC nor its envelope checks against the
// evaluation, and no value of either database completes the share into
// a secret that opens the slot. Only an evaluation at a second, online
// vault does, and that vault counts it.
func testKofNThief(t *testing.T, remote, password string, urls, dataDirs []string, stops []func()) {
	ctx := context.Background()
	stops[0]() // the thief walks off with vault 1's files; vault 1 is down
	slot, p := vaultSlotOf(t, remote)
	t.Setenv(vaultserver.SoftHSMConfEnv, filepath.Join(dataDirs[0], "softhsm2.conf"))
	hsm, err := vaultserver.OpenEmbedded(dataDirs[0])
	if err != nil {
		t.Fatalf("the thief opens vault 1's token with its PIN: %v", err)
	}
	defer hsm.Close()
	db1, err := os.ReadFile(filepath.Join(dataDirs[0], "vault.db"))
	if err != nil {
		t.Fatal(err)
	}
	db3, err := os.ReadFile(filepath.Join(dataDirs[2], "vault.db"))
	if err != nil {
		t.Fatal(err)
	}
	m1 := p.Vaults[0]
	label := regexp.MustCompile(regexp.QuoteMeta(m1.User) + `/[0-9a-f]{16}`).Find(db1)
	if label == nil {
		t.Fatalf("vault 1's database names no key of user %s", m1.User)
	}
	// Offline, at HSM speed: the evaluation of a password with vault 1's key.
	offline := func(password string) (*keyvault.Keys, []byte) {
		b, err := keyvault.Blind(keyvault.Stretch([]byte(password), m1.User))
		if err != nil {
			t.Fatal(err)
		}
		x, err := hsm.Evaluate(string(label), b.Element)
		if err != nil {
			t.Fatalf("offline evaluation with the stolen key: %v", err)
		}
		keys, err := b.Finish(x)
		if err != nil {
			t.Fatal(err)
		}
		mask, err := keys.ShareMask(1, m1.User)
		if err != nil {
			t.Fatal(err)
		}
		share := make([]byte, len(mask))
		for i := range share {
			share[i] = m1.Share[i] ^ mask[i]
		}
		return keys, share
	}
	opens := func(secret []byte) bool {
		kek, err := crypt.VaultKEK(secret, slot.Slot.Salt)
		if err != nil {
			return false
		}
		_, err = slot.Slot.Unwrap(repoID(t, remote), slot.ID, kek)
		return err == nil
	}
	// What the thief can check a guess against, for the right password
	// and a wrong one alike: none of it may tell them apart.
	right, rightShare := offline(password)
	wrong, wrongShare := offline("not the passphrase at all")
	for name, g := range map[string]struct {
		keys  *keyvault.Keys
		share []byte
	}{"right": {right, rightShare}, "wrong": {wrong, wrongShare}} {
		mac, err := hsm.TagMAC(m1.User, g.keys.Tag[:])
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(db1), string(mac)) {
			t.Fatalf("the %s password's evaluation gives the tag vault 1 keeps: one vault confirms a guess", name)
		}
		if opens(g.share) {
			t.Fatalf("the %s password's share of vault 1 alone opens the slot", name)
		}
		for _, db := range [][]byte{db1, db3} {
			for i := 0; i+32 <= len(db); i++ {
				if _, err := keyvault.OpenEnvelope(g.keys.EnvelopeKey, m1.User, db[i:]); err == nil {
					t.Fatalf("an envelope in a stolen database opens with the %s password's evaluation", name)
				}
				s, err := shamir.Combine([]shamir.Share{{X: 1, Y: g.share}, {X: 3, Y: db[i : i+32]}})
				if err == nil && opens(s) {
					t.Fatalf("the %s password's share and 32 bytes of a stolen database open the slot", name)
				}
			}
		}
	}
	// One online evaluation at vault 2 completes the right share: the
	// thief's only way, and vault 2 counts it.
	m2 := p.Vaults[1]
	c2, err := keyvault.NewClient(urls[1], keyvault.Trust{})
	if err != nil {
		t.Fatal(err)
	}
	keys2, left, err := c2.Evaluate(ctx, m2.User, []byte(password))
	if err != nil || left != 4 {
		t.Fatalf("the thief's evaluation at vault 2: %d left, %v; want it counted (4 left)", left, err)
	}
	mask2, _ := keys2.ShareMask(2, m2.User)
	share2 := make([]byte, 32)
	for i := range share2 {
		share2[i] = m2.Share[i] ^ mask2[i]
	}
	s, err := shamir.Combine([]shamir.Share{{X: 1, Y: rightShare}, {X: 2, Y: share2}})
	if err != nil || !opens(s) {
		t.Fatalf("the right shares of vaults 1 and 2 do not open the slot (%v): the checks above proved nothing", err)
	}
	s, _ = shamir.Combine([]shamir.Share{{X: 1, Y: wrongShare}, {X: 2, Y: share2}})
	if opens(s) {
		t.Fatal("a wrong password's share opens the slot")
	}
}

// vaultSlotOf reads the k-of-n vault slot of the repository at remote (a
// local directory) as the storage provider holds it.
func vaultSlotOf(t *testing.T, remote string) (repo.SlotInfo, unlock.VaultParams) {
	t.Helper()
	dir := filepath.Join(remote, "keys")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		id, err := crypt.ParseID(e.Name())
		if err != nil {
			continue
		}
		s, err := crypt.ParseKeySlot(b)
		if err != nil {
			t.Fatal(err)
		}
		if p, err := unlock.ParseVaultParams(s); err == nil && p.Shared() {
			return repo.SlotInfo{ID: id, Slot: s}, p
		}
	}
	t.Fatalf("no k-of-n vault slot in %s", dir)
	return repo.SlotInfo{}, unlock.VaultParams{}
}

// repoID reads the repository id from the config at remote (its body's
// "repository", which the thief reads as anyone can).
func repoID(t *testing.T, remote string) crypt.RepoID {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(remote, "config"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Repository string `json:"repository"`
	}
	body, _, _ := strings.Cut(string(b), "\n")
	if err := json.Unmarshal([]byte(body), &cfg); err != nil {
		t.Fatal(err)
	}
	id, err := crypt.ParseRepoID(cfg.Repository)
	if err != nil {
		t.Fatal(err)
	}
	return id
}
