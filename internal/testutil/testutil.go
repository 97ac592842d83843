// Package testutil holds helpers shared by sealfs tests: a fresh repository
// on a real rclone local remote wrapped in a byte-counting fault injector.
package testutil

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/internal/unlock"
	"github.com/sealfs/sealfs/remote/faulty"
	"github.com/sealfs/sealfs/remote/rcloneremote"
	"github.com/sealfs/sealfs/repo"
)

// Env is a test repository and what it was made with.
type Env struct {
	Dir      string // the local remote's directory
	CacheDir string
	Remote   *faulty.Remote
	Repo     *repo.Repository
	Code     crypt.RecoveryCode
}

// NewRemote opens a counting, fault-injecting wrapper over a local rclone
// remote in dir.
func NewRemote(t testing.TB, dir string) *faulty.Remote {
	t.Helper()
	r, err := rcloneremote.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	return faulty.New(r, 1)
}

// NewRepo initialises a repository in a temporary directory and locks it
// for writing; it is unlocked at cleanup.
func NewRepo(t testing.TB, o repo.InitOptions) *Env {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "remote")
	e := &Env{Dir: dir, CacheDir: filepath.Join(t.TempDir(), "cache"), Remote: NewRemote(t, dir)}
	o.CacheDir = e.CacheDir
	r, code, err := repo.Init(context.Background(), e.Remote, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Lock(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Unlock(context.Background()) })
	e.Repo, e.Code = r, code
	return e
}

// Reopen opens the repository again as a new client would, with the
// recovery code and the given cache directory (empty: the Env's).
func (e *Env) Reopen(t testing.TB, cacheDir string, acceptRollback bool) (*repo.Repository, error) {
	t.Helper()
	if cacheDir == "" {
		cacheDir = e.CacheDir
	}
	return repo.Open(context.Background(), NewRemote(t, e.Dir), unlock.WithCode(e.Code),
		repo.Options{CacheDir: cacheDir, AcceptRollback: acceptRollback})
}
