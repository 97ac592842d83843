package test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"sync"
	"testing"

	"github.com/sealfs/sealfs/internal/pgtest"
	"github.com/sealfs/sealfs/keyvault"
)

// TestVaultProcessesShareOnePostgres: two sealfs-vault serve processes,
// started together on one SoftHSM2 token directory with their records in
// one PostgreSQL database (--db), serve the same users: enrolled through
// one, recovered through the other (one tag key was made, not one per
// process); then 50 parallel wrong guesses spread over both get exactly
// 10 evaluations, and the user is locked out at both.
func TestVaultProcessesShareOnePostgres(t *testing.T) {
	db := pgtest.Database(t)
	shared := filepath.Join(t.TempDir(), "vault")
	url1, wait1, _ := launchVaultServer(t, directServe(), "", "", shared, "--db", db)
	url2, wait2, _ := launchVaultServer(t, directServe(), "", "", shared, "--db", db)
	wait1()
	wait2()
	ctx := context.Background()
	const user = "shared-user-0123456789"
	c1, err := keyvault.NewClient(url1, keyvault.Trust{})
	if err != nil {
		t.Fatal(err)
	}
	c2, _ := keyvault.NewClient(url2, keyvault.Trust{})
	secret, err := c1.Enrol(ctx, user, []byte("the password"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := c2.Recover(ctx, user, []byte("the password")); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("recovery through the other process: %v", err)
	}

	b, _ := keyvault.Blind(keyvault.Stretch([]byte("a wrong password"), user))
	body, _ := json.Marshal(&keyvault.EvalRequest{User: user, Blinded: b.Element})
	var mu sync.Mutex
	statuses := map[int]int{}
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := http.Post([]string{url1, url2}[i%2]+keyvault.PathRecoverEvaluate, "application/json", bytes.NewReader(body))
			if err != nil {
				t.Error(err)
				return
			}
			r.Body.Close()
			mu.Lock()
			statuses[r.StatusCode]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if statuses[http.StatusOK] != 10 {
		t.Fatalf("50 parallel wrong guesses over two processes: statuses %v; want exactly 10 evaluated (200)", statuses)
	}
	for _, c := range []*keyvault.Client{c1, c2} {
		if _, err := c.Recover(ctx, user, []byte("the password")); !errors.Is(err, keyvault.ErrLockedOut) {
			t.Fatalf("the right password after the guesses: %v, want locked out", err)
		}
	}
}
