package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sealfs/sealfs/remote"
	"github.com/sealfs/sealfs/repo"
)

// takeLease takes the writer lease for a read-write mount, after waiting
// for this cache's departing daemon if that is who holds it. With the
// remote unreachable it reports unleased: the mount comes up read-write
// from local state, changes queue locally, and the lease is taken before
// the first commit.
func takeLease(ctx context.Context, cfg *Config) (unleased bool, err error) {
	if cfg.ReadOnly {
		return false, nil
	}
	err = cfg.Repo.Lock(ctx, cfg.BreakLease)
	if errors.Is(err, repo.ErrLocked) && !cfg.BreakLease && waitForDeparting(ctx, cfg) {
		err = cfg.Repo.Lock(ctx, false)
	}
	switch {
	case err == nil:
		return false, nil
	case errors.Is(err, repo.ErrLocked):
		return false, err
	case remote.IsTransient(err) || remote.IsUnreachable(err):
		cfg.Log.Warn("the remote cannot be reached: mounting read-write from the local state; changes queue locally and go up once it answers", "err", err)
		return true, nil
	}
	return false, err
}

// waitForDeparting is for a mount that found the writer lease held. When
// the holder is this host's daemon of the same cache (the lease and the
// cache's presence record name the same live process, which is a sealfs
// daemon) and that daemon is on its way out (stopping, or its mount is
// gone: umount(8) returns before the daemon has uploaded and let go), it
// waits for that daemon to exit, within the daemon's own drain deadline,
// and reports true so that the lease is tried again. The wait is said in
// the log and, through cfg.Ready, to the command that started the mount.
func waitForDeparting(ctx context.Context, cfg *Config) bool {
	lease, err := cfg.Repo.ReadLease(ctx)
	host, _ := os.Hostname()
	if err != nil || lease == nil || lease.Host != host || lease.PID == os.Getpid() {
		return false
	}
	p, err := ReadPresence(cfg.Repo.StateDir())
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
	if !departing(p, cfg.DaemonCommandLine) {
		return false
	}
	deadline := p.Deadline()
	msg := fmt.Sprintf("waiting for this cache's previous daemon (pid %d, unmounted from %s) to finish uploading and exit, until %s at most",
		p.PID, p.Mountpoint, deadline.Local().Format(time.TimeOnly))
	cfg.Log.Info(msg)
	cfg.Ready.note(msg)
	exited, err := waitPidfd(pidfd, time.Until(deadline))
	if err != nil || !exited {
		cfg.Log.Warn("the previous daemon of this cache is still running", "pid", p.PID, "err", err)
		return false
	}
	cfg.Log.Info("the previous daemon has exited; taking the writer lease", "pid", p.PID)
	return true
}

// departing reports whether the process of a presence record is the
// sealfs daemon of its mount point and on its way out: stopping, or its
// mount is gone. One that still serves its mount is a real second writer.
func departing(p *Presence, isDaemon CommandLine) bool {
	mp, err := CanonicalPath(p.Mountpoint)
	if err != nil || verifyDaemon(p.PID, mp, isDaemon) != nil {
		return false
	}
	if p.Stopping.IsZero() {
		if m, err := LookupMount(mp); err != nil || (m != nil && m.FSType == FSType) {
			return false
		}
	}
	return true
}
