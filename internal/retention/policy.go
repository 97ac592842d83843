// Package retention decides which snapshots a policy keeps, with restic's
// rules (restic's forget --keep-*): snapshots are grouped (by host, or all
// together), and in each group, walking from the newest snapshot to the
// oldest, every rule keeps the newest snapshot of each of its periods (hour,
// day, ISO week, month, year; --keep-last: each snapshot) until it has kept
// its count; --keep-within keeps every snapshot made within a duration of the
// group's newest one. A rule with counts left also keeps the group's oldest
// snapshot, so that the history kept reaches as far back as it can. A
// snapshot kept by several rules is kept once, with every reason. Periods
// are those of the calendar of the location of the "now" given to Apply.
//
// Snapshots are told apart by id, never by sequence number: a repository's
// history may fork (two snapshots with one sequence number).
package retention

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sealfs/sealfs/crypt"
)

// All is the count of a rule that keeps one snapshot of every period.
const All = -1

// Policy says which snapshots to keep. A count of 0 leaves its rule out;
// All keeps one snapshot of every period.
type Policy struct {
	Last    int      // the newest n snapshots
	Hourly  int      // the newest snapshot of each of the newest n hours that have one
	Daily   int      // ... of each of the newest n days
	Weekly  int      // ... of each of the newest n ISO weeks
	Monthly int      // ... of each of the newest n months
	Yearly  int      // ... of each of the newest n years
	Within  Duration // every snapshot made within this of the group's newest
}

// Empty reports whether p has no rule: such a policy would keep nothing,
// and callers refuse it.
func (p Policy) Empty() bool { return p == Policy{} }

// Validate refuses counts below All.
func (p Policy) Validate() error {
	for _, r := range p.rules() {
		if r.count < All {
			return fmt.Errorf("--keep-%s %d: a count is 0 or more, or -1 for all", r.flag, r.count)
		}
	}
	return nil
}

// String describes p for people, as "keep 7 daily, 4 weekly snapshots and
// all within 2d".
func (p Policy) String() string {
	var parts []string
	for _, r := range p.rules() {
		switch {
		case r.count == All:
			parts = append(parts, "all "+r.flag)
		case r.count > 0:
			parts = append(parts, fmt.Sprintf("%d %s", r.count, r.flag))
		}
	}
	s := ""
	if len(parts) > 0 {
		s = strings.Join(parts, ", ") + " snapshots"
	}
	if !p.Within.IsZero() {
		if s != "" {
			s += " and "
		}
		s += "all within " + p.Within.String() + " of the newest"
	}
	if s == "" {
		return "keep nothing"
	}
	return "keep " + s
}

// rule is one counted rule: its flag's suffix, its count, the reason a
// snapshot it keeps shows, and its period.
type rule struct {
	flag   string
	count  int
	reason string
	period func(t time.Time, nr int) int
}

func (p Policy) rules() []rule {
	return []rule{
		{"last", p.Last, "last snapshot", func(_ time.Time, nr int) int { return nr }},
		{"hourly", p.Hourly, "hourly snapshot", func(t time.Time, _ int) int {
			return t.Year()*1_000_000 + int(t.Month())*10_000 + t.Day()*100 + t.Hour()
		}},
		{"daily", p.Daily, "daily snapshot", func(t time.Time, _ int) int {
			return t.Year()*10_000 + int(t.Month())*100 + t.Day()
		}},
		{"weekly", p.Weekly, "weekly snapshot", func(t time.Time, _ int) int {
			y, w := t.ISOWeek()
			return y*100 + w
		}},
		{"monthly", p.Monthly, "monthly snapshot", func(t time.Time, _ int) int { return t.Year()*100 + int(t.Month()) }},
		{"yearly", p.Yearly, "yearly snapshot", func(t time.Time, _ int) int { return t.Year() }},
	}
}

// Snapshot is what a policy looks at.
type Snapshot struct {
	ID   crypt.ID
	Seq  uint64
	Time time.Time
	Host string
	// Repeats is, for the snapshot a prune stored (docs/SPEC.md §8.2), the
	// snapshot before it, whose content it repeats; zero otherwise.
	Repeats crypt.ID
}

// GroupBy says which snapshots a policy counts together.
type GroupBy string

const (
	// ByHost applies the policy to each host's snapshots apart (restic's
	// default groups by host and paths; a sealfs snapshot has no paths).
	ByHost GroupBy = "host"
	// ByNone applies the policy to all snapshots together.
	ByNone GroupBy = "none"
)

// ParseGroupBy reads "host" or "none" ("" is "none", as restic's empty
// --group-by).
func ParseGroupBy(s string) (GroupBy, error) {
	switch GroupBy(s) {
	case ByHost:
		return ByHost, nil
	case ByNone, "":
		return ByNone, nil
	}
	return "", fmt.Errorf("--group-by %q: give host or none", s)
}

// Kept is a snapshot a plan keeps, with every reason.
type Kept struct {
	Snapshot
	Reasons []string
}

// Group is the decision for one group of snapshots, newest first.
type Group struct {
	Host   string // the group's host; "" when grouped by none
	Keep   []Kept
	Remove []Snapshot
}

// Plan is what a policy decided, group by group (sorted by host).
type Plan struct {
	Policy Policy
	By     GroupBy
	Groups []Group
	// Unfinished are snapshots an earlier forget recorded as forgotten
	// but did not delete (it was interrupted): removed whatever the
	// policy, and not counted by it.
	Unfinished []Snapshot
}

// ErrEmptyPolicy is Apply's error for a policy with no rule.
var ErrEmptyPolicy = errors.New("no policy given: name what to keep with --keep-last, --keep-hourly, --keep-daily, --keep-weekly, --keep-monthly, --keep-yearly or --keep-within (nothing was forgotten)")

// Apply decides, by p, which of snaps to keep and which to remove, in
// groups by. now bounds the newest snapshot (one from the future does not
// count as the newest for --keep-within, as in restic) and gives the
// calendar (its location) in which hours, days, weeks, months and years
// are counted.
func Apply(snaps []Snapshot, p Policy, by GroupBy, now time.Time) (Plan, error) {
	if p.Empty() {
		return Plan{}, ErrEmptyPolicy
	}
	if err := p.Validate(); err != nil {
		return Plan{}, err
	}
	key := func(s Snapshot) string {
		if by == ByHost {
			return s.Host
		}
		return ""
	}
	// One sorted copy, by group then newest first; each group is a run.
	list := slices.Clone(snaps)
	slices.SortFunc(list, func(a, b Snapshot) int {
		if c := strings.Compare(key(a), key(b)); c != 0 {
			return c
		}
		return newestFirst(a, b)
	})
	plan := Plan{Policy: p, By: by}
	for start := 0; start < len(list); {
		end := start + 1
		for end < len(list) && key(list[end]) == key(list[start]) {
			end++
		}
		plan.Groups = append(plan.Groups, applyGroup(key(list[start]), list[start:end], p, now))
		start = end
	}
	return plan, nil
}

// newestFirst orders snapshots newest first: by time, then by sequence
// number, then by id, so that equal times give one order.
func newestFirst(a, b Snapshot) int {
	if c := b.Time.Compare(a.Time); c != 0 {
		return c
	}
	if c := cmp.Compare(b.Seq, a.Seq); c != 0 {
		return c
	}
	return strings.Compare(a.ID.String(), b.ID.String())
}

// applyGroup applies p to one group's snapshots, sorted newest first.
func applyGroup(host string, list []Snapshot, p Policy, now time.Time) Group {
	g := Group{Host: host, Remove: make([]Snapshot, 0, len(list))}
	var latest time.Time
	for _, s := range list {
		if s.Time.After(latest) && s.Time.Before(now) {
			latest = s.Time
		}
	}
	cutoff := p.Within.Before(latest)
	rules := p.rules()
	last := make([]int, len(rules))
	for i := range last {
		last[i] = -1 // no period yet: the periods are never negative
	}
	for nr, s := range list {
		local := s.Time.In(now.Location())
		var reasons []string
		if !p.Within.IsZero() && s.Time.After(cutoff) {
			reasons = append(reasons, "within "+p.Within.String())
		}
		oldest := nr == len(list)-1
		for i := range rules {
			r := &rules[i]
			if r.count == 0 {
				continue
			}
			period := r.period(local, nr)
			if period == last[i] && !oldest {
				continue
			}
			reason := r.reason
			if period == last[i] {
				reason = "oldest " + reason // counts left, and the history ends here
			}
			last[i] = period
			if r.count > 0 {
				r.count--
			}
			reasons = append(reasons, reason)
		}
		if len(reasons) > 0 {
			g.Keep = append(g.Keep, Kept{Snapshot: s, Reasons: reasons})
		} else {
			g.Remove = append(g.Remove, s)
		}
	}
	return g
}

// Protect keeps the snapshot id whatever the policy said, for reason (the
// newest snapshot of a repository is never forgotten); it reports whether
// the plan had removed it.
func (p *Plan) Protect(id crypt.ID, reason string) bool {
	for gi := range p.Groups {
		g := &p.Groups[gi]
		for i, s := range g.Remove {
			if s.ID != id {
				continue
			}
			g.Remove = slices.Delete(g.Remove, i, i+1)
			g.Keep = append(g.Keep, Kept{Snapshot: s, Reasons: []string{reason}})
			slices.SortFunc(g.Keep, func(a, b Kept) int { return newestFirst(a.Snapshot, b.Snapshot) })
			return true
		}
	}
	return false
}

// Add keeps s, which the policy did not see, for reason, in the group it
// belongs to (made if the plan has none).
func (p *Plan) Add(s Snapshot, reason string) {
	g := p.groupOf(s)
	g.Keep = append(g.Keep, Kept{Snapshot: s, Reasons: []string{reason}})
	slices.SortFunc(g.Keep, func(a, b Kept) int { return newestFirst(a.Snapshot, b.Snapshot) })
}

// Drop adds s to the snapshots the plan removes, in its group.
func (p *Plan) Drop(s Snapshot) {
	g := p.groupOf(s)
	g.Remove = append(g.Remove, s)
	slices.SortFunc(g.Remove, newestFirst)
}

// groupOf returns the group s belongs to in the plan, made (in host order)
// if the plan has none.
func (p *Plan) groupOf(s Snapshot) *Group {
	host := ""
	if p.By == ByHost {
		host = s.Host
	}
	i, found := slices.BinarySearchFunc(p.Groups, host, func(g Group, h string) int { return strings.Compare(g.Host, h) })
	if !found {
		p.Groups = slices.Insert(p.Groups, i, Group{Host: host})
	}
	return &p.Groups[i]
}

// Removed lists every snapshot the plan removes, oldest first.
func (p Plan) Removed() []Snapshot {
	out := slices.Clone(p.Unfinished)
	for _, g := range p.Groups {
		out = append(out, g.Remove...)
	}
	slices.SortFunc(out, func(a, b Snapshot) int { return newestFirst(b, a) })
	return out
}
