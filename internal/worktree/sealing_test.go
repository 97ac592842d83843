package worktree

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/repo"
)

const marker = "SEALFS-PLAINTEXT-MARKER"

// grepDir fails the test if any file name or file under dir holds marker.
func grepDir(t *testing.T, dir, when string) {
	t.Helper()
	found, n, err := testutil.FindInDir(dir, []byte(marker))
	switch {
	case err != nil:
		t.Fatal(err)
	case found != "":
		t.Fatalf("%s: plaintext in the cache: %s", when, found)
	case n == 0:
		t.Fatalf("%s: no file in %s to look at", when, dir)
	}
}

func readAllOf(t *testing.T, tr *Tree, name string) []byte {
	t.Helper()
	in, _, err := tr.Lookup(t.Context(), tr.root, name)
	if err != nil {
		t.Fatalf("lookup %s: %v", name, err)
	}
	h, err := tr.OpenFile(in, false, false)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	b := make([]byte, in.meta.Size)
	if n, err := h.ReadAt(t.Context(), b, 0); n != len(b) || (err != nil && err != io.EOF) {
		t.Fatalf("read %s: %d of %d: %v", name, n, len(b), err)
	}
	return b
}

// TestWorkDirSealed: new files (small, streamed, sparse), a stored file
// changed in place, names, attributes, an open file and a crash: the work
// directory never holds a byte of plaintext, and the replay still finds
// everything.
func TestWorkDirSealed(t *testing.T) {
	ctx := context.Background()
	env := testutil.NewRepo(t, repo.InitOptions{})
	work := t.TempDir()
	tr, err := Open(ctx, env.Repo, Options{Dir: work})
	if err != nil {
		t.Fatal(err)
	}
	content := bytes.Repeat([]byte(marker+" content "), 50000) // 1.6 MB, streamed
	write := func(name string, data []byte, off int64, close bool) *Handle {
		in, _, err := tr.Lookup(t.Context(), tr.root, name)
		if err != nil {
			if in, _, err = tr.Create(t.Context(), tr.root, name, NewEntry{Type: repo.NodeFile, Mode: 0o644}); err != nil {
				t.Fatal(err)
			}
		}
		h, err := tr.OpenFile(in, true, false)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.WriteAt(data, off); err != nil {
			t.Fatal(err)
		}
		if close {
			if err := h.Close(); err != nil {
				t.Fatal(err)
			}
		}
		return h
	}
	write("stored-"+marker, content, 0, true)
	if _, err := tr.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	write("stored-"+marker, []byte(marker), 777777, true) // an overlay
	write("new-"+marker, content, 0, true)
	write("sparse-"+marker, []byte(marker), 5<<30, true)
	open := write("open-"+marker, content[:100000], 0, false)
	open.Sync()
	grepDir(t, work, "queued")
	// A crash: the next Tree replays the sealed journal and staging files.
	tr, err = Open(ctx, env.Repo, Options{Dir: work})
	if err != nil {
		t.Fatal(err)
	}
	want := append([]byte(nil), content...)
	copy(want[777777:], marker)
	if got := readAllOf(t, tr, "stored-"+marker); !bytes.Equal(got, want) {
		t.Fatal("the overlay differs after the replay")
	}
	if got := readAllOf(t, tr, "new-"+marker); !bytes.Equal(got, content) {
		t.Fatal("the new file differs after the replay")
	}
	in, _ := tr.lookupLocked(t.Context(), tr.root, "sparse-"+marker)
	if in.meta.Size != 5<<30+uint64(len(marker)) {
		t.Fatalf("sparse file size %d after the replay", in.meta.Size)
	}
	grepDir(t, work, "replayed")
	if _, err := tr.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	grepDir(t, work, "committed")
}

// TestLegacyWorkDir: the plaintext journal and staging files of an older
// sealfs are replayed, sealed, and the plaintext removed.
func TestLegacyWorkDir(t *testing.T) {
	ctx := context.Background()
	env := testutil.NewRepo(t, repo.InitOptions{})
	work := t.TempDir()
	os.MkdirAll(filepath.Join(work, stagingDir), 0o700)
	small := []byte(marker + " a queued file")
	ids := []string{"00112233445566778899aabbccddeeff", "ffeeddccbbaa99887766554433221100"}
	os.WriteFile(filepath.Join(work, stagingDir, ids[0]), small, 0o600)
	sparse, _ := os.Create(filepath.Join(work, stagingDir, ids[1]))
	sparse.WriteAt([]byte(marker), 2<<20)
	sparse.Truncate(3 << 20)
	sparse.Close()
	var j bytes.Buffer
	for _, r := range []record{
		{Op: opBase, Seq: 0},
		{Op: opCreate, Path: []byte("a"), Meta: &repo.Node{Type: repo.NodeFile, Mode: 0o644}},
		{Op: opStage, Path: []byte("a"), Staging: ids[0]},
		{Op: opCreate, Path: []byte("b"), Meta: &repo.Node{Type: repo.NodeFile, Mode: 0o600}},
		{Op: opStage, Path: []byte("b"), Staging: ids[1]},
		{Op: opStage, Path: []byte("b"), Staging: ids[1]},
	} {
		b, _ := json.Marshal(r)
		j.Write(append(b, '\n'))
	}
	os.WriteFile(journalName(work, 1), j.Bytes(), 0o600)
	tr, err := Open(ctx, env.Repo, Options{Dir: work})
	if err != nil {
		t.Fatal(err)
	}
	if got := readAllOf(t, tr, "a"); !bytes.Equal(got, small) {
		t.Fatalf("a = %q", got)
	}
	want := make([]byte, 3<<20)
	copy(want[2<<20:], marker)
	if got := readAllOf(t, tr, "b"); !bytes.Equal(got, want) {
		t.Fatal("the sparse file differs")
	}
	grepDir(t, work, "after the replay")
	for _, id := range ids {
		if _, err := os.Stat(filepath.Join(work, stagingDir, id)); !os.IsNotExist(err) {
			t.Fatalf("plaintext staging file %s left: %v", id, err)
		}
	}
	if _, err := tr.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	r2, err := env.Reopen(t, t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	tr2, err := Open(ctx, r2, Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if got := readAllOf(t, tr2, "b"); !bytes.Equal(got, want) {
		t.Fatal("the sparse file differs on the remote")
	}
}

// TestPlaintextJournalRefused: a plaintext journal planted beside sealed
// ones (by someone who can write the cache but has no key) is not
// replayed: its records would be changes nobody made through the mount.
func TestPlaintextJournalRefused(t *testing.T) {
	ctx := context.Background()
	env := testutil.NewRepo(t, repo.InitOptions{})
	work := t.TempDir()
	tr, err := Open(ctx, env.Repo, Options{Dir: work})
	if err != nil {
		t.Fatal(err)
	}
	in, _, err := tr.Create(t.Context(), tr.root, "precious", NewEntry{Type: repo.NodeFile, Mode: 0o644})
	if err != nil {
		t.Fatal(err)
	}
	h, _ := tr.OpenFile(in, true, false)
	h.WriteAt([]byte("queued"), 0)
	h.Close()
	var j bytes.Buffer
	for _, r := range []record{{Op: opBase, Seq: 0}, {Op: opUnlink, Path: []byte("precious")}} {
		b, _ := json.Marshal(r)
		j.Write(append(b, '\n'))
	}
	os.WriteFile(journalName(work, 99), j.Bytes(), 0o600)
	tr, err = Open(ctx, env.Repo, Options{Dir: work})
	if err != nil {
		t.Fatal(err)
	}
	if got := readAllOf(t, tr, "precious"); string(got) != "queued" {
		t.Fatalf("precious = %q", got)
	}
	if _, err := os.Stat(filepath.Join(work, "refused-journal.0000000000000099")); err != nil {
		t.Fatalf("the planted journal is not kept aside: %v", err)
	}
}
