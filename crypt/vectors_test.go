package crypt

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/vectors/crypt.json from this code")

const vectorFile = "../testdata/vectors/crypt.json"

// vector is one test vector: inputs, and either an output or the class of
// failure expected ("auth", "typo", "slot-mismatch").
type vector struct {
	Name      string `json:"name"`
	Kind      string `json:"kind"` // derive | open | code | slot | local
	MasterKey string `json:"master_key,omitempty"`
	Repo      string `json:"repository,omitempty"`
	Type      uint8  `json:"type,omitempty"`
	ID        string `json:"id,omitempty"`
	Input     string `json:"input,omitempty"` // hex, or the code text
	Salt      string `json:"salt,omitempty"`
	Output    string `json:"output,omitempty"` // hex
	Extra     string `json:"extra,omitempty"`
	File      string `json:"file,omitempty"` // local: the local file's name
	AD        string `json:"ad,omitempty"`   // local: associated data, hex
	Fail      string `json:"fail,omitempty"`
}

func fixedKeys() (MasterKey, RepoID) {
	var mk MasterKey
	for i := range mk.b {
		mk.b[i] = byte(i)
	}
	var repo RepoID
	for i := range repo {
		repo[i] = 0xf0 - byte(i)
	}
	return mk, repo
}

func makeVectors(t *testing.T) []vector {
	mk, repo := fixedKeys()
	k, err := DeriveKeys(mk, repo)
	if err != nil {
		t.Fatal(err)
	}
	mkHex, repoHex := hex.EncodeToString(mk.b[:]), repo.String()
	id := ID{0xaa, 0xbb}
	pt := []byte("sealfs test vector plaintext")
	sealed, _ := k.Seal(nil, TypeSnapshot, id, pt)
	flipped := append([]byte(nil), sealed...)
	flipped[len(flipped)-1] ^= 1
	gear := k.GearTable()
	gearHex := ""
	for _, g := range gear[:4] {
		gearHex += hex.EncodeToString([]byte{byte(g >> 56), byte(g >> 48), byte(g >> 40), byte(g >> 32), byte(g >> 24), byte(g >> 16), byte(g >> 8), byte(g)})
	}
	base := vector{Kind: "open", MasterKey: mkHex, Repo: repoHex, Type: uint8(TypeSnapshot), ID: id.String(), Input: hex.EncodeToString(sealed)}
	vs := []vector{
		{Name: "blob-id-data", Kind: "derive", MasterKey: mkHex, Repo: repoHex, Type: uint8(TypeDataBlob), Input: hex.EncodeToString(pt), Output: k.BlobID(TypeDataBlob, pt).String()},
		{Name: "blob-id-tree", Kind: "derive", MasterKey: mkHex, Repo: repoHex, Type: uint8(TypeTreeBlob), Input: hex.EncodeToString(pt), Output: k.BlobID(TypeTreeBlob, pt).String()},
		{Name: "config-mac", Kind: "derive", MasterKey: mkHex, Repo: repoHex, Input: hex.EncodeToString([]byte(`{"version":1}`)), Output: hex.EncodeToString(k.ConfigMAC([]byte(`{"version":1}`))), Extra: gearHex},
	}
	ok := base
	ok.Name, ok.Output = "open-valid", hex.EncodeToString(pt)
	vs = append(vs, ok)
	for _, v := range []struct {
		name string
		edit func(*vector)
	}{
		{"open-flipped-tag", func(v *vector) { v.Input = hex.EncodeToString(flipped) }},
		{"open-wrong-type", func(v *vector) { v.Type = uint8(TypeIndex) }},
		{"open-wrong-id", func(v *vector) { v.ID = ID{0xaa, 0xbc}.String() }},
		{"open-other-repository", func(v *vector) { v.Repo = RepoID{1}.String() }},
		{"open-truncated", func(v *vector) { v.Input = hex.EncodeToString(sealed[:len(sealed)-4]) }},
	} {
		bad := base
		bad.Name, bad.Fail = v.name, "auth"
		v.edit(&bad)
		vs = append(vs, bad)
	}
	lf, err := k.LocalKey().LocalFile("staging/00112233445566778899aabbccddeeff")
	if err != nil {
		t.Fatal(err)
	}
	ad := []byte{0, 0, 0, 0, 0, 0, 0, 7}
	lsealed, _ := lf.Seal(nil, ad, pt)
	local := vector{Kind: "local", MasterKey: mkHex, Repo: repoHex, File: "staging/00112233445566778899aabbccddeeff", AD: hex.EncodeToString(ad), Input: hex.EncodeToString(lsealed)}
	for _, v := range []struct {
		name string
		edit func(*vector)
	}{
		{"local-open-valid", func(v *vector) { v.Output = hex.EncodeToString(pt) }},
		{"local-open-other-file", func(v *vector) { v.File, v.Fail = "staging/00112233445566778899aabbccddeef0", "auth" }},
		{"local-open-other-ad", func(v *vector) { v.AD, v.Fail = "0000000000000008", "auth" }},
		{"local-open-other-repository", func(v *vector) { v.Repo, v.Fail = RepoID{3}.String(), "auth" }},
	} {
		lv := local
		lv.Name = v.name
		v.edit(&lv)
		vs = append(vs, lv)
	}
	code, _ := NewRecoveryCode()
	salt := make([]byte, SaltSize)
	for i := range salt {
		salt[i] = byte(0x30 + i)
	}
	kek, _ := code.KEK(salt)
	shown := code.Reveal()
	badSum := []byte(shown)
	if badSum[0] == '0' {
		badSum[0] = '1'
	} else {
		badSum[0] = '0'
	}
	vs = append(vs,
		vector{Name: "code-valid", Kind: "code", Input: shown, Salt: hex.EncodeToString(salt), Output: hex.EncodeToString(kek.b[:])},
		vector{Name: "code-valid-lower-dashes", Kind: "code", Input: "  " + lowerDashes(shown), Salt: hex.EncodeToString(salt), Output: hex.EncodeToString(kek.b[:])},
		vector{Name: "code-typo-checksum", Kind: "code", Input: string(badSum), Fail: "typo"},
		vector{Name: "code-typo-short", Kind: "code", Input: shown[:len(shown)-1], Fail: "typo"},
		vector{Name: "code-typo-letter", Kind: "code", Input: "G" + shown[1:], Fail: "typo"},
	)
	slotID := ID{0x51}
	s, _ := NewKeySlot(repo, slotID, SlotRecoveryCode, salt, nil, kek, mk)
	sb, _ := s.Marshal()
	vs = append(vs,
		vector{Name: "slot-valid", Kind: "slot", Repo: repoHex, ID: slotID.String(), Input: string(sb), Extra: shown, Output: mkHex},
		vector{Name: "slot-other-repository", Kind: "slot", Repo: RepoID{2}.String(), ID: slotID.String(), Input: string(sb), Extra: shown, Fail: "slot-mismatch"},
		vector{Name: "slot-other-slot-id", Kind: "slot", Repo: repoHex, ID: ID{0x52}.String(), Input: string(sb), Extra: shown, Fail: "slot-mismatch"},
	)
	return vs
}

func lowerDashes(s string) string {
	out := []byte(s)
	for i, c := range out {
		if c == ' ' {
			out[i] = '-'
		} else if c >= 'A' && c <= 'F' {
			out[i] = c + 32
		}
	}
	return string(out)
}

func mustHex(t *testing.T, s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVectors(t *testing.T) {
	if *update {
		b, _ := json.MarshalIndent(makeVectors(t), "", "  ")
		if err := os.WriteFile(vectorFile, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(filepath.FromSlash(vectorFile))
	if err != nil {
		t.Fatalf("%v (run: go test ./crypt -run TestVectors -update)", err)
	}
	var vs []vector
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		t.Run(v.Name, func(t *testing.T) {
			var got string
			var err error
			switch v.Kind {
			case "derive", "open":
				var mk MasterKey
				copy(mk.b[:], mustHex(t, v.MasterKey))
				repo, _ := ParseRepoID(v.Repo)
				k, _ := DeriveKeys(mk, repo)
				in := mustHex(t, v.Input)
				switch {
				case v.Kind == "open":
					id, _ := ParseID(v.ID)
					var pt []byte
					pt, err = k.Open(ObjectType(v.Type), id, in)
					got = hex.EncodeToString(pt)
				case v.Type != 0:
					got = k.BlobID(ObjectType(v.Type), in).String()
				default:
					got = hex.EncodeToString(k.ConfigMAC(in))
					gearHex := ""
					for _, g := range k.GearTable()[:4] {
						gearHex += fmt.Sprintf("%016x", g)
					}
					if gearHex != v.Extra {
						t.Fatalf("gear table starts %s, want %s", gearHex, v.Extra)
					}
				}
			case "local":
				var mk MasterKey
				copy(mk.b[:], mustHex(t, v.MasterKey))
				repo, _ := ParseRepoID(v.Repo)
				k, _ := DeriveKeys(mk, repo)
				lf, lerr := k.LocalKey().LocalFile(v.File)
				if lerr != nil {
					t.Fatal(lerr)
				}
				var pt []byte
				pt, err = lf.Open(nil, mustHex(t, v.AD), mustHex(t, v.Input))
				got = hex.EncodeToString(pt)
			case "code":
				var c RecoveryCode
				if c, err = ParseRecoveryCode(v.Input); err == nil {
					var kek KEK
					kek, err = c.KEK(mustHex(t, v.Salt))
					got = hex.EncodeToString(kek.b[:])
				}
			case "slot":
				var c RecoveryCode
				c, err = ParseRecoveryCode(v.Extra)
				if err != nil {
					t.Fatal(err)
				}
				var s *KeySlot
				if s, err = ParseKeySlot([]byte(v.Input)); err != nil {
					t.Fatal(err)
				}
				repo, _ := ParseRepoID(v.Repo)
				id, _ := ParseID(v.ID)
				kek, _ := c.KEK(s.Salt)
				var mk MasterKey
				mk, err = s.Unwrap(repo, id, kek)
				got = hex.EncodeToString(mk.b[:])
			}
			want := map[string]error{"auth": ErrAuth, "typo": ErrCodeTypo, "slot-mismatch": ErrSlotMismatch}[v.Fail]
			switch {
			case v.Fail != "" && !errors.Is(err, want):
				t.Fatalf("got %v, want failure %q", err, v.Fail)
			case v.Fail == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case v.Fail == "" && got != v.Output:
				t.Fatalf("got %s, want %s", got, v.Output)
			}
		})
	}
}
