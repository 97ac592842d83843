package keyvault

import (
	"context"
	"path/filepath"
	"testing"
)

// BenchmarkHSMDerive is the raw rate of CKM_ECDH1_DERIVE on the token.
func BenchmarkHSMDerive(b *testing.B) {
	h, err := OpenEmbedded(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	h.NewUserKey("bench")
	bl, _ := Blind([]byte("bench"))
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
	h, err := OpenEmbedded(dir)
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	v, _ := NewVault(h, filepath.Join(dir, "vault.db"))
	defer v.Close()
	srv, _ := NewServer(v, filepath.Join(dir, "audit.log"), nil)
	srv.users, srv.ips = newLimiter(1e9, 1e9), newLimiter(1e9, 1e9)
	hs := newLoopbackServer(srv)
	defer hs.Close()
	c := NewClient(hs.URL)
	ctx := context.Background()
	if _, err := c.Enrol(ctx, user, []byte("benchmark password")); err != nil {
		b.Fatal(err)
	}
	bl, _ := Blind(Stretch([]byte("benchmark password"), user))
	for b.Loop() {
		var ev EvalResponse
		if err := c.call(ctx, "/v1/recover/evaluate", &EvalRequest{User: user, Blinded: bl.Element}, &ev); err != nil {
			b.Fatal(err)
		}
		keys, err := bl.Finish(ev.Evaluated)
		if err != nil {
			b.Fatal(err)
		}
		var rel ReleaseResponse
		if err := c.call(ctx, "/v1/recover/release", &ReleaseRequest{User: user, Tag: keys.Tag[:]}, &rel); err != nil {
			b.Fatal(err)
		}
	}
}
