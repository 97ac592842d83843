package fusefs

import (
	"slices"
	"testing"
	"time"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/repo"
)

// snap is a snapshot with a sequence number, a time and an id whose first
// byte is idByte.
func snap(seq uint64, at time.Time, idByte byte) *repo.Snapshot {
	var id crypt.ID
	id[0], id[1] = idByte, byte(seq)
	return &repo.Snapshot{ID: id, Seq: seq, Time: at}
}

func TestSnapshotNames(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 16, 27, 49, 0, time.UTC)
	berlin := time.FixedZone("CET", 3600)
	cases := []struct {
		name  string
		snaps []*repo.Snapshot
		want  []string
	}{
		{"one a second, in UTC whatever the zone",
			[]*repo.Snapshot{snap(1, t0, 1), snap(2, t0.Add(time.Second).In(berlin), 2), snap(3, t0.Add(26*time.Hour+500*time.Millisecond), 3)},
			[]string{"2026-11-30T16-27-49", "2026-11-30T16-27-50", "2026-12-01T18-27-49"}},
		{"three in one second: the lowest sequence number has the plain name",
			[]*repo.Snapshot{snap(7, t0.Add(100*time.Millisecond), 1), snap(8, t0.Add(900*time.Millisecond), 2), snap(9, t0, 3), snap(10, t0.Add(time.Second), 4)},
			[]string{"2026-11-30T16-27-49", "2026-11-30T16-27-49-8", "2026-11-30T16-27-49-9", "2026-11-30T16-27-50"}},
		{"given out of order",
			[]*repo.Snapshot{snap(12, t0, 2), snap(11, t0, 1)},
			[]string{"2026-11-30T16-27-49-12", "2026-11-30T16-27-49"}},
		{"a fork in one second: the second of one sequence number adds its id",
			[]*repo.Snapshot{snap(4, t0, 0xaa), snap(5, t0, 0x10), snap(5, t0, 0x20), snap(5, t0.Add(time.Hour), 0x30)},
			[]string{"2026-11-30T16-27-49", "2026-11-30T16-27-49-5", "2026-11-30T16-27-49-5-2005" + "0000", "2026-11-30T17-27-49"}},
		{"a fork in different seconds keeps plain names",
			[]*repo.Snapshot{snap(5, t0, 0x10), snap(5, t0.Add(3*time.Second), 0x20)},
			[]string{"2026-11-30T16-27-49", "2026-11-30T16-27-52"}},
		{"none", nil, []string{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := snapshotNames(c.snaps)
			if !slices.Equal(got, c.want) {
				t.Fatalf("names = %q, want %q", got, c.want)
			}
		})
	}
}

// TestSnapshotNamesStable: a new snapshot, even one in the same second as
// the newest, renames none shown before; and no two names are alike.
func TestSnapshotNamesStable(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 16, 27, 49, 0, time.UTC)
	var snaps []*repo.Snapshot
	var before []string
	for seq := uint64(1); seq <= 200; seq++ {
		snaps = append(snaps, snap(seq, t0.Add(time.Duration(seq/7)*time.Second+time.Duration(seq)*time.Millisecond), byte(seq)))
		got := snapshotNames(snaps)
		if !slices.Equal(got[:len(before)], before) {
			t.Fatalf("snapshot %d renamed earlier ones: %q, were %q", seq, got[:len(before)], before)
		}
		seen := map[string]bool{}
		for _, n := range got {
			if seen[n] {
				t.Fatalf("name %q given twice", n)
			}
			seen[n] = true
		}
		before = got
	}
}

// TestSnapshotNamesShortIDClash: forks of one second whose ids begin
// alike (one in 2^32) still get names of their own: the later one adds
// its whole id.
func TestSnapshotNamesShortIDClash(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 16, 27, 49, 0, time.UTC)
	a, b, c := snap(5, t0, 0x10), snap(5, t0, 0x20), snap(5, t0, 0x20)
	c.ID[9] = 1
	got := snapshotNames([]*repo.Snapshot{a, b, c})
	base := "2026-11-30T16-27-49"
	want := []string{base, base + "-5-" + b.ID.Short(), base + "-5-" + b.ID.Short() + "-" + c.ID.String()}
	if !slices.Equal(got, want) {
		t.Fatalf("names = %q, want %q", got, want)
	}
}

// TestMountNames: while mounted a snapshot keeps its name when the first
// of its second is forgotten, and the forgotten one's name goes to no
// other snapshot, not even a fork of its second arriving later.
func TestMountNames(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 16, 27, 49, 0, time.UTC)
	base := "2026-11-30T16-27-49"
	s1, s2, s3 := snap(1, t0, 1), snap(2, t0, 2), snap(3, t0.Add(time.Second), 3)
	kept := map[crypt.ID]string{}
	retired := map[string]bool{}
	got := mountNames([]*repo.Snapshot{s1, s2, s3}, kept, retired)
	if want := []string{base, base + "-2", "2026-11-30T16-27-50"}; !slices.Equal(got, want) {
		t.Fatalf("first names = %q, want %q", got, want)
	}
	// s1 is forgotten: by the rule s2 would be plain now.
	if det := snapshotNames([]*repo.Snapshot{s2, s3}); det[0] != base {
		t.Fatalf("the rule names s2 %q", det[0])
	}
	kept[s2.ID], kept[s3.ID] = got[1], got[2]
	retired[base] = true
	if got := mountNames([]*repo.Snapshot{s2, s3}, kept, retired); got[0] != base+"-2" {
		t.Fatalf("s2 renamed to %q while mounted", got[0])
	}
	// A late fork of seq 1 in the same second: not the retired name.
	fork := snap(1, t0, 9)
	got = mountNames([]*repo.Snapshot{fork, s2, s3}, kept, retired)
	if got[0] == base || got[0] == got[1] || got[1] != base+"-2" {
		t.Fatalf("names with a late fork = %q", got)
	}
	if got[0] != base+"-1" {
		t.Fatalf("the late fork is %q, want %q", got[0], base+"-1")
	}
}
