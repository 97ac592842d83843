// Package spec holds a reader of the sealfs repository format written from
// docs/SPEC.md alone, as a second implementation would be: it uses the
// standard library and a zstd decoder, and none of sealfs' own packages
// (crypt, repo, repo/format). It reads the golden repositories and must
// find in them what their manifests say; if it cannot, SPEC is wrong or
// incomplete.
package spec

import (
	"bytes"
	"cmp"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/klauspost/compress/zstd"

	"github.com/sealfs/sealfs/internal/testutil"
)

// Object types (SPEC §3.1).
const (
	typeData     = 1
	typeTree     = 2
	typePack     = 3
	typeIndex    = 4
	typeSnapshot = 5
	typeLease    = 6
	typeForget   = 8
)

// reader is a repository opened by this spec-only reader.
type reader struct {
	t    *testing.T
	dir  string // the remote, a local directory
	rid  []byte
	keys map[string][]byte // subkeys by label
	// blobs: where each blob is, from the index objects (SPEC §7).
	blobs map[string]blobLoc
}

type blobLoc struct {
	typ                 byte
	pack                string
	offset, length, raw uint32
}

func (r *reader) read(name string) []byte {
	r.t.Helper()
	b, err := os.ReadFile(filepath.Join(r.dir, filepath.FromSlash(name)))
	if err != nil {
		r.t.Fatal(err)
	}
	return b
}

func (r *reader) list(dir string) []string {
	r.t.Helper()
	es, err := os.ReadDir(filepath.Join(r.dir, dir))
	if err != nil {
		r.t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		if !e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return b
}

func gcmOpen(key, sealed, ad []byte) ([]byte, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	if len(sealed) < 12+16 {
		return nil, fmt.Errorf("sealed object of %d bytes", len(sealed))
	}
	return aead.Open(nil, sealed[:12], sealed[12:], ad)
}

// codeSecret parses a recovery code (SPEC §4.1) and returns its 30 secret bytes.
func codeSecret(t *testing.T, text string) []byte {
	var digits strings.Builder
	for _, c := range strings.ToLower(text) {
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '-':
		case (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'):
			digits.WriteRune(c)
		default:
			t.Fatalf("recovery code holds %q", c)
		}
	}
	b := unhex(t, digits.String())
	if len(b) != 32 {
		t.Fatalf("recovery code of %d bytes", len(b))
	}
	sum := sha256.Sum256(append([]byte("sealfs v1 recovery code checksum"), b[:30]...))
	if !bytes.Equal(sum[:2], b[30:]) {
		t.Fatal("recovery code checksum mismatch")
	}
	return b[:30]
}

// unlock opens the first slot of kind with the KEK kek(salt) (SPEC §4.2)
// and returns the master key.
func (r *reader) unlock(kind string, kek func(salt []byte) []byte) []byte {
	t := r.t
	for _, name := range r.list("keys") {
		var s struct {
			Version int             `json:"version"`
			Kind    string          `json:"kind"`
			Created time.Time       `json:"created"`
			Salt    []byte          `json:"salt"`
			Params  json.RawMessage `json:"params"`
			Wrapped []byte          `json:"wrapped"`
		}
		dec := json.NewDecoder(bytes.NewReader(r.read("keys/" + name)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&s); err != nil || s.Version != 1 || len(s.Wrapped) != 60 {
			t.Fatalf("key slot %s: %v (version %d, %d wrapped bytes)", name, err, s.Version, len(s.Wrapped))
		}
		if s.Kind != kind {
			continue
		}
		ad := append([]byte("sealfs v1 key slot\x00"), r.rid...)
		ad = append(ad, unhex(t, name)...)
		ad = binary.BigEndian.AppendUint32(ad, uint32(len(s.Kind)))
		ad = append(ad, s.Kind...)
		ad = binary.BigEndian.AppendUint64(ad, uint64(s.Created.UnixNano()))
		ad = binary.BigEndian.AppendUint32(ad, uint32(len(s.Salt)))
		ad = append(ad, s.Salt...)
		ad = binary.BigEndian.AppendUint32(ad, uint32(len(s.Params)))
		ad = append(ad, s.Params...)
		if mk, err := gcmOpen(kek(s.Salt), s.Wrapped, ad); err == nil {
			return mk
		}
	}
	t.Fatalf("no %s slot opens", kind)
	return nil
}

func hkdfKey(t *testing.T, ikm, salt []byte, info string) []byte {
	k, err := hkdf.Key(sha256.New, ikm, salt, info, 32)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// open reads the config (SPEC §5), unlocks a slot and derives the subkeys (§3).
func open(t *testing.T, dir, kind string, kek func(salt []byte) []byte) *reader {
	r := &reader{t: t, dir: dir, keys: map[string][]byte{}, blobs: map[string]blobLoc{}}
	body, rest, _ := bytes.Cut(r.read("config"), []byte("\n"))
	var cfg struct {
		Repository string `json:"repository"`
	}
	if err := json.Unmarshal(body, &cfg); err != nil {
		t.Fatal(err)
	}
	r.rid = unhex(t, cfg.Repository)
	mk := r.unlock(kind, kek)
	for _, label := range []string{"blob encryption", "metadata encryption", "blob id", "config mac"} {
		r.keys[label] = hkdfKey(t, mk, r.rid, "sealfs v1 "+label)
	}
	m := hmac.New(sha256.New, r.keys["config mac"])
	m.Write(body)
	if want := hex.EncodeToString(m.Sum(nil)) + "\n"; string(rest) != want {
		t.Fatal("the config's MAC does not verify")
	}
	return r
}

// openObject opens a sealed object of type typ named id (SPEC §3.1).
func (r *reader) openObject(typ byte, id []byte, sealed []byte) ([]byte, error) {
	key := r.keys["metadata encryption"]
	if typ == typeData || typ == typeTree || typ == typePack {
		key = r.keys["blob encryption"]
	}
	ad := append([]byte("sealfs v1 object\x00"), typ)
	ad = append(append(ad, r.rid...), id...)
	return gcmOpen(key, sealed, ad)
}

func (r *reader) mustOpen(typ byte, name string, id []byte) []byte {
	r.t.Helper()
	pt, err := r.openObject(typ, id, r.read(name))
	if err != nil {
		r.t.Fatalf("%s: %v", name, err)
	}
	return pt
}

// entries decodes the entries of an index object or a pack header (§6, §7).
func entries(t *testing.T, b []byte, withPack bool) []blobLoc {
	size := 45
	if withPack {
		size = 77
	}
	if b[0] != 1 || len(b) < 5 || uint64(len(b)-5) != uint64(binary.BigEndian.Uint32(b[1:5]))*uint64(size) {
		t.Fatalf("bad entries header %x", b[:min(len(b), 5)])
	}
	var out []blobLoc
	for p := b[5:]; len(p) > 0; p = p[size:] {
		l := blobLoc{typ: p[0], pack: hex.EncodeToString(p[1:33])} // pack: the blob id for now
		q := p[33:]
		if withPack {
			l.pack, q = hex.EncodeToString(p[33:65])+" "+l.pack, p[65:]
		}
		l.offset, l.length, l.raw = binary.BigEndian.Uint32(q), binary.BigEndian.Uint32(q[4:]), binary.BigEndian.Uint32(q[8:])
		out = append(out, l)
	}
	return out
}

// loadIndexes reads the index objects a snapshot names.
func (r *reader) loadIndexes(ids []string) {
	for _, x := range ids {
		for _, l := range entries(r.t, r.mustOpen(typeIndex, "index/"+x, unhex(r.t, x)), true) {
			pack, blob, _ := strings.Cut(l.pack, " ")
			l.pack = pack
			r.blobs[blob] = l
		}
	}
}

// checkPackHeaders reads every pack's header (§6) and compares it with the
// index: the same blobs at the same places, back to back.
func (r *reader) checkPackHeaders() {
	t := r.t
	byPack := map[string][]string{}
	for blob, l := range r.blobs {
		byPack[l.pack] = append(byPack[l.pack], blob)
	}
	for pack, blobs := range byPack {
		b := r.read("data/" + pack[:2] + "/" + pack)
		n := binary.BigEndian.Uint32(b[len(b)-4:])
		area := len(b) - 4 - int(n)
		pt, err := r.openObject(typePack, unhex(t, pack), b[area:len(b)-4])
		if err != nil {
			t.Fatalf("pack %s header: %v", pack, err)
		}
		var next uint32
		for _, e := range entries(t, pt, false) {
			l := r.blobs[e.pack]
			if e.offset != next || l.offset != e.offset || l.length != e.length || l.raw != e.raw || l.typ != e.typ {
				t.Errorf("pack %s header entry %+v disagrees with the index %+v", pack, e, l)
			}
			next += e.length
		}
		if int(next) != area || len(entries(t, pt, false)) != len(blobs) {
			t.Errorf("pack %s: header covers %d of %d bytes", pack, next, area)
		}
	}
}

// blob returns a blob's plaintext, verified as SPEC §6 says: AEAD, flag,
// decompression to the indexed length, and the keyed id.
func (r *reader) blob(typ byte, id string) []byte {
	t := r.t
	l, ok := r.blobs[id]
	if !ok || l.typ != typ {
		t.Fatalf("blob %s of type %d is not in the index", id, typ)
	}
	pack := r.read("data/" + l.pack[:2] + "/" + l.pack)
	pt, err := r.openObject(typ, unhex(t, id), pack[l.offset:l.offset+l.length])
	if err != nil {
		t.Fatalf("blob %s: %v", id, err)
	}
	var raw []byte
	switch pt[0] {
	case 0:
		raw = pt[1:]
	case 1:
		dec, err := zstd.NewReader(nil)
		if err != nil {
			t.Fatal(err)
		}
		defer dec.Close()
		if raw, err = dec.DecodeAll(pt[1:], nil); err != nil {
			t.Fatalf("blob %s: %v", id, err)
		}
	default:
		t.Fatalf("blob %s has flag %d", id, pt[0])
	}
	m := hmac.New(sha256.New, r.keys["blob id"])
	m.Write([]byte{typ})
	m.Write(raw)
	if len(raw) != int(l.raw) || hex.EncodeToString(m.Sum(nil)) != id {
		t.Fatalf("blob %s: %d bytes (index: %d), or its id does not match", id, len(raw), l.raw)
	}
	return raw
}

// dec reads the fields of a tree (SPEC §8), failing the test on anything
// short or non-minimal.
type dec struct {
	t *testing.T
	b []byte
}

func (d *dec) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 || n != len(binary.AppendUvarint(nil, v)) {
		d.t.Fatalf("bad uvarint at %x", d.b[:min(len(d.b), 10)])
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 || n != len(binary.AppendVarint(nil, v)) {
		d.t.Fatalf("bad varint at %x", d.b[:min(len(d.b), 10)])
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) fixed(n int) []byte {
	if len(d.b) < n {
		d.t.Fatal("tree is truncated")
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *dec) lv() []byte { return d.fixed(int(d.uvarint())) }

var typeNames = map[byte]string{1: "file", 2: "dir", 3: "symlink", 4: "fifo", 5: "chardev", 6: "blockdev", 7: "socket"}

// specNode is a tree entry as SPEC §8 describes it; its JSON is that of
// the entries in testdata/vectors/tree.json (names, targets and xattrs in
// base64, ids in hex, empty fields null).
type specNode struct {
	Name                      []byte
	Type                      byte
	Mode, UID, GID            uint32
	MtimeNs, AtimeNs, CtimeNs int64
	Size                      uint64
	Target                    []byte
	Rdev, LinkGroup           uint64
	Subtree                   string
	Content                   []specExtent
	Xattrs                    []specXattr
}

type specExtent struct {
	Hole bool
	ID   string
	Size uint64
}

type specXattr struct{ Name, Value []byte }

// orNil is b, or nil when it is empty (as the vectors write empty fields).
func orNil(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return slices.Clone(b)
}

// parseTree reads a tree blob plaintext (SPEC §8) of version 1 (whose
// entries read with ctime_ns = mtime_ns) or 2.
func parseTree(t *testing.T, b []byte) []specNode {
	d := &dec{t: t, b: b}
	version := d.fixed(1)[0]
	if version != 1 && version != 2 {
		t.Fatalf("tree has version %d", version)
	}
	var out []specNode
	for n := d.uvarint(); n > 0; n-- {
		e := specNode{Name: orNil(d.lv()), Type: d.fixed(1)[0]}
		e.Mode, e.UID, e.GID = uint32(d.uvarint()), uint32(d.uvarint()), uint32(d.uvarint())
		e.MtimeNs, e.AtimeNs = d.varint(), d.varint()
		e.CtimeNs = e.MtimeNs
		if version == 2 {
			e.CtimeNs = d.varint()
		}
		e.Size, e.Target = d.uvarint(), orNil(d.lv())
		e.Rdev, e.LinkGroup = d.uvarint(), d.uvarint()
		e.Subtree = hex.EncodeToString(make([]byte, 32))
		if e.Type == 2 {
			e.Subtree = hex.EncodeToString(d.fixed(32))
		}
		for k := d.uvarint(); k > 0; k-- {
			x := specExtent{Hole: d.fixed(1)[0] == 1, ID: hex.EncodeToString(make([]byte, 32))}
			x.Size = d.uvarint()
			if !x.Hole {
				x.ID = hex.EncodeToString(d.fixed(32))
			}
			e.Content = append(e.Content, x)
		}
		for k := d.uvarint(); k > 0; k-- {
			e.Xattrs = append(e.Xattrs, specXattr{Name: orNil(d.lv()), Value: orNil(d.lv())})
		}
		out = append(out, e)
	}
	if len(d.b) != 0 {
		t.Fatalf("tree has %d trailing bytes", len(d.b))
	}
	return out
}

// walk decodes tree id and everything below it into manifest entries,
// hashing each file's content read through its extents.
func (r *reader) walk(id string, prefix []byte) []testutil.ManifestEntry {
	var out, below []testutil.ManifestEntry
	for _, n := range parseTree(r.t, r.blob(typeTree, id)) {
		path := append(slices.Clone(prefix), n.Name...)
		e := testutil.ManifestEntry{Type: typeNames[n.Type], Mode: fmt.Sprintf("%04o", n.Mode), UID: n.UID, GID: n.GID,
			MtimeNs: n.MtimeNs, AtimeNs: n.AtimeNs, Size: n.Size, Target: string(n.Target), Rdev: n.Rdev, LinkGroup: n.LinkGroup}
		if e.Type == "dir" {
			e.Subtree = n.Subtree
		}
		content := sha256.New()
		for _, x := range n.Content {
			m := testutil.ManifestExtent{Kind: "data", Size: x.Size}
			if x.Hole {
				m.Kind = "hole"
				content.Write(make([]byte, x.Size))
			} else {
				m.Blob = x.ID
				content.Write(r.blob(typeData, x.ID))
			}
			e.Extents = append(e.Extents, m)
		}
		for _, x := range n.Xattrs {
			e.Xattrs = append(e.Xattrs, testutil.ManifestXattr{Name: string(x.Name), Value: hex.EncodeToString(x.Value)})
		}
		if e.Type == "file" {
			e.SHA256 = hex.EncodeToString(content.Sum(nil))
		}
		setPath(&e, path)
		if e.Type == "dir" {
			below = append(below, r.walk(e.Subtree, append(path, '/'))...)
		}
		out = append(out, e)
	}
	return append(out, below...)
}

// TestTreeVectorsBySpec: the tree blob plaintexts of
// testdata/vectors/tree.json, one of each version, read by SPEC §8's
// grammar as the entries the file lists (so a version 2 writer and a
// reader of both versions agree with this document).
func TestTreeVectorsBySpec(t *testing.T) {
	b, err := os.ReadFile("../../testdata/vectors/tree.json")
	if err != nil {
		t.Fatal(err)
	}
	var vectors []struct {
		Version   int
		Plaintext string
		Nodes     []specNode
	}
	if err := json.Unmarshal(b, &vectors); err != nil {
		t.Fatal(err)
	}
	versions := map[int]bool{}
	for _, v := range vectors {
		versions[v.Version] = true
		got := parseTree(t, unhex(t, v.Plaintext))
		if g, w := testutil.JSON(got), testutil.JSON(v.Nodes); g != w {
			t.Errorf("version %d reads as\n%s\nthe vector says\n%s", v.Version, g, w)
		}
	}
	if !versions[1] || !versions[2] {
		t.Errorf("the vectors hold versions %v, want 1 and 2", versions)
	}
}

func setPath(e *testutil.ManifestEntry, path []byte) {
	if utf8.Valid(path) {
		e.Path = string(path)
	} else {
		e.PathHex = hex.EncodeToString(path)
	}
}

// snapshot is a snapshot's plaintext (SPEC §8).
type snapshot struct {
	Version int       `json:"version"`
	Seq     uint64    `json:"seq"`
	Time    time.Time `json:"time"`
	Host    string    `json:"host"`
	Parent  string    `json:"parent"`
	Tree    string    `json:"tree"`
	Indexes []string  `json:"indexes"`
	Files   uint64    `json:"files"`
	Bytes   uint64    `json:"bytes"`
}

// snapshots opens every snapshot and forget record and checks the chain
// (SPEC §8, §8.1); it returns the present snapshots by seq and the
// forgotten ones.
func (r *reader) snapshots() ([]testutil.ManifestSnapshot, []testutil.ManifestForgotten) {
	t := r.t
	var snaps []testutil.ManifestSnapshot
	for _, name := range r.list("snapshots") {
		var s snapshot
		dec := json.NewDecoder(bytes.NewReader(r.mustOpen(typeSnapshot, "snapshots/"+name, unhex(t, name))))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&s); err != nil || s.Version != 1 {
			t.Fatalf("snapshot %s: %v", name, err)
		}
		snaps = append(snaps, testutil.ManifestSnapshot{Seq: s.Seq, ID: name, Parent: s.Parent, Tree: s.Tree,
			Time: s.Time.UTC(), Host: s.Host, Files: s.Files, Bytes: s.Bytes, Indexes: s.Indexes})
	}
	slices.SortFunc(snaps, func(a, b testutil.ManifestSnapshot) int { return cmp.Compare(a.Seq, b.Seq) })
	var forgot []testutil.ManifestForgotten
	for _, name := range r.list("snapshots/forget") {
		pt := r.mustOpen(typeForget, "snapshots/forget/"+name, unhex(t, name))
		if pt[0] != 1 || uint64(len(pt)-5) != uint64(binary.BigEndian.Uint32(pt[1:5]))*40 {
			t.Fatalf("forget record %s is malformed", name)
		}
		for p := pt[5:]; len(p) > 0; p = p[40:] {
			forgot = append(forgot, testutil.ManifestForgotten{Seq: binary.BigEndian.Uint64(p), ID: hex.EncodeToString(p[8:40])})
		}
	}
	// The chain: every seq from 1 is a snapshot or forgotten, each parent
	// the one before.
	ids := map[uint64]string{}
	for _, f := range forgot {
		ids[f.Seq] = f.ID
	}
	for _, s := range snaps {
		ids[s.Seq] = s.ID
	}
	for _, s := range snaps {
		want := strings.Repeat("0", 64)
		if s.Seq > 1 {
			want = ids[s.Seq-1]
		}
		if len(ids) != int(snaps[len(snaps)-1].Seq) || s.Parent != want {
			t.Errorf("the chain is broken at snapshot %d", s.Seq)
		}
	}
	return snaps, forgot
}

// TestGoldenBySpec: a reader written from docs/SPEC.md alone reads every
// golden repository (SPEC §14) as its manifest says: with the recovery
// code and with the vault slot's secret, every snapshot, forget record
// and pack header, the lease, every tree entry and every file's content.
func TestGoldenBySpec(t *testing.T) {
	for _, dir := range testutil.GoldenDirs(t, "../../testdata/golden") {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			m := testutil.ReadManifest(t, dir)
			code, err := os.ReadFile(filepath.Join(dir, testutil.GoldenCodeFile))
			if err != nil {
				t.Fatal(err)
			}
			secret := codeSecret(t, string(code))
			remote := filepath.Join(dir, testutil.GoldenRepoDir)
			r := open(t, remote, "recovery-code", func(salt []byte) []byte { return hkdfKey(t, secret, salt, "sealfs v1 recovery code kek") })
			// The vault slot's KEK from the secret S the vault keeps
			// (docs/VAULT.md, "KEK_slot"; SPEC §4.2).
			vault := unhex(t, m.VaultSecret)
			open(t, remote, "vault", func(salt []byte) []byte { return hkdfKey(t, vault, salt, "sealfs v1 vault slot kek") })
			readAll(t, r, m)
			testutil.SameObjects(t, remote, m.Objects)
		})
	}
}

func readAll(t *testing.T, r *reader, m *testutil.Manifest) {
	snaps, forgot := r.snapshots()
	if testutil.JSON(forgot) != testutil.JSON(m.Forgotten) {
		t.Errorf("forgotten %s, the manifest says %s", testutil.JSON(forgot), testutil.JSON(m.Forgotten))
	}
	if len(snaps) != len(m.Snapshots) {
		t.Fatalf("%d snapshots, the manifest says %d", len(snaps), len(m.Snapshots))
	}
	r.loadIndexes(snaps[len(snaps)-1].Indexes)
	r.checkPackHeaders()
	var lease struct {
		Holder   string    `json:"holder"`
		Host     string    `json:"host"`
		PID      int       `json:"pid"`
		Acquired time.Time `json:"acquired"`
		Expires  time.Time `json:"expires"`
	}
	if err := json.Unmarshal(r.mustOpen(typeLease, "lease", make([]byte, 32)), &lease); err != nil {
		t.Fatal(err)
	}
	got := testutil.ManifestLease{Holder: lease.Holder, Host: lease.Host, PID: lease.PID, Acquired: lease.Acquired.UTC(), Expires: lease.Expires.UTC()}
	if testutil.JSON(got) != testutil.JSON(m.Lease) {
		t.Errorf("lease %s, the manifest says %s", testutil.JSON(got), testutil.JSON(m.Lease))
	}
	for i, s := range snaps {
		want := m.Snapshots[i]
		entries := r.walk(s.Tree, nil)
		s.Entries = entries
		slices.SortFunc(s.Entries, func(a, b testutil.ManifestEntry) int { return strings.Compare(a.Key(), b.Key()) })
		slices.SortFunc(want.Entries, func(a, b testutil.ManifestEntry) int { return strings.Compare(a.Key(), b.Key()) })
		if g, w := testutil.JSON(s), testutil.JSON(want); g != w {
			t.Errorf("snapshot %d reads as\n%s\nthe manifest says\n%s", s.Seq, g, w)
		}
	}
}
