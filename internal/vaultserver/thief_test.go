package vaultserver

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/sealfs/sealfs/keyvault"
)

// stolenCandidates is what a thief holding every byte of a copy of the
// database tries as proof of a password: every 32 bytes of every value
// of every bucket, as stored and as base64 fields decoded.
func stolenCandidates(t *testing.T, dbCopy string) [][]byte {
	t.Helper()
	db, err := bolt.Open(dbCopy, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	seen := map[string]bool{}
	var out [][]byte
	add := func(b []byte) {
		for i := 0; i+32 <= len(b); i++ {
			if w := b[i : i+32]; !seen[string(w)] {
				seen[string(w)] = true
				out = append(out, bytes.Clone(w))
			}
		}
	}
	var walk func(any)
	walk = func(x any) {
		switch x := x.(type) {
		case string:
			if b, err := base64.StdEncoding.DecodeString(x); err == nil {
				add(b)
			}
		case map[string]any:
			for _, v := range x {
				walk(v)
			}
		case []any:
			for _, v := range x {
				walk(v)
			}
		}
	}
	err = db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(_ []byte, b *bolt.Bucket) error {
			return b.ForEach(func(_, v []byte) error {
				add(v)
				var j any
				if json.Unmarshal(v, &j) == nil {
					walk(j)
				}
				return nil
			})
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestDatabaseThief: a thief with a copy of every byte of the vault's
// database attacks the real server through its API as in issue 13: it
// makes 9 evaluations, tries to reset the counter by releasing with
// anything it stole, and checks each guess offline against the stolen
// bytes. It must get 10 guesses in all, and neither the reset nor the
// offline check may work: the right password, its 15th guess, is never
// confirmed, and the user is locked out.
func TestDatabaseThief(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	tv := startVault(t, dir)
	password := "the users right password"
	if _, err := tv.client.Enrol(ctx, user, []byte(password)); err != nil {
		t.Fatal(err)
	}
	tv.stop()
	raw, err := os.ReadFile(filepath.Join(dir, "vault.db"))
	if err != nil {
		t.Fatal(err)
	}
	stolen := filepath.Join(t.TempDir(), "stolen.db")
	if err := os.WriteFile(stolen, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	tv.start()
	tv.server.ips = newLimiter(1e9, 1e9) // the thief has many addresses
	candidates := stolenCandidates(t, stolen)
	if len(candidates) == 0 {
		t.Fatal("the thief found nothing to try in the database")
	}

	guesses := make([]string, 30)
	for i := range guesses {
		guesses[i] = fmt.Sprintf("wrong guess number %d", i)
	}
	guesses[14] = password
	evaluations := 0
	for i, g := range guesses {
		b, err := keyvault.Blind(keyvault.Stretch([]byte(g), user))
		if err != nil {
			t.Fatal(err)
		}
		var ev keyvault.EvalResponse
		st := post(t, tv.http.URL, keyvault.PathRecoverEvaluate, &keyvault.EvalRequest{User: user, Blinded: b.Element}, &ev)
		if st == http.StatusGone {
			break
		}
		if st != http.StatusOK {
			t.Fatalf("evaluation %d: status %d", i, st)
		}
		evaluations++
		keys, err := b.Finish(ev.Evaluated)
		if err != nil {
			t.Fatal(err)
		}
		// The offline check: the guess's tag among the stolen bytes.
		if bytes.Contains(raw, keys.Tag[:]) {
			t.Fatalf("the thief confirmed guess %d (the password) offline against the stolen database", i)
		}
		if evaluations%(MaxAttempts-1) != 0 {
			continue
		}
		// 9 evaluations: reset the counter with what was stolen.
		for _, c := range candidates {
			var rel keyvault.ReleaseResponse
			switch st := post(t, tv.http.URL, keyvault.PathRecoverRelease, &keyvault.ReleaseRequest{User: user, Tag: c}, &rel); st {
			case http.StatusOK:
				t.Fatalf("after %d guesses the thief reset the counter with 32 stolen bytes", evaluations)
			case http.StatusForbidden:
			default:
				t.Fatalf("release with stolen bytes: status %d, want 403", st)
			}
		}
	}
	if evaluations != MaxAttempts {
		t.Fatalf("the thief made %d evaluations, want exactly %d", evaluations, MaxAttempts)
	}
	if _, err := tv.client.Recover(ctx, user, []byte(password)); err != keyvault.ErrLockedOut {
		t.Fatalf("after the thief's 10 guesses the right password gives %v, want ErrLockedOut", err)
	}
}

// TestOldRecordsLoseTheirTag: a record made before the tag MAC keeps T
// itself; opening the vault replaces it by its MAC, and the password
// still recovers.
func TestOldRecordsLoseTheirTag(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	tv := startVault(t, dir)
	password := []byte("an old enrolment password")
	secret, err := tv.client.Enrol(ctx, user, password)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := tv.vault.load(user)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := keyvault.Blind(keyvault.Stretch(password, user))
	x, err := tv.hsm.Evaluate(rec.KeyLabel, b.Element)
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := b.Finish(x)
	rec.Tag, rec.TagMAC = keys.Tag[:], nil // as the vault stored it before
	if err := tv.vault.put(user, rec); err != nil {
		t.Fatal(err)
	}
	tv.restart()
	tv.stop()
	raw, err := os.ReadFile(filepath.Join(dir, "vault.db"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, keys.Tag[:]) || bytes.Contains(raw, []byte(base64.StdEncoding.EncodeToString(keys.Tag[:]))) {
		t.Fatal("after the migration the database file still holds the tag (in a free page?)")
	}
	tv.start()
	if rec, err = tv.vault.load(user); err != nil || rec.Tag != nil || len(rec.TagMAC) != 32 {
		t.Fatalf("after reopening, the record keeps tag %x, tag MAC %x (%v)", rec.Tag, rec.TagMAC, err)
	}
	if got, err := tv.client.Recover(ctx, user, password); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("recover after the migration: %v", err)
	}
}
