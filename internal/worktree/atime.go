package worktree

import (
	"time"

	"github.com/sealfs/sealfs/repo"
)

// AtimeMode says when reading a file or listing a directory updates its
// access time (a FUSE filesystem keeps access times itself: the kernel
// marks FUSE inodes S_NOATIME).
type AtimeMode int

// Access-time modes, as the mount options of the same names.
const (
	// Relatime (the default): when the access time is not after the
	// modification or change time, or is 24 hours old, as the kernel's
	// relatime_need_update.
	Relatime AtimeMode = iota
	// Strictatime: on every access.
	Strictatime
	// Noatime: never.
	Noatime
)

// relatimeAge is how old an access time may get under Relatime.
const relatimeAge = 24 * time.Hour

// atimeDue reports whether an access at now updates the access time of n
// in mode.
func atimeDue(mode AtimeMode, n *repo.Node, now int64) bool {
	atime := n.AtimeNs
	switch {
	case mode == Noatime || atime == now:
		return false
	case mode == Strictatime:
		return true
	}
	return atime <= n.MtimeNs || atime <= n.CtimeNs || now-atime >= int64(relatimeAge)
}

// accessed updates the access time of in, read or listed, as the mount's
// mode says: in memory and in the journal, so that the next commit stores
// it. A read-only mount changes nothing; nor does a directory listing
// with NoDirAtime. An access time the journal cannot take (a full cache
// disk) is not updated: a read never fails for it.
func (t *Tree) accessed(in *Inode) {
	if t.opts.ReadOnly || (in.meta.Type == repo.NodeDir && t.opts.NoDirAtime) {
		return
	}
	if t.lockAttached(in) != nil {
		return // its folder cannot load: the access time waits for another access
	}
	now := time.Now().UnixNano()
	if !atimeDue(t.opts.Atime, &in.meta, now) {
		t.mu.Unlock()
		return
	}
	old := in.meta.AtimeNs
	in.meta.AtimeNs = now
	if err := t.recordAttrLocked(in); err != nil {
		in.meta.AtimeNs = old
		t.mu.Unlock()
		return
	}
	t.mu.Unlock()
	t.changed()
}
