//go:build !race

package worktree

const raceEnabled = false
