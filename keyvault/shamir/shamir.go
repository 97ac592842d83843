// Package shamir splits a secret into n shares so that any k of them
// give it back and fewer than k tell nothing about it: Shamir's secret
// sharing over GF(2^8) (the AES field, x^8 + x^4 + x^3 + x + 1), byte by
// byte, share i being the value at x = i (1 to 255) of a random
// polynomial of degree k−1 whose constant term is the secret's byte.
//
// Field arithmetic touches secrets and runs in constant time: no table
// lookups and no branches on secret values. Shares are not authenticated:
// whoever uses them checks the secret they give (sealfs: the key slot's
// AEAD).
package shamir

import (
	"crypto/rand"
	"errors"
	"fmt"
)

// MaxShares is the most shares a secret is split into.
const MaxShares = 255

// Share is one share: the value, at X, of the polynomials of each byte.
type Share struct {
	X byte   // 1 to 255, never 0 (the secret)
	Y []byte // as long as the secret
}

// ErrShares: the shares given to Combine cannot be combined.
var ErrShares = errors.New("shares cannot be combined")

// mul multiplies in GF(2^8) in constant time (shift and add, with masks
// in place of branches).
func mul(a, b byte) byte {
	var p byte
	for range 8 {
		p ^= a & -(b & 1)
		hi := -(a >> 7)
		a = a<<1 ^ 0x1b&hi
		b >>= 1
	}
	return p
}

// inv returns a⁻¹ = a^254 in GF(2^8) (0 for 0), in constant time.
func inv(a byte) byte {
	a2 := mul(a, a)
	a4 := mul(a2, a2)
	a8 := mul(a4, a4)
	a16 := mul(a8, a8)
	a32 := mul(a16, a16)
	a64 := mul(a32, a32)
	a128 := mul(a64, a64)
	// 254 = 128+64+32+16+8+4+2
	return mul(mul(mul(mul(mul(mul(a128, a64), a32), a16), a8), a4), a2)
}

// Split splits secret into n shares, X = 1 to n, any k of which give it
// back (1 ≤ k ≤ n ≤ MaxShares). With k = 1 every share is the secret.
func Split(secret []byte, k, n int) ([]Share, error) {
	if k < 1 || k > n || n > MaxShares {
		return nil, fmt.Errorf("cannot split a secret %d of %d: want 1 ≤ k ≤ n ≤ %d", k, n, MaxShares)
	}
	coef := make([]byte, len(secret)*(k-1)) // the random coefficients of degree 1 to k−1
	if _, err := rand.Read(coef); err != nil {
		return nil, err
	}
	defer clear(coef)
	return split(secret, k, n, coef), nil
}

// split splits secret with the coefficients coef: for byte b, those of
// degree 1 to k−1 are coef[b*(k−1)] to coef[b*(k−1)+k−2].
func split(secret []byte, k, n int, coef []byte) []Share {
	shares := make([]Share, n)
	for i := range shares {
		x := byte(i + 1)
		y := make([]byte, len(secret))
		for b, s := range secret {
			// Horner, from the highest coefficient down to the secret.
			var v byte
			for d := k - 1; d >= 1; d-- {
				v = mul(v, x) ^ coef[b*(k-1)+d-1]
			}
			y[b] = mul(v, x) ^ s
		}
		shares[i] = Share{X: x, Y: y}
	}
	return shares
}

// Combine gives back the secret from k shares of it (Lagrange
// interpolation at 0). The shares must have distinct, non-zero X and
// values of one length (ErrShares). Any k shares of a split with
// threshold k give its secret; other shares give some other value:
// nothing here can tell.
func Combine(shares []Share) ([]byte, error) {
	if len(shares) == 0 {
		return nil, fmt.Errorf("%w: none given", ErrShares)
	}
	size := len(shares[0].Y)
	for i, s := range shares {
		if s.X == 0 || len(s.Y) != size {
			return nil, fmt.Errorf("%w: share %d has x = 0 or another length", ErrShares, i)
		}
		for _, o := range shares[:i] {
			if o.X == s.X {
				return nil, fmt.Errorf("%w: two shares at x = %d", ErrShares, s.X)
			}
		}
	}
	secret := make([]byte, size)
	for j, s := range shares {
		// The Lagrange basis polynomial of share j at 0: the product over
		// m ≠ j of x_m / (x_m − x_j); in GF(2^8), − is ^.
		l := byte(1)
		for m, o := range shares {
			if m != j {
				l = mul(l, mul(o.X, inv(o.X^s.X)))
			}
		}
		for b, y := range s.Y {
			secret[b] ^= mul(l, y)
		}
	}
	return secret, nil
}
