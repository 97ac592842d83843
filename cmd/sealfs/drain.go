package main

import (
	"fmt"
	"io"
	"time"

	"github.com/sealfs/sealfs/internal/daemon"
	"github.com/sealfs/sealfs/internal/progress"
)

// drainWatch shows, while umount waits, how far the daemon it stopped
// has come with its drain: the files and bytes still queued, the bytes
// sent, rate and ETA (internal/progress). It reads the mount's status
// (an extended attribute of the mount point, read by path: no file is
// held open, so nothing keeps the mount busy between two reads) every
// interval, one read at a time, and stops reading as soon as the queue
// is empty (the daemon unmounts next: a read then could only get in its
// way), a read fails (the mount point is detached already) or another
// daemon answers.
type drainWatch struct {
	m     *progress.Meter
	mp    string
	first daemon.Status // the status before the daemon was signalled
	stop  chan struct{}
}

// drainPoll is how often the status is read: often enough for a moving
// bar on a terminal, rarely otherwise (a plain line is printed every
// progress.Interval).
func drainPoll(w io.Writer) time.Duration {
	if progress.IsTerminal(w) {
		return 200 * time.Millisecond
	}
	return 2 * time.Second
}

// watchDrain starts showing the drain of the mount at mp on w, from its
// status first (read before the daemon was signalled). Nothing is shown
// when quiet or when nothing is queued; end it with done.
func watchDrain(w io.Writer, quiet bool, mp string, first daemon.Status) *drainWatch {
	d := &drainWatch{mp: mp, first: first, stop: make(chan struct{})}
	if first.PendingFiles == 0 && !first.Committing {
		return d
	}
	d.m = progress.New(w, quiet, "umount", int64(first.PendingBytes))
	if d.m == nil {
		return d
	}
	d.show(&first)
	go d.poll(drainPoll(w))
	return d
}

// poll reads the status every interval until done, the queue is empty,
// or a read fails.
func (d *drainWatch) poll(interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-tick.C:
		}
		st, err := daemon.ReadStatus(d.mp, daemon.StatusWait)
		if err != nil || st.PID != d.first.PID {
			return
		}
		if !d.show(st) {
			return
		}
	}
}

// show shows the status st of the daemon and reports whether the drain
// goes on (something is queued or being committed). Bytes sent count
// what the commits stored, and while a commit runs, what it uploaded so
// far (encrypted and compressed, so an estimate).
func (d *drainWatch) show(st *daemon.Status) bool {
	sent := int64(since(st.SentBytes, d.first.SentBytes))
	total := sent + int64(st.PendingBytes)
	done := min(max(sent, int64(since(st.UploadedBytes, d.first.UploadedBytes))), total)
	if st.PendingFiles == 0 && !st.Committing {
		done = total
	}
	d.m.Set(since(st.SentFiles, d.first.SentFiles), done, total, fmt.Sprintf("(%d files queued)", st.PendingFiles))
	return st.PendingFiles > 0 || st.Committing
}

// done ends the progress, with the daemon's exit status final when it
// has one (nil when it was gone or failed).
func (d *drainWatch) done(final *daemon.Status) {
	close(d.stop)
	if d.m == nil {
		return
	}
	if final != nil && final.PID == d.first.PID {
		d.show(final)
	}
	d.m.Done()
}

// since is the growth of a counter from then to now (0 if it went back).
func since(now, then uint64) uint64 {
	if now < then {
		return 0
	}
	return now - then
}
