package repo_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/repo"
	"github.com/sealfs/sealfs/repo/format"
)

// The golden repositories (docs/SPEC.md §14): one per format version under
// goldenRoot, written once by the sealfs of that version (see
// golden_write_test.go) and never regenerated, each read by every later
// sealfs.
const goldenRoot = "../testdata/golden"

// Files of a golden repository's directory.
const (
	goldenRepoDir  = "repo"              // the remote, as a local rclone remote holds it
	goldenCodeFile = "recovery-code.txt" // the code of its recovery-code slot
	goldenManifest = "manifest.json"     // what it holds
)

// manifest is what a golden repository holds, written with it: every
// object's bytes, the key slots, every snapshot with every entry of its
// tree and the SHA-256 of each file's content, the forget record's
// entries and the lease.
type manifest struct {
	FormatVersion int              `json:"format_version"`
	Note          string           `json:"note"`
	Repository    string           `json:"repository"`
	Config        manifestConfig   `json:"config"`
	Slots         []manifestSlot   `json:"slots"`
	VaultSecret   string           `json:"vault_secret"` // the stand-in secret of the vault slot, hex
	Snapshots     []manifestSnap   `json:"snapshots"`
	Forgotten     []manifestForgot `json:"forgotten"`
	Lease         manifestLease    `json:"lease"`
	Check         manifestCheck    `json:"check"`
	Objects       []manifestObject `json:"objects"`
}

type manifestConfig struct {
	Created     time.Time `json:"created"`
	ChunkMin    int       `json:"chunk_min"`
	ChunkAvg    int       `json:"chunk_avg"`
	ChunkMax    int       `json:"chunk_max"`
	PackSize    int       `json:"pack_size"`
	Compression string    `json:"compression"`
}

type manifestSlot struct {
	ID      string    `json:"id"`
	Kind    string    `json:"kind"`
	Created time.Time `json:"created"`
	Params  string    `json:"params,omitempty"`
}

type manifestSnap struct {
	Seq     uint64          `json:"seq"`
	ID      string          `json:"id"`
	Parent  string          `json:"parent"`
	Tree    string          `json:"tree"`
	Time    time.Time       `json:"time"`
	Host    string          `json:"host"`
	Files   uint64          `json:"files"`
	Bytes   uint64          `json:"bytes"`
	Indexes []string        `json:"indexes"`
	Entries []manifestEntry `json:"entries"`
}

// manifestEntry is one node of a snapshot's tree, by its path from the root.
type manifestEntry struct {
	Path      string           `json:"path,omitempty"`
	PathHex   string           `json:"path_hex,omitempty"` // instead of path, when it is not UTF-8
	Type      string           `json:"type"`
	Mode      string           `json:"mode"` // octal
	UID       uint32           `json:"uid"`
	GID       uint32           `json:"gid"`
	MtimeNs   int64            `json:"mtime_ns"`
	AtimeNs   int64            `json:"atime_ns"`
	Size      uint64           `json:"size"`
	SHA256    string           `json:"sha256,omitempty"` // of a file's content
	Target    string           `json:"target,omitempty"`
	Rdev      uint64           `json:"rdev,omitempty"`
	LinkGroup uint64           `json:"link_group,omitempty"`
	Subtree   string           `json:"subtree,omitempty"`
	Extents   []manifestExtent `json:"extents,omitempty"`
	Xattrs    []manifestXattr  `json:"xattrs,omitempty"`
}

type manifestExtent struct {
	Kind string `json:"kind"` // data or hole
	Size uint64 `json:"size"`
	Blob string `json:"blob,omitempty"`
}

type manifestXattr struct {
	Name  string `json:"name"`
	Value string `json:"value_hex"`
}

type manifestForgot struct {
	Seq uint64 `json:"seq"`
	ID  string `json:"id"`
}

type manifestLease struct {
	Holder   string    `json:"holder"`
	Host     string    `json:"host"`
	PID      int       `json:"pid"`
	Acquired time.Time `json:"acquired"`
	Expires  time.Time `json:"expires"`
}

// manifestCheck is what `check --read-data` counts in the repository.
type manifestCheck struct {
	Slots, Snapshots, ForgetRecords, Indexes, Packs, Blobs, Trees int
}

type manifestObject struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

var nodeTypeNames = map[format.NodeType]string{
	format.NodeFile: "file", format.NodeDir: "dir", format.NodeSymlink: "symlink", format.NodeFIFO: "fifo",
	format.NodeCharDev: "chardev", format.NodeBlockDev: "blockdev", format.NodeSocket: "socket",
}

// entryOf describes node n at path; the content's SHA-256 is the caller's.
func entryOf(path []byte, n *format.Node) manifestEntry {
	e := manifestEntry{
		Type: nodeTypeNames[n.Type], Mode: fmt.Sprintf("%04o", n.Mode), UID: n.UID, GID: n.GID,
		MtimeNs: n.MtimeNs, AtimeNs: n.AtimeNs, Size: n.Size, Target: string(n.Target),
		Rdev: n.Rdev, LinkGroup: n.LinkGroup,
	}
	if utf8.Valid(path) {
		e.Path = string(path)
	} else {
		e.PathHex = hex.EncodeToString(path)
	}
	if n.Type == format.NodeDir {
		e.Subtree = n.Subtree.String()
	}
	for _, x := range n.Content {
		if x.Hole {
			e.Extents = append(e.Extents, manifestExtent{Kind: "hole", Size: x.Size})
		} else {
			e.Extents = append(e.Extents, manifestExtent{Kind: "data", Size: x.Size, Blob: x.ID.String()})
		}
	}
	for _, x := range n.Xattrs {
		e.Xattrs = append(e.Xattrs, manifestXattr{Name: string(x.Name), Value: hex.EncodeToString(x.Value)})
	}
	return e
}

func (e manifestEntry) key() string { return e.Path + "\x00" + e.PathHex }

// hashFiles returns every regular file below dir, by its slash-separated
// name, with its size and SHA-256.
func hashFiles(t *testing.T, dir string) []manifestObject {
	t.Helper()
	var out []manifestObject
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s is not a regular file", p)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		sum := sha256.Sum256(b)
		out = append(out, manifestObject{Name: filepath.ToSlash(rel), Size: int64(len(b)), SHA256: hex.EncodeToString(sum[:])})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(out, func(a, b manifestObject) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// sameObjects reports every difference between the objects in dir and the
// manifest's.
func sameObjects(t *testing.T, dir string, want []manifestObject) {
	t.Helper()
	got := hashFiles(t, dir)
	byName := map[string]manifestObject{}
	for _, o := range got {
		byName[o.Name] = o
	}
	for _, w := range want {
		g, ok := byName[w.Name]
		switch {
		case !ok:
			t.Errorf("%s: object %s is missing", dir, w.Name)
		case g != w:
			t.Errorf("%s: object %s is %d bytes with SHA-256 %s, the manifest says %d bytes, %s", dir, w.Name, g.Size, g.SHA256, w.Size, w.SHA256)
		}
		delete(byName, w.Name)
	}
	for name := range byName {
		t.Errorf("%s: object %s is not in the manifest", dir, name)
	}
}

func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// slotUnlocker opens the first slot of its kind that its key-encryption
// key opens, as docs/SPEC.md §4 describes (and without the application's
// unlocking code, so that this test reads the format, not that code).
type slotUnlocker struct {
	kind crypt.SlotKind
	kek  func(salt []byte) (crypt.KEK, error)
}

func (u slotUnlocker) Unlock(_ context.Context, rid crypt.RepoID, slots []repo.SlotInfo) (crypt.MasterKey, crypt.ID, error) {
	for _, s := range slots {
		if s.Slot.Kind != u.kind {
			continue
		}
		kek, err := u.kek(s.Slot.Salt)
		if err != nil {
			return crypt.MasterKey{}, crypt.ID{}, err
		}
		if mk, err := s.Slot.Unwrap(rid, s.ID, kek); err == nil {
			return mk, s.ID, nil
		}
	}
	return crypt.MasterKey{}, crypt.ID{}, fmt.Errorf("no %s slot opens", u.kind)
}

// TestGoldenRepository: every golden repository under testdata/golden, as
// an older sealfs wrote it, still opens with its recovery code and with its
// vault slot's secret, reads back byte for byte as its manifest says (every
// snapshot, every entry's metadata, every file's content), checks clean with
// every blob read, and is not changed by any of it.
func TestGoldenRepository(t *testing.T) {
	if *writeGolden {
		writeGoldenRepository(t)
	}
	dirs, err := filepath.Glob(filepath.Join(goldenRoot, "v*"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(dirs, filepath.Join(goldenRoot, fmt.Sprintf("v%d", format.FormatVersion))) {
		t.Fatalf("no golden repository of format version %d under %s (write it once with: go test ./repo -run TestGoldenRepository -write-golden)", format.FormatVersion, goldenRoot)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) { readGolden(t, dir) })
	}
}

func readManifest(t *testing.T, dir string) *manifest {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, goldenManifest))
	if err != nil {
		t.Fatal(err)
	}
	var m manifest
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("%s: %v", goldenManifest, err)
	}
	return &m
}

func readGolden(t *testing.T, dir string) {
	m := readManifest(t, dir)
	// The committed copy is what was written, byte for byte.
	sameObjects(t, filepath.Join(dir, goldenRepoDir), m.Objects)
	work := filepath.Join(t.TempDir(), "remote")
	copyDir(t, filepath.Join(dir, goldenRepoDir), work)
	text, err := os.ReadFile(filepath.Join(dir, goldenCodeFile))
	if err != nil {
		t.Fatal(err)
	}
	code, err := crypt.ParseRecoveryCode(string(text))
	if err != nil {
		t.Fatalf("%s: %v", goldenCodeFile, err)
	}
	byCode := slotUnlocker{kind: crypt.SlotRecoveryCode, kek: code.KEK}
	secret, err := hex.DecodeString(m.VaultSecret)
	if err != nil {
		t.Fatal(err)
	}
	byVault := slotUnlocker{kind: crypt.SlotVault, kek: func(salt []byte) (crypt.KEK, error) { return crypt.VaultKEK(secret, salt) }}

	rem := testutil.NewRemote(t, work)
	r, err := repo.Open(context.Background(), rem, byCode, repo.Options{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatalf("the recovery code does not open the golden repository: %v", err)
	}
	checkGoldenMetadata(t, r, m)
	checkGoldenTrees(t, r, m)
	checkGoldenCheck(t, r, m)
	// The vault slot wraps the same master key: the config's MAC verifies.
	vrem := testutil.NewRemote(t, work)
	if _, err := repo.Open(context.Background(), vrem, byVault, repo.Options{CacheDir: t.TempDir()}); err != nil {
		t.Fatalf("the vault slot's secret does not open the golden repository: %v", err)
	}
	for _, s := range []struct {
		name string
		put  int64
		del  int64
	}{{"code", rem.Stats().Puts, rem.Stats().Deletes}, {"vault", vrem.Stats().Puts, vrem.Stats().Deletes}} {
		if s.put != 0 || s.del != 0 {
			t.Errorf("reading with the %s wrote %d and deleted %d objects of the golden repository", s.name, s.put, s.del)
		}
	}
	sameObjects(t, work, m.Objects)
}

func checkGoldenMetadata(t *testing.T, r *repo.Repository, m *manifest) {
	ctx := context.Background()
	cfg := r.Config()
	got := manifestConfig{Created: cfg.Created.UTC(), ChunkMin: cfg.ChunkMin, ChunkAvg: cfg.ChunkAvg, ChunkMax: cfg.ChunkMax, PackSize: cfg.PackSize, Compression: cfg.Compression}
	if r.ID().String() != m.Repository || !got.Created.Equal(m.Config.Created) || got.ChunkMin != m.Config.ChunkMin ||
		got.ChunkAvg != m.Config.ChunkAvg || got.ChunkMax != m.Config.ChunkMax || got.PackSize != m.Config.PackSize || got.Compression != m.Config.Compression {
		t.Errorf("repository %s with config %+v, the manifest says %s, %+v", r.ID(), got, m.Repository, m.Config)
	}
	slots, err := r.Slots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var gotSlots []manifestSlot
	for _, s := range slots {
		gotSlots = append(gotSlots, manifestSlot{ID: s.ID.String(), Kind: string(s.Slot.Kind), Created: s.Slot.Created.UTC(), Params: string(s.Slot.Params)})
	}
	if !equalJSON(gotSlots, m.Slots) {
		t.Errorf("key slots %s, the manifest says %s", mustJSON(gotSlots), mustJSON(m.Slots))
	}
	var forgot []manifestForgot
	for _, f := range r.Forgotten() {
		forgot = append(forgot, manifestForgot{Seq: f.Seq, ID: f.ID.String()})
	}
	if !equalJSON(forgot, m.Forgotten) {
		t.Errorf("forgotten snapshots %s, the manifest says %s", mustJSON(forgot), mustJSON(m.Forgotten))
	}
	l, err := r.ReadLease(ctx)
	if err != nil || l == nil {
		t.Errorf("the lease reads as %v, %v", l, err)
		return
	}
	gotLease := manifestLease{Holder: l.Holder.String(), Host: l.Host, PID: l.PID, Acquired: l.Acquired.UTC(), Expires: l.Expires.UTC()}
	if !equalJSON(gotLease, m.Lease) {
		t.Errorf("lease %s, the manifest says %s", mustJSON(gotLease), mustJSON(m.Lease))
	}
}

// snapOf describes snapshot s without its entries.
func snapOf(s *format.Snapshot) manifestSnap {
	ms := manifestSnap{Seq: s.Seq, ID: s.ID.String(), Parent: s.Parent.String(), Tree: s.Tree.String(),
		Time: s.Time.UTC(), Host: s.Host, Files: s.Files, Bytes: s.Bytes}
	for _, x := range s.Indexes {
		ms.Indexes = append(ms.Indexes, x.String())
	}
	return ms
}

func checkGoldenTrees(t *testing.T, r *repo.Repository, m *manifest) {
	snaps := r.Snapshots()
	if len(snaps) != len(m.Snapshots) {
		t.Fatalf("%d snapshots, the manifest says %d", len(snaps), len(m.Snapshots))
	}
	for i, s := range snaps {
		want := m.Snapshots[i]
		got := snapOf(s)
		wantHead := want
		wantHead.Entries = nil
		if !equalJSON(got, wantHead) {
			t.Errorf("snapshot %s,\nthe manifest says %s", mustJSON(got), mustJSON(wantHead))
		}
		entries := walkTree(t, r, s.Tree, nil)
		compareEntries(t, s.Seq, entries, want.Entries)
	}
}

// walkTree describes every entry below tree id, reading each file's
// content whole to hash it.
func walkTree(t *testing.T, r *repo.Repository, id crypt.ID, prefix []byte) []manifestEntry {
	ctx := context.Background()
	tree, err := r.LoadTree(ctx, id)
	if err != nil {
		t.Fatalf("tree %s: %v", id, err)
	}
	var out, below []manifestEntry
	for _, n := range tree.Nodes {
		p := append(slices.Clone(prefix), n.Name...)
		e := entryOf(p, n)
		switch n.Type {
		case format.NodeFile:
			h := sha256.New()
			if _, err := r.OpenFile(ctx, n).WriteTo(h); err != nil {
				t.Fatalf("reading %q: %v", p, err)
			}
			e.SHA256 = hex.EncodeToString(h.Sum(nil))
		case format.NodeDir:
			below = append(below, walkTree(t, r, n.Subtree, append(p, '/'))...)
		}
		out = append(out, e)
	}
	return append(out, below...)
}

func compareEntries(t *testing.T, seq uint64, got, want []manifestEntry) {
	t.Helper()
	byKey := map[string]manifestEntry{}
	for _, e := range got {
		byKey[e.key()] = e
	}
	for _, w := range want {
		g, ok := byKey[w.key()]
		switch {
		case !ok:
			t.Errorf("snapshot %d: %s is missing", seq, mustJSON(w))
		case !equalJSON(g, w):
			t.Errorf("snapshot %d: entry reads as %s,\nthe manifest says %s", seq, mustJSON(g), mustJSON(w))
		}
		delete(byKey, w.key())
	}
	for _, g := range byKey {
		t.Errorf("snapshot %d: %s is not in the manifest", seq, mustJSON(g))
	}
}

func checkGoldenCheck(t *testing.T, r *repo.Repository, m *manifest) {
	rep, err := r.Check(context.Background(), repo.CheckOptions{ReadData: true})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Errorf("check --read-data finds problems: %v", errors.Join(rep.Problems...))
	}
	if len(rep.UnreferencedPacks)+len(rep.Unreferenced) > 0 {
		t.Errorf("check finds unreferenced objects: %v %v", rep.UnreferencedPacks, rep.Unreferenced)
	}
	got := manifestCheck{Slots: rep.Slots, Snapshots: rep.Snapshots, ForgetRecords: rep.ForgetRecords, Indexes: rep.Indexes, Packs: rep.Packs, Blobs: rep.Blobs, Trees: rep.Trees}
	if got != m.Check {
		t.Errorf("check counts %+v, the manifest says %+v", got, m.Check)
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// equalJSON compares two values as the manifest holds them. Times are UTC
// on both sides: sealfs writes them so, and so does the manifest.
func equalJSON(a, b any) bool { return mustJSON(a) == mustJSON(b) }
