package vaultserver

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"runtime"
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

// BenchmarkServerRecoveryParallel is whole recoveries (as
// BenchmarkServerRecovery) of 64 users at once, each client goroutine
// its own user: the vault's throughput with many clients, where guesses
// share counter batches.
func BenchmarkServerRecoveryParallel(b *testing.B) {
	dir := b.TempDir()
	h := openTestHSM(b, dir)
	defer h.Close()
	v, err := NewVault(h, filepath.Join(dir, "vault.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer v.Close()
	srv, _ := NewServer(v, filepath.Join(dir, "audit.log"), nil)
	srv.users, srv.ips = newLimiter(1e9, 1e9), newLimiter(1e9, 1e9)
	hs := newLoopbackServer(srv)
	defer hs.Close()
	hs.Client().Transport.(*http.Transport).MaxIdleConnsPerHost = 128
	http.DefaultTransport.(*http.Transport).MaxIdleConnsPerHost = 128
	const users = 64
	type account struct {
		user string
		bl   *keyvault.Blinded
	}
	accounts := make(chan account, users)
	for i := range users {
		// Enrolled in process, without the client's Argon2id.
		u := fmt.Sprintf("bench-user-%04d-0123456789", i)
		bl, _ := keyvault.Blind([]byte("benchmark stretched password " + u))
		x, _, err := v.EnrolStart(u, bl.Element, 0)
		if err != nil {
			b.Fatal(err)
		}
		keys, _ := bl.Finish(x)
		if err := v.EnrolFinish(u, keys.Tag[:], make([]byte, 60)); err != nil {
			b.Fatal(err)
		}
		accounts <- account{u, bl}
	}
	b.SetParallelism(users / runtime.GOMAXPROCS(0))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		a := <-accounts
		for pb.Next() {
			var ev keyvault.EvalResponse
			if st := post(b, hs.URL, keyvault.PathRecoverEvaluate, &keyvault.EvalRequest{User: a.user, Blinded: a.bl.Element}, &ev); st != http.StatusOK {
				b.Errorf("evaluate: status %d", st)
				return
			}
			keys, err := a.bl.Finish(ev.Evaluated)
			if err != nil {
				b.Error(err)
				return
			}
			var rel keyvault.ReleaseResponse
			if st := post(b, hs.URL, keyvault.PathRecoverRelease, &keyvault.ReleaseRequest{User: a.user, Tag: keys.Tag[:]}, &rel); st != http.StatusOK {
				b.Errorf("release: status %d", st)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "recoveries/s")
}
