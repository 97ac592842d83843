package shamir

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"slices"
	"strings"
	"testing"
)

// slowMul is GF(2^8) multiplication as the textbook writes it, with
// branches, to check mul against.
func slowMul(a, b byte) byte {
	var p byte
	for b != 0 {
		if b&1 != 0 {
			p ^= a
		}
		if a&0x80 != 0 {
			a = a<<1 ^ 0x1b
		} else {
			a <<= 1
		}
		b >>= 1
	}
	return p
}

func TestField(t *testing.T) {
	// FIPS-197 §4.2: {57}·{83} = {c1}, {57}·{13} = {fe}.
	if mul(0x57, 0x83) != 0xc1 || mul(0x57, 0x13) != 0xfe {
		t.Fatalf("{57}·{83} = %02x, {57}·{13} = %02x", mul(0x57, 0x83), mul(0x57, 0x13))
	}
	for a := range 256 {
		for b := range 256 {
			if got, want := mul(byte(a), byte(b)), slowMul(byte(a), byte(b)); got != want {
				t.Fatalf("%02x·%02x = %02x, want %02x", a, b, got, want)
			}
		}
		if a != 0 && mul(byte(a), inv(byte(a))) != 1 {
			t.Fatalf("%02x·%02x⁻¹ is not 1", a, a)
		}
	}
	if inv(0) != 0 {
		t.Fatal("0⁻¹ is not 0")
	}
}

// subsets calls f with every subset of size k of shares.
func subsets(shares []Share, k int, f func([]Share)) {
	var pick func(start int, cur []Share)
	pick = func(start int, cur []Share) {
		if len(cur) == k {
			f(append([]Share(nil), cur...))
			return
		}
		for i := start; i < len(shares); i++ {
			pick(i+1, append(cur, shares[i]))
		}
	}
	pick(0, nil)
}

// TestSplitCombine: every k shares, in any order, give the secret back,
// and so do more than k; fewer than k give something else.
func TestSplitCombine(t *testing.T) {
	secret := make([]byte, 32)
	rand.Read(secret)
	for n := 1; n <= 6; n++ {
		for k := 1; k <= n; k++ {
			shares, err := Split(secret, k, n)
			if err != nil {
				t.Fatal(err)
			}
			for i, s := range shares {
				if s.X != byte(i+1) || len(s.Y) != len(secret) {
					t.Fatalf("%d of %d: share %d is at x = %d with %d bytes", k, n, i, s.X, len(s.Y))
				}
			}
			for size := 1; size <= n; size++ {
				subsets(shares, size, func(sub []Share) {
					if size > 1 {
						sub[0], sub[size-1] = sub[size-1], sub[0]
					}
					got, err := Combine(sub)
					if err != nil {
						t.Fatal(err)
					}
					if ok := bytes.Equal(got, secret); ok != (size >= k) {
						t.Fatalf("%d of %d: %d shares gave the secret: %v", k, n, size, ok)
					}
				})
			}
		}
	}
}

// TestFewerThanKTellNothing: a share of a 2-of-3 split of a fixed secret
// takes every byte value (a share that depended on the secret alone, or
// on too little randomness, would not): with 4,096 splits a uniform byte
// misses a value with probability below 10⁻⁴.
func TestFewerThanKTellNothing(t *testing.T) {
	secret := []byte{0x42}
	var seen [3][256]bool
	for range 4096 {
		shares, err := Split(secret, 2, 3)
		if err != nil {
			t.Fatal(err)
		}
		for i, s := range shares {
			seen[i][s.Y[0]] = true
		}
	}
	for i := range seen {
		for v, ok := range seen[i] {
			if !ok {
				t.Fatalf("share %d never took the value %02x", i+1, v)
			}
		}
	}
}

func TestBadArguments(t *testing.T) {
	for _, c := range [][2]int{{0, 3}, {4, 3}, {2, 256}, {-1, 2}} {
		if _, err := Split([]byte{1}, c[0], c[1]); err == nil {
			t.Errorf("Split %d of %d was accepted", c[0], c[1])
		}
	}
	for _, shares := range [][]Share{
		nil,
		{{X: 0, Y: []byte{1}}},
		{{X: 1, Y: []byte{1}}, {X: 1, Y: []byte{2}}},
		{{X: 1, Y: []byte{1}}, {X: 2, Y: []byte{2, 3}}},
	} {
		if _, err := Combine(shares); !errors.Is(err, ErrShares) {
			t.Errorf("Combine(%v) = %v, want ErrShares", shares, err)
		}
	}
}

// FuzzCombine: Combine never panics on shares from anywhere, and a split
// always combines back.
func FuzzCombine(f *testing.F) {
	f.Add([]byte{1, 2, 3}, []byte{4, 5, 6}, byte(2), byte(3))
	f.Fuzz(func(t *testing.T, secret, noise []byte, k, n byte) {
		if _, err := Combine([]Share{{X: k, Y: secret}, {X: n, Y: noise}}); err == nil && (k == 0 || n == 0 || k == n || len(secret) != len(noise)) {
			t.Fatal("Combine accepted bad shares")
		}
		if k == 0 || k > n {
			return
		}
		shares, err := Split(secret, int(k), int(n))
		if err != nil {
			t.Fatal(err)
		}
		got, err := Combine(shares[len(shares)-int(k):])
		if err != nil || !bytes.Equal(got, secret) {
			t.Fatalf("%d of %d: %x, %v", k, n, got, err)
		}
	})
}

// shamirVector is a split with fixed coefficients.
type shamirVector struct {
	Secret       string   `json:"secret"`
	K            int      `json:"k"`
	Coefficients string   `json:"coefficients"` // per byte, degree 1 to k−1
	Shares       []string `json:"shares"`       // at x = 1, 2, ...
}

var update = flag.Bool("update", false, "rewrite testdata/vectors/shamir.json from this code")

const vectors = "../../testdata/vectors/shamir.json"

func runShamirVector(t *testing.T, v shamirVector) shamirVector {
	secret, coef := unhex(t, v.Secret), unhex(t, v.Coefficients)
	v.Shares = nil
	for _, s := range split(secret, v.K, 3, coef) {
		v.Shares = append(v.Shares, hex.EncodeToString(s.Y))
	}
	return v
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestShamirVectors: splits with fixed coefficients, as
// testdata/vectors/shamir.json keeps them (go test ./keyvault/shamir
// -run TestShamirVectors -update rewrites it; a change there changes
// every k-of-n vault slot).
func TestShamirVectors(t *testing.T) {
	if *update {
		vs := []shamirVector{
			{Secret: "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", K: 2,
				Coefficients: "f0e1d2c3b4a5968778695a4b3c2d1e0f00112233445566778899aabbccddeeff"},
			{Secret: "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", K: 3,
				Coefficients: strings.Repeat("5713", 32)},
		}
		for i := range vs {
			vs[i] = runShamirVector(t, vs[i])
		}
		b, _ := json.MarshalIndent(vs, "", "  ")
		if err := os.WriteFile(vectors, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(vectors)
	if err != nil {
		t.Fatal(err)
	}
	var vs []shamirVector
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatal(err)
	}
	for i, v := range vs {
		if got := runShamirVector(t, v); !slices.Equal(got.Shares, v.Shares) {
			t.Errorf("vector %d: shares %v, the file says %v", i, got.Shares, v.Shares)
		}
		var shares []Share
		for x, s := range v.Shares {
			shares = append(shares, Share{X: byte(x + 1), Y: unhex(t, s)})
		}
		if got, err := Combine(shares[3-v.K:]); err != nil || hex.EncodeToString(got) != v.Secret {
			t.Errorf("vector %d: the last %d shares combine to %x, %v", i, v.K, got, err)
		}
	}
}
