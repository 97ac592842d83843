package vaultserver

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sealfs/sealfs/keyvault"
)

// openTestHSM opens an embedded SoftHSM2 token in dir, pointing SoftHSM2
// at it as the command does (for the test only, with tb.Setenv).
// SoftHSM2 is a real dependency: CI installs it, and its absence fails.
func openTestHSM(tb testing.TB, dir string) *PKCS11 {
	tb.Helper()
	conf, err := EmbeddedConf(dir)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Setenv(SoftHSMConfEnv, conf)
	h, err := OpenEmbedded(dir)
	if err == nil {
		err = h.EnsureTagKey()
	}
	if err != nil {
		tb.Fatalf("SoftHSM2 token: %v", err)
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
	derive := func() *keyvault.Keys {
		b, err := keyvault.Blind(stretched)
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
	if _, err := h.Evaluate("alice", []byte{4, 1, 2}); !errors.Is(err, keyvault.ErrBadPoint) {
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
	bl, _ := keyvault.Blind(stretched)
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

// TestOpenEmbeddedLeavesTheEnvironmentAlone: the library never sets
// SOFTHSM2_CONF; without it naming the data directory's configuration,
// OpenEmbedded refuses (SoftHSM2 would use the system's token directory)
// and says who sets it.
func TestOpenEmbeddedLeavesTheEnvironmentAlone(t *testing.T) {
	dir := t.TempDir()
	for _, env := range []string{"", filepath.Join(t.TempDir(), "softhsm2.conf")} {
		t.Setenv(SoftHSMConfEnv, env)
		h, err := OpenEmbedded(dir)
		if err == nil {
			h.Close()
			t.Fatalf("with %s=%q, OpenEmbedded opened a token", SoftHSMConfEnv, env)
		}
		if !strings.Contains(err.Error(), SoftHSMConfEnv) {
			t.Errorf("the refusal does not name %s: %v", SoftHSMConfEnv, err)
		}
		if got := os.Getenv(SoftHSMConfEnv); got != env {
			t.Fatalf("OpenEmbedded changed %s from %q to %q", SoftHSMConfEnv, env, got)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "token-pin")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused OpenEmbedded made a token anyway: %v", err)
	}
}
