package format

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"reflect"
	"testing"

	"github.com/sealfs/sealfs/crypt"
)

// indexVectorFile holds index plaintexts with the blobs a reader finds in
// them, for a second implementation (docs/SPEC.md §7, "Order").
const indexVectorFile = "../../testdata/vectors/index.json"

// indexVector is one index plaintext, whether a reader may search it in
// place (strictly increasing), the entry it reads for each blob (sorted
// by id) and blobs it does not hold.
type indexVector struct {
	Comment   string         `json:"comment"`
	Plaintext string         `json:"plaintext"` // hex
	InPlace   bool           `json:"in_place"`
	Blobs     []indexVecItem `json:"blobs"`
	Misses    []string       `json:"misses"` // hex ids
}

type indexVecItem struct {
	ID     string `json:"id"` // hex
	Type   uint8  `json:"type"`
	Pack   string `json:"pack"` // hex
	Offset uint32 `json:"offset"`
	Length uint32 `json:"length"`
	Raw    uint32 `json:"raw_length"`
}

func indexVecItems(entries []IndexEntry) []indexVecItem {
	var out []indexVecItem
	for _, e := range entries {
		out = append(out, indexVecItem{ID: e.ID.String(), Type: uint8(e.Type), Pack: e.Pack.String(), Offset: e.Offset, Length: e.Length, Raw: e.RawLength})
	}
	return out
}

func makeIndexVectors() []indexVector {
	id := func(b0, b31 byte) crypt.ID { return crypt.ID{0: b0, 1: 0x5e, 31: b31} }
	e := func(i crypt.ID, t crypt.ObjectType, pack byte, off uint32) IndexEntry {
		return IndexEntry{ID: i, Location: Location{Type: t, Pack: crypt.ID{pack, 0xac}, Offset: off, Length: 120, RawLength: 80}}
	}
	sorted := []IndexEntry{e(id(0x10, 1), crypt.TypeDataBlob, 1, 0), e(id(0x10, 2), crypt.TypeTreeBlob, 1, 120),
		e(id(0x80, 0), crypt.TypeDataBlob, 2, 0), e(id(0xf0, 7), crypt.TypeTreeBlob, 2, 120)}
	older := []IndexEntry{sorted[3], e(id(0x10, 2), crypt.TypeTreeBlob, 9, 999), sorted[0], sorted[2], sorted[1]}
	misses := []string{id(0x10, 0).String(), id(0x10, 3).String(), id(0x7f, 255).String(), id(0xff, 0).String(), crypt.ID{}.String()}
	var out []indexVector
	for _, c := range []struct {
		comment string
		entries []IndexEntry
		inPlace bool
	}{
		{"as writers write since session 8: strictly increasing by blob id", sorted, true},
		{"an older writer's order, one blob twice: its later entry is the one read", older, false},
	} {
		out = append(out, indexVector{Comment: c.comment, Plaintext: hex.EncodeToString(EncodeIndex(c.entries)), InPlace: c.inPlace,
			Blobs: indexVecItems(sorted), Misses: misses})
	}
	return out
}

// TestIndexVectors: testdata/vectors/index.json is what this code makes,
// and a table of each plaintext finds each blob's entry and misses the
// others.
func TestIndexVectors(t *testing.T) {
	want := makeIndexVectors()
	if *update {
		b, _ := json.MarshalIndent(want, "", "  ")
		if err := os.WriteFile(indexVectorFile, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(indexVectorFile)
	if err != nil {
		t.Fatal(err)
	}
	var got []indexVector
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s is not what this code makes (a format change needs -update and a SPEC change)", indexVectorFile)
	}
	for i, v := range got {
		pt, _ := hex.DecodeString(v.Plaintext)
		tb, err := OpenIndexTable(pt)
		if err != nil {
			t.Fatalf("vector %d: %v", i, err)
		}
		var entries []IndexEntry
		for j := range tb.Len() {
			entries = append(entries, tb.Entry(j))
			if f, ok := tb.Find(tb.Entry(j).ID); !ok || f != tb.Entry(j) {
				t.Fatalf("vector %d: blob %d not found as listed", i, j)
			}
		}
		if !reflect.DeepEqual(indexVecItems(entries), v.Blobs) {
			t.Errorf("vector %d reads as other entries", i)
		}
		for _, m := range v.Misses {
			mid, _ := crypt.ParseID(m)
			if _, ok := tb.Find(mid); ok {
				t.Errorf("vector %d: blob %s found", i, m)
			}
		}
		if inPlace := &tb.b[0] == &pt[5]; len(pt) > 5 && inPlace != v.InPlace {
			t.Errorf("vector %d: searched in place %v, want %v", i, inPlace, v.InPlace)
		}
	}
}
