package worktree

import (
	"cmp"
	"context"
	"slices"
	"weak"

	"github.com/sealfs/sealfs/repo"
)

// A folder's entries cost memory for every file under it (an Inode, its
// name, its map entry; and the kernel's inode and go-fuse's node while the
// kernel holds it), so a tree of a million files cannot stay loaded. Once
// more than Options.MaxLoaded entries are loaded, the folders used least
// recently are unloaded again: those whose entries are all idle (not
// staged, open, linked or loaded below) and equal, entry for entry, to
// the tree blob the folder names (meta.Subtree: what it was loaded from,
// or what the last commit stored for it; checked by encoding them). A
// folder unloaded is a folder never loaded: it loads again when needed.
// A tree that holds hard links stays loaded: a commit loads it whole to
// number their link groups (loadForLinks).
//
// Its entries' Inodes may still be held by someone (the kernel's nodes in
// fusefs, an operation under way): the folder keeps a weak pointer to
// each (until a later commit finds it gone: forgetGoneLocked), and the
// load that brings it back puts those still alive back in place, so a
// held inode keeps its number and identity. Until then it is
// detached (its parent is not loaded): every operation that could change
// an inode first attaches it (loadDir, attachLocked, lockAttached), so no
// change ever lands on a detached one. Options.OnUnload tells the mount,
// which asks the kernel to forget the entries it holds of the folders
// unloaded; the memory goes once nothing holds them.

// DefaultMaxLoaded is the number of loaded entries over which folders are
// unloaded, unless Options.MaxLoaded says otherwise.
const DefaultMaxLoaded = 16384

// keepRecent is how many of the folders used last are never unloaded.
const keepRecent = 4

// defaultMaxLoaded is what 0 means (a variable for tests, which run the
// whole suite with folders unloaded as soon as they can be).
var defaultMaxLoaded = DefaultMaxLoaded

// maxLoaded returns the bound on loaded entries; 0: none.
func (t *Tree) maxLoaded() int {
	switch m := t.opts.MaxLoaded; {
	case m < 0:
		return 0
	case m == 0:
		return defaultMaxLoaded
	default:
		return m
	}
}

// usedLocked notes a use of the loaded directory dir, for the choice of
// the folders to unload; one out of the namespace (removed: dropLocked
// takes it off) is never unloaded. t.mu is held.
func (t *Tree) usedLocked(dir *Inode) {
	if dir.children == nil || dir == t.root || dir.parent == nil {
		return
	}
	if t.loaded == nil {
		t.loaded = map[*Inode]uint64{}
	}
	t.useClock++
	t.loaded[dir] = t.useClock
}

// detachedBelow returns the highest of in and its ancestors whose parent
// is not loaded (it was unloaded while in was held), or nil when in is
// attached: in the namespace, or out of it (unlinked).
func detachedBelow(in *Inode) *Inode {
	var top *Inode
	for c := in; c.parent != nil; c = c.parent {
		if c.parent.children == nil {
			top = c
		}
	}
	return top
}

// attachLocked puts in back in its folder if the folder was unloaded,
// loading it and those above it (an *unloadedError without
// t.fetchLocked, as loadDir). t.mu is held.
func (t *Tree) attachLocked(ctx context.Context, in *Inode) error {
	for {
		top := detachedBelow(in)
		if top == nil {
			return nil
		}
		parent := top.parent
		if err := t.loadDir(ctx, parent); err != nil {
			return err
		}
		if parent.children == nil {
			return nil // cannot happen: loadDir loads it or fails
		}
	}
}

// lockAttached takes t.mu with in attached, loading what it needs
// without the lock (its folders are loaded with the tree's own context:
// the callers have none).
func (t *Tree) lockAttached(in *Inode) error {
	for {
		t.mu.Lock()
		if detachedBelow(in) == nil {
			return nil
		}
		t.mu.Unlock()
		if err := t.locked(t.life, func() error { return t.attachLocked(t.life, in) }); err != nil {
			return err
		}
	}
}

// idleLocked reports whether c, an entry of a folder, leaves nothing but
// its stored node behind when the folder is unloaded. t.mu is held.
func (t *Tree) idleLocked(c *Inode) bool {
	return c.staging == "" && c.file == nil && c.stream == nil && !c.overlay && c.opens == 0 && c.writers == 0 &&
		c.fills == 0 && len(c.links) == 0 && c.meta.LinkGroup == 0 && !t.staged[c] && !t.linked[c] &&
		(c.meta.Type != repo.NodeDir || c.children == nil)
}

// unloadLocked unloads dir if it can (see above) and returns how many
// entries went. t.mu is held.
func (t *Tree) unloadLocked(dir *Inode) int {
	if dir == t.root || dir.children == nil || dir.parent == nil || dir.meta.Subtree.IsZero() ||
		detachedBelow(dir) != nil {
		return 0
	}
	nodes := make([]*repo.Node, 0, len(dir.children))
	for name, c := range dir.children {
		if !t.idleLocked(c) {
			return 0
		}
		n := c.meta
		n.Name = []byte(name)
		nodes = append(nodes, &n)
	}
	if id, err := t.r.TreeID(&repo.Tree{Nodes: nodes}); err != nil || id != dir.meta.Subtree {
		return 0
	}
	kids := make([]weak.Pointer[Inode], 0, len(dir.children))
	for _, c := range dir.children {
		kids = append(kids, weak.Make(c))
	}
	n := len(dir.children)
	dir.gone, dir.children = &kids, nil
	t.goneAdded += n
	delete(t.loaded, dir)
	t.unloadedPaths = append(t.unloadedPaths, t.pathOf(dir))
	return n
}

// trimLocked unloads the folders used least recently while more than
// maxLoaded entries are loaded, down to half of it, and lets go of the
// weak pointers of unloaded folders whose inodes are gone once they are
// many (forgetGoneLocked). t.mu is held; the caller calls notifyUnloaded
// once it is released.
func (t *Tree) trimLocked() {
	limit := t.maxLoaded()
	if t.goneAdded > max(limit, t.goneKept) {
		// Past what it looks at (the bound's worth of loaded entries,
		// and those kept): a walk that holds what it unloads does not
		// look at them all at every load.
		t.forgetGoneLocked()
	}
	if limit == 0 || t.fetchLocked || t.replaying || t.loadingAll || len(t.linked) > 0 || t.groupsIn {
		// With hard links loaded, a commit loads the whole tree
		// (loadForLinks): folders unloaded would load again at every
		// commit. Such a tree stays loaded, as before unloading.
		return
	}
	total := len(t.root.children)
	for d := range t.loaded {
		if d.children == nil {
			delete(t.loaded, d)
			continue
		}
		total += len(d.children)
	}
	if total <= limit {
		return
	}
	dirs := make([]*Inode, 0, len(t.loaded))
	for d := range t.loaded {
		dirs = append(dirs, d)
	}
	slices.SortFunc(dirs, func(a, b *Inode) int { return cmp.Compare(t.loaded[a], t.loaded[b]) })
	// The folders used last stay: an operation that had to load one
	// (with the lock given up) runs again with them loaded, and one
	// working in several (rename) needs all of them at once.
	dirs = dirs[:max(0, len(dirs)-keepRecent)]
	// Twice: a folder unloads only once its folders have.
	for range 2 {
		for _, d := range dirs {
			if total <= limit/2 {
				return
			}
			total -= t.unloadLocked(d)
		}
	}
}

// forgetGoneLocked drops, from the weak pointers of the unloaded folders
// whose folder is loaded, those whose inodes nothing holds any more (the
// kernel forgot them once told: Options.OnUnload) or that left the folder:
// reattachable would skip them. Kept, they cost a pointer and a weak
// handle for every file ever unloaded (16 MiB at a million), however few
// are held. A folder unloaded below one unloaded since goes with its
// parent's weak pointer once nothing holds it. It looks at every loaded
// entry: a commit calls it, and trimLocked once many were added since
// (a walk that only reads). t.mu is held.
func (t *Tree) forgetGoneLocked() {
	t.goneKept, t.goneAdded = 0, 0
	forget := func(dir *Inode) {
		for _, c := range dir.children {
			if c.gone == nil {
				continue
			}
			held := (*c.gone)[:0]
			for _, w := range *c.gone {
				if in := w.Value(); in != nil && in.parent == c {
					held = append(held, w)
				}
			}
			clear((*c.gone)[len(held):])
			t.goneKept += len(held)
			switch {
			case len(held) == 0:
				c.gone = nil
			case cap(held) > 2*len(held):
				held = slices.Clone(held)
				c.gone = &held
			default:
				*c.gone = held
			}
		}
	}
	forget(t.root)
	for d := range t.loaded {
		forget(d)
	}
}

// overLoadedLocked reports whether more entries are loaded than the
// bound: the prefetcher then loads nothing ahead. t.mu is held.
func (t *Tree) overLoadedLocked() bool {
	limit := t.maxLoaded()
	if limit == 0 {
		return false
	}
	total := len(t.root.children)
	for d := range t.loaded {
		total += len(d.children)
	}
	return total > limit
}

// notifyUnloaded tells Options.OnUnload about the folders unloaded since
// it was last called; t.mu is not held.
func (t *Tree) notifyUnloaded() {
	t.mu.Lock()
	paths := t.unloadedPaths
	t.unloadedPaths = nil
	f := t.onUnload
	t.mu.Unlock()
	if len(paths) > 0 && f != nil {
		f(paths)
	}
}

// OnUnload sets what is told the paths ("/"-separated, without a leading
// slash) of the folders the tree unloads, called without locks held: a
// mount asks the kernel to forget their entries.
func (t *Tree) OnUnload(f func(paths []string)) {
	t.mu.Lock()
	t.onUnload = f
	t.mu.Unlock()
}

// reattachable returns the inodes of dir's entries that were still held
// when it was unloaded, by name, and forgets them: fillDirLocked puts
// each back in place if its entry is the same. t.mu is held.
func reattachable(dir *Inode) map[string]*Inode {
	g := dir.gone
	if g == nil {
		return nil
	}
	dir.gone = nil
	live := map[string]*Inode{}
	for _, w := range *g {
		if c := w.Value(); c != nil && c.parent == dir {
			live[c.name] = c
		}
	}
	return live
}
