package worktree

import (
	"os"
	"reflect"
	"testing"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/repo"
)

// TestJournalAppendReusesBuffers: an append reuses the journal's buffers
// (an untar appends tens of thousands of records, and their garbage was a
// quarter of the daemon's allocations), and the records read back as
// written, a large one included (not kept for the next).
func TestJournalAppendReusesBuffers(t *testing.T) {
	mk, _ := crypt.NewMasterKey()
	k, _ := crypt.DeriveKeys(mk, crypt.RepoID{1})
	key := k.LocalKey()
	dir := t.TempDir()
	j, err := newJournal(dir, key, 7, 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer j.close()
	r := attrRecord("src/cmd/go/internal/work/exec.go", &repo.Node{Mode: 0o644, MtimeNs: 1, CtimeNs: 2, Size: 12345})
	var written []record
	allocs := testing.AllocsPerRun(200, func() {
		if err := j.append(r); err != nil {
			t.Fatal(err)
		}
	})
	for range 201 {
		written = append(written, r)
	}
	big := record{Op: opCreate, Path: []byte("big"), Meta: &repo.Node{Type: repo.NodeFile, Mode: 0o644, Xattrs: []repo.Xattr{{Name: []byte("user.x"), Value: make([]byte, 100<<10)}}}}
	if err := j.append(big, r); err != nil {
		t.Fatal(err)
	}
	written = append(written, big, r)
	if cap(j.out) > journalKeep || j.pt.Cap() > journalKeep {
		t.Errorf("a large record's buffers were kept: %d and %d bytes", cap(j.out), j.pt.Cap())
	}
	b, err := os.ReadFile(journalName(dir, 7))
	if err != nil {
		t.Fatal(err)
	}
	base, recs, err := decodeJournal(b, "test", key, 7)
	if err != nil || base != 3 || !reflect.DeepEqual(recs, written) {
		t.Fatalf("read back %d records of %d, base %d: %v", len(recs), len(written), base, err)
	}
	// The record handed on, the nonce, the JSON encoder's own: a handful,
	// not its JSON, its associated data and its sealed frame (10 before).
	if allocs > 5 && !raceEnabled {
		t.Errorf("an append of one record makes %.0f allocations", allocs)
	}
}
