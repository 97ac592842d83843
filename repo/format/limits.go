package format

import "github.com/sealfs/sealfs/crypt"

// Limits of the format (docs/SPEC.md §13). A decoder refuses anything
// larger, so that nothing from a remote can make a reader allocate more.
const (
	// MaxBlobSize bounds a blob's plaintext (and so its sealed length).
	MaxBlobSize = 64 << 20
	// MaxIndexEntries bounds an index object.
	MaxIndexEntries = 1 << 22
	// MaxPackHeaderEntries bounds a pack header.
	MaxPackHeaderEntries = 1 << 20
	// MaxForgetEntries bounds a forget record.
	MaxForgetEntries = 1 << 20
	// MaxHistoryEntries bounds a history segment's snapshots, and
	// MaxHistorySize its plaintext.
	MaxHistoryEntries = 1 << 20
	MaxHistorySize    = 64 << 20
	// MaxHistoryRefs bounds the history segments a snapshot names.
	MaxHistoryRefs = 64
	// MaxColdIndexes bounds the cold index objects a snapshot names.
	MaxColdIndexes = 1 << 16
	// MaxSnapshotSize bounds a snapshot's plaintext.
	MaxSnapshotSize = 64 << 20
	// MaxLeaseSize bounds the lease's plaintext.
	MaxLeaseSize = 4 << 10
)

// Maximum sizes of the objects a client reads whole (docs/SPEC.md §13,
// "Object sizes"). A reader checks an object's size against its maximum
// before reading any of it, and then reads exactly that many bytes, so a
// remote that reports or serves a huge object cannot make it allocate more.
const (
	MaxConfigObject     = 16 << 10
	MaxSlotObject       = crypt.MaxSlotSize
	MaxSnapshotObject   = MaxSnapshotSize + crypt.Overhead
	MaxIndexObject      = 5 + MaxIndexEntries*IndexEntrySize + crypt.Overhead
	MaxLeaseObject      = MaxLeaseSize + crypt.Overhead
	MaxPackHeaderObject = 5 + MaxPackHeaderEntries*HeaderEntrySize + crypt.Overhead
	MaxForgetObject     = 5 + MaxForgetEntries*ForgetEntrySize + crypt.Overhead
	MaxHistoryObject    = MaxHistorySize + crypt.Overhead
)

// MaxPackObject is the largest pack a writer with the given pack size
// makes: a pack is uploaded once it reaches packSize, so its last blob may
// take it over by at most one sealed blob; then come the sealed header and
// its length.
func MaxPackObject(packSize int) int64 {
	return int64(packSize) + MaxSealedBlob + MaxPackHeaderObject + PackTrailerSize
}
