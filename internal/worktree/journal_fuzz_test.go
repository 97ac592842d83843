package worktree

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/repo"
)

// FuzzSealedJournal: a journal file of any bytes (sealed, or the plaintext
// format of older versions) never panics the replay, and whatever it
// returns is a prefix of what a valid journal holds: a changed journal
// never yields a record that was not written. The seeds are a valid
// sealed journal and a legacy one.
func FuzzSealedJournal(f *testing.F) {
	mk, _ := crypt.NewMasterKey()
	k, _ := crypt.DeriveKeys(mk, crypt.RepoID{1})
	key := k.LocalKey()
	dir := f.TempDir()
	j, err := newJournal(dir, key, 7, 3, nil)
	if err != nil {
		f.Fatal(err)
	}
	var written []record
	for i := range 5 {
		r := record{Op: opCreate, Path: []byte(fmt.Sprintf("dir/file%d", i)), Meta: &repo.Node{Type: repo.NodeFile, Mode: 0o644}}
		if err := j.append(r); err != nil {
			f.Fatal(err)
		}
		written = append(written, r)
	}
	j.close()
	valid, err := os.ReadFile(journalName(dir, 7))
	if err != nil {
		f.Fatal(err)
	}
	base, recs, err := decodeJournal(valid, "seed", key, 7)
	if err != nil || base != 3 || !reflect.DeepEqual(recs, written) {
		f.Fatalf("the seed journal reads back as %d, %v, %v", base, recs, err)
	}
	f.Add(valid)
	f.Add([]byte(`{"op":"base","seq":1}` + "\n" + `{"op":"create","path":"YQ==","meta":{}}` + "\n"))
	f.Add([]byte(journalMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		base, recs, err := decodeJournal(b, filepath.Join("fuzz", "journal"), key, 7)
		if err != nil && !errors.Is(err, errJournalDamaged) {
			return
		}
		if len(b) > 0 && b[0] == '{' {
			return // a legacy journal: plaintext, anything goes
		}
		// Sealed records come only from the seed: what opens is a prefix.
		if base != 3 || len(recs) > len(written) || !reflect.DeepEqual(recs, written[:len(recs)]) {
			t.Fatalf("a changed journal yields %d, %v", base, recs)
		}
	})
}
