// Package remote defines the storage interface sealfs writes its repository
// to, with the contract every implementation keeps. Implementations and
// wrappers live in sub-packages: rcloneremote (any rclone backend, the
// embedded local default among them), retry (backoff for transient errors),
// faulty (fault injection for tests) and remotetest (the conformance suite
// every implementation runs).
package remote

import (
	"context"
	"errors"
	"net"
	"syscall"
)

// ErrNotFound is returned (wrapped) by Get and Stat when no object has the
// name. It is permanent: retrying does not help.
var ErrNotFound = errors.New("object not found")

// ErrPermanent is wrapped by errors that retrying cannot fix (bad
// credentials, a refused request, an invalid name). Errors that wrap neither
// ErrNotFound nor ErrPermanent are treated as transient.
var ErrPermanent = errors.New("permanent remote error")

// ErrShortRead is returned (wrapped) by Get when the object holds fewer bytes
// than asked for: it was truncated, or the range lies past its end.
var ErrShortRead = errors.New("object is shorter than the requested range")

// Entry is one object found by List.
type Entry struct {
	Name string // full name, relative to the remote's root, with '/' separators
	Size int64
}

// Remote stores named objects. Names are relative paths with '/' separators,
// such as "config" or "data/ab/abcd...". Every method is safe for concurrent
// use and honours ctx cancellation.
type Remote interface {
	// Mkdir creates the remote's root (a directory, a bucket) if it does not
	// exist. It is idempotent.
	Mkdir(ctx context.Context) error

	// Put stores data under name, replacing any object of that name. When it
	// returns nil, the whole object is stored. When it returns an error, the
	// object may be absent, the old one, or partly written: callers write
	// objects under fresh names, or tolerate a damaged object (which fails
	// authentication) where they must rewrite one.
	Put(ctx context.Context, name string, data []byte) error

	// Get returns length bytes of the object from offset; a negative length
	// reads to the end. It returns exactly that many bytes, or an error
	// wrapping ErrNotFound, ErrShortRead, or another error.
	Get(ctx context.Context, name string, offset, length int64) ([]byte, error)

	// Stat returns the size of the object, or an error wrapping ErrNotFound.
	Stat(ctx context.Context, name string) (int64, error)

	// List calls fn for every object below dir (recursively; "" is the whole
	// remote), in no particular order. A missing dir lists nothing. An error
	// from fn stops the listing and is returned.
	List(ctx context.Context, dir string, fn func(Entry) error) error

	// Delete removes the object. Deleting a missing object is not an error.
	Delete(ctx context.Context, name string) error

	// String names the remote for messages, as the user wrote it.
	String() string
}

type freshKey struct{}

// WithoutLocalCopies marks ctx so that the operations made with it reach
// the remote itself: a wrapper that keeps local copies (remote/mirror) must
// not serve them instead, even while the remote seems down. A writer that
// just took the lease reads the repository's newest state so.
func WithoutLocalCopies(ctx context.Context) context.Context {
	return context.WithValue(ctx, freshKey{}, true)
}

// LocalCopiesAllowed reports whether a local copy may stand in for the
// remote in an operation made with ctx (see WithoutLocalCopies).
func LocalCopiesAllowed(ctx context.Context) bool { return ctx.Value(freshKey{}) == nil }

// IsTransient reports whether retrying the operation that returned err may
// succeed.
func IsTransient(err error) bool {
	if err == nil || errors.Is(err, ErrNotFound) || errors.Is(err, ErrPermanent) || errors.Is(err, ErrShortRead) {
		return false
	}
	return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

// IsUnreachable reports whether err says the remote could not be reached at
// all (connection refused, no route, DNS failure, time-out), as opposed to a
// remote that answered with an error.
func IsUnreachable(err error) bool {
	var netErr net.Error
	var dnsErr *net.DNSError
	var opErr *net.OpError
	switch {
	case errors.As(err, &dnsErr), errors.As(err, &opErr):
		return true
	case errors.As(err, &netErr) && netErr.Timeout():
		return true
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return true
	}
	return false
}
