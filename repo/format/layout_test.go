package format

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/sealfs/sealfs/crypt"
)

// TestMetadataName: only the exact names the repository gives its
// metadata objects are accepted (issue 8, defect 5).
func TestMetadataName(t *testing.T) {
	id := crypt.ID{0xab, 0xcd, 3}
	for _, name := range []string{ConfigName, SlotName(id), SnapshotName(id), ForgetName(id), IndexName(id), HistoryName(id)} {
		if !MetadataName(name) {
			t.Errorf("%q refused", name)
		}
	}
	hex := id.String()
	for _, name := range []string{
		"", LeaseName, PackName(id), "config/", "/config", "keys/" + strings.ToUpper(hex), "keys/" + hex + "/",
		"keys//" + hex, "keys/../" + hex, "data/" + hex, "snapshots/" + hex[:62], "snapshots/" + hex + "00",
		"index/" + hex + "\x00", "index\\" + hex, "keys/" + hex + "/../../x", "../" + hex,
		"keys/forget/" + hex, "index/forget/" + hex, "snapshots/forget/forget/" + hex, "snapshots/forget/../" + hex,
		"snapshots/Forget/" + hex, "snapshots/forget//" + hex, "forget/" + hex,
		"history/" + strings.ToUpper(hex), "history/forget/" + hex, "history/" + hex + "/", "snapshots/history/" + hex,
	} {
		if MetadataName(name) {
			t.Errorf("%q accepted", name)
		}
	}
}

// snapshotNameVectorFile holds snapshot object names (docs/SPEC.md §2)
// and what they parse as, for a second implementation.
const snapshotNameVectorFile = "../../testdata/vectors/names.json"

type snapshotNameVector struct {
	Comment string `json:"comment"`
	Name    string `json:"name"`
	Valid   bool   `json:"valid"`
	Seq     uint64 `json:"seq,omitempty"` // 0: not in the name (version 1)
	ID      string `json:"id,omitempty"`
}

func makeSnapshotNameVectors() []snapshotNameVector {
	id := crypt.ID{0x5e, 0xa1, 0xf5, 0x01}
	hex := id.String()
	return []snapshotNameVector{
		{Comment: "version 2: sequence number 1", Name: SnapshotSeqName(1, id), Valid: true, Seq: 1, ID: hex},
		{Comment: "version 2: sequence number 1440", Name: SnapshotSeqName(1440, id), Valid: true, Seq: 1440, ID: hex},
		{Comment: "version 2: the largest sequence number", Name: SnapshotSeqName(1<<64-1, id), Valid: true, Seq: 1<<64 - 1, ID: hex},
		{Comment: "version 1: the id alone, sequence number only inside", Name: SnapshotName(id), Valid: true, ID: hex},
		{Comment: "sequence number 0", Name: "snapshots/00000000000000000000-" + hex},
		{Comment: "sequence number not 20 digits", Name: "snapshots/1-" + hex},
		{Comment: "sequence number over 2^64-1", Name: "snapshots/18446744073709551616-" + hex},
		{Comment: "sign in the number", Name: "snapshots/+0000000000000000001-" + hex},
		{Comment: "upper-case id", Name: "snapshots/00000000000000000001-" + strings.ToUpper(hex)},
		{Comment: "two dashes", Name: "snapshots/00000000000000000001--" + hex},
		{Comment: "short id", Name: "snapshots/00000000000000000001-" + hex[:62]},
		{Comment: "a forget record is not a snapshot", Name: ForgetName(id)},
	}
}

// TestSnapshotNameVectors: testdata/vectors/names.json is what this code
// makes, and ParseSnapshotName reads each name as it says.
func TestSnapshotNameVectors(t *testing.T) {
	want := makeSnapshotNameVectors()
	if *update {
		b, _ := json.MarshalIndent(want, "", "  ")
		if err := os.WriteFile(snapshotNameVectorFile, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(snapshotNameVectorFile)
	if err != nil {
		t.Fatal(err)
	}
	var got []snapshotNameVector
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s is not what this code makes (a format change needs -update and a SPEC change)", snapshotNameVectorFile)
	}
	for _, v := range got {
		seq, id, ok := ParseSnapshotName(v.Name)
		if ok != v.Valid || (ok && (seq != v.Seq || id.String() != v.ID)) {
			t.Errorf("%s (%s) parses as %d %s %v", v.Name, v.Comment, seq, id, ok)
		}
		if ok != MetadataName(v.Name) && !IsForgetName(v.Name) {
			t.Errorf("%s: MetadataName says %v", v.Name, !ok)
		}
	}
}
