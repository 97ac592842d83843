package progress

import (
	"bytes"
	"strings"
	"testing"
)

// TestSetPlain: Set replaces what was shown (it does not add), its note
// follows the name, and nothing changes after Done.
func TestSetPlain(t *testing.T) {
	var b bytes.Buffer
	m := New(&b, false, "umount", 100<<20)
	m.Set(1, 10<<20, 100<<20, "(3 files queued)")
	m.Set(2, 50<<20, 80<<20, "(1 files queued)")
	m.Done()
	m.Set(9, 1, 1, "(after)")
	m.Done()
	want := "umount (1 files queued): 2 files, 50.0 MiB of 80.0 MiB (62%), "
	if got := b.String(); strings.Count(got, "\n") != 1 || !strings.HasPrefix(got, want) {
		t.Fatalf("got %q, want one line starting %q", got, want)
	}
}
