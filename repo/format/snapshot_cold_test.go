package format

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/sealfs/sealfs/crypt"
)

// TestSnapshotColdVersion: a version 5 snapshot names cold index objects
// (one or more), with or without history segments; no other version names
// any; a history segment keeps a version 5 snapshot as version 3, without
// its index lists.
func TestSnapshotColdVersion(t *testing.T) {
	hist := []HistoryRef{{ID: crypt.ID{9}, First: 1, Last: 3}}
	cases := []struct {
		version int
		cold    []crypt.ID
		history []HistoryRef
		err     string
	}{
		{SnapshotColdVersion, []crypt.ID{{1}}, nil, ""},
		{SnapshotColdVersion, []crypt.ID{{1}, {2}}, hist, ""},
		{SnapshotColdVersion, nil, nil, "cold index objects false"},
		{SnapshotColdVersion, nil, hist, "cold index objects false"},
		{SnapshotColdVersion, []crypt.ID{}, nil, "cold index objects true"},
		{SnapshotHistoryVersion, []crypt.ID{{1}}, hist, "cold index objects true"},
		{SnapshotForksVersion, []crypt.ID{{1}}, nil, "cold index objects true"},
		{SnapshotForksVersion, nil, hist, "history segments true"},
		{SnapshotHistoryVersion, nil, nil, "history segments false"},
	}
	for _, c := range cases {
		s := &Snapshot{Version: c.version, Seq: 5, Time: time.Unix(0, 0).UTC(), Tree: crypt.ID{7}, Indexes: []crypt.ID{{8}}, Cold: c.cold, History: c.history}
		b, err := EncodeSnapshot(s)
		if err != nil {
			t.Fatal(err)
		}
		if c.cold != nil && len(c.cold) == 0 {
			// omitempty drops an empty list: write it by hand.
			b = bytes.Replace(b, []byte(`"indexes":`), []byte(`"cold":[],"indexes":`), 1)
		}
		got, err := DecodeSnapshot(b)
		if c.err == "" {
			if err != nil || len(got.Cold) != len(c.cold) || got.Version != c.version {
				t.Errorf("version %d, cold %v: %v, %+v", c.version, c.cold, err, got)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("version %d, cold %v, history %v: %v, want %q", c.version, c.cold, c.history != nil, err, c.err)
		}
	}
	s := &Snapshot{ID: crypt.ID{3}, Version: SnapshotColdVersion, Seq: 5, Time: time.Unix(0, 0).UTC(), Tree: crypt.ID{7},
		Indexes: []crypt.ID{{8}}, Cold: []crypt.ID{{1}}, History: hist}
	pt, err := EncodeHistory([]*Snapshot{s})
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeHistory(pt)
	if err != nil || len(back) != 1 || back[0].Version != SnapshotForksVersion || back[0].Cold != nil || back[0].Indexes != nil {
		t.Fatalf("a version 5 snapshot in a history segment: %v, %+v", err, back)
	}
}
