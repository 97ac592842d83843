package format

import (
	"fmt"
	"path"
	"strconv"
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
	// HistoryDir holds the history segments (docs/SPEC.md §8.3): not
	// below SnapshotsDir, so that an open, which lists that, lists a
	// bounded number of names however long the history.
	HistoryDir = "history"
)

// PackName is the name of pack id: data/<first byte in hex>/<id>.
func PackName(id crypt.ID) string { s := id.String(); return DataDir + "/" + s[:2] + "/" + s }

// IndexName is the name of index object id.
func IndexName(id crypt.ID) string { return IndexDir + "/" + id.String() }

// SnapshotName is the version 1 name of snapshot id, snapshots/<id>,
// which writers no longer give (SnapshotSeqName); readers still read it.
func SnapshotName(id crypt.ID) string { return SnapshotsDir + "/" + id.String() }

// SnapshotSeqName is the name of snapshot id with sequence number seq
// (docs/SPEC.md §2): snapshots/<seq, 20 decimal digits>-<id>, so that a
// listing tells every snapshot's sequence number without opening it. The
// number is checked against the sealed one when the snapshot is opened.
func SnapshotSeqName(seq uint64, id crypt.ID) string {
	return fmt.Sprintf("%s/%020d-%s", SnapshotsDir, seq, id)
}

// ParseSnapshotName parses a name listed below SnapshotsDir (not a forget
// record) as SnapshotSeqName writes it, or as the version 1 SnapshotName
// (then seq is 0: not in the name). Anything else — another width or
// case, a sequence number of 0, another folder — is not a snapshot name.
func ParseSnapshotName(name string) (seq uint64, id crypt.ID, ok bool) {
	base, found := strings.CutPrefix(name, SnapshotsDir+"/")
	if !found {
		return 0, id, false
	}
	if num, hexID, cut := strings.Cut(base, "-"); cut {
		if len(num) != 20 || strings.Trim(num, "0123456789") != "" {
			return 0, id, false
		}
		n, err := strconv.ParseUint(num, 10, 64)
		if err != nil || n == 0 {
			return 0, id, false
		}
		seq, base = n, hexID
	}
	id, err := crypt.ParseID(base)
	if err != nil || base != id.String() {
		return 0, id, false
	}
	return seq, id, true
}

// SlotName is the name of key slot id.
func SlotName(id crypt.ID) string { return KeysDir + "/" + id.String() }

// ForgetName is the name of forget record id.
func ForgetName(id crypt.ID) string { return ForgetDir + "/" + id.String() }

// HistoryName is the name of history segment id.
func HistoryName(id crypt.ID) string { return HistoryDir + "/" + id.String() }

// IsForgetName reports whether name, listed below SnapshotsDir, is in the
// folder of forget records rather than a snapshot.
func IsForgetName(name string) bool { return strings.HasPrefix(name, ForgetDir+"/") }

// MetadataFolder reports whether dir is a folder of the objects a
// repository is opened from (key slots, snapshots, indexes) or its old
// snapshots are read from (history segments).
func MetadataFolder(dir string) bool {
	return dir == KeysDir || dir == SnapshotsDir || dir == IndexDir || dir == HistoryDir
}

// MetadataName reports whether name is exactly the name of an object a
// repository is opened from: the config, or a key slot, snapshot, forget
// record, index or history segment named by its id in lower-case hex (a snapshot also by
// its sequence number and id, SnapshotSeqName). Anything else (another
// case, "..", another slash, a NUL) is not.
func MetadataName(name string) bool {
	if name == ConfigName {
		return true
	}
	if _, _, ok := ParseSnapshotName(name); ok {
		return true
	}
	id, err := crypt.ParseID(path.Base(name))
	return err == nil && (name == SlotName(id) || name == SnapshotName(id) || name == ForgetName(id) || name == IndexName(id) || name == HistoryName(id))
}
