package repo

import (
	"context"
	"errors"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/remote"
)

// Maximum sizes of the objects a client reads whole (docs/SPEC.md,
// "Limits"). An object's size is checked against its maximum before any of
// it is read, and then exactly that many bytes are read, so a remote that
// reports or serves a huge object cannot make the client allocate more.
const (
	maxConfigObject     = maxConfigSize
	maxSlotObject       = crypt.MaxSlotSize
	maxSnapshotObject   = maxSnapshotSize + crypt.Overhead
	maxIndexObject      = 5 + maxIndexEntries*indexEntrySize + crypt.Overhead
	maxLeaseObject      = maxLeaseSize + crypt.Overhead
	maxPackHeaderObject = 5 + maxPackHeaderEntries*headerEntrySize + crypt.Overhead
)

// maxPackObject is the largest pack a writer with the given pack size
// makes: a pack is uploaded once it reaches packSize, so its last blob may
// take it over by at most one sealed blob; then comes the header.
func maxPackObject(packSize int) int64 {
	return int64(packSize) + 1 + maxBlobSize + crypt.Overhead + maxPackHeaderObject + 4
}

// readObject reads the whole object name, of at most max bytes. size is
// its size from a listing, or negative to ask the remote. An object over
// max is an integrity error naming it, and is not read; one shorter than
// its size is an integrity error too.
func readObject(ctx context.Context, rem remote.Remote, name string, size, max int64) ([]byte, error) {
	if size < 0 {
		var err error
		if size, err = rem.Stat(ctx, name); err != nil {
			return nil, err
		}
	}
	if size > max {
		return nil, integrityError(name, "the object is %d bytes, over the %d-byte limit for its type", size, max)
	}
	b, err := rem.Get(ctx, name, 0, size)
	if errors.Is(err, remote.ErrShortRead) {
		return nil, integrityError(name, "%v", err)
	}
	return b, err
}
