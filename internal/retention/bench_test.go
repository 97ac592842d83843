package retention

import (
	"testing"
	"time"
)

// BenchmarkApplyYearOfMinutes applies a typical mount policy to a year of
// minute snapshots on one host (525,600), as a mount that never thinned
// would hold.
func BenchmarkApplyYearOfMinutes(b *testing.B) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	snaps := make([]Snapshot, 365*24*60)
	for i := range snaps {
		snaps[i] = Snapshot{Seq: uint64(i + 1), Time: start.Add(time.Duration(i) * time.Minute), Host: "h"}
		snaps[i].ID[0], snaps[i].ID[1], snaps[i].ID[2] = byte(i), byte(i>>8), byte(i>>16)
	}
	now := start.Add(366 * 24 * time.Hour)
	p := Policy{Within: Duration{Days: 2}, Daily: 14, Weekly: 8, Monthly: 24}
	b.ResetTimer()
	for range b.N {
		plan, err := Apply(snaps, p, ByHost, now)
		if err != nil {
			b.Fatal(err)
		}
		if kept := len(plan.Groups[0].Keep); kept < 2*24*60 {
			b.Fatalf("kept %d", kept)
		}
	}
}
