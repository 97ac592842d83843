// Package pgtest starts a throwaway PostgreSQL cluster for tests: Debian's
// postgresql package (apt-get install postgresql; .ci/run installs it),
// initdb into a temporary directory, the server on a free loopback port,
// run as the postgres user (or nobody) when the test runs as root, since
// PostgreSQL refuses to run as root.
package pgtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// cluster is the package's one server, started by the first Database.
var cluster struct {
	once sync.Once
	dir  string
	bin  string
	port int
	run  []string // the command prefix that runs as the server's user
	err  error
	dbs  atomic.Int64
}

// binDir returns the directory of Debian's PostgreSQL server binaries
// (the newest version installed), or "" when there are none.
func binDir() string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		a, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		b, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return a > b
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "pg_ctl")); err == nil {
			return d
		}
	}
	return ""
}

// Database returns the URL of a new, empty database on the package's
// cluster, starting the cluster the first time. It skips the test, saying
// why, only when PostgreSQL's server binaries are not installed.
func Database(tb testing.TB) string {
	tb.Helper()
	if binDir() == "" {
		tb.Skip("PostgreSQL is not installed (/usr/lib/postgresql/*/bin/pg_ctl missing): apt-get install postgresql, as .ci/run does")
	}
	cluster.once.Do(start)
	if cluster.err != nil {
		tb.Fatalf("failed to start PostgreSQL: %v", cluster.err)
	}
	name := fmt.Sprintf("t%d_%d", os.Getpid(), cluster.dbs.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url("postgres"))
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		tb.Fatal(err)
	}
	return url(name)
}

func url(db string) string {
	return fmt.Sprintf("postgres://sealfs@127.0.0.1:%d/%s?sslmode=disable", cluster.port, db)
}

// Stop stops the cluster, if one was started, and removes its files:
// TestMain calls it after the tests.
func Stop() {
	if cluster.dir == "" {
		return
	}
	runAs(filepath.Join(cluster.bin, "pg_ctl"), "-D", filepath.Join(cluster.dir, "data"), "-m", "immediate", "-w", "stop").Run()
	os.RemoveAll(cluster.dir)
}

func runAs(name string, args ...string) *exec.Cmd {
	argv := append(append(append([]string{}, cluster.run...), name), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	return cmd
}

func start() {
	cluster.bin = binDir()
	cluster.dir, cluster.err = os.MkdirTemp("", "sealfs-pgtest-")
	if cluster.err != nil {
		return
	}
	if os.Geteuid() == 0 {
		// PostgreSQL refuses root: run it as postgres (Debian's package
		// makes that user), else nobody.
		var u *user.User
		for _, name := range []string{"postgres", "nobody"} {
			if u, cluster.err = user.Lookup(name); cluster.err == nil {
				break
			}
		}
		if cluster.err != nil {
			return
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if cluster.err = os.Chown(cluster.dir, uid, gid); cluster.err != nil {
			return
		}
		cluster.run = []string{"setpriv", "--reuid=" + u.Uid, "--regid=" + u.Gid, "--clear-groups", "--"}
	}
	data := filepath.Join(cluster.dir, "data")
	out, err := runAs(filepath.Join(cluster.bin, "initdb"), "-D", data, "-U", "sealfs", "--auth=trust", "-E", "UTF8", "--no-sync").CombinedOutput()
	if err != nil {
		cluster.err = fmt.Errorf("initdb: %v\n%s", err, out)
		return
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cluster.err = err
		return
	}
	cluster.port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s -c max_connections=300 -c fsync=off", cluster.port, cluster.dir)
	cmd := runAs(filepath.Join(cluster.bin, "pg_ctl"), "-D", data, "-o", opts, "-l", filepath.Join(cluster.dir, "log"), "-w", "-t", "60", "start")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // the server outlives no signal of the test's terminal
	if out, err := cmd.CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(cluster.dir, "log"))
		cluster.err = fmt.Errorf("pg_ctl start: %v\n%s\n%s", err, out, log)
		return
	}
	watch()
}

// watch starts a watchdog that stops the cluster and removes its files
// when the test process is gone without Stop (killed at a timeout).
func watch() {
	stop := runAs(filepath.Join(cluster.bin, "pg_ctl"), "-D", filepath.Join(cluster.dir, "data"), "-m", "immediate", "-w", "stop")
	script := fmt.Sprintf(`while kill -0 %d 2>/dev/null; do sleep 2; done; if [ -d %q ]; then %q "$@" >/dev/null 2>&1; rm -rf %q; fi`,
		os.Getpid(), cluster.dir, stop.Args[0], cluster.dir)
	cmd := exec.Command("sh", append([]string{"-c", script, "sh"}, stop.Args[1:]...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if cmd.Start() == nil {
		go cmd.Wait()
	}
}
