package format

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"reflect"
	"testing"

	"github.com/sealfs/sealfs/crypt"
)

// forgetVectorFile holds forget record plaintexts of each version with the
// entries they list, for a second implementation.
const forgetVectorFile = "../../testdata/vectors/forget.json"

// forgetVector is one forget record plaintext and what it reads as.
type forgetVector struct {
	Comment   string          `json:"comment"`
	Version   int             `json:"version"`
	Plaintext string          `json:"plaintext"` // hex
	Entries   []forgetVecItem `json:"entries"`
}

type forgetVecItem struct {
	Seq uint64 `json:"seq"`
	ID  string `json:"id"` // hex
}

func makeForgetVectors() []forgetVector {
	a, b, c := crypt.ID{0xaa, 1}, crypt.ID{0xbb, 2}, crypt.ID{0xcc, 3}
	v1 := []Forgotten{{Seq: 1, ID: a}, {Seq: 3, ID: b}}
	v2 := []Forgotten{{Seq: 2, ID: a}, {Seq: 2, ID: c}, {Seq: 5, ID: b}}
	items := func(es []Forgotten) (out []forgetVecItem) {
		for _, e := range es {
			out = append(out, forgetVecItem{Seq: e.Seq, ID: e.ID.String()})
		}
		return out
	}
	return []forgetVector{
		{Comment: "version 1: one snapshot per sequence number", Version: 1,
			Plaintext: hex.EncodeToString(encodeForget(forgetV1, v1)), Entries: items(v1)},
		{Comment: "version 2: what a writer writes; two snapshots of a fork share sequence number 2", Version: 2,
			Plaintext: hex.EncodeToString(EncodeForget(v2)), Entries: items(v2)},
	}
}

// TestForgetVectors: testdata/vectors/forget.json is what this code makes,
// DecodeForget reads each plaintext as the entries it lists, and a version
// 1 record with two entries of one sequence number is refused.
func TestForgetVectors(t *testing.T) {
	want := makeForgetVectors()
	if *update {
		b, _ := json.MarshalIndent(want, "", "  ")
		if err := os.WriteFile(forgetVectorFile, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(forgetVectorFile)
	if err != nil {
		t.Fatal(err)
	}
	var got []forgetVector
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s is not what this code makes (a format change needs -update and a SPEC change)", forgetVectorFile)
	}
	for _, v := range got {
		pt, _ := hex.DecodeString(v.Plaintext)
		entries, err := DecodeForget(pt)
		var items []forgetVecItem
		for _, e := range entries {
			items = append(items, forgetVecItem{Seq: e.Seq, ID: e.ID.String()})
		}
		if err != nil || !reflect.DeepEqual(items, v.Entries) {
			t.Errorf("version %d: the plaintext reads as other entries (%v)", v.Version, err)
		}
	}
	same := []Forgotten{{Seq: 2, ID: crypt.ID{1}}, {Seq: 2, ID: crypt.ID{2}}}
	if _, err := DecodeForget(encodeForget(forgetV1, same)); err == nil {
		t.Error("a version 1 record with two entries of one sequence number was read")
	}
	if _, err := DecodeForget(EncodeForget(same)); err != nil {
		t.Errorf("a version 2 record with two entries of one sequence number: %v", err)
	}
	if _, err := DecodeForget(EncodeForget([]Forgotten{same[1], same[0]})); err == nil {
		t.Error("a version 2 record with entries out of id order was read")
	}
	if _, err := DecodeForget(encodeForget(3, same[:1])); err == nil {
		t.Error("a version 3 record was read")
	}
}
