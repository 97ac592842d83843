package repo

import "github.com/sealfs/sealfs/repo/format"

// The format's values that repo's API takes and hands out are repo/format's
// types. The ones below are also named here, as aliases (the same types,
// not copies): the application (internal/worktree, internal/archiver,
// internal/fusefs, internal/daemon, cmd/sealfs and the end-to-end tests)
// names them as repo.X in some 120 places, and those packages are being
// rewritten by other work of issue 9 at the same time; the aliases let
// them move to format.X at their own pace. New code names format.X.
type (
	// Tree is format.Tree: a directory.
	Tree = format.Tree
	// Node is format.Node: one directory entry.
	Node = format.Node
	// NodeType is format.NodeType: the kind of a directory entry.
	NodeType = format.NodeType
	// Extent is format.Extent: a run of a file's content.
	Extent = format.Extent
	// Xattr is format.Xattr: an extended attribute.
	Xattr = format.Xattr
	// Snapshot is format.Snapshot: one committed state of the repository.
	Snapshot = format.Snapshot
	// RootAttr is format.RootAttr: the root directory's own attributes.
	RootAttr = format.RootAttr
	// Location is format.Location: where a blob is stored.
	Location = format.Location
)

// Node types, as format names them.
const (
	NodeFile     = format.NodeFile
	NodeDir      = format.NodeDir
	NodeSymlink  = format.NodeSymlink
	NodeFIFO     = format.NodeFIFO
	NodeCharDev  = format.NodeCharDev
	NodeBlockDev = format.NodeBlockDev
	NodeSocket   = format.NodeSocket
)

// Limits of a node's extended attributes, as format names them.
const (
	MaxXattrs        = format.MaxXattrs
	MaxXattrNameLen  = format.MaxXattrNameLen
	MaxXattrValueLen = format.MaxXattrValueLen
)

// Compression settings, as format names them.
const (
	CompressionZstd = format.CompressionZstd
	CompressionNone = format.CompressionNone
)
