package worktree

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/repo"
)

// FuzzReadJournal: the journal decoder takes any bytes without panicking;
// what it returns encodes and decodes to the same records; and replaying
// them (each checked first) never panics and never touches a file outside
// the work folder, whatever the records name.
func FuzzReadJournal(f *testing.F) {
	env := testutil.NewRepo(f, repo.InitOptions{})
	seedDir := f.TempDir()
	tr, err := Open(context.Background(), env.Repo, Options{Dir: seedDir})
	if err != nil {
		f.Fatal(err)
	}
	d, _, _ := tr.Create(f.Context(), tr.Root(), "d", NewEntry{Type: repo.NodeDir, Mode: 0o755})
	in, _, _ := tr.Create(f.Context(), d, "f", NewEntry{Type: repo.NodeFile, Mode: 0o644})
	h, _ := tr.OpenFile(in, true, false)
	h.WriteAt([]byte("content"), 0)
	h.Close()
	// xattrs: a user one, an access ACL (which sets the mode), a chmod
	// (which sets the ACL), a removal.
	tr.SetXattr(in, "user.k", []byte("v"), 0)
	tr.SetXattr(in, aclAccess, encodeACL([]aclEntry{{aclUserObj, 6, 0}, {aclUser, 4, 65534}, {aclGroupObj, 4, 0}, {aclMask, 4, 0}, {aclOther, 0, 0}}), 0)
	mode := uint32(0o640)
	tr.SetAttr(in, SetAttr{Mode: &mode})
	tr.RemoveXattr(in, "user.k")
	// hard links and an exchange: a second name in another folder, the
	// folder holding the first renamed, the names exchanged, the first
	// name unlinked.
	e, _, _ := tr.Create(f.Context(), tr.Root(), "e", NewEntry{Type: repo.NodeDir, Mode: 0o755})
	tr.Link(f.Context(), in, e, "h")
	tr.Rename(f.Context(), tr.Root(), "d", tr.Root(), "d2", 0)
	tr.Create(f.Context(), e, "s", NewEntry{Type: repo.NodeSymlink, Mode: 0o777, Target: []byte("t")})
	tr.Rename(f.Context(), e, "s", tr.Root(), "d2", RenameExchange)
	tr.Rename(f.Context(), e, "h", tr.Root(), "g", 0)
	tr.Unlink(f.Context(), tr.Root(), "g")
	journals, _ := filepath.Glob(filepath.Join(seedDir, "journal.*"))
	for _, p := range journals {
		b, _ := os.ReadFile(p)
		f.Add(b)
	}
	f.Add([]byte(`{"op":"base","seq":1}` + "\n" + `{"op":"stage","path":"Zg==","staging":"../../x"}` + "\n"))
	f.Add([]byte(`{"op":"base"}` + "\n" + `{"op":"create","path":"Li4=","meta":{}}` + "\n" + `{"op":"clear"}` + "\n"))
	f.Add([]byte(`{"op":"base"}` + "\n" + `{"op":"stage","path":"Zg==","staging":"0123456789abcdef0123456789abcdef","overlay":{"base":[],"base_size":5,"base_limit":9,"written":[{"Start":3,"End":1}]}}` + "\n"))
	f.Add([]byte(`{"op":"base"}` + "\n" + `{"op":"create","path":"Zg==","meta":{"Type":1}}` + "\n" +
		`{"op":"setxattr","path":"Zg==","name":"c3lzdGVtLnBvc2l4X2FjbF9hY2Nlc3M=","value":"AgAAAA==","time":5}` + "\n" +
		`{"op":"removexattr","path":"Zg==","name":""}` + "\n"))
	// a link over a folder, of a folder, into a file, an exchange of a
	// folder with its own entry
	f.Add([]byte(`{"op":"base"}` + "\n" + `{"op":"create","path":"ZA==","meta":{"Type":2,"Mode":493}}` + "\n" +
		`{"op":"create","path":"ZC9m","meta":{"Type":1}}` + "\n" + `{"op":"create","path":"Zg==","meta":{"Type":1}}` + "\n" +
		`{"op":"link","path":"Zg==","to":"ZA=="}` + "\n" + `{"op":"link","path":"ZA==","to":"eA=="}` + "\n" +
		`{"op":"link","path":"Zg==","to":"Zi94"}` + "\n" + `{"op":"exchange","path":"ZA==","to":"ZC9m"}` + "\n" +
		`{"op":"unlink","path":"Zg=="}` + "\n"))
	// a small file's content in a content record, then staged again
	// under the same id, then made empty, and one over the limit
	f.Add([]byte(`{"op":"base"}` + "\n" + `{"op":"create","path":"Zg==","meta":{"Type":1}}` + "\n" +
		`{"op":"content","path":"Zg==","staging":"00112233445566778899aabbccddeeff","data":"aGVsbG8="}` + "\n" +
		`{"op":"stage","path":"Zg==","staging":"00112233445566778899aabbccddeeff"}` + "\n" +
		`{"op":"rename","path":"Zg==","to":"Zw=="}` + "\n" +
		`{"op":"content","path":"Zw==","staging":"00112233445566778899aabbccddeeff"}` + "\n" +
		`{"op":"content","path":"Zw==","staging":"0011223344556677889"}` + "\n"))
	f.Add([]byte{})
	key := env.Repo.LocalKey()
	f.Fuzz(func(t *testing.T, b []byte) {
		base, recs, err := decodeJournal(b, "fuzz", key, 1)
		if err != nil && !errors.Is(err, errJournalDamaged) {
			return
		}
		// Round trip: the records encode and decode to themselves.
		var again []byte
		for _, r := range append([]record{{Op: opBase, Seq: base}}, recs...) {
			line, err := legacyLine(r)
			if err != nil {
				t.Fatalf("a decoded record does not encode: %v", err)
			}
			again = append(again, line...)
		}
		base2, recs2, err := decodeJournal(again, "again", key, 1)
		if err != nil || base2 != base || len(recs2) != len(recs) {
			t.Fatalf("encoded records do not decode (%v): %d records, %d", err, len(recs), len(recs2))
		}
		var third []byte
		for _, r := range append([]record{{Op: opBase, Seq: base2}}, recs2...) {
			line, _ := legacyLine(r)
			third = append(third, line...)
		}
		if !bytes.Equal(third, again) {
			t.Fatalf("decode then encode is not stable:\n%s\n%s", again, third)
		}
		// Replay into a tree whose work folder has a sibling it must not
		// touch.
		outer := t.TempDir()
		sibling := filepath.Join(outer, "sibling")
		if err := os.WriteFile(sibling, []byte("untouched"), 0o600); err != nil {
			t.Fatal(err)
		}
		work := filepath.Join(outer, "work")
		if err := os.MkdirAll(filepath.Join(work, stagingDir), 0o700); err != nil {
			t.Fatal(err)
		}
		tr := &Tree{r: env.Repo, opts: Options{Dir: work, Inos: &Inos{}}, staged: map[*Inode]bool{}, linked: map[*Inode]bool{}, groups: map[uint64]*Inode{},
			localKey: key, stagingOpen: map[string]*stagingFile{}, inline: map[string]inlineRef{}, legacyStaging: map[string]string{}}
		tr.opts.Log = slog.New(slog.DiscardHandler)
		tr.fillsDone = sync.NewCond(&tr.mu)
		tr.root = &Inode{Ino: tr.newIno(), meta: repo.Node{Type: repo.NodeDir, Mode: 0o755}, children: map[string]*Inode{}}
		tr.replaying = true
		for _, r := range recs {
			_ = tr.apply(t.Context(), r)
		}
		tr.replaying = false
		for in := range tr.staged {
			if !validStagingID(in.staging) {
				t.Fatalf("replay staged %q", in.staging)
			}
		}
		for range tr.rewriteRecords() {
		}
		tr.removeOrphans()
		entries, _ := os.ReadDir(outer)
		if b, err := os.ReadFile(sibling); err != nil || string(b) != "untouched" || len(entries) != 2 {
			t.Fatalf("replay touched what is beside the work folder: %d entries, sibling %q, %v", len(entries), b, err)
		}
	})
}

// legacyLine encodes a record as the plaintext journals of older versions
// did: one JSON line. The round trip above runs on that format, the one a
// cache may hold without the key.
func legacyLine(r record) ([]byte, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
