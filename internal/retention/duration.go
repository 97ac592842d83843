package retention

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Duration is how far back from the newest snapshot --keep-within reaches:
// calendar years, months and days, whole hours, and an exact part. restic's
// form "2y5m7d3h" fills the calendar fields (m is months, as in restic);
// a Go duration such as "90m0s" or "36h30m15s" fills Exact.
type Duration struct {
	Years, Months, Days, Hours int
	Exact                      time.Duration
}

// IsZero reports whether d reaches back no time at all.
func (d Duration) IsZero() bool { return d == Duration{} }

// Before returns the instant d before t: calendar fields by the calendar of
// t's location (time.AddDate), then hours and the exact part.
func (d Duration) Before(t time.Time) time.Time {
	return t.AddDate(-d.Years, -d.Months, -d.Days).Add(-time.Duration(d.Hours)*time.Hour - d.Exact)
}

// String gives d in the form it was parsed from: restic's for the calendar
// fields, Go's for the exact part.
func (d Duration) String() string {
	var b strings.Builder
	for _, f := range []struct {
		n    int
		unit string
	}{{d.Years, "y"}, {d.Months, "m"}, {d.Days, "d"}, {d.Hours, "h"}} {
		if f.n != 0 {
			fmt.Fprintf(&b, "%d%s", f.n, f.unit)
		}
	}
	if d.Exact != 0 {
		b.WriteString(d.Exact.String())
	}
	if b.Len() == 0 {
		return "0"
	}
	return b.String()
}

// ParseDuration reads restic's form, numbers each followed by y (years),
// m (months), d (days) or h (hours), such as "2y5m7d3h", each unit at most
// once; or, when s holds a unit only Go knows (s, ms, us, µs, ns) or a
// fraction, a Go duration ("90m0s", "1.5h"). Negative durations are
// refused.
func ParseDuration(s string) (Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Duration{}, errors.New("empty duration: give one as 2y5m7d3h (years, months, days, hours) or as Go's 90m0s")
	}
	if strings.ContainsAny(s, "s.µu") {
		exact, err := time.ParseDuration(s)
		if err != nil {
			return Duration{}, fmt.Errorf("%q is not a duration: %w", s, err)
		}
		if exact < 0 {
			return Duration{}, fmt.Errorf("%q is negative", s)
		}
		return Duration{Exact: exact}, nil
	}
	var d Duration
	seen := map[byte]bool{}
	rest := s
	for rest != "" {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 || i == len(rest) {
			return Duration{}, fmt.Errorf("%q is not a duration: write numbers each followed by y, m (months), d or h, as 2y5m7d3h, or a Go duration such as 90m0s", s)
		}
		n, err := strconv.Atoi(rest[:i])
		if err != nil || n > 1_000_000 {
			return Duration{}, fmt.Errorf("%q is not a duration: %s is too large", s, rest[:i])
		}
		unit := rest[i]
		if seen[unit] {
			return Duration{}, fmt.Errorf("%q is not a duration: unit %c is given twice", s, unit)
		}
		seen[unit] = true
		switch unit {
		case 'y':
			d.Years = n
		case 'm':
			d.Months = n
		case 'd':
			d.Days = n
		case 'h':
			d.Hours = n
		default:
			return Duration{}, fmt.Errorf("%q is not a duration: unknown unit %q (y, m for months, d, h; or a Go duration such as 90m0s)", s, unit)
		}
		rest = rest[i+1:]
	}
	return d, nil
}

// Set parses s into d (flag.Value).
func (d *Duration) Set(s string) error {
	v, err := ParseDuration(s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// Type names the flag's value in help texts (pflag.Value).
func (d *Duration) Type() string { return "duration" }
