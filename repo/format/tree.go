package format

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"

	"github.com/sealfs/sealfs/crypt"
)

// NodeType is the kind of a directory entry.
type NodeType uint8

// Node types of format version 1 (docs/SPEC.md §8, "Trees").
const (
	NodeFile     NodeType = 1
	NodeDir      NodeType = 2
	NodeSymlink  NodeType = 3
	NodeFIFO     NodeType = 4
	NodeCharDev  NodeType = 5
	NodeBlockDev NodeType = 6
	NodeSocket   NodeType = 7
	lastNodeType          = NodeSocket
)

// Extent is a run of a file's content: a stored data blob, or a hole of
// zeros that is not stored at all.
type Extent struct {
	Hole bool
	ID   crypt.ID // the data blob, when not a hole
	Size uint64
}

// Xattr is an extended attribute.
type Xattr struct {
	Name  []byte `json:"name"`
	Value []byte `json:"value"`
}

// Node is one directory entry.
type Node struct {
	Name      []byte // any bytes but '/' and NUL; not "." or ".."
	Type      NodeType
	Mode      uint32 // permission bits with setuid, setgid and sticky (07777)
	UID, GID  uint32
	MtimeNs   int64
	AtimeNs   int64
	CtimeNs   int64    // status change time; a version 1 tree reads it as MtimeNs
	Size      uint64   // file size; for symlinks the target length
	Target    []byte   // symlink target
	Rdev      uint64   // device number of device nodes
	LinkGroup uint64   // non-zero for files that are hard links of each other
	Subtree   crypt.ID // tree blob of a directory
	Content   []Extent // extents of a file, summing to Size
	Xattrs    []Xattr  // sorted by name
}

// Tree is a directory: its entries sorted by name.
type Tree struct {
	Nodes []*Node
}

// Tree blob versions (docs/SPEC.md §8): the first byte of a tree's
// plaintext. Version 2 adds ctime_ns; a writer writes TreeVersion, a reader
// reads both.
const (
	treeV1      = 1
	TreeVersion = 2
)

// Limits of a node's extended attributes (docs/SPEC.md §8): a reader
// rejects a tree over them, so a writer must refuse them first.
const (
	MaxXattrs        = 1024     // per node
	MaxXattrNameLen  = 255      // bytes of a name (and at least 1)
	MaxXattrValueLen = 64 << 10 // bytes of a value
)

// Limits enforced when parsing trees.
const (
	maxNameLen   = 1024
	maxTargetLen = 4096
	maxXattrs    = MaxXattrs
	maxXattrLen  = MaxXattrValueLen
)

// Sort orders the tree's nodes (and each node's xattrs) canonically.
func (t *Tree) Sort() {
	sort.Slice(t.Nodes, func(i, j int) bool { return bytes.Compare(t.Nodes[i].Name, t.Nodes[j].Name) < 0 })
	for _, n := range t.Nodes {
		sort.Slice(n.Xattrs, func(i, j int) bool { return bytes.Compare(n.Xattrs[i].Name, n.Xattrs[j].Name) < 0 })
	}
}

// Find returns the node named name, or nil.
func (t *Tree) Find(name []byte) *Node {
	i := sort.Search(len(t.Nodes), func(i int) bool { return bytes.Compare(t.Nodes[i].Name, name) >= 0 })
	if i < len(t.Nodes) && bytes.Equal(t.Nodes[i].Name, name) {
		return t.Nodes[i]
	}
	return nil
}

// EncodeTree encodes a tree canonically. The caller must have sorted it;
// an invalid tree is an error, so that nothing unreadable is ever stored.
func EncodeTree(t *Tree) ([]byte, error) { return encodeTree(t, TreeVersion) }

// encodeTree encodes t as the given version; only tests write version 1.
func encodeTree(t *Tree, version byte) ([]byte, error) {
	b := []byte{version}
	b = binary.AppendUvarint(b, uint64(len(t.Nodes)))
	for i, n := range t.Nodes {
		if i > 0 && bytes.Compare(t.Nodes[i-1].Name, n.Name) >= 0 {
			return nil, fmt.Errorf("tree entries are not sorted and unique at %q", n.Name)
		}
		if err := n.validate(); err != nil {
			return nil, err
		}
		b = appendBytes(b, n.Name)
		b = append(b, byte(n.Type))
		b = binary.AppendUvarint(b, uint64(n.Mode))
		b = binary.AppendUvarint(b, uint64(n.UID))
		b = binary.AppendUvarint(b, uint64(n.GID))
		b = binary.AppendVarint(b, n.MtimeNs)
		b = binary.AppendVarint(b, n.AtimeNs)
		if version != treeV1 {
			b = binary.AppendVarint(b, n.CtimeNs)
		}
		b = binary.AppendUvarint(b, n.Size)
		b = appendBytes(b, n.Target)
		b = binary.AppendUvarint(b, n.Rdev)
		b = binary.AppendUvarint(b, n.LinkGroup)
		if n.Type == NodeDir {
			b = append(b, n.Subtree[:]...)
		}
		b = binary.AppendUvarint(b, uint64(len(n.Content)))
		for _, e := range n.Content {
			if e.Hole {
				b = append(b, 1)
				b = binary.AppendUvarint(b, e.Size)
			} else {
				b = append(b, 0)
				b = binary.AppendUvarint(b, e.Size)
				b = append(b, e.ID[:]...)
			}
		}
		b = binary.AppendUvarint(b, uint64(len(n.Xattrs)))
		for _, x := range n.Xattrs {
			b = appendBytes(b, x.Name)
			b = appendBytes(b, x.Value)
		}
	}
	if len(b) > MaxBlobSize {
		return nil, fmt.Errorf("directory encodes to %d bytes, over the %d-byte limit", len(b), MaxBlobSize)
	}
	return b, nil
}

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

// Validate reports whether n is an entry a tree may hold, as EncodeTree
// and DecodeTree check it.
func (n *Node) Validate() error { return n.validate() }

func (n *Node) validate() error {
	switch {
	case len(n.Name) == 0 || len(n.Name) > maxNameLen:
		return fmt.Errorf("entry name of %d bytes", len(n.Name))
	case bytes.IndexByte(n.Name, '/') >= 0 || bytes.IndexByte(n.Name, 0) >= 0:
		return fmt.Errorf("entry name %q holds '/' or NUL", n.Name)
	case string(n.Name) == "." || string(n.Name) == "..":
		return fmt.Errorf("entry name %q", n.Name)
	case n.Type < NodeFile || n.Type > lastNodeType:
		return fmt.Errorf("entry %q has unknown type %d", n.Name, n.Type)
	case n.Mode&^07777 != 0:
		return fmt.Errorf("entry %q has mode %o with more than permission bits", n.Name, n.Mode)
	case len(n.Target) > maxTargetLen || (len(n.Target) > 0) != (n.Type == NodeSymlink):
		return fmt.Errorf("entry %q has a bad symlink target", n.Name)
	case n.Type != NodeFile && len(n.Content) > 0:
		return fmt.Errorf("entry %q is not a file but has content", n.Name)
	case n.Type != NodeDir && !n.Subtree.IsZero():
		return fmt.Errorf("entry %q is not a directory but has a subtree", n.Name)
	case len(n.Xattrs) > maxXattrs:
		return fmt.Errorf("entry %q has %d xattrs", n.Name, len(n.Xattrs))
	}
	var sum uint64
	for i, e := range n.Content {
		if e.Size == 0 || (e.Hole && !e.ID.IsZero()) || (!e.Hole && e.Size > MaxBlobSize) {
			return fmt.Errorf("entry %q has a bad extent %d", n.Name, i)
		}
		if sum+e.Size < sum {
			return fmt.Errorf("entry %q content overflows", n.Name)
		}
		sum += e.Size
	}
	if n.Type == NodeFile && sum != n.Size {
		return fmt.Errorf("entry %q: extents hold %d bytes of a %d-byte file", n.Name, sum, n.Size)
	}
	for i, x := range n.Xattrs {
		if len(x.Name) == 0 || len(x.Name) > MaxXattrNameLen || len(x.Value) > maxXattrLen {
			return fmt.Errorf("entry %q has a bad xattr", n.Name)
		}
		if i > 0 && bytes.Compare(n.Xattrs[i-1].Name, x.Name) >= 0 {
			return fmt.Errorf("entry %q xattrs are not sorted and unique", n.Name)
		}
	}
	return nil
}

var errTreeTruncated = errors.New("tree is truncated")

// treeDecoder reads the fields of a tree encoding, insisting on minimal varints.
type treeDecoder struct {
	b   []byte
	err error
}

func (d *treeDecoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errTreeTruncated
		return 0
	}
	if n != len(binary.AppendUvarint(nil, v)) {
		d.err = errors.New("tree holds a non-minimal varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *treeDecoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errTreeTruncated
		return 0
	}
	if n != len(binary.AppendVarint(nil, v)) {
		d.err = errors.New("tree holds a non-minimal varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *treeDecoder) u32() uint32 {
	v := d.uvarint()
	if v > 0xffffffff && d.err == nil {
		d.err = errors.New("tree holds a 32-bit field over 2^32")
	}
	return uint32(v)
}

func (d *treeDecoder) fixed(n int) []byte {
	if d.err != nil {
		return nil
	}
	if len(d.b) < n {
		d.err = errTreeTruncated
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *treeDecoder) bytes(limit int) []byte {
	n := d.uvarint()
	if d.err == nil && n > uint64(limit) {
		d.err = fmt.Errorf("tree holds a field of %d bytes, over the %d limit", n, limit)
	}
	v := d.fixed(int(n))
	if len(v) == 0 {
		return nil
	}
	return bytes.Clone(v)
}

func (d *treeDecoder) byte1() byte {
	v := d.fixed(1)
	if v == nil {
		return 0
	}
	return v[0]
}

// DecodeTree parses a tree plaintext of version 1 or 2, rejecting
// non-canonical encodings. A version 1 tree has no ctime: its nodes read
// with CtimeNs = MtimeNs.
func DecodeTree(b []byte) (*Tree, error) {
	if len(b) < 1 || (b[0] != treeV1 && b[0] != TreeVersion) {
		return nil, errors.New("tree has a bad version byte")
	}
	v1 := b[0] == treeV1
	d := &treeDecoder{b: b[1:]}
	count := d.uvarint()
	if count > uint64(len(b)) {
		return nil, fmt.Errorf("tree says %d entries in %d bytes", count, len(b))
	}
	t := &Tree{Nodes: make([]*Node, 0, count)}
	for i := uint64(0); i < count && d.err == nil; i++ {
		n := &Node{}
		n.Name = d.bytes(maxNameLen)
		n.Type = NodeType(d.byte1())
		n.Mode = d.u32()
		n.UID = d.u32()
		n.GID = d.u32()
		n.MtimeNs = d.varint()
		n.AtimeNs = d.varint()
		n.CtimeNs = n.MtimeNs
		if !v1 {
			n.CtimeNs = d.varint()
		}
		n.Size = d.uvarint()
		n.Target = d.bytes(maxTargetLen)
		n.Rdev = d.uvarint()
		n.LinkGroup = d.uvarint()
		if n.Type == NodeDir {
			copy(n.Subtree[:], d.fixed(crypt.IDSize))
		}
		extents := d.uvarint()
		if d.err == nil && extents > uint64(len(d.b)) {
			d.err = errTreeTruncated
		}
		for j := uint64(0); j < extents && d.err == nil; j++ {
			var e Extent
			switch d.byte1() {
			case 0:
				e.Size = d.uvarint()
				copy(e.ID[:], d.fixed(crypt.IDSize))
			case 1:
				e.Hole = true
				e.Size = d.uvarint()
			default:
				if d.err == nil {
					d.err = errors.New("tree holds an unknown extent kind")
				}
			}
			n.Content = append(n.Content, e)
		}
		xattrs := d.uvarint()
		if d.err == nil && xattrs > maxXattrs {
			d.err = fmt.Errorf("tree entry has %d xattrs", xattrs)
		}
		for j := uint64(0); j < xattrs && d.err == nil; j++ {
			n.Xattrs = append(n.Xattrs, Xattr{Name: d.bytes(MaxXattrNameLen), Value: d.bytes(maxXattrLen)})
		}
		if d.err != nil {
			break
		}
		if err := n.validate(); err != nil {
			return nil, err
		}
		if len(t.Nodes) > 0 && bytes.Compare(t.Nodes[len(t.Nodes)-1].Name, n.Name) >= 0 {
			return nil, fmt.Errorf("tree entries are not sorted and unique at %q", n.Name)
		}
		t.Nodes = append(t.Nodes, n)
	}
	if d.err != nil {
		return nil, d.err
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("tree has %d trailing bytes", len(d.b))
	}
	return t, nil
}
