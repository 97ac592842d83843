package daemon

import (
	"context"
	"errors"
	"math"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sealfs/sealfs/remote"
	"github.com/sealfs/sealfs/repo"
)

// The causes a failed commit is counted under (Status.CommitFailures, the
// label cause of sealfs_mount_commit_failures_total).
const (
	CauseLease       = "no_lease"    // the writer lease could not be taken or kept
	CauseIntegrity   = "integrity"   // something read back failed verification
	CauseUnreachable = "unreachable" // the remote did not answer
	CauseNoSpace     = "no_space"    // the cache disk is full
	CauseCanceled    = "canceled"    // the drain timeout cut it short
	CauseOther       = "other"
)

// FailureCauses lists every cause, in the order status and the metrics show them.
var FailureCauses = []string{CauseLease, CauseIntegrity, CauseUnreachable, CauseNoSpace, CauseCanceled, CauseOther}

// failureCause says why a commit failed.
func failureCause(err error) string {
	switch {
	case errors.Is(err, repo.ErrIntegrity):
		return CauseIntegrity
	case errors.Is(err, repo.ErrLocked):
		return CauseLease
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return CauseNoSpace
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return CauseCanceled
	case remote.IsUnreachable(err):
		return CauseUnreachable
	}
	return CauseOther
}

// counters are the daemon's counts since the mount: the one source of the
// status document and of the metrics (which read them through Status).
type counters struct {
	commits   atomic.Uint64
	integrity atomic.Uint64
	mu        sync.Mutex
	failures  map[string]uint64
}

// failed records a failed commit: the last error, and its cause (cause,
// or failureCause(err) when empty).
func (d *Daemon) failed(err error, cause string) {
	if cause == "" {
		cause = failureCause(err)
	}
	if cause == CauseIntegrity {
		d.counts.integrity.Add(1)
	}
	d.counts.mu.Lock()
	if d.counts.failures == nil {
		d.counts.failures = map[string]uint64{}
	}
	d.counts.failures[cause]++
	d.counts.mu.Unlock()
	d.mu.Lock()
	d.lastErr, d.lastErrAt = err, time.Now()
	d.mu.Unlock()
}

// CacheStatus is the local cache of encrypted chunks in the status.
type CacheStatus struct {
	Hits   uint64 `json:"hits"`
	Misses uint64 `json:"misses"`
	Bytes  int64  `json:"bytes"`
	Limit  int64  `json:"limit"`
}

// fillCounts puts the counters, the traffic and the cache into s.
func (d *Daemon) fillCounts(s *Status) {
	s.Commits = d.counts.commits.Load()
	s.IntegrityErrors = d.counts.integrity.Load()
	d.counts.mu.Lock()
	if len(d.counts.failures) > 0 {
		s.CommitFailures = make(map[string]uint64, len(d.counts.failures))
		for k, v := range d.counts.failures {
			s.CommitFailures[k] = v
		}
	}
	d.counts.mu.Unlock()
	s.SentFiles, s.SentBytes = d.tree.Sent()
	if d.cfg.Traffic != nil {
		c := d.cfg.Traffic.Counts()
		s.UploadedBytes, s.DownloadedBytes = c.UpBytes, c.DownBytes
		s.UploadRate = d.traffic.rate(time.Now(), c.UpBytes)
		if s.UploadRate > 0 && s.PendingBytes > 0 {
			s.QueueETA = math.Round(float64(s.PendingBytes) / s.UploadRate)
		}
	}
	c := d.cfg.Repo.CacheStats()
	s.Cache = CacheStatus{Hits: c.Hits, Misses: c.Misses, Bytes: c.Bytes, Limit: c.Limit}
}

// rateWindow is how far back the upload rate looks.
const rateWindow = 10 * time.Second

// rateMeter keeps samples of a growing count (the bytes uploaded) over
// the last rateWindow.
type rateMeter struct {
	mu      sync.Mutex
	samples []rateSample
}

type rateSample struct {
	at    time.Time
	total uint64
}

// observe adds a sample and drops those older than the window.
func (m *rateMeter) observe(at time.Time, total uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.samples = append(m.samples, rateSample{at, total})
	i := 0
	for i < len(m.samples)-1 && at.Sub(m.samples[i].at) > rateWindow {
		i++
	}
	m.samples = m.samples[i:]
}

// rate is the count's growth per second from the oldest sample kept to
// now, when it is total.
func (m *rateMeter) rate(now time.Time, total uint64) float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.samples) == 0 {
		return 0
	}
	first := m.samples[0]
	secs := now.Sub(first.at).Seconds()
	if secs <= 0 || total < first.total {
		return 0
	}
	return float64(total-first.total) / secs
}

// sampleTraffic samples the upload every second until the daemon stops.
func (d *Daemon) sampleTraffic() {
	if d.cfg.Traffic == nil {
		return
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	d.traffic.observe(time.Now(), d.cfg.Traffic.Counts().UpBytes)
	for {
		select {
		case <-d.stopLoop:
			return
		case now := <-tick.C:
			d.traffic.observe(now, d.cfg.Traffic.Counts().UpBytes)
		}
	}
}

// serveMetrics serves the Prometheus endpoint /metrics on l (from a
// registry of our own: nothing a library registers globally shows) until
// the daemon stops.
func (d *Daemon) serveMetrics(l net.Listener) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(statusCollector{d})
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	d.metricsSrv = srv
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.cfg.Log.Warn("the metrics endpoint stopped", "err", err)
		}
	}()
	d.cfg.Log.Info("serving metrics", "address", "http://"+l.Addr().String()+"/metrics")
}

// stopMetrics closes the metrics endpoint.
func (d *Daemon) stopMetrics() {
	if d.metricsSrv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = d.metricsSrv.Shutdown(ctx)
	}
}

// statusCollector turns the status into metrics at every scrape: the
// metrics and `sealfs status` count the same things the same way.
type statusCollector struct{ d *Daemon }

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("sealfs_mount_"+name, help, labels, nil)
}

var (
	descQueueFiles  = desc("queue_files", "Files changed locally and not yet uploaded.")
	descQueueBytes  = desc("queue_bytes", "Bytes of the files in the queue (before compression and encryption).")
	descUploaded    = desc("uploaded_bytes_total", "Bytes stored on the remote by this mount (encrypted, compressed).")
	descDownloaded  = desc("downloaded_bytes_total", "Bytes fetched from the remote by this mount.")
	descSentFiles   = desc("sent_files_total", "Files stored by this mount's commits.")
	descSentBytes   = desc("sent_bytes_total", "Bytes of the files stored by this mount's commits (before compression and encryption).")
	descUploadRate  = desc("upload_rate_bytes", "Bytes per second uploaded over the last 10 seconds.")
	descCommits     = desc("commits_total", "Snapshots committed by this mount.")
	descFailures    = desc("commit_failures_total", "Commits that failed, by cause (no_lease, integrity, unreachable, no_space, canceled, other).", "cause")
	descIntegrity   = desc("integrity_errors_total", "Objects that failed verification, in commits and in reads.")
	descCacheHits   = desc("cache_hits_total", "Data chunks read without the remote.")
	descCacheMisses = desc("cache_misses_total", "Data chunks fetched from the remote.")
	descCacheBytes  = desc("cache_bytes", "Bytes of encrypted chunks in the local cache.")
	descCacheLimit  = desc("cache_limit_bytes", "The local cache's limit (--cache-size).")
	descLastCommit  = desc("last_commit_timestamp_seconds", "Unix time of this mount's last successful commit (0: none yet).")
	descLeaseHeld   = desc("lease_held", "1 when this mount holds the writer lease, 0 when not (yet, or read-only).")
	descSnapshotSeq = desc("snapshot_seq", "Sequence number of the newest snapshot.")
)

// Describe sends every metric's description.
func (c statusCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descQueueFiles, descQueueBytes, descUploaded, descDownloaded, descSentFiles, descSentBytes,
		descUploadRate, descCommits, descFailures, descIntegrity, descCacheHits, descCacheMisses, descCacheBytes, descCacheLimit,
		descLastCommit, descLeaseHeld, descSnapshotSeq} {
		ch <- d
	}
}

// Collect reads the status once and sends its values.
func (c statusCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.d.Status()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(descQueueFiles, float64(s.PendingFiles))
	gauge(descQueueBytes, float64(s.PendingBytes))
	counter(descUploaded, s.UploadedBytes)
	counter(descDownloaded, s.DownloadedBytes)
	counter(descSentFiles, s.SentFiles)
	counter(descSentBytes, s.SentBytes)
	gauge(descUploadRate, s.UploadRate)
	counter(descCommits, s.Commits)
	for _, cause := range FailureCauses {
		counter(descFailures, s.CommitFailures[cause], cause)
	}
	counter(descIntegrity, s.IntegrityErrors)
	counter(descCacheHits, s.Cache.Hits)
	counter(descCacheMisses, s.Cache.Misses)
	gauge(descCacheBytes, float64(s.Cache.Bytes))
	gauge(descCacheLimit, float64(s.Cache.Limit))
	last := 0.0
	if !s.LastCommit.IsZero() {
		last = float64(s.LastCommit.UnixNano()) / 1e9
	}
	gauge(descLastCommit, last)
	held := 0.0
	if s.LeaseHeld {
		held = 1
	}
	gauge(descLeaseHeld, held)
	gauge(descSnapshotSeq, float64(s.SnapshotSeq))
}
