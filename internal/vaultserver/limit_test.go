package vaultserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/sealfs/sealfs/keyvault"
)

// TestEnrolmentAttemptLimit: an enrolment that asks for a guess limit of 3
// (protocol 1.2, max_attempts) is told so, keeps it across a restart,
// counts down from it, and its 3rd wrong guess in a row destroys the key;
// a right guess before that resets the count to the same limit. Limits
// out of 1..10 are refused. An enrolment without the field keeps 10.
func TestEnrolmentAttemptLimit(t *testing.T) {
	ctx := context.Background()
	tv := startVault(t, t.TempDir())
	pw := []byte("correct horse battery staple")
	keys, err := tv.client.EnrolStart(ctx, user, pw, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := tv.client.EnrolFinish(ctx, user, keys.Tag[:], make([]byte, 28)); err != nil {
		t.Fatal(err)
	}
	tv.restart()
	wrong := func(i, left int) {
		t.Helper()
		k, l, err := tv.client.Evaluate(ctx, user, []byte(fmt.Sprintf("wrong %d", i)))
		if err != nil || l != left {
			t.Fatalf("wrong guess %d: %d left, %v; want %d left", i, l, err, left)
		}
		_, err = tv.client.Release(ctx, user, k.Tag[:])
		if want := keyvault.ErrWrongPassword; left == 0 && !errors.Is(err, keyvault.ErrLockedOut) || left > 0 && !errors.Is(err, want) {
			t.Fatalf("release of wrong guess %d (%d left): %v", i, left, err)
		}
	}
	wrong(0, 2)
	wrong(1, 1)
	k, l, err := tv.client.Evaluate(ctx, user, pw)
	if err != nil || l != 0 {
		t.Fatalf("the right guess after 2 wrong: %d left, %v", l, err)
	}
	if _, err := tv.client.Release(ctx, user, k.Tag[:]); err != nil {
		t.Fatalf("the right guess after 2 wrong was refused: %v", err)
	}
	for i := range 3 {
		wrong(i, 2-i)
	}
	if _, _, err := tv.client.Evaluate(ctx, user, pw); !errors.Is(err, keyvault.ErrLockedOut) {
		t.Fatalf("a guess after 3 wrong at a limit of 3 gave %v, want ErrLockedOut", err)
	}

	for _, bad := range []int{-1, 11, 1000} {
		b, _ := keyvault.Blind(keyvault.Stretch(pw, "user-other-0123456789"))
		var ev keyvault.EvalResponse
		if st := post(t, tv.http.URL, keyvault.PathEnrolStart, &keyvault.EnrolStartRequest{User: "user-other-0123456789", Blinded: b.Element, MaxAttempts: bad}, &ev); st != http.StatusBadRequest {
			t.Errorf("max_attempts %d: status %d, want 400", bad, st)
		}
	}
	if _, err := tv.client.EnrolStart(ctx, "user-default-0123456789", pw, 0); err != nil {
		t.Fatal(err)
	}
	b, _ := keyvault.Blind(keyvault.Stretch(pw, "user-plain-0123456789"))
	var ev keyvault.EvalResponse
	if st := post(t, tv.http.URL, keyvault.PathEnrolStart, &keyvault.EvalRequest{User: "user-plain-0123456789", Blinded: b.Element}, &ev); st != http.StatusOK || ev.AttemptsLeft != MaxAttempts {
		t.Errorf("an enrolment without max_attempts: status %d, limit %d, want 200 and %d", st, ev.AttemptsLeft, MaxAttempts)
	}
}

// TestClientNeedsTheAttemptLimit: a vault that does not know max_attempts
// (protocol 1.1 refuses the unknown field) makes EnrolStart with a limit
// fail with ErrNoAttemptLimit, before anything is enrolled.
func TestClientNeedsTheAttemptLimit(t *testing.T) {
	old := startVault(t, t.TempDir())
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+keyvault.PathEnrolStart, func(w http.ResponseWriter, r *http.Request) {
		var req keyvault.EvalRequest // 1.1's request: max_attempts is an unknown field
		b, _ := io.ReadAll(r.Body)
		if err := decodeRequest(b, &req); err != nil {
			old.server.replyError(w, err)
			return
		}
		old.server.Handler().ServeHTTP(w, r)
	})
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	c := mustClient(t, hs.URL)
	if _, err := c.EnrolStart(context.Background(), user, []byte("correct horse battery staple"), 5); !errors.Is(err, keyvault.ErrNoAttemptLimit) {
		t.Fatalf("EnrolStart with a limit at a 1.1 vault: %v, want ErrNoAttemptLimit", err)
	}
}
