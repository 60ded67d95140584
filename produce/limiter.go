package produce

import (
	"context"
	"math"
	"time"

	"github.com/shardhose/shardhose/internal/clock"
)

// limiter paces records with a token bucket on a clock: tokens accrue at the schedule's rate,
// one record takes one token. The bucket starts with one token, so the first record goes at once
// and, at a constant rate, record n (from 0) no earlier than n/rate seconds later; it holds at
// most one second's worth (at least one token), so after a stall (a slow call, a retry) Run
// catches up by at most one second of records instead of bursting the whole backlog. When the
// rate changes (a ramp, a periodic wave), tokens accrue at the mean of the rates at the start
// and the end of each interval. Batches start at most every rateTick, however long the calls
// take, so a run at a set rate makes about 1/rateTick calls a second rather than one per record.
// Not safe for concurrent use.
type limiter struct {
	clk       clock.Clock
	sched     Schedule
	start     time.Time
	tokens    float64
	last      time.Time // when tokens was last brought up to date
	tickStart time.Time // when the current batch began: the next may begin rateTick later
}

func newLimiter(c clock.Clock, s Schedule) *limiter {
	now := c.Now()
	return &limiter{clk: c, sched: s, start: now, tokens: 1, last: now, tickStart: now}
}

func (l *limiter) rateAt(t time.Time) float64 { return max(l.sched.RateAt(t.Sub(l.start)), 0) }

func (l *limiter) refill() {
	now := l.clk.Now()
	if d := now.Sub(l.last); d > 0 {
		rate := (l.rateAt(l.last) + l.rateAt(now)) / 2
		burst := max(l.rateAt(now), 1)
		l.tokens = min(burst, l.tokens+d.Seconds()*rate)
		l.last = now
	}
}

// tokenEpsilon absorbs float rounding, so that 0.1 s at 100/s yields 10 tokens, not 9.999….
const tokenEpsilon = 1e-9

// take uses up one token if there is one.
func (l *limiter) take() bool {
	l.refill()
	if l.tokens+tokenEpsilon >= 1 {
		l.tokens--
		return true
	}
	return false
}

// wait blocks on the clock until the next batch may begin: rateTick after the current one began,
// and not before the next token is due at the current rate (a rate of 0 is looked at again
// after rateTick). It returns early with ctx's error when ctx ends.
func (l *limiter) wait(ctx context.Context) error {
	l.refill()
	d := l.tickStart.Add(rateTick).Sub(l.clk.Now())
	if need, rate := 1-l.tokens, l.rateAt(l.clk.Now()); need > tokenEpsilon && rate > 0 {
		d = max(d, min(time.Duration(math.Ceil(need/rate*float64(time.Second))), time.Second))
	}
	if err := clock.Sleep(ctx, l.clk, d); err != nil {
		return err
	}
	l.tickStart = l.clk.Now()
	return nil
}
