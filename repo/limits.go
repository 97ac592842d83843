package repo

import (
	"context"
	"errors"

	"github.com/sealfs/sealfs/remote"
)

// readObject reads the whole object name, of at most max bytes (its type's
// maximum, format.Max*Object). size is its size from a listing, or negative
// to ask the remote. An object over max is an integrity error naming it,
// and is not read (docs/SPEC.md §13); one shorter than its size is an
// integrity error too.
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
