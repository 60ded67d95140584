package consumer

import (
	"log/slog"
	"sync"
	"time"

	"github.com/shardhose/shardhose/hooks"
	"github.com/shardhose/shardhose/internal/clock"
)

// outageRepeat is the least time between two lines about the same dependency's failures.
const outageRepeat = 30 * time.Second

// outageLog reports the failures of one dependency (the lease table, the stream) so that an
// outage is seen at once and does not flood the log: the first failure is logged with its error
// as it happens; while failures go on, one summary line at most every outageRepeat; and the
// first success after logged failures is logged once as the recovery. It is safe for concurrent
// use: every shard's calls report to the same outageLog.
type outageLog struct {
	log   *slog.Logger
	clock clock.Clock
	what  string // "lease table", "stream"

	mu       sync.Mutex
	down     bool      // the last call failed
	since    time.Time // first failure of this outage
	failures int       // failed calls in this outage
	logged   bool      // a line was logged for this outage
	lastLine time.Time // last line about this dependency, any outage
}

func newOutageLog(log *slog.Logger, clk clock.Clock, what string) *outageLog {
	return &outageLog{log: log, clock: clk, what: what}
}

// failed reports a failed call (nothing on a nil outageLog): msg says what failed ("lease renewal failed; will retry"),
// attrs name what it was for.
func (o *outageLog) failed(msg string, err error, attrs ...any) {
	if o == nil {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	now := o.clock.Now()
	if !o.down {
		o.down, o.since, o.failures, o.logged = true, now, 0, false
	}
	o.failures++
	if !o.lastLine.IsZero() && now.Sub(o.lastLine) < outageRepeat {
		return
	}
	o.lastLine = now
	if !o.logged {
		o.logged = true
		o.log.Warn(msg, append(attrs, "error", err)...)
		return
	}
	o.log.Warn(o.what+" still failing; will retry", "failures", o.failures, "for", now.Sub(o.since).Round(time.Millisecond).String(),
		"last_failure", msg, "error", err)
}

// ok reports a call that succeeded.
func (o *outageLog) ok() {
	if o == nil {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.down {
		return
	}
	o.down = false
	if !o.logged {
		return
	}
	now := o.clock.Now()
	o.lastLine = now
	o.log.Info(o.what+" reachable again", "outage", now.Sub(o.since).Round(time.Millisecond).String(), "failures", o.failures)
}

// tableFailed reports a failed lease table call: to the outage log (msg, attrs) and to the
// hooks (hooks.LeaseTableFailed, with operation: renew, checkpoint, take, create, list).
func (c *Consumer) tableFailed(operation, msg string, err error, attrs ...any) {
	c.tableHealth.failed(msg, err, attrs...)
	hooks.Each(c.opts.Hooks, func(h hooks.LeaseTableFailed) { h.OnLeaseTableFailed(operation, err) })
}
