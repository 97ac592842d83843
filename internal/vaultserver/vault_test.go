package vaultserver

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sealfs/sealfs/keyvault"
)

// testVault runs a real vault (SoftHSM2 token, bbolt database, HTTP on
// loopback) in dir; restart closes and reopens it all.
type testVault struct {
	t      *testing.T
	dir    string
	db     string // a PostgreSQL URL, or "" for bbolt in dir
	hsm    HSM
	vault  *Vault
	server *Server
	http   *httptest.Server
	client *keyvault.Client
}

func startVault(t *testing.T, dir string) *testVault {
	tv := &testVault{t: t, dir: dir}
	tv.start()
	t.Cleanup(tv.stop)
	return tv
}

func (tv *testVault) start() {
	tv.hsm = openTestHSM(tv.t, tv.dir)
	var err error
	if tv.vault, err = openTestVault(tv.hsm, tv.dir, tv.db); err != nil {
		tv.hsm.Close()
		tv.t.Fatal(err)
	}
	if tv.server, err = NewServer(tv.vault, filepath.Join(tv.dir, "audit.log"), nil); err != nil {
		tv.t.Fatal(err)
	}
	tv.server.users = newLimiter(1000, 1000) // the tests guess fast on purpose
	tv.http = httptest.NewServer(tv.server.Handler())
	tv.client = mustClient(tv.t, tv.http.URL)
}

func (tv *testVault) stop() {
	if tv.http == nil {
		return
	}
	tv.http.Close()
	tv.server.Close()
	tv.vault.Close()
	tv.hsm.Close()
	tv.http = nil
}

func (tv *testVault) restart() { tv.stop(); tv.start() }

const user = "user-0123456789abcdef"

func TestEnrolRecover(t *testing.T) {
	ctx := context.Background()
	tv := startVault(t, t.TempDir())
	secret, err := tv.client.Enrol(ctx, user, []byte("correct horse battery staple"))
	if err != nil {
		t.Fatal(err)
	}
	tv.restart() // a new machine, a restarted vault: only the password
	got, err := tv.client.Recover(ctx, user, []byte("correct horse battery staple"))
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("recover: %v", err)
	}
	if _, err := tv.client.Enrol(ctx, user, []byte("another")); !errors.Is(err, keyvault.ErrEnrolled) {
		t.Fatalf("re-enrolling an enrolled user = %v", err)
	}
	if _, err := tv.client.Recover(ctx, "user-unknown-0123456789", []byte("x")); !errors.Is(err, keyvault.ErrNotEnrolled) {
		t.Fatalf("unknown user = %v", err)
	}
}

func TestNineWrongThenRight(t *testing.T) {
	ctx := context.Background()
	tv := startVault(t, t.TempDir())
	secret, _ := tv.client.Enrol(ctx, user, []byte("right"))
	for round := range 2 { // the right password resets the count
		for i := range MaxAttempts - 1 {
			_, err := tv.client.Recover(ctx, user, []byte(fmt.Sprintf("wrong %d", i)))
			var wp *keyvault.WrongPasswordError
			if !errors.As(err, &wp) || wp.AttemptsLeft != MaxAttempts-1-i {
				t.Fatalf("round %d, wrong guess %d: %v", round, i, err)
			}
		}
		got, err := tv.client.Recover(ctx, user, []byte("right"))
		if err != nil || !bytes.Equal(got, secret) {
			t.Fatalf("round %d: the right password after 9 wrong ones failed: %v", round, err)
		}
	}
}

func TestLockoutIsForever(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	tv := startVault(t, dir)
	tv.client.Enrol(ctx, user, []byte("right"))
	// A copy of the database taken before the guesses.
	tv.stop()
	dbCopy, err := os.ReadFile(filepath.Join(dir, "vault.db"))
	if err != nil {
		t.Fatal(err)
	}
	tv.start()
	for i := range MaxAttempts {
		_, err := tv.client.Recover(ctx, user, []byte(fmt.Sprintf("wrong %d", i)))
		if i < MaxAttempts-1 && !errors.Is(err, keyvault.ErrWrongPassword) {
			t.Fatalf("guess %d: %v", i, err)
		}
		if i == MaxAttempts-1 && !errors.Is(err, keyvault.ErrLockedOut) {
			t.Fatalf("the 10th wrong guess gave %v, want ErrLockedOut", err)
		}
	}
	if _, err := tv.client.Recover(ctx, user, []byte("right")); !errors.Is(err, keyvault.ErrLockedOut) {
		t.Fatalf("right password after lockout = %v", err)
	}
	tv.restart()
	if _, err := tv.client.Recover(ctx, user, []byte("right")); !errors.Is(err, keyvault.ErrLockedOut) {
		t.Fatalf("right password after a restart = %v", err)
	}
	// Restoring the old database brings neither the key nor the count
	// back: the vault refuses to serve it.
	tv.stop()
	os.WriteFile(filepath.Join(dir, "vault.db"), dbCopy, 0o600)
	if err := openRefused(t, dir); !errors.Is(err, errRestoredStore) {
		t.Fatalf("opening a restored database = %v, want errRestoredStore", err)
	}
}

// openTestVault opens the vault on h with its records in db, a
// PostgreSQL URL, or "" for bbolt in dir.
func openTestVault(h HSM, dir, db string) (*Vault, error) {
	if db == "" {
		return NewVault(h, filepath.Join(dir, "vault.db"))
	}
	s, err := OpenPostgresStore(db)
	if err != nil {
		return nil, err
	}
	v, err := OpenVault(h, s)
	if err != nil {
		s.Close()
	}
	return v, err
}

// openRefused opens the vault in dir, which must fail, and returns why.
func openRefused(t *testing.T, dir string) error {
	t.Helper()
	return openRefusedOn(t, dir, "")
}

// openRefusedOn is openRefused with the records in db (openTestVault).
func openRefusedOn(t *testing.T, dir, db string) error {
	t.Helper()
	h := openTestHSM(t, dir)
	defer h.Close()
	v, err := openTestVault(h, dir, db)
	if err == nil {
		v.Close()
		t.Fatal("the vault opened")
	}
	return err
}

func TestParallelGuessesNeverPassTheLimit(t *testing.T) {
	ctx := context.Background()
	tv := startVault(t, t.TempDir())
	tv.client.Enrol(ctx, user, []byte("right"))
	b, _ := keyvault.Blind(keyvault.Stretch([]byte("wrong"), user))
	var mu sync.Mutex
	evaluations := 0
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var ev keyvault.EvalResponse
			if post(t, tv.http.URL, keyvault.PathRecoverEvaluate, &keyvault.EvalRequest{User: user, Blinded: b.Element}, &ev) == http.StatusOK {
				mu.Lock()
				evaluations++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if evaluations != MaxAttempts {
		t.Fatalf("50 parallel guesses got %d evaluations, want exactly %d", evaluations, MaxAttempts)
	}
	if _, err := tv.client.Recover(ctx, user, []byte("right")); !errors.Is(err, keyvault.ErrLockedOut) {
		t.Fatalf("after the parallel guesses = %v", err)
	}
}

// failingHSM fails evaluations, as a crash between counting and
// evaluating would.
type failingHSM struct{ HSM }

func (failingHSM) Evaluate(string, []byte) ([]byte, error) { return nil, errors.New("crash") }

func TestCrashBetweenCountAndEvaluateCounts(t *testing.T) {
	ctx := context.Background()
	tv := startVault(t, t.TempDir())
	tv.client.Enrol(ctx, user, []byte("right"))
	crashing := &Vault{hsm: failingHSM{tv.hsm}, store: tv.vault.store, limit: MaxAttempts, locks: map[string]*userLock{}}
	b, _ := keyvault.Blind(keyvault.Stretch([]byte("guess"), user))
	for range 3 {
		if _, _, err := crashing.Evaluate(user, b.Element); err == nil {
			t.Fatal("evaluation did not fail")
		}
	}
	_, err := tv.client.Recover(ctx, user, []byte("wrong"))
	var wp *keyvault.WrongPasswordError
	if !errors.As(err, &wp) || wp.AttemptsLeft != MaxAttempts-4 {
		t.Fatalf("after 3 crashed evaluations and a wrong guess: %v; want %d attempts left", err, MaxAttempts-4)
	}
}

func TestMalformedRequests(t *testing.T) {
	ctx := context.Background()
	tv := startVault(t, t.TempDir())
	tv.client.Enrol(ctx, user, []byte("right"))
	good, _ := keyvault.Blind([]byte("x"))
	offCurve := append([]byte{}, good.Element...)
	offCurve[64] ^= 1
	post := func(path, body string) int {
		r, err := http.Post(tv.http.URL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		return r.StatusCode
	}
	for name, c := range map[string]struct {
		path, body string
		status     int
	}{
		"off-curve point": {"/v1/recover/evaluate", fmt.Sprintf(`{"user":%q,"blinded":"%s"}`, user, base64.StdEncoding.EncodeToString(offCurve)), 400},
		"identity":        {"/v1/recover/evaluate", fmt.Sprintf(`{"user":%q,"blinded":"AA=="}`, user), 400},
		"truncated":       {"/v1/recover/evaluate", `{"user":"` + user, 400},
		"unknown field":   {"/v1/recover/evaluate", fmt.Sprintf(`{"user":%q,"blinded":"%s","x":1}`, user, base64.StdEncoding.EncodeToString(good.Element)), 400},
		"bad user":        {"/v1/recover/evaluate", fmt.Sprintf(`{"user":"../x","blinded":"%s"}`, base64.StdEncoding.EncodeToString(good.Element)), 400},
		"oversized":       {"/v1/recover/evaluate", `{"user":"` + strings.Repeat("a", 20000) + `"}`, 413},
		"short tag":       {"/v1/recover/release", fmt.Sprintf(`{"user":%q,"tag":"AAAA"}`, user), 400},
	} {
		if got := post(c.path, c.body); got != c.status {
			t.Errorf("%s: status %d, want %d", name, got, c.status)
		}
	}
	// None of that cost the user an attempt.
	if _, err := tv.client.Recover(ctx, user, []byte("right")); err != nil {
		t.Fatal(err)
	}
}

// TestDishonestOperator: with the database file and no HSM, the operator
// cannot test a password guess: the stored tag depends on the HSM key,
// so running the client computation with any other key (here, a fresh
// token of its own) does not reproduce it even for the right password;
// and neither the password nor the secret appear in the file.
func TestDishonestOperator(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	tv := startVault(t, dir)
	password := []byte("operator-cannot-see-this-password")
	secret, _ := tv.client.Enrol(ctx, user, password)
	tv.stop()
	db, _ := os.ReadFile(filepath.Join(dir, "vault.db"))
	stretched := keyvault.Stretch(password, user)
	for _, needle := range [][]byte{password, secret, stretched} {
		if bytes.Contains(db, needle) {
			t.Fatal("the database holds the password, the secret or the stretched password")
		}
	}
	// Read the record as the operator would.
	v, err := NewVault(nil, filepath.Join(dir, "vault.db"))
	if err != nil {
		t.Fatal(err)
	}
	rec, err := v.load(user)
	v.Close()
	if err != nil {
		t.Fatal(err)
	}
	// The operator's best offline try: the whole client computation with
	// a key it has (a token of its own), for the right password.
	own := startVault(t, t.TempDir())
	own.hsm.NewUserKey("guess")
	b, _ := keyvault.Blind(stretched)
	x, err := own.hsm.Evaluate("guess", b.Element)
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := b.Finish(x)
	if bytes.Equal(keys.Tag[:], rec.Tag) {
		t.Fatal("a key other than the user's HSM key reproduced the tag")
	}
	if _, err := keyvault.OpenEnvelope(keys.EnvelopeKey, user, rec.Envelope); err == nil {
		t.Fatal("the envelope opened without the user's HSM key")
	}
}

func FuzzDecodeRequest(f *testing.F) {
	f.Add([]byte(`{"user":"user-0123456789abcdef","blinded":"BAAA"}`))
	f.Add([]byte(`{"user":"x","tag":"AAAA","envelope":"AAAA"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var e keyvault.EvalRequest
		if decodeRequest(b, &e) == nil {
			if keyvault.ValidatePoint(e.Blinded) == nil && len(e.Blinded) != keyvault.PointSize {
				t.Fatal("a point of the wrong size validated")
			}
		}
		var f keyvault.FinishRequest
		_ = decodeRequest(b, &f)
		var r keyvault.ReleaseRequest
		_ = decodeRequest(b, &r)
	})
}

func newLoopbackServer(s *Server) *httptest.Server { return httptest.NewServer(s.Handler()) }

// post sends one request of the protocol to the vault at url, as a client
// that skips the client's own steps would, decodes a 200 answer into resp,
// and returns the status.
func post(tb testing.TB, url, path string, req, resp any) int {
	tb.Helper()
	body, err := json.Marshal(req)
	if err != nil {
		tb.Fatal(err)
	}
	r, err := http.Post(url+path, "application/json", bytes.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	defer r.Body.Close()
	if r.StatusCode == http.StatusOK {
		if err := json.NewDecoder(r.Body).Decode(resp); err != nil {
			tb.Fatal(err)
		}
	}
	return r.StatusCode
}

// mustClient returns a client for the test vault at url (loopback).
func mustClient(tb testing.TB, url string) *keyvault.Client {
	tb.Helper()
	c, err := keyvault.NewClient(url, keyvault.Trust{})
	if err != nil {
		tb.Fatal(err)
	}
	return c
}
