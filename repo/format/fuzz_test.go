package format

import (
	"bytes"
	"encoding/hex"
	"reflect"
	"testing"

	"github.com/sealfs/sealfs/crypt"
)

func sampleTree() *Tree {
	return &Tree{Nodes: []*Node{
		{Name: []byte("a"), Type: NodeFile, Mode: 0o644, UID: 1, GID: 2, MtimeNs: -5, AtimeNs: 1 << 60, Size: 10,
			Content: []Extent{{ID: crypt.ID{1}, Size: 4}, {Hole: true, Size: 6}}, LinkGroup: 3,
			Xattrs: []Xattr{{Name: []byte("user.x"), Value: []byte("v")}}},
		{Name: []byte("d"), Type: NodeDir, Mode: 0o755, Subtree: crypt.ID{2}},
		{Name: []byte("l\xff"), Type: NodeSymlink, Mode: 0o777, Target: []byte("/t"), Size: 2},
		{Name: []byte("z"), Type: NodeCharDev, Rdev: 259},
	}}
}

func FuzzDecodeTree(f *testing.F) {
	b, err := EncodeTree(sampleTree())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte{1, 0})
	f.Add([]byte{2, 0})
	f.Add(encodeTreeV1(f, sampleTree()))
	f.Fuzz(func(t *testing.T, b []byte) {
		tree, err := DecodeTree(b)
		if err != nil {
			return
		}
		again, err := EncodeTree(tree)
		if err != nil {
			t.Fatalf("a decoded tree does not encode: %v", err)
		}
		if b[0] == TreeVersion {
			if !bytes.Equal(again, b) {
				t.Fatalf("decode then encode changed the bytes:\n%x\n%x", b, again)
			}
			return
		}
		// A version 1 tree is written again as version 2, each ctime
		// being the mtime, and reads back the same; its own bytes are
		// those of the version 1 encoder.
		for _, n := range tree.Nodes {
			if n.CtimeNs != n.MtimeNs {
				t.Fatalf("version 1 entry %q reads with ctime %d, mtime %d", n.Name, n.CtimeNs, n.MtimeNs)
			}
		}
		back, err := DecodeTree(again)
		if err != nil || !reflect.DeepEqual(back, tree) {
			t.Fatalf("a version 1 tree written as version 2 reads back differently (%v)", err)
		}
		if v1 := encodeTreeV1(t, tree); !bytes.Equal(v1, b) {
			t.Fatalf("decode then encode as version 1 changed the bytes:\n%x\n%x", b, v1)
		}
	})
}

func FuzzDecodeIndex(f *testing.F) {
	f.Add(EncodeIndex([]IndexEntry{{ID: crypt.ID{1}, Location: Location{Type: crypt.TypeDataBlob, Pack: crypt.ID{2}, Offset: 5, Length: 100, RawLength: 70}}}))
	f.Add(EncodeIndex(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, err := DecodeIndex(b)
		if err != nil {
			return
		}
		if !bytes.Equal(EncodeIndex(entries), b) {
			t.Fatal("decode then encode changed the bytes")
		}
	})
}

// FuzzOpenIndexTable: a table accepts exactly what DecodeIndex accepts,
// and then holds each blob once, sorted, with the location of the blob's
// last entry (as a reader of the entries in order takes it); a blob the
// object does not hold is not found.
func FuzzOpenIndexTable(f *testing.F) {
	e := func(id, pack byte) IndexEntry {
		return IndexEntry{ID: crypt.ID{id, 3}, Location: Location{Type: crypt.TypeDataBlob, Pack: crypt.ID{pack}, Offset: 5, Length: 100, RawLength: 70}}
	}
	f.Add(EncodeIndex([]IndexEntry{e(1, 2), e(3, 2), e(3, 1)}))
	f.Add(EncodeIndex([]IndexEntry{e(9, 2), e(1, 2), e(9, 1)}))
	f.Add(EncodeIndex(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, derr := DecodeIndex(b)
		tb, err := OpenIndexTable(b)
		if (err == nil) != (derr == nil) {
			t.Fatalf("OpenIndexTable: %v, DecodeIndex: %v", err, derr)
		}
		if err != nil {
			return
		}
		last := map[crypt.ID]IndexEntry{}
		for _, e := range entries {
			last[e.ID] = e
		}
		if tb.Len() != len(last) {
			t.Fatalf("%d entries, %d blobs", tb.Len(), len(last))
		}
		for i := range tb.Len() {
			got := tb.Entry(i)
			if prev := tb.Entry(max(i, 1) - 1).ID; i > 0 && bytes.Compare(prev[:], got.ID[:]) >= 0 {
				t.Fatalf("entry %d out of order", i)
			}
			if last[got.ID] != got {
				t.Fatalf("entry %d is %+v, the blob's last is %+v", i, got, last[got.ID])
			}
		}
		for id, want := range last {
			if got, ok := tb.Find(id); !ok || got != want {
				t.Fatalf("found %+v (%v), want %+v", got, ok, want)
			}
			for _, at := range []int{0, 15, 31} {
				miss := id
				miss[at]++
				if _, in := last[miss]; in {
					continue
				}
				if _, ok := tb.Find(miss); ok {
					t.Fatalf("found blob %x, which the object does not hold", miss[:4])
				}
			}
		}
	})
}

func FuzzDecodePackHeader(f *testing.F) {
	entries := []IndexEntry{
		{ID: crypt.ID{1}, Location: Location{Type: crypt.TypeDataBlob, Offset: 0, Length: 100, RawLength: 70}},
		{ID: crypt.ID{2}, Location: Location{Type: crypt.TypeTreeBlob, Offset: 100, Length: 50, RawLength: 20}},
	}
	f.Add(EncodePackHeader(entries), int64(150))
	f.Fuzz(func(t *testing.T, b []byte, area int64) {
		got, err := DecodePackHeader(b, crypt.ID{9}, area)
		if err != nil {
			return
		}
		if !bytes.Equal(EncodePackHeader(got), b) {
			t.Fatal("decode then encode changed the bytes")
		}
		var sum int64
		for _, e := range got {
			sum += int64(e.Length)
		}
		if sum != area {
			t.Fatalf("entries cover %d of a %d-byte area", sum, area)
		}
	})
}

func FuzzDecodeSnapshot(f *testing.F) {
	b, _ := EncodeSnapshot(&Snapshot{Version: 1, Seq: 3, Tree: crypt.ID{1}, Indexes: []crypt.ID{{2}}})
	f.Add(b)
	b, _ = EncodeSnapshot(&Snapshot{Version: SnapshotRootVersion, Seq: 3, Tree: crypt.ID{1}, Root: &RootAttr{Mode: 0o1750, UID: 7, MtimeNs: -1,
		Xattrs: []Xattr{{Name: []byte("user.a"), Value: []byte{0}}, {Name: []byte("user.b")}}}})
	f.Add(b)
	b, _ = EncodeSnapshot(&Snapshot{Version: SnapshotForksVersion, Seq: 4, Tree: crypt.ID{1}, Forks: []crypt.ID{{3}, {5}}})
	f.Add(b)
	b, _ = EncodeSnapshot(&Snapshot{Version: SnapshotForksVersion, Seq: 5, Tree: crypt.ID{1}, Prune: true})
	f.Add(b)
	b, _ = EncodeSnapshot(&Snapshot{Version: SnapshotColdVersion, Seq: 9, Tree: crypt.ID{1}, Indexes: []crypt.ID{{2}}, Cold: []crypt.ID{{3}, {4}},
		History: []HistoryRef{{ID: crypt.ID{5}, First: 1, Last: 4}}})
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeSnapshot(b)
		if err != nil {
			return
		}
		again, err := EncodeSnapshot(s)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeSnapshot(again); err != nil {
			t.Fatalf("re-decode failed: %v", err)
		}
	})
}

func FuzzParseConfig(f *testing.F) {
	mk, _ := crypt.NewMasterKey()
	id, _ := crypt.NewRepoID()
	keys, _ := crypt.DeriveKeys(mk, id)
	obj, _ := EncodeConfig(&Config{Version: 1, Repository: id.String(), ChunkMin: 1 << 18, ChunkAvg: 1 << 20, ChunkMax: 1 << 22, PackSize: 1 << 24, Compression: "zstd"}, keys)
	f.Add(obj)
	f.Fuzz(func(t *testing.T, b []byte) {
		c, body, mac, err := ParseConfig(b)
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("parsed config does not validate: %v", err)
		}
		// Only the exact bytes that were MACed verify.
		if keys.VerifyConfigMAC(body, mac) && !bytes.Equal(b, obj) {
			t.Fatal("a changed config verified")
		}
	})
}

func TestTreeRoundTrip(t *testing.T) {
	tree := sampleTree()
	b, err := EncodeTree(tree)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeTree(b)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := EncodeTree(got)
	if !bytes.Equal(b, again) {
		t.Fatal("round trip changed the encoding")
	}
	bad := []*Tree{
		{Nodes: []*Node{{Name: []byte("b"), Type: NodeFile}, {Name: []byte("a"), Type: NodeFile}}},               // unsorted
		{Nodes: []*Node{{Name: []byte("a/b"), Type: NodeFile}}},                                                  // slash
		{Nodes: []*Node{{Name: []byte(".."), Type: NodeDir}}},                                                    // dot-dot
		{Nodes: []*Node{{Name: []byte("f"), Type: NodeFile, Size: 5, Content: []Extent{{Hole: true, Size: 4}}}}}, // size mismatch
		{Nodes: []*Node{{Name: []byte("f"), Type: 99}}},                                                          // type
	}
	for i, tr := range bad {
		if _, err := EncodeTree(tr); err == nil {
			t.Errorf("bad tree %d encoded", i)
		}
	}
}

func FuzzDecodeForget(f *testing.F) {
	f.Add(EncodeForget([]Forgotten{{Seq: 1, ID: crypt.ID{1}}, {Seq: 7, ID: crypt.ID{2}}}))
	f.Add(EncodeForget([]Forgotten{{Seq: 3, ID: crypt.ID{1}}, {Seq: 3, ID: crypt.ID{2}}}))
	f.Add(encodeForget(forgetV1, []Forgotten{{Seq: 1, ID: crypt.ID{1}}, {Seq: 7, ID: crypt.ID{2}}}))
	f.Add([]byte{1, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, err := DecodeForget(b)
		if err != nil {
			return
		}
		if len(entries) == 0 {
			t.Fatal("a record without entries decoded")
		}
		if again := encodeForget(b[0], entries); !bytes.Equal(again, b) {
			t.Fatalf("decode then encode changed the bytes:\n%x\n%x", b, again)
		}
	})
}

// encodeTreeV1 writes a tree as version 1 did (SPEC §8: no ctime_ns).
func encodeTreeV1(tb testing.TB, tr *Tree) []byte {
	tb.Helper()
	b, err := encodeTree(tr, treeV1)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// FuzzParseSnapshotName: a name that parses is the one name of its
// sequence number and id (version 2), or of its id (version 1).
func FuzzParseSnapshotName(f *testing.F) {
	id := crypt.ID{1, 2, 3}
	f.Add(SnapshotSeqName(1, id))
	f.Add(SnapshotSeqName(1<<64-1, id))
	f.Add(SnapshotName(id))
	f.Add("snapshots/00000000000000000000-" + id.String())
	f.Add(ForgetName(id))
	f.Fuzz(func(t *testing.T, name string) {
		seq, id, ok := ParseSnapshotName(name)
		if !ok {
			return
		}
		want := SnapshotName(id)
		if seq != 0 {
			want = SnapshotSeqName(seq, id)
		}
		if name != want || !MetadataName(name) || IsForgetName(name) {
			t.Fatalf("%q parses as %d %s, whose name is %q", name, seq, id, want)
		}
	})
}

func FuzzDecodeHistory(f *testing.F) {
	for _, v := range makeHistoryVectors(f) {
		pt, _ := hex.DecodeString(v.Plaintext)
		f.Add(pt)
	}
	f.Add([]byte{1, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		snaps, err := DecodeHistory(b)
		if err != nil {
			return
		}
		if len(snaps) == 0 {
			t.Fatal("a segment without entries decoded")
		}
		again, err := EncodeHistory(snaps)
		if err != nil {
			t.Fatalf("a decoded segment does not encode: %v", err)
		}
		back, err := DecodeHistory(again)
		if err != nil {
			t.Fatalf("a segment as encoded does not decode: %v", err)
		}
		if twice, _ := EncodeHistory(back); !bytes.Equal(twice, again) {
			t.Fatal("decode, encode, decode changed the segment")
		}
	})
}
