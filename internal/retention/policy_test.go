package retention

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sealfs/sealfs/crypt"
)

// history is a synthetic history of 45 snapshots over two years on three
// hosts: a (30, thick in the last two days), b (12, from November 2024,
// across a year's end inside ISO week 2025-W01) and c (3, the newest in the
// future). Times are UTC; now is 2026-12-01 12:00 UTC, a Tuesday in ISO
// week 2026-W49.
var history = []struct{ name, time string }{
	{"a01", "2025-01-10T08:00:00Z"},
	{"a02", "2025-03-15T09:00:00Z"},
	{"a03", "2025-03-20T10:00:00Z"},
	{"a04", "2025-07-04T12:00:00Z"},
	{"a05", "2025-12-30T23:00:00Z"}, // Tuesday of ISO week 2026-W01
	{"a06", "2026-01-02T10:00:00Z"}, // Friday of 2026-W01
	{"a07", "2026-02-14T10:00:00Z"},
	{"a08", "2026-06-01T10:00:00Z"},
	{"a09", "2026-11-02T10:00:00Z"}, // Monday, W45
	{"a10", "2026-11-08T10:00:00Z"}, // Sunday, W45
	{"a11", "2026-11-09T10:00:00Z"}, // W46
	{"a12", "2026-11-20T09:00:00Z"}, // W47
	{"a13", "2026-11-25T10:00:00Z"}, // W48
	{"a14", "2026-11-29T10:00:00Z"}, // Sunday, W48
	{"a15", "2026-11-30T08:00:00Z"}, // Monday, W49
	{"a16", "2026-11-30T08:30:00Z"},
	{"a17", "2026-11-30T09:10:00Z"},
	{"a18", "2026-11-30T09:50:00Z"},
	{"a19", "2026-11-30T23:59:00Z"},
	{"a20", "2026-12-01T00:05:00Z"},
	{"a21", "2026-12-01T00:40:00Z"},
	{"a22", "2026-12-01T01:00:00Z"},
	{"a23", "2026-12-01T09:00:00Z"},
	{"a24", "2026-12-01T09:20:00Z"},
	{"a25", "2026-12-01T09:40:00Z"},
	{"a26", "2026-12-01T10:00:00Z"},
	{"a27", "2026-12-01T10:01:00Z"},
	{"a28", "2026-12-01T11:00:00Z"},
	{"a29", "2026-12-01T11:30:00Z"},
	{"a30", "2026-12-01T11:59:00Z"},
	{"b01", "2024-11-15T10:00:00Z"}, // W46 of 2024
	{"b02", "2024-12-31T22:00:00Z"}, // Tuesday of ISO week 2025-W01
	{"b03", "2025-01-01T01:00:00Z"}, // Wednesday of 2025-W01
	{"b04", "2025-06-15T12:00:00Z"}, // Sunday, W24
	{"b05", "2025-06-30T12:00:00Z"}, // Monday, W27
	{"b06", "2026-01-05T12:00:00Z"}, // Monday, W02
	{"b07", "2026-10-31T23:00:00Z"}, // Saturday, W44
	{"b08", "2026-11-01T01:00:00Z"}, // Sunday, W44
	{"b09", "2026-11-28T12:00:00Z"}, // Saturday, W48
	{"b10", "2026-11-30T12:00:00Z"},
	{"b11", "2026-11-30T12:30:00Z"},
	{"b12", "2026-12-01T06:00:00Z"},
	{"c01", "2026-11-01T00:00:00Z"},
	{"c02", "2026-11-30T00:00:00Z"},
	{"c03", "2026-12-02T00:00:00Z"}, // after now
}

var now = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// snapshotsOf makes the history's snapshots, each named by its id's first
// bytes, with sequence numbers in the order of time across hosts, handed
// to Apply in a shuffled order (Apply must not depend on it).
func snapshotsOf(t *testing.T) ([]Snapshot, map[crypt.ID]string) {
	t.Helper()
	names := map[crypt.ID]string{}
	var out []Snapshot
	for _, h := range history {
		tm, err := time.Parse(time.RFC3339, h.time)
		if err != nil {
			t.Fatal(err)
		}
		var id crypt.ID
		copy(id[:], h.name)
		names[id] = h.name
		out = append(out, Snapshot{ID: id, Time: tm, Host: "host-" + h.name[:1]})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	for i := range out {
		out[i].Seq = uint64(i + 1)
	}
	// A fixed shuffle: reversed halves.
	slices.Reverse(out[:len(out)/2])
	slices.Reverse(out[len(out)/2:])
	return out, names
}

// TestApplyPolicies checks each rule alone and combined on the synthetic
// history against what was worked out by hand (the comments give the
// reasoning): the kept snapshots, each with its reasons in restic's order,
// newest first per group; every other snapshot is removed.
func TestApplyPolicies(t *testing.T) {
	within := func(s string) Duration {
		d, err := ParseDuration(s)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	for _, tc := range []struct {
		name   string
		policy Policy
		by     GroupBy
		keep   []string // "name: reason; reason", newest first per host, hosts in order
	}{
		{"last 3", Policy{Last: 3}, ByHost, []string{
			"a30: last snapshot", "a29: last snapshot", "a28: last snapshot",
			"b12: last snapshot", "b11: last snapshot", "b10: last snapshot",
			"c03: last snapshot", "c02: last snapshot", "c01: last snapshot",
		}},
		// Hours of December 1st on a: 11, 10, 9, then 1.
		{"hourly 4", Policy{Hourly: 4}, ByHost, []string{
			"a30: hourly snapshot", "a27: hourly snapshot", "a25: hourly snapshot", "a22: hourly snapshot",
			"b12: hourly snapshot", "b11: hourly snapshot", "b09: hourly snapshot", "b08: hourly snapshot",
			"c03: hourly snapshot", "c02: hourly snapshot", "c01: hourly snapshot",
		}},
		{"daily 3", Policy{Daily: 3}, ByHost, []string{
			"a30: daily snapshot", "a19: daily snapshot", "a14: daily snapshot",
			"b12: daily snapshot", "b11: daily snapshot", "b09: daily snapshot",
			"c03: daily snapshot", "c02: daily snapshot", "c01: daily snapshot",
		}},
		// ISO weeks: a 49, 48, 47; b 49, 48, 44; c 49 (c02 in it too), 44.
		{"weekly 3", Policy{Weekly: 3}, ByHost, []string{
			"a30: weekly snapshot", "a14: weekly snapshot", "a12: weekly snapshot",
			"b12: weekly snapshot", "b09: weekly snapshot", "b08: weekly snapshot",
			"c03: weekly snapshot", "c01: weekly snapshot",
		}},
		// a05 (2025-12-30) is in 2026-W01 with a06; b02 (2024-12-31) in
		// 2025-W01 with b03. Counts are left on b and c at their oldest,
		// which are in new weeks anyway.
		{"weekly 10", Policy{Weekly: 10}, ByHost, []string{
			"a30: weekly snapshot", "a14: weekly snapshot", "a12: weekly snapshot", "a11: weekly snapshot", "a10: weekly snapshot",
			"a08: weekly snapshot", "a07: weekly snapshot", "a06: weekly snapshot", "a04: weekly snapshot", "a03: weekly snapshot",
			"b12: weekly snapshot", "b09: weekly snapshot", "b08: weekly snapshot", "b06: weekly snapshot", "b05: weekly snapshot",
			"b04: weekly snapshot", "b03: weekly snapshot", "b01: weekly snapshot",
			"c03: weekly snapshot", "c01: weekly snapshot",
		}},
		// c01 is in c02's month, but it is the oldest and counts are left.
		{"monthly 4", Policy{Monthly: 4}, ByHost, []string{
			"a30: monthly snapshot", "a19: monthly snapshot", "a08: monthly snapshot", "a07: monthly snapshot",
			"b12: monthly snapshot", "b11: monthly snapshot", "b07: monthly snapshot", "b06: monthly snapshot",
			"c03: monthly snapshot", "c02: monthly snapshot", "c01: oldest monthly snapshot",
		}},
		// a02 shares March 2025 with a03 and is not the oldest.
		{"monthly all", Policy{Monthly: All}, ByHost, []string{
			"a30: monthly snapshot", "a19: monthly snapshot", "a08: monthly snapshot", "a07: monthly snapshot", "a06: monthly snapshot",
			"a05: monthly snapshot", "a04: monthly snapshot", "a03: monthly snapshot", "a01: monthly snapshot",
			"b12: monthly snapshot", "b11: monthly snapshot", "b07: monthly snapshot", "b06: monthly snapshot", "b05: monthly snapshot",
			"b03: monthly snapshot", "b02: monthly snapshot", "b01: monthly snapshot",
			"c03: monthly snapshot", "c02: monthly snapshot", "c01: oldest monthly snapshot",
		}},
		{"yearly 5", Policy{Yearly: 5}, ByHost, []string{
			"a30: yearly snapshot", "a05: yearly snapshot", "a01: oldest yearly snapshot",
			"b12: yearly snapshot", "b05: yearly snapshot", "b02: yearly snapshot", "b01: oldest yearly snapshot",
			"c03: yearly snapshot", "c01: oldest yearly snapshot",
		}},
		// From each host's newest snapshot not in the future: a 11-30
		// 11:59, b 11-30 06:00, c 11-29 00:00 (c03 is after it: kept).
		{"within 1d", Policy{Within: within("1d")}, ByHost, []string{
			"a30: within 1d", "a29: within 1d", "a28: within 1d", "a27: within 1d", "a26: within 1d", "a25: within 1d",
			"a24: within 1d", "a23: within 1d", "a22: within 1d", "a21: within 1d", "a20: within 1d", "a19: within 1d",
			"b12: within 1d", "b11: within 1d", "b10: within 1d",
			"c03: within 1d", "c02: within 1d",
		}},
		// A Go duration: from 09:29 on a, 03:30 on b, 11-29 21:30 on c.
		{"within 2h30m0s", Policy{Within: within("2h30m0s")}, ByHost, []string{
			"a30: within 2h30m0s", "a29: within 2h30m0s", "a28: within 2h30m0s", "a27: within 2h30m0s", "a26: within 2h30m0s", "a25: within 2h30m0s",
			"b12: within 2h30m0s",
			"c03: within 2h30m0s", "c02: within 2h30m0s",
		}},
		// Calendar: from 2025-11-01 on a and b, 2025-10-30 on c.
		{"within 1y1m", Policy{Within: within("1y1m")}, ByHost, []string{
			"a30: within 1y1m", "a29: within 1y1m", "a28: within 1y1m", "a27: within 1y1m", "a26: within 1y1m", "a25: within 1y1m",
			"a24: within 1y1m", "a23: within 1y1m", "a22: within 1y1m", "a21: within 1y1m", "a20: within 1y1m", "a19: within 1y1m",
			"a18: within 1y1m", "a17: within 1y1m", "a16: within 1y1m", "a15: within 1y1m", "a14: within 1y1m", "a13: within 1y1m",
			"a12: within 1y1m", "a11: within 1y1m", "a10: within 1y1m", "a09: within 1y1m", "a08: within 1y1m", "a07: within 1y1m",
			"a06: within 1y1m", "a05: within 1y1m",
			"b12: within 1y1m", "b11: within 1y1m", "b10: within 1y1m", "b09: within 1y1m", "b08: within 1y1m", "b07: within 1y1m", "b06: within 1y1m",
			"c03: within 1y1m", "c02: within 1y1m", "c01: within 1y1m",
		}},
		// Every rule; each counts on its own, whatever the others kept.
		// a: within 2h reaches 09:59; a19 is the second day and the
		// second month, a14 the second week, a05 the second year. c01:
		// a week left (W44), and the oldest with a year left.
		{"combined", Policy{Last: 2, Daily: 2, Weekly: 2, Monthly: 2, Yearly: 2, Within: within("2h")}, ByHost, []string{
			"a30: within 2h; last snapshot; daily snapshot; weekly snapshot; monthly snapshot; yearly snapshot",
			"a29: within 2h; last snapshot", "a28: within 2h", "a27: within 2h", "a26: within 2h",
			"a19: daily snapshot; monthly snapshot", "a14: weekly snapshot", "a05: yearly snapshot",
			"b12: within 2h; last snapshot; daily snapshot; weekly snapshot; monthly snapshot; yearly snapshot",
			"b11: last snapshot; daily snapshot; monthly snapshot", "b09: weekly snapshot", "b05: yearly snapshot",
			"c03: within 2h; last snapshot; daily snapshot; weekly snapshot; monthly snapshot; yearly snapshot",
			"c02: within 2h; last snapshot; daily snapshot; monthly snapshot",
			"c01: weekly snapshot; oldest yearly snapshot",
		}},
		{"hourly and last", Policy{Last: 1, Hourly: 2}, ByHost, []string{
			"a30: last snapshot; hourly snapshot", "a27: hourly snapshot",
			"b12: last snapshot; hourly snapshot", "b11: hourly snapshot",
			"c03: last snapshot; hourly snapshot", "c02: hourly snapshot",
		}},
		// One group: c03 (the future) is the newest day, then a30's
		// December 1st, then a19's November 30th.
		{"daily 3, one group", Policy{Daily: 3}, ByNone, []string{
			"c03: daily snapshot", "a30: daily snapshot", "a19: daily snapshot",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			snaps, names := snapshotsOf(t)
			plan, err := Apply(snaps, tc.policy, tc.by, now)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			removed := map[string]bool{}
			total := 0
			for _, g := range plan.Groups {
				for _, k := range g.Keep {
					got = append(got, names[k.ID]+": "+strings.Join(k.Reasons, "; "))
					if tc.by == ByHost && g.Host != k.Host {
						t.Errorf("%s of %s in the group of %s", names[k.ID], k.Host, g.Host)
					}
				}
				for _, s := range g.Remove {
					removed[names[s.ID]] = true
				}
				total += len(g.Keep) + len(g.Remove)
			}
			if !slices.Equal(got, tc.keep) {
				t.Errorf("kept:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.keep, "\n"))
			}
			if total != len(history) {
				t.Errorf("the plan holds %d snapshots, want %d", total, len(history))
			}
			for _, k := range tc.keep {
				if name, _, _ := strings.Cut(k, ":"); removed[name] {
					t.Errorf("%s is both kept and removed", name)
				}
			}
			if n := len(plan.Removed()); n != len(history)-len(tc.keep) {
				t.Errorf("Removed lists %d, want %d", n, len(history)-len(tc.keep))
			}
		})
	}
}

// TestApplyRefuses: an empty policy, or a negative count other than All,
// is an error, never "forget everything".
func TestApplyRefuses(t *testing.T) {
	snaps, _ := snapshotsOf(t)
	if _, err := Apply(snaps, Policy{}, ByHost, now); err != ErrEmptyPolicy {
		t.Errorf("empty policy: %v", err)
	}
	if _, err := Apply(snaps, Policy{Daily: -2}, ByHost, now); err == nil {
		t.Error("--keep-daily -2 accepted")
	}
}

// TestProtect: a snapshot the policy removes is moved to the kept ones with
// the reason given; one it keeps is left as it is.
func TestProtect(t *testing.T) {
	snaps, names := snapshotsOf(t)
	plan, err := Apply(snaps, Policy{Last: 1}, ByNone, now)
	if err != nil {
		t.Fatal(err)
	}
	var a30, c03 crypt.ID
	for id, n := range names {
		switch n {
		case "a30":
			a30 = id
		case "c03":
			c03 = id
		}
	}
	if plan.Protect(c03, "newest") {
		t.Error("c03 was kept, yet Protect says it was removed")
	}
	if !plan.Protect(a30, "newest") {
		t.Error("a30 was removed, yet Protect says it was not")
	}
	var got []string
	for _, k := range plan.Groups[0].Keep {
		got = append(got, fmt.Sprintf("%s: %s", names[k.ID], strings.Join(k.Reasons, "; ")))
	}
	if want := []string{"c03: last snapshot", "a30: newest"}; !slices.Equal(got, want) {
		t.Errorf("kept %q, want %q", got, want)
	}
	if n := len(plan.Removed()); n != len(history)-2 {
		t.Errorf("%d removed, want %d", n, len(history)-2)
	}
}

// TestAdd: a snapshot the policy did not see joins its host's group, in
// time order, or a new group in host order.
func TestAdd(t *testing.T) {
	snaps, names := snapshotsOf(t)
	var onlyB []Snapshot
	for _, s := range snaps {
		if s.Host == "host-b" {
			onlyB = append(onlyB, s)
		}
	}
	plan, err := Apply(onlyB, Policy{Last: 1}, ByHost, now)
	if err != nil {
		t.Fatal(err)
	}
	at := func(name, host, tm string) Snapshot {
		tt, _ := time.Parse(time.RFC3339, tm)
		var id crypt.ID
		copy(id[:], name)
		names[id] = name
		return Snapshot{ID: id, Time: tt, Host: host}
	}
	plan.Add(at("fork-b", "host-b", "2026-11-30T12:10:00Z"), "fork")
	plan.Add(at("fork-a", "host-a", "2026-01-01T00:00:00Z"), "fork")
	plan.Add(at("fork-c", "host-c", "2026-01-01T00:00:00Z"), "fork")
	var got []string
	for _, g := range plan.Groups {
		for _, k := range g.Keep {
			got = append(got, g.Host+" "+names[k.ID]+": "+strings.Join(k.Reasons, "; "))
		}
	}
	want := []string{"host-a fork-a: fork", "host-b b12: last snapshot", "host-b fork-b: fork", "host-c fork-c: fork"}
	if !slices.Equal(got, want) {
		t.Errorf("kept %q, want %q", got, want)
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]Duration{
		"2y5m7d3h": {Years: 2, Months: 5, Days: 7, Hours: 3},
		"5m":       {Months: 5},
		"36h":      {Hours: 36},
		"90m0s":    {Exact: 90 * time.Minute},
		"1.5h":     {Exact: 90 * time.Minute},
		"250ms":    {Exact: 250 * time.Millisecond},
		" 1d ":     {Days: 1},
	} {
		got, err := ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "3x", "1d1d", "-1d", "-5s", "h", "12", "1y-2m", "99999999999d"} {
		if d, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) = %+v, want an error", in, d)
		}
	}
	for _, s := range []string{"2y5m7d3h", "1h30m0s", "7d"} {
		d, _ := ParseDuration(s)
		if d.String() != s {
			t.Errorf("%q reads back as %q", s, d.String())
		}
	}
}
