package fusefs

// SnapshotNames is snapshotNames, for the tests of the view through a mount.
var SnapshotNames = snapshotNames
