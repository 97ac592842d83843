//go:build race

package repo_test

// raceEnabled: the race detector is on (sync.Pool drops a quarter of what
// it is given, and every access allocates).
const raceEnabled = true
