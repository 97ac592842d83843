package worktree_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/internal/unlock"
	"github.com/sealfs/sealfs/internal/worktree"
	"github.com/sealfs/sealfs/repo"
)

func open(t *testing.T, r *repo.Repository, dir string) *worktree.Tree {
	t.Helper()
	tr, err := worktree.Open(context.Background(), r, worktree.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func writeFile(t *testing.T, tr *worktree.Tree, dir *worktree.Inode, name string, data []byte, close bool) *worktree.Handle {
	t.Helper()
	in, _, err := tr.Create(t.Context(), dir, name, worktree.NewEntry{Type: repo.NodeFile, Mode: 0o644})
	if err != nil {
		t.Fatal(err)
	}
	h, err := tr.OpenFile(in, true, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	if close {
		if err := h.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

func readFile(t *testing.T, tr *worktree.Tree, path ...string) []byte {
	t.Helper()
	in := tr.Root()
	for _, p := range path {
		var err error
		if in, _, err = tr.Lookup(t.Context(), in, p); err != nil {
			t.Fatalf("lookup %s: %v", p, err)
		}
	}
	h, err := tr.OpenFile(in, false, false)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	size := tr.Attr(in).Size
	buf := make([]byte, size)
	if n, err := h.ReadAt(t.Context(), buf, 0); (err != nil && err != io.EOF) || uint64(n) != size {
		t.Fatalf("read %d of %d: %v", n, size, err)
	}
	return buf
}

func TestCommitAndReopen(t *testing.T) {
	ctx := context.Background()
	env := testutil.NewRepo(t, repo.InitOptions{})
	work := t.TempDir()
	tr := open(t, env.Repo, work)
	dir, _, err := tr.Create(t.Context(), tr.Root(), "sub", worktree.NewEntry{Type: repo.NodeDir, Mode: 0o755})
	if err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), 300000)
	writeFile(t, tr, dir, "big", big, true)
	writeFile(t, tr, tr.Root(), "small", []byte("hello"), true)
	if _, _, err := tr.Create(t.Context(), tr.Root(), "small", worktree.NewEntry{Type: repo.NodeFile}); !errors.Is(err, syscall.EEXIST) {
		t.Fatalf("create over an existing name = %v", err)
	}
	if err := tr.Rmdir(t.Context(), tr.Root(), "sub"); !errors.Is(err, syscall.ENOTEMPTY) {
		t.Fatalf("rmdir of a full directory = %v", err)
	}
	if err := tr.Rename(t.Context(), tr.Root(), "small", dir, "moved", 0); err != nil {
		t.Fatal(err)
	}
	snap, err := tr.Commit(ctx)
	if err != nil || snap == nil {
		t.Fatalf("commit: %v, %v", snap, err)
	}
	if files, _ := tr.Pending(); files != 0 {
		t.Fatalf("%d files pending after commit", files)
	}
	// A second client on a fresh cache sees it all.
	r2, err := env.Reopen(t, t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	tr2 := open(t, r2, t.TempDir())
	if got := readFile(t, tr2, "sub", "big"); !bytes.Equal(got, big) {
		t.Fatal("big file differs")
	}
	if got := readFile(t, tr2, "sub", "moved"); string(got) != "hello" {
		t.Fatalf("moved file = %q", got)
	}
	if _, _, err := tr2.Lookup(t.Context(), tr2.Root(), "small"); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("renamed-away name still there: %v", err)
	}
}

// TestCrashReplay: changes made and closed but never committed are found
// again by the next Tree on the same work directory, and then committed.
func TestCrashReplay(t *testing.T) {
	ctx := context.Background()
	env := testutil.NewRepo(t, repo.InitOptions{})
	work := t.TempDir()
	tr := open(t, env.Repo, work)
	writeFile(t, tr, tr.Root(), "committed", []byte("v1"), true)
	if _, err := tr.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// After the commit: overwrite, create, delete, rename; then "crash".
	in, _, _ := tr.Lookup(t.Context(), tr.Root(), "committed")
	h, _ := tr.OpenFile(in, true, true)
	h.WriteAt([]byte("version two"), 0)
	h.Close()
	writeFile(t, tr, tr.Root(), "new", []byte("queued"), true)
	writeFile(t, tr, tr.Root(), "gone", []byte("x"), true)
	tr.Unlink(t.Context(), tr.Root(), "gone")
	tr.Rename(t.Context(), tr.Root(), "new", tr.Root(), "renamed", 0)
	writeFile(t, tr, tr.Root(), "open-at-crash", []byte("partial"), false) // never closed

	tr2 := open2(t, env.Repo, work)
	if got := readFile(t, tr2, "committed"); string(got) != "version two" {
		t.Fatalf("overwritten file after replay = %q", got)
	}
	if got := readFile(t, tr2, "renamed"); string(got) != "queued" {
		t.Fatalf("queued file after replay = %q", got)
	}
	if _, _, err := tr2.Lookup(t.Context(), tr2.Root(), "gone"); !errors.Is(err, syscall.ENOENT) {
		t.Fatal("deleted file came back")
	}
	if _, err := tr2.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// Replaying twice (a crash right after a replay) changes nothing.
	tr3 := open2(t, env.Repo, work)
	if got := readFile(t, tr3, "renamed"); string(got) != "queued" {
		t.Fatalf("after second replay = %q", got)
	}
	r2, _ := env.Reopen(t, t.TempDir(), false)
	tr4 := open2(t, r2, filepath.Join(t.TempDir(), "w"))
	if got := readFile(t, tr4, "committed"); string(got) != "version two" {
		t.Fatalf("remote after replayed commit = %q", got)
	}
}

func open2(t *testing.T, r *repo.Repository, dir string) *worktree.Tree { return open(t, r, dir) }

// TestTornJournal: a crash in the middle of appending leaves a torn last
// record, which replay ignores; a record damaged, dropped or moved in the
// middle stops the replay there, keeping what came before.
func TestTornJournal(t *testing.T) {
	env := testutil.NewRepo(t, repo.InitOptions{})
	work := t.TempDir()
	tr := open(t, env.Repo, work)
	writeFile(t, tr, tr.Root(), "kept", []byte("kept"), true)
	journals, _ := filepath.Glob(filepath.Join(work, "journal.*"))
	if len(journals) != 1 {
		t.Fatalf("journals: %v", journals)
	}
	f, _ := os.OpenFile(journals[0], os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte{0, 0, 1, 0, 0xde, 0xad}) // a frame of 256 bytes, 2 written
	f.Close()
	tr2 := open2(t, env.Repo, work)
	if got := readFile(t, tr2, "kept"); string(got) != "kept" {
		t.Fatalf("after a torn journal: %q", got)
	}
	for i := range 3 {
		writeFile(t, tr2, tr2.Root(), fmt.Sprintf("later%d", i), []byte("later"), true)
	}
	journals, _ = filepath.Glob(filepath.Join(work, "journal.*"))
	saved := map[string][]byte{}
	for _, j := range journals {
		saved[j], _ = os.ReadFile(j)
	}
	last := journals[len(journals)-1]
	good := saved[last]
	frames := journalFrames(t, good)
	if len(frames) < 8 {
		t.Fatalf("only %d records", len(frames))
	}
	mid := len(frames) - 3 // a record of the later files
	for _, c := range []struct {
		name string
		edit func(fr [][]byte) [][]byte
	}{
		{"flipped", func(fr [][]byte) [][]byte { fr[mid][10] ^= 1; return fr }},
		{"dropped", func(fr [][]byte) [][]byte { return append(fr[:mid:mid], fr[mid+1:]...) }},
		{"swapped", func(fr [][]byte) [][]byte { fr[mid], fr[mid+1] = fr[mid+1], fr[mid]; return fr }},
	} {
		fr := journalFrames(t, good)
		os.WriteFile(last, bytes.Join(c.edit(fr), nil), 0o600)
		var logBuf bytes.Buffer
		tr3, err := worktree.Open(context.Background(), env.Repo, worktree.Options{Dir: work, Log: slog.New(slog.NewTextHandler(&logBuf, nil))})
		if err != nil {
			t.Fatal(err)
		}
		if got := readFile(t, tr3, "kept"); string(got) != "kept" {
			t.Fatalf("%s: after a damaged journal: %q", c.name, got)
		}
		if !strings.Contains(logBuf.String(), "damaged journal") {
			t.Fatalf("%s: replay did not report the damage: %s", c.name, logBuf.String())
		}
		// The replay wrote its state as a new journal: put the test's back.
		journals, _ = filepath.Glob(filepath.Join(work, "journal.*"))
		for _, j := range journals {
			os.Remove(j)
		}
		for j, b := range saved {
			os.WriteFile(j, b, 0o600)
		}
	}
}

// journalFrames splits a sealed journal into its header (first, with the
// base record) and one piece per record.
func journalFrames(t *testing.T, b []byte) [][]byte {
	t.Helper()
	const header = 32
	var out [][]byte
	pos := header
	for pos < len(b) {
		n := 4 + int(binary.BigEndian.Uint32(b[pos:]))
		if pos+n > len(b) {
			t.Fatalf("frame at %d runs past the end", pos)
		}
		out = append(out, b[pos:pos+n])
		pos += n
	}
	out[0] = append(append([]byte(nil), b[:header]...), out[0]...)
	return out
}

// TestOverlayRewrite: changing a few bytes of a stored file downloads no
// whole file: opening it for writing reads nothing, the commit reads and
// stores only the chunks around the changes; truncation and appends too.
func TestOverlayRewrite(t *testing.T) {
	ctx := context.Background()
	env := testutil.NewRepo(t, repo.InitOptions{})
	tr := open(t, env.Repo, t.TempDir())
	want := make([]byte, 24<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range want {
		want[i] = byte(rng.Uint32())
	}
	writeFile(t, tr, tr.Root(), "f", want, true)
	if _, err := tr.Commit(ctx); err != nil {
		t.Fatal(err)
	}

	// A second client changes it in place.
	rem := testutil.NewRemote(t, env.Dir)
	r2, err := repo.Open(ctx, rem, unlock.WithCode(env.Code), repo.Options{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	env.Repo.Unlock(ctx)
	if err := r2.Lock(ctx, false); err != nil {
		t.Fatal(err)
	}
	defer r2.Unlock(ctx)
	tr2 := open(t, r2, t.TempDir())
	in, _, err := tr2.Lookup(t.Context(), tr2.Root(), "f")
	if err != nil {
		t.Fatal(err)
	}
	before := rem.Stats()
	h, err := tr2.OpenFile(in, true, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := rem.Stats().BytesGot - before.BytesGot; got != 0 {
		t.Fatalf("opening for writing downloaded %d bytes", got)
	}
	patch := bytes.Repeat([]byte("PATCH"), 20000)
	h.WriteAt(patch, 10<<20+3)
	copy(want[10<<20+3:], patch)
	h.WriteAt([]byte("tail"), int64(len(want)))
	want = append(want, "tail"...)
	// Reads see the change before any commit.
	got := make([]byte, 200)
	h.ReadAt(t.Context(), got, 10<<20-50)
	if !bytes.Equal(got, want[10<<20-50:10<<20+150]) {
		t.Fatal("read across a written range is wrong")
	}
	h.Close()
	before = rem.Stats()
	if _, err := tr2.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	after := rem.Stats()
	t.Logf("commit of a 100 KB change and an append: got %d bytes, put %d bytes", after.BytesGot-before.BytesGot, after.BytesPut-before.BytesPut)
	if got := after.BytesGot - before.BytesGot; got > 6<<20 {
		t.Fatalf("the commit downloaded %d bytes of a 24 MiB file", got)
	}
	if put := after.BytesPut - before.BytesPut; put > 6<<20 {
		t.Fatalf("the commit uploaded %d bytes", put)
	}
	// Shrink, then grow again: the cut-off part reads as zeros.
	in, _, _ = tr2.Lookup(t.Context(), tr2.Root(), "f")
	size := uint64(15<<20 + 7)
	if _, err := tr2.SetAttr(in, worktree.SetAttr{Size: &size}); err != nil {
		t.Fatal(err)
	}
	grow := uint64(16 << 20)
	if _, err := tr2.SetAttr(in, worktree.SetAttr{Size: &grow}); err != nil {
		t.Fatal(err)
	}
	want = append(want[:size], make([]byte, grow-size)...)
	if _, err := tr2.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	r3, err := env.Reopen(t, t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	tr3 := open2(t, r3, t.TempDir())
	if got := readFile(t, tr3, "f"); !bytes.Equal(got, want) {
		t.Fatalf("content after in-place changes differs (%d bytes, want %d)", len(got), len(want))
	}
}

// TestOverlayCrashReplay: an in-place change closed before a crash is
// found again, with what it overlays.
func TestOverlayCrashReplay(t *testing.T) {
	ctx := context.Background()
	env := testutil.NewRepo(t, repo.InitOptions{})
	work := t.TempDir()
	tr := open(t, env.Repo, work)
	want := bytes.Repeat([]byte("0123456789"), 500000)
	writeFile(t, tr, tr.Root(), "f", want, true)
	tr.Commit(ctx)
	in, _, _ := tr.Lookup(t.Context(), tr.Root(), "f")
	h, _ := tr.OpenFile(in, true, false)
	h.WriteAt([]byte("XYZ"), 2000000)
	h.Close()
	copy(want[2000000:], "XYZ")
	tr2 := open2(t, env.Repo, work) // the "crash": a new tree on the same work dir
	if got := readFile(t, tr2, "f"); !bytes.Equal(got, want) {
		t.Fatal("in-place change lost in replay")
	}
	if _, err := tr2.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	r3, _ := env.Reopen(t, t.TempDir(), false)
	if got := readFile(t, open2(t, r3, t.TempDir()), "f"); !bytes.Equal(got, want) {
		t.Fatal("in-place change lost on the remote")
	}
}

// TestStreamingWrite: a new file written sequentially is chunked, encrypted
// and packed while it is written: full packs go up before any commit.
func TestStreamingWrite(t *testing.T) {
	ctx := context.Background()
	env := testutil.NewRepo(t, repo.InitOptions{})
	tr := open(t, env.Repo, t.TempDir())
	in, _, err := tr.Create(t.Context(), tr.Root(), "stream", worktree.NewEntry{Type: repo.NodeFile, Mode: 0o644})
	if err != nil {
		t.Fatal(err)
	}
	h, err := tr.OpenFile(in, true, false)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	want := make([]byte, 48<<20)
	for i := range want {
		want[i] = byte(rng.Uint32())
	}
	before := env.Remote.Stats().BytesPut
	for off := 0; off < len(want); off += 1 << 20 {
		if _, err := h.WriteAt(want[off:off+1<<20], int64(off)); err != nil {
			t.Fatal(err)
		}
	}
	h.Close()
	deadline := time.Now().Add(10 * time.Second)
	for env.Remote.Stats().BytesPut-before < 32<<20 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d bytes went up while the file was written", env.Remote.Stats().BytesPut-before)
		}
		time.Sleep(10 * time.Millisecond)
	}
	mid := env.Remote.Stats().BytesPut
	if _, err := tr.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if total := env.Remote.Stats().BytesPut - before; total > int64(len(want))+(1<<20) {
		t.Fatalf("the file went up twice: %d bytes for %d", total, len(want))
	}
	t.Logf("uploaded while writing: %d bytes; at commit: %d bytes", mid-before, env.Remote.Stats().BytesPut-mid)
	r2, _ := env.Reopen(t, t.TempDir(), false)
	if got := readFile(t, open2(t, r2, t.TempDir()), "stream"); !bytes.Equal(got, want) {
		t.Fatal("streamed file differs")
	}
}
