package vaultserver

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	"github.com/miekg/pkcs11"

	"github.com/sealfs/sealfs/keyvault"
)

// failDestroys makes the token's destroys of counter objects fail, as a
// flaky HSM or a crash between creating the new object and destroying
// the old would leave them, until the returned function is called.
func failDestroys(h *PKCS11) (restore func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	real := h.destroyObject
	h.destroyObject = func(pkcs11.SessionHandle, pkcs11.ObjectHandle) error {
		return errors.New("injected: C_DestroyObject failed")
	}
	return func() { h.mu.Lock(); h.destroyObject = real; h.mu.Unlock() }
}

func counterObjectCount(t *testing.T, h *PKCS11, name string) int {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	objs, err := h.counterObjects(name)
	if err != nil {
		t.Fatal(err)
	}
	return len(objs)
}

// TestCounterSurvivesFailedDestroys: when the old objects of a counter
// cannot be destroyed, every update still reads back as written, a reset
// to 0 included (the largest value won before, so a user drifted toward
// lockout); the next update that can destroy cleans them up.
func TestCounterSurvivesFailedDestroys(t *testing.T) {
	h := openTestHSM(t, t.TempDir())
	defer h.Close()
	if err := h.SetCounter("c", 5); err != nil {
		t.Fatal(err)
	}
	restore := failDestroys(h)
	for _, v := range []uint32{0, 3, 1, 0} {
		if err := h.SetCounter("c", v); err != nil {
			t.Fatal(err)
		}
		if got, err := h.Counter("c"); err != nil || got != v {
			t.Fatalf("with destroys failing, counter = %d, %v after setting %d", got, err, v)
		}
	}
	if n := counterObjectCount(t, h, "c"); n != 5 {
		t.Fatalf("%d objects with every destroy failing, want 5", n)
	}
	restore()
	if err := h.SetCounter("c", 2); err != nil {
		t.Fatal(err)
	}
	if got, _ := h.Counter("c"); got != 2 {
		t.Fatalf("counter = %d, want 2", got)
	}
	if n := counterObjectCount(t, h, "c"); n != 1 {
		t.Fatalf("%d objects after an update that can destroy, want 1", n)
	}
}

// TestCounterReadsOldObjects: objects written before versions (the count
// alone, 4 bytes) read as version 0, the largest count winning, and the
// first update outranks and removes them.
func TestCounterReadsOldObjects(t *testing.T) {
	h := openTestHSM(t, t.TempDir())
	defer h.Close()
	for _, v := range []uint32{7, 4} { // a crash left two
		_, err := h.ctx.CreateObject(h.sess, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_DATA),
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
			pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
			pkcs11.NewAttribute(pkcs11.CKA_APPLICATION, application),
			pkcs11.NewAttribute(pkcs11.CKA_LABEL, counterLabelPrefix+"old"),
			pkcs11.NewAttribute(pkcs11.CKA_VALUE, binary.BigEndian.AppendUint32(nil, v)),
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if got, err := h.Counter("old"); err != nil || got != 7 {
		t.Fatalf("old counter = %d, %v; want 7", got, err)
	}
	if err := h.SetCounter("old", 0); err != nil {
		t.Fatal(err)
	}
	if got, _ := h.Counter("old"); got != 0 || counterObjectCount(t, h, "old") != 1 {
		t.Fatalf("after an update: %d, %d objects", got, counterObjectCount(t, h, "old"))
	}
}

// TestResetWithFailedDestroysKeepsAttempts: through the vault, 9 wrong
// guesses then the right password, with the token failing every destroy
// of an old counter object: the count is reset all the same, so the
// next wrong guess leaves 9 attempts, not 0.
func TestResetWithFailedDestroysKeepsAttempts(t *testing.T) {
	ctx := context.Background()
	tv := startVault(t, t.TempDir())
	password := []byte("the right password")
	if _, err := tv.client.Enrol(ctx, user, password); err != nil {
		t.Fatal(err)
	}
	defer failDestroys(tv.hsm.(*PKCS11))()
	for i := range MaxAttempts - 1 {
		if _, err := tv.client.Recover(ctx, user, []byte(fmt.Sprintf("wrong %d", i))); !errors.Is(err, keyvault.ErrWrongPassword) {
			t.Fatalf("wrong guess %d: %v", i, err)
		}
	}
	if _, err := tv.client.Recover(ctx, user, password); err != nil {
		t.Fatal(err)
	}
	var wp *keyvault.WrongPasswordError
	if _, err := tv.client.Recover(ctx, user, []byte("wrong again")); !errors.As(err, &wp) || wp.AttemptsLeft != MaxAttempts-1 {
		t.Fatalf("after a reset with failed destroys, a wrong guess = %v; want %d attempts left", err, MaxAttempts-1)
	}
}
