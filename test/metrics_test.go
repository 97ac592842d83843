package test

import (
	"bufio"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// freeLoopbackPort returns a 127.0.0.1 port nothing listens on now.
func freeLoopbackPort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// scrape reads the Prometheus text at url: the value of each sample, by
// its name with labels as written ("x_total{cause=\"lease\"}").
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %s: %s", url, resp.Status, b)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if i < 0 || err != nil {
			t.Fatalf("bad sample line %q", line)
		}
		out[line[:i]] = v
	}
	return out
}

// TestMetricsEndpoint mounts through the real binary with --metrics-listen
// and scrapes while files wait in the queue and after their commit: the
// queue gauges, the counters of files, bytes and commits, and the status
// document (the same counts: one source) agree with what was written. A
// non-loopback address is refused without --metrics-allow-remote.
func TestMetricsEndpoint(t *testing.T) {
	needRoot(t)
	c := initRepo(t)
	mnt := mountpoint(t)

	r := c.mount(t, mnt, "--metrics-listen", "0.0.0.0:9570")
	expect(t, r, 2, "not a loopback address")
	if isMounted(mnt) {
		t.Fatal("mounted with a non-loopback metrics address")
	}
	expect(t, c.mount(t, mnt, "--metrics-allow-remote"), 2, "needs --metrics-listen")

	addr := freeLoopbackPort(t)
	url := "http://" + addr + "/metrics"
	expect(t, c.mount(t, mnt, "--metrics-listen", addr, "--commit-delay", "3s"), 0, "")
	m := scrape(t, url)
	if m["sealfs_mount_lease_held"] != 1 || m["sealfs_mount_commits_total"] != 0 || m["sealfs_mount_queue_files"] != 0 {
		t.Errorf("fresh mount: %v", m)
	}
	before := m["sealfs_mount_uploaded_bytes_total"]

	// Random data: it does not compress, so what goes up is at least what
	// was written.
	const files, size = 4, 1 << 20
	for i := range files {
		b := make([]byte, size)
		rand.Read(b)
		if err := os.WriteFile(filepath.Join(mnt, fmt.Sprintf("f%d", i)), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	m = scrape(t, url) // within the commit delay: queued
	if m["sealfs_mount_queue_files"] != files || m["sealfs_mount_queue_bytes"] != files*size {
		t.Errorf("during the write: queue %v files, %v bytes; want %d, %d", m["sealfs_mount_queue_files"], m["sealfs_mount_queue_bytes"], files, files*size)
	}
	waitCommitted(mnt, 30*time.Second)
	if os.Getenv("SEALFS_METRICS_DUMP") != "" {
		resp, err := http.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			t.Logf("scrape:\n%s", b)
		}
	}
	m = scrape(t, url)
	st := mountStatus(t, mnt)
	t.Logf("after the commit: %v", m)
	switch {
	case m["sealfs_mount_queue_files"] != 0 || m["sealfs_mount_queue_bytes"] != 0:
		t.Errorf("queue not empty after the commit: %v", m)
	case m["sealfs_mount_commits_total"] < 1 || m["sealfs_mount_last_commit_timestamp_seconds"] < float64(time.Now().Add(-time.Minute).Unix()):
		t.Errorf("no commit counted: %v", m)
	case m["sealfs_mount_sent_files_total"] != files || m["sealfs_mount_sent_bytes_total"] != files*size:
		t.Errorf("sent %v files, %v bytes; want %d, %d", m["sealfs_mount_sent_files_total"], m["sealfs_mount_sent_bytes_total"], files, files*size)
	case m["sealfs_mount_uploaded_bytes_total"]-before < files*size:
		t.Errorf("uploaded %v bytes for %d bytes of random data", m["sealfs_mount_uploaded_bytes_total"]-before, files*size)
	case m["sealfs_mount_upload_rate_bytes"] <= 0:
		t.Errorf("no upload rate just after an upload: %v", m)
	case m[`sealfs_mount_commit_failures_total{cause="other"}`] != 0 || m["sealfs_mount_integrity_errors_total"] != 0:
		t.Errorf("failures counted: %v", m)
	}
	if float64(st.UploadedBytes) < m["sealfs_mount_uploaded_bytes_total"] || float64(st.Commits) != m["sealfs_mount_commits_total"] ||
		float64(st.SentFiles) != m["sealfs_mount_sent_files_total"] || st.Cache.Limit != 1<<30 {
		t.Errorf("status %+v disagrees with the metrics %v", st, m)
	}

	expect(t, c.umount(t, mnt), 0, "")
	if _, err := http.Get(url); err == nil {
		t.Error("the metrics endpoint is still served after the unmount")
	}
}

// TestMetricsIntegrityErrors: a pack damaged on the remote makes a read
// through the mount fail, and the metrics (and status) count the
// integrity error and the chunk fetched from the remote.
func TestMetricsIntegrityErrors(t *testing.T) {
	needRoot(t)
	c := initRepo(t)
	mnt := mountpoint(t)
	expect(t, c.mount(t, mnt), 0, "")
	b := make([]byte, 1<<20)
	rand.Read(b)
	if err := os.WriteFile(filepath.Join(mnt, "f"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	expect(t, c.umount(t, mnt), 0, "")
	packs, _ := filepath.Glob(filepath.Join(c.remote, "data", "*", "*"))
	if len(packs) != 1 {
		t.Fatalf("want one pack, have %v", packs)
	}
	p, err := os.ReadFile(packs[0])
	if err != nil {
		t.Fatal(err)
	}
	p[len(p)/2] ^= 1 // inside the data, whose chunk then fails to open
	if err := os.WriteFile(packs[0], p, 0o600); err != nil {
		t.Fatal(err)
	}
	// A fresh cache: the chunk must come from the remote.
	fresh := cliRepo{remote: c.remote, cache: t.TempDir(), codeFile: c.codeFile}
	addr := freeLoopbackPort(t)
	expect(t, fresh.mount(t, mnt, "--metrics-listen", addr, "--read-only"), 0, "")
	if _, err := os.ReadFile(filepath.Join(mnt, "f")); err == nil {
		t.Fatal("a damaged chunk was read")
	}
	m := scrape(t, "http://"+addr+"/metrics")
	st := mountStatus(t, mnt)
	if m["sealfs_mount_integrity_errors_total"] < 1 || m["sealfs_mount_cache_misses_total"] < 1 || m["sealfs_mount_lease_held"] != 0 {
		t.Errorf("after a damaged read: %v", m)
	}
	if st.IntegrityErrors < 1 || st.DownloadedBytes == 0 {
		t.Errorf("status after a damaged read: %+v", st)
	}
	expect(t, fresh.umount(t, mnt), 0, "")
}
