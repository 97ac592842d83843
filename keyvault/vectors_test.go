package keyvault

import (
	"encoding/hex"
	"encoding/json"
	"flag"
	"math/big"
	"os"
	"testing"

	"filippo.io/nistec"
)

var update = flag.Bool("update", false, "rewrite testdata/vectors/vault.json from this code")

const vaultVectors = "../testdata/vectors/vault.json"

// oprfVector is one run of the x-only OPRF with everything fixed. It is
// not RFC 9497 compatible (docs/VAULT.md says why); these are our own.
type oprfVector struct {
	Name        string `json:"name"`
	Password    string `json:"password"`
	User        string `json:"user"`
	Stretched   string `json:"stretched"`    // Argon2id output
	HashedPoint string `json:"hashed_point"` // HashToCurve(stretched)
	BlindScalar string `json:"blind_scalar"` // r
	Blinded     string `json:"blinded"`      // r·P
	VaultKey    string `json:"vault_key"`    // k (in an HSM it never leaves)
	Evaluated   string `json:"evaluated"`    // x(k·r·P)
	Tag         string `json:"tag"`
	EnvelopeKey string `json:"envelope_key"`
}

func scalarFromHex(t *testing.T, s string) *big.Int {
	v, ok := new(big.Int).SetString(s, 16)
	if !ok {
		t.Fatalf("bad scalar %q", s)
	}
	return v
}

func runVector(t *testing.T, v oprfVector) oprfVector {
	stretched := Stretch([]byte(v.Password), v.User)
	p, err := HashToCurve(stretched, []byte(hashToCurveDST))
	if err != nil {
		t.Fatal(err)
	}
	b, err := blindWith(p, stretched, scalarFromHex(t, v.BlindScalar))
	if err != nil {
		t.Fatal(err)
	}
	bp, _ := nistec.NewP256Point().SetBytes(b.Element)
	z, err := nistec.NewP256Point().ScalarMult(bp, scalarBytes(scalarFromHex(t, v.VaultKey)))
	if err != nil {
		t.Fatal(err)
	}
	x, _ := z.BytesX()
	keys, err := b.Finish(x)
	if err != nil {
		t.Fatal(err)
	}
	v.Stretched, v.HashedPoint, v.Blinded = hex.EncodeToString(stretched), hex.EncodeToString(p.Bytes()), hex.EncodeToString(b.Element)
	v.Evaluated, v.Tag, v.EnvelopeKey = hex.EncodeToString(x), hex.EncodeToString(keys.Tag[:]), hex.EncodeToString(keys.EnvelopeKey[:])
	return v
}

func TestOPRFVectors(t *testing.T) {
	if *update {
		var vs []oprfVector
		for _, in := range []oprfVector{
			{Name: "basic", Password: "correct horse battery staple", User: "u0123456789abcdef0123456789abcdef",
				BlindScalar: "1f2e3d4c5b6a798897a6b5c4d3e2f1000102030405060708090a0b0c0d0e0f10", VaultKey: "2b7e151628aed2a6abf7158809cf4f3c762e7160f38b4da56a784d9045190cfe"},
			{Name: "other-blind-same-output", Password: "correct horse battery staple", User: "u0123456789abcdef0123456789abcdef",
				BlindScalar: "00000000000000000000000000000000000000000000000000000000deadbeef", VaultKey: "2b7e151628aed2a6abf7158809cf4f3c762e7160f38b4da56a784d9045190cfe"},
			{Name: "other-user", Password: "correct horse battery staple", User: "u00000000000000000000000000000000",
				BlindScalar: "1f2e3d4c5b6a798897a6b5c4d3e2f1000102030405060708090a0b0c0d0e0f10", VaultKey: "2b7e151628aed2a6abf7158809cf4f3c762e7160f38b4da56a784d9045190cfe"},
		} {
			vs = append(vs, runVector(t, in))
		}
		b, _ := json.MarshalIndent(vs, "", "  ")
		if err := os.WriteFile(vaultVectors, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(vaultVectors)
	if err != nil {
		t.Fatalf("%v (run: go test ./keyvault -run TestOPRFVectors -update)", err)
	}
	var vs []oprfVector
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		if got := runVector(t, v); got != v {
			t.Errorf("vector %s: got %+v", v.Name, got)
		}
	}
	if vs[0].Tag != vs[1].Tag || vs[0].Blinded == vs[1].Blinded {
		t.Error("blinding changes the output, or does not change the blinded point")
	}
	if vs[0].Tag == vs[2].Tag {
		t.Error("the user id does not change the output")
	}
}

const sharedVectors = "../testdata/vectors/vault-kofn.json"

// sharedVector is a k-of-n enrolment with everything fixed (docs/VAULT.md
// §5): the shares are testdata/vectors/shamir.json's first (a 2-of-3
// split of Secret), each vault evaluates with its own key.
type sharedVector struct {
	Password string         `json:"password"`
	K        int            `json:"k"`
	Secret   string         `json:"secret"`
	Vaults   []sharedMember `json:"vaults"`
}

type sharedMember struct {
	User        string `json:"user"`
	BlindScalar string `json:"blind_scalar"`
	VaultKey    string `json:"vault_key"`
	Evaluated   string `json:"evaluated"`
	Share       string `json:"share"`
	ShareMask   string `json:"share_mask"`
	Masked      string `json:"masked"`      // kept in the key slot
	ReleaseTag  string `json:"release_tag"` // proves the password to this vault
}

func runShared(t *testing.T, v sharedVector) sharedVector {
	secret := unhex(t, v.Secret)
	for i, m := range v.Vaults {
		o := runVector(t, oprfVector{Password: v.Password, User: m.User, BlindScalar: m.BlindScalar, VaultKey: m.VaultKey})
		b, err := blindWith(mustHash(t, Stretch([]byte(v.Password), m.User)), Stretch([]byte(v.Password), m.User), scalarFromHex(t, m.BlindScalar))
		if err != nil {
			t.Fatal(err)
		}
		keys, err := b.Finish(unhex(t, o.Evaluated))
		if err != nil {
			t.Fatal(err)
		}
		mask, err := keys.ShareMask(i+1, m.User)
		if err != nil {
			t.Fatal(err)
		}
		tag, err := ReleaseTag(secret, i+1, m.User)
		if err != nil {
			t.Fatal(err)
		}
		m.Evaluated, m.ShareMask, m.ReleaseTag = o.Evaluated, hex.EncodeToString(mask[:]), hex.EncodeToString(tag[:])
		m.Masked = hex.EncodeToString(xor(unhex(t, m.Share), mask[:]))
		v.Vaults[i] = m
	}
	return v
}

func mustHash(t *testing.T, stretched []byte) *nistec.P256Point {
	p, err := HashToCurve(stretched, []byte(hashToCurveDST))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSharedVectors: the k-of-n derivations (share masks, release tags)
// as testdata/vectors/vault-kofn.json keeps them (-update rewrites it; a
// change there breaks every k-of-n vault slot), and the guess limits.
func TestSharedVectors(t *testing.T) {
	if *update {
		in := sharedVector{Password: "correct horse battery staple", K: 2,
			Secret: "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
			Vaults: []sharedMember{
				{User: "u11111111111111111111111111111111", BlindScalar: "1f2e3d4c5b6a798897a6b5c4d3e2f1000102030405060708090a0b0c0d0e0f10",
					VaultKey: "2b7e151628aed2a6abf7158809cf4f3c762e7160f38b4da56a784d9045190cfe",
					Share:    "f0e0d0c0b0a09080706050403020100010003020504070609080b0a0d0c0f0e0"},
				{User: "u22222222222222222222222222222222", BlindScalar: "00000000000000000000000000000000000000000000000000000000deadbeef",
					VaultKey: "3c8f262739f4b7d2a3a0ea2c7f9e3d4e5a6b7c8d9e0f1a2b3c4d5e6f70819203",
					Share:    "fbd8bd9e77543112f8dbbe9d74573211103356759cbfdaf9133055769fbcd9fa"},
				{User: "u33333333333333333333333333333333", BlindScalar: "0000000000000000000000000000000000000000000000000000000000000007",
					VaultKey: "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20",
					Share:    "0b396f5dc3f1a79580b2e4d6487a2c1e10227446d8eabc8e9ba9ffcd53613705"},
			}}
		b, _ := json.MarshalIndent(runShared(t, in), "", "  ")
		if err := os.WriteFile(sharedVectors, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(sharedVectors)
	if err != nil {
		t.Fatalf("%v (run: go test ./keyvault -run TestSharedVectors -update)", err)
	}
	var v sharedVector
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(v)
	got, _ := json.Marshal(runShared(t, v))
	if string(got) != string(want) {
		t.Errorf("the k-of-n vector is\n%s\nthe file says\n%s", got, want)
	}
	seen := map[string]bool{}
	for _, m := range v.Vaults {
		for _, x := range []string{m.ShareMask, m.ReleaseTag} {
			if seen[x] {
				t.Errorf("a share mask or release tag repeats: %s", x)
			}
			seen[x] = true
		}
	}
	for _, c := range []struct{ k, n, l int }{{1, 1, 10}, {2, 2, 10}, {2, 3, 5}, {3, 5, 3}, {1, 2, 5}, {3, 3, 10}, {1, 10, 1}, {0, 3, 0}, {4, 3, 0}, {2, 11, 0}} {
		if got := SharedAttempts(c.k, c.n); got != c.l {
			t.Errorf("SharedAttempts(%d, %d) = %d, want %d", c.k, c.n, got, c.l)
		}
		if c.l > 0 && (c.n-c.k+1)*c.l > MaxAttempts {
			t.Errorf("%d of %d: k−1 stolen HSMs leave %d guesses", c.k, c.n, (c.n-c.k+1)*c.l)
		}
	}
}
