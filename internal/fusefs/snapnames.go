package fusefs

import (
	"bytes"
	"cmp"
	"slices"
	"strconv"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/repo"
)

// snapshotTimeLayout names a snapshot's folder in the snapshots view: its
// time in UTC to the second, without colons (which some tools and every
// Windows share refuse in names).
const snapshotTimeLayout = "2006-01-02T15-04-05"

// snapshotNames returns the folder name of each of snaps, in their order
// (docs/CLI.md, "Old versions"): the snapshot's time in UTC,
// 2026-11-30T16-27-49. Of the snapshots taken in one second, the one with
// the lowest sequence number (then id) has the plain name and each other
// one the name followed by -SEQ; a fork (two snapshots with one sequence
// number in one second) adds -ID, the first 8 hex digits of its id, to
// all but the first of them. A name depends only on the snapshots of its
// second, so a new snapshot, which has a higher sequence number than all
// before it, never renames one shown already; forgetting the first
// snapshot of a second would, so a mount keeps the names it has shown
// (mountNames).
func snapshotNames(snaps []*repo.Snapshot) []string {
	bySecond := make(map[string][]int, len(snaps))
	bases := make([]string, len(snaps))
	for i, s := range snaps {
		bases[i] = s.Time.UTC().Format(snapshotTimeLayout)
		bySecond[bases[i]] = append(bySecond[bases[i]], i)
	}
	names := make([]string, len(snaps))
	used := make(map[string]bool, len(snaps))
	for i := range snaps {
		group := bySecond[bases[i]]
		if len(group) == 1 {
			names[i] = bases[i]
			used[names[i]] = true
			continue
		}
		if names[group[0]] != "" {
			continue // named with its group
		}
		slices.SortFunc(group, func(a, b int) int {
			if c := cmp.Compare(snaps[a].Seq, snaps[b].Seq); c != 0 {
				return c
			}
			return bytes.Compare(snaps[a].ID[:], snaps[b].ID[:])
		})
		for k, j := range group {
			switch {
			case k == 0:
				names[j] = bases[j]
			case snaps[group[k-1]].Seq == snaps[j].Seq:
				names[j] = bases[j] + "-" + strconv.FormatUint(snaps[j].Seq, 10) + "-" + snaps[j].ID.Short()
			default:
				names[j] = bases[j] + "-" + strconv.FormatUint(snaps[j].Seq, 10)
			}
			used[names[j]] = true
		}
	}
	return uniqueNames(snaps, names, used)
}

// uniqueNames gives a name taken twice (forks of one second whose ids
// begin with the same 8 hex digits) the snapshot's whole id as well, so
// that every folder has one name of its own.
func uniqueNames(snaps []*repo.Snapshot, names []string, used map[string]bool) []string {
	if len(used) == len(names) {
		return names
	}
	seen := make(map[string]bool, len(names))
	for i, n := range names {
		if seen[n] {
			names[i] = n + "-" + snaps[i].ID.String()
		}
		seen[names[i]] = true
	}
	return names
}

// mountNames returns the folder name of each of snaps, in their order, for
// a mount that has shown the snapshots of kept (by id) under those names
// and, before, the names in retired for snapshots gone since: a snapshot
// keeps its name while the mount runs, and a name once shown never
// passes to another snapshot. A new snapshot has its snapshotNames name
// unless that is taken; then its time with -SEQ, then with -SEQ-ID, then
// with -SEQ and its whole id.
func mountNames(snaps []*repo.Snapshot, kept map[crypt.ID]string, retired map[string]bool) []string {
	names := snapshotNames(snaps)
	taken := make(map[string]bool, len(snaps))
	for _, s := range snaps {
		if n, ok := kept[s.ID]; ok {
			taken[n] = true
		}
	}
	for i, s := range snaps {
		if n, ok := kept[s.ID]; ok {
			names[i] = n
			continue
		}
		base := s.Time.UTC().Format(snapshotTimeLayout) + "-" + strconv.FormatUint(s.Seq, 10)
		for _, n := range []string{names[i], base, base + "-" + s.ID.Short(), base + "-" + s.ID.String()} {
			if !taken[n] && !retired[n] {
				names[i] = n
				break
			}
		}
		taken[names[i]] = true
	}
	return names
}
