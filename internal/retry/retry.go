// Package retry holds the one backoff policy every component uses: exponential backoff with
// jitter, a cap on each wait, and an optional limit on the total time spent retrying.
package retry

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/shardhose/shardhose/internal/clock"
)

// Policy describes how to retry. The zero value of MaxElapsed (and of MaxAttempts) means no
// limit: retry until the context ends. Firehose's HTTP policy is
// Policy{Initial: time.Second, Max: 2*time.Minute, Multiplier: 2, Jitter: 0.15}.
type Policy struct {
	Initial    time.Duration // first wait
	Max        time.Duration // cap on one wait
	Multiplier float64       // growth per attempt; values below 1 are taken as 2
	Jitter     float64       // fraction of each wait drawn at random, 0 to 1
	MaxElapsed time.Duration // give up once this much time has passed since the first attempt; 0 = never
	// MaxAttempts stops after this many attempts in all; 0 = no limit.
	MaxAttempts int
}

// Delay returns the wait before attempt n+1, after n failed attempts (n >= 1), jitter included.
func (p Policy) Delay(n int) time.Duration {
	if n < 1 {
		n = 1
	}
	mult := p.Multiplier
	if mult < 1 {
		mult = 2
	}
	d := float64(p.Initial)
	for i := 1; i < n; i++ {
		d *= mult
		if p.Max > 0 && d >= float64(p.Max) {
			d = float64(p.Max)
			break
		}
	}
	if p.Max > 0 && d > float64(p.Max) {
		d = float64(p.Max)
	}
	if p.Jitter > 0 {
		j := p.Jitter
		if j > 1 {
			j = 1
		}
		d = d * (1 - j + 2*j*rand.Float64())
	}
	return time.Duration(d)
}

// Permanent marks an error that must not be retried (for example HTTP 413). Do returns it at once.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err, or an error it wraps, was marked with Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

type permanentError struct{ err error }

func (p *permanentError) Error() string { return p.err.Error() }
func (p *permanentError) Unwrap() error { return p.err }

// Outcome is what Do reports besides the last error: how many attempts it made and when it started.
type Outcome struct {
	Attempts int
	Started  time.Time
	Ended    time.Time
}

// Do calls fn until it returns nil, a Permanent error, the policy gives up, or ctx ends. It waits
// on c between attempts, so tests drive it with a fake clock. onRetry, if not nil, is told of each
// failure that will be retried, with the wait that follows it.
func Do(ctx context.Context, c clock.Clock, p Policy, fn func(ctx context.Context, attempt int) error, onRetry func(attempt int, err error, wait time.Duration)) (Outcome, error) {
	out := Outcome{Started: c.Now()}
	for {
		out.Attempts++
		err := fn(ctx, out.Attempts)
		out.Ended = c.Now()
		if err == nil {
			return out, nil
		}
		if IsPermanent(err) {
			return out, err
		}
		if ctx.Err() != nil {
			return out, errors.Join(err, ctx.Err())
		}
		if p.MaxAttempts > 0 && out.Attempts >= p.MaxAttempts {
			return out, err
		}
		wait := p.Delay(out.Attempts)
		if p.MaxElapsed > 0 {
			left := p.MaxElapsed - out.Ended.Sub(out.Started)
			if left <= 0 {
				return out, err
			}
			if wait > left {
				wait = left
			}
		}
		if onRetry != nil {
			onRetry(out.Attempts, err, wait)
		}
		if serr := clock.Sleep(ctx, c, wait); serr != nil {
			return out, errors.Join(err, serr)
		}
	}
}
