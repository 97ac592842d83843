// Package rcloneremote implements remote.Remote on any rclone backend used as
// a library. Only the backends sealfs names are linked in: local (the
// embedded default, reached with a bare path), memory, drive, iclouddrive,
// s3, webdav and sftp.
package rcloneremote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/rclone/rclone/fs"
	"github.com/rclone/rclone/fs/config"
	"github.com/rclone/rclone/fs/config/configfile"
	"github.com/rclone/rclone/fs/fserrors"
	"github.com/rclone/rclone/fs/object"
	"github.com/rclone/rclone/fs/walk"

	// The backends sealfs supports. backend/all would double the build.
	_ "github.com/rclone/rclone/backend/drive"
	_ "github.com/rclone/rclone/backend/iclouddrive"
	_ "github.com/rclone/rclone/backend/local"
	_ "github.com/rclone/rclone/backend/memory"
	_ "github.com/rclone/rclone/backend/s3"
	_ "github.com/rclone/rclone/backend/sftp"
	_ "github.com/rclone/rclone/backend/webdav"

	"github.com/sealfs/sealfs/remote"
)

var (
	configOnce sync.Once
	configErr  error
)

// Setup loads rclone's configuration once per process. configPath is the
// rclone.conf to use; when empty, the RCLONE_CONFIG environment variable is
// honoured (the rclone library ignores it), and then rclone's default places.
func Setup(configPath string) error {
	configOnce.Do(func() {
		if configPath == "" {
			configPath = os.Getenv("RCLONE_CONFIG")
		}
		if configPath != "" {
			if err := config.SetConfigPath(configPath); err != nil {
				configErr = fmt.Errorf("failed to use rclone config %q: %w", configPath, err)
				return
			}
		}
		configfile.Install()
		// rclone logs failures that it also returns (a missing directory
		// when listing, say); sealfs reports what it gets back instead.
		ci := fs.GetConfig(context.Background())
		ci.LogLevel = fs.LogLevelCritical
		// sealfs retries whole operations itself (package retry), with a
		// policy that suits the caller; rclone's own low-level retries
		// would multiply with it and keep a dead remote waiting for minutes.
		ci.LowLevelRetries = 1
		// rclone loads the config file lazily, on first use, without a
		// lock: load it here, once, before remotes are opened concurrently.
		config.LoadedData()
	})
	return configErr
}

// Remote is a remote.Remote on an rclone fs.Fs.
type Remote struct {
	spec string // as shown: Redact of the spec opened
	f    fs.Fs
	// localRoot is the directory of a remote on rclone's local backend,
	// "" for any other: range reads of packs go to the files directly
	// (getLocal).
	localRoot string
}

var _ remote.Remote = (*Remote)(nil)

// Open opens the remote named by spec exactly as rclone accepts it: a
// configured remote ("gdrive:backups"), a connection string
// (":s3,provider=Other,...:bucket"), or a bare local path. Setup must have
// been called (Open calls it with no config path otherwise).
func Open(ctx context.Context, spec string) (*Remote, error) {
	if err := Setup(""); err != nil {
		return nil, err
	}
	f, err := fs.NewFs(ctx, spec)
	if errors.Is(err, fs.ErrorIsFile) && !strings.HasSuffix(spec, "/") {
		// Some backends (s3) guess "file" when they cannot reach the
		// remote to tell; a trailing slash says it is a directory. If it
		// really is a file, the repository's objects are simply not found.
		f, err = fs.NewFs(ctx, spec+"/")
	}
	if errors.Is(err, fs.ErrorIsFile) {
		return nil, fmt.Errorf("remote %q is a file, not a directory: %w", Redact(spec), remote.ErrPermanent)
	}
	if err != nil {
		return nil, fmt.Errorf("failed to open remote %q: %w", Redact(spec), classify(err))
	}
	return &Remote{spec: Redact(spec), f: f, localRoot: localRoot(f)}, nil
}

// localRoot returns the directory of f when it is a plain local directory
// (rclone's local backend, at an absolute path), else "".
func localRoot(f fs.Fs) string {
	if !f.Features().IsLocal {
		return ""
	}
	root := f.Root()
	if !filepath.IsAbs(root) || filepath.Clean(root) != root {
		return ""
	}
	return root
}

// LocalRoot returns the directory the remote is when it is a plain local
// directory (rclone's local backend, at an absolute path), else "".
func (r *Remote) LocalRoot() string { return r.localRoot }

// packName matches the name of a pack: data/<2 hex>/<64 hex>.
var packName = regexp.MustCompile(`^data/[0-9a-f]{2}/[0-9a-f]{64}$`)

// getLocal reads a range of a pack of a local-directory remote with one
// pread of its file. rclone's local backend costs some 150 µs a request
// (a stat, an open, a seek, a stat at every read, accounting) where the
// pread of a 64 KiB segment in the page cache costs 17 µs; the segments of
// random reads are such requests. The answers are those of the rclone
// path: ErrNotFound for a missing file, ErrShortRead past its end.
func (r *Remote) getLocal(name string, offset, length int64) ([]byte, error) {
	f, err := os.Open(filepath.Join(r.localRoot, filepath.FromSlash(name)))
	if err != nil {
		return nil, fmt.Errorf("failed to read %s: %w", name, classify(err))
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("failed to read %s: %w", name, err)
	}
	size := st.Size()
	if length < 0 {
		length = size - offset
	}
	if offset < 0 || length < 0 || offset+length > size {
		return nil, fmt.Errorf("failed to read %s at %d+%d: %w (object is %d bytes)", name, offset, length, remote.ErrShortRead, size)
	}
	buf := make([]byte, length)
	n, err := f.ReadAt(buf, offset)
	if errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("failed to read %s: got %d of %d bytes: %w", name, n, length, remote.ErrShortRead)
	}
	if err != nil {
		return nil, fmt.Errorf("failed to read %s: %w", name, err)
	}
	return buf, nil
}

// String returns the remote as the user named it, with the values of
// connection-string parameters redacted (see Redact).
func (r *Remote) String() string { return r.spec }

// Mkdir creates the root directory or bucket.
func (r *Remote) Mkdir(ctx context.Context) error {
	if err := r.f.Mkdir(ctx, ""); err != nil {
		return fmt.Errorf("failed to create %s: %w", r.spec, classify(err))
	}
	return nil
}

// Put stores data under name, updating an existing object in place of
// creating a duplicate (Drive allows two objects with one name).
func (r *Remote) Put(ctx context.Context, name string, data []byte) error {
	info := object.NewStaticObjectInfo(name, time.Now(), int64(len(data)), true, nil, r.f)
	obj, err := r.f.NewObject(ctx, name)
	switch {
	case err == nil:
		err = obj.Update(ctx, bytes.NewReader(data), info)
	case errors.Is(err, fs.ErrorObjectNotFound), errors.Is(err, fs.ErrorDirNotFound), errors.Is(err, fs.ErrorIsDir):
		_, err = r.f.Put(ctx, bytes.NewReader(data), info)
	}
	if err != nil {
		return fmt.Errorf("failed to write %s: %w", name, classify(err))
	}
	return nil
}

// Get reads length bytes from offset (to the end if length < 0).
func (r *Remote) Get(ctx context.Context, name string, offset, length int64) ([]byte, error) {
	if r.localRoot != "" && packName.MatchString(name) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		return r.getLocal(name, offset, length)
	}
	obj, err := r.f.NewObject(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("failed to read %s: %w", name, classify(err))
	}
	size := obj.Size()
	if length < 0 {
		length = size - offset
	}
	if offset < 0 || length < 0 || (size >= 0 && offset+length > size) {
		return nil, fmt.Errorf("failed to read %s at %d+%d: %w (object is %d bytes)", name, offset, length, remote.ErrShortRead, size)
	}
	if length == 0 {
		return []byte{}, nil
	}
	rc, err := obj.Open(ctx, &fs.RangeOption{Start: offset, End: offset + length - 1})
	if err != nil {
		return nil, fmt.Errorf("failed to read %s: %w", name, classify(err))
	}
	defer rc.Close()
	buf := make([]byte, length)
	n, err := io.ReadFull(rc, buf)
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("failed to read %s: got %d of %d bytes: %w", name, n, length, remote.ErrShortRead)
	}
	if err != nil {
		return nil, fmt.Errorf("failed to read %s: %w", name, classify(err))
	}
	return buf, nil
}

// Stat returns the size of the object.
func (r *Remote) Stat(ctx context.Context, name string) (int64, error) {
	obj, err := r.f.NewObject(ctx, name)
	if err != nil {
		return 0, fmt.Errorf("failed to stat %s: %w", name, classify(err))
	}
	return obj.Size(), nil
}

// List calls fn for every object below dir.
func (r *Remote) List(ctx context.Context, dir string, fn func(remote.Entry) error) error {
	err := walk.ListR(ctx, r.f, dir, true, -1, walk.ListObjects, func(entries fs.DirEntries) error {
		for _, e := range entries {
			if o, ok := e.(fs.Object); ok {
				if err := fn(remote.Entry{Name: o.Remote(), Size: o.Size()}); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if errors.Is(err, fs.ErrorDirNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("failed to list %s/%s: %w", r.spec, dir, classify(err))
	}
	return nil
}

// Delete removes the object; a missing one is not an error.
func (r *Remote) Delete(ctx context.Context, name string) error {
	obj, err := r.f.NewObject(ctx, name)
	if errors.Is(err, fs.ErrorObjectNotFound) || errors.Is(err, fs.ErrorDirNotFound) {
		return nil
	}
	if err == nil {
		err = obj.Remove(ctx)
	}
	if err != nil {
		return fmt.Errorf("failed to delete %s: %w", name, classify(err))
	}
	return nil
}

// classify wraps rclone's errors in the remote package's sentinels, so that
// callers can tell not-found and permanent failures from transient ones.
func classify(err error) error {
	switch {
	case errors.Is(err, fs.ErrorObjectNotFound), errors.Is(err, fs.ErrorDirNotFound), errors.Is(err, os.ErrNotExist):
		return errors.Join(remote.ErrNotFound, err)
	case fserrors.IsFatalError(err), fserrors.IsNoRetryError(err), errors.Is(err, fs.ErrorNotFoundInConfigFile):
		return errors.Join(remote.ErrPermanent, err)
	}
	return err
}
