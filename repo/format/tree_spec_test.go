package format

import (
	"bytes"
	"encoding/binary"
	"reflect"
	"strings"
	"testing"

	"github.com/sealfs/sealfs/crypt"
)

// specTree is the grammar of a tree blob as docs/SPEC.md §8 writes it,
// spelled out field by field: the test holds the code to the spec.
type specTree struct{ b []byte }

func (s *specTree) u(v uint64)        { s.b = binary.AppendUvarint(s.b, v) }
func (s *specTree) i(v int64)         { s.b = binary.AppendVarint(s.b, v) }
func (s *specTree) raw(v ...byte)     { s.b = append(s.b, v...) }
func (s *specTree) lv(v string)       { s.u(uint64(len(v))); s.b = append(s.b, v...) }
func (s *specTree) xattr(n, v string) { s.lv(n); s.lv(v) }

// specSample is the tree whose bytes specTreeBytes writes.
func specSample() *Tree {
	sub, blob := crypt.ID{0xd1}, crypt.ID{0xb1}
	return &Tree{Nodes: []*Node{
		{Name: []byte("dir"), Type: NodeDir, Mode: 0o1777, UID: 1, GID: 2, MtimeNs: -5, AtimeNs: 300, CtimeNs: 7, Subtree: sub,
			Xattrs: []Xattr{{Name: []byte("user.d"), Value: []byte("1")}}},
		{Name: []byte("file"), Type: NodeFile, Mode: 0o4755, UID: 1000, GID: 1000, MtimeNs: 1 << 40, CtimeNs: 1<<40 + 1, Size: 70000, LinkGroup: 3,
			Content: []Extent{{ID: blob, Size: 4464}, {Hole: true, Size: 65536}},
			Xattrs:  []Xattr{{Name: []byte("user.a"), Value: nil}, {Name: []byte("user.b"), Value: []byte{0, 0xff}}}},
		{Name: []byte("link"), Type: NodeSymlink, Mode: 0o777, Size: 4, Target: []byte("file")},
		{Name: []byte("null"), Type: NodeCharDev, Mode: 0o666, Rdev: 259},
	}}
}

// specTreeBytes writes specSample as SPEC §8's grammar says, as version 1
// (no ctime_ns) or 2.
func specTreeBytes(version byte) []byte {
	sub, blob := crypt.ID{0xd1}, crypt.ID{0xb1}
	var s specTree
	ctime := func(v int64) {
		if version == 2 {
			s.i(v)
		}
	}
	s.raw(version)
	s.u(4)
	// dir
	s.lv("dir")
	s.raw(2)
	s.u(0o1777)
	s.u(1)
	s.u(2)
	s.i(-5)
	s.i(300)
	ctime(7)
	s.u(0)
	s.lv("")
	s.u(0)
	s.u(0)
	s.raw(sub[:]...)
	s.u(0)
	s.u(1)
	s.xattr("user.d", "1")
	// file
	s.lv("file")
	s.raw(1)
	s.u(0o4755)
	s.u(1000)
	s.u(1000)
	s.i(1 << 40)
	s.i(0)
	ctime(1<<40 + 1)
	s.u(70000)
	s.lv("")
	s.u(0)
	s.u(3)
	s.u(2)
	s.raw(0)
	s.u(4464)
	s.raw(blob[:]...)
	s.raw(1)
	s.u(65536)
	s.u(2)
	s.xattr("user.a", "")
	s.xattr("user.b", "\x00\xff")
	// link
	s.lv("link")
	s.raw(3)
	s.u(0o777)
	s.u(0)
	s.u(0)
	s.i(0)
	s.i(0)
	ctime(0)
	s.u(4)
	s.lv("file")
	s.u(0)
	s.u(0)
	s.u(0)
	s.u(0)
	// null
	s.lv("null")
	s.raw(5)
	s.u(0o666)
	s.u(0)
	s.u(0)
	s.i(0)
	s.i(0)
	ctime(0)
	s.u(0)
	s.lv("")
	s.u(259)
	s.u(0)
	s.u(0)
	s.u(0)
	return s.b
}

// TestTreeBytesAsSpecified: EncodeTree writes exactly the bytes of SPEC
// §8's grammar, version 2 (xattrs as uvarint len(name) || name || uvarint
// len(value) || value; ctime_ns after atime_ns), and DecodeTree reads them
// back.
func TestTreeBytesAsSpecified(t *testing.T) {
	want := specTreeBytes(2)
	got, err := EncodeTree(specSample())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("EncodeTree gives\n%x\nSPEC §8 gives\n%x", got, want)
	}
	back, err := DecodeTree(want)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, specSample()) {
		t.Fatal("the specified bytes do not decode to the same tree")
	}
}

// TestTreeVersion1AsSpecified: a version 1 tree (SPEC §8: no ctime_ns) is
// still read, each entry's ctime being its mtime.
func TestTreeVersion1AsSpecified(t *testing.T) {
	back, err := DecodeTree(specTreeBytes(1))
	if err != nil {
		t.Fatal(err)
	}
	want := specSample()
	for _, n := range want.Nodes {
		n.CtimeNs = n.MtimeNs
	}
	if !reflect.DeepEqual(back, want) {
		t.Fatal("the version 1 bytes do not decode to the tree with ctime = mtime")
	}
	if _, err := DecodeTree(append([]byte{3}, specTreeBytes(2)[1:]...)); err == nil {
		t.Fatal("a tree of version 3 decodes")
	}
}

// TestTreeRulesAsSpecified: the rules SPEC §8 lists for xattrs, owners and
// symlinks are the ones a reader enforces.
func TestTreeRulesAsSpecified(t *testing.T) {
	file := func(edit func(*Node)) *Tree {
		n := &Node{Name: []byte("f"), Type: NodeFile}
		edit(n)
		return &Tree{Nodes: []*Node{n}}
	}
	ok := []*Tree{
		file(func(n *Node) {
			n.Xattrs = []Xattr{{Name: []byte(strings.Repeat("n", 255)), Value: make([]byte, 64<<10)}}
		}),
		file(func(n *Node) { n.UID, n.GID = 1<<32-1, 1<<32-1 }),
		file(func(n *Node) { n.Size, n.Content = 2, []Extent{{Hole: true, Size: 1}, {Hole: true, Size: 1}} }),
	}
	bad := map[string]*Tree{
		"xattr name of 256 bytes": file(func(n *Node) { n.Xattrs = []Xattr{{Name: []byte(strings.Repeat("n", 256))}} }),
		"empty xattr name":        file(func(n *Node) { n.Xattrs = []Xattr{{Name: nil, Value: []byte("v")}} }),
		"xattr value over 64 KiB": file(func(n *Node) { n.Xattrs = []Xattr{{Name: []byte("n"), Value: make([]byte, 64<<10+1)}} }),
		"xattrs out of order":     file(func(n *Node) { n.Xattrs = []Xattr{{Name: []byte("b")}, {Name: []byte("a")}} }),
		"1025 xattrs":             file(func(n *Node) { n.Xattrs = manyXattrs(1025) }),
		"symlink without target":  {Nodes: []*Node{{Name: []byte("l"), Type: NodeSymlink}}},
		"target on a file":        file(func(n *Node) { n.Target = []byte("x") }),
		"empty extent":            file(func(n *Node) { n.Content = []Extent{{Hole: true, Size: 0}} }),
	}
	for i, tr := range ok {
		if _, err := EncodeTree(tr); err != nil {
			t.Errorf("valid tree %d: %v", i, err)
		}
	}
	for name, tr := range bad {
		if _, err := EncodeTree(tr); err == nil {
			t.Errorf("%s: encoded", name)
		}
	}
	// A uid of 2^32 or more does not decode; one below does.
	for uid, valid := range map[uint64]bool{1<<32 - 1: true, 1 << 32: false} {
		var s specTree
		s.raw(0x01)
		s.u(1)
		s.lv("f")
		s.raw(1)
		s.u(0o644)
		s.u(uid)
		for range 9 { // gid, mtime, atime, size, target, rdev, link group, extents, xattrs
			s.u(0)
		}
		if _, err := DecodeTree(s.b); (err == nil) != valid {
			t.Errorf("uid %d: decoding gives %v", uid, err)
		}
	}
}

func manyXattrs(n int) []Xattr {
	out := make([]Xattr, n)
	for i := range out {
		out[i].Name = binary.BigEndian.AppendUint32([]byte("user."), uint32(i))
	}
	return out
}

// TestSnapshotRootAsSpecified: a snapshot's root attributes (SPEC §8) are
// written as the named JSON object, read back, and held to a directory
// entry's rules: a mode of more than 07777 bits or xattrs out of order are
// refused when written and when read.
func TestSnapshotRootAsSpecified(t *testing.T) {
	s := &Snapshot{Version: SnapshotRootVersion, Seq: 1, Tree: crypt.ID{1}, Root: &RootAttr{Mode: 0o2750, UID: 1, GID: 2, MtimeNs: 3, AtimeNs: 4, CtimeNs: 5,
		Xattrs: []Xattr{{Name: []byte("user.a"), Value: []byte("v")}}}}
	b, err := EncodeSnapshot(s)
	if err != nil {
		t.Fatal(err)
	}
	want := `"root":{"mode":1512,"uid":1,"gid":2,"mtime_ns":3,"atime_ns":4,"ctime_ns":5,"xattrs":[{"name":"dXNlci5h","value":"dg=="}]}`
	if !strings.Contains(string(b), want) {
		t.Fatalf("the snapshot is\n%s\nwant it to hold\n%s", b, want)
	}
	back, err := DecodeSnapshot(b)
	if err != nil || !reflect.DeepEqual(back.Root, s.Root) {
		t.Fatalf("reads back as %+v, %v", back.Root, err)
	}
	for name, root := range map[string]*RootAttr{
		"mode with type bits": {Mode: 0o40755},
		"xattrs out of order": {Xattrs: []Xattr{{Name: []byte("user.b")}, {Name: []byte("user.a")}}},
	} {
		s.Root = root
		if _, err := EncodeSnapshot(s); err == nil {
			t.Errorf("%s: encoded", name)
		}
		bad := strings.Replace(string(b), want[:len(`"root":{"mode":1512`)], `"root":{"mode":16877`, 1)
		if name == "mode with type bits" {
			if _, err := DecodeSnapshot([]byte(bad)); err == nil {
				t.Errorf("%s: decoded", name)
			}
		}
	}
}
