package worktree

import (
	"context"
	"errors"
	"maps"
	"sync"
	"syscall"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/repo"
)

// Directories are loaded outside the tree's lock. An operation that meets
// a directory whose tree is not loaded gives the lock up (loadDir returns
// an *unloadedError), the tree blob is fetched while every other operation
// goes on (ctx bounds the wait: an interrupted request stops waiting), and
// the operation starts again under the lock, now with the directory
// loaded. Operations load what they need before they change anything, so
// starting again is safe. Only opening and rebasing, which no operation
// runs beside, fetch under the lock (Tree.fetchLocked).

// unloadedError tells an operation under t.mu that it needs the tree id
// of directory dir loaded first or, with all, every directory's.
type unloadedError struct {
	dir *Inode
	id  crypt.ID
	all bool
}

func (e *unloadedError) Error() string { return "a directory must be loaded first" }

// locked runs op under t.mu; when op needs a directory that is not
// loaded, locked loads it without the lock and runs op again.
func (t *Tree) locked(ctx context.Context, op func() error) error {
	for {
		t.mu.Lock()
		err := op()
		t.mu.Unlock()
		var u *unloadedError
		if !errors.As(err, &u) {
			return err
		}
		if err := t.load(ctx, u); err != nil {
			return err
		}
	}
}

// load loads what u asks for, fetching without t.mu. A tree that holds
// hard links loads the whole tree with it (loadDir).
func (t *Tree) load(ctx context.Context, u *unloadedError) error {
	trees := map[crypt.ID]*repo.Tree{}
	if !u.all {
		tr, err := t.r.LoadTree(ctx, u.id)
		if err != nil {
			return err
		}
		if !hasLinkGroups(tr) {
			t.mu.Lock()
			t.installLocked(u.dir, u.id, tr)
			t.trimLocked()
			t.mu.Unlock()
			t.notifyUnloaded()
			return nil
		}
		trees[u.id] = tr
	}
	if err := t.fetchAll(ctx, trees); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.prefetched = trees
	defer func() { t.prefetched = nil }()
	err := t.loadAllLocked(ctx)
	if err == nil && !u.all {
		err = t.loadDir(ctx, u.dir) // a directory out of the namespace
	}
	if errors.As(err, &u) {
		return nil // something changed meanwhile: the operation asks again
	}
	return err
}

// installLocked makes tr, fetched without the lock, the entries of dir if
// dir still waits for it.
func (t *Tree) installLocked(dir *Inode, id crypt.ID, tr *repo.Tree) {
	if dir.meta.Type == repo.NodeDir && dir.children == nil && dir.meta.Subtree == id && detachedBelow(dir) == nil {
		t.fillDirLocked(dir, tr)
	}
}

// loadDir reads a directory's tree the first time it is needed; one that
// holds hard links loads the whole tree first (links.go). Without
// t.fetchLocked, a tree that is not at hand is an *unloadedError (see
// locked). A load that fails (ctx done, the remote down) leaves the
// directory unloaded: the next call tries again. t.mu is held.
func (t *Tree) loadDir(ctx context.Context, dir *Inode) error {
	if dir.meta.Type != repo.NodeDir {
		return syscall.ENOTDIR
	}
	if err := t.attachLocked(ctx, dir); err != nil {
		return err
	}
	if dir.children != nil {
		t.usedLocked(dir)
		return nil
	}
	id := dir.meta.Subtree
	tr := t.prefetched[id]
	if tr == nil {
		if !t.fetchLocked {
			return &unloadedError{dir: dir, id: id}
		}
		var err error
		if tr, err = t.r.LoadTree(ctx, id); err != nil {
			return err
		}
	}
	if !t.loadingAll && hasLinkGroups(tr) {
		if err := t.loadAllLocked(ctx); err != nil {
			return err
		}
		if dir.children != nil {
			return nil
		}
	}
	t.fillDirLocked(dir, tr)
	return nil
}

// missingLocked returns the trees that loading every directory still
// needs: those of the directories not loaded, and of theirs, that are not
// in t.prefetched. t.mu is held.
func (t *Tree) missingLocked() []crypt.ID {
	var missing []crypt.ID
	seen := map[crypt.ID]bool{}
	var walkTree func(id crypt.ID)
	walkTree = func(id crypt.ID) {
		if seen[id] {
			return
		}
		seen[id] = true
		tr := t.prefetched[id]
		if tr == nil {
			missing = append(missing, id)
			return
		}
		for _, n := range tr.Nodes {
			if n.Type == repo.NodeDir {
				walkTree(n.Subtree)
			}
		}
	}
	var walk func(dir *Inode)
	walk = func(dir *Inode) {
		if dir.children == nil {
			walkTree(dir.meta.Subtree)
			return
		}
		for _, c := range dir.children {
			if c.meta.Type == repo.NodeDir {
				walk(c)
			}
		}
	}
	walk(t.root)
	return missing
}

// fetchAll adds to trees every tree that loading the whole tree needs,
// fetched without the lock, a level at a time, in parallel.
func (t *Tree) fetchAll(ctx context.Context, trees map[crypt.ID]*repo.Tree) error {
	for {
		t.mu.Lock()
		t.prefetched = trees
		missing := t.missingLocked()
		t.prefetched = nil
		t.mu.Unlock()
		if len(missing) == 0 {
			return nil
		}
		got, err := t.fetchTrees(ctx, missing)
		if err != nil {
			return err
		}
		maps.Copy(trees, got)
	}
}

// fetchParallel is how many trees a load fetches at once.
const fetchParallel = 8

// fetchTrees fetches the trees ids, fetchParallel at a time; the first
// failure stops the others.
func (t *Tree) fetchTrees(ctx context.Context, ids []crypt.ID) (map[crypt.ID]*repo.Tree, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu    sync.Mutex
		out   = make(map[crypt.ID]*repo.Tree, len(ids))
		first error
		wg    sync.WaitGroup
		sem   = make(chan struct{}, fetchParallel)
	)
	for _, id := range ids {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			tr, err := t.r.LoadTree(ctx, id)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if first == nil {
					first = err
					cancel()
				}
				return
			}
			out[id] = tr
		})
	}
	wg.Wait()
	if first != nil {
		return nil, first
	}
	return out, nil
}
