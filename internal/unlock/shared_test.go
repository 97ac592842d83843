package unlock_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/internal/unlock"
	"github.com/sealfs/sealfs/internal/vaultserver"
	"github.com/sealfs/sealfs/keyvault"
	"github.com/sealfs/sealfs/repo"
)

// testVaults are n real vault HTTP servers in one process. SoftHSM2 reads
// one configuration a process, and a token holds the guess-counter anchor
// of one vault database, so they serve one vault (one token, one
// database); each enrols its own random user ids, which is all that tells
// vaults apart to a client, and counts their guesses.
// test/TestVaultKofN runs each in its own process with its own token.
type testVaults struct {
	urls    []string
	servers []*httptest.Server
	lie     []*atomic.Bool // vault i answers evaluations with another point (liar)
}

func startVaults(t *testing.T, n int) *testVaults {
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
	t.Cleanup(func() { h.Close() })
	v, err := vaultserver.NewVault(h, filepath.Join(dir, "vault.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	tv := &testVaults{}
	for i := range n {
		srv, err := vaultserver.NewServer(v, filepath.Join(dir, "audit"+string(rune('1'+i))+".log"), nil)
		if err != nil {
			t.Fatal(err)
		}
		lie := new(atomic.Bool)
		honest := srv.Handler()
		lying := liar(honest)
		hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if lie.Load() {
				lying.ServeHTTP(w, r)
			} else {
				honest.ServeHTTP(w, r)
			}
		}))
		t.Cleanup(func() {
			hs.Close()
			srv.Close()
		})
		tv.urls = append(tv.urls, hs.URL)
		tv.servers = append(tv.servers, hs)
		tv.lie = append(tv.lie, lie)
	}
	return tv
}

func clients(t *testing.T, urls ...string) []*keyvault.Client {
	var cs []*keyvault.Client
	for _, u := range urls {
		cs = append(cs, client(t, u))
	}
	return cs
}

// attemptsLeft asks vault url how many attempts user has left, as a
// guesser would: one evaluation (which counts, and is not released).
func attemptsLeft(t *testing.T, url, user string) int {
	t.Helper()
	_, left, err := client(t, url).Evaluate(context.Background(), user, []byte("a probe, not the password"))
	if err != nil {
		t.Fatalf("probe of %s at %s: %v", user, url, err)
	}
	return left + 1 // before the probe
}

// TestSharedVaultSlot: a 2-of-3 slot (params version 2, a guess limit of
// 5 at each vault) opens with the password through all three vaults,
// through any two named, and with one of them down; one named vault is
// not enough to try it. A wrong password counts at each vault that
// evaluated, and the right one resets exactly those. Retiring it destroys
// the enrolment at the vaults that answer.
func TestSharedVaultSlot(t *testing.T) {
	ctx := context.Background()
	tv := startVaults(t, 3)
	env := testutil.NewRepo(t, repo.InitOptions{})
	pw := "a long and happy passphrase"
	id, err := unlock.Enrol(ctx, env.Repo, clients(t, tv.urls...), 2, []byte(pw))
	if err != nil {
		t.Fatal(err)
	}
	slots, _ := env.Repo.Slots(ctx)
	s := slotByID(t, slots, id)
	p, err := unlock.ParseVaultParams(s)
	if err != nil || !p.Shared() || p.Threshold != 2 || len(p.Vaults) != 3 {
		t.Fatalf("params %s: %+v, %v", s.Params, p, err)
	}
	for i, m := range p.Vaults {
		if m.URL != tv.urls[i] || len(m.Share) != 32 || !keyvault.ValidUser(m.User) {
			t.Fatalf("vault %d: %+v", i+1, m)
		}
	}

	open := func(pw string, urls ...string) (crypt.ID, error) {
		t.Helper()
		return unlockWith(t, env, unlock.Sources{Vault: strings.Join(urls, ","), PasswordFile: passwordFile(t, pw)})
	}
	if got, err := open(pw, tv.urls...); err != nil || got != id {
		t.Fatalf("all three vaults: slot %s, %v", got.Short(), err)
	}
	for _, two := range [][]string{{tv.urls[0], tv.urls[1]}, {tv.urls[2], tv.urls[0]}, {tv.urls[1], tv.urls[2]}} {
		if got, err := open(pw, two...); err != nil || got != id {
			t.Fatalf("vaults %v: slot %s, %v", two, got.Short(), err)
		}
	}
	if _, err := open(pw, tv.urls[1]); !errors.Is(err, unlock.ErrNoVaultSlot) {
		t.Fatalf("one vault of a 2-of-3 slot: %v, want ErrNoVaultSlot", err)
	}
	for i, m := range p.Vaults {
		if left := attemptsLeft(t, tv.urls[i], m.User); left != 5 {
			t.Fatalf("vault %d keeps a limit of %d, want 5 (2 of 3)", i+1, left)
		}
	}
	// The probes counted one guess at each vault; the right password
	// resets the vaults it asks.
	if _, err := open(pw, tv.urls...); err != nil {
		t.Fatal(err)
	}

	var wrong *keyvault.WrongPasswordError
	if _, err := open("not the passphrase", tv.urls...); !errors.As(err, &wrong) || wrong.AttemptsLeft != 4 {
		t.Fatalf("a wrong password: %v, want 4 attempts left", err)
	}
	tv.servers[2].Close() // vault 3 goes down
	if _, err := open("not the passphrase either", tv.urls...); !errors.As(err, &wrong) || wrong.AttemptsLeft != 3 {
		t.Fatalf("a wrong password with vault 3 down: %v, want 3 attempts left", err)
	}
	if got, err := open(pw, tv.urls...); err != nil || got != id {
		t.Fatalf("vault 3 down: slot %s, %v", got.Short(), err)
	}
	for i := range 2 {
		if left := attemptsLeft(t, tv.urls[i], p.Vaults[i].User); left != 5 {
			t.Fatalf("vault %d has %d attempts left after the right password, want 5", i+1, left)
		}
	}
	if _, err := open(pw, tv.urls[0]+"/elsewhere", tv.urls[2]); !errors.Is(err, unlock.ErrNoVaultSlot) {
		t.Fatalf("vaults the slot does not name: %v", err)
	}
	// Vault 1 down too: one vault answers, two are needed.
	tv.servers[0].Close()
	if _, err := open(pw, tv.urls...); !errors.Is(err, keyvault.ErrTooFewVaults) || !strings.Contains(err.Error(), tv.urls[0]) {
		t.Fatalf("two vaults down: %v, want ErrTooFewVaults naming them", err)
	}
}

// TestSharedRetire: retiring a 2-of-3 slot destroys its enrolment at
// every vault: the password then opens no copy of the slot.
func TestSharedRetire(t *testing.T) {
	ctx := context.Background()
	tv := startVaults(t, 3)
	env := testutil.NewRepo(t, repo.InitOptions{})
	pw := "a long and happy passphrase"
	id, err := unlock.Enrol(ctx, env.Repo, clients(t, tv.urls...), 2, []byte(pw))
	if err != nil {
		t.Fatal(err)
	}
	src := unlock.Sources{Vault: strings.Join(tv.urls, ","), PasswordFile: passwordFile(t, pw)}
	secret, err := src.Read()
	if err != nil {
		t.Fatal(err)
	}
	slots, _ := env.Repo.Slots(ctx)
	var slot repo.SlotInfo
	for _, s := range slots {
		if s.ID == id {
			slot = s
		}
	}
	wrongSrc := src
	wrongSrc.PasswordFile = passwordFile(t, "not the passphrase")
	wrong, _ := wrongSrc.Read()
	if err := wrong.Retire(ctx, env.Repo.ID(), slot); !errors.Is(err, keyvault.ErrWrongPassword) {
		t.Fatalf("retire with a wrong password: %v", err)
	}
	if err := secret.Retire(ctx, env.Repo.ID(), slot); err != nil {
		t.Fatal(err)
	}
	p, _ := unlock.ParseVaultParams(slot.Slot)
	for i, m := range p.Vaults {
		if _, _, err := client(t, tv.urls[i]).Evaluate(ctx, m.User, []byte(pw)); !errors.Is(err, keyvault.ErrNotEnrolled) {
			t.Fatalf("vault %d after retiring: %v, want not enrolled", i+1, err)
		}
	}
	if _, err := unlockWith(t, env, src); !errors.Is(err, keyvault.ErrLockedOut) {
		t.Fatalf("the retired slot: %v", err)
	}
}

// TestSharedLyingVault: a vault that answers evaluations with another
// point (a broken or hostile one) spoils its share; with the other two
// answering, the slot still opens.
func TestSharedLyingVault(t *testing.T) {
	ctx := context.Background()
	tv := startVaults(t, 3)
	env := testutil.NewRepo(t, repo.InitOptions{})
	pw := "a long and happy passphrase"
	id, err := unlock.Enrol(ctx, env.Repo, clients(t, tv.urls...), 2, []byte(pw))
	if err != nil {
		t.Fatal(err)
	}
	tv.lie[1].Store(true)
	src := unlock.Sources{Vault: strings.Join(tv.urls, ","), PasswordFile: passwordFile(t, pw)}
	if got, err := unlockWith(t, env, src); err != nil || got != id {
		t.Fatalf("with a lying vault among three: slot %s, %v", got.Short(), err)
	}
	src.Vault = tv.urls[0] + "," + tv.urls[1]
	var wrong *keyvault.WrongPasswordError
	if _, err := unlockWith(t, env, src); !errors.As(err, &wrong) {
		t.Fatalf("with a lying vault among two: %v, want a wrong password", err)
	}
}

// liar answers an evaluation with the x-coordinate of another point.
func liar(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != keyvault.PathRecoverEvaluate {
			next.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		var ev keyvault.EvalResponse
		if rec.Code == http.StatusOK && json.Unmarshal(rec.Body.Bytes(), &ev) == nil {
			b, err := keyvault.Blind([]byte("some other point"))
			if err != nil {
				panic(err)
			}
			ev.Evaluated = b.Element[1:33]
		}
		w.WriteHeader(rec.Code)
		json.NewEncoder(w).Encode(&ev)
	})
}

// TestVaultParamsURLsArePrintable: a slot's vault URLs come from the
// remote and are printed in messages (which vaults to name, which did not
// answer): a URL with a control character (a terminal escape that could
// redraw what the user reads) or an invisible format character (a
// right-to-left override) makes the params malformed, in both versions.
func TestVaultParamsURLsArePrintable(t *testing.T) {
	share := strings.Repeat("A", 43) + "="
	for _, url := range []string{"https://v.example/\x1b[2K\rhttps://mine.example", "https://v.example\u202e", "https://v.\x00example", "https://v example", "https://v.example\u009b31m"} {
		u, _ := json.Marshal(url)
		for _, params := range []string{
			`{"url":` + string(u) + `,"user":"u0123456789abcdef0123456789abcdef"}`,
			`{"version":2,"threshold":1,"vaults":[{"url":` + string(u) + `,"user":"u0123456789abcdef0123456789abcdef","share":"` + share + `"}]}`,
		} {
			if p, err := unlock.ParseVaultParams(&crypt.KeySlot{Kind: crypt.SlotVault, Params: []byte(params)}); err == nil {
				t.Errorf("params %s accepted: %+v", params, p)
			}
		}
	}
	good := `{"version":2,"threshold":1,"vaults":[{"url":"https://v.example:8443/vault","user":"u0123456789abcdef0123456789abcdef","share":"` + share + `"}]}`
	if _, err := unlock.ParseVaultParams(&crypt.KeySlot{Kind: crypt.SlotVault, Params: []byte(good)}); err != nil {
		t.Fatalf("params %s: %v", good, err)
	}
}
