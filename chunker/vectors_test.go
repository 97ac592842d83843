package chunker

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/vectors/chunker.json from this code (a format change)")

const vectorFile = "../testdata/vectors/chunker.json"

// The vectors' key: the master key and repository id of the crypt vectors
// (testdata/vectors/crypt.json), so that one fixed key serves both files.
const (
	vectorMasterKey = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
	vectorRepo      = "f0efeeedecebeae9e8e7e6e5e4e3e2e1"
)

// chunkerVectors is the file's content (docs/SPEC.md §6.1).
type chunkerVectors struct {
	Comment string      `json:"comment"`
	Gear    gearVector  `json:"gear"`
	Cases   []chunkCase `json:"cases"`
}

// gearVector: the gear table of the fixed key, checkable without the code.
type gearVector struct {
	MasterKey   string       `json:"master_key"`
	Repository  string       `json:"repository"`
	Subkey      string       `json:"subkey"`       // HKDF-SHA256(MK, RID, "sealfs v1 chunker gear table")
	TableSHA256 string       `json:"table_sha256"` // of the 2048 bytes of HKDF-Expand
	Entries     []gearSample `json:"entries"`
}

type gearSample struct {
	Index int    `json:"index"`
	Value string `json:"value"` // the uint64 in hex, 16 digits
}

// chunkCase is one input, the sizes it is cut with and the chunks it gives.
type chunkCase struct {
	Name        string      `json:"name"`
	Params      paramsJSON  `json:"params"`
	Input       []inputPart `json:"input"`
	InputSHA256 string      `json:"input_sha256"`
	Chunks      [][2]int    `json:"chunks"` // offset, length
}

type paramsJSON struct {
	Min int `json:"min"`
	Avg int `json:"avg"`
	Max int `json:"max"`
}

// inputPart is a piece of a case's input, the pieces concatenated in order:
// "aes-256-ctr" is the keystream of AES-256 in counter mode (NIST SP
// 800-38A: key, initial counter block iv, the block incremented as one
// 128-bit big-endian integer), the first length bytes of it; "zeros" is
// length zero bytes.
type inputPart struct {
	Kind   string `json:"kind"`
	Key    string `json:"key,omitempty"`
	IV     string `json:"iv,omitempty"`
	Length int    `json:"length"`
}

func (p inputPart) bytes(t testing.TB) []byte {
	out := make([]byte, p.Length)
	switch p.Kind {
	case "zeros":
	case "aes-256-ctr":
		key, err := hex.DecodeString(p.Key)
		if err != nil || len(key) != 32 {
			t.Fatalf("part key %q is not 32 bytes of hex", p.Key)
		}
		iv, err := hex.DecodeString(p.IV)
		if err != nil || len(iv) != aes.BlockSize {
			t.Fatalf("part iv %q is not 16 bytes of hex", p.IV)
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			t.Fatal(err)
		}
		cipher.NewCTR(block, iv).XORKeyStream(out, out)
	default:
		t.Fatalf("unknown input part kind %q", p.Kind)
	}
	return out
}

// gearTable derives the gear table as docs/SPEC.md §3 says, with the
// standard library alone, so that the vectors check the spec's formula and
// not only this repository's code.
func gearTable(t testing.TB, masterKey, repo string) (*[256]uint64, []byte, []byte) {
	mk, err1 := hex.DecodeString(masterKey)
	rid, err2 := hex.DecodeString(repo)
	if err1 != nil || err2 != nil {
		t.Fatal("bad vector key")
	}
	subkey, err := hkdf.Key(sha256.New, mk, rid, "sealfs v1 chunker gear table", 32)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := hkdf.Expand(sha256.New, subkey, "sealfs v1 gear table expand", 2048)
	if err != nil {
		t.Fatal(err)
	}
	var g [256]uint64
	for i := range g {
		g[i] = binary.LittleEndian.Uint64(raw[8*i:])
	}
	return &g, subkey, raw
}

// cutAll returns the chunks of data as (offset, length), read through a
// reader that returns odd-sized pieces so that refills are exercised.
func cutAll(t testing.TB, data []byte, gear *[256]uint64, p Params) [][2]int {
	c, err := New(iotestHalfReader{bytes.NewReader(data)}, gear, p)
	if err != nil {
		t.Fatal(err)
	}
	out := [][2]int{}
	off := 0
	for {
		b, err := c.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, [2]int{off, len(b)})
		off += len(b)
	}
}

func ctrPart(seed byte, n int) inputPart {
	key := make([]byte, 32)
	for i := range key {
		key[i] = seed + byte(i)
	}
	iv := make([]byte, aes.BlockSize)
	iv[0] = seed
	return inputPart{Kind: "aes-256-ctr", Key: hex.EncodeToString(key), IV: hex.EncodeToString(iv), Length: n}
}

func makeChunkerVectors(t *testing.T) chunkerVectors {
	gear, subkey, raw := gearTable(t, vectorMasterKey, vectorRepo)
	sum := sha256.Sum256(raw)
	v := chunkerVectors{
		Comment: "FastCDC boundaries of sealfs format v1 (docs/SPEC.md §6.1). Regenerating this file is a format change.",
		Gear: gearVector{
			MasterKey: vectorMasterKey, Repository: vectorRepo,
			Subkey: hex.EncodeToString(subkey), TableSHA256: hex.EncodeToString(sum[:]),
		},
	}
	for _, i := range []int{0, 1, 2, 3, 127, 128, 254, 255} {
		v.Gear.Entries = append(v.Gear.Entries, gearSample{Index: i, Value: fmt.Sprintf("%016x", gear[i])})
	}
	def := paramsJSON(DefaultParams)
	small := paramsJSON{512, 2048, 8192}
	for _, c := range []struct {
		name   string
		params paramsJSON
		parts  []inputPart
	}{
		{"keystream-4mib-default", def, []inputPart{ctrPart(1, 4<<20)}},
		{"keystream-256kib-small", small, []inputPart{ctrPart(2, 256<<10)}},
		{"zeros-3mib-default", def, []inputPart{{Kind: "zeros", Length: 3 << 20}}},
		{"zeros-between-keystreams-default", def, []inputPart{ctrPart(3, 1<<20), {Kind: "zeros", Length: 1 << 20}, ctrPart(4, 1<<20+12345)}},
		{"zeros-between-keystreams-small", small, []inputPart{ctrPart(5, 20000), {Kind: "zeros", Length: 30000}, ctrPart(6, 20000)}},
		{"empty", def, nil},
		{"shorter-than-min", def, []inputPart{ctrPart(7, 100000)}},
		{"exactly-min", def, []inputPart{ctrPart(8, DefaultParams.Min)}},
		{"min-plus-one", def, []inputPart{ctrPart(9, DefaultParams.Min+1)}},
		{"exactly-max", def, []inputPart{ctrPart(10, DefaultParams.Max)}},
	} {
		cs := chunkCase{Name: c.name, Params: c.params, Input: c.parts}
		if cs.Input == nil {
			cs.Input = []inputPart{}
		}
		data := caseInput(t, cs)
		h := sha256.Sum256(data)
		cs.InputSHA256 = hex.EncodeToString(h[:])
		cs.Chunks = cutAll(t, data, gear, Params(c.params))
		v.Cases = append(v.Cases, cs)
	}
	return v
}

func caseInput(t testing.TB, c chunkCase) []byte {
	var data []byte
	for _, p := range c.Input {
		data = append(data, p.bytes(t)...)
	}
	return data
}

// TestVectors checks the chunker against testdata/vectors/chunker.json: the
// gear table of a fixed key (derived here from the spec's formula), and the
// chunk boundaries of deterministic inputs. A second implementation that
// passes these cuts as sealfs does, so its chunks deduplicate against
// sealfs'. Regenerate (a format change) with:
// go test ./chunker -run TestVectors -update
func TestVectors(t *testing.T) {
	if *update {
		b, err := json.MarshalIndent(makeChunkerVectors(t), "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(vectorFile, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(vectorFile)
	if err != nil {
		t.Fatalf("%v (run: go test ./chunker -run TestVectors -update)", err)
	}
	var v chunkerVectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	gear, subkey, raw := gearTable(t, v.Gear.MasterKey, v.Gear.Repository)
	t.Run("gear", func(t *testing.T) {
		if got := hex.EncodeToString(subkey); got != v.Gear.Subkey {
			t.Errorf("gear subkey %s, want %s", got, v.Gear.Subkey)
		}
		if sum := sha256.Sum256(raw); hex.EncodeToString(sum[:]) != v.Gear.TableSHA256 {
			t.Errorf("gear table SHA-256 %x, want %s", sum, v.Gear.TableSHA256)
		}
		if len(v.Gear.Entries) < 8 {
			t.Fatalf("only %d gear entries spelled out", len(v.Gear.Entries))
		}
		for _, e := range v.Gear.Entries {
			if got := fmt.Sprintf("%016x", gear[e.Index]); got != e.Value {
				t.Errorf("gear[%d] = %s, want %s", e.Index, got, e.Value)
			}
		}
	})
	if len(v.Cases) < 10 {
		t.Fatalf("only %d chunking cases", len(v.Cases))
	}
	for _, c := range v.Cases {
		t.Run(c.Name, func(t *testing.T) {
			data := caseInput(t, c)
			if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != c.InputSHA256 {
				t.Fatalf("input SHA-256 %x, want %s: the input is not built as the file says", sum, c.InputSHA256)
			}
			got := cutAll(t, data, gear, Params(c.Params))
			if !slices.Equal(got, c.Chunks) {
				t.Fatalf("chunks %v,\nwant %v", got, c.Chunks)
			}
		})
	}
}
