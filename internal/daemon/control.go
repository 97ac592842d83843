package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sealfs/sealfs/internal/fusefs"
)

// StatusWait is how long a daemon may take to answer for its status.
const StatusWait = 30 * time.Second

// Errors of Unmount, matched with errors.Is.
var (
	// ErrNoAnswer says that the daemon of a mount did not answer for its
	// status.
	ErrNoAnswer = errors.New("its daemon does not answer (hung or stopped)")
	// ErrDaemonGone says that the daemon a mount's status names is not
	// running.
	ErrDaemonGone = errors.New("the mount's daemon is not running")
	// ErrNotDaemon says that the process a mount's status names is not the
	// sealfs daemon of that mount, so it is not signalled.
	ErrNotDaemon = errors.New("not the mount's sealfs daemon")
)

// ReadStatus reads the status of the mount at mountpoint, waiting at most
// within for its daemon to answer: a hung daemon hangs every access to its
// mount, and the read that waits for it is left behind.
func ReadStatus(mountpoint string, within time.Duration) (*Status, error) {
	type answer struct {
		b   []byte
		err error
	}
	got := make(chan answer, 1)
	go func() {
		buf := make([]byte, 64<<10)
		n, err := unix.Getxattr(mountpoint, fusefs.StatusXattr, buf)
		if err != nil {
			n = 0
		}
		got <- answer{buf[:n], err}
	}()
	var a answer
	select {
	case a = <-got:
	case <-time.After(within):
		return nil, fmt.Errorf("the sealfs mount at %s gave no status within %v: %w", mountpoint, within, ErrNoAnswer)
	}
	if a.err != nil {
		return nil, a.err
	}
	var st Status
	if err := json.Unmarshal(a.b, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// Stopped is how the daemon that Unmount stopped ended.
type Stopped struct {
	// Cleaned: the daemon was gone already; only the dead mount it left
	// was cleaned up. What it had queued goes up at the next mount.
	Cleaned bool
	// Final is the daemon's exit status (nil when Cleaned).
	Final *Status
}

// Unmount stops the daemon of the sealfs mount at mountpoint (a canonical
// path the mount table shows as a sealfs mount): it reads the daemon's
// status, holds the pid the status names with a pidfd (so that it cannot
// be reused meanwhile), checks that it is the sealfs daemon serving
// mountpoint (isDaemon recognises its command line), signals it with
// SIGTERM, calls signalled with the status it had, and waits up to timeout
// for it to commit, drain, unmount and exit. It fails when the daemon does
// not answer, is not that daemon, is still draining at the timeout, or
// exited without its exit status (killed or crashed).
func Unmount(mountpoint string, timeout time.Duration, isDaemon CommandLine, signalled func(Status)) (*Stopped, error) {
	st, err := ReadStatus(mountpoint, min(timeout, StatusWait))
	if errors.Is(err, ErrNoAnswer) {
		return nil, err
	}
	if err != nil {
		if CleanStaleMount(mountpoint, nil) {
			return &Stopped{Cleaned: true}, nil
		}
		return nil, fmt.Errorf("cannot read the status of the sealfs mount at %s: %w", mountpoint, err)
	}
	pidfd, err := signalDaemon(st.PID, mountpoint, isDaemon)
	if err != nil {
		return nil, err
	}
	defer unix.Close(pidfd)
	signalled(*st)
	exited, err := waitPidfd(pidfd, timeout)
	if err != nil {
		return nil, fmt.Errorf("failed to wait for the daemon (pid %d): %w", st.PID, err)
	}
	if !exited {
		return nil, fmt.Errorf("the daemon (pid %d) is still draining after %v; it keeps going in the background", st.PID, timeout)
	}
	if final := readExitStatus(st.StateDir, st.PID); final != nil {
		return &Stopped{Final: final}, nil
	}
	// Every daemon that stops writes its exit status: without one, it
	// died on the way (killed, out of memory) and may have left its
	// queue undrained and its mount point dead.
	left := "its mount point is gone"
	if CleanStaleMount(mountpoint, nil) {
		left = "the dead mount it left is cleaned up"
	}
	return nil, fmt.Errorf("the daemon of %s (pid %d) exited without reporting how it ended: it was killed or crashed (see its log); %s. What it had queued stays in the cache and goes up at the next mount", mountpoint, st.PID, left)
}

// signalDaemon holds pid with a pidfd, checks that it is the sealfs daemon
// of mountpoint and sends it SIGTERM. It returns the pidfd, to wait on.
func signalDaemon(pid int, mountpoint string, isDaemon CommandLine) (int, error) {
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return -1, fmt.Errorf("%s: %w (pid %d: %w)", mountpoint, ErrDaemonGone, pid, err)
	}
	if err := verifyDaemon(pid, mountpoint, isDaemon); err != nil {
		unix.Close(pidfd)
		return -1, fmt.Errorf("refusing to signal pid %d named by the status of %s, %w: %w", pid, mountpoint, ErrNotDaemon, err)
	}
	if err := unix.PidfdSendSignal(pidfd, unix.SIGTERM, nil, 0); err != nil {
		unix.Close(pidfd)
		return -1, fmt.Errorf("failed to signal the daemon (pid %d): %w", pid, err)
	}
	return pidfd, nil
}

// readExitStatus returns the exit status the daemon pid wrote to
// stateDir, or nil if there is none of that daemon.
func readExitStatus(stateDir string, pid int) *Status {
	var final Status
	b, err := os.ReadFile(filepath.Join(stateDir, ExitStatusFile))
	if err != nil || json.Unmarshal(b, &final) != nil || final.PID != pid {
		return nil
	}
	return &final
}
