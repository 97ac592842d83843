package test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/internal/unlock"
	"github.com/sealfs/sealfs/internal/vaultserver"
	"github.com/sealfs/sealfs/keyvault"
)

// tagRecorder is a vault's front (a reverse proxy to the real server)
// that records every tag the vault is sent (release, destroy): what the
// vault's operator sees.
type tagRecorder struct {
	mu   sync.Mutex
	tags []keyvault.ReleaseRequest
}

func (l *tagRecorder) front(t *testing.T, vaultURL string) string {
	t.Helper()
	target, err := url.Parse(vaultURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == keyvault.PathRecoverRelease || r.URL.Path == keyvault.PathDestroy {
			b, _ := io.ReadAll(r.Body)
			var req keyvault.ReleaseRequest
			if json.Unmarshal(b, &req) == nil {
				l.mu.Lock()
				l.tags = append(l.tags, req)
				l.mu.Unlock()
			}
			r.Body = io.NopCloser(bytes.NewReader(b))
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func (l *tagRecorder) sent() []keyvault.ReleaseRequest {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]keyvault.ReleaseRequest(nil), l.tags...)
}

// TestVaultKofNPlantedSingleVaultSlot: three real vaults, a 2-of-3 slot.
// The storage provider plants a newer slot of one vault (params version
// 1) naming vault 1 and the user id of vault 1's part of the 2-of-3
// enrolment. Unlocking with the three vaults named must not try it: its
// unlock tag derives from vault 1's evaluation alone, so vault 1's
// operator, holding its HSM key, would test the password offline against
// the tag, the attack k of n vaults exist to stop. The password opens
// the 2-of-3 slot, and no tag vault 1 is sent checks a guess made with
// its key (the operator's offline evaluation of the right password).
func TestVaultKofNPlantedSingleVaultSlot(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	var urls, dataDirs []string
	var stops []func()
	for i := range 3 {
		d := filepath.Join(dir, fmt.Sprintf("vault%d", i+1))
		u, stop := startVaultIn(t, directServe(), "", "", d)
		urls, stops, dataDirs = append(urls, u), append(stops, stop), append(dataDirs, d)
	}
	var seen tagRecorder
	urls[0] = seen.front(t, urls[0]) // the user reaches vault 1 through it
	all := strings.Join(urls, ",")
	password := "a long and happy passphrase"
	pw := writeFileT(t, dir, "pw", password+"\n")
	c := cliRepo{remote: filepath.Join(dir, "remote"), cache: filepath.Join(dir, "cache"), codeFile: filepath.Join(dir, "code")}
	expect(t, sealfs(t, nil, "init", "--cache-dir", c.cache, "--code-file", c.codeFile, "--vault", all, "--vault-threshold", "2", "--password-file", pw, c.remote), 0, "")

	// The provider plants a newer slot (slot times are in seconds; the
	// provider writes any it likes). Its wrapping need not open: the tag
	// is sent before any check.
	_, p := vaultSlotOf(t, c.remote)
	m1 := p.Vaults[0]
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second)))
	r, _ := c.openInProcess(t)
	params, _ := json.Marshal(unlock.VaultParams{URL: urls[0], User: m1.User})
	salt, _ := crypt.NewSalt()
	if _, err := r.AddSlot(context.Background(), crypt.SlotVault, salt, params, crypt.KEK{}); err != nil {
		t.Fatal(err)
	}

	res := sealfs(t, nil, "snapshots", "--cache-dir", t.TempDir(), "--vault", all, "--password-file", pw, c.remote)

	// Vault 1's operator: its token and PIN, the key of m1.User.
	stops[0]()
	t.Setenv(vaultserver.SoftHSMConfEnv, filepath.Join(dataDirs[0], "softhsm2.conf"))
	hsm, err := vaultserver.OpenEmbedded(dataDirs[0])
	if err != nil {
		t.Fatalf("vault 1's operator opens its token: %v", err)
	}
	defer hsm.Close()
	db1, err := os.ReadFile(filepath.Join(dataDirs[0], "vault.db"))
	if err != nil {
		t.Fatal(err)
	}
	label := regexp.MustCompile(regexp.QuoteMeta(m1.User) + `/[0-9a-f]{16}`).Find(db1)
	if label == nil {
		t.Fatalf("vault 1's database names no key of user %s", m1.User)
	}
	offlineTag := func(guess string) [32]byte {
		b, err := keyvault.Blind(keyvault.Stretch([]byte(guess), m1.User))
		if err != nil {
			t.Fatal(err)
		}
		x, err := hsm.Evaluate(string(label), b.Element)
		if err != nil {
			t.Fatalf("offline evaluation with vault 1's key: %v", err)
		}
		keys, err := b.Finish(x)
		if err != nil {
			t.Fatal(err)
		}
		return keys.Tag
	}
	right, wrong := offlineTag(password), offlineTag("not the passphrase at all")
	for _, s := range seen.sent() {
		if bytes.Equal(s.Tag, right[:]) {
			t.Fatalf("vault 1 was sent the tag of its own evaluation of the password (user %s): its operator tests guesses offline, the tag of a wrong guess differing (%v)", s.User, !bytes.Equal(s.Tag, wrong[:]))
		}
	}
	if len(seen.sent()) == 0 {
		t.Fatal("vault 1 was sent no tag at all: the unlock did not reach it (the check above proved nothing)")
	}
	expect(t, res, 0, "")
}
