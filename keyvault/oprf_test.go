package keyvault

import (
	"encoding/hex"
	"math/big"
	"testing"

	"filippo.io/nistec"
)

// The RFC 9380 test vector for P256_XMD:SHA-256_SSWU_RO_, msg "".
func TestHashToCurveRFC9380(t *testing.T) {
	p, err := HashToCurve([]byte(""), []byte("QUUX-V01-CS02-with-P256_XMD:SHA-256_SSWU_RO_"))
	if err != nil {
		t.Fatal(err)
	}
	b := p.Bytes()
	if got := hex.EncodeToString(b[1:33]); got != "2c15230b26dbc6fc9a37051158c95b79656e17a1a920b11394ca91c44247d3e4" {
		t.Fatalf("x = %s", got)
	}
	if got := hex.EncodeToString(b[33:]); got != "8a7a74985cc5c776cdfe4b1f19884970453912e9d31528c060be9ab5c43e8415" {
		t.Fatalf("y = %s", got)
	}
}

// softEval evaluates like the HSM: x-coordinate of k·B.
func softEval(t *testing.T, k []byte, blinded []byte) []byte {
	b, err := nistec.NewP256Point().SetBytes(blinded)
	if err != nil {
		t.Fatal(err)
	}
	z, err := nistec.NewP256Point().ScalarMult(b, k)
	if err != nil {
		t.Fatal(err)
	}
	x, _ := z.BytesX()
	return x
}

func TestOPRFDeterministicAndKeyed(t *testing.T) {
	k1 := scalarBytes(mustScalar(t))
	k2 := scalarBytes(mustScalar(t))
	st := []byte("0123456789abcdef0123456789abcdef")
	run := func(k []byte, pw []byte) *Keys {
		b, err := Blind(pw)
		if err != nil {
			t.Fatal(err)
		}
		keys, err := b.Finish(softEval(t, k, b.Element))
		if err != nil {
			t.Fatal(err)
		}
		return keys
	}
	a, b := run(k1, st), run(k1, st)
	if a.Tag != b.Tag || a.EnvelopeKey != b.EnvelopeKey {
		t.Fatal("the same password and key gave different outputs (blinding not removed)")
	}
	if c := run(k2, st); c.Tag == a.Tag {
		t.Fatal("output does not depend on the vault key")
	}
	if d := run(k1, []byte("another password, stretched....")); d.Tag == a.Tag {
		t.Fatal("output does not depend on the password")
	}
	if a.Tag == a.EnvelopeKey {
		t.Fatal("tag and envelope key are equal")
	}
}

func mustScalar(t *testing.T) *big.Int {
	r, err := randomScalar()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestValidatePoint(t *testing.T) {
	good, _ := Blind([]byte("x"))
	if err := ValidatePoint(good.Element); err != nil {
		t.Fatal(err)
	}
	bad := append([]byte{}, good.Element...)
	bad[40] ^= 1
	for name, p := range map[string][]byte{"off curve": bad, "identity": {0}, "short": good.Element[:64], "compressed": append([]byte{2}, good.Element[1:33]...), "empty": nil} {
		if ValidatePoint(p) == nil {
			t.Errorf("%s point accepted", name)
		}
	}
}

func FuzzValidatePoint(f *testing.F) {
	b, _ := Blind([]byte("seed"))
	f.Add(b.Element)
	f.Fuzz(func(t *testing.T, p []byte) {
		if ValidatePoint(p) != nil {
			return
		}
		// Whatever validates can be evaluated and unblinded without panic.
		if len(p) != PointSize || p[0] != 4 {
			t.Fatal("a non-uncompressed encoding validated")
		}
	})
}
