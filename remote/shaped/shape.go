package shaped

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Shape says how slow the link to a remote is. The zero Shape adds nothing.
type Shape struct {
	Latency time.Duration // added once before every request (a round trip)
	Up      int64         // bits per second towards the remote; 0: unlimited
	Down    int64         // bits per second from the remote; 0: unlimited
}

// IsZero reports whether s shapes nothing.
func (s Shape) IsZero() bool { return s == Shape{} }

// errSyntax is wrapped by every error of Parse.
var errSyntax = errors.New(`a shape is comma-separated key=value pairs: latency=DURATION (40ms), up=RATE, down=RATE (100Mbit; units bit, kbit, Mbit, Gbit per second)`)

// Parse reads a shape written as comma-separated key=value pairs, each key
// at most once: latency=40ms (a Go duration), up=100Mbit and down=100Mbit
// (bits per second with the unit bit, kbit, Mbit or Gbit, an optional "/s";
// a decimal number is allowed: 2.5Mbit). Missing keys shape nothing; the
// empty string is the zero Shape.
func Parse(text string) (Shape, error) {
	var s Shape
	if text == "" {
		return s, nil
	}
	seen := map[string]bool{}
	for pair := range strings.SplitSeq(text, ",") {
		key, val, ok := strings.Cut(pair, "=")
		if !ok || val == "" {
			return Shape{}, fmt.Errorf("%q: %w", pair, errSyntax)
		}
		if seen[key] {
			return Shape{}, fmt.Errorf("%q is given twice: %w", key, errSyntax)
		}
		seen[key] = true
		var err error
		switch key {
		case "latency":
			s.Latency, err = time.ParseDuration(val)
			if err == nil && s.Latency < 0 {
				err = fmt.Errorf("latency %s is negative", val)
			}
		case "up":
			s.Up, err = parseRate(val)
		case "down":
			s.Down, err = parseRate(val)
		default:
			err = fmt.Errorf("unknown key %q", key)
		}
		if err != nil {
			return Shape{}, fmt.Errorf("%w: %w", err, errSyntax)
		}
	}
	return s, nil
}

// units are the rate units Parse accepts, largest first.
var units = []struct {
	name string
	bits int64
}{{"Gbit", 1e9}, {"Mbit", 1e6}, {"kbit", 1e3}, {"bit", 1}}

// parseRate reads a rate such as 100Mbit or 2.5Mbit/s in bits per second.
func parseRate(val string) (int64, error) {
	num := strings.TrimSuffix(val, "/s")
	for _, u := range units {
		if n, ok := strings.CutSuffix(num, u.name); ok {
			f, err := strconv.ParseFloat(n, 64)
			if err != nil || !(f > 0) || f*float64(u.bits) > 1e15 || n != strings.TrimSpace(n) {
				return 0, fmt.Errorf("rate %q is not a positive number of %s", val, u.name)
			}
			bits := int64(f * float64(u.bits))
			if bits < 8 {
				return 0, fmt.Errorf("rate %q is under one byte per second", val)
			}
			return bits, nil
		}
	}
	return 0, fmt.Errorf("rate %q has no unit", val)
}

// String writes s as Parse reads it, with the largest unit that keeps the
// rate whole; the zero Shape is "".
func (s Shape) String() string {
	var parts []string
	if s.Latency != 0 {
		parts = append(parts, "latency="+s.Latency.String())
	}
	if s.Up != 0 {
		parts = append(parts, "up="+formatRate(s.Up))
	}
	if s.Down != 0 {
		parts = append(parts, "down="+formatRate(s.Down))
	}
	return strings.Join(parts, ",")
}

func formatRate(bits int64) string {
	for _, u := range units {
		if bits%u.bits == 0 {
			return strconv.FormatInt(bits/u.bits, 10) + u.name
		}
	}
	panic("unreachable: every rate is a whole number of bits")
}

// Set parses text into s (the pflag.Value interface, for a command-line
// flag).
func (s *Shape) Set(text string) error {
	v, err := Parse(text)
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// Type names the flag's value kind in help texts.
func (s *Shape) Type() string { return "shape" }
