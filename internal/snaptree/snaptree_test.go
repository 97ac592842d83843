package snaptree

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/internal/archiver"
	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/repo"
)

// counting is a Loader that counts the trees it loads from a repository.
type counting struct {
	r      *repo.Repository
	mu     sync.Mutex
	loaded map[crypt.ID]int
}

func (c *counting) LoadTree(ctx context.Context, id crypt.ID) (*repo.Tree, error) {
	c.mu.Lock()
	c.loaded[id]++
	c.mu.Unlock()
	return c.r.LoadTree(ctx, id)
}

// write makes files (path -> content; "->x" a symlink to x; a name ending
// in "/" an empty folder) under a new folder.
func write(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	writeIn(t, dir, files)
	return dir
}

// writeIn makes files as write does, in dir.
func writeIn(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		switch {
		case strings.HasSuffix(name, "/"):
			err = os.MkdirAll(p, 0o755)
		case strings.HasPrefix(data, "->"):
			err = os.Symlink(data[2:], p)
		default:
			err = os.WriteFile(p, []byte(data), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// save stores dir as a tree and returns its id.
func save(t *testing.T, r *repo.Repository, dir string) crypt.ID {
	t.Helper()
	id, err := archiver.NewSaver(r).SaveDir(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Commit(context.Background(), id, repo.CommitInfo{}); err != nil {
		t.Fatal(err)
	}
	return id
}

// TestDiffAndList: Diff gives added (everything inside an added folder
// too), removed and changed paths in path order, a changed type as a
// removal and an addition, and never loads a folder whose subtree did not
// change; List and Lookup walk one snapshot.
func TestDiffAndList(t *testing.T) {
	env := testutil.NewRepo(t, repo.InitOptions{})
	r := env.Repo
	same := map[string]string{}
	for _, n := range []string{"same/a", "same/b", "same/deep/c"} {
		same[n] = "unchanged " + n
	}
	v1 := map[string]string{
		"a.txt": "one", "gone/z": "z", "gone/deeper/y": "y", "link": "->a.txt", "sub/x": "x", "sub/deep/keep": "k",
		"was-file": "f", "was-dir/inner": "i",
	}
	for k, v := range same {
		v1[k] = v
	}
	dir := write(t, v1)
	// The first save reads every file and folder once, which moves their
	// access times (relatime); from the second on they stay, and an
	// unchanged folder is stored as the same tree, as a mount does.
	save(t, r, dir)
	t1 := save(t, r, dir)
	for _, p := range []string{"gone", "was-file", "was-dir", "link"} {
		if err := os.RemoveAll(filepath.Join(dir, p)); err != nil {
			t.Fatal(err)
		}
	}
	write2 := map[string]string{
		"a.txt": "two", "link": "->sub/x", "sub/deep/new": "n",
		"newdir/n1": "1", "newdir/in/n2": "2", "was-file/now-inside": "d", "was-dir": "now a file", "empty/": "",
	}
	writeIn(t, dir, write2)
	if err := os.Chmod(filepath.Join(dir, "sub/x"), 0o600); err != nil {
		t.Fatal(err)
	}
	t2 := save(t, r, dir)

	l := &counting{r: r, loaded: map[crypt.ID]int{}}
	var got []string
	if err := Diff(context.Background(), l, t1, t2, func(c Change) error {
		got = append(got, string(c.Kind)+" "+c.Path)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"M a.txt",
		"+ empty",
		"- gone", "- gone/deeper", "- gone/deeper/y", "- gone/z",
		"M link",
		"+ newdir", "+ newdir/in", "+ newdir/in/n2", "+ newdir/n1",
		"+ sub/deep/new",
		"M sub/x",
		"- was-dir", "- was-dir/inner", "+ was-dir",
		"- was-file", "+ was-file", "+ was-file/now-inside",
	}
	if !slices.Equal(got, want) {
		t.Errorf("diff:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	sameNode, err := Lookup(context.Background(), r, t1, "/same")
	if err != nil || sameNode == nil {
		t.Fatal(err)
	}
	if n := l.loaded[sameNode.Subtree]; n != 0 {
		t.Errorf("the unchanged folder's tree was loaded %d times", n)
	}
	if deep, _ := Lookup(context.Background(), r, t1, "same/deep"); l.loaded[deep.Subtree] != 0 {
		t.Error("a folder inside the unchanged one was loaded")
	}
	// No change at all: nothing loaded.
	l.loaded = map[crypt.ID]int{}
	if err := Diff(context.Background(), l, t2, t2, func(c Change) error { return errors.New("a change of a tree against itself") }); err != nil || len(l.loaded) != 0 {
		t.Errorf("diff of a tree with itself: %v, %d trees loaded", err, len(l.loaded))
	}

	var listed []string
	if err := List(context.Background(), r, t2, "", false, func(e Entry) error { listed = append(listed, e.Path); return nil }); err != nil {
		t.Fatal(err)
	}
	if w := []string{"a.txt", "empty", "link", "newdir", "same", "sub", "was-dir", "was-file"}; !slices.Equal(listed, w) {
		t.Errorf("list: %q, want %q", listed, w)
	}
	listed = nil
	sub, err := Lookup(context.Background(), r, t2, "/sub/")
	if err != nil {
		t.Fatal(err)
	}
	if err := List(context.Background(), r, sub.Subtree, "sub", true, func(e Entry) error { listed = append(listed, e.Path); return nil }); err != nil {
		t.Fatal(err)
	}
	if w := []string{"sub/deep", "sub/deep/keep", "sub/deep/new", "sub/x"}; !slices.Equal(listed, w) {
		t.Errorf("list -R sub: %q, want %q", listed, w)
	}
	for _, p := range []string{"nothing", "a.txt/below", "sub/deep/none"} {
		if _, err := Lookup(context.Background(), r, t2, p); !errors.Is(err, ErrNotFound) {
			t.Errorf("Lookup(%q) = %v, want ErrNotFound", p, err)
		}
	}
}
