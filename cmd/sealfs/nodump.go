package main

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// noCoreDumps keeps this process's memory, which holds keys, recovery
// codes, passwords and remote credentials, out of core files and away from
// other processes of the same user: no core file (RLIMIT_CORE 0), and not
// dumpable, which also refuses ptrace and /proc/PID/mem to all but root,
// even if the core limit is raised again from outside. It is inherited by
// nothing: every sealfs process calls it first.
func noCoreDumps() error {
	if err := unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{Cur: 0, Max: 0}); err != nil {
		return fmt.Errorf("failed to turn off core dumps: %w", err)
	}
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("failed to turn off core dumps: %w", err)
	}
	return nil
}
