package backup

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shardhose/shardhose/internal/clock"
	"github.com/shardhose/shardhose/internal/retry"
)

// steady is Firehose's HTTP backoff without jitter, so waits are exact.
var steady = retry.Policy{Initial: time.Second, Max: 2 * time.Minute, Multiplier: 2}

var errDestination = errors.New("destination answered 500")

type result struct {
	delivered bool
	attempts  int
	err       error
}

// destination is a deliver func whose outcome a test switches.
type destination struct {
	mu    sync.Mutex
	calls int
	err   error // returned while set
	seen  []int // the attempt numbers it was called with
}

func (d *destination) deliver(ctx context.Context, attempt int) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls++
	d.seen = append(d.seen, attempt)
	return d.err
}

func (d *destination) set(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.err = err
}

func (d *destination) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.calls
}

// backupCall records one call of the backup func.
type backupCall struct {
	lastErr  error
	attempts int
}

type backupTarget struct {
	mu    sync.Mutex
	calls []backupCall
	err   error
}

func (b *backupTarget) backup(ctx context.Context, lastErr error, attempts int) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls = append(b.calls, backupCall{lastErr, attempts})
	return b.err
}

func start(ctx context.Context, clk clock.Clock, p retry.Policy, deliver func(context.Context, int) error, backup func(context.Context, error, int) error) <-chan result {
	out := make(chan result, 1)
	go func() {
		d, n, err := DeliverOrBackup(ctx, clk, p, deliver, backup, nil)
		out <- result{d, n, err}
	}()
	return out
}

// advanceUntil moves the fake clock by step each time at least timers timers are pending (the
// component waits), until res yields.
func advanceUntil(t *testing.T, ctx context.Context, clk *clock.Fake, timers int, step time.Duration, res <-chan result) result {
	t.Helper()
	for {
		select {
		case r := <-res:
			return r
		default:
		}
		wctx, cancel := context.WithCancel(ctx)
		woke := make(chan struct{})
		go func() { defer close(woke); _ = clk.WaitForTimers(wctx, timers) }()
		select {
		case r := <-res:
			cancel()
			<-woke
			return r
		case <-woke:
			cancel()
			if ctx.Err() != nil {
				t.Fatalf("no result: %v", ctx.Err())
			}
			clk.Advance(step)
		}
	}
}

func TestDeliverFirstTime(t *testing.T) {
	ctx := waitCtx(t)
	d := &destination{}
	b := &backupTarget{}
	r := <-start(ctx, clock.NewFake(testStart), steady, d.deliver, b.backup)
	if !r.delivered || r.attempts != 1 || r.err != nil || len(b.calls) != 0 {
		t.Errorf("result %+v, backup calls %d; want delivered at attempt 1", r, len(b.calls))
	}
}

func TestDeliverAfterRetries(t *testing.T) {
	ctx := waitCtx(t)
	clk := clock.NewFake(testStart)
	d := &destination{err: errDestination}
	b := &backupTarget{}
	p := steady
	p.MaxElapsed = time.Minute
	res := start(ctx, clk, p, d.deliver, b.backup)
	for i, wait := range []time.Duration{time.Second, 2 * time.Second} {
		if err := clk.WaitForTimers(ctx, 1); err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			d.set(nil)
		}
		clk.Advance(wait)
	}
	r := <-res
	if !r.delivered || r.attempts != 3 || r.err != nil || len(b.calls) != 0 {
		t.Errorf("result %+v, backup calls %d; want delivered at attempt 3", r, len(b.calls))
	}
}

func TestBackupAfterRetryDuration(t *testing.T) {
	ctx := waitCtx(t)
	clk := clock.NewFake(testStart)
	d := &destination{err: errDestination}
	b := &backupTarget{}
	p := steady
	p.MaxElapsed = 10 * time.Second
	res := start(ctx, clk, p, d.deliver, b.backup)
	// Attempts at 0, 1, 3, 7 and 10 s: the last wait is cut to what is left of the duration.
	for _, wait := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 3 * time.Second} {
		if err := clk.WaitForTimers(ctx, 1); err != nil {
			t.Fatal(err)
		}
		clk.Advance(wait)
	}
	r := <-res
	if r.delivered || r.attempts != 5 || r.err != nil {
		t.Fatalf("result %+v, want backed up after 5 attempts", r)
	}
	if len(b.calls) != 1 || b.calls[0].attempts != 5 || !errors.Is(b.calls[0].lastErr, errDestination) {
		t.Errorf("backup calls %+v, want one with 5 attempts and the destination's error", b.calls)
	}
	if got := clk.Now().Sub(testStart); got != 10*time.Second {
		t.Errorf("gave up after %s, want the retry duration, 10s", got)
	}
}

func TestSingleAttemptWhenRetryDurationIsZero(t *testing.T) {
	ctx := waitCtx(t)
	d := &destination{err: errDestination}
	b := &backupTarget{}
	p := steady
	p.MaxAttempts = 1
	r := <-start(ctx, clock.NewFake(testStart), p, d.deliver, b.backup)
	if r.delivered || r.attempts != 1 || len(b.calls) != 1 {
		t.Errorf("result %+v, backup calls %d; want backed up after 1 attempt", r, len(b.calls))
	}
}

func TestPermanentFailureGoesToBackupAtOnce(t *testing.T) {
	ctx := waitCtx(t)
	d := &destination{err: retry.Permanent(errors.New("413 request entity too large"))}
	b := &backupTarget{}
	p := steady
	p.MaxElapsed = time.Hour
	r := <-start(ctx, clock.NewFake(testStart), p, d.deliver, b.backup)
	if r.delivered || r.attempts != 1 || r.err != nil || d.count() != 1 {
		t.Errorf("result %+v after %d deliveries, want backed up after 1", r, d.count())
	}
	if len(b.calls) != 1 || b.calls[0].attempts != 1 || !retry.IsPermanent(b.calls[0].lastErr) {
		t.Errorf("backup calls %+v", b.calls)
	}
}

// With both the destination and the backup down, nothing is acknowledged; the rounds alternate
// between them; the backup recovering ends the pause.
func TestPauseUntilBackupRecovers(t *testing.T) {
	ctx := waitCtx(t)
	clk := clock.NewFake(testStart)
	f := newFakeS3()
	f.setFailing(true)
	w := newTestWriter(t, f, clk, CompressionGZIP)
	d := &destination{err: errDestination}
	var lastAttempts atomic.Int64
	backup := func(ctx context.Context, lastErr error, attempts int) error {
		lastAttempts.Store(int64(attempts))
		return w.WriteErrors(ctx, FolderHTTPEndpointFailed, []ErrorRecord{{AttemptsMade: attempts, ErrorCode: "HttpEndpoint.DestinationException", ErrorMessage: lastErr.Error()}})
	}
	p := steady
	p.MaxAttempts = 1
	res := start(ctx, clk, p, d.deliver, backup)

	// Ten minutes of both down: several rounds, each a backup window then one delivery attempt.
	// The clock moves only while the Writer waits inside a round (two timers: its backoff and the
	// round's), so it never runs ahead of a round that is ending.
	for clk.Now().Sub(testStart) < 10*time.Minute {
		if err := clk.WaitForTimers(ctx, 2); err != nil {
			t.Fatal(err)
		}
		select {
		case r := <-res:
			t.Fatalf("returned %+v while both were down", r)
		default:
		}
		clk.Advance(time.Second)
	}
	if n := d.count(); n < 4 {
		t.Errorf("%d delivery attempts in 10 minutes of pause, want the rounds to keep trying the destination", n)
	}
	if len(f.keys()) != 0 {
		t.Fatal("an object was stored while S3 was failing")
	}

	f.setFailing(false)
	r := advanceUntil(t, ctx, clk, 2, time.Second, res)
	if r.delivered || r.err != nil {
		t.Fatalf("result %+v, want backed up", r)
	}
	if r.attempts != d.count() || int64(r.attempts) != lastAttempts.Load() {
		t.Errorf("attempts %d, destination called %d times, backup told %d", r.attempts, d.count(), lastAttempts.Load())
	}
	keys := f.keys()
	if len(keys) != 1 {
		t.Fatalf("objects %v, want 1", keys)
	}
	got, err := ReadErrorRecords(keys[0], f.object(keys[0]).body)
	if err != nil || len(got) != 1 || got[0].AttemptsMade != r.attempts {
		t.Errorf("stored %+v (%v), want one record with attemptsMade %d", got, err, r.attempts)
	}
	for i, a := range d.seen {
		if a != i+1 {
			t.Errorf("delivery attempt numbers %v, want 1, 2, 3, ...", d.seen)
			break
		}
	}
}

func TestPauseUntilDestinationRecovers(t *testing.T) {
	ctx := waitCtx(t)
	clk := clock.NewFake(testStart)
	d := &destination{err: errDestination}
	b := &backupTarget{err: errInjected}
	p := steady
	p.MaxElapsed = 5 * time.Second
	res := start(ctx, clk, p, d.deliver, b.backup)
	for clk.Now().Sub(testStart) < 3*time.Minute {
		if err := clk.WaitForTimers(ctx, 1); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Second)
	}
	d.set(nil)
	r := advanceUntil(t, ctx, clk, 1, time.Second, res)
	if !r.delivered || r.err != nil {
		t.Fatalf("result %+v, want delivered", r)
	}
	if len(b.calls) < 2 {
		t.Errorf("backup tried %d times during the pause, want several", len(b.calls))
	}
	// A backup that fails at once still waits out its round: no busy loop.
	if n := len(b.calls); n > 10 {
		t.Errorf("backup tried %d times in about 3 minutes, want rounds of at least %s", n, MinBackupRound)
	}
}

func TestPermanentFailureWithBackupDownRetriesOnlyTheBackup(t *testing.T) {
	ctx := waitCtx(t)
	clk := clock.NewFake(testStart)
	d := &destination{err: retry.Permanent(errors.New("413"))}
	b := &backupTarget{err: errInjected}
	res := start(ctx, clk, steady, d.deliver, b.backup)
	for clk.Now().Sub(testStart) < 5*time.Minute {
		if err := clk.WaitForTimers(ctx, 1); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Second)
	}
	if d.count() != 1 {
		t.Errorf("destination called %d times after a permanent failure, want 1", d.count())
	}
	b.mu.Lock()
	b.err = nil
	b.mu.Unlock()
	r := advanceUntil(t, ctx, clk, 1, time.Second, res)
	if r.delivered || r.attempts != 1 || r.err != nil {
		t.Errorf("result %+v, want backed up after 1 attempt", r)
	}
}

func TestCtxEndsThePause(t *testing.T) {
	ctx, cancel := context.WithCancel(waitCtx(t))
	clk := clock.NewFake(testStart)
	d := &destination{err: errDestination}
	b := &backupTarget{err: errInjected}
	p := steady
	p.MaxAttempts = 1
	res := start(ctx, clk, p, d.deliver, b.backup)
	if err := clk.WaitForTimers(waitCtx(t), 1); err != nil {
		t.Fatal(err)
	}
	cancel()
	r := <-res
	if r.delivered || !errors.Is(r.err, context.Canceled) {
		t.Errorf("result %+v, want not delivered and an error wrapping context.Canceled", r)
	}
}
