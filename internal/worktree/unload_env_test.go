package worktree

import (
	"os"
	"strconv"
)

// SEALFS_TEST_MAX_LOADED runs the package's tests with another default
// bound on loaded entries: with 1, every folder that can be unloaded is,
// after every load and commit, so that every test also checks the
// operations on inodes whose folders were unloaded under them.
//
//	SEALFS_TEST_MAX_LOADED=1 go test ./internal/worktree
func init() {
	if v, err := strconv.Atoi(os.Getenv("SEALFS_TEST_MAX_LOADED")); err == nil && v > 0 {
		defaultMaxLoaded = v
	}
}
