package worktree

import (
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/repo"
)

var update = flag.Bool("update", false, "rewrite the golden sealed journal from this code")

const goldenJournalDir = "../../testdata/vectors/local"

// goldenRecords are the records of the golden journal, number 7, based on
// snapshot 3.
func goldenRecords() []record {
	return []record{
		{Op: opCreate, Path: []byte("dir/file"), Meta: &repo.Node{Type: repo.NodeFile, Mode: 0o640, UID: 1000, GID: 1000, MtimeNs: 1764500000000000000}},
		{Op: opStage, Path: []byte("dir/file"), Staging: "00112233445566778899aabbccddeeff"},
		{Op: opRename, Path: []byte("dir/file"), To: []byte("dir/renamed")},
	}
}

// TestGoldenJournal: a journal sealed by format v1 (docs/SPEC.md §12.2)
// under the keys of the crypt test vectors still reads back. Regenerate (a
// format change) with: go test ./worktree -run Golden -update
func TestGoldenJournal(t *testing.T) {
	key := testutil.VectorKeys(t, "../../testdata/vectors/crypt.json").LocalKey()
	p := journalName(goldenJournalDir, 7)
	if *update {
		os.Remove(p)
		j, err := newJournal(goldenJournalDir, key, 7, 3, slices.Values(goldenRecords()[:1]))
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range goldenRecords()[1:] {
			if err := j.append(r); err != nil {
				t.Fatal(err)
			}
		}
		j.close()
	}
	base, recs, err := readJournal(p, key, 7)
	if err != nil || base != 3 || !reflect.DeepEqual(recs, goldenRecords()) {
		t.Fatalf("the golden journal reads back as %d, %+v, %v", base, recs, err)
	}
	// Under another number it does not open.
	b, _ := os.ReadFile(p)
	other := filepath.Join(t.TempDir(), "journal.0000000000000008")
	os.WriteFile(other, b, 0o600)
	if _, _, err := readJournal(other, key, 8); err == nil {
		t.Fatal("journal 7 opened as journal 8")
	}
}
