package worktree

import (
	"flag"
	"fmt"
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

// goldenContentRecords are the records of the golden journal number 9,
// based on snapshot 5: a small file's content in a content record (SPEC
// §12.2, added in session 9), then its content as of a staging file.
func goldenContentRecords() []record {
	return []record{
		{Op: opCreate, Path: []byte("small"), Meta: &repo.Node{Type: repo.NodeFile, Mode: 0o644, MtimeNs: 1764600000000000000}, Time: 1764600000000000000},
		{Op: opStage, Path: []byte("small"), Staging: "ffeeddccbbaa99887766554433221100"},
		{Op: opContent, Path: []byte("small"), Staging: "ffeeddccbbaa99887766554433221100", Data: []byte("the whole content of a small file\n")},
		{Op: opSetattr, Path: []byte("small"), Meta: &repo.Node{Mode: 0o644, MtimeNs: 1764600000000000001, AtimeNs: 1764600000000000000, CtimeNs: 1764600000000000001, Size: 34}},
	}
}

// TestGoldenJournal: journals sealed by format v1 (docs/SPEC.md §12.2)
// under the keys of the crypt test vectors still read back. Regenerate one
// (a format change) with: go test ./worktree -run Golden/<n> -update
func TestGoldenJournal(t *testing.T) {
	for _, g := range []struct {
		n, base uint64
		recs    []record
	}{{7, 3, goldenRecords()}, {9, 5, goldenContentRecords()}} {
		t.Run(fmt.Sprint(g.n), func(t *testing.T) { goldenJournal(t, g.n, g.base, g.recs) })
	}
}

func goldenJournal(t *testing.T, n, base uint64, want []record) {
	key := testutil.VectorKeys(t, "../../testdata/vectors/crypt.json").LocalKey()
	p := journalName(goldenJournalDir, n)
	if *update {
		os.Remove(p)
		j, err := newJournal(goldenJournalDir, key, n, base, slices.Values(want[:1]))
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range want[1:] {
			if err := j.append(r); err != nil {
				t.Fatal(err)
			}
		}
		j.close()
	}
	got, recs, err := readJournal(p, key, n)
	if err != nil || got != base || !reflect.DeepEqual(recs, want) {
		t.Fatalf("the golden journal reads back as %d, %+v, %v", got, recs, err)
	}
	// Under another number it does not open.
	b, _ := os.ReadFile(p)
	other := filepath.Join(t.TempDir(), fmt.Sprintf("journal.%016d", n+1))
	os.WriteFile(other, b, 0o600)
	if _, _, err := readJournal(other, key, n+1); err == nil {
		t.Fatalf("journal %d opened as journal %d", n, n+1)
	}
}
