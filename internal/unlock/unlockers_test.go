package unlock_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/internal/unlock"
	"github.com/sealfs/sealfs/internal/vaultserver"
	"github.com/sealfs/sealfs/keyvault"
	"github.com/sealfs/sealfs/repo"
)

// startVault runs a real vault (an embedded SoftHSM2 token, its database,
// HTTP on loopback) for the test and returns its URL. SoftHSM2 finds the
// token through SOFTHSM2_CONF, which the test sets as sealfs-vault does.
func startVault(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	conf, err := vaultserver.EmbeddedConf(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(vaultserver.SoftHSMConfEnv, conf)
	h, err := vaultserver.OpenEmbedded(dir)
	if err != nil {
		t.Fatalf("SoftHSM2: %v", err)
	}
	v, err := vaultserver.NewVault(h, filepath.Join(dir, "vault.db"))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := vaultserver.NewServer(v, filepath.Join(dir, "audit.log"), nil)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		hs.Close()
		srv.Close()
		v.Close()
		h.Close()
	})
	return hs.URL
}

// unlockWith opens env's repository as a new client would, with the
// secret that src reads, and returns the id of the slot that opened.
func unlockWith(t *testing.T, env *testutil.Env, src unlock.Sources) (crypt.ID, error) {
	t.Helper()
	secret, err := src.Read()
	if err != nil {
		t.Fatal(err)
	}
	slots, err := env.Repo.Slots(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_, id, err := secret.Unlocker().Unlock(context.Background(), env.Repo.ID(), slots)
	return id, err
}

// client returns a client for the test's vault at url.
func client(t *testing.T, url string) *keyvault.Client {
	t.Helper()
	c, err := keyvault.NewClient(url, keyvault.Trust{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func passwordFile(t *testing.T, pw string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(p, []byte(pw+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCodeUnlocker: each recovery code opens its own slot; another
// repository's code is ErrWrongCode (a repo.ErrWrongKey), which says it
// was a recovery code.
func TestCodeUnlocker(t *testing.T) {
	ctx := context.Background()
	env := testutil.NewRepo(t, repo.InitOptions{})
	code2, id2, err := env.Repo.AddCodeSlot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	slots, _ := env.Repo.Slots(ctx)
	for _, c := range []crypt.RecoveryCode{env.Code, code2} {
		if _, id, err := unlock.WithCode(c).Unlock(ctx, env.Repo.ID(), slots); err != nil || (c.Equal(code2) && id != id2) {
			t.Fatalf("a code of the repository: slot %s, %v", id.Short(), err)
		}
	}
	other, _ := crypt.NewRecoveryCode()
	_, _, err = unlock.WithCode(other).Unlock(ctx, env.Repo.ID(), slots)
	if !errors.Is(err, unlock.ErrWrongCode) || !errors.Is(err, repo.ErrWrongKey) || errors.Is(err, unlock.ErrWrongVaultSecret) {
		t.Fatalf("another repository's code: %v", err)
	}
	if want := "this recovery code does not belong to this repository (it opens none of the repository's 2 recovery-code slots)"; err.Error() != want {
		t.Fatalf("%q, want %q", err, want)
	}
}

// TestVaultSlotRoundTrip: enrolment writes a vault slot whose params are
// exactly {"url","user"} with a fresh user id; the password read from a
// file opens that slot through the vault, and the whole repository opens
// with it; a wrong password is the vault's error; a vault the repository
// has no slot of is ErrNoVaultSlot.
func TestVaultSlotRoundTrip(t *testing.T) {
	ctx := context.Background()
	url := startVault(t)
	env := testutil.NewRepo(t, repo.InitOptions{})
	pw := "a long and happy passphrase"
	id, err := unlock.Enrol(ctx, env.Repo, []*keyvault.Client{client(t, url)}, 1, []byte(pw))
	if err != nil {
		t.Fatal(err)
	}
	slots, _ := env.Repo.Slots(ctx)
	var vs *crypt.KeySlot
	for _, s := range slots {
		if s.ID == id {
			vs = s.Slot
		}
	}
	if vs == nil || vs.Kind != crypt.SlotVault {
		t.Fatalf("no vault slot %s among %d slots", id.Short(), len(slots))
	}
	p, err := unlock.ParseVaultParams(vs)
	if err != nil || p.URL != url || !regexp.MustCompile(`^u[0-9a-f]{32}$`).MatchString(p.User) {
		t.Fatalf("params %+v, %v", p, err)
	}
	if want, _ := json.Marshal(map[string]string{"url": url, "user": p.User}); string(vs.Params) != string(want) {
		t.Fatalf("params JSON %s, want %s", vs.Params, want)
	}

	src := unlock.Sources{Vault: url, PasswordFile: passwordFile(t, pw)}
	if got, err := unlockWith(t, env, src); err != nil || got != id {
		t.Fatalf("the password opened slot %s, %v; want %s", got.Short(), err, id.Short())
	}
	secret, _ := src.Read()
	if _, err := repo.Open(ctx, testutil.NewRemote(t, env.Dir), secret.Unlocker(), repo.Options{CacheDir: t.TempDir()}); err != nil {
		t.Fatalf("open with the vault: %v", err)
	}
	src.PasswordFile = passwordFile(t, "not the passphrase")
	var wrong *keyvault.WrongPasswordError
	if _, err := unlockWith(t, env, src); !errors.As(err, &wrong) || wrong.AttemptsLeft != 9 || errors.Is(err, repo.ErrWrongKey) {
		t.Fatalf("a wrong password: %v", err)
	}
	src = unlock.Sources{Vault: url + "/elsewhere", PasswordFile: passwordFile(t, pw)}
	if _, err := unlockWith(t, env, src); !errors.Is(err, unlock.ErrNoVaultSlot) || !errors.Is(err, repo.ErrWrongKey) || !strings.Contains(err.Error(), url+"/elsewhere") {
		t.Fatalf("another vault: %v", err)
	}
}

// TestVaultSlotOrder: a password is tried on its vault's slots newest
// first; a slot the vault does not know is skipped; a wrong password at a
// newer slot ends the search (an older slot it would open is not tried);
// a secret the vault gives that opens no slot is ErrWrongVaultSecret.
func TestVaultSlotOrder(t *testing.T) {
	ctx := context.Background()
	url := startVault(t)
	env := testutil.NewRepo(t, repo.InitOptions{})
	oldPW, newPW := passwordFile(t, "the old passphrase"), passwordFile(t, "the new passphrase")
	old, err := unlock.Enrol(ctx, env.Repo, []*keyvault.Client{client(t, url)}, 1, []byte("the old passphrase"))
	if err != nil {
		t.Fatal(err)
	}
	// A newer slot whose user the vault never enrolled.
	nextSecond()
	unknown := addStrangeVaultSlot(t, env.Repo, unlock.VaultParams{URL: url, User: "u00000000000000000000000000000000"})
	src := unlock.Sources{Vault: url, PasswordFile: oldPW}
	if got, err := unlockWith(t, env, src); err != nil || got != old {
		t.Fatalf("past a slot the vault does not know: slot %s, %v; want %s", got.Short(), err, old.Short())
	}
	nextSecond()
	newest, err := unlock.Enrol(ctx, env.Repo, []*keyvault.Client{client(t, url)}, 1, []byte("the new passphrase"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := unlockWith(t, env, src); !errors.Is(err, keyvault.ErrWrongPassword) {
		t.Fatalf("the old password, with a newer slot: %v; want the newer slot's wrong password", err)
	}
	src.PasswordFile = newPW
	if got, err := unlockWith(t, env, src); err != nil || got != newest {
		t.Fatalf("the new password: slot %s, %v; want %s", got.Short(), err, newest.Short())
	}
	slots, _ := env.Repo.Slots(ctx)
	var order []crypt.ID
	for _, s := range unlock.VaultSlots(slots, url) {
		order = append(order, s.ID)
	}
	if len(order) != 3 || order[0] != newest || order[1] != unknown || order[2] != old {
		t.Fatalf("VaultSlots order %v, want newest, unknown, old", order)
	}

	// Another repository with a slot naming the old slot's user: the vault
	// releases that user's secret, which opens nothing there.
	p, _ := unlock.ParseVaultParams(slotByID(t, slots, old))
	other := testutil.NewRepo(t, repo.InitOptions{})
	addStrangeVaultSlot(t, other.Repo, p)
	src.PasswordFile = oldPW
	if _, err := unlockWith(t, other, src); !errors.Is(err, unlock.ErrWrongVaultSecret) || !errors.Is(err, repo.ErrWrongKey) || errors.Is(err, unlock.ErrWrongCode) {
		t.Fatalf("a secret that opens no slot: %v", err)
	}
}

// nextSecond waits for the next whole second: a slot's creation time has
// whole seconds (docs/SPEC.md §4.2), and slots made in the same second
// have no order among them.
func nextSecond() {
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second)))
}

// addStrangeVaultSlot adds a vault slot with params p whose key comes from
// a random secret, one no vault keeps.
func addStrangeVaultSlot(t *testing.T, r *repo.Repository, p unlock.VaultParams) crypt.ID {
	t.Helper()
	salt, _ := crypt.NewSalt()
	secret, _ := crypt.NewSalt()
	kek, err := crypt.VaultKEK(secret, salt)
	if err != nil {
		t.Fatal(err)
	}
	params, _ := json.Marshal(p)
	id, err := r.AddSlot(context.Background(), crypt.SlotVault, salt, params, kek)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func slotByID(t *testing.T, slots []repo.SlotInfo, id crypt.ID) *crypt.KeySlot {
	t.Helper()
	for _, s := range slots {
		if s.ID == id {
			return s.Slot
		}
	}
	t.Fatalf("no slot %s", id.Short())
	return nil
}
