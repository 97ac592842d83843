package worktree

// MaxFills is maxFills, for tests.
const MaxFills = maxFills
