// Package mirror wraps a remote.Remote and keeps a local copy of the small
// objects a repository is opened from (config, key slots, snapshots,
// indexes, and their listings), so that a mount can come up from local
// state while the remote cannot be reached. Copies are written on every
// successful read or write and served only when the remote fails with a
// transient error (or was failing a moment ago), never to an operation
// whose context says remote.WithoutLocalCopies; they are verified like
// remote objects when opened.
//
// Which objects are mirrored is for the layer that names them to say (see
// Names): only names of exactly the expected shape get a local copy, and
// every local file is reached through an os.Root of the mirror's folder,
// so no name from the remote can make it write elsewhere.
package mirror

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/sealfs/sealfs/remote"
)

// Names says which objects are mirrored. Both functions must accept only
// exact names: no "..", no leading or doubled slash, no NUL or backslash.
type Names struct {
	// Object reports whether name is a metadata object to keep a copy of.
	Object func(name string) bool
	// Folder reports whether dir is a folder of metadata objects, whose
	// listing is kept (as dir + ".list").
	Folder func(dir string) bool
}

// Remote mirrors the metadata objects of the remote it wraps in dir.
type Remote struct {
	inner remote.Remote
	dir   string
	names Names

	mu        sync.Mutex
	downUntil time.Time // after a failure, skip the remote for a while
	// OnFallback, if set, is told when a local copy is served.
	OnFallback func(name string, err error)
}

var _ remote.Remote = (*Remote)(nil)

// New wraps inner, keeping copies of the objects names accepts in dir.
func New(inner remote.Remote, dir string, names Names) *Remote {
	return &Remote{inner: inner, dir: dir, names: names}
}

// errSkipped stands for the remote while it is skipped after a failure and
// no local copy can stand in: a transient error, never "not found".
var errSkipped = errors.New("the remote failed a moment ago and no local copy is kept; retry soon")

// downFor is how long the remote is skipped after a transient failure.
const downFor = 30 * time.Second

// mirrored reports whether name gets a local copy. A name inside a
// metadata folder that is not a metadata object is refused: the remote
// listed something that is not this repository's.
func (m *Remote) mirrored(name string) (bool, error) {
	if m.names.Object(name) {
		return true, nil
	}
	if dir, _, ok := strings.Cut(name, "/"); ok && m.names.Folder(dir) {
		return false, fmt.Errorf("refusing the object name %q: not the name of a metadata object", name)
	}
	return false, nil
}

// root opens the mirror's folder, creating it if needed. Every local file
// is reached through it: nothing can lead outside.
func (m *Remote) root() (*os.Root, error) {
	if err := os.MkdirAll(m.dir, 0o700); err != nil {
		return nil, err
	}
	return os.OpenRoot(m.dir)
}

// save keeps a copy of name (already checked) through a temporary file; a
// failure (a full disk) only leaves the copy out.
func (m *Remote) save(name string, data []byte) {
	r, err := m.root()
	if err != nil {
		return
	}
	defer r.Close()
	if r.MkdirAll(path.Dir(name), 0o700) != nil {
		return
	}
	tmp := name + ".tmp"
	if r.WriteFile(tmp, data, 0o600) != nil || r.Rename(tmp, name) != nil {
		r.Remove(tmp)
	}
}

// readLocal reads the copy of name (already checked).
func (m *Remote) readLocal(name string) ([]byte, error) {
	r, err := m.root()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return r.ReadFile(name)
}

func (m *Remote) removeLocal(name string) {
	if r, err := m.root(); err == nil {
		r.Remove(name)
		r.Close()
	}
}

// decodeListing decodes the kept listing of folder dir. Every entry must
// be a metadata object of that folder, with a size.
func (m *Remote) decodeListing(b []byte, dir string) ([]remote.Entry, error) {
	var entries []remote.Entry
	if err := json.Unmarshal(b, &entries); err != nil {
		return nil, fmt.Errorf("the kept listing of %s is damaged: %w", dir, err)
	}
	for _, e := range entries {
		if !m.names.Object(e.Name) || !strings.HasPrefix(e.Name, dir+"/") || e.Size < 0 {
			return nil, fmt.Errorf("the kept listing of %s is damaged: it names %q (%d bytes)", dir, e.Name, e.Size)
		}
	}
	return entries, nil
}

// saveListing keeps the listing of folder dir: its metadata objects (the
// repository refuses anything else the remote lists).
func (m *Remote) saveListing(dir string, entries []remote.Entry) {
	kept := make([]remote.Entry, 0, len(entries))
	for _, e := range entries {
		if m.names.Object(e.Name) && strings.HasPrefix(e.Name, dir+"/") && e.Size >= 0 {
			kept = append(kept, e)
		}
	}
	if b, err := json.Marshal(kept); err == nil {
		m.save(dir+".list", b)
	}
}

func (m *Remote) down() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return time.Now().Before(m.downUntil)
}

// failed records a failure; it reports whether a local copy may stand in.
func (m *Remote) failed(err error) bool {
	if !remote.IsTransient(err) && !remote.IsUnreachable(err) {
		return false
	}
	m.mu.Lock()
	m.downUntil = time.Now().Add(downFor)
	m.mu.Unlock()
	return true
}

func (m *Remote) fallback(name string, err error) {
	if m.OnFallback != nil {
		m.OnFallback(name, err)
	}
}

// String names the wrapped remote.
func (m *Remote) String() string { return m.inner.String() }

// Mkdir passes through.
func (m *Remote) Mkdir(ctx context.Context) error { return m.inner.Mkdir(ctx) }

// Put writes through, and keeps a copy of a metadata object.
func (m *Remote) Put(ctx context.Context, name string, data []byte) error {
	mirrored, err := m.mirrored(name)
	if err != nil {
		return err
	}
	if err := m.inner.Put(ctx, name, data); err != nil {
		return err
	}
	if mirrored {
		m.save(name, data)
		m.updateListing(name, int64(len(data)), true)
	}
	return nil
}

// updateListing keeps the kept listing of name's folder in step with what
// this client writes and deletes. Without a whole listing to update, it
// keeps none: a partial one must not stand in for the remote's.
func (m *Remote) updateListing(name string, size int64, add bool) {
	dir, _, ok := strings.Cut(name, "/")
	if !ok || !m.names.Folder(dir) {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	b, err := m.readLocal(dir + ".list")
	if err != nil {
		return
	}
	entries, err := m.decodeListing(b, dir)
	if err != nil {
		m.removeLocal(dir + ".list")
		return
	}
	out := entries[:0]
	for _, e := range entries {
		if e.Name != name {
			out = append(out, e)
		}
	}
	if add {
		out = append(out, remote.Entry{Name: name, Size: size})
	}
	m.saveListing(dir, out)
}

// Get reads from the remote; for a metadata object it keeps a copy, and
// serves the copy when the remote fails transiently.
func (m *Remote) Get(ctx context.Context, name string, offset, length int64) ([]byte, error) {
	mirrored, err := m.mirrored(name)
	if err != nil {
		return nil, err
	}
	if !mirrored {
		return m.inner.Get(ctx, name, offset, length)
	}
	err = errSkipped
	fresh := !remote.LocalCopiesAllowed(ctx)
	if fresh || !m.down() {
		var b []byte
		if b, err = m.inner.Get(ctx, name, offset, length); err == nil {
			if offset == 0 {
				// Metadata objects are read whole (with their
				// length, which bounds the read, or to the end).
				m.save(name, b)
			}
			return b, nil
		}
		if !m.failed(err) || fresh {
			return nil, err
		}
	}
	b, lerr := m.readLocal(name)
	if lerr != nil || offset < 0 || offset > int64(len(b)) {
		return nil, err
	}
	b = b[offset:]
	if length >= 0 {
		if length > int64(len(b)) {
			// Never fewer bytes than asked for with no error (the
			// copy may be a prefix kept from a bounded read).
			return nil, fmt.Errorf("the local copy of %s holds %d bytes from %d, not %d: %w (and the remote: %v)", name, len(b), offset, length, remote.ErrShortRead, err)
		}
		b = b[:length]
	}
	m.fallback(name, err)
	return b, nil
}

// Stat passes through, with the copy standing in for a metadata object.
func (m *Remote) Stat(ctx context.Context, name string) (int64, error) {
	mirrored, err := m.mirrored(name)
	if err != nil {
		return 0, err
	}
	n, err := m.inner.Stat(ctx, name)
	if err == nil || !mirrored || !m.failed(err) || !remote.LocalCopiesAllowed(ctx) {
		return n, err
	}
	r, rerr := m.root()
	if rerr != nil {
		return 0, err
	}
	defer r.Close()
	fi, lerr := r.Stat(name)
	if lerr != nil {
		return 0, err
	}
	m.fallback(name, err)
	return fi.Size(), nil
}

// List lists the remote; for the metadata folders it keeps the listing and
// serves it when the remote fails transiently.
func (m *Remote) List(ctx context.Context, dir string, fn func(remote.Entry) error) error {
	if !m.names.Folder(dir) {
		return m.inner.List(ctx, dir, fn)
	}
	var entries []remote.Entry
	err := errSkipped
	fresh := !remote.LocalCopiesAllowed(ctx)
	if fresh || !m.down() {
		start := time.Now()
		err = m.inner.List(ctx, dir, func(e remote.Entry) error { entries = append(entries, e); return nil })
		if err == nil {
			m.saveListing(dir, entries)
			m.dropVanished(ctx, dir, entries, start)
		} else if !m.failed(err) || fresh {
			return err
		}
	}
	if err != nil {
		b, lerr := m.readLocal(dir + ".list")
		if lerr != nil {
			return err
		}
		if entries, lerr = m.decodeListing(b, dir); lerr != nil {
			return fmt.Errorf("%w (and %v)", err, lerr)
		}
		m.fallback(dir, err)
	}
	for _, e := range entries {
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

// dropVanished removes the copies of the objects of folder dir that a
// whole listing of it, started at start, no longer holds and that the
// remote says are gone (deleted by another client: forgotten snapshots,
// index objects a prune removed), so that the mirror shrinks with the
// remote. A listing alone is not trusted with that: an eventually
// consistent store may leave out for a moment an object that is there,
// and its copy is what an offline open needs. A copy saved since the
// listing started is kept: its object may have landed after the listing
// passed.
func (m *Remote) dropVanished(ctx context.Context, dir string, entries []remote.Entry, start time.Time) {
	listed := make(map[string]bool, len(entries))
	for _, e := range entries {
		listed[e.Name] = true
	}
	r, err := m.root()
	if err != nil {
		return
	}
	defer r.Close()
	var vanished []string
	var walk func(d string)
	walk = func(d string) {
		f, err := r.Open(d)
		if err != nil {
			return
		}
		ents, err := f.ReadDir(-1)
		f.Close()
		if err != nil {
			return
		}
		for _, e := range ents {
			name := d + "/" + e.Name()
			if e.IsDir() {
				walk(name)
				continue
			}
			if !m.names.Object(name) || listed[name] {
				continue
			}
			if fi, err := e.Info(); err == nil && fi.ModTime().Before(start) {
				vanished = append(vanished, name)
			}
		}
	}
	walk(dir)
	work := make(chan string)
	var wg sync.WaitGroup
	for range min(len(vanished), vanishedChecks) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range work {
				if _, err := m.inner.Stat(ctx, name); errors.Is(err, remote.ErrNotFound) {
					r.Remove(name)
				}
			}
		}()
	}
	for _, name := range vanished {
		work <- name
	}
	close(work)
	wg.Wait()
}

// vanishedChecks is how many objects a listing left out dropVanished asks
// the remote about at once.
const vanishedChecks = 8

// Delete passes through and drops the copy.
func (m *Remote) Delete(ctx context.Context, name string) error {
	mirrored, err := m.mirrored(name)
	if err != nil {
		return err
	}
	if err := m.inner.Delete(ctx, name); err != nil {
		return err
	}
	if mirrored {
		m.removeLocal(name)
		m.updateListing(name, 0, false)
	}
	return nil
}
