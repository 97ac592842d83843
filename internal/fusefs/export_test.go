package fusefs

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
