package keyvault

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/hex"
	"errors"
	"testing"
	"testing/cryptotest"

	"github.com/sealfs/sealfs/crypt"
)

// The envelope vector: made by the version before the envelope went
// through crypt (its own AES-GCM code), with crypto/rand seeded as
// cryptotest.SetGlobalRandom(t, 9) seeds it. Enrolments made by that
// version must still open, and new ones are made the same way: a change
// here breaks every existing vault enrolment.
const (
	envelopeVectorKey    = "c3f1e2d4a5b6978812233445566778899aabbccddeeff0011223344556677889"
	envelopeVectorUser   = "u0123456789abcdef0123456789abcdef"
	envelopeVectorSecret = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
	envelopeVector       = "eebf03c8ccdba456230a0c00db4d4625129ce62ba77c1e4e4889e3e9f7a00734b14360ee7357fce2f542fd80831620fe96505f976592dec9a82406a0"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func envelopeKey(t *testing.T) [32]byte {
	var k [32]byte
	copy(k[:], unhex(t, envelopeVectorKey))
	return k
}

func TestEnvelopeVector(t *testing.T) {
	key, secret, want := envelopeKey(t), unhex(t, envelopeVectorSecret), unhex(t, envelopeVector)
	cryptotest.SetGlobalRandom(t, 9)
	got, err := sealEnvelope(key, envelopeVectorUser, secret)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("the envelope is\n%x, the format says\n%x", got, want)
	}
	opened, err := OpenEnvelope(key, envelopeVectorUser, want)
	if err != nil || !bytes.Equal(opened, secret) {
		t.Fatalf("the vector does not open: %x, %v", opened, err)
	}
	// The construction docs/VAULT.md §1.1 writes down, with the stdlib alone.
	block, err := aes.NewCipher(key[:])
	if err != nil {
		t.Fatal(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	pt, err := gcm.Open(nil, want[:12], want[12:], []byte("sealfs vault v1 envelope\x00"+envelopeVectorUser))
	if err != nil || !bytes.Equal(pt, secret) {
		t.Fatalf("the vector is not nonce || AES-256-GCM(K_env, S, AD) as VAULT.md says: %v", err)
	}
}

func TestEnvelopeRefusals(t *testing.T) {
	key, env := envelopeKey(t), unhex(t, envelopeVector)
	flipped := bytes.Clone(env)
	flipped[20] ^= 1
	otherKey := key
	otherKey[0] ^= 1
	for name, c := range map[string]struct {
		key  [32]byte
		user string
		env  []byte
	}{
		"changed byte": {key, envelopeVectorUser, flipped},
		"truncated":    {key, envelopeVectorUser, env[:27]},
		"empty":        {key, envelopeVectorUser, nil},
		"other user":   {key, "u00000000000000000000000000000000", env},
		"other key":    {otherKey, envelopeVectorUser, env},
	} {
		if s, err := OpenEnvelope(c.key, c.user, c.env); !errors.Is(err, crypt.ErrAuth) || s != nil {
			t.Errorf("%s: opened (%x) or failed with %v, want crypt.ErrAuth", name, s, err)
		}
	}
	// An envelope that opens but does not hold a secret of SecretSize.
	short, err := sealEnvelope(key, envelopeVectorUser, []byte("short"))
	if err != nil {
		t.Fatal(err)
	}
	if s, err := OpenEnvelope(key, envelopeVectorUser, short); err == nil || s != nil {
		t.Fatalf("a 5-byte secret came out of the envelope: %x", s)
	}
}
