package produce

import (
	"context"
	"math"
	"time"

	"github.com/shardhose/shardhose/internal/clock"
)

// limiter paces records with a token bucket on a clock: tokens accrue at rate per second, one
// record takes one token. The bucket starts with one token, so the first record goes at once and
// record n (from 0) no earlier than n/rate seconds later, and it holds at most one second's worth
// (at least one token), so after a stall (a slow call, a retry) Run catches up by at most one
// second of records instead of bursting the whole backlog. Batches start at most every rateTick,
// however long the calls take, so a run at a set rate makes about 1/rateTick calls a second
// rather than one per record. Not safe for concurrent use.
type limiter struct {
	clk       clock.Clock
	rate      float64 // tokens per second
	burst     float64 // most tokens the bucket holds
	tokens    float64
	last      time.Time // when tokens was last brought up to date
	tickStart time.Time // when the current batch began: the next may begin rateTick later
}

func newLimiter(c clock.Clock, rate float64) *limiter {
	now := c.Now()
	return &limiter{clk: c, rate: rate, burst: max(rate, 1), tokens: 1, last: now, tickStart: now}
}

func (l *limiter) refill() {
	now := l.clk.Now()
	if d := now.Sub(l.last); d > 0 {
		l.tokens = min(l.burst, l.tokens+d.Seconds()*l.rate)
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
// and not before the next token is due. It returns early with ctx's error when ctx ends.
func (l *limiter) wait(ctx context.Context) error {
	l.refill()
	d := l.tickStart.Add(rateTick).Sub(l.clk.Now())
	if need := 1 - l.tokens; need > tokenEpsilon {
		d = max(d, time.Duration(math.Ceil(need/l.rate*float64(time.Second))))
	}
	if err := clock.Sleep(ctx, l.clk, d); err != nil {
		return err
	}
	l.tickStart = l.clk.Now()
	return nil
}
