package daemon

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Notifier hears of a mount's life in the words of sd_notify(3), several
// assignments a message, one a line: "READY=1" with the first "STATUS=",
// then "STATUS=" (with "WATCHDOG=1" when a watchdog is set) every few
// seconds, and "STOPPING=1" when the mount stops. sdnotify.Systemd sends
// them to systemd.
type Notifier interface {
	// Notify sends one message.
	Notify(state string) error
	// WatchdogInterval is how often "WATCHDOG=1" is due, or 0 for never.
	WatchdogInterval() time.Duration
}

// nobody is the Notifier of a mount that nobody watches.
type nobody struct{}

func (nobody) Notify(string) error             { return nil }
func (nobody) WatchdogInterval() time.Duration { return 0 }

// ReadyPipe is a background daemon's end of the pipe to the command that
// started it (the parent, which returns once the mount is ready). Over it
// go, one a line: "note MESSAGE" for what the mount waits for before it
// can be ready, then one verdict: "ready", or "error CODE MESSAGE" with
// the exit code the parent is to exit with, after "hint HINT" (what to do
// about it) when there is advice. A pipe closed without a
// verdict says that the daemon died on the way. WaitReady reads it. The
// methods of a nil *ReadyPipe do nothing.
type ReadyPipe struct {
	mu sync.Mutex
	w  io.WriteCloser // nil once closed
}

// NewReadyPipe returns the daemon's end of the pipe, writing to w.
func NewReadyPipe(w io.WriteCloser) *ReadyPipe { return &ReadyPipe{w: w} }

// note tells the parent what the mount waits for.
func (p *ReadyPipe) note(msg string) {
	p.send("note " + msg)
}

// ready sends the verdict that the mount answers, and closes the pipe.
func (p *ReadyPipe) ready() {
	p.send("ready")
	p.Close()
}

// Fail sends the verdict that the mount failed with err, the parent to
// exit with code and to say hint (if not empty), and closes the pipe.
// After a verdict it does nothing.
func (p *ReadyPipe) Fail(code int, err error, hint string) {
	if hint != "" {
		p.send("hint " + oneLine(hint))
	}
	p.send(fmt.Sprintf("error %d %s", code, oneLine(err.Error())))
	p.Close()
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }

// Close closes the pipe; without a verdict sent, the parent learns that
// the daemon stopped before the mount was ready.
func (p *ReadyPipe) Close() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.w != nil {
		p.w.Close()
		p.w = nil
	}
}

func (p *ReadyPipe) send(line string) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.w != nil {
		fmt.Fprintln(p.w, line)
	}
}

// Verdict is what a background daemon said of its mount through its
// ReadyPipe.
type Verdict struct {
	Ready   bool   // the mount answers
	Failed  bool   // it failed: Code and Message say how
	Code    int    // the exit code the daemon would have exited with
	Message string // its error
	Hint    string // what to do about it; "" for nothing to say
}

// WaitReady reads the parent's end of a ReadyPipe up to the verdict,
// handing each note to note on the way. A pipe that ends without a verdict
// gives a Verdict that is neither Ready nor Failed: the daemon died.
func WaitReady(r io.Reader, note func(string)) Verdict {
	br := bufio.NewReader(r)
	var line, hint string
	for {
		line, _ = br.ReadString('\n')
		line = strings.TrimSpace(line)
		if h, isHint := strings.CutPrefix(line, "hint "); isHint {
			hint = h
			continue
		}
		msg, isNote := strings.CutPrefix(line, "note ")
		if !isNote {
			break
		}
		note(msg)
	}
	switch {
	case line == "ready":
		return Verdict{Ready: true}
	case strings.HasPrefix(line, "error "):
		parts := strings.SplitN(line, " ", 3)
		v := Verdict{Failed: true, Hint: hint}
		v.Code, _ = strconv.Atoi(parts[1])
		if len(parts) > 2 {
			v.Message = parts[2]
		}
		return v
	}
	return Verdict{}
}
