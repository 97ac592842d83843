package worktree

import "sort"

// span is the byte range [Start, End).
type span struct{ Start, End uint64 }

// ranges is a sorted set of disjoint, non-adjacent spans.
type ranges []span

// add returns the set with [a, b) added.
func (r ranges) add(a, b uint64) ranges {
	if a >= b {
		return r
	}
	out := make(ranges, 0, len(r)+1)
	i := 0
	for ; i < len(r) && r[i].End < a; i++ {
		out = append(out, r[i])
	}
	for ; i < len(r) && r[i].Start <= b; i++ {
		a, b = min(a, r[i].Start), max(b, r[i].End)
	}
	out = append(out, span{a, b})
	return append(out, r[i:]...)
}

// clip returns the set without anything at or after n.
func (r ranges) clip(n uint64) ranges {
	out := make(ranges, 0, len(r))
	for _, s := range r {
		if s.Start >= n {
			break
		}
		out = append(out, span{s.Start, min(s.End, n)})
	}
	return out
}

// find returns the index of the span holding p, or -1, and the index of the
// first span starting after p.
func (r ranges) find(p uint64) (int, int) {
	i := sort.Search(len(r), func(i int) bool { return r[i].End > p })
	if i < len(r) && r[i].Start <= p {
		return i, i + 1
	}
	return -1, i
}
