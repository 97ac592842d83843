package testutil

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/sealfs/sealfs/repo/format"
)

// Golden repositories (docs/SPEC.md §14) live in testdata/golden/v<N>, one
// per format version, each written once by the sealfs of that version and
// read by every later one: repo's TestGoldenRepository reads them through
// the library, test's TestGoldenRepositoryCLI through the command.

// Files of a golden repository's directory.
const (
	GoldenRepoDir      = "repo"              // the remote, as a local rclone remote holds it
	GoldenCodeFile     = "recovery-code.txt" // the code of its recovery-code slot
	GoldenManifestFile = "manifest.json"     // what it holds
)

// Manifest is what a golden repository holds, written with it: every
// object's bytes, the key slots, every snapshot with every entry of its
// tree and the SHA-256 of each file's content, the forget record's
// entries and the lease.
type Manifest struct {
	FormatVersion int                 `json:"format_version"`
	Note          string              `json:"note"`
	Repository    string              `json:"repository"`
	Config        ManifestConfig      `json:"config"`
	Slots         []ManifestSlot      `json:"slots"`
	VaultSecret   string              `json:"vault_secret"` // the stand-in secret of the vault slot, hex
	Snapshots     []ManifestSnapshot  `json:"snapshots"`
	Forgotten     []ManifestForgotten `json:"forgotten"`
	Lease         ManifestLease       `json:"lease"`
	Check         ManifestCheck       `json:"check"`
	Objects       []ManifestObject    `json:"objects"`
}

// ManifestConfig is the config's public fields.
type ManifestConfig struct {
	Created     time.Time `json:"created"`
	ChunkMin    int       `json:"chunk_min"`
	ChunkAvg    int       `json:"chunk_avg"`
	ChunkMax    int       `json:"chunk_max"`
	PackSize    int       `json:"pack_size"`
	Compression string    `json:"compression"`
}

// ManifestSlot is a key slot; Params is its JSON as stored.
type ManifestSlot struct {
	ID      string    `json:"id"`
	Kind    string    `json:"kind"`
	Created time.Time `json:"created"`
	Params  string    `json:"params,omitempty"`
}

// ManifestSnapshot is a snapshot and every entry of its tree.
type ManifestSnapshot struct {
	Seq     uint64          `json:"seq"`
	ID      string          `json:"id"`
	Parent  string          `json:"parent"`
	Tree    string          `json:"tree"`
	Time    time.Time       `json:"time"`
	Host    string          `json:"host"`
	Files   uint64          `json:"files"`
	Bytes   uint64          `json:"bytes"`
	Indexes []string        `json:"indexes"`
	Entries []ManifestEntry `json:"entries"`
}

// ManifestEntry is one node of a snapshot's tree, by its path from the root.
type ManifestEntry struct {
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
	Extents   []ManifestExtent `json:"extents,omitempty"`
	Xattrs    []ManifestXattr  `json:"xattrs,omitempty"`
}

// ManifestExtent is a run of a file's content.
type ManifestExtent struct {
	Kind string `json:"kind"` // data or hole
	Size uint64 `json:"size"`
	Blob string `json:"blob,omitempty"`
}

// ManifestXattr is an extended attribute; its value in hex.
type ManifestXattr struct {
	Name  string `json:"name"`
	Value string `json:"value_hex"`
}

// ManifestForgotten is a snapshot the forget record lists.
type ManifestForgotten struct {
	Seq uint64 `json:"seq"`
	ID  string `json:"id"`
}

// ManifestLease is the lease the writer left.
type ManifestLease struct {
	Holder   string    `json:"holder"`
	Host     string    `json:"host"`
	PID      int       `json:"pid"`
	Acquired time.Time `json:"acquired"`
	Expires  time.Time `json:"expires"`
}

// ManifestCheck is what `check --read-data` counts in the repository.
type ManifestCheck struct {
	Slots, Snapshots, ForgetRecords, Indexes, Packs, Blobs, Trees int
}

// ManifestObject is an object file of the remote directory.
type ManifestObject struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

var nodeTypeNames = map[format.NodeType]string{
	format.NodeFile: "file", format.NodeDir: "dir", format.NodeSymlink: "symlink", format.NodeFIFO: "fifo",
	format.NodeCharDev: "chardev", format.NodeBlockDev: "blockdev", format.NodeSocket: "socket",
}

// EntryOf describes node n at path; the content's SHA-256 is the caller's.
func EntryOf(path []byte, n *format.Node) ManifestEntry {
	e := ManifestEntry{
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
			e.Extents = append(e.Extents, ManifestExtent{Kind: "hole", Size: x.Size})
		} else {
			e.Extents = append(e.Extents, ManifestExtent{Kind: "data", Size: x.Size, Blob: x.ID.String()})
		}
	}
	for _, x := range n.Xattrs {
		e.Xattrs = append(e.Xattrs, ManifestXattr{Name: string(x.Name), Value: hex.EncodeToString(x.Value)})
	}
	return e
}

// Key identifies the entry by its path.
func (e ManifestEntry) Key() string { return e.Path + "\x00" + e.PathHex }

// HashFiles returns every regular file below dir, by its slash-separated
// name, with its size and SHA-256.
func HashFiles(t *testing.T, dir string) []ManifestObject {
	t.Helper()
	var out []ManifestObject
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
		out = append(out, ManifestObject{Name: filepath.ToSlash(rel), Size: int64(len(b)), SHA256: hex.EncodeToString(sum[:])})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(out, func(a, b ManifestObject) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// SameObjects reports every difference between the objects in dir and the
// manifest's.
func SameObjects(t *testing.T, dir string, want []ManifestObject) {
	t.Helper()
	got := HashFiles(t, dir)
	byName := map[string]ManifestObject{}
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

// CopyDir copies the tree of regular files and directories at src to dst.
func CopyDir(t *testing.T, src, dst string) {
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

// GoldenDirs returns the golden repositories under root (testdata/golden),
// oldest format first; it fails the test when the one of the current format
// version is missing.
func GoldenDirs(t *testing.T, root string) []string {
	t.Helper()
	dirs, err := filepath.Glob(filepath.Join(root, "v*"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(dirs, filepath.Join(root, fmt.Sprintf("v%d", format.FormatVersion))) {
		t.Fatalf("no golden repository of format version %d under %s (write it once with: go test ./repo -run TestGoldenRepository -write-golden)", format.FormatVersion, root)
	}
	return dirs
}

// ReadManifest reads the manifest of the golden repository in dir,
// rejecting fields it does not know.
func ReadManifest(t *testing.T, dir string) *Manifest {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, GoldenManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("%s: %v", GoldenManifestFile, err)
	}
	return &m
}

// SnapshotOf describes snapshot s without its entries.
func SnapshotOf(s *format.Snapshot) ManifestSnapshot {
	ms := ManifestSnapshot{Seq: s.Seq, ID: s.ID.String(), Parent: s.Parent.String(), Tree: s.Tree.String(),
		Time: s.Time.UTC(), Host: s.Host, Files: s.Files, Bytes: s.Bytes}
	for _, x := range s.Indexes {
		ms.Indexes = append(ms.Indexes, x.String())
	}
	return ms
}

// PathBytes returns the entry's path from the root of its snapshot.
func (e ManifestEntry) PathBytes() []byte {
	if e.PathHex == "" {
		return []byte(e.Path)
	}
	b, err := hex.DecodeString(e.PathHex)
	if err != nil {
		panic(fmt.Sprintf("manifest path_hex %q: %v", e.PathHex, err))
	}
	return b
}

// JSON returns v as the manifest writes it: two values are equal as the
// manifest holds them when their JSON is (times are UTC on both sides).
func JSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}
