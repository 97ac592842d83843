//go:build race

package worktree

// raceEnabled: the race detector is on (it allocates on its own; an
// allocation count means nothing then).
const raceEnabled = true
