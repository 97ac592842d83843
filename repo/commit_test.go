package repo_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/internal/unlock"
	"github.com/sealfs/sealfs/remote"
	"github.com/sealfs/sealfs/remote/faulty"
	"github.com/sealfs/sealfs/repo"
)

// commitFile stores data as /name and commits it, returning Commit's result.
func commitFile(t *testing.T, r *repo.Repository, name string, data []byte) (*repo.Snapshot, error) {
	t.Helper()
	ctx := context.Background()
	content, size, err := r.SaveFile(ctx, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	root, err := r.SaveTree(ctx, &repo.Tree{Nodes: []*repo.Node{{Name: []byte(name), Type: repo.NodeFile, Mode: 0o644, Size: size, Content: content}}})
	if err != nil {
		t.Fatal(err)
	}
	return r.Commit(ctx, root, repo.CommitInfo{Files: 1, Bytes: size})
}

// TestCommitRetryAfterSnapshotFailure: when the snapshot upload of a commit
// fails (before or after landing) and the next commit succeeds, a new client
// reads every file back, and no sequence number is used twice.
func TestCommitRetryAfterSnapshotFailure(t *testing.T) {
	for _, mode := range []struct {
		name string
		m    faulty.Mode
	}{{"before", faulty.FailBefore}, {"landed", faulty.FailAfter}, {"partial", faulty.FailPartial}} {
		t.Run(mode.name, func(t *testing.T) {
			env := testutil.NewRepo(t, repo.InitOptions{})
			storeFile(t, env.Repo, "one", []byte("first"))
			data := randomData(7, 2<<20)
			env.Remote.FailOn("put", "snapshots/", 1, mode.m)
			if _, err := commitFile(t, env.Repo, "two", data); !errors.Is(err, faulty.ErrInjected) {
				t.Fatalf("commit with a failing snapshot upload = %v", err)
			}
			// The next commit is of the same tree (the writer retries)...
			s, err := commitFile(t, env.Repo, "two", data)
			if err != nil {
				t.Fatalf("retried commit: %v", err)
			}
			// ...and then one more, of a new tree.
			more := randomData(8, 1<<20)
			if _, err := commitFile(t, env.Repo, "three", more); err != nil {
				t.Fatal(err)
			}
			r2, err := env.Reopen(t, t.TempDir(), false)
			if err != nil {
				t.Fatalf("fresh client: %v", err)
			}
			seen := map[uint64]bool{}
			for _, sn := range snapshots(t, r2) {
				if seen[sn.Seq] {
					t.Fatalf("two snapshots have sequence number %d", sn.Seq)
				}
				seen[sn.Seq] = true
			}
			if len(seen) != 3 || s.Seq != 2 {
				t.Fatalf("got %d snapshots, retried commit has seq %d; want 3 and 2", len(seen), s.Seq)
			}
			if got, err := readFile(r2, "three"); err != nil || !bytes.Equal(got, more) {
				t.Fatalf("newest file after the retried commit: %v", err)
			}
			tree, err := r2.LoadTree(context.Background(), s.Tree)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if _, err := r2.OpenFile(tree.Find([]byte("two"))).CopyTo(context.Background(), &buf); err != nil || !bytes.Equal(buf.Bytes(), data) {
				t.Fatalf("file of the retried commit reads back wrong: %v", err)
			}
			rep, err := r2.Check(context.Background(), repo.CheckOptions{ReadData: true})
			if err != nil || !rep.OK() {
				t.Fatalf("check: %v %v", err, rep.Problems)
			}
		})
	}
}

// TestCommitRetryAfterIndexFailure: an index upload that failed is retried
// under the same name; nothing is lost.
func TestCommitRetryAfterIndexFailure(t *testing.T) {
	for _, m := range []faulty.Mode{faulty.FailBefore, faulty.FailAfter} {
		env := testutil.NewRepo(t, repo.InitOptions{})
		data := randomData(9, 2<<20)
		env.Remote.FailOn("put", "index/", 1, m)
		if _, err := commitFile(t, env.Repo, "f", data); !errors.Is(err, faulty.ErrInjected) {
			t.Fatalf("commit with a failing index upload = %v", err)
		}
		if _, err := commitFile(t, env.Repo, "f", data); err != nil {
			t.Fatal(err)
		}
		r2, err := env.Reopen(t, t.TempDir(), false)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := readFile(r2, "f"); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("read back: %v", err)
		}
		rep, err := r2.Check(context.Background(), repo.CheckOptions{})
		if err != nil || !rep.OK() || len(rep.Unreferenced) != 0 {
			t.Fatalf("check: %v %v, unreferenced %v", err, rep.Problems, rep.Unreferenced)
		}
	}
}

// TestCommitCrashDuringSnapshotUpload: a writer dies while its snapshot is
// being uploaded, leaving part of it on the remote. The next run on the same
// cache opens the repository and stores that snapshot whole under its own
// sequence number; if another writer committed meanwhile, the cut-off
// snapshot is dropped instead of taking a sequence number twice.
func TestCommitCrashDuringSnapshotUpload(t *testing.T) {
	ctx := context.Background()
	for _, otherWriter := range []bool{false, true} {
		env := testutil.NewRepo(t, repo.InitOptions{})
		storeFile(t, env.Repo, "one", []byte("first"))
		data := randomData(10, 1<<20)
		env.Remote.FailOn("put", "snapshots/", 1, faulty.FailPartial)
		if _, err := commitFile(t, env.Repo, "two", data); !errors.Is(err, faulty.ErrInjected) {
			t.Fatalf("commit = %v", err)
		}
		// The writer is gone; its partial snapshot stays on the remote.
		if otherWriter {
			// Another client finds the damaged object, someone removes
			// it, and another writer commits.
			_, err := env.Reopen(t, t.TempDir(), false)
			if !errors.Is(err, repo.ErrIntegrity) {
				t.Fatalf("a partial snapshot gave %v, not an integrity error", err)
			}
			damaged, _, _ := strings.Cut(err.Error(), ":")
			if err := os.Remove(filepath.Join(env.Dir, damaged)); err != nil {
				t.Fatal(err)
			}
			other, err := env.Reopen(t, t.TempDir(), false)
			if err != nil {
				t.Fatal(err)
			}
			if err := other.Lock(ctx, true); err != nil {
				t.Fatal(err)
			}
			storeFile(t, other, "other", []byte("other writer"))
			if err := other.Unlock(ctx); err != nil {
				t.Fatal(err)
			}
		}
		r, err := env.Reopen(t, "", false)
		if err != nil {
			t.Fatalf("reopen on the crashed writer's cache: %v", err)
		}
		if err := r.Lock(ctx, true); err != nil {
			t.Fatal(err)
		}
		if _, err := commitFile(t, r, "two", data); err != nil {
			t.Fatal(err)
		}
		_ = r.Unlock(ctx)
		fresh, err := env.Reopen(t, t.TempDir(), false)
		if err != nil {
			t.Fatalf("fresh client: %v", err)
		}
		seqs := map[uint64]bool{}
		for _, sn := range snapshots(t, fresh) {
			if seqs[sn.Seq] {
				t.Fatalf("two snapshots have sequence number %d", sn.Seq)
			}
			seqs[sn.Seq] = true
		}
		if want := map[bool]int{false: 2, true: 3}[otherWriter]; len(seqs) != want {
			t.Fatalf("other writer %v: %d snapshots, want %d", otherWriter, len(seqs), want)
		}
		if got, err := readFile(fresh, "two"); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("read back: %v", err)
		}
	}
}

// putRecorder records the bytes of every Put, attempts that fail included.
type putRecorder struct {
	remote.Remote
	mu   sync.Mutex
	puts map[string][][]byte
}

func (p *putRecorder) Put(ctx context.Context, name string, data []byte) error {
	p.mu.Lock()
	p.puts[name] = append(p.puts[name], bytes.Clone(data))
	p.mu.Unlock()
	return p.Remote.Put(ctx, name, data)
}

// TestPackRetrySameBytes: a pack whose upload failed is uploaded again with
// the same bytes, even when more blobs are saved before the retry. An
// upload that hung and lands after its retry (a cloud that stored the
// request after the client timed out) then changes nothing; a pack rebuilt
// under the same name would be replaced by the stale one, and the blobs
// added since would be lost.
func TestPackRetrySameBytes(t *testing.T) {
	ctx := context.Background()
	fr := testutil.NewRemote(t, filepath.Join(t.TempDir(), "remote"))
	rec := &putRecorder{Remote: fr, puts: map[string][][]byte{}}
	r, code, err := repo.Init(ctx, rec, repo.InitOptions{Options: repo.Options{CacheDir: t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Lock(ctx, false); err != nil {
		t.Fatal(err)
	}
	defer r.Unlock(ctx)
	fr.FailOn("put", "data/", 1, faulty.FailBefore)
	one := randomData(1, 300<<10)
	if _, err := commitFile(t, r, "one", one); !errors.Is(err, faulty.ErrInjected) {
		t.Fatalf("commit with a failing pack upload = %v", err)
	}
	// The writer goes on: more blobs, then a commit that succeeds.
	two := randomData(2, 300<<10)
	content, size, err := r.SaveFile(ctx, bytes.NewReader(two))
	if err != nil {
		t.Fatal(err)
	}
	oneContent, oneSize, err := r.SaveFile(ctx, bytes.NewReader(one))
	if err != nil {
		t.Fatal(err)
	}
	root, err := r.SaveTree(ctx, &repo.Tree{Nodes: []*repo.Node{
		{Name: []byte("one"), Type: repo.NodeFile, Mode: 0o644, Size: oneSize, Content: oneContent},
		{Name: []byte("two"), Type: repo.NodeFile, Mode: 0o644, Size: size, Content: content},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Commit(ctx, root, repo.CommitInfo{Files: 2}); err != nil {
		t.Fatal(err)
	}
	// The first attempt of every pack lands late, after its retry.
	retried := 0
	for name, puts := range rec.puts {
		if !strings.HasPrefix(name, "data/") || len(puts) < 2 {
			continue
		}
		retried++
		for _, p := range puts[1:] {
			if !bytes.Equal(p, puts[0]) {
				t.Errorf("pack %s was uploaded again with other bytes (%d, then %d)", name, len(puts[0]), len(p))
			}
		}
		if err := fr.Put(ctx, name, puts[0]); err != nil {
			t.Fatal(err)
		}
	}
	if retried == 0 {
		t.Fatal("no pack upload was retried")
	}
	r2, err := repo.Open(ctx, fr, unlock.WithCode(code), repo.Options{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string][]byte{"one": one, "two": two} {
		if got, err := readFile(r2, name); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s after the late landing: %v", name, err)
		}
	}
	rep, err := r2.Check(ctx, repo.CheckOptions{ReadData: true})
	if err != nil || !rep.OK() {
		t.Fatalf("check: %v %v", err, rep.Problems)
	}
}
