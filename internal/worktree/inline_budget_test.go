package worktree_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/repo"
)

// TestInlineJournalBounded: small files closed while nothing commits (an
// offline mount) go into the journal only up to its bound of content
// (16 MiB), the rest to staging files, so that the journal a replay reads
// whole — and holds the content of in memory — stays bounded; every file
// reads back byte-exact after a crash, and after a second one (the
// replay's journal carries the records on). Before, 400 files of 60,000
// bytes made a 32 MB journal.
func TestInlineJournalBounded(t *testing.T) {
	env := testutil.NewRepo(t, repo.InitOptions{})
	work := t.TempDir()
	tr := open(t, env.Repo, work)
	want := map[string][]byte{}
	for i := range 400 {
		name := fmt.Sprintf("f%03d", i)
		data := bytes.Repeat([]byte(name), 15000) // 60,000 bytes
		writeFile(t, tr, tr.Root(), name, data, true)
		want[name] = data
	}
	if n := journalBytes(t, work); n > 24<<20 {
		t.Errorf("400 small files of 60,000 bytes: %d bytes of journal, want < 24 MiB (16 MiB of content)", n)
	}
	checkFiles(t, "before the crash", tr, want)
	tr2 := open(t, env.Repo, work) // tr never closed: a crash
	checkFiles(t, "after the crash", tr2, want)
	if n := journalBytes(t, work); n > 24<<20 {
		t.Errorf("after the replay: %d bytes of journal, want < 24 MiB", n)
	}
	tr3 := open(t, env.Repo, work)
	defer tr3.Close()
	checkFiles(t, "after a second crash", tr3, want)
}
