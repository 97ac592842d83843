package keyvault

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/big"

	"filippo.io/nistec"
	"golang.org/x/crypto/argon2"
)

// P-256 field and group constants.
var (
	fieldP, _ = new(big.Int).SetString("ffffffff00000001000000000000000000000000ffffffffffffffffffffffff", 16)
	curveB, _ = new(big.Int).SetString("5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604b", 16)
	orderN, _ = new(big.Int).SetString("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551", 16)
	curveA    = big.NewInt(-3)
	sswuZ     = big.NewInt(-10)
)

// PointSize is the size of an uncompressed P-256 point.
const PointSize = 65

// ErrBadPoint is returned for a point that is not on P-256 or is the identity.
var ErrBadPoint = errors.New("not a valid P-256 point")

// ValidatePoint checks, in Go, that b is an uncompressed P-256 point on the
// curve and not the identity: the vault does this before the HSM sees it.
func ValidatePoint(b []byte) error {
	if len(b) != PointSize || b[0] != 4 {
		return ErrBadPoint
	}
	if _, err := nistec.NewP256Point().SetBytes(b); err != nil {
		return ErrBadPoint
	}
	return nil
}

func mod(x *big.Int) *big.Int { return x.Mod(x, fieldP) }

// expandMessageXMD is RFC 9380 section 5.3.1 with SHA-256.
func expandMessageXMD(msg, dst []byte, n int) []byte {
	dstPrime := append(append([]byte{}, dst...), byte(len(dst)))
	h := sha256.New()
	h.Write(make([]byte, 64))
	h.Write(msg)
	h.Write([]byte{byte(n >> 8), byte(n)})
	h.Write([]byte{0})
	h.Write(dstPrime)
	b0 := h.Sum(nil)
	var out, prev []byte
	for i := 1; len(out) < n; i++ {
		h.Reset()
		if i == 1 {
			h.Write(b0)
		} else {
			x := make([]byte, 32)
			for j := range x {
				x[j] = b0[j] ^ prev[j]
			}
			h.Write(x)
		}
		h.Write([]byte{byte(i)})
		h.Write(dstPrime)
		prev = h.Sum(nil)
		out = append(out, prev...)
	}
	return out[:n]
}

// sswu is the simplified SWU map of RFC 9380 section 6.6.2 for P-256.
func sswu(u *big.Int) (x, y *big.Int) {
	u2 := mod(new(big.Int).Mul(u, u))
	tv1 := mod(new(big.Int).Mul(sswuZ, u2))                            // Z u^2
	den := mod(new(big.Int).Add(mod(new(big.Int).Mul(tv1, tv1)), tv1)) // Z^2 u^4 + Z u^2
	negBoverA := mod(new(big.Int).Mul(new(big.Int).Neg(curveB), new(big.Int).ModInverse(mod(new(big.Int).Set(curveA)), fieldP)))
	var x1 *big.Int
	if den.Sign() == 0 {
		za := mod(new(big.Int).Mul(sswuZ, curveA))
		x1 = mod(new(big.Int).Mul(curveB, new(big.Int).ModInverse(za, fieldP)))
	} else {
		inv := new(big.Int).ModInverse(den, fieldP)
		x1 = mod(new(big.Int).Mul(negBoverA, new(big.Int).Add(big.NewInt(1), inv)))
	}
	g := func(x *big.Int) *big.Int {
		r := new(big.Int).Exp(x, big.NewInt(3), fieldP)
		r.Add(r, new(big.Int).Mul(curveA, x))
		r.Add(r, curveB)
		return mod(r)
	}
	gx1 := g(x1)
	x2 := mod(new(big.Int).Mul(tv1, x1))
	exp := new(big.Int).Rsh(new(big.Int).Add(fieldP, big.NewInt(1)), 2) // (p+1)/4
	if y1 := new(big.Int).Exp(gx1, exp, fieldP); mod(new(big.Int).Mul(y1, y1)).Cmp(gx1) == 0 {
		x, y = x1, y1
	} else {
		x, y = x2, new(big.Int).Exp(g(x2), exp, fieldP)
	}
	if u.Bit(0) != y.Bit(0) {
		y = mod(new(big.Int).Neg(y))
	}
	return x, y
}

func encodePoint(x, y *big.Int) []byte {
	b := make([]byte, PointSize)
	b[0] = 4
	x.FillBytes(b[1:33])
	y.FillBytes(b[33:])
	return b
}

// HashToCurve is RFC 9380 P256_XMD:SHA-256_SSWU_RO_ with the given domain
// separation tag.
func HashToCurve(msg, dst []byte) (*nistec.P256Point, error) {
	uniform := expandMessageXMD(msg, dst, 96)
	var q [2]*nistec.P256Point
	for i := range q {
		u := mod(new(big.Int).SetBytes(uniform[48*i : 48*(i+1)]))
		x, y := sswu(u)
		p, err := nistec.NewP256Point().SetBytes(encodePoint(x, y))
		if err != nil {
			return nil, fmt.Errorf("hash to curve: %w", err)
		}
		q[i] = p
	}
	return nistec.NewP256Point().Add(q[0], q[1]), nil
}

// Labels of the vault protocol (docs/VAULT.md).
const (
	hashToCurveDST = "sealfs-vault-v1-P256_XMD:SHA-256_SSWU_RO_"
	argonSaltLabel = "sealfs vault v1 argon2id salt"
	outputLabel    = "sealfs vault v1 oprf output"
	tagLabel       = "sealfs vault v1 unlock tag"
	envKeyLabel    = "sealfs vault v1 envelope key"
)

// Argon2id parameters for stretching the password on the client.
const (
	argonTime    = 3
	argonMemory  = 64 << 10 // KiB
	argonThreads = 1
)

// Stretch returns Argon2id(password, salt = SHA-256(label || user)).
func Stretch(password []byte, user string) []byte {
	salt := sha256.Sum256(append([]byte(argonSaltLabel), user...))
	return argon2.IDKey(password, salt[:], argonTime, argonMemory, argonThreads, 32)
}

// Blinded is the client's state between blinding and finishing.
type Blinded struct {
	stretched []byte
	r         *big.Int
	// Element is the blinded point r·H(stretched) to send to the vault.
	Element []byte
}

// Blind hashes the stretched password to the curve and blinds it.
func Blind(stretched []byte) (*Blinded, error) {
	p, err := HashToCurve(stretched, []byte(hashToCurveDST))
	if err != nil {
		return nil, err
	}
	r, err := randomScalar()
	if err != nil {
		return nil, err
	}
	return blindWith(p, stretched, r)
}

// blindWith blinds the hashed point p with the scalar r (test vectors fix r).
func blindWith(p *nistec.P256Point, stretched []byte, r *big.Int) (*Blinded, error) {
	b, err := nistec.NewP256Point().ScalarMult(p, scalarBytes(r))
	if err != nil {
		return nil, err
	}
	return &Blinded{stretched: stretched, r: r, Element: b.Bytes()}, nil
}

func randomScalar() (*big.Int, error) {
	for {
		var b [32]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, err
		}
		r := new(big.Int).SetBytes(b[:])
		if r.Sign() > 0 && r.Cmp(orderN) < 0 {
			return r, nil
		}
	}
}

func scalarBytes(k *big.Int) []byte { return k.FillBytes(make([]byte, 32)) }

// Keys are what the client derives from the OPRF output.
type Keys struct {
	Tag         [32]byte // proves knowledge of the password to the vault
	EnvelopeKey [32]byte // opens the envelope the vault releases
	prk         []byte   // the OPRF output's HKDF PRK, for ShareMask
}

// Finish unblinds the vault's evaluation (the x-coordinate of k·r·P, as
// CKM_ECDH1_DERIVE returns) and derives the tag and envelope key. Either
// point with that x gives the same x after multiplying by r⁻¹.
func (b *Blinded) Finish(evaluatedX []byte) (*Keys, error) {
	if len(evaluatedX) != 32 {
		return nil, fmt.Errorf("evaluation is %d bytes, want 32", len(evaluatedX))
	}
	x := new(big.Int).SetBytes(evaluatedX)
	if x.Cmp(fieldP) >= 0 {
		return nil, ErrBadPoint
	}
	g := new(big.Int).Exp(x, big.NewInt(3), fieldP)
	g.Add(g, new(big.Int).Mul(curveA, x))
	g.Add(g, curveB)
	mod(g)
	y := new(big.Int).Exp(g, new(big.Int).Rsh(new(big.Int).Add(fieldP, big.NewInt(1)), 2), fieldP)
	if mod(new(big.Int).Mul(y, y)).Cmp(g) != 0 {
		return nil, ErrBadPoint
	}
	z, err := nistec.NewP256Point().SetBytes(encodePoint(x, y))
	if err != nil {
		return nil, ErrBadPoint
	}
	rInv := new(big.Int).ModInverse(b.r, orderN)
	u, err := nistec.NewP256Point().ScalarMult(z, scalarBytes(rInv))
	if err != nil {
		return nil, err
	}
	ux, err := u.BytesX()
	if err != nil {
		return nil, ErrBadPoint
	}
	// 2HashDH: the output binds the password as well as the evaluation.
	prk, err := hkdf.Extract(sha256.New, append(append([]byte{}, b.stretched...), ux...), []byte(outputLabel))
	if err != nil {
		return nil, err
	}
	k := Keys{prk: prk}
	for _, d := range []struct {
		dst   []byte
		label string
	}{{k.Tag[:], tagLabel}, {k.EnvelopeKey[:], envKeyLabel}} {
		v, err := hkdf.Expand(sha256.New, prk, d.label, 32)
		if err != nil {
			return nil, err
		}
		copy(d.dst, v)
	}
	return &k, nil
}
