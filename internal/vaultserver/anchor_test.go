package vaultserver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/sealfs/sealfs/keyvault"
)

// wrongGuesses makes n wrong guesses through the client and checks the
// attempts left after each, starting from left.
func wrongGuesses(t *testing.T, tv *testVault, n, left int) {
	t.Helper()
	for i := range n {
		var wp *keyvault.WrongPasswordError
		_, err := tv.client.Recover(context.Background(), user, []byte(fmt.Sprintf("wrong %d", i)))
		if !errors.As(err, &wp) || wp.AttemptsLeft != left-1-i {
			t.Fatalf("wrong guess %d: %v, want %d attempts left", i, err, left-1-i)
		}
	}
}

// TestRestoredDatabaseIsRefused: a copy of the database taken after 2
// wrong guesses, put back after 5 more, would give 5 guesses back; the
// vault refuses to open it, and with the newest database put back the
// count goes on from 7.
func TestRestoredDatabaseIsRefused(t *testing.T) {
	dir := t.TempDir()
	tv := startVault(t, dir)
	if _, err := tv.client.Enrol(context.Background(), user, []byte("right")); err != nil {
		t.Fatal(err)
	}
	wrongGuesses(t, tv, 2, MaxAttempts)
	tv.stop()
	db := filepath.Join(dir, "vault.db")
	old, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	tv.start()
	wrongGuesses(t, tv, 5, MaxAttempts-2)
	tv.stop()
	newest, _ := os.ReadFile(db)
	os.WriteFile(db, old, 0o600)
	if err := openRefused(t, dir); !errors.Is(err, errRestoredStore) {
		t.Fatalf("opening a database restored from a copy = %v, want errRestoredStore", err)
	}
	os.WriteFile(db, newest, 0o600)
	tv.start()
	wrongGuesses(t, tv, 1, MaxAttempts-7)
}

// TestEditedCountersAreRefused: whoever can write the database but not
// the token lowers a counter, or makes the head batch say so; the vault
// refuses to open either.
func TestEditedCountersAreRefused(t *testing.T) {
	dir := t.TempDir()
	tv := startVault(t, dir)
	if _, err := tv.client.Enrol(context.Background(), user, []byte("right")); err != nil {
		t.Fatal(err)
	}
	wrongGuesses(t, tv, 6, MaxAttempts)
	tv.stop()
	path := filepath.Join(dir, "vault.db")
	clean, _ := os.ReadFile(path)
	edit := func(f func(tx *bolt.Tx) error) {
		t.Helper()
		os.WriteFile(path, clean, 0o600)
		db, err := bolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Update(f); err != nil {
			t.Fatal(err)
		}
		db.Close()
	}
	// The counter set back to 0.
	edit(func(tx *bolt.Tx) error {
		b := tx.Bucket(countersBucket)
		c, _ := decodeCounter(user, b.Get([]byte(user)))
		c.Count = 0
		return b.Put([]byte(user), encodeCounter(c))
	})
	if err := openRefused(t, dir); !errors.Is(err, errForgedStore) {
		t.Fatalf("a lowered counter: %v, want errForgedStore", err)
	}
	// The same, with a head batch one epoch ahead that claims the reset
	// (as a crash between the writes leaves one), its MAC copied from the
	// real head.
	edit(func(tx *bolt.Tx) error {
		head, err := decodeBatch(tx.Bucket(metaBucket).Get(headKey))
		if err != nil {
			return err
		}
		b := tx.Bucket(countersBucket)
		c, _ := decodeCounter(user, b.Get([]byte(user)))
		forged := &counterBatch{Epoch: head.Epoch + 1, MAC: head.MAC, Changes: []counterChange{{User: user, HadOld: true, Old: c, New: counterValue{c.Label, 0}}}}
		if err := tx.Bucket(metaBucket).Put(headKey, encodeBatch(forged)); err != nil {
			return err
		}
		return b.Put([]byte(user), encodeCounter(forged.Changes[0].New))
	})
	if err := openRefused(t, dir); !errors.Is(err, errForgedStore) {
		t.Fatalf("a forged batch ahead: %v, want errForgedStore", err)
	}
	os.WriteFile(path, clean, 0o600)
	tv.start()
	wrongGuesses(t, tv, 1, MaxAttempts-6)
}

// crashDirEnv names the vault directory of the crashing helper process
// (TestCrashHelper).
const crashDirEnv = "SEALFS_TEST_VAULT_CRASH_DIR"

// TestCrashHelper is not a test: run by TestKilledBetweenWrites with
// crashDirEnv set, it makes a guess on the vault there and kills itself
// (SIGKILL) between the counter batch's database write and its anchor.
func TestCrashHelper(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("run by TestKilledBetweenWrites")
	}
	h, err := OpenEmbedded(dir)
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVault(h, filepath.Join(dir, "vault.db"))
	if err != nil {
		t.Fatal(err)
	}
	v.afterCounterCommit = func() { syscall.Kill(os.Getpid(), syscall.SIGKILL) }
	b, _ := keyvault.Blind([]byte("the crashed guess"))
	v.Evaluate(user, b.Element)
	t.Fatal("the guess returned")
}

// TestKilledBetweenWrites: a vault process killed (kill -9) after a
// guess's counter is in the database and before its anchor is in the
// token counts the guess when it opens again: the database is one batch
// ahead of the anchor, which is completed, never reset.
func TestKilledBetweenWrites(t *testing.T) {
	dir := t.TempDir()
	tv := startVault(t, dir)
	if _, err := tv.client.Enrol(context.Background(), user, []byte("right")); err != nil {
		t.Fatal(err)
	}
	wrongGuesses(t, tv, 2, MaxAttempts)
	tv.stop()
	cmd := exec.Command(os.Args[0], "-test.run", "^TestCrashHelper$", "-test.count", "1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, SoftHSMConfEnv+"="+filepath.Join(dir, "softhsm2.conf"))
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the helper was not killed: %v\n%s", err, out)
	}
	// As the crash left it: the database one batch ahead of the token.
	h := openTestHSM(t, dir)
	epoch, _, _, err := h.Anchor()
	h.Close()
	s, serr := OpenBoltStore(filepath.Join(dir, "vault.db"))
	if err != nil || serr != nil {
		t.Fatal(err, serr)
	}
	head, _, _ := s.CounterHead()
	s.Close()
	if head != epoch+1 {
		t.Fatalf("after the crash the database is at epoch %d, the token at %d; want one ahead", head, epoch)
	}
	tv.start()
	wrongGuesses(t, tv, 1, MaxAttempts-3)
}

// TestOldTokenCountersMigrate: a vault of an earlier version kept each
// counter in a token object of its own, the database none; opening it
// moves the count into the database as the first batch.
func TestOldTokenCountersMigrate(t *testing.T) {
	dir := t.TempDir()
	tv := startVault(t, dir)
	if _, err := tv.client.Enrol(context.Background(), user, []byte("right")); err != nil {
		t.Fatal(err)
	}
	label := mustRecord(t, tv, user).KeyLabel
	tv.stop()
	// As the earlier version left them: 4 guesses counted in the token.
	h := openTestHSM(t, dir)
	h.mu.Lock()
	objs, _, err := h.dataObjects(anchorLabel)
	for _, o := range objs {
		h.ctx.DestroyObject(h.sess, o)
	}
	h.mu.Unlock()
	if err == nil {
		err = h.SetCounter(label, 4)
	}
	h.Close()
	if err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(filepath.Join(dir, "vault.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket(countersBucket); err != nil {
			return err
		}
		return tx.DeleteBucket(metaBucket)
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	tv.start()
	wrongGuesses(t, tv, 1, MaxAttempts-4)
	tv.restart()
	wrongGuesses(t, tv, 1, MaxAttempts-5)
}

// FuzzDecodeBatch: the head batch comes from the database, which whoever
// holds it can write; decodeBatch never panics, and what it accepts
// encodes back to the same bytes.
func FuzzDecodeBatch(f *testing.F) {
	f.Add(encodeBatch(&counterBatch{Epoch: 7, MAC: make([]byte, 32), Changes: []counterChange{
		{User: user, New: counterValue{"l/1", 0}},
		{User: "another-user-0123456789", HadOld: true, Old: counterValue{"l/2", 3}, New: counterValue{"l/2", 4}},
	}}))
	f.Add(make([]byte, 44))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := decodeBatch(b)
		if err != nil {
			return
		}
		if got := encodeBatch(d); string(got) != string(b) {
			t.Fatalf("decoded and encoded again: %x, want %x", got, b)
		}
	})
}
