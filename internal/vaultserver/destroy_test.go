package vaultserver

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/sealfs/sealfs/keyvault"
)

// TestDestroy: an enrolment is retired only with the password, proved as
// a release is: a release's tag without an evaluation, or a wrong
// password (which counts), leaves it; the right one destroys it, and the
// password recovers nothing after, even through a restart.
func TestDestroy(t *testing.T) {
	ctx := context.Background()
	tv := startVault(t, t.TempDir())
	password := []byte("the password to retire")
	if _, err := tv.client.Enrol(ctx, user, password); err != nil {
		t.Fatal(err)
	}
	// A tag without an evaluation proves nothing.
	if err := tv.vault.Destroy(user, make([]byte, 32)); !errors.Is(err, keyvault.ErrWrongPassword) {
		t.Fatalf("destroy without an evaluation = %v", err)
	}
	var wp *keyvault.WrongPasswordError
	if err := tv.client.Destroy(ctx, user, []byte("not the password")); !errors.As(err, &wp) || wp.AttemptsLeft != MaxAttempts-1 {
		t.Fatalf("destroy with a wrong password = %v", err)
	}
	if _, err := tv.client.Recover(ctx, user, password); err != nil {
		t.Fatalf("recover after refused destroys: %v", err)
	}
	if err := tv.client.Destroy(ctx, user, password); err != nil {
		t.Fatal(err)
	}
	if ok, _ := tv.hsm.HasUserKey(mustRecord(t, tv, user).KeyLabel); ok {
		t.Fatal("the key is still in the token")
	}
	tv.restart()
	if _, err := tv.client.Recover(ctx, user, password); !errors.Is(err, keyvault.ErrNotEnrolled) {
		t.Fatalf("recover after destroy = %v, want ErrNotEnrolled", err)
	}
}

// TestDestroyAtAnOldVault: a vault of protocol 1.0 has no /v1/destroy;
// the client says so (ErrNoDestroy).
func TestDestroyAtAnOldVault(t *testing.T) {
	ctx := context.Background()
	tv := startVault(t, t.TempDir())
	h := tv.server.Handler()
	old := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == keyvault.PathDestroy {
			http.NotFound(w, r)
			return
		}
		h.ServeHTTP(w, r)
	}))
	defer old.Close()
	c := mustClient(t, old.URL)
	if _, err := c.Enrol(ctx, user, []byte("password")); err != nil {
		t.Fatal(err)
	}
	if err := c.Destroy(ctx, user, []byte("password")); !errors.Is(err, keyvault.ErrNoDestroy) {
		t.Fatalf("destroy at an old vault = %v, want ErrNoDestroy", err)
	}
}

func mustRecord(t *testing.T, tv *testVault, user string) *userRecord {
	t.Helper()
	rec, err := tv.vault.load(user)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}
