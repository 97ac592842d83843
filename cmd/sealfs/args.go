package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/sealfs/sealfs/remote/rcloneremote"
)

// argsFDEnv names the descriptor from which a sealfs process reads its real
// arguments when those the kernel shows (/proc/PID/cmdline, ps) are
// redacted: an rclone connection string carries credentials, and a
// process's arguments are readable by every user of the machine.
const argsFDEnv = "SEALFS_ARGS_FD"

// maxArgsBytes bounds what is read from the arguments descriptor.
const maxArgsBytes = 1 << 20

// redactArgs returns args with the value of every connection-string
// parameter replaced by rcloneremote.Redacted, and whether any was.
func redactArgs(args []string) ([]string, bool) {
	out := slices.Clone(args)
	changed := false
	for i, a := range out {
		if r := rcloneremote.Redact(a); r != a {
			out[i], changed = r, true
		}
	}
	return out, changed
}

// argsFile returns an anonymous in-memory file holding args, for a sealfs
// process that shows redacted ones. It is closed on exec unless keep.
func argsFile(args []string, keep bool) (*os.File, error) {
	flags := unix.MFD_CLOEXEC
	if keep {
		flags = 0
	}
	fd, err := unix.MemfdCreate("sealfs-args", flags)
	if err != nil {
		return nil, fmt.Errorf("failed to hand over the arguments: %w", err)
	}
	f := os.NewFile(uintptr(fd), "sealfs-args")
	b, _ := json.Marshal(args)
	if _, err := f.Write(b); err != nil {
		f.Close()
		return nil, fmt.Errorf("failed to hand over the arguments: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// realArgs returns this process's arguments (without the program name):
// those handed over through argsFDEnv if set, else os.Args. When an
// argument holds a credential and none were handed over, it replaces the
// process image with itself (same pid, so systemd and the mount helper
// see no change) showing redacted arguments, the real ones handed over.
func realArgs() ([]string, error) {
	if v, ok := os.LookupEnv(argsFDEnv); ok {
		os.Unsetenv(argsFDEnv)
		fd, err := strconv.Atoi(v)
		if err != nil || fd < 3 {
			return nil, fmt.Errorf("%s=%q is not a descriptor", argsFDEnv, v)
		}
		f := os.NewFile(uintptr(fd), "sealfs-args")
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, maxArgsBytes))
		if err != nil {
			return nil, fmt.Errorf("failed to read the arguments handed over: %w", err)
		}
		var args []string
		if err := json.Unmarshal(b, &args); err != nil {
			return nil, fmt.Errorf("failed to read the arguments handed over: %w", err)
		}
		return args, nil
	}
	shown, changed := redactArgs(os.Args[1:])
	if !changed {
		return os.Args[1:], nil
	}
	f, err := argsFile(os.Args[1:], true)
	if err != nil {
		return nil, err
	}
	env := append(os.Environ(), fmt.Sprintf("%s=%d", argsFDEnv, f.Fd()))
	argv := append([]string{os.Args[0]}, shown...)
	// The binary by its path, so that the process keeps its name (comm);
	// /proc/self/exe if that path is gone.
	if self, err := os.Executable(); err == nil {
		syscall.Exec(self, argv, env)
	}
	err = syscall.Exec("/proc/self/exe", argv, env)
	f.Close()
	return nil, fmt.Errorf("failed to hide the remote's credentials from the process list: %w", err)
}
