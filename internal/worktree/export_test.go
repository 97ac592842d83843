package worktree

// MaxFills is maxFills, for tests.
const MaxFills = maxFills

// LoadedChildren reports whether dir's entries are loaded for tests.
func (t *Tree) LoadedChildren(dir *Inode) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return dir.children != nil
}
