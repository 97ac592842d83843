package repo

import (
	"crypto/rand"
	"testing"

	"github.com/sealfs/sealfs/crypt"
)

func TestParseDataSubset(t *testing.T) {
	good := map[string]DataSubset{
		"1/3": {N: 1, T: 3}, "7/7": {N: 7, T: 7}, "5%": {Percent: 5}, "2.5%": {Percent: 2.5}, "100%": {Percent: 100},
		"500M": {Budget: 500 << 20}, "2G": {Budget: 2 << 30}, "100k": {Budget: 100 << 10}, "1GiB": {Budget: 1 << 30}, "123": {Budget: 123},
	}
	for s, want := range good {
		if got, err := ParseDataSubset(s); err != nil || got != want {
			t.Errorf("%q: %+v, %v; want %+v", s, got, err, want)
		}
	}
	for _, s := range []string{"", "0/3", "4/3", "1/0", "/3", "1/", "a/b", "1/3/4", "-1/3", "0%", "-5%", "101%", "NaN%", "x%", "abc", "0", "-5M", "5X", "M", "1.5G", "9999999999T"} {
		if got, err := ParseDataSubset(s); err == nil {
			t.Errorf("%q: %+v, want an error", s, got)
		}
	}
}

// TestDataSubsetGroups: groups 1/t..t/t choose every pack exactly once;
// a percentage and a budget choose as many as they say.
func TestDataSubsetGroups(t *testing.T) {
	sizes := map[crypt.ID]int64{}
	for range 1000 {
		var id crypt.ID
		rand.Read(id[:])
		sizes[id] = 100
	}
	for _, total := range []uint32{1, 2, 3, 7} {
		seen := map[crypt.ID]int{}
		for n := uint32(1); n <= total; n++ {
			c, err := DataSubset{N: n, T: total}.choose(sizes)
			if err != nil {
				t.Fatal(err)
			}
			if total > 1 && (len(c) < 1000/int(total)/2 || len(c) > 1000/int(total)*2) {
				t.Errorf("group %d/%d has %d of 1000 packs", n, total, len(c))
			}
			for id := range c {
				seen[id]++
			}
		}
		for id := range sizes {
			if seen[id] != 1 {
				t.Fatalf("t=%d: pack %s chosen %d times", total, id.Short(), seen[id])
			}
		}
	}
	if c, _ := (DataSubset{Percent: 2.5}).choose(sizes); len(c) != 25 {
		t.Errorf("2.5%% chose %d of 1000", len(c))
	}
	if c, _ := (DataSubset{Budget: 1050}).choose(sizes); len(c) != 10 {
		t.Errorf("a 1050-byte budget chose %d packs of 100 bytes", len(c))
	}
}
