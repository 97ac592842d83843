package repo

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"

	"github.com/sealfs/sealfs/crypt"
)

// DataSubset is which packs `check --read-data-subset` downloads and
// verifies whole (the others have their headers checked only): one of
// N of T groups, a percentage, or a byte budget.
type DataSubset struct {
	N, T    uint32  // group N of T (1 ≤ N ≤ T): see InGroup
	Percent float64 // else this share of the packs, chosen at random
	Budget  int64   // else packs chosen at random up to this many bytes
}

// ParseDataSubset parses "n/t" ("2/7"), a percentage ("5%", "2.5%") or a
// byte budget ("500M", "2G", "100k", "123": K, M, G, T are powers of 1024).
func ParseDataSubset(s string) (DataSubset, error) {
	bad := func(why string) (DataSubset, error) {
		return DataSubset{}, fmt.Errorf("read-data subset %q: %s; give n/t (\"1/7\"), a percentage (\"5%%\") or a byte budget (\"500M\")", s, why)
	}
	switch {
	case strings.Contains(s, "/"):
		a, b, _ := strings.Cut(s, "/")
		n, err1 := strconv.ParseUint(a, 10, 32)
		t, err2 := strconv.ParseUint(b, 10, 32)
		if err1 != nil || err2 != nil || n < 1 || n > t {
			return bad("n and t must be whole numbers with 1 ≤ n ≤ t")
		}
		return DataSubset{N: uint32(n), T: uint32(t)}, nil
	case strings.HasSuffix(s, "%"):
		p, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
		if err != nil || math.IsNaN(p) || p <= 0 || p > 100 {
			return bad("the percentage must be over 0 and at most 100")
		}
		return DataSubset{Percent: p}, nil
	}
	num, mult := s, int64(1)
	if i := strings.IndexAny(strings.ToUpper(s), "KMGT"); i >= 0 && (i == len(s)-1 || strings.EqualFold(s[i+1:], "B") || strings.EqualFold(s[i+1:], "iB")) {
		num, mult = s[:i], int64(1)<<(10*(1+strings.IndexByte("KMGT", strings.ToUpper(s)[i])))
	}
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil || v <= 0 || v > math.MaxInt64/mult {
		return bad("not n/t, a percentage or a positive size")
	}
	return DataSubset{Budget: v * mult}, nil
}

// InGroup reports whether pack belongs to group N of T: the first four
// bytes of its id, read as a big-endian number, modulo T, equal N-1. Pack
// ids are uniform, so the groups are about equal, and groups 1 to T
// together hold every pack exactly once.
func (d DataSubset) InGroup(pack crypt.ID) bool {
	return binary.BigEndian.Uint32(pack[:4])%d.T == d.N-1
}

// choose returns the packs of sizes to read whole.
func (d DataSubset) choose(sizes map[crypt.ID]int64) (map[crypt.ID]bool, error) {
	chosen := map[crypt.ID]bool{}
	if d.T > 0 {
		for id := range sizes {
			if d.InGroup(id) {
				chosen[id] = true
			}
		}
		return chosen, nil
	}
	ids := make([]crypt.ID, 0, len(sizes))
	for id := range sizes {
		ids = append(ids, id)
	}
	// A random order (crypto/rand: no run repeats another's choice).
	for i := len(ids) - 1; i > 0; i-- {
		j, err := rand.Int(rand.Reader, big.NewInt(int64(i+1)))
		if err != nil {
			return nil, err
		}
		ids[i], ids[j.Int64()] = ids[j.Int64()], ids[i]
	}
	if d.Percent > 0 {
		n := int(math.Ceil(float64(len(ids)) * d.Percent / 100))
		for _, id := range ids[:min(n, len(ids))] {
			chosen[id] = true
		}
		return chosen, nil
	}
	left := d.Budget
	for _, id := range ids {
		if sizes[id] <= left {
			chosen[id] = true
			left -= sizes[id]
		}
	}
	return chosen, nil
}
