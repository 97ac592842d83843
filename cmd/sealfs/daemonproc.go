package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sealfs/sealfs/internal/daemon"
	"github.com/sealfs/sealfs/internal/mountopts"
	"github.com/sealfs/sealfs/repo"
)

// canonicalPath makes path absolute and resolves symlinks in its parent
// folders (not in its last element, which may be a dead mount), as the
// kernel shows mount points.
func canonicalPath(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	if abs == "/" {
		return abs, nil
	}
	dir, err := filepath.EvalSymlinks(filepath.Dir(abs))
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, filepath.Base(abs)), nil
}

// verifyDaemon checks, from what the kernel shows of process pid, that it is
// a sealfs daemon serving mountpoint (a canonical path): its executable is
// this sealfs binary, its arguments are those of `sealfs mount --foreground`
// (or of the mount helper with -o foreground) for that mount point, and,
// unless we are root, it runs as our user. A status document that names a
// pid is only a claim; this is the check before anything is done to pid.
func verifyDaemon(pid int, mountpoint string) error {
	proc := fmt.Sprintf("/proc/%d", pid)
	if pid <= 0 {
		return fmt.Errorf("pid %d is not a process", pid)
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
	mp, ok := daemonMountpoint(argv)
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

// daemonMountpoint returns the mount point of a `sealfs mount --foreground`
// command line (the one a background mount starts, or systemd's), or of
// the mount helper with -o foreground; false for any other command line.
func daemonMountpoint(argv []string) (string, bool) {
	if len(argv) < 2 {
		return "", false
	}
	switch filepath.Base(argv[0]) {
	case "mount.sealfs", "mount.fuse.sealfs":
		p, err := mountopts.Parse(argv[1:])
		if err != nil {
			return "", false
		}
		for _, a := range p.Args {
			if a == "--foreground" {
				return p.Mountpoint, true
			}
		}
		return "", false
	}
	cmd, rest, err := newRootCmd().Find(argv[1:])
	if err != nil || cmd.Name() != "mount" {
		return "", false
	}
	if err := cmd.ParseFlags(rest); err != nil {
		return "", false
	}
	fg, err := cmd.Flags().GetBool("foreground")
	pos := cmd.Flags().Args()
	if err != nil || !fg || len(pos) != 2 {
		return "", false
	}
	return pos[1], true
}

// waitForDeparting is for a mount that found the writer lease held. When
// the holder is this host's daemon of the same cache (the lease and the
// cache's presence record name the same live process, which is a sealfs
// daemon) and that daemon is on its way out (stopping, or its mount is
// gone: umount(8) returns before the daemon has uploaded and let go), it
// waits for that daemon to exit, within the daemon's own drain deadline,
// and reports true so that the lease is tried again. The wait is said in
// the log and, through ready, to the command that started the mount.
func waitForDeparting(ctx context.Context, r *repo.Repository, log *slog.Logger, ready *os.File) bool {
	lease, err := r.ReadLease(ctx)
	host, _ := os.Hostname()
	if err != nil || lease == nil || lease.Host != host || lease.PID == os.Getpid() {
		return false
	}
	p, err := daemon.ReadPresence(r.StateDir())
	if err != nil || p == nil || p.PID != lease.PID {
		return false
	}
	pidfd, err := unix.PidfdOpen(p.PID, 0)
	if errors.Is(err, unix.ESRCH) {
		return true // it has just exited
	}
	if err != nil {
		return false
	}
	defer unix.Close(pidfd)
	mp, err := canonicalPath(p.Mountpoint)
	if err != nil || verifyDaemon(p.PID, mp) != nil {
		return false
	}
	if p.Stopping.IsZero() {
		if m, err := daemon.LookupMount(mp); err != nil || (m != nil && m.FSType == daemon.FSType) {
			return false // it still serves its mount: a real second writer
		}
	}
	deadline := p.Deadline()
	msg := fmt.Sprintf("waiting for this cache's previous daemon (pid %d, unmounted from %s) to finish uploading and exit, until %s at most",
		p.PID, p.Mountpoint, deadline.Local().Format(time.TimeOnly))
	log.Info(msg)
	if ready != nil {
		fmt.Fprintf(ready, "note %s\n", msg)
	}
	exited, err := waitPidfd(pidfd, time.Until(deadline))
	if err != nil || !exited {
		log.Warn("the previous daemon of this cache is still running", "pid", p.PID, "err", err)
		return false
	}
	log.Info("the previous daemon has exited; taking the writer lease", "pid", p.PID)
	return true
}
