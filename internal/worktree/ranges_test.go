package worktree

import (
	"fmt"
	"testing"
)

func TestRanges(t *testing.T) {
	var r ranges
	r = r.add(10, 20).add(30, 40).add(20, 25).add(50, 60).add(35, 55).add(0, 0)
	if got := fmt.Sprint(r); got != "[{10 25} {30 60}]" {
		t.Fatalf("add: %s", got)
	}
	if got := fmt.Sprint(r.clip(33)); got != "[{10 25} {30 33}]" {
		t.Fatalf("clip: %s", got)
	}
	for _, c := range []struct {
		p       uint64
		in, nxt int
	}{{5, -1, 0}, {10, 0, 1}, {24, 0, 1}, {25, -1, 1}, {59, 1, 2}, {60, -1, 2}} {
		if in, nxt := r.find(c.p); in != c.in || nxt != c.nxt {
			t.Errorf("find(%d) = %d, %d; want %d, %d", c.p, in, nxt, c.in, c.nxt)
		}
	}
}
