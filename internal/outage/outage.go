// Package outage makes a dependency's failures visible without flooding the log: the first
// failure of a destination, the lease table or the stream is logged at once, further failures
// at most once per interval with how many went unlogged, and the recovery once.
//
// It is the one way shardhose reports an outage: each place that talks to a dependency (every
// sink's destination and S3 backup, the dead-letter destination, the readers' stream, the lease
// table) reports every call's result to its Reporter, and the Reporter alone writes the lines
// about it at Warn and Info; per-attempt detail stays at debug level in the caller.
package outage

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shardhose/shardhose/internal/clock"
)

// DefaultEvery is how often a continuing outage is logged again.
const DefaultEvery = 30 * time.Second

// Messages of the three lines a Reporter writes; log collectors can alert on them.
const (
	MsgFailing      = "dependency failing"
	MsgStillFailing = "dependency still failing"
	MsgRecovered    = "dependency recovered"
)

// Options configure a Reporter.
type Options struct {
	// Dependency is the kind of thing called: "s3", "dynamodb", "kinesis", "sqs", "sns",
	// "firehose", "http", "opensearch", "file".
	Dependency string
	// Resource names it: a bucket, a table, a stream, a queue, a URL, a path.
	Resource string
	// Logger gets the lines, with the caller's own attributes (sink=..., shard=...); nil discards.
	Logger *slog.Logger
	// Clock decides when an outage is logged again; nil is the real clock.
	Clock clock.Clock
	// Every is the shortest time between two lines about one outage; 0 is DefaultEvery.
	Every time.Duration
}

// Reporter tracks one dependency's health from the results of the calls made to it. Safe for
// concurrent use: many shards or uploads may report to one Reporter, and its lines come out in
// the order the results were reported. A Reporter never blocks on anything but its own mutex
// and the logger.
//
// Lines about one dependency: MsgFailing (Warn) when an outage begins, MsgStillFailing (Warn)
// at most once per interval while it lasts, MsgRecovered (Info) once when a call succeeds
// again. The failing lines are errors instead when the failure needs an operator (WithAction). A dependency that flaps (calls failing and succeeding in turn, as when some of many
// concurrent calls time out) starts a new outage at each failure after a success: such an
// outage is announced at once only when the last announcement is an interval old; until then
// its failures are counted (unlogged), and its recovery is not logged when it was not
// announced. So a flapping dependency writes at most a failing and a recovered line per
// interval, besides the reminders.
type Reporter struct {
	log   *slog.Logger
	clock clock.Clock
	every time.Duration

	isDown atomic.Bool // down, readable without the mutex: Succeeded is on every read's path

	mu         sync.Mutex
	down       bool
	since      time.Time // the first failure of the current outage
	failures   int       // failed calls in the current outage
	attempts   int       // their attempts, the SDK's retries included
	lastLine   time.Time
	suppressed int       // failures not logged since lastLine
	announced  bool      // the current outage was logged as MsgFailing
	lastStart  time.Time // when an outage was last logged as MsgFailing
}

// New returns a Reporter for one dependency.
func New(o Options) *Reporter {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = clock.Real()
	}
	if o.Every <= 0 {
		o.Every = DefaultEvery
	}
	return &Reporter{
		log:   o.Logger.With("dependency", o.Dependency, "resource", o.Resource),
		clock: o.Clock,
		every: o.Every,
	}
}

// Attempts returns how many attempts the call that returned err made: the count an error
// carries through an Attempts() int method (awsclient's errors do, the SDK's retries
// included), else 1.
func Attempts(err error) int {
	var a interface{ Attempts() int }
	if errors.As(err, &a) && a.Attempts() > 0 {
		return a.Attempts()
	}
	return 1
}

// WithAction returns err with what an operator should do about it: a failure that waiting does
// not cure (a destination that does not exist, credentials refused). A Reporter adds it to its
// lines as "action" and writes them at Error. The error is still retried: the operator may be
// fixing it.
func WithAction(err error, action string) error {
	if err == nil || action == "" {
		return err
	}
	return &actionError{err: err, action: action}
}

type actionError struct {
	err    error
	action string
}

func (e *actionError) Error() string  { return e.err.Error() }
func (e *actionError) Unwrap() error  { return e.err }
func (e *actionError) Action() string { return e.action }

// Action returns what an operator should do about err (see WithAction), or "".
func Action(err error) string {
	var a interface{ Action() string }
	if errors.As(err, &a) {
		return a.Action()
	}
	return ""
}

// Failed reports a failed call. The first failure after a success is logged at once as
// MsgFailing (unless the dependency flaps: see Reporter); later ones at most once per interval
// as MsgStillFailing, with the count of those not logged in between. args are added to the line
// (what was being written, the operation, and so on).
func (r *Reporter) Failed(err error, args ...any) {
	if r == nil {
		return
	}
	n := Attempts(err)
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.clock.Now()
	if !r.down {
		r.down, r.since, r.failures, r.attempts, r.announced = true, now, 0, 0, false
		r.isDown.Store(true)
	}
	r.failures++
	r.attempts += n
	action := Action(err)
	if action != "" {
		args = append([]any{"action", action}, args...)
	}
	switch {
	case !r.announced && (r.lastStart.IsZero() || now.Sub(r.lastStart) >= r.every):
		first := []any{"error", err.Error(), "attempts", r.attempts}
		if r.failures > 1 {
			first = append(first, "down_for", now.Sub(r.since).Round(time.Millisecond).String(), "failures", r.failures)
		}
		if r.suppressed > 0 {
			first = append(first, "unlogged", r.suppressed)
		}
		r.warn(action, MsgFailing, append(first, args...))
		r.announced, r.lastStart = true, now
	case r.announced && now.Sub(r.lastLine) >= r.every:
		r.warn(action, MsgStillFailing, append([]any{
			"error", err.Error(), "down_for", now.Sub(r.since).Round(time.Millisecond).String(),
			"failures", r.failures, "attempts", r.attempts, "unlogged", r.suppressed,
		}, args...))
	default:
		r.suppressed++
		return
	}
	r.lastLine, r.suppressed = now, 0
}

// warn writes a line about a failing dependency: a warning, or an error when the failure needs an
// operator (action, from WithAction).
func (r *Reporter) warn(action, msg string, args []any) {
	if action != "" {
		r.log.Error(msg, args...)
		return
	}
	r.log.Warn(msg, args...)
}

// Succeeded reports a successful call. After failures it logs MsgRecovered once, with how long
// the outage lasted and how many calls and attempts failed in it (not for an outage that was
// never announced: see Reporter).
func (r *Reporter) Succeeded() {
	if r == nil || !r.isDown.Load() {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.down {
		return
	}
	r.down = false
	r.isDown.Store(false)
	if !r.announced {
		return
	}
	r.lastLine = r.clock.Now()
	r.log.Info(MsgRecovered, "down_for", r.clock.Now().Sub(r.since).Round(time.Millisecond).String(),
		"failures", r.failures, "attempts", r.attempts)
}

// Down reports whether the last result was a failure.
func (r *Reporter) Down() bool {
	if r == nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.down
}

// Track wraps one attempt of a retry loop (the fn of retry.Do) so that its result is reported:
// an error as Failed, success as Succeeded. An error after ctx ended is not reported: the caller
// stopping is not an outage.
func (r *Reporter) Track(fn func(ctx context.Context, attempt int) error, args ...any) func(ctx context.Context, attempt int) error {
	return func(ctx context.Context, attempt int) error {
		err := fn(ctx, attempt)
		switch {
		case err == nil:
			r.Succeeded()
		case ctx.Err() == nil:
			r.Failed(err, args...)
		}
		return err
	}
}
