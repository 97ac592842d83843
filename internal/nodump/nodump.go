// Package nodump keeps a process's memory, which holds secrets (keys,
// recovery codes, passwords, remote credentials, an HSM's PIN), out of
// core files and away from other processes of the same user. Both
// commands call it first, before anything secret is read.
package nodump

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Enable turns core dumps off for this process: no core file (RLIMIT_CORE
// 0), and not dumpable, which also refuses ptrace and /proc/PID/mem to all
// but root, even if the core limit is raised again from outside. It is
// inherited by nothing (an exec makes the process dumpable again), so
// every process calls it itself.
func Enable() error {
	if err := unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{Cur: 0, Max: 0}); err != nil {
		return fmt.Errorf("failed to turn off core dumps: %w", err)
	}
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("failed to turn off core dumps: %w", err)
	}
	return nil
}
