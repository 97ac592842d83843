package vaultserver

import (
	"context"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/sealfs/sealfs/keyvault"
)

// BenchmarkHSMDerive is the raw rate of CKM_ECDH1_DERIVE on the token.
func BenchmarkHSMDerive(b *testing.B) {
	h := openTestHSM(b, b.TempDir())
	defer h.Close()
	h.NewUserKey("bench")
	bl, _ := keyvault.Blind([]byte("bench"))
	for b.Loop() {
		if _, err := h.Evaluate("bench", bl.Element); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkServerRecovery is a whole recovery against the HTTP server on
// loopback (evaluate, then release with the right tag, which resets the
// count), without the client's Argon2id stretching, which costs the
// client, not the vault.
func BenchmarkServerRecovery(b *testing.B) {
	dir := b.TempDir()
	h := openTestHSM(b, dir)
	defer h.Close()
	v, _ := NewVault(h, filepath.Join(dir, "vault.db"))
	defer v.Close()
	srv, _ := NewServer(v, filepath.Join(dir, "audit.log"), nil)
	srv.users, srv.ips = newLimiter(1e9, 1e9), newLimiter(1e9, 1e9)
	hs := newLoopbackServer(srv)
	defer hs.Close()
	c := mustClient(b, hs.URL)
	ctx := context.Background()
	if _, err := c.Enrol(ctx, user, []byte("benchmark password")); err != nil {
		b.Fatal(err)
	}
	bl, _ := keyvault.Blind(keyvault.Stretch([]byte("benchmark password"), user))
	for b.Loop() {
		var ev keyvault.EvalResponse
		if st := post(b, hs.URL, keyvault.PathRecoverEvaluate, &keyvault.EvalRequest{User: user, Blinded: bl.Element}, &ev); st != http.StatusOK {
			b.Fatalf("evaluate: status %d", st)
		}
		keys, err := bl.Finish(ev.Evaluated)
		if err != nil {
			b.Fatal(err)
		}
		var rel keyvault.ReleaseResponse
		if st := post(b, hs.URL, keyvault.PathRecoverRelease, &keyvault.ReleaseRequest{User: user, Tag: keys.Tag[:]}, &rel); st != http.StatusOK {
			b.Fatalf("release: status %d", st)
		}
	}
}
