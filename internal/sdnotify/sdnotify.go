// Package sdnotify sends service notifications to systemd (sd_notify(3)):
// READY=1, STATUS=..., STOPPING=1, WATCHDOG=1, over the datagram socket
// named by $NOTIFY_SOCKET. Without that variable every call does nothing.
// Systemd is the daemon's notifier (daemon.Notifier) that sends them.
package sdnotify

import (
	"net"
	"os"
	"strconv"
	"time"
)

// Send sends one notification, such as "READY=1". It reports whether a
// socket was there to send to.
func Send(state string) (bool, error) {
	name := os.Getenv("NOTIFY_SOCKET")
	if name == "" {
		return false, nil
	}
	if name[0] == '@' {
		name = "\x00" + name[1:] // abstract namespace
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return false, err
	}
	defer conn.Close()
	_, err = conn.Write([]byte(state))
	return err == nil, err
}

// WatchdogInterval returns how often to send WATCHDOG=1 (half the
// interval systemd set), or 0 when there is no watchdog for this process.
func WatchdogInterval() time.Duration {
	usec, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64)
	if err != nil || usec <= 0 {
		return 0
	}
	if pid := os.Getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return 0
	}
	return time.Duration(usec) * time.Microsecond / 2
}

// Systemd notifies the systemd service manager of this process, if there
// is one ($NOTIFY_SOCKET); without one it does nothing. It is the
// notifier a mount's daemon reports to (daemon.Notifier).
type Systemd struct{}

// Notify sends state, such as "READY=1\nSTATUS=...".
func (Systemd) Notify(state string) error {
	_, err := Send(state)
	return err
}

// WatchdogInterval is how often to send WATCHDOG=1, or 0 when there is no
// watchdog for this process.
func (Systemd) WatchdogInterval() time.Duration { return WatchdogInterval() }
