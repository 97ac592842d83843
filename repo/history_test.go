package repo

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sealfs/sealfs/crypt"
)

// TestVerifyChainTree: history is a tree (SPEC §8, "The chain"). A fork
// (two snapshots with one sequence number) is accepted and its snapshots
// are told apart from the main line; a missing parent, a gap, a forgotten
// snapshot above the newest, a recorded fork deleted, a parent of another
// number are integrity errors.
func TestVerifyChainTree(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	id := func(n byte) crypt.ID { return crypt.ID{n} }
	// snap makes snapshot n (id n) with sequence number seq, parent p (0:
	// none), at minute n, recording the forks given.
	snap := func(n byte, seq uint64, p byte, forks ...byte) *Snapshot {
		s := &Snapshot{Seq: seq, Time: t0.Add(time.Duration(n) * time.Minute), Tree: id(0xee), Indexes: []crypt.ID{id(0x80 + n)}}
		s.ID = id(n)
		if p != 0 {
			s.Parent = id(p)
		}
		for _, f := range forks {
			s.Forks = append(s.Forks, id(f))
		}
		return s
	}
	type forgotten map[byte]uint64
	for _, c := range []struct {
		name   string
		snaps  []*Snapshot
		forgot forgotten
		head   byte   // the newest snapshot
		forks  []byte // the snapshots off the main line
		err    string // "" for none
	}{
		{name: "one line", snaps: []*Snapshot{snap(1, 1, 0), snap(2, 2, 1), snap(3, 3, 2)}, head: 3},
		{name: "fork below the head", snaps: []*Snapshot{snap(1, 1, 0), snap(2, 2, 1), snap(4, 2, 1), snap(3, 3, 2)}, head: 3, forks: []byte{4}},
		{name: "fork at the head: the later time wins", snaps: []*Snapshot{snap(1, 1, 0), snap(2, 2, 1), snap(4, 2, 1)}, head: 4, forks: []byte{2}},
		{name: "fork of the first snapshot", snaps: []*Snapshot{snap(1, 1, 0), snap(5, 1, 0), snap(2, 2, 1)}, head: 2, forks: []byte{5}},
		{name: "fork two snapshots long", snaps: []*Snapshot{snap(1, 1, 0), snap(2, 2, 1), snap(3, 3, 2), snap(6, 2, 1), snap(7, 3, 6), snap(8, 4, 3)}, head: 8, forks: []byte{6, 7}},
		{name: "fork recorded by the head", snaps: []*Snapshot{snap(1, 1, 0), snap(2, 2, 1), snap(4, 2, 1), snap(3, 3, 2, 4)}, head: 3, forks: []byte{4}},
		{name: "recorded fork forgotten", snaps: []*Snapshot{snap(1, 1, 0), snap(2, 2, 1), snap(3, 3, 2, 4)}, forgot: forgotten{4: 2}, head: 3},
		{name: "main line's snapshot forgotten, the fork's kept", snaps: []*Snapshot{snap(1, 1, 0), snap(4, 2, 1), snap(3, 3, 2, 4)}, forgot: forgotten{2: 2}, head: 3, forks: []byte{4}},
		{name: "both snapshots of a number forgotten", snaps: []*Snapshot{snap(1, 1, 0), snap(3, 3, 2, 4)}, forgot: forgotten{2: 2, 4: 2}, head: 3},
		{name: "recorded fork deleted", snaps: []*Snapshot{snap(1, 1, 0), snap(2, 2, 1), snap(3, 3, 2, 4)}, head: 3, err: "records it as a fork, but it is missing"},
		{name: "fork with a missing parent", snaps: []*Snapshot{snap(1, 1, 0), snap(2, 2, 1), snap(3, 3, 2), snap(4, 3, 9)}, head: 4, forks: []byte{2, 3}, err: "its parent 09000000 is missing"},
		{name: "main line's parent deleted beside a fork", snaps: []*Snapshot{snap(1, 1, 0), snap(4, 2, 1), snap(3, 3, 2)}, head: 3, forks: []byte{4}, err: "its parent 02000000 is missing"},
		{name: "gap", snaps: []*Snapshot{snap(1, 1, 0), snap(3, 3, 2)}, head: 3, err: "snapshot 2 is missing"},
		{name: "parent of another number", snaps: []*Snapshot{snap(1, 1, 0), snap(2, 2, 1), snap(3, 3, 1)}, head: 3, forks: []byte{2}, err: "which is snapshot 1, not 2"},
		{name: "first snapshot with a parent", snaps: []*Snapshot{snap(1, 1, 7)}, head: 1, err: "it is snapshot 1, but its parent"},
		{name: "forgotten above the newest", snaps: []*Snapshot{snap(1, 1, 0), snap(2, 2, 1)}, forgot: forgotten{3: 3}, head: 2, err: "no later snapshot is left"},
		{name: "forgotten fork is the newest (the newest deleted)", snaps: []*Snapshot{snap(1, 1, 0), snap(4, 2, 1)}, forgot: forgotten{4: 2}, head: 4, err: "the newest snapshot, 2, is recorded as forgotten"},
		{name: "forgotten under another number", snaps: []*Snapshot{snap(1, 1, 0), snap(2, 2, 1), snap(3, 3, 2)}, forgot: forgotten{2: 1}, head: 3, err: "a forget record gives it 1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			forgot := map[crypt.ID]uint64{}
			for n, seq := range c.forgot {
				forgot[id(n)] = seq
			}
			snaps := append([]*Snapshot(nil), c.snaps...)
			sortSnapshots(snaps)
			if got := snaps[len(snaps)-1].ID; got != id(c.head) {
				t.Errorf("head %s, want %s", got.Short(), id(c.head).Short())
			}
			var forks []byte
			for _, s := range forksOf(snaps, forgot, 0) {
				forks = append(forks, s.ID[0])
			}
			if string(forks) != string(c.forks) {
				t.Errorf("forks %v, want %v", forks, c.forks)
			}
			err := errors.Join(verifyChain(snaps, forgot, 0)...)
			switch {
			case c.err == "" && err != nil:
				t.Errorf("refused: %v", err)
			case c.err != "" && (!errors.Is(err, ErrIntegrity) || !strings.Contains(err.Error(), c.err)):
				t.Errorf("got %v, want an integrity error with %q", err, c.err)
			}
		})
	}
}

// TestHeadOrder: of two snapshots with the highest sequence number, the
// head is the later one, then the greater id; every client picks the same.
func TestHeadOrder(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	a := &Snapshot{ID: crypt.ID{9}, Seq: 2, Time: t0.Add(time.Second)}
	b := &Snapshot{ID: crypt.ID{1}, Seq: 2, Time: t0}
	c := &Snapshot{ID: crypt.ID{2}, Seq: 2, Time: t0}
	d := &Snapshot{ID: crypt.ID{3}, Seq: 1, Time: t0.Add(time.Hour)}
	for _, order := range [][]*Snapshot{{a, b, c, d}, {d, c, b, a}, {b, d, a, c}} {
		snaps := append([]*Snapshot(nil), order...)
		sortSnapshots(snaps)
		if snaps[0] != d || snaps[1] != b || snaps[2] != c || snaps[3] != a {
			t.Fatalf("sorted as %v %v %v %v", snaps[0].ID.Short(), snaps[1].ID.Short(), snaps[2].ID.Short(), snaps[3].ID.Short())
		}
	}
}
