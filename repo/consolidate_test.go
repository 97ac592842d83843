package repo_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/bits"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/internal/unlock"
	"github.com/sealfs/sealfs/remote"
	"github.com/sealfs/sealfs/remote/faulty"
	"github.com/sealfs/sealfs/repo"
)

// indexPuts sits above a faulty remote: it records every Put of an index
// object, and arms failOn on the first Put of a merged one (an index object
// larger than the first index it saw, which held one commit's blobs).
type indexPuts struct {
	remote.Remote
	fr     *faulty.Remote
	mu     sync.Mutex
	puts   map[string][][]byte
	bytes  int
	first  int
	failOn *faulty.Mode
}

func (p *indexPuts) Put(ctx context.Context, name string, data []byte) error {
	if strings.HasPrefix(name, "index/") {
		p.mu.Lock()
		p.puts[name] = append(p.puts[name], bytes.Clone(data))
		p.bytes += len(data)
		if p.first == 0 {
			p.first = len(data)
		}
		if p.failOn != nil && len(data) > p.first {
			p.fr.FailOn("put", name, 1, *p.failOn)
			p.failOn = nil
		}
		p.mu.Unlock()
	}
	return p.Remote.Put(ctx, name, data)
}

// historyRepo is a repository whose writer goes through an indexPuts.
func historyRepo(t *testing.T) (*repo.Repository, *indexPuts, string, func(cacheDir string) *repo.Repository) {
	t.Helper()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "remote")
	fr := testutil.NewRemote(t, dir)
	p := &indexPuts{Remote: fr, fr: fr, puts: map[string][][]byte{}}
	r, code, err := repo.Init(ctx, p, repo.InitOptions{Options: repo.Options{CacheDir: t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Lock(ctx, false); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Unlock(ctx) })
	open := func(cacheDir string) *repo.Repository {
		t.Helper()
		r2, err := repo.Open(ctx, testutil.NewRemote(t, dir), unlock.WithCode(code), repo.Options{CacheDir: cacheDir})
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		return r2
	}
	return r, p, dir, open
}

// history commits files one at a time, each commit holding every file so
// far in its root tree.
type history struct {
	t     *testing.T
	r     *repo.Repository
	tree  repo.Tree
	files map[string][]byte
}

func (h *history) commit(i int) error {
	h.t.Helper()
	ctx := context.Background()
	name := fmt.Sprintf("f%05d", i)
	data := randomData(uint64(1000+i), 700)
	content, size, err := h.r.SaveFile(ctx, bytes.NewReader(data))
	if err != nil {
		h.t.Fatal(err)
	}
	tree := repo.Tree{Nodes: append(append([]*repo.Node(nil), h.tree.Nodes...), &repo.Node{Name: []byte(name), Type: repo.NodeFile, Mode: 0o644, Size: size, Content: content})}
	root, err := h.r.SaveTree(ctx, &tree)
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := h.r.Commit(ctx, root, repo.CommitInfo{Files: uint64(len(tree.Nodes))}); err != nil {
		return err
	}
	h.tree = tree
	h.files[name] = data
	return nil
}

// verify opens the repository on a fresh cache, reads every file back and
// checks it.
func (h *history) verify(open func(string) *repo.Repository) {
	h.t.Helper()
	r2 := open(h.t.TempDir())
	for name, want := range h.files {
		if got, err := readFile(r2, name); err != nil || !bytes.Equal(got, want) {
			h.t.Fatalf("%s reads back wrong: %v", name, err)
		}
	}
	rep, err := r2.Check(context.Background(), repo.CheckOptions{ReadData: true})
	if err != nil || !rep.OK() {
		h.t.Fatalf("check: %v %v", err, rep.Problems)
	}
}

// TestIndexConsolidationBounded: after many small commits the newest
// snapshot names a few index objects (about log2 of its blobs, not one a
// commit), each blob is rewritten about log2 times in all, and a new
// client finds every blob of every file.
func TestIndexConsolidationBounded(t *testing.T) {
	r, p, _, open := historyRepo(t)
	h := &history{t: t, r: r, files: map[string][]byte{}}
	const commits = 300
	for i := range commits {
		if err := h.commit(i); err != nil {
			t.Fatal(err)
		}
		blobs := r.Index().Len()
		if n, bound := len(r.Latest().Indexes), 2*bits.Len(uint(blobs))+1; n > bound {
			t.Fatalf("commit %d: the snapshot names %d index objects for %d blobs, over %d", i+1, n, blobs, bound)
		}
	}
	// Each commit adds 2 blobs (a file, the root tree): the index objects
	// written hold each entry about log_1.5(entries) times at most.
	entries := r.Index().Len()
	written := (p.bytes - len(p.puts)*(5+28)) / 77
	if bound := entries * (2 * bits.Len(uint(entries))); written > bound {
		t.Fatalf("%d index entries written for %d blobs, over %d", written, entries, bound)
	}
	t.Logf("%d commits: %d index objects named, %d written, %d entries written for %d blobs", commits, len(r.Latest().Indexes), len(p.puts), written, entries)
	h.verify(open)
}

// TestIndexConsolidationFails: a commit whose merge of index objects fails
// (the merged object's upload fails before or after landing, or part of it
// lands; reading an object to merge fails) fails; the next commit uploads
// the same merged bytes again and succeeds, and every file of every commit
// reads back on a new client, with a clean check.
func TestIndexConsolidationFails(t *testing.T) {
	for _, c := range []struct {
		name string
		mode faulty.Mode
		op   string
	}{{"put-before", faulty.FailBefore, "put"}, {"put-landed", faulty.FailAfter, "put"}, {"put-partial", faulty.FailPartial, "put"}, {"read", faulty.FailBefore, "stat"}} {
		t.Run(c.name, func(t *testing.T) {
			r, p, _, open := historyRepo(t)
			h := &history{t: t, r: r, files: map[string][]byte{}}
			for i := range 5 {
				if err := h.commit(i); err != nil {
					t.Fatal(err)
				}
			}
			// The next merge fails (a commit's own index object goes
			// up first).
			if c.op == "put" {
				p.mu.Lock()
				p.failOn = &c.mode
				p.mu.Unlock()
			} else {
				p.fr.FailOn(c.op, "index/", 1, c.mode)
			}
			i := 5
			for ; ; i++ {
				before := r.Latest()
				err := h.commit(i)
				if err == nil {
					if i > 10 {
						t.Fatal("no commit merged index objects")
					}
					continue
				}
				if !errors.Is(err, faulty.ErrInjected) {
					t.Fatalf("commit with a failing merge = %v", err)
				}
				if r.Latest() != before {
					t.Fatalf("a failed commit changed the newest snapshot")
				}
				break
			}
			for ; i < 40; i++ {
				if err := h.commit(i); err != nil {
					t.Fatalf("commit %d: %v", i, err)
				}
			}
			if c.op == "put" {
				retried := 0
				for name, puts := range p.puts {
					for _, b := range puts[1:] {
						if !bytes.Equal(b, puts[0]) {
							t.Fatalf("index %s was uploaded again with other bytes", name)
						}
						retried++
					}
				}
				if retried != 1 {
					t.Fatalf("%d index uploads were retried, want the merged one", retried)
				}
			}
			h.verify(open)
		})
	}
}

// TestCheckNeedsOnlyNewestIndexes: the index objects only older snapshots
// name (replaced by merges) may go: a new client reads every file and
// check finds nothing wrong; a missing index object the newest snapshot
// names is an integrity error naming it.
func TestCheckNeedsOnlyNewestIndexes(t *testing.T) {
	r, _, dir, open := historyRepo(t)
	h := &history{t: t, r: r, files: map[string][]byte{}}
	for i := range 40 {
		if err := h.commit(i); err != nil {
			t.Fatal(err)
		}
	}
	named := map[string]bool{}
	for _, x := range slices.Concat(r.Latest().Indexes, r.Latest().Cold) {
		named["index/"+x.String()] = true
	}
	all, _ := filepath.Glob(filepath.Join(dir, "index", "*"))
	removed := 0
	for _, p := range all {
		if !named["index/"+filepath.Base(p)] {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			removed++
		}
	}
	if removed == 0 || len(named) > 8 {
		t.Fatalf("%d index objects replaced by merges, %d named: no merge?", removed, len(named))
	}
	h.verify(open)
	r2 := open(t.TempDir())
	rep, err := r2.Check(context.Background(), repo.CheckOptions{})
	if err != nil || !rep.OK() || len(rep.Unreferenced) != 0 {
		t.Fatalf("check: %v %v, unreferenced %v", err, rep.Problems, rep.Unreferenced)
	}
	victim := "index/" + r.Latest().Indexes[0].String()
	if err := os.Remove(filepath.Join(dir, victim)); err != nil {
		t.Fatal(err)
	}
	rep, err = r2.Check(context.Background(), repo.CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || !strings.Contains(errors.Join(rep.Problems...).Error(), victim) {
		t.Fatalf("check with %s deleted: %v", victim, rep.Problems)
	}
}
