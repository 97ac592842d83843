package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/sealfs/sealfs/internal/humanize"
)

// Run owns a mount's life once its repository is open. It takes the
// writer lease (waiting for this cache's departing daemon if that holds
// it; with the remote unreachable it mounts read-write from local state
// and takes the lease before the first commit), mounts, reports readiness
// to the command that started it (cfg.Ready) and to n, sends n the queue
// every few seconds, and serves until SIGTERM, SIGINT or SIGHUP arrives
// (SIGHUP: the terminal of a foreground mount went away), ctx ends,
// or the mount is unmounted from outside. Then it commits, drains the
// queue within cfg.DrainTimeout, unmounts, writes the exit status and
// releases the lease (Stop). The signals are heard from the moment
// Run is called, so before readiness is reported. An error before
// readiness means that nothing is mounted and no lease is held; after it,
// the error is Stop's. n may be nil.
func Run(ctx context.Context, cfg Config, n Notifier) error {
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sig)
	if n == nil {
		n = nobody{}
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	// Mounting is not cut short by ctx: a stop asked for meanwhile is
	// heard once the mount is ready.
	d, err := mount(context.WithoutCancel(ctx), cfg)
	if err != nil {
		return err
	}
	d.announce(n)
	d.serve(ctx, sig, n)
	st := d.Status()
	n.Notify(fmt.Sprintf("STOPPING=1\nSTATUS=stopping: uploading %d queued files (%s)", st.PendingFiles, humanize.Bytes(st.PendingBytes)))
	err = d.Stop()
	d.cfg.Log.Info("stopped")
	return err
}

// mount takes the lease and mounts; on failure it lets go of the lease.
func mount(ctx context.Context, cfg Config) (*Daemon, error) {
	unleased, err := takeLease(ctx, &cfg)
	if err != nil {
		return nil, err
	}
	d, err := start(ctx, cfg, unleased)
	if err != nil {
		if !cfg.ReadOnly && !unleased {
			cfg.Repo.Unlock(ctx)
		}
		return nil, err
	}
	return d, nil
}

// announce says that the mount answers: in the log, to the command that
// started it, and to n (systemd: Type=notify units are ready now).
func (d *Daemon) announce(n Notifier) {
	d.cfg.Log.Info("mounted", "remote", d.cfg.Source, "mountpoint", d.cfg.Mountpoint, "repository", d.cfg.Repo.ID().String(), "read_only", d.cfg.ReadOnly)
	d.cfg.Ready.ready()
	if err := n.Notify("READY=1\nSTATUS=" + statusLine(d.Status())); err != nil {
		d.cfg.Log.Warn("failed to notify systemd", "err", err)
	}
}

// serve waits for the reason to stop, sending n the queue meanwhile.
func (d *Daemon) serve(ctx context.Context, sig <-chan os.Signal, n Notifier) {
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() { defer close(stopped); notifyLoop(d, n, stop) }()
	defer func() { close(stop); <-stopped }()
	log, drain := d.cfg.Log, d.drainTimeout().String()
	select {
	case s := <-sig:
		log.Info("stopping: committing and draining the queue", "signal", s.String(), "drain_timeout", drain)
	case <-ctx.Done():
		// The command's own handler may have heard the signal first.
		select {
		case s := <-sig:
			log.Info("stopping: committing and draining the queue", "signal", s.String(), "drain_timeout", drain)
		default:
			log.Info("stopping: committing and draining the queue", "reason", context.Cause(ctx).Error(), "drain_timeout", drain)
		}
	case <-d.gone:
		log.Info("unmounted from outside: committing and draining the queue")
	}
}

// notifyLoop sends the queue to n as STATUS every few seconds, and
// WATCHDOG=1 when a watchdog is set, until stop is closed.
func notifyLoop(d *Daemon, n Notifier, stop <-chan struct{}) {
	interval := 5 * time.Second
	if w := n.WatchdogInterval(); w > 0 && w < interval {
		interval = w
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			msg := "STATUS=" + statusLine(d.Status())
			if n.WatchdogInterval() > 0 {
				msg += "\nWATCHDOG=1"
			}
			n.Notify(msg)
		}
	}
}

// statusLine sums a status up in one line, as systemd shows it.
func statusLine(st Status) string {
	line := fmt.Sprintf("snapshot %d, %d files queued (%s)", st.SnapshotSeq, st.PendingFiles, humanize.Bytes(st.PendingBytes))
	if st.LastError != "" {
		line += "; remote failing: " + st.LastError
	}
	if st.ConflictCount > 0 {
		line += fmt.Sprintf("; %d conflicts with another writer's changes (sealfs status)", st.ConflictCount)
	}
	return line
}
