package daemon

import (
	"context"
	"fmt"
	"time"

	"github.com/sealfs/sealfs/internal/retention"
)

// DefaultForgetInterval is how often, at most, a mount with a retention
// policy applies it.
const DefaultForgetInterval = time.Hour

// ForgetStatus is what the status says of a mount's own thinning of its
// snapshots (Config.Retention).
type ForgetStatus struct {
	Policy    string    `json:"policy"`          // the policy, for people
	Interval  string    `json:"interval"`        // at most one attempt per interval
	Last      time.Time `json:"last,omitzero"`   // when the last attempt ended
	Forgotten int       `json:"forgotten"`       // snapshots the last successful attempt forgot
	Total     int       `json:"total"`           // snapshots forgotten since the mount
	Error     string    `json:"error,omitempty"` // why the last attempt failed ("" when it did not)
}

// thinning is the state of the retention loop.
type thinning struct {
	committed chan struct{} // a commit landed (buffered: one is enough)
	done      chan struct{} // closed when the loop has ended
	status    ForgetStatus  // guarded by Daemon.mu
}

// retentionOn reports whether this mount thins its snapshots.
func (d *Daemon) retentionOn() bool { return !d.cfg.ReadOnly && !d.cfg.Retention.Empty() }

func (d *Daemon) forgetInterval() time.Duration {
	if d.cfg.ForgetInterval <= 0 {
		return DefaultForgetInterval
	}
	return d.cfg.ForgetInterval
}

// initThinning sets up the retention loop's state, before the mount
// serves its status.
func (d *Daemon) initThinning() {
	d.thin.done = make(chan struct{})
	if d.retentionOn() {
		d.thin.committed = make(chan struct{}, 1)
		d.thin.status = ForgetStatus{Policy: d.cfg.Retention.String() + " (by " + string(d.groupBy()) + ")", Interval: d.forgetInterval().String()}
	}
}

// startThinning starts the retention loop, if the mount has a policy; it
// ends when ctx does.
func (d *Daemon) startThinning(ctx context.Context) {
	if !d.retentionOn() {
		close(d.thin.done)
		return
	}
	go d.thinLoop(ctx)
}

func (d *Daemon) groupBy() retention.GroupBy {
	if d.cfg.RetentionGroupBy == "" {
		return retention.ByHost
	}
	return d.cfg.RetentionGroupBy
}

// committedNow tells the retention loop that a commit landed.
func (d *Daemon) committedNow() {
	if d.thin.committed == nil {
		return
	}
	select {
	case d.thin.committed <- struct{}{}:
	default:
	}
}

// thinLoop applies the policy after a commit, at most once per interval,
// apart from the commit loop: a commit never waits for it (but for the
// moment Repository.Forget stores its record), and a failure is logged,
// shown by the status and tried again after the next interval.
func (d *Daemon) thinLoop(ctx context.Context) {
	defer close(d.thin.done)
	var next time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.thin.committed:
		}
		if time.Now().Before(next) {
			continue
		}
		d.forgetOnce(ctx)
		next = time.Now().Add(d.forgetInterval())
	}
}

// forgetOnce applies the policy once and records the outcome.
func (d *Daemon) forgetOnce(ctx context.Context) {
	r := d.cfg.Repo
	var n int
	plan, err := retention.PlanFor(ctx, r, d.cfg.Retention, d.groupBy(), time.Now())
	if err == nil {
		n = len(plan.Removed())
		err = retention.Forget(ctx, r, plan)
	}
	d.mu.Lock()
	st := &d.thin.status
	st.Last = time.Now()
	if err != nil {
		st.Error = fmt.Sprintf("failed to forget snapshots by the retention policy (tried again in %s): %v", d.forgetInterval(), err)
	} else {
		st.Error, st.Forgotten = "", n
		st.Total += n
	}
	d.mu.Unlock()
	switch {
	case err != nil && ctx.Err() != nil:
		d.cfg.Log.Info("a forget by the retention policy was cut short by the stop; the next one finishes it", "err", err)
	case err != nil:
		d.cfg.Log.Warn("failed to forget old snapshots by the retention policy; tried again later", "err", err, "retry_after", d.forgetInterval())
	case n > 0:
		d.cfg.Log.Info("forgot old snapshots by the retention policy", "forgotten", n, "policy", d.cfg.Retention.String())
	}
}
