// Package progress shows how far a long command (backup, restore, check
// --read-data, prune) has come, on stderr: a bar with files, bytes, rate
// and ETA when it is a terminal, a plain line every Interval (and one at
// the end) when it is not (a journal), nothing when quiet.
//
// The bar is github.com/schollz/progressbar/v3: one small package with no
// terminal-control dependency of its own beyond x/term, maintained since
// 2017, that draws a single line with rate and ETA on any io.Writer —
// all a one-bar command needs (mpb is built for many concurrent bars).
package progress

import (
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/sealfs/sealfs/internal/humanize"
)

// Interval is how often a plain line is printed when the output is not a
// terminal.
const Interval = 10 * time.Second

// Meter is the progress of one command. Its methods may be called from
// several goroutines; a nil *Meter does nothing.
type Meter struct {
	mu          sync.Mutex
	w           io.Writer
	what        string
	bar         *progressbar.ProgressBar // nil when not a terminal
	unit        string                   // "" for bytes, else the name of what is counted ("packs")
	stage       string                   // shown after what: the stage of a Stages callback, or the note of Set
	files       uint64
	done, total int64
	start, last time.Time
	stop        chan struct{}
	finished    bool
}

// IsTerminal reports whether w is a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// New returns the progress of what (a verb: "restore"), counted in bytes,
// of which total are expected (0 if not known ahead), shown on w. Quiet
// returns nil: nothing is shown.
func New(w io.Writer, quiet bool, what string, total int64) *Meter {
	return newMeter(w, quiet, what, "", total)
}

// NewCount is New counting items named unit ("packs") instead of bytes.
func NewCount(w io.Writer, quiet bool, what, unit string, total int64) *Meter {
	return newMeter(w, quiet, what, unit, total)
}

func newMeter(w io.Writer, quiet bool, what, unit string, total int64) *Meter {
	if quiet {
		return nil
	}
	m := &Meter{w: w, what: what, unit: unit, total: total, start: time.Now(), stop: make(chan struct{})}
	if IsTerminal(w) {
		m.bar = m.newBar()
		return m
	}
	m.last = m.start
	go m.tick()
	return m
}

func (m *Meter) newBar() *progressbar.ProgressBar {
	max := m.total
	if max <= 0 {
		max = -1 // a spinner: the total is not known
	}
	opts := []progressbar.Option{
		progressbar.OptionSetWriter(m.w),
		progressbar.OptionSetDescription(m.what),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100 * time.Millisecond),
		progressbar.OptionShowElapsedTimeOnFinish(),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(m.w) }),
	}
	if m.unit == "" {
		opts = append(opts, progressbar.OptionShowBytes(true), progressbar.OptionShowCount(), progressbar.OptionShowTotalBytes(true), progressbar.OptionUseIECUnits(true))
	} else {
		opts = append(opts, progressbar.OptionShowCount(), progressbar.OptionSetItsString(m.unit), progressbar.OptionShowIts())
	}
	return progressbar.NewOptions64(max, opts...)
}

// tick prints a plain line every Interval until Done.
func (m *Meter) tick() {
	t := time.NewTicker(Interval)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			m.mu.Lock()
			if !m.finished {
				m.line(time.Now())
			}
			m.mu.Unlock()
		}
	}
}

// line prints the plain progress line; m.mu is held.
func (m *Meter) line(now time.Time) {
	m.last = now
	el := now.Sub(m.start)
	rate := float64(0)
	if el > 0 {
		rate = float64(m.done) / el.Seconds()
	}
	s := m.what
	if m.stage != "" {
		s += " " + m.stage
	}
	s += ": "
	switch {
	case m.unit != "":
		s += fmt.Sprintf("%d", m.done)
		if m.total > 0 {
			s += fmt.Sprintf("/%d", m.total)
		}
		s += " " + m.unit
	case m.total > 0:
		s += fmt.Sprintf("%d files, %s of %s", m.files, humanize.Bytes(uint64(m.done)), humanize.Bytes(uint64(m.total)))
	default:
		s += fmt.Sprintf("%d files, %s", m.files, humanize.Bytes(uint64(m.done)))
	}
	if m.total > 0 {
		s += fmt.Sprintf(" (%d%%)", m.done*100/m.total)
	}
	if m.unit == "" {
		s += fmt.Sprintf(", %s/s", humanize.Bytes(uint64(rate)))
	} else {
		s += fmt.Sprintf(", %.1f %s/s", rate, m.unit)
	}
	s += ", " + el.Round(time.Second).String() + " elapsed"
	if m.total > 0 && rate > 0 && m.done < m.total && !m.finished {
		s += ", ETA " + time.Duration(float64(m.total-m.done)/rate*float64(time.Second)).Round(time.Second).String()
	}
	fmt.Fprintln(m.w, s)
}

// AddFile counts one file of size bytes done.
func (m *Meter) AddFile(size uint64) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.files++
	m.done += int64(size)
	if m.bar != nil {
		m.bar.Describe(fmt.Sprintf("%s %d files", m.what, m.files))
		_ = m.bar.Add64(int64(size))
	}
}

// Stages returns a callback for repo.CheckOptions.Progress and
// repo.PruneOptions.Progress: each stage is shown counted in its items
// (the bar starts again at a new stage; without a terminal a line is
// printed when a stage ends, besides every Interval). With names, only
// those stages are shown (the ones that take long).
func (m *Meter) Stages(names ...string) func(stage string, done, total int) {
	if m == nil {
		return nil
	}
	return func(stage string, done, total int) {
		if len(names) > 0 && !slices.Contains(names, stage) {
			return
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		if stage != m.stage {
			m.stage, m.start = stage, time.Now()
			if m.bar != nil {
				m.bar.Reset()
				m.bar.Describe(m.what + " " + stage)
			}
		}
		m.total, m.done = int64(total), int64(done)
		if m.bar != nil {
			m.bar.ChangeMax64(max(m.total, 1))
			_ = m.bar.Set64(m.done)
			return
		}
		if total > 0 && done == total {
			m.line(time.Now())
		}
	}
}

// Set shows the whole progress so far, for a command that polls how far
// another process has come (umount waiting for the daemon's drain):
// files and done bytes of total, and note ("3 files queued") after what.
// Unlike AddFile it sets rather than adds; after Done it does nothing.
func (m *Meter) Set(files uint64, done, total int64, note string) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.finished {
		return
	}
	m.files, m.done, m.total, m.stage = files, done, total, note
	if m.bar != nil {
		m.bar.Describe(m.what + " " + note)
		m.bar.ChangeMax64(max(total, 1))
		_ = m.bar.Set64(done)
	}
}

// Done ends the progress: the bar is completed, or a last plain line is
// printed. It is called once, whether or not the command succeeded.
func (m *Meter) Done() {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.finished {
		return
	}
	m.finished = true
	close(m.stop)
	if m.bar != nil {
		if m.total <= 0 || m.done >= m.total {
			_ = m.bar.Finish()
		} else {
			_ = m.bar.Exit() // ends the line (OnCompletion)
		}
		return
	}
	m.line(time.Now())
}
