package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof" // served only when SEALFS_PPROF names an address
	"os"
	"runtime"
	"runtime/pprof"
	"time"
)

// Profiling a mount's daemon, for benchmarks (docs/BENCHMARKS.md): these
// are environment variables, not flags, because they are for measuring
// sealfs, not for using it. The background daemon inherits them.
const (
	// cpuProfileEnv names a file that gets a CPU profile of the daemon,
	// from the mount until it stops (go tool pprof reads it).
	cpuProfileEnv = "SEALFS_CPUPROFILE"
	// pprofEnv names a loopback address (127.0.0.1:6060) where the daemon
	// serves net/http/pprof: goroutines, heap, profiles on demand, and
	// the mutex and block profiles, which it turns on (one in 10 mutex
	// waits; blocking events of 100 µs and more).
	pprofEnv = "SEALFS_PPROF"
)

// startProfiling starts what the environment asks for and returns the
// function that ends it.
func startProfiling(log *slog.Logger) (stop func(), err error) {
	stop = func() {}
	if path := os.Getenv(cpuProfileEnv); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", cpuProfileEnv, err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: %w", cpuProfileEnv, err)
		}
		log.Info("writing a CPU profile until the mount stops", "file", path)
		stop = func() { pprof.StopCPUProfile(); f.Close() }
	}
	if addr := os.Getenv(pprofEnv); addr != "" {
		host, _, err := net.SplitHostPort(addr)
		if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
			stop()
			return nil, errors.New(pprofEnv + " must be a loopback address and port, such as 127.0.0.1:6060")
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			stop()
			return nil, fmt.Errorf("%s: %w", pprofEnv, err)
		}
		runtime.SetMutexProfileFraction(10)
		runtime.SetBlockProfileRate(int((100 * time.Microsecond).Nanoseconds()))
		log.Info("serving net/http/pprof", "addr", l.Addr().String())
		go http.Serve(l, nil)
	}
	return stop, nil
}
