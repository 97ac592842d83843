package vaultserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/pkcs11"
	bolt "go.etcd.io/bbolt"

	"github.com/sealfs/sealfs/keyvault"
)

// tokenKeys counts the user keys in the token.
func tokenKeys(t *testing.T, h HSM) int {
	t.Helper()
	p := h.(*PKCS11)
	p.mu.Lock()
	defer p.mu.Unlock()
	objs, err := p.find([]*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY)})
	if err != nil {
		t.Fatal(err)
	}
	return len(objs)
}

// TestEnrolFloodLeavesRecoveries: unauthenticated clients start
// enrolments of fresh user ids, many more than the vault keeps pending,
// while the enrolled user recovers: every recovery works, the token
// holds no more keys than the enrolled user's and the bound of pending
// ones, the lock table is empty afterwards; the pending enrolments expire
// (their keys are destroyed, and a late finish is refused), and then new
// ones start again.
func TestEnrolFloodLeavesRecoveries(t *testing.T) {
	ctx := context.Background()
	tv := startVault(t, t.TempDir())
	tv.server.ips = newLimiter(1e9, 1e9) // the flood comes from many addresses
	const maxPending = 20
	tv.vault.maxPending = maxPending
	clock := time.Now()
	var clockMu sync.Mutex
	tv.vault.now = func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return clock }
	secret, err := tv.client.Enrol(ctx, user, []byte("the enrolled users password"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := keyvault.Blind([]byte("flood"))
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				var ev keyvault.EvalResponse
				st := post(t, tv.http.URL, keyvault.PathEnrolStart, &keyvault.EvalRequest{User: fmt.Sprintf("flood-%02d-%04d-0123456789", w, i), Blinded: b.Element}, &ev)
				mu.Lock()
				statuses[st]++
				mu.Unlock()
			}
		}()
	}
	for i := range 3 {
		got, err := tv.client.Recover(ctx, user, []byte("the enrolled users password"))
		if err != nil || !bytes.Equal(got, secret) {
			t.Fatalf("recovery %d during the flood: %v", i, err)
		}
	}
	wg.Wait()
	if statuses[http.StatusOK] != maxPending || statuses[http.StatusTooManyRequests] != 200-maxPending {
		t.Fatalf("200 enrolments started: statuses %v; want %d started and the rest 429", statuses, maxPending)
	}
	if n := tokenKeys(t, tv.hsm); n != 1+maxPending {
		t.Fatalf("the token holds %d keys after the flood, want %d (the user's and %d pending)", n, 1+maxPending, maxPending)
	}
	if n := tv.vault.lockedUsers(); n != 0 {
		t.Fatalf("the lock table holds %d users after the flood", n)
	}
	if got, err := tv.client.Recover(ctx, user, []byte("the enrolled users password")); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("recovery after the flood: %v", err)
	}

	// An hour later the pending enrolments have expired.
	clockMu.Lock()
	clock = clock.Add(time.Hour)
	clockMu.Unlock()
	if err := tv.vault.EnrolFinish("flood-00-0000-0123456789", make([]byte, 32), make([]byte, 60)); !errors.Is(err, keyvault.ErrNotEnrolled) {
		t.Fatalf("finishing an expired enrolment = %v, want ErrNotEnrolled", err)
	}
	if n, err := tv.vault.ExpirePending(); err != nil || n != maxPending-1 {
		t.Fatalf("ExpirePending = %d, %v; want %d", n, err, maxPending-1)
	}
	if n := tokenKeys(t, tv.hsm); n != 1 {
		t.Fatalf("the token holds %d keys after expiry, want 1", n)
	}
	if _, err := mustClient(t, tv.http.URL).Enrol(ctx, "another-user-0123456789", []byte("a new users password")); err != nil {
		t.Fatalf("enrolment after expiry: %v", err)
	}
}

// TestLimiterFloodDoesNotReset: a flood of fresh keys neither grows the
// table past its bound nor gives back the attempts of a key that used
// them (the limiter reset its whole table when full).
func TestLimiterFloodDoesNotReset(t *testing.T) {
	l := newLimiter(0.001, 3)
	l.max = 1000
	for range 3 {
		if !l.allow("target") {
			t.Fatal("the burst was refused")
		}
	}
	if l.allow("target") {
		t.Fatal("past the burst, allowed")
	}
	for i := range 100000 {
		l.allow(fmt.Sprintf("fresh-%d", i))
	}
	if n := l.size(); n > l.max {
		t.Fatalf("the limiter holds %d keys, bound %d", n, l.max)
	}
	if l.allow("target") {
		t.Fatal("after a flood of fresh keys the exhausted key is allowed again")
	}
}

// TestMalformedUsersAreNotLimiterKeys: a request with a malformed user id
// (up to 16 KiB) takes no place in the per-user limiter.
func TestMalformedUsersAreNotLimiterKeys(t *testing.T) {
	tv := startVault(t, t.TempDir())
	tv.server.ips = newLimiter(1e9, 1e9)
	for i := range 50 {
		body, _ := json.Marshal(map[string]string{"user": fmt.Sprintf("%d/%s", i, strings.Repeat("x", 8000))})
		r, err := http.Post(tv.http.URL+keyvault.PathRecoverEvaluate, "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode != http.StatusBadRequest {
			t.Fatalf("status %d, want 400", r.StatusCode)
		}
	}
	if n := tv.server.users.size(); n != 0 {
		t.Fatalf("malformed user ids took %d places in the per-user limiter", n)
	}
}

// TestOldPendingEnrolmentsExpire: an enrolment started before the
// pending bucket existed is listed when the vault opens, so it is
// counted and expires (its key destroyed).
func TestOldPendingEnrolmentsExpire(t *testing.T) {
	dir := t.TempDir()
	tv := startVault(t, dir)
	b, _ := keyvault.Blind([]byte("old"))
	if _, _, err := tv.vault.EnrolStart(user, b.Element, 0); err != nil {
		t.Fatal(err)
	}
	// As a database of the version before the pending bucket has it.
	if err := tv.vault.store.(*boltStore).db.Update(func(tx *bolt.Tx) error { return tx.Bucket(pendingBucket).Delete([]byte(user)) }); err != nil {
		t.Fatal(err)
	}
	tv.restart()
	if n, err := tv.vault.pendingCount(); err != nil || n != 1 {
		t.Fatalf("pending after reopening: %d, %v; want 1", n, err)
	}
	tv.vault.now = func() time.Time { return time.Now().Add(time.Hour) }
	if n, err := tv.vault.ExpirePending(); err != nil || n != 1 {
		t.Fatalf("ExpirePending = %d, %v; want 1", n, err)
	}
	if n := tokenKeys(t, tv.hsm); n != 0 {
		t.Fatalf("%d keys left in the token", n)
	}
}
