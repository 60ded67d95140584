// Package pipeline is the processing stage between reading a shard and delivering to the sinks,
// with Lambda's event-source-mapping failure policy around it: each batch goes through the
// configured handlers; a batch that fails is retried with backoff, split in half to isolate poison
// records (BisectBatchOnFunctionError), retried from the first failed record when the handler
// reports partial failures (ReportBatchItemFailures), and, once the retry count or the record age
// limit is reached, written to the dead-letter destination. What the handlers keep goes to the
// sinks; Firehose-contract ProcessingFailed records go to the error output.
//
// A batch is finished — and its done called, letting the shard's checkpoint pass it — only when
// every one of its records has been delivered, filtered, dropped, written to the error output or
// written as a dead letter. Dead letters and error records are retried until they are stored:
// nothing given up on is dropped.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/shardhose/shardhose/consumer"
	"github.com/shardhose/shardhose/dlq"
	"github.com/shardhose/shardhose/hooks"
	"github.com/shardhose/shardhose/internal/clock"
	"github.com/shardhose/shardhose/internal/outage"
	"github.com/shardhose/shardhose/internal/retry"
	"github.com/shardhose/shardhose/process"
	"github.com/shardhose/shardhose/record"
	"github.com/shardhose/shardhose/sinks"
	"github.com/shardhose/shardhose/sinks/backup"
)

// Policy is Lambda's failure policy for a Kinesis event source mapping.
type Policy struct {
	// MaximumRetryAttempts is how often a failed batch is retried; -1 retries until the records
	// reach MaximumRecordAge (or forever when that is unlimited too).
	MaximumRetryAttempts int
	// MaximumRecordAge sends records older than this (by arrival in the stream) to the dead letters
	// without another handler call; 0 means no limit.
	MaximumRecordAge time.Duration
	// BisectBatchOnFunctionError splits a failed batch in two and handles each half on its own;
	// a split does not use up a retry.
	BisectBatchOnFunctionError bool
	// ReportBatchItemFailures honours a handler's partial failure: the records before the first
	// failed one are done, and only the rest is retried.
	ReportBatchItemFailures bool
	// ParallelizationFactor handles up to this many batches of one shard at once (1 to 10); records
	// with the same partition key always stay in order.
	ParallelizationFactor int
	// HandlerTimeout bounds one handler call; a call that takes longer is a failure of the batch.
	HandlerTimeout time.Duration
	// Backoff is the wait between retries of one batch; the zero value means 1 s doubling to 1
	// minute with 20% jitter.
	Backoff retry.Policy
}

// Options are what the stage is made of. Handler and at least one sink are required; DeadLetters
// is required when the policy can give up (a finite retry count or record age), and ErrorOutput
// or DeadLetters when the handler can mark records ProcessingFailed (process.MayFailRecords).
type Options struct {
	Policy      Policy
	Handler     process.Handler
	Sinks       []sinks.Sink
	DeadLetters dlq.Destination
	// ErrorOutput stores ProcessingFailed records (Firehose's processing-failed/ error records).
	// When nil, such records are written as dead letters instead.
	ErrorOutput backup.Writer
	// StreamName, StreamARN and Region describe the source in dead letters.
	StreamName, StreamARN, Region string
	// FunctionARN names the handler in dead letters (Lambda's requestContext.functionArn).
	FunctionARN string
	// StoreRetry is the backoff for dead letters and error records, which are retried until
	// stored; the zero value means 0.5 s doubling to 30 s.
	StoreRetry retry.Policy
	Clock      clock.Clock
	Logger     *slog.Logger
	Hooks      hooks.Set

	// deadHealth makes outages of the dead-letter destination visible; New sets it, and every
	// shard's stage shares it.
	deadHealth *outage.Reporter
}

// HandlerCalled and DeadLettered are the hooks of the same names (kept here for callers that
// named them in this package).
type (
	HandlerCalled = hooks.HandlerCalled
	DeadLettered  = hooks.DeadLettered
)

// Unfinished is told of each lane job (a batch, or its part in one lane) left unacknowledged:
// neither all delivered nor all stored. Its records stay after the checkpoint and are read again
// by the shard's next reader.
type Unfinished interface {
	OnUnfinished(shardID string, records int, err error)
}

// defaultBackoff is the wait between retries of a failed batch when the policy names none.
var defaultBackoff = retry.Policy{Initial: time.Second, Max: time.Minute, Multiplier: 2, Jitter: 0.2}

// defaultStoreRetry is how dead letters and error records are retried: until stored.
var defaultStoreRetry = retry.Policy{Initial: 500 * time.Millisecond, Max: 30 * time.Second, Multiplier: 2, Jitter: 0.2}

// New checks the options and returns the factory the consumer calls for each shard it reads.
func New(opts Options) (consumer.PipelineFactory, error) {
	if opts.Handler == nil {
		return nil, errors.New("pipeline: a handler is required")
	}
	if len(opts.Sinks) == 0 {
		return nil, errors.New("pipeline: at least one sink is required")
	}
	p := opts.Policy
	if opts.DeadLetters == nil && (p.MaximumRetryAttempts >= 0 || p.MaximumRecordAge > 0) {
		return nil, errors.New("pipeline: a finite maximum_retry_attempts or maximum_record_age_in_seconds gives records up, so a dead-letter destination is required")
	}
	if opts.ErrorOutput == nil && opts.DeadLetters == nil && process.MayFailRecords(opts.Handler) {
		// Such a record could never be stored, so its batch could never finish.
		return nil, fmt.Errorf("pipeline: handler %s can mark records ProcessingFailed, so ErrorOutput or DeadLetters is required", opts.Handler.Name())
	}
	// Every result is checked, whether or not the handler came through process.Chain: a result of
	// the wrong shape fails the batch instead of acknowledging records nobody handled.
	opts.Handler = process.Checked(opts.Handler)
	if p.ParallelizationFactor < 1 {
		opts.Policy.ParallelizationFactor = 1
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real()
	}
	if opts.Policy.Backoff == (retry.Policy{}) {
		opts.Policy.Backoff = defaultBackoff
	}
	if opts.StoreRetry == (retry.Policy{}) {
		opts.StoreRetry = defaultStoreRetry
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.DeadLetters != nil {
		opts.deadHealth = outage.New(outage.Options{Dependency: "dead_letter", Resource: opts.DeadLetters.Name(), Logger: opts.Logger, Clock: opts.Clock})
	}
	return func(ctx context.Context, shardID string) consumer.Pipeline { return newShard(ctx, opts, shardID) }, nil
}

// shardStage is the stage of one shard: ParallelizationFactor lanes, each handling its batches in
// order. Records are assigned to lanes by partition key.
type shardStage struct {
	opts    Options
	shardID string
	log     *slog.Logger
	lanes   []chan laneJob
	ctx     context.Context // ends when the consumer is done with the shard
	// passThrough is set when the handler is process.PassThrough: batches skip the handler call.
	passThrough bool
}

type laneJob struct {
	records []record.Record
	part    func() // called when this part of the batch is finished
}

// laneQueue bounds the batches waiting per lane: Handle blocks beyond it (backpressure).
const laneQueue = 2

func newShard(ctx context.Context, opts Options, shardID string) *shardStage {
	s := &shardStage{opts: opts, shardID: shardID, log: opts.Logger.With("shard", shardID), ctx: ctx,
		passThrough: process.IsPassThrough(opts.Handler)}
	n := opts.Policy.ParallelizationFactor
	s.lanes = make([]chan laneJob, n)
	for i := range s.lanes {
		ch := make(chan laneJob, laneQueue)
		s.lanes[i] = ch
		go s.runLane(ch)
	}
	return s
}

// Handle splits the batch by lane and queues each part; done is called when all parts finish.
func (s *shardStage) Handle(ctx context.Context, batch []record.Record, done func()) error {
	parts := make([][]record.Record, len(s.lanes))
	if len(s.lanes) == 1 {
		parts[0] = batch
	} else {
		for _, r := range batch {
			i := lane(r.PartitionKey, len(s.lanes))
			parts[i] = append(parts[i], r)
		}
	}
	var left atomic.Int32
	for _, p := range parts {
		if len(p) > 0 {
			left.Add(1)
		}
	}
	if left.Load() == 0 {
		done()
		return nil
	}
	part := func() {
		if left.Add(-1) == 0 {
			done()
		}
	}
	for i, p := range parts {
		if len(p) == 0 {
			continue
		}
		select {
		case s.lanes[i] <- laneJob{records: p, part: part}:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Close lets the lanes finish the batches already queued, then stops them. Work still under way
// when the shard's context ends is abandoned, unacknowledged.
func (s *shardStage) Close() {
	for _, ch := range s.lanes {
		close(ch)
	}
}

func lane(key string, n int) int {
	h := fnv.New32a()
	h.Write([]byte(key))
	return int(h.Sum32() % uint32(n))
}

func (s *shardStage) runLane(ch chan laneJob) {
	for job := range ch {
		if s.ctx.Err() != nil {
			continue // stopping: leave the batch unacknowledged
		}
		c := newCompletion(job.part)
		if err := s.process(s.ctx, job.records, 0, 0, c); err != nil {
			c.fail()
			if s.ctx.Err() != nil {
				s.log.Warn("batch left unfinished: the shard is stopping; its records will be read again", "records", len(job.records), "error", err)
			} else {
				s.log.Error("batch left unfinished: its records could be neither delivered nor stored; the checkpoint stays before them and they will be read again", "records", len(job.records), "error", err)
			}
			hooks.Each(s.opts.Hooks, func(h Unfinished) { h.OnUnfinished(s.shardID, len(job.records), err) })
		}
		c.finish()
	}
}

// completion counts the outstanding pieces of one lane job (sink writes still unacknowledged, and
// the processing itself) and calls fire when the last one finishes, unless one failed.
type completion struct {
	pending atomic.Int32
	failed  atomic.Bool
	fire    func()
}

func newCompletion(fire func()) *completion {
	c := &completion{fire: fire}
	c.pending.Store(1) // the processing itself, released by its final finish
	return c
}

func (c *completion) add() { c.pending.Add(1) }

func (c *completion) fail() { c.failed.Store(true) }

func (c *completion) finish() {
	if c.pending.Add(-1) == 0 && !c.failed.Load() {
		c.fire()
	}
}

// process takes records to the end: handler calls, retries, splits, routing of the outcomes and
// dead letters. retries is how many retries these records have used, calls how many handler calls
// included them. It returns nil only when every record is delivered (or handed to the sinks, whose
// acknowledgements c counts), filtered, dropped or stored; any other outcome is an error (ctx
// ended, a dead letter or error record given up on, a sink that refused), and the caller must not
// acknowledge the records.
func (s *shardStage) process(ctx context.Context, recs []record.Record, retries, calls int, c *completion) error {
	p := s.opts.Policy
	var lastErr error
	invocationFailures := 0
	recs, err := s.splitCorrupt(ctx, recs, c)
	if err != nil {
		return err
	}
	for len(recs) > 0 {
		if expired := s.expiredPrefix(recs); expired > 0 {
			if err := s.deadLetter(ctx, recs[:expired], dlq.RecordAgeExceeded, calls, lastErr); err != nil {
				return err
			}
			recs = recs[expired:]
			continue
		}

		if s.passThrough {
			return s.passOn(ctx, recs, c)
		}
		outs, err := s.call(ctx, recs)
		calls++
		if err == nil {
			return s.route(ctx, recs, outs, c)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		lastErr = err

		var notInvoked *process.InvocationError
		if errors.As(err, &notInvoked) {
			// The handler never ran (throttled, unreachable): as in Lambda, this retries until the
			// records expire, and uses up no retry and splits nothing.
			invocationFailures++
			wait := p.Backoff.Delay(invocationFailures)
			s.log.Warn("handler could not be invoked; retrying", "records", len(recs), "wait", wait, "error", err)
			if err := clock.Sleep(ctx, s.opts.Clock, wait); err != nil {
				return err
			}
			continue
		}
		invocationFailures = 0

		var pf *process.PartialFailure
		if p.ReportBatchItemFailures && errors.As(err, &pf) && pf.FirstFailed > 0 && pf.FirstFailed < len(recs) {
			// The records before the first failed one are done; only the rest is retried. With
			// bisect on too, this is Lambda's "split at the returned sequence number".
			if err := s.route(ctx, recs[:pf.FirstFailed], pf.Outputs, c); err != nil {
				return err
			}
			recs = recs[pf.FirstFailed:]
		} else if p.BisectBatchOnFunctionError && len(recs) > 1 {
			// Split, without using up a retry: the first half is finished before the second starts.
			mid := len(recs) / 2
			s.log.Debug("handler failed; splitting the batch", "records", len(recs), "error", err)
			hooks.Each(s.opts.Hooks, func(h hooks.BatchSplit) { h.OnBatchSplit(s.shardID, len(recs)) })
			if err := s.process(ctx, recs[:mid], retries, calls, c); err != nil {
				return err
			}
			recs = recs[mid:]
			continue
		}

		if p.MaximumRetryAttempts >= 0 && retries >= p.MaximumRetryAttempts {
			return s.deadLetter(ctx, recs, dlq.RetryAttemptsExhausted, calls, lastErr)
		}
		retries++
		wait := p.Backoff.Delay(retries)
		hooks.Each(s.opts.Hooks, func(h hooks.BatchRetried) { h.OnBatchRetry(s.shardID, len(recs), retries) })
		s.log.Info("handler failed; retrying", "records", len(recs), "retry", retries, "wait", wait, "error", err)
		if err := clock.Sleep(ctx, s.opts.Clock, wait); err != nil {
			return err
		}
	}
	return nil
}

// splitCorrupt sends records that could not be de-aggregated to the dead letters (or, with none
// configured, on to the sinks whole) and returns the others. An error means the corrupt records
// were neither stored nor handed to the sinks: nothing of recs may be acknowledged.
func (s *shardStage) splitCorrupt(ctx context.Context, recs []record.Record, c *completion) ([]record.Record, error) {
	var corrupt []record.Record
	for _, r := range recs {
		if r.DeaggregationError != "" {
			corrupt = append(corrupt, r)
		}
	}
	if len(corrupt) == 0 {
		return recs, nil
	}
	if s.opts.DeadLetters != nil {
		if err := s.deadLetter(ctx, corrupt, dlq.DeaggregationFailed, 0, errors.New(corrupt[0].DeaggregationError)); err != nil {
			return nil, err
		}
	} else {
		s.log.Warn("KPL aggregates that could not be split are delivered whole: configure dead_letter to keep them apart", "records", len(corrupt))
		if err := s.toSinks(ctx, corrupt, c); err != nil {
			return nil, err
		}
	}
	rest := make([]record.Record, 0, len(recs)-len(corrupt))
	for _, r := range recs {
		if r.DeaggregationError == "" {
			rest = append(rest, r)
		}
	}
	return rest, nil
}

// toSinks hands records to every sink, c counting their acknowledgement. An error (a sink
// refused them) marks c failed: the records were not delivered.
func (s *shardStage) toSinks(ctx context.Context, recs []record.Record, c *completion) error {
	c.add()
	if err := consumer.WriteToSinks(ctx, s.opts.Sinks, recs, c.finish); err != nil {
		c.fail()
		return err
	}
	return nil
}

// expiredPrefix counts the leading records older than the maximum record age.
func (s *shardStage) expiredPrefix(recs []record.Record) int {
	maxAge := s.opts.Policy.MaximumRecordAge
	if maxAge <= 0 {
		return 0
	}
	now := s.opts.Clock.Now()
	n := 0
	for n < len(recs) && now.Sub(recs[n].ApproximateArrivalTimestamp) > maxAge {
		n++
	}
	return n
}

// call runs the handler once, bounded by the handler timeout, turning a panic into an error.
func (s *shardStage) call(ctx context.Context, recs []record.Record) ([]process.Output, error) {
	callCtx, cancel := ctx, context.CancelFunc(func() {})
	if t := s.opts.Policy.HandlerTimeout; t > 0 {
		callCtx, cancel = context.WithTimeout(ctx, t)
	}
	defer cancel()
	type result struct {
		outs []process.Output
		err  error
	}
	ch := make(chan result, 1)
	start := s.opts.Clock.Now()
	go func() {
		defer func() {
			if r := recover(); r != nil {
				ch <- result{err: fmt.Errorf("handler %s panicked: %v", s.opts.Handler.Name(), r)}
			}
		}()
		outs, err := s.opts.Handler.Handle(callCtx, recs)
		ch <- result{outs, err}
	}()
	var res result
	select {
	case res = <-ch:
	case <-callCtx.Done():
		if ctx.Err() != nil {
			res = result{err: ctx.Err()}
		} else {
			res = result{err: fmt.Errorf("handler %s timed out after %s", s.opts.Handler.Name(), s.opts.Policy.HandlerTimeout)}
		}
	}
	took := s.opts.Clock.Now().Sub(start)
	s.log.Debug("handler called", "records", len(recs), "took", took, "error", res.err)
	hooks.Each(s.opts.Hooks, func(h hooks.HandlerCalled) { h.OnHandlerCall(s.shardID, len(recs), took, res.err) })
	return res.outs, res.err
}

// passOn is a call of the pass-through handler and the routing of its outcome, without the call
// itself: the handler cannot fail and delivers every record unchanged, so the batch goes to the
// sinks as it is, with no goroutine, timeout or Outputs per batch. Hooks and the log see what they
// see with a call: one handler call without error, every record delivered.
func (s *shardStage) passOn(ctx context.Context, recs []record.Record, c *completion) error {
	start := s.opts.Clock.Now()
	err := ctx.Err() // what the pass-through handler returns
	took := s.opts.Clock.Now().Sub(start)
	s.log.Debug("handler called", "records", len(recs), "took", took, "error", err)
	hooks.Each(s.opts.Hooks, func(h hooks.HandlerCalled) { h.OnHandlerCall(s.shardID, len(recs), took, err) })
	if err != nil {
		return err
	}
	hooks.Each(s.opts.Hooks, func(h hooks.Processed) { h.OnProcessed(s.shardID, len(recs), 0, 0, 0) })
	return s.toSinks(ctx, recs, c)
}

// route sends each outcome where it belongs: Deliver to the sinks, ProcessingFailed to the error
// output; Filtered and Dropped records are done.
func (s *shardStage) route(ctx context.Context, recs []record.Record, outs []process.Output, c *completion) error {
	delivered := 0
	for _, o := range outs {
		if o.Outcome == process.Deliver {
			delivered++
		}
	}
	deliver := make([]record.Record, 0, delivered) // sized once: a batch can be 10,000 records
	var failed []record.Record
	var reasons []string
	filtered, dropped := 0, 0
	for i, o := range outs {
		switch o.Outcome {
		case process.Deliver:
			deliver = append(deliver, o.Record)
		case process.ProcessingFailed:
			failed = append(failed, recs[i])
			reasons = append(reasons, o.Err)
		case process.Filtered:
			filtered++
		case process.Dropped:
			dropped++
		}
	}
	hooks.Each(s.opts.Hooks, func(h hooks.Processed) { h.OnProcessed(s.shardID, len(deliver), filtered, dropped, len(failed)) })
	if len(failed) > 0 {
		if err := s.processingFailed(ctx, failed, reasons); err != nil {
			return err
		}
	}
	if len(deliver) > 0 {
		return s.toSinks(ctx, deliver, c)
	}
	return nil
}

// processingFailed writes Firehose processing-failed error records, retrying until stored.
func (s *shardStage) processingFailed(ctx context.Context, recs []record.Record, reasons []string) error {
	if s.opts.ErrorOutput == nil {
		if s.opts.DeadLetters == nil {
			// New refuses this for handlers that say they can fail records; a handler of a
			// program's own may not have said so.
			return fmt.Errorf("handler %s marked %d records ProcessingFailed, and there is neither an error output nor a dead-letter destination to store them (a handler that can do this should implement process.RecordFailer, so that pipeline.New refuses such options)",
				s.opts.Handler.Name(), len(recs))
		}
		return s.deadLetter(ctx, recs, dlq.RetryAttemptsExhausted, 1, fmt.Errorf("processing failed: %s", reasons[0]))
	}
	now := s.opts.Clock.Now().UnixMilli()
	errs := make([]backup.ErrorRecord, len(recs))
	for i, r := range recs {
		errs[i] = backup.ErrorRecord{
			AttemptsMade:           1,
			ArrivalTimestamp:       r.ApproximateArrivalTimestamp.UnixMilli(),
			ErrorCode:              "Lambda.ProcessingFailedStatus",
			ErrorMessage:           reasons[i],
			AttemptEndingTimestamp: now,
			RawData:                r.Data,
			Extra:                  map[string]any{"lambdaArn": s.opts.FunctionARN},
		}
	}
	_, err := retry.Do(ctx, s.opts.Clock, s.opts.StoreRetry, func(ctx context.Context, _ int) error {
		return s.opts.ErrorOutput.WriteErrors(ctx, "processing-failed/", errs)
	}, func(attempt int, err error, wait time.Duration) {
		s.log.Warn("writing processing-failed records failed; retrying", "records", len(recs), "attempt", attempt, "error", err)
	})
	return err
}

// deadLetter writes records as one dead letter, retrying until it is stored.
func (s *shardStage) deadLetter(ctx context.Context, recs []record.Record, cond dlq.Condition, calls int, cause error) error {
	if s.opts.DeadLetters == nil {
		return fmt.Errorf("records given up on (%s) with no dead-letter destination", cond)
	}
	msg := ""
	if cause != nil {
		msg = cause.Error()
	}
	f := dlq.Failure{
		Condition:     cond,
		StreamName:    s.opts.StreamName,
		StreamARN:     s.opts.StreamARN,
		ShardID:       s.shardID,
		Region:        s.opts.Region,
		Records:       recs,
		Attempts:      calls,
		ErrorMessage:  msg,
		FunctionError: "Unhandled",
		FunctionARN:   s.opts.FunctionARN,
		Time:          s.opts.Clock.Now(),
	}
	if cond == dlq.RecordAgeExceeded && cause == nil {
		f.FunctionError = ""
	}
	hooks.Each(s.opts.Hooks, func(h hooks.GaveUp) { h.OnGiveUp(s.shardID, string(cond), len(recs)) })
	_, err := retry.Do(ctx, s.opts.Clock, s.opts.StoreRetry, s.opts.deadHealth.Track(func(ctx context.Context, _ int) error {
		return s.opts.DeadLetters.Send(ctx, f)
	}, "shard", s.shardID), func(attempt int, err error, wait time.Duration) {
		hooks.Each(s.opts.Hooks, func(h hooks.DeadLetterFailed) { h.OnDeadLetterFailed(s.shardID, string(cond), len(recs), err) })
		s.log.Debug("writing a dead letter failed; retrying (the checkpoint waits for it)", "records", len(recs), "attempt", attempt, "sdk_attempts", outage.Attempts(err), "error", err)
	})
	if err != nil {
		return err
	}
	s.log.Warn("records written as a dead letter", "condition", string(cond), "records", len(recs), "first", recs[0].Position().String(), "attempts", calls, "error", msg)
	hooks.Each(s.opts.Hooks, func(h hooks.DeadLettered) { h.OnDeadLetter(s.shardID, string(cond), len(recs)) })
	return nil
}
