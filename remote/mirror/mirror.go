// Package mirror wraps a remote.Remote and keeps a local copy of the small
// objects a repository is opened from (config, key slots, snapshots,
// indexes, and their listings), so that a mount can come up from local
// state while the remote cannot be reached. Copies are written on every
// successful read or write and served only when the remote fails with a
// transient error; they are verified like remote objects when opened.
package mirror

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/sealfs/sealfs/remote"
)

// Remote mirrors the metadata objects of the remote it wraps in dir.
type Remote struct {
	inner remote.Remote
	dir   string

	mu        sync.Mutex
	downUntil time.Time // after a failure, skip the remote for a while
	// OnFallback, if set, is told when a local copy is served.
	OnFallback func(name string, err error)
}

var _ remote.Remote = (*Remote)(nil)

// New wraps inner, keeping copies in dir.
func New(inner remote.Remote, dir string) *Remote { return &Remote{inner: inner, dir: dir} }

// downFor is how long the remote is skipped after a transient failure.
const downFor = 30 * time.Second

func mirrored(name string) bool {
	return name == "config" || strings.HasPrefix(name, "keys/") || strings.HasPrefix(name, "snapshots/") || strings.HasPrefix(name, "index/")
}

func mirroredDir(dir string) bool { return dir == "keys" || dir == "snapshots" || dir == "index" }

func (m *Remote) local(name string) string { return filepath.Join(m.dir, filepath.FromSlash(name)) }

func (m *Remote) save(name string, data []byte) {
	p := m.local(name)
	if os.MkdirAll(filepath.Dir(p), 0o700) != nil {
		return
	}
	tmp := p + ".tmp"
	if os.WriteFile(tmp, data, 0o600) == nil {
		os.Rename(tmp, p)
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
	if err := m.inner.Put(ctx, name, data); err != nil {
		return err
	}
	if mirrored(name) {
		m.save(name, data)
		m.updateListing(name, int64(len(data)), true)
	}
	return nil
}

// updateListing keeps the cached listing of name's folder in step with
// what this client writes and deletes.
func (m *Remote) updateListing(name string, size int64, add bool) {
	dir, _, ok := strings.Cut(name, "/")
	if !ok || !mirroredDir(dir) {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var entries []remote.Entry
	if b, err := os.ReadFile(filepath.Join(m.dir, dir+".list")); err == nil {
		json.Unmarshal(b, &entries)
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
	if b, err := json.Marshal(out); err == nil {
		m.save(dir+".list", b)
	}
}

// Get reads from the remote; for a metadata object it keeps a copy, and
// serves the copy when the remote fails transiently.
func (m *Remote) Get(ctx context.Context, name string, offset, length int64) ([]byte, error) {
	if !mirrored(name) {
		return m.inner.Get(ctx, name, offset, length)
	}
	var err error
	if !m.down() {
		var b []byte
		if b, err = m.inner.Get(ctx, name, offset, length); err == nil {
			if offset == 0 {
				// Metadata objects are read whole (with their
				// length, which bounds the read, or to the end).
				m.save(name, b)
			}
			return b, nil
		}
		if !m.failed(err) {
			return nil, err
		}
	}
	b, lerr := os.ReadFile(m.local(name))
	if lerr != nil || offset > int64(len(b)) {
		if err == nil {
			err = remote.ErrNotFound
		}
		return nil, err
	}
	m.fallback(name, err)
	b = b[offset:]
	if length >= 0 && length <= int64(len(b)) {
		b = b[:length]
	}
	return b, nil
}

// Stat passes through, with the copy standing in for a metadata object.
func (m *Remote) Stat(ctx context.Context, name string) (int64, error) {
	n, err := m.inner.Stat(ctx, name)
	if err == nil || !mirrored(name) || !m.failed(err) {
		return n, err
	}
	fi, lerr := os.Stat(m.local(name))
	if lerr != nil {
		return 0, err
	}
	m.fallback(name, err)
	return fi.Size(), nil
}

// List lists the remote; for the metadata folders it keeps the listing and
// serves it when the remote fails transiently.
func (m *Remote) List(ctx context.Context, dir string, fn func(remote.Entry) error) error {
	if !mirroredDir(dir) {
		return m.inner.List(ctx, dir, fn)
	}
	listing := filepath.Join(m.dir, dir+".list")
	var entries []remote.Entry
	var err error
	if !m.down() {
		err = m.inner.List(ctx, dir, func(e remote.Entry) error { entries = append(entries, e); return nil })
		if err == nil {
			if b, jerr := json.Marshal(entries); jerr == nil {
				m.save(dir+".list", b)
			}
		} else if !m.failed(err) {
			return err
		}
	}
	if err != nil || m.down() && entries == nil {
		b, lerr := os.ReadFile(listing)
		if lerr != nil || json.Unmarshal(b, &entries) != nil {
			if err == nil {
				return nil
			}
			return err
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

// Delete passes through and drops the copy.
func (m *Remote) Delete(ctx context.Context, name string) error {
	if err := m.inner.Delete(ctx, name); err != nil {
		return err
	}
	if mirrored(name) {
		os.Remove(m.local(name))
		m.updateListing(name, 0, false)
	}
	return nil
}
