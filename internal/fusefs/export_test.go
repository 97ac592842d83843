package fusefs

import gofs "github.com/hanwen/go-fuse/v2/fs"

// SnapshotNames is snapshotNames, for the tests of the view through a mount.
var SnapshotNames = snapshotNames

// opened counts the snapshots whose trees are open.
func (v *snapshotsView) opened() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	n := 0
	for _, sv := range v.byID {
		sv.mu.Lock()
		if len(sv.trees) > 0 {
			n++
		}
		sv.mu.Unlock()
	}
	return n
}

// KernelNodes counts the nodes of the live tree the kernel holds (go-fuse
// keeps one for each inode it looked up and has not forgotten).
func (f *FS) KernelNodes() int {
	var count func(n *gofs.Inode) int
	count = func(n *gofs.Inode) int {
		total := 1
		for _, c := range n.Children() {
			total += count(c)
		}
		return total
	}
	return count(f.root.EmbeddedInode())
}
