package backup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/shardhose/shardhose/hooks"
	"github.com/shardhose/shardhose/internal/clock"
	"github.com/shardhose/shardhose/internal/outage"
	"github.com/shardhose/shardhose/internal/retry"
)

// MinBackupRound is the shortest time DeliverOrBackup gives one backup attempt (a Writer retries
// within it) before it tries the destination again. It is long enough not to cut a large PUT
// short on an ordinary network; later rounds follow the policy's backoff, up to its cap.
const MinBackupRound = 30 * time.Second

// pauseKey carries, in a context, whom DeliverOrBackup tells of pauses (WithPauseHooks).
type pauseKey struct{}

type pauseHooks struct {
	sink  string
	hooks hooks.Set
}

// WithPauseHooks returns a context under which DeliverOrBackup tells hooks.SinkPaused, under the
// sink's name, when a batch starts and stops being paused (destination and backup both failing).
func WithPauseHooks(ctx context.Context, sink string, hs hooks.Set) context.Context {
	if len(hs) == 0 {
		return ctx
	}
	return context.WithValue(ctx, pauseKey{}, pauseHooks{sink: sink, hooks: hs})
}

// reportPause tells the hooks in ctx, if any, that a batch is (or is no longer) paused.
func reportPause(ctx context.Context, paused bool) {
	ph, ok := ctx.Value(pauseKey{}).(pauseHooks)
	if !ok {
		return
	}
	hooks.Each(ph.hooks, func(h hooks.SinkPaused) { h.OnSinkPaused(ph.sink, paused) })
}

// errRoundOver ends a backup round that took its whole window.
var errRoundOver = errors.New("backup round over: trying the destination again")

// DeliverOrBackup applies Firehose's rule to one batch.
//
//  1. deliver is called, and retried with policy's backoff while it fails, for up to
//     policy.MaxElapsed (the retry duration; as in retry.Policy, 0 means no limit, so a retry
//     duration of 0 s is MaxAttempts: 1). An error marked retry.Permanent (HTTP 413, a record too
//     large) ends the retries at once.
//  2. Then backup is called with the last delivery error and the number of delivery attempts, to
//     store the batch in the backup bucket.
//  3. If backup fails too, the batch is neither dropped nor acknowledged: the sink pauses. Rounds
//     alternate, each a backup attempt given at least MinBackupRound (growing by policy's
//     backoff, up to its cap; a Writer retries inside the round, and its ctx ends with the round),
//     then one more delivery attempt (skipped when the destination failed permanently), until one
//     of them succeeds or ctx ends.
//
// attempt and attempts count delivery attempts from 1 across all rounds. The result says whether
// the destination took the batch (true) or the backup did (false), and after how many delivery
// attempts; err is non-nil only when ctx ended first, and then wraps ctx's error: the batch must
// not be acknowledged. deliver and backup must honour ctx. log gets a line per failure (nil
// discards). DeliverOrBackup is safe to call from many goroutines at once.
func DeliverOrBackup(ctx context.Context, c clock.Clock, policy retry.Policy,
	deliver func(ctx context.Context, attempt int) error,
	backup func(ctx context.Context, lastErr error, attempts int) error,
	log *slog.Logger,
) (delivered bool, attempts int, err error) {
	if c == nil {
		c = clock.Real()
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	out, lastErr := retry.Do(ctx, c, policy, deliver, func(attempt int, err error, wait time.Duration) {
		log.Debug("delivery failed; retrying", "attempt", attempt, "sdk_attempts", outage.Attempts(err), "retry_in", wait, "error", err)
	})
	attempts = out.Attempts
	if lastErr == nil {
		return true, attempts, nil
	}
	if ctx.Err() != nil {
		return false, attempts, stopped(ctx, attempts, lastErr)
	}
	retryDestination := !retry.IsPermanent(lastErr)
	if retryDestination {
		log.Warn("delivery failed for the whole retry duration; backing up", "attempts", attempts, "error", lastErr)
	} else {
		log.Warn("delivery failed permanently; backing up", "attempts", attempts, "error", lastErr)
	}

	paused := false
	defer func() {
		if paused {
			reportPause(ctx, false)
		}
	}()
	for round := 1; ; round++ {
		window := max(policy.Delay(round), MinBackupRound)
		deadline := c.Now().Add(window)
		rctx, end := clock.WithTimeout(ctx, c, window, errRoundOver)
		berr := backup(rctx, lastErr, attempts)
		end()
		if berr == nil {
			return false, attempts, nil
		}
		if ctx.Err() != nil {
			return false, attempts, stopped(ctx, attempts, lastErr, berr)
		}
		log.Error("backup failed too: delivery paused until the destination or the backup takes the batch", "round", round, "delivery_attempts", attempts, "error", berr)
		if !paused {
			paused = true
			reportPause(ctx, true)
		}
		if err := clock.Sleep(ctx, c, deadline.Sub(c.Now())); err != nil {
			return false, attempts, stopped(ctx, attempts, lastErr, berr)
		}
		if !retryDestination {
			continue
		}
		attempts++
		derr := deliver(ctx, attempts)
		if derr == nil {
			log.Info("destination took a batch while the backup was failing; delivery resumed", "attempts", attempts)
			return true, attempts, nil
		}
		if ctx.Err() != nil {
			return false, attempts, stopped(ctx, attempts, derr, berr)
		}
		lastErr = derr
		retryDestination = !retry.IsPermanent(derr)
		log.Warn("delivery failed again; trying the backup", "attempt", attempts, "error", derr)
	}
}

// stopped is DeliverOrBackup's error when ctx ends first: it wraps ctx's error and the last
// failures.
func stopped(ctx context.Context, attempts int, errs ...error) error {
	err := errors.Join(errs...)
	if !errors.Is(err, ctx.Err()) {
		err = errors.Join(ctx.Err(), err)
	}
	return fmt.Errorf("batch neither delivered nor backed up after %d delivery attempts: %w", attempts, err)
}
