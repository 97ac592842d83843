package repo_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/remote"
	"github.com/sealfs/sealfs/remote/faulty"
	"github.com/sealfs/sealfs/repo"
)

// within runs fn in the background and fails the test when it has not
// returned after a long while: fn must not wait on a hung upload.
func within(t *testing.T, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s waits on an upload that hangs", what)
	}
}

// saveFileNode stores data as a file and returns its node.
func saveFileNode(t *testing.T, r *repo.Repository, name string, data []byte) *repo.Node {
	t.Helper()
	content, size, err := r.SaveFile(context.Background(), bytes.NewReader(data))
	if err != nil {
		t.Errorf("writing %s: %v", name, err)
		return nil
	}
	return &repo.Node{Name: []byte(name), Type: repo.NodeFile, Mode: 0o644, Size: size, Content: content}
}

// readNode reads a file's whole content through r.
func readNode(r *repo.Repository, n *repo.Node) ([]byte, error) {
	var buf bytes.Buffer
	_, err := r.OpenFile(n).CopyTo(context.Background(), &buf)
	return buf.Bytes(), err
}

// objects counts the objects in a folder of the local remote.
func objects(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// checkFresh opens the repository on a new cache and reads every file of
// the newest snapshot back byte for byte, then checks every object.
func checkFresh(t *testing.T, env *testutil.Env, files map[string][]byte) {
	t.Helper()
	r, err := env.Reopen(t, t.TempDir(), false)
	if err != nil {
		t.Fatalf("fresh client: %v", err)
	}
	for name, want := range files {
		if got, err := readFile(r, name); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s on a fresh cache: %v (%d bytes, want %d)", name, err, len(got), len(want))
		}
	}
	rep, err := r.Check(context.Background(), repo.CheckOptions{ReadData: true})
	if err != nil || !rep.OK() {
		t.Fatalf("check: %v %v", err, rep.Problems)
	}
}

// failOnePack fails the uploads of the first pack put, fails times.
type failOnePack struct {
	remote.Remote
	mu    sync.Mutex
	name  string
	fails int
}

func (f *failOnePack) Put(ctx context.Context, name string, data []byte) error {
	f.mu.Lock()
	if f.name == "" && strings.HasPrefix(name, "data/") {
		f.name = name
	}
	fail := name == f.name && f.fails > 0
	if fail {
		f.fails--
	}
	f.mu.Unlock()
	if fail {
		return fmt.Errorf("put %s: %w", name, faulty.ErrInjected)
	}
	return f.Remote.Put(ctx, name, data)
}

// newRepoOn is testutil.NewRepo over a wrapper of the fault injector.
func newRepoOn(t *testing.T, wrap func(remote.Remote) remote.Remote, o repo.InitOptions) *testutil.Env {
	t.Helper()
	ctx := context.Background()
	env := &testutil.Env{Dir: filepath.Join(t.TempDir(), "remote"), CacheDir: t.TempDir()}
	env.Remote = testutil.NewRemote(t, env.Dir)
	o.CacheDir = env.CacheDir
	r, code, err := repo.Init(ctx, wrap(env.Remote), o)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Lock(ctx, false); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Unlock(ctx) })
	env.Repo, env.Code = r, code
	return env
}

// TestPackUploadFailsLaterPacksStored: the upload of one pack fails (also
// when the commit tries it again) while the packs after it are stored. The
// write goes on, the commit fails and stores no index and no snapshot, and
// the next commit stores everything: a new client reads every byte.
func TestPackUploadFailsLaterPacksStored(t *testing.T) {
	ctx := context.Background()
	env := newRepoOn(t, func(r remote.Remote) remote.Remote { return &failOnePack{Remote: r, fails: 2} },
		repo.InitOptions{PackSize: 1 << 20})
	data := randomData(21, 4<<20)
	n := saveFileNode(t, env.Repo, "f", data)
	if n == nil {
		t.FailNow()
	}
	root, err := env.Repo.SaveTree(ctx, &repo.Tree{Nodes: []*repo.Node{n}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.Repo.Commit(ctx, root, repo.CommitInfo{Files: 1}); !errors.Is(err, faulty.ErrInjected) {
		t.Fatalf("commit with a pack whose upload fails = %v", err)
	}
	if got := objects(t, filepath.Join(env.Dir, "data")); got < 2 {
		t.Fatalf("%d packs stored beside the failed one, want the others", got)
	}
	if objects(t, filepath.Join(env.Dir, "index"))+objects(t, filepath.Join(env.Dir, "snapshots")) != 0 {
		t.Fatal("a failed commit stored an index or a snapshot")
	}
	if got, err := readNode(env.Repo, n); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("reading the file whose pack failed: %v", err)
	}
	if _, err := env.Repo.Commit(ctx, root, repo.CommitInfo{Files: 1}); err != nil {
		t.Fatalf("retried commit: %v", err)
	}
	checkFresh(t, env, map[string][]byte{"f": data})
}

// TestReadDuringHungUpload: while pack uploads hang, writing a file
// returns, its blobs (in packs on their way up) read back, a file stored
// before reads from the remote, and a commit waits; once the remote
// answers, the commit stores everything.
func TestReadDuringHungUpload(t *testing.T) {
	ctx := context.Background()
	env := testutil.NewRepo(t, repo.InitOptions{PackSize: 1 << 20})
	one := randomData(31, 3<<20)
	storeFile(t, env.Repo, "one", one)
	tree, err := env.Repo.LoadTree(ctx, env.Repo.Latest().Tree)
	if err != nil {
		t.Fatal(err)
	}
	oneNode := tree.Find([]byte("one"))

	env.Remote.FailOn("put", "data/", 1000, faulty.Hang)
	t.Cleanup(env.Remote.Release)
	two := randomData(32, 3<<20)
	written := make(chan *repo.Node, 1)
	go func() { written <- saveFileNode(t, env.Repo, "two", two) }()
	waitHeld(t, env.Remote, 1)
	within(t, "reading a stored file", func() {
		if got, err := readNode(env.Repo, oneNode); err != nil || !bytes.Equal(got, one) {
			t.Errorf("reading a stored file while an upload hangs: %v", err)
		}
	})
	var twoNode *repo.Node
	within(t, "writing a file", func() { twoNode = <-written })
	if twoNode == nil {
		t.FailNow()
	}
	root, err := env.Repo.SaveTree(ctx, &repo.Tree{Nodes: []*repo.Node{oneNode, twoNode}})
	if err != nil {
		t.Fatal(err)
	}
	committed := make(chan error, 1)
	go func() {
		_, err := env.Repo.Commit(ctx, root, repo.CommitInfo{Files: 2})
		committed <- err
	}()
	for name, c := range map[string]struct {
		n    *repo.Node
		want []byte
	}{"one": {oneNode, one}, "two": {twoNode, two}} {
		within(t, "reading "+name, func() {
			if got, err := readNode(env.Repo, c.n); err != nil || !bytes.Equal(got, c.want) {
				t.Errorf("reading %s while uploads hang: %v", name, err)
			}
		})
	}
	select {
	case err := <-committed:
		t.Fatalf("the commit ended (%v) while its packs are not stored", err)
	default:
	}
	env.Remote.Release()
	if err := <-committed; err != nil {
		t.Fatalf("commit once the remote answers: %v", err)
	}
	checkFresh(t, env, map[string][]byte{"one": one, "two": two})
}

// waitHeld waits until the remote holds n operations.
func waitHeld(t *testing.T, r *faulty.Remote, n int64) {
	t.Helper()
	for end := time.Now().Add(30 * time.Second); r.Held() < n; time.Sleep(time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("the remote holds %d operations, want %d", r.Held(), n)
		}
	}
}

// concurrentPuts records the most pack uploads under way at once.
type concurrentPuts struct {
	remote.Remote
	now, most atomic.Int64
}

func (c *concurrentPuts) Put(ctx context.Context, name string, data []byte) error {
	n := c.now.Add(1)
	defer c.now.Add(-1)
	for m := c.most.Load(); n > m && !c.most.CompareAndSwap(m, n); m = c.most.Load() {
	}
	return c.Remote.Put(ctx, name, data)
}

// TestUploadsBounded: at most Transfers packs upload at once, and a writer
// faster than the remote waits with Transfers+1 packs in memory.
func TestUploadsBounded(t *testing.T) {
	ctx := context.Background()
	fr := testutil.NewRemote(t, filepath.Join(t.TempDir(), "remote"))
	cp := &concurrentPuts{Remote: fr}
	r, _, err := repo.Init(ctx, cp, repo.InitOptions{PackSize: 1 << 20, Options: repo.Options{CacheDir: t.TempDir(), Transfers: 2}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Lock(ctx, false); err != nil {
		t.Fatal(err)
	}
	defer r.Unlock(ctx)
	fr.FailOn("put", "data/", 1000, faulty.Hang)
	defer fr.Release()
	data := randomData(41, 12<<20)
	written := make(chan *repo.Node, 1)
	go func() { written <- saveFileNode(t, r, "f", data) }()
	waitHeld(t, fr, 2)
	for end := time.Now().Add(30 * time.Second); repo.PacksInMemoryForTest(r) < 3; time.Sleep(time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("%d packs in memory, want 3", repo.PacksInMemoryForTest(r))
		}
	}
	time.Sleep(100 * time.Millisecond) // a writer that does not wait goes on meanwhile
	select {
	case <-written:
		t.Fatal("the writer did not wait for a pack to be stored")
	default:
	}
	if n := repo.PacksInMemoryForTest(r); n != 3 || fr.Held() != 2 {
		t.Fatalf("%d packs in memory and %d uploads held, want 3 and 2", n, fr.Held())
	}
	fr.Release()
	n := <-written
	if n == nil {
		t.FailNow()
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if most := cp.most.Load(); most != 2 {
		t.Fatalf("%d pack uploads at once, want 2 (Transfers)", most)
	}
	if got, err := readNode(r, n); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back: %v", err)
	}
}

// TestCommitCancelledDuringHungUpload: a commit whose context ends while
// its packs hang fails with the context's error and stores no snapshot;
// the next commit stores everything. Unlocking cancels uploads that hang.
func TestCommitCancelledDuringHungUpload(t *testing.T) {
	env := testutil.NewRepo(t, repo.InitOptions{PackSize: 1 << 20})
	env.Remote.FailOn("put", "data/", 1000, faulty.Hang)
	t.Cleanup(env.Remote.Release)
	data := randomData(51, 2<<20)
	n := saveFileNode(t, env.Repo, "f", data)
	if n == nil {
		t.FailNow()
	}
	root, err := env.Repo.SaveTree(context.Background(), &repo.Tree{Nodes: []*repo.Node{n}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	committed := make(chan error, 1)
	go func() {
		_, err := env.Repo.Commit(ctx, root, repo.CommitInfo{Files: 1})
		committed <- err
	}()
	waitHeld(t, env.Remote, 1)
	cancel()
	if err := <-committed; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled commit = %v", err)
	}
	if len(snapshots(t, env.Repo)) != 0 {
		t.Fatal("a cancelled commit stored a snapshot")
	}
	env.Remote.Release()
	if _, err := env.Repo.Commit(context.Background(), root, repo.CommitInfo{Files: 1}); err != nil {
		t.Fatal(err)
	}
	checkFresh(t, env, map[string][]byte{"f": data})

	// Uploads still hanging when the writer stops are cancelled: Unlock
	// returns, and the pack is not counted as stored.
	env.Remote.FailOn("put", "data/", 1000, faulty.Hang)
	saveFileNode(t, env.Repo, "g", randomData(52, 2<<20))
	waitHeld(t, env.Remote, 1)
	before := env.Repo.Stats().Packs
	within(t, "unlocking", func() {
		if err := env.Repo.Unlock(context.Background()); err != nil {
			t.Error(err)
		}
	})
	if got := env.Repo.Stats().Packs; got != before {
		t.Fatalf("%d packs counted as stored after a cancelled upload, want %d", got, before)
	}
}

// TestConcurrentWritersReadersCommits: writers save files, readers read
// back what was saved (from packs being built, uploading, or stored) and a
// committer commits everything saved so far, all at once, over a remote
// with latency and small packs. A new client then reads every file.
func TestConcurrentWritersReadersCommits(t *testing.T) {
	ctx := context.Background()
	env := testutil.NewRepo(t, repo.InitOptions{PackSize: 1 << 20, Options: repo.Options{Transfers: 2}})
	env.Remote.SetLatency(time.Millisecond)
	var (
		mu    sync.Mutex
		nodes []*repo.Node
		files = map[string][]byte{}
	)
	var writers, readers sync.WaitGroup
	for w := range 3 {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for i := range 6 {
				seed := uint64(100*w + i)
				data := randomData(seed, int(seed*37%7)<<18)
				if i%3 == 1 {
					clear(data[len(data)/4 : len(data)/2]) // a run of zeros: a hole
				}
				name := string(rune('a'+w)) + string(rune('0'+i))
				n := saveFileNode(t, env.Repo, name, data)
				if n == nil {
					return
				}
				mu.Lock()
				nodes, files[name] = append(nodes, n), data
				mu.Unlock()
			}
		}()
	}
	stop := make(chan struct{})
	for range 2 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				mu.Lock()
				if len(nodes) == 0 {
					mu.Unlock()
					time.Sleep(time.Millisecond)
					continue
				}
				n := nodes[i%len(nodes)]
				want := files[string(n.Name)]
				mu.Unlock()
				if got, err := readNode(env.Repo, n); err != nil || !bytes.Equal(got, want) {
					t.Errorf("reading %s while writing: %v", n.Name, err)
					return
				}
			}
		}()
	}
	commit := func() {
		mu.Lock()
		tree := &repo.Tree{Nodes: append([]*repo.Node(nil), nodes...)}
		mu.Unlock()
		root, err := env.Repo.SaveTree(ctx, tree)
		if err == nil {
			_, err = env.Repo.Commit(ctx, root, repo.CommitInfo{Files: uint64(len(tree.Nodes))})
		}
		if err != nil {
			t.Errorf("commit: %v", err)
		}
	}
	committing := make(chan struct{})
	go func() {
		defer close(committing)
		for {
			select {
			case <-stop:
				return
			default:
			}
			commit()
		}
	}()
	writers.Wait()
	close(stop)
	readers.Wait()
	<-committing
	commit()
	checkFresh(t, env, files)
}

// TestWriteCancelled: a write waiting for a slot while uploads hang ends
// with its context's error.
func TestWriteCancelled(t *testing.T) {
	env := testutil.NewRepo(t, repo.InitOptions{PackSize: 1 << 20, Options: repo.Options{Transfers: 1}})
	env.Remote.FailOn("put", "data/", 1000, faulty.Hang)
	t.Cleanup(env.Remote.Release)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, _, err := env.Repo.SaveFile(ctx, bytes.NewReader(randomData(61, 8<<20)))
		done <- err
	}()
	waitHeld(t, env.Remote, 1)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("write cancelled while it waits for an upload = %v", err)
	}
}
