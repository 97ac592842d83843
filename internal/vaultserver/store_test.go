package vaultserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/sealfs/sealfs/internal/pgtest"
	"github.com/sealfs/sealfs/keyvault"
)

// forEachStore runs f as a subtest on each Store: bbolt, and PostgreSQL
// (a database of its own on the test cluster, internal/pgtest).
func forEachStore(t *testing.T, f func(t *testing.T, tv *testVault)) {
	for _, kind := range []string{"bbolt", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			tv := &testVault{t: t, dir: t.TempDir()}
			if kind == "postgres" {
				tv.db = pgtest.Database(t)
			}
			tv.start()
			t.Cleanup(tv.stop)
			f(t, tv)
		})
	}
}

var pgTables = []string{"sealfs_vault_users", "sealfs_vault_pending", "sealfs_vault_counters", "sealfs_vault_meta"}

// copyRecords returns a copy of the stopped vault's records, and the
// function that puts it back as a restore from a backup would.
func copyRecords(t *testing.T, tv *testVault) (restore func()) {
	t.Helper()
	if tv.db == "" {
		path := filepath.Join(tv.dir, "vault.db")
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return func() {
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, tv.db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	dump := map[string][][]any{}
	for _, table := range pgTables {
		rows, err := conn.Query(ctx, "SELECT * FROM "+table)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			v, err := rows.Values()
			if err != nil {
				t.Fatal(err)
			}
			dump[table] = append(dump[table], v)
		}
		if rows.Err() != nil {
			t.Fatal(rows.Err())
		}
	}
	return func() {
		conn, err := pgx.Connect(ctx, tv.db)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "TRUNCATE "+strings.Join(pgTables, ", ")); err != nil {
				return err
			}
			for table, rows := range dump {
				for _, r := range rows {
					ph := make([]string, len(r))
					for i := range r {
						ph[i] = fmt.Sprintf("$%d", i+1)
					}
					if _, err := tx.Exec(ctx, fmt.Sprintf("INSERT INTO %s VALUES (%s)", table, strings.Join(ph, ", ")), r...); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestStoresCountAndLockOut: on both stores, 9 wrong guesses then the
// right password recovers and resets the count; then 10 wrong guesses
// lock the user out, which a restart does not undo.
func TestStoresCountAndLockOut(t *testing.T) {
	forEachStore(t, func(t *testing.T, tv *testVault) {
		ctx := context.Background()
		secret, err := tv.client.Enrol(ctx, user, []byte("right"))
		if err != nil {
			t.Fatal(err)
		}
		wrongGuesses(t, tv, MaxAttempts-1, MaxAttempts)
		tv.restart()
		if got, err := tv.client.Recover(ctx, user, []byte("right")); err != nil || string(got) != string(secret) {
			t.Fatalf("the right password after 9 wrong: %v", err)
		}
		wrongGuesses(t, tv, MaxAttempts-1, MaxAttempts)
		if _, err := tv.client.Recover(ctx, user, []byte("wrong again")); !errors.Is(err, keyvault.ErrLockedOut) {
			t.Fatalf("the 10th wrong guess: %v, want ErrLockedOut", err)
		}
		tv.restart()
		if _, err := tv.client.Recover(ctx, user, []byte("right")); !errors.Is(err, keyvault.ErrLockedOut) {
			t.Fatalf("the right password after the lockout and a restart: %v", err)
		}
	})
}

// TestStoresParallelGuesses: on both stores, 50 parallel wrong guesses
// get exactly 10 evaluations.
func TestStoresParallelGuesses(t *testing.T) {
	forEachStore(t, func(t *testing.T, tv *testVault) {
		if _, err := tv.client.Enrol(context.Background(), user, []byte("right")); err != nil {
			t.Fatal(err)
		}
		if n := parallelGuesses(t, []string{tv.http.URL}, 50); n != MaxAttempts {
			t.Fatalf("50 parallel guesses got %d evaluations, want %d", n, MaxAttempts)
		}
	})
}

// parallelGuesses sends n evaluations of one wrong guess at once, spread
// over the vaults at urls, and returns how many were evaluated.
func parallelGuesses(t *testing.T, urls []string, n int) int {
	b, _ := keyvault.Blind(keyvault.Stretch([]byte("wrong"), user))
	var mu sync.Mutex
	evaluations := 0
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var ev keyvault.EvalResponse
			if post(t, urls[i%len(urls)], keyvault.PathRecoverEvaluate, &keyvault.EvalRequest{User: user, Blinded: b.Element}, &ev) == http.StatusOK {
				mu.Lock()
				evaluations++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return evaluations
}

// TestStoresRestoreRefused: on both stores, records restored from a copy
// taken 5 guesses ago are refused; with the newest put back the count
// goes on.
func TestStoresRestoreRefused(t *testing.T) {
	forEachStore(t, func(t *testing.T, tv *testVault) {
		if _, err := tv.client.Enrol(context.Background(), user, []byte("right")); err != nil {
			t.Fatal(err)
		}
		wrongGuesses(t, tv, 2, MaxAttempts)
		tv.stop()
		restoreOld := copyRecords(t, tv)
		tv.start()
		wrongGuesses(t, tv, 5, MaxAttempts-2)
		tv.stop()
		restoreNewest := copyRecords(t, tv)
		restoreOld()
		if err := openRefusedOn(t, tv.dir, tv.db); !errors.Is(err, errRestoredStore) {
			t.Fatalf("opening records restored from a copy = %v, want errRestoredStore", err)
		}
		restoreNewest()
		tv.start()
		wrongGuesses(t, tv, 1, MaxAttempts-7)
	})
}

// TestStoresManyUsersAtOnce: on both stores, 40 users guess at once (3
// wrong guesses each, in parallel), more than PostgreSQL's connections
// for user locks: every guess is counted once and none waits forever
// (the counter batch's lock once waited for a connection that the users
// waiting for the batch held).
func TestStoresManyUsersAtOnce(t *testing.T) {
	forEachStore(t, func(t *testing.T, tv *testVault) {
		const users = 40
		blinded := make([][]byte, users)
		for i := range users {
			u := fmt.Sprintf("many-users-%04d-0123456789", i)
			bl, _ := keyvault.Blind([]byte("stretched " + u))
			x, _, err := tv.vault.EnrolStart(u, bl.Element, 0)
			if err != nil {
				t.Fatal(err)
			}
			keys, _ := bl.Finish(x)
			if err := tv.vault.EnrolFinish(u, keys.Tag[:], make([]byte, 60)); err != nil {
				t.Fatal(err)
			}
			wrong, _ := keyvault.Blind([]byte("wrong " + u))
			blinded[i] = wrong.Element
		}
		var wg sync.WaitGroup
		errs := make(chan error, users*3)
		for i := range users * 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				u := fmt.Sprintf("many-users-%04d-0123456789", i%users)
				if _, _, err := tv.vault.Evaluate(u, blinded[i%users]); err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		for i := range users {
			u := fmt.Sprintf("many-users-%04d-0123456789", i)
			rec, err := tv.vault.load(u)
			if err != nil {
				t.Fatal(err)
			}
			if n, err := tv.vault.counter(u, rec.KeyLabel); err != nil || n != 3 {
				t.Fatalf("%s: counter %d, %v; want 3", u, n, err)
			}
		}
	})
}
