package repo_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sealfs/sealfs/chunker"
	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/repo"
	"github.com/sealfs/sealfs/repo/format"
)

var writeGolden = flag.Bool("write-golden", false,
	"write the golden repository of this format version, if there is none yet (never regenerate an existing one)")

// goldenPiece is a run of a file's content: bytes, or a hole of zeros.
type goldenPiece struct {
	data []byte
	hole uint64
}

// goldenFile is an entry of a golden snapshot, by its path.
type goldenFile struct {
	path    string
	node    format.Node // metadata; Name, Size, Content and Subtree are filled in
	content []goldenPiece
}

// Times of the golden entries: 2025-12-01 00:00:00 UTC, and a second later.
const (
	goldenMtime = int64(1764547200) * 1e9
	goldenAtime = goldenMtime + 1e9
)

func gFile(path string, mode uint32, content ...goldenPiece) goldenFile {
	return goldenFile{path: path, node: format.Node{Type: format.NodeFile, Mode: mode, UID: 1000, GID: 1000, MtimeNs: goldenMtime, AtimeNs: goldenAtime}, content: content}
}

func gNode(path string, typ format.NodeType, mode uint32) goldenFile {
	return goldenFile{path: path, node: format.Node{Type: typ, Mode: mode, UID: 1000, GID: 1000, MtimeNs: goldenMtime, AtimeNs: goldenAtime}}
}

func data(b []byte) goldenPiece   { return goldenPiece{data: b} }
func text(s string) goldenPiece   { return goldenPiece{data: []byte(s)} }
func hole(n uint64) goldenPiece   { return goldenPiece{hole: n} }
func zeros(n int) goldenPiece     { return goldenPiece{data: make([]byte, n)} }
func (g goldenFile) size() uint64 { return uint64(len(g.bytes())) }

func (g goldenFile) bytes() []byte {
	var b []byte
	for _, p := range g.content {
		b = append(b, p.data...)
		b = append(b, make([]byte, p.hole)...)
	}
	return b
}

// pseudoRandom returns n incompressible bytes, the same for the same seed.
func pseudoRandom(seed byte, n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{seed}).Read(b)
	return b
}

// readme is compressible text of several chunks.
func readme() []byte {
	var b strings.Builder
	for i := range 400 {
		fmt.Fprintf(&b, "line %03d: sealfs keeps backups end-to-end encrypted on storage that cannot read them.\n", i)
	}
	return []byte(b.String())
}

// goldenFirst is the tree of snapshot 1: every kind of entry the tree
// format carries.
func goldenFirst() []goldenFile {
	hardA, hardB := gFile("hard-a", 0o644, text("hard linked\n")), gFile("docs/hard-b", 0o644, text("hard linked\n"))
	hardA.node.LinkGroup, hardB.node.LinkGroup = 1, 1
	docs := gNode("docs", format.NodeDir, 0o755)
	docs.node.Xattrs = []format.Xattr{{Name: []byte("user.dir"), Value: []byte("1")}}
	xattrs := gFile("xattrs.txt", 0o644, text("a file with extended attributes\n"))
	xattrs.node.Xattrs = []format.Xattr{
		{Name: []byte("user.binary"), Value: []byte{0, 1, 2, 0xff}},
		{Name: []byte("user.comment"), Value: []byte("golden")},
		{Name: []byte("user.empty"), Value: nil},
	}
	link, dangling := gNode("link", format.NodeSymlink, 0o777), gNode("dangling", format.NodeSymlink, 0o777)
	link.node.Target, dangling.node.Target = []byte("hello.txt"), []byte("../../nowhere/at all")
	null, sda := gNode("null", format.NodeCharDev, 0o666), gNode("sda", format.NodeBlockDev, 0o660)
	null.node.Rdev, sda.node.Rdev = unix.Mkdev(1, 3), unix.Mkdev(8, 0)
	old := gFile("old", 0o444, text("written before 1970\n"))
	old.node.MtimeNs, old.node.AtimeNs = -86400*1e9-1, 0
	nobody := gFile("nobody", 0o640, text("owned by nobody\n"))
	nobody.node.UID, nobody.node.GID = 65534, 65534
	return []goldenFile{
		gFile("hello.txt", 0o644, text("hello, sealfs\n")),
		gFile("empty", 0o600),
		docs,
		gFile("docs/readme.md", 0o644, data(readme())),
		hardA, hardB,
		gFile("random.bin", 0o600, data(pseudoRandom(1, 40<<10))),
		gFile("sparse.img", 0o644, data(pseudoRandom(2, 5000)), hole(1<<20), data(pseudoRandom(3, 3000)), hole(64<<10)),
		gFile("zeros.bin", 0o644, zeros(20000)),
		link, dangling,
		gNode("emptydir", format.NodeDir, 0o700),
		gNode("sticky", format.NodeDir, 0o1777),
		gFile("sticky/setuid", 0o4755, text("#!/bin/sh\nexit 0\n")),
		gFile("caf\xe9.txt", 0o644, text("a name that is not UTF-8\n")),
		gNode("fifo", format.NodeFIFO, 0o644),
		null, sda,
		gNode("socket", format.NodeSocket, 0o755),
		xattrs, old, nobody,
	}
}

// edit returns files with the entry at path replaced by fn's result, or
// removed when fn returns nil, or added when there was none.
func edit(files []goldenFile, path string, fn func(*goldenFile) *goldenFile) []goldenFile {
	out := slices.Clone(files)
	for i := range out {
		if out[i].path == path {
			if g := fn(&out[i]); g != nil {
				out[i] = *g
				return out
			}
			return slices.Delete(out, i, i+1)
		}
	}
	return append(out, *fn(nil))
}

// goldenSnapshots are the trees of snapshots 1 to 4; 2 is forgotten.
func goldenSnapshots() [][]goldenFile {
	s1 := goldenFirst()
	// 2: random.bin changed in the middle (most of its chunks stay), a new file.
	changed := pseudoRandom(1, 40<<10)
	copy(changed[20000:], "changed in the middle")
	s2 := edit(s1, "random.bin", func(g *goldenFile) *goldenFile { g.content = []goldenPiece{data(changed)}; return g })
	s2 = edit(s2, "added.txt", func(*goldenFile) *goldenFile {
		g := gFile("added.txt", 0o644, text("added in snapshot 2\n"))
		return &g
	})
	// 3: a rename, a chmod, a delete and a one-byte file.
	s3 := edit(s2, "added.txt", func(*goldenFile) *goldenFile { return nil })
	s3 = edit(s3, "docs/moved.txt", func(*goldenFile) *goldenFile {
		g := gFile("docs/moved.txt", 0o644, text("added in snapshot 2\n"))
		return &g
	})
	s3 = edit(s3, "empty", func(g *goldenFile) *goldenFile { g.node.Mode = 0o644; return g })
	s3 = edit(s3, "zeros.bin", func(*goldenFile) *goldenFile { return nil })
	s3 = edit(s3, "one-byte", func(*goldenFile) *goldenFile { g := gFile("one-byte", 0o644, text("x")); return &g })
	// 4: other xattrs, a file of one maximum-size chunk and more.
	s4 := edit(s3, "xattrs.txt", func(g *goldenFile) *goldenFile {
		g.node.Xattrs = []format.Xattr{{Name: []byte("user.comment"), Value: []byte("changed")}}
		return g
	})
	s4 = edit(s4, "big.bin", func(*goldenFile) *goldenFile { g := gFile("big.bin", 0o600, data(pseudoRandom(4, 20000))); return &g })
	return [][]goldenFile{s1, s2, s3, s4}
}

// goldenParams are small chunk sizes, so that small files make many chunks.
var goldenParams = chunker.Params{Min: 1024, Avg: 4096, Max: 16384}

// goldenVaultSecret stands in for the secret a vault keeps for the vault
// slot: no vault is needed to write or read the golden repository.
func goldenVaultSecret() []byte {
	s := sha256.Sum256([]byte("sealfs golden repository: stand-in vault secret"))
	return s[:]
}

// writeGoldenRepository writes the golden repository of this format
// version through the real code, with its recovery code and manifest. It
// refuses to overwrite one: a golden repository is written once, by the
// version that introduced its format, and read by every later version.
func writeGoldenRepository(t *testing.T) {
	dir := filepath.Join(goldenRoot, fmt.Sprintf("v%d", format.FormatVersion))
	if _, err := os.Stat(dir); err == nil {
		t.Fatalf("%s exists: never regenerate the golden repository of an existing format version; add one for a new version", dir)
	}
	ctx := context.Background()
	remoteDir := filepath.Join(t.TempDir(), "remote")
	r, code, err := repo.Init(ctx, testutil.NewRemote(t, remoteDir), repo.InitOptions{
		Options:  repo.Options{CacheDir: t.TempDir(), LeaseTTL: 24 * time.Hour}, // no renewal while this runs
		Chunking: goldenParams, PackSize: 1 << 20, Compression: format.CompressionZstd,
	})
	if err != nil {
		t.Fatal(err)
	}
	m := &testutil.Manifest{FormatVersion: format.FormatVersion, Repository: r.ID().String(), VaultSecret: hex.EncodeToString(goldenVaultSecret()),
		Note: "Written once by the sealfs that introduced this format version; never regenerate it (docs/SPEC.md §14)."}
	addGoldenVaultSlot(t, r)
	if err := r.Lock(ctx, false); err != nil { // the lease stays: it is one of the objects
		t.Fatal(err)
	}
	for _, files := range goldenSnapshots() {
		m.Snapshots = append(m.Snapshots, commitGolden(t, r, files))
	}
	if err := r.Forget(ctx, seqIDs(t, r, 2)); err != nil {
		t.Fatal(err)
	}
	m.Snapshots = slices.DeleteFunc(m.Snapshots, func(s testutil.ManifestSnapshot) bool { return s.Seq == 2 })
	describeGolden(t, r, m, remoteDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	testutil.CopyDir(t, remoteDir, filepath.Join(dir, testutil.GoldenRepoDir))
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, testutil.GoldenManifestFile), append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, testutil.GoldenCodeFile), []byte(code.Reveal()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// addGoldenVaultSlot adds a vault slot as `sealfs key add-vault` does,
// with the stand-in secret.
func addGoldenVaultSlot(t *testing.T, r *repo.Repository) {
	salt, err := crypt.NewSalt()
	if err != nil {
		t.Fatal(err)
	}
	kek, err := crypt.VaultKEK(goldenVaultSecret(), salt)
	if err != nil {
		t.Fatal(err)
	}
	params := []byte(`{"url":"https://vault.example.invalid:8443","user":"u00112233445566778899aabbccddeeff"}`)
	if _, err := r.AddSlot(context.Background(), crypt.SlotVault, salt, params, kek); err != nil {
		t.Fatal(err)
	}
}

// commitGolden stores files as a snapshot and describes it.
func commitGolden(t *testing.T, r *repo.Repository, files []goldenFile) testutil.ManifestSnapshot {
	ctx := context.Background()
	var entries []testutil.ManifestEntry
	var nfiles, nbytes uint64
	root := saveGoldenDir(t, r, files, "", &entries)
	for _, f := range files {
		if f.node.Type == format.NodeFile {
			nfiles++
			nbytes += f.size()
		}
	}
	s, err := r.Commit(ctx, root, repo.CommitInfo{Host: "golden-host", Files: nfiles, Bytes: nbytes})
	if err != nil {
		t.Fatal(err)
	}
	ms := testutil.SnapshotOf(s)
	ms.Entries = entries
	return ms
}

// saveGoldenDir stores the entries of files directly below dir (a path
// with a trailing slash, or "" for the root) as a tree, its directories
// first, and appends their descriptions to entries.
func saveGoldenDir(t *testing.T, r *repo.Repository, files []goldenFile, dir string, entries *[]testutil.ManifestEntry) crypt.ID {
	ctx := context.Background()
	tree := &format.Tree{}
	for _, f := range files {
		name, ok := strings.CutPrefix(f.path, dir)
		if !ok || strings.Contains(name, "/") {
			continue
		}
		n := f.node
		n.Name = []byte(name)
		switch n.Type {
		case format.NodeDir:
			n.Subtree = saveGoldenDir(t, r, files, f.path+"/", entries)
		case format.NodeSymlink:
			n.Size = uint64(len(n.Target))
		case format.NodeFile:
			n.Content, n.Size = saveGoldenContent(t, r, f.content)
		}
		e := testutil.EntryOf([]byte(f.path), &n)
		if n.Type == format.NodeFile {
			sum := sha256.Sum256(f.bytes())
			e.SHA256 = hex.EncodeToString(sum[:])
		}
		*entries = append(*entries, e)
		tree.Nodes = append(tree.Nodes, &n)
	}
	id, err := r.SaveTree(ctx, tree)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func saveGoldenContent(t *testing.T, r *repo.Repository, pieces []goldenPiece) ([]format.Extent, uint64) {
	w := r.NewFileWriter()
	for _, p := range pieces {
		if p.data == nil {
			w.Hole(p.hole)
		} else if err := w.Write(context.Background(), bytes.NewReader(p.data)); err != nil {
			t.Fatal(err)
		}
	}
	return w.Content()
}

// describeGolden fills in the manifest from what the repository holds
// now: config, slots, forget record, lease, check counts and objects.
func describeGolden(t *testing.T, r *repo.Repository, m *testutil.Manifest, remoteDir string) {
	ctx := context.Background()
	cfg := r.Config()
	m.Config = testutil.ManifestConfig{Created: cfg.Created.UTC(), ChunkMin: cfg.ChunkMin, ChunkAvg: cfg.ChunkAvg, ChunkMax: cfg.ChunkMax, PackSize: cfg.PackSize, Compression: cfg.Compression}
	slots, err := r.Slots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range slots {
		m.Slots = append(m.Slots, testutil.ManifestSlot{ID: s.ID.String(), Kind: string(s.Slot.Kind), Created: s.Slot.Created.UTC(), Params: string(s.Slot.Params)})
	}
	for _, f := range r.Forgotten() {
		m.Forgotten = append(m.Forgotten, testutil.ManifestForgotten{Seq: f.Seq, ID: f.ID.String()})
	}
	l, err := r.ReadLease(ctx)
	if err != nil || l == nil {
		t.Fatalf("lease %v, %v", l, err)
	}
	m.Lease = testutil.ManifestLease{Holder: l.Holder.String(), Host: l.Host, PID: l.PID, Acquired: l.Acquired.UTC(), Expires: l.Expires.UTC()}
	rep, err := r.Check(ctx, repo.CheckOptions{ReadData: true})
	if err != nil || !rep.OK() {
		t.Fatalf("the new golden repository does not check clean: %v %v", err, rep.Problems)
	}
	m.Check = testutil.ManifestCheck{Slots: rep.Slots, Snapshots: rep.Snapshots, ForgetRecords: rep.ForgetRecords, Indexes: rep.Indexes, Packs: rep.Packs, Blobs: rep.Blobs, Trees: rep.Trees}
	m.Objects = testutil.HashFiles(t, remoteDir)
}
