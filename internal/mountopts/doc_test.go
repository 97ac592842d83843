package mountopts

import (
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

// TestSystemdDocOptions: the options table of docs/SYSTEMD.md names every
// option the helper takes, and no other; the options it says are ignored
// are ignored.
func TestSystemdDocOptions(t *testing.T) {
	b, err := os.ReadFile("../../docs/SYSTEMD.md")
	if err != nil {
		t.Fatal(err)
	}
	name := regexp.MustCompile("`([a-z_][a-z_.*-]*)(=[^`]*)?`")
	var documented []string
	for _, line := range strings.Split(string(b), "\n") {
		cells := strings.Split(strings.ReplaceAll(line, `\|`, "/"), "|")
		if len(cells) < 3 || !strings.HasPrefix(line, "| `") {
			continue
		}
		for _, m := range name.FindAllStringSubmatch(cells[1], -1) {
			opt := m[1]
			if strings.Contains(cells[2], "ignored") {
				if p, err := Parse([]string{"src", "mnt", "-o", strings.ReplaceAll(opt, "*", "x")}); err != nil || len(p.Args) > 0 {
					t.Errorf("SYSTEMD.md says %s is ignored; the helper gives %v, %v", opt, p, err)
				}
				continue
			}
			documented = append(documented, opt)
		}
	}
	var known []string
	for _, o := range Options() {
		known = append(known, strings.TrimSuffix(o, "="))
	}
	sort.Strings(known)
	sort.Strings(documented)
	if !slices.Equal(documented, known) {
		t.Errorf("SYSTEMD.md documents the options %v; the helper takes %v", documented, known)
	}
}
