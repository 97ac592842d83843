package crypt

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"testing"
)

// TestGearTableVector: the gear table this package derives for the fixed
// key of testdata/vectors/chunker.json is the one the chunker vectors were
// cut with (docs/SPEC.md §3, §6.1): all 256 entries by their SHA-256, and
// the entries the file spells out.
func TestGearTableVector(t *testing.T) {
	b, err := os.ReadFile("../testdata/vectors/chunker.json")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Gear struct {
			MasterKey   string `json:"master_key"`
			Repository  string `json:"repository"`
			TableSHA256 string `json:"table_sha256"`
			Entries     []struct {
				Index int    `json:"index"`
				Value string `json:"value"`
			} `json:"entries"`
		} `json:"gear"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	var mk MasterKey
	copy(mk.b[:], mustHex(t, v.Gear.MasterKey))
	repo, err := ParseRepoID(v.Gear.Repository)
	if err != nil {
		t.Fatal(err)
	}
	k, err := DeriveKeys(mk, repo)
	if err != nil {
		t.Fatal(err)
	}
	gear := k.GearTable()
	raw := make([]byte, 0, 8*len(gear))
	for _, g := range gear {
		raw = binary.LittleEndian.AppendUint64(raw, g)
	}
	if sum := sha256.Sum256(raw); hex.EncodeToString(sum[:]) != v.Gear.TableSHA256 {
		t.Fatalf("gear table SHA-256 %x, want %s", sum, v.Gear.TableSHA256)
	}
	if len(v.Gear.Entries) == 0 {
		t.Fatal("the vector spells out no gear entries")
	}
	for _, e := range v.Gear.Entries {
		if got := fmt.Sprintf("%016x", gear[e.Index]); got != e.Value {
			t.Errorf("gear[%d] = %s, want %s", e.Index, got, e.Value)
		}
	}
}
