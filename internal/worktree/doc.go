// Package worktree is the writable view behind a mount: a directory tree
// loaded lazily from a repository snapshot, changed in memory, with the
// content of changed files in a local staging area and every namespace
// change appended to a local journal, so that a crash of the daemon loses
// nothing that was closed. Commit turns the changes into a new snapshot.
//
// It knows nothing of FUSE: operations return syscall.Errno values for the
// POSIX failures (ENOENT, EEXIST, ENOTEMPTY...), and the fs package maps
// everything else.
package worktree
