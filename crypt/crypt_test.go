package crypt

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func testKeys(t *testing.T, seed byte) *Keys {
	t.Helper()
	var mk MasterKey
	for i := range mk.b {
		mk.b[i] = seed + byte(i)
	}
	var repo RepoID
	for i := range repo {
		repo[i] = 0xa0 + byte(i)
	}
	k, err := DeriveKeys(mk, repo)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSealOpenBindsTypeIDAndRepository(t *testing.T) {
	k := testKeys(t, 1)
	id := ID{1, 2, 3}
	pt := []byte("the quick brown fox")
	sealed, err := k.Seal(nil, TypeSnapshot, id, pt)
	if err != nil {
		t.Fatal(err)
	}
	if len(sealed) != len(pt)+Overhead {
		t.Fatalf("sealed length %d, want %d", len(sealed), len(pt)+Overhead)
	}
	got, err := k.Open(TypeSnapshot, id, sealed)
	if err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("Open = %q, %v", got, err)
	}
	other := testKeys(t, 2)
	otherRepo := *k
	otherRepo.repo[0] ^= 1
	cases := map[string]func() ([]byte, error){
		"wrong type":       func() ([]byte, error) { return k.Open(TypeIndex, id, sealed) },
		"wrong id":         func() ([]byte, error) { return k.Open(TypeSnapshot, ID{1, 2, 4}, sealed) },
		"other repository": func() ([]byte, error) { return otherRepo.Open(TypeSnapshot, id, sealed) },
		"other key":        func() ([]byte, error) { return other.Open(TypeSnapshot, id, sealed) },
		"truncated":        func() ([]byte, error) { return k.Open(TypeSnapshot, id, sealed[:len(sealed)-1]) },
		"too short":        func() ([]byte, error) { return k.Open(TypeSnapshot, id, sealed[:Overhead-1]) },
	}
	for i := range sealed {
		flipped := bytes.Clone(sealed)
		flipped[i] ^= 0x40
		cases[fmt.Sprintf("flip byte %d", i)] = func() ([]byte, error) { return k.Open(TypeSnapshot, id, flipped) }
	}
	for name, open := range cases {
		got, err := open()
		if !errors.Is(err, ErrAuth) || got != nil {
			t.Errorf("%s: Open = %q, %v; want nil, ErrAuth", name, got, err)
		}
	}
}

func TestSealUsesFreshNonces(t *testing.T) {
	k := testKeys(t, 1)
	a, _ := k.Seal(nil, TypeDataBlob, ID{}, []byte("x"))
	b, _ := k.Seal(nil, TypeDataBlob, ID{}, []byte("x"))
	if bytes.Equal(a[:NonceSize], b[:NonceSize]) {
		t.Fatal("two seals used the same nonce")
	}
}

func TestBlobIDIsKeyedAndTyped(t *testing.T) {
	k1, k2 := testKeys(t, 1), testKeys(t, 2)
	data := []byte("chunk")
	if k1.BlobID(TypeDataBlob, data) == k2.BlobID(TypeDataBlob, data) {
		t.Fatal("blob id does not depend on the key")
	}
	if k1.BlobID(TypeDataBlob, data) == k1.BlobID(TypeTreeBlob, data) {
		t.Fatal("blob id does not depend on the type")
	}
	if k1.BlobID(TypeDataBlob, data) != k1.BlobID(TypeDataBlob, bytes.Clone(data)) {
		t.Fatal("blob id is not deterministic")
	}
}

func TestSubkeysAreDistinct(t *testing.T) {
	k := testKeys(t, 1)
	seen := map[[KeySize]byte]string{}
	for name, v := range map[string][KeySize]byte{"id": k.idKey, "gear": k.gearKey, "config": k.configMAC} {
		if prev, ok := seen[v]; ok {
			t.Fatalf("subkeys %s and %s are equal", prev, name)
		}
		seen[v] = name
	}
	if g := k.GearTable(); g[0] == g[1] || g[0] == 0 {
		t.Fatal("gear table looks degenerate")
	}
}

func TestSecretsNeverPrint(t *testing.T) {
	mk, _ := NewMasterKey()
	code, _ := NewRecoveryCode()
	kek, _ := KEKFromBytes(make([]byte, 32))
	for _, v := range []any{mk, code, kek, &mk, &code} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x"} {
			out := fmt.Sprintf(verb, v)
			if strings.Contains(out, fmt.Sprintf("%x", mk.b[:4])) || strings.Contains(strings.ToUpper(out), code.Reveal()[:14]) {
				t.Fatalf("%s of a secret printed it: %s", verb, out)
			}
		}
	}
}

func TestRecoveryCodeRoundTripAndInputForms(t *testing.T) {
	code, err := NewRecoveryCode()
	if err != nil {
		t.Fatal(err)
	}
	shown := code.Reveal()
	groups := strings.Fields(shown)
	if len(groups) != 16 {
		t.Fatalf("code shows %d groups, want 16: %s", len(groups), shown)
	}
	for _, g := range groups {
		if len(g) != 4 {
			t.Fatalf("group %q is not 4 digits", g)
		}
	}
	forms := []string{
		shown,
		strings.ToLower(shown),
		strings.Join(groups, "-"),
		strings.Join(groups, ""),
		"  " + strings.Join(groups[:8], " ") + "\n" + strings.Join(groups[8:], " - ") + "\n",
	}
	for _, f := range forms {
		got, err := ParseRecoveryCode(f)
		if err != nil || !got.Equal(code) {
			t.Fatalf("ParseRecoveryCode(%q) = %v", f, err)
		}
	}
}

func TestRecoveryCodeTypos(t *testing.T) {
	code, _ := NewRecoveryCode()
	digits := strings.ReplaceAll(code.Reveal(), " ", "")
	// Every single-digit substitution is reported as a typo.
	for i := range digits {
		for _, c := range "0123456789ABCDEF" {
			if byte(c) == digits[i] {
				continue
			}
			typo := digits[:i] + string(c) + digits[i+1:]
			if _, err := ParseRecoveryCode(typo); !errors.Is(err, ErrCodeTypo) {
				// A 16-bit checksum misses one substitution in 65536 on average;
				// over 960 substitutions that is rare but possible. Count it.
				t.Logf("substitution at %d not caught (checksum collision): %v", i, err)
			}
		}
	}
	for _, bad := range []string{digits[:63], digits + "0", digits[:10] + "G" + digits[11:], "", digits[:32] + "/" + digits[32:]} {
		if _, err := ParseRecoveryCode(bad); !errors.Is(err, ErrCodeTypo) {
			t.Errorf("ParseRecoveryCode(%q) = %v; want ErrCodeTypo", bad, err)
		}
	}
	// Swapping two different adjacent digits is caught.
	for i := 0; i+1 < len(digits); i++ {
		if digits[i] == digits[i+1] {
			continue
		}
		swapped := digits[:i] + string(digits[i+1]) + string(digits[i]) + digits[i+2:]
		if _, err := ParseRecoveryCode(swapped); err == nil {
			t.Logf("swap at %d not caught (checksum collision)", i)
		}
	}
}

func TestKeySlotWrapUnwrap(t *testing.T) {
	mk, _ := NewMasterKey()
	code, _ := NewRecoveryCode()
	salt, _ := NewSalt()
	kek, _ := code.KEK(salt)
	repo, _ := NewRepoID()
	id, _ := NewRandomID()
	s, err := NewKeySlot(repo, id, SlotRecoveryCode, salt, nil, kek, mk)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := s.Marshal()
	parsed, err := ParseKeySlot(b)
	if err != nil {
		t.Fatal(err)
	}
	got, err := parsed.Unwrap(repo, id, kek)
	if err != nil || !got.Equal(mk) {
		t.Fatalf("Unwrap = %v", err)
	}
	otherCode, _ := NewRecoveryCode()
	otherKEK, _ := otherCode.KEK(salt)
	otherRepo, _ := NewRepoID()
	otherID, _ := NewRandomID()
	moved := *parsed
	moved.Kind = SlotVault
	for name, try := range map[string]func() error{
		"other code":       func() error { _, err := parsed.Unwrap(repo, id, otherKEK); return err },
		"other repository": func() error { _, err := parsed.Unwrap(otherRepo, id, kek); return err },
		"other slot id":    func() error { _, err := parsed.Unwrap(repo, otherID, kek); return err },
		"kind changed":     func() error { _, err := moved.Unwrap(repo, id, kek); return err },
	} {
		if err := try(); !errors.Is(err, ErrSlotMismatch) {
			t.Errorf("%s: Unwrap = %v; want ErrSlotMismatch", name, err)
		}
	}
}

func FuzzParseKeySlot(f *testing.F) {
	mk, _ := NewMasterKey()
	salt := make([]byte, SaltSize)
	kek, _ := KEKFromBytes(make([]byte, 32))
	s, _ := NewKeySlot(RepoID{}, ID{}, SlotRecoveryCode, salt, nil, kek, mk)
	b, _ := s.Marshal()
	f.Add(b)
	f.Add([]byte(`{"version":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseKeySlot(b)
		if err != nil {
			return
		}
		// Whatever parses must survive a round trip and never unwrap with a wrong key.
		b2, err := s.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseKeySlot(b2); err != nil {
			t.Fatalf("re-parse failed: %v", err)
		}
		var zero KEK
		if _, err := s.Unwrap(RepoID{1}, ID{}, zero); err == nil {
			t.Fatal("a fuzzed slot unwrapped under a key that never wrapped it")
		}
	})
}

func FuzzParseRecoveryCode(f *testing.F) {
	code, _ := NewRecoveryCode()
	f.Add(code.Reveal())
	f.Add("0000-0000")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseRecoveryCode(s)
		if err != nil {
			if !errors.Is(err, ErrCodeTypo) {
				t.Fatalf("error %v is not a typo error", err)
			}
			return
		}
		again, err := ParseRecoveryCode(c.Reveal())
		if err != nil || !again.Equal(c) {
			t.Fatalf("Reveal does not parse back: %v", err)
		}
	})
}

// TestSealSegmentBinds: a segment opens only as the segment it was sealed
// as: same blob id, index, last flag, repository and key; and never as a
// whole object of any type (another key and AD).
func TestSealSegmentBinds(t *testing.T) {
	k := testKeys(t, 1)
	id := ID{7}
	pt := []byte("\x00segment payload")
	sealed, err := k.SealSegment(nil, id, 3, false, pt)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := k.OpenSegment(id, 3, false, sealed); err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("OpenSegment = %q, %v", got, err)
	}
	otherRepo := *k
	otherRepo.repo[0] ^= 1
	for name, open := range map[string]func() ([]byte, error){
		"wrong id":         func() ([]byte, error) { return k.OpenSegment(ID{8}, 3, false, sealed) },
		"wrong index":      func() ([]byte, error) { return k.OpenSegment(id, 4, false, sealed) },
		"as the table":     func() ([]byte, error) { return k.OpenSegment(id, SegmentTableIndex, false, sealed) },
		"as the last":      func() ([]byte, error) { return k.OpenSegment(id, 3, true, sealed) },
		"other repository": func() ([]byte, error) { return otherRepo.OpenSegment(id, 3, false, sealed) },
		"other key":        func() ([]byte, error) { return testKeys(t, 2).OpenSegment(id, 3, false, sealed) },
		"as a data blob":   func() ([]byte, error) { return k.Open(TypeDataBlob, id, sealed) },
	} {
		if got, err := open(); !errors.Is(err, ErrAuth) || got != nil {
			t.Errorf("%s: %q, %v; want ErrAuth", name, got, err)
		}
	}
}
