package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// CommandLine recognises the command line of a sealfs mount daemon (`sealfs
// mount --foreground`, or the mount helper with -o foreground): it returns
// the daemon's mount point as given (maybe relative to its folder), or
// false for any other command line. The command, which knows its flags,
// provides it.
type CommandLine func(argv []string) (mountpoint string, ok bool)

// verifyDaemon checks, from what the kernel shows of process pid, that it is
// a sealfs daemon serving mountpoint (a canonical path): its executable is
// this sealfs binary, isDaemon recognises its arguments as those of a
// daemon of that mount point, and, unless we are root, it runs as our
// user. A status document that names a pid is only a claim; this is the
// check before anything is done to pid.
func verifyDaemon(pid int, mountpoint string, isDaemon CommandLine) error {
	proc := fmt.Sprintf("/proc/%d", pid)
	if pid <= 0 {
		return fmt.Errorf("pid %d is not a process", pid)
	}
	if isDaemon == nil {
		return errors.New("no way to recognise a sealfs daemon's command line was given")
	}
	status, err := os.ReadFile(proc + "/status")
	if err != nil {
		return fmt.Errorf("process %d: %w", pid, err)
	}
	if uid := os.Getuid(); uid != 0 && !statusHasUID(status, uid) {
		return fmt.Errorf("process %d runs as another user", pid)
	}
	if err := verifyExecutable(proc); err != nil {
		return fmt.Errorf("process %d: %w", pid, err)
	}
	raw, err := os.ReadFile(proc + "/cmdline")
	if err != nil {
		return fmt.Errorf("process %d: %w", pid, err)
	}
	argv := strings.Split(strings.TrimSuffix(string(raw), "\x00"), "\x00")
	mp, ok := isDaemon(argv)
	if !ok {
		return fmt.Errorf("process %d is not a sealfs mount daemon (its arguments: %q)", pid, argv)
	}
	if !filepath.IsAbs(mp) {
		cwd, err := os.Readlink(proc + "/cwd")
		if err != nil {
			return fmt.Errorf("process %d: its mount point %q is relative and its folder cannot be read: %w", pid, mp, err)
		}
		mp = filepath.Join(cwd, mp)
	}
	if dir, err := filepath.EvalSymlinks(filepath.Dir(mp)); err == nil {
		mp = filepath.Join(dir, filepath.Base(mp))
	}
	if mp != mountpoint {
		return fmt.Errorf("process %d is the sealfs daemon of %s, not of %s", pid, mp, mountpoint)
	}
	return nil
}

// statusHasUID reports whether a /proc/PID/status names uid as the real or
// effective user.
func statusHasUID(status []byte, uid int) bool {
	for _, line := range bytes.Split(status, []byte("\n")) {
		if rest, ok := bytes.CutPrefix(line, []byte("Uid:")); ok {
			f := strings.Fields(string(rest))
			u := strconv.Itoa(uid)
			return len(f) >= 2 && (f[0] == u || f[1] == u)
		}
	}
	return false
}

// verifyExecutable checks that the process runs this sealfs binary: the
// same file, or (after an upgrade replaced it) a deleted file of the same
// path. A daemon that is not dumpable hides its executable from all but
// holders of CAP_SYS_PTRACE; then its name must be sealfs's (with the
// command line and owner checks, only a process of the caller's own user,
// or one that is truly a sealfs daemon of that mount, passes).
func verifyExecutable(proc string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	selfFi, err := os.Stat(self)
	if err != nil {
		return err
	}
	fi, err := os.Stat(proc + "/exe")
	if errors.Is(err, os.ErrPermission) {
		comm, _ := os.ReadFile(proc + "/comm")
		switch strings.TrimSpace(string(comm)) {
		case "sealfs", "mount.sealfs", "mount.fuse.seal": // comm keeps 15 bytes
			return nil
		}
		return errors.New("it is not a sealfs process")
	}
	if err == nil && os.SameFile(fi, selfFi) {
		return nil
	}
	link, lerr := os.Readlink(proc + "/exe")
	if lerr != nil {
		return fmt.Errorf("failed to read its executable: %w", lerr)
	}
	if resolved, err := filepath.EvalSymlinks(self); err == nil && strings.TrimSuffix(link, " (deleted)") == resolved {
		return nil
	}
	return fmt.Errorf("it runs %s, not this sealfs (%s)", link, self)
}

// waitPidfd waits until the process of pidfd has exited (true) or timeout
// has passed (false).
func waitPidfd(pidfd int, timeout time.Duration) (bool, error) {
	deadline := time.Now().Add(timeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return false, nil
		}
		fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, int(min(left, time.Minute).Milliseconds())+1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return false, err
		}
		if n > 0 {
			return true, nil
		}
	}
}
