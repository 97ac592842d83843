package format

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/sealfs/sealfs/crypt"
)

// historyVectorFile holds history segment plaintexts with the snapshots
// they hold, for a second implementation (docs/SPEC.md §8.3).
const historyVectorFile = "../../testdata/vectors/history.json"

// historyVector is one history segment plaintext and what it reads as.
type historyVector struct {
	Comment   string           `json:"comment"`
	Plaintext string           `json:"plaintext"` // hex
	Entries   []historyVecItem `json:"entries"`
}

type historyVecItem struct {
	Seq    uint64 `json:"seq"`
	ID     string `json:"id"`     // hex
	Parent string `json:"parent"` // hex
	Tree   string `json:"tree"`   // hex
	Time   string `json:"time"`   // RFC 3339
}

func makeHistoryVectors(tb testing.TB) []historyVector {
	tb.Helper()
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 500, time.UTC)
	one := []*Snapshot{
		{ID: crypt.ID{0xa1}, Version: SnapshotForksVersion, Seq: 1, Time: t0, Host: "h", Tree: crypt.ID{0x71}, Files: 1, Bytes: 5,
			Root: &RootAttr{Mode: 0o755, MtimeNs: 1}},
		{ID: crypt.ID{0xa2}, Version: SnapshotForksVersion, Seq: 2, Time: t0.Add(time.Minute), Host: "h", Parent: crypt.ID{0xa1}, Tree: crypt.ID{0x72}},
		{ID: crypt.ID{0xa4}, Version: SnapshotForksVersion, Seq: 4, Time: t0.Add(3 * time.Minute), Host: "h", Parent: crypt.ID{0xa3}, Tree: crypt.ID{0x72},
			Forks: []crypt.ID{{0xb3}}, Prune: true},
	}
	fork := []*Snapshot{
		{ID: crypt.ID{0xc5}, Version: 1, Seq: 5, Time: t0, Host: "old", Parent: crypt.ID{0xa4}, Tree: crypt.ID{0x73}},
		{ID: crypt.ID{0xc6}, Version: SnapshotForksVersion, Seq: 5, Time: t0, Host: "other", Parent: crypt.ID{0xa4}, Tree: crypt.ID{0x74}},
	}
	var out []historyVector
	for _, c := range []struct {
		comment string
		snaps   []*Snapshot
	}{
		{"snapshots 1, 2 and 4 (3 was forgotten: a forget record holds it); 4 a prune's, recording a fork", one},
		{"two snapshots of sequence number 5 (a fork), of versions 1 and 3", fork},
	} {
		pt, err := EncodeHistory(c.snaps)
		if err != nil {
			tb.Fatal(err)
		}
		v := historyVector{Comment: c.comment, Plaintext: hex.EncodeToString(pt)}
		for _, s := range c.snaps {
			v.Entries = append(v.Entries, historyVecItem{Seq: s.Seq, ID: s.ID.String(), Parent: s.Parent.String(), Tree: s.Tree.String(),
				Time: s.Time.Format(time.RFC3339Nano)})
		}
		out = append(out, v)
	}
	return out
}

// TestHistoryVectors: testdata/vectors/history.json is what this code
// makes, DecodeHistory reads each plaintext as the snapshots it lists, and
// the encoder's and decoder's rules hold.
func TestHistoryVectors(t *testing.T) {
	want := makeHistoryVectors(t)
	if *update {
		b, _ := json.MarshalIndent(want, "", "  ")
		if err := os.WriteFile(historyVectorFile, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(historyVectorFile)
	if err != nil {
		t.Fatal(err)
	}
	var got []historyVector
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s is not what this code makes (a format change needs -update and a SPEC change)", historyVectorFile)
	}
	for i, v := range got {
		pt, _ := hex.DecodeString(v.Plaintext)
		snaps, err := DecodeHistory(pt)
		if err != nil {
			t.Fatalf("vector %d: %v", i, err)
		}
		var items []historyVecItem
		for _, s := range snaps {
			items = append(items, historyVecItem{Seq: s.Seq, ID: s.ID.String(), Parent: s.Parent.String(), Tree: s.Tree.String(),
				Time: s.Time.Format(time.RFC3339Nano)})
		}
		if !reflect.DeepEqual(items, v.Entries) {
			t.Errorf("vector %d reads as other snapshots", i)
		}
	}
}

// TestHistoryRules: what a history segment and a snapshot's history
// refuse.
func TestHistoryRules(t *testing.T) {
	s := func(id byte, seq uint64) *Snapshot {
		return &Snapshot{ID: crypt.ID{id}, Version: SnapshotForksVersion, Seq: seq, Tree: crypt.ID{9}}
	}
	for i, bad := range [][]*Snapshot{
		nil,
		{s(1, 2), s(2, 1)},
		{s(2, 1), s(1, 1)},
		{s(1, 1), s(1, 1)},
		{s(0, 1)},
	} {
		if _, err := EncodeHistory(bad); err == nil {
			t.Errorf("bad segment %d encoded", i)
		}
	}
	// A snapshot of version 4 goes in as version 3, without its index
	// objects and history.
	v4 := s(1, 9)
	v4.Version, v4.Indexes, v4.History = SnapshotHistoryVersion, []crypt.ID{{3}}, []HistoryRef{{ID: crypt.ID{4}, First: 1, Last: 8}}
	pt, err := EncodeHistory([]*Snapshot{v4})
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeHistory(pt)
	if err != nil || got[0].Version != SnapshotForksVersion || got[0].Indexes != nil || got[0].History != nil || got[0].ID != v4.ID {
		t.Fatalf("read back as %+v, %v", got, err)
	}
	for i, b := range [][]byte{
		append(pt, 0),
		pt[:len(pt)-1],
		append([]byte{2}, pt[1:]...),
		{1, 0, 0, 0, 0},
		{1, 0, 0, 0, 2},
	} {
		if _, err := DecodeHistory(b); err == nil {
			t.Errorf("bad plaintext %d decoded", i)
		}
	}
	// A snapshot's history: contiguous from 1, below its own number.
	for i, h := range [][]HistoryRef{
		{},
		{{ID: crypt.ID{1}, First: 2, Last: 3}},
		{{ID: crypt.ID{1}, First: 1, Last: 3}, {ID: crypt.ID{2}, First: 5, Last: 6}},
		{{ID: crypt.ID{1}, First: 1, Last: 3}, {ID: crypt.ID{1}, First: 4, Last: 6}},
		{{ID: crypt.ID{1}, First: 1, Last: 10}},
		{{First: 1, Last: 3}},
	} {
		snap := s(1, 10)
		snap.Version, snap.History = SnapshotHistoryVersion, h
		js, _ := json.Marshal(snap)
		if _, err := DecodeSnapshot(js); err == nil {
			t.Errorf("snapshot with bad history %d read", i)
		}
	}
	ok := s(1, 10)
	ok.Version, ok.History = SnapshotHistoryVersion, []HistoryRef{{ID: crypt.ID{1}, First: 1, Last: 3}, {ID: crypt.ID{2}, First: 4, Last: 9}}
	js, err := EncodeSnapshot(ok)
	if err != nil {
		t.Fatal(err)
	}
	if back, err := DecodeSnapshot(js); err != nil || back.Folded() != 9 {
		t.Fatalf("%v, %v", back, err)
	}
	ok.Version = SnapshotForksVersion
	js, _ = json.Marshal(ok)
	if _, err := DecodeSnapshot(js); err == nil {
		t.Error("a version 3 snapshot with history segments was read")
	}
}
