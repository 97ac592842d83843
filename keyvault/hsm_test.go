package keyvault

import (
	"errors"
	"testing"
)

// openTestHSM opens an embedded SoftHSM2 token in a temporary directory.
// SoftHSM2 is a real dependency: CI installs it, and its absence fails.
func openTestHSM(t *testing.T, dir string) *PKCS11 {
	t.Helper()
	h, err := OpenEmbedded(dir)
	if err != nil {
		t.Fatalf("SoftHSM2 token: %v", err)
	}
	return h
}

func TestHSMEvaluate(t *testing.T) {
	dir := t.TempDir()
	h := openTestHSM(t, dir)
	if err := h.NewUserKey("alice"); err != nil {
		t.Fatal(err)
	}
	stretched := []byte("0123456789abcdef0123456789abcdef")
	derive := func() *Keys {
		b, err := Blind(stretched)
		if err != nil {
			t.Fatal(err)
		}
		x, err := h.Evaluate("alice", b.Element)
		if err != nil {
			t.Fatal(err)
		}
		k, err := b.Finish(x)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	a, b := derive(), derive()
	if a.Tag != b.Tag {
		t.Fatal("evaluations through the HSM are not deterministic after unblinding")
	}
	if _, err := h.Evaluate("alice", []byte{4, 1, 2}); !errors.Is(err, ErrBadPoint) {
		t.Fatalf("a malformed point reached the HSM: %v", err)
	}
	// The token survives a close and reopen (the same PIN file).
	h.Close()
	h = openTestHSM(t, dir)
	defer h.Close()
	if c := derive(); c.Tag != a.Tag {
		t.Fatal("the key changed across a reopen")
	}
	if err := h.DestroyUserKey("alice"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := h.HasUserKey("alice"); ok {
		t.Fatal("destroyed key still there")
	}
	bl, _ := Blind(stretched)
	if _, err := h.Evaluate("alice", bl.Element); !errors.Is(err, ErrNoKey) {
		t.Fatalf("evaluation with a destroyed key: %v", err)
	}
	// Counters live in the token.
	for _, v := range []uint32{1, 2, 7, 0} {
		if err := h.SetCounter("bob", v); err != nil {
			t.Fatal(err)
		}
		if got, err := h.Counter("bob"); err != nil || got != v {
			t.Fatalf("counter = %d, %v; want %d", got, err, v)
		}
	}
}
