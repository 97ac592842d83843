package format

import (
	"path"
	"strings"

	"github.com/sealfs/sealfs/crypt"
)

// Object names on the remote (docs/SPEC.md §2, "Layout").
const (
	ConfigName   = "config"
	LeaseName    = "lease"
	KeysDir      = "keys"
	DataDir      = "data"
	IndexDir     = "index"
	SnapshotsDir = "snapshots"
	// ForgetDir is below SnapshotsDir, so that one listing gives the
	// snapshots and the record of every snapshot removed on purpose: the
	// chain of snapshots is checked against both (docs/SPEC.md §8.1).
	ForgetDir = SnapshotsDir + "/forget"
)

// PackName is the name of pack id: data/<first byte in hex>/<id>.
func PackName(id crypt.ID) string { s := id.String(); return DataDir + "/" + s[:2] + "/" + s }

// IndexName is the name of index object id.
func IndexName(id crypt.ID) string { return IndexDir + "/" + id.String() }

// SnapshotName is the name of snapshot id.
func SnapshotName(id crypt.ID) string { return SnapshotsDir + "/" + id.String() }

// SlotName is the name of key slot id.
func SlotName(id crypt.ID) string { return KeysDir + "/" + id.String() }

// ForgetName is the name of forget record id.
func ForgetName(id crypt.ID) string { return ForgetDir + "/" + id.String() }

// IsForgetName reports whether name, listed below SnapshotsDir, is in the
// folder of forget records rather than a snapshot.
func IsForgetName(name string) bool { return strings.HasPrefix(name, ForgetDir+"/") }

// MetadataFolder reports whether dir is a folder of the objects a
// repository is opened from (key slots, snapshots, indexes).
func MetadataFolder(dir string) bool { return dir == KeysDir || dir == SnapshotsDir || dir == IndexDir }

// MetadataName reports whether name is exactly the name of an object a
// repository is opened from: the config, or a key slot, snapshot, forget
// record or index named by its id in lower-case hex. Anything else
// (another case, "..", another slash, a NUL) is not.
func MetadataName(name string) bool {
	if name == ConfigName {
		return true
	}
	id, err := crypt.ParseID(path.Base(name))
	return err == nil && (name == SlotName(id) || name == SnapshotName(id) || name == ForgetName(id) || name == IndexName(id))
}
