// Package produce sends records to a Kinesis data stream with PutRecords: the engine behind
// `shardhose produce`, a local, scriptable stand-in for the Kinesis Data Generator.
//
// Records come from a Source (a file of JSON records, generated e-commerce events, and later
// Kinesis Data Generator templates). Run packs them the way the Kinesis Data Generator does, at
// most 500 records and 5 MiB per PutRecords call, with a random 10-digit partition key unless
// the Source sets one. It paces them at a constant rate on an injected clock, and after a
// partial failure resends only the entries Kinesis rejected.
//
// Delivery is at least once: a call that failed as a whole may still have written some or all
// of its records, and Run sends it again. Run makes one PutRecords call at a time and does not
// start on the next batch until every record of the current one was accepted, so batches reach
// the stream in Source order. Within a batch, a rejected record is resent after later records of
// the same call were already written, so per-partition-key order holds only for runs without
// partial failures (Stats.Failed == 0).
package produce

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"

	"github.com/shardhose/shardhose/internal/clock"
	"github.com/shardhose/shardhose/internal/retry"
)

// Kinesis limits that Run respects (see the Kinesis PutRecords documentation).
const (
	// MaxRecordsPerCall is the most records one PutRecords call may carry.
	MaxRecordsPerCall = 500
	// MaxBytesPerCall is the most bytes of data plus partition keys one PutRecords call may carry.
	MaxBytesPerCall = 5 << 20
	// MaxRecordBytes is the most bytes of data plus partition key one record may have. Run
	// refuses a larger record rather than sending a call Kinesis would reject as a whole.
	MaxRecordBytes = 1 << 20
	// MaxPartitionKeyLen is the longest partition key Kinesis accepts, in Unicode characters.
	MaxPartitionKeyLen = 256
)

// PutRecordsAPI is the part of the Kinesis client Run uses; *kinesis.Client implements it. It must
// be safe to call from Run's goroutine while other goroutines use the same client.
type PutRecordsAPI interface {
	PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error)
}

var _ PutRecordsAPI = (*kinesis.Client)(nil)

// Options configures Run. Client, Source and Stream or StreamARN are required; every other field
// has a usable zero value. Run reads Options once and keeps nothing after it returns.
type Options struct {
	// Stream is the name of the stream to write to.
	Stream string
	// StreamARN is the stream's ARN. Either Stream or StreamARN is required; when both are set
	// both are sent, and Kinesis requires them to name the same stream.
	StreamARN string
	// Client sends the PutRecords calls.
	Client PutRecordsAPI
	// Source yields the records. Run calls its Next from Run's goroutine only.
	Source Source
	// Count is how many records to send. 0 means no limit: Run sends until the Source returns
	// io.EOF or ctx ends. FileSource and GeneratedSource never run out, so give them a Count
	// (FileSource.Len is one pass over its file).
	Count int
	// Rate is the target in records per second, kept with a token bucket on Clock that starts
	// with one token and holds at most one second's worth; 0 sends as fast as PutRecords
	// accepts. At a set rate Run sends at most every 100 ms, so each call carries about a
	// tenth of a second's records (or one record when Rate is below 10).
	Rate float64
	// Schedule, if set, varies the target rate over the run (a Ramp, a Periodic wave) and
	// replaces Rate, which must then be 0. It is paced like Rate.
	Schedule Schedule
	// Duration, if positive, stops the run once that much time has passed on Clock: Run reads
	// no record after it and returns nil once the records read were accepted. With Count, the
	// run ends at whichever comes first.
	Duration time.Duration
	// Clock paces the rate limit and the retry backoff; nil means the system clock.
	Clock clock.Clock
	// Logger receives retries (Warn for failed calls, Debug for rejected entries); nil discards.
	Logger *slog.Logger
	// OnSent, if set, is called after each PutRecords call that got records accepted, with how
	// many (n > 0). It runs on Run's goroutine and must return quickly.
	OnSent func(n int)
	// OnAccepted, if set, is called for every record Kinesis accepted, with its position in
	// Source order (from 0) and the time the accepting call returned, on Clock. It runs on Run's
	// goroutine and must return quickly.
	OnAccepted func(index int, at time.Time)
	// OnProgress, if set, is called after every PutRecords call, failed ones included, with the
	// statistics so far (Elapsed up to date). It runs on Run's goroutine and must return quickly.
	OnProgress func(Stats)
	// Retry is the backoff between attempts, both after a call failed as a whole and before
	// resending the entries a partial failure rejected. Its MaxElapsed bounds how long one batch
	// may take to be fully accepted. The zero value means DefaultRetry().
	Retry retry.Policy
}

// DefaultRetry is the backoff Run uses when Options.Retry is zero: 100 ms doubling to at most
// 5 s, with 20% jitter, giving up on a batch that Kinesis has not fully accepted after 2 minutes.
// The Kinesis client retries throttling and transport errors itself before Run sees them.
func DefaultRetry() retry.Policy {
	return retry.Policy{
		Initial:    100 * time.Millisecond,
		Max:        5 * time.Second,
		Multiplier: 2,
		Jitter:     0.2,
		MaxElapsed: 2 * time.Minute,
	}
}

// Stats reports what Run did. Run returns it with every result, errors included, so a stopped
// run still reports its progress.
type Stats struct {
	// Sent is how many records Kinesis accepted.
	Sent int
	// Failed counts entries that a partial failure rejected and Run queued for resending; an
	// entry rejected twice counts twice.
	Failed int
	// Throttled counts the entries Kinesis rejected for exceeding the shards' throughput
	// (ProvisionedThroughputExceededException), and the entries of calls that failed as a whole
	// with a throttling error; they are part of Failed or CallErrors and were resent.
	Throttled int
	// Calls is how many PutRecords calls Run made, failed ones included.
	Calls int
	// CallErrors counts the PutRecords calls that failed as a whole (after the client's own
	// retries); their records were sent again.
	CallErrors int
	// Bytes is the data plus partition key bytes of the accepted records.
	Bytes int64
	// Elapsed is the time from Run's start to its return, on Options.Clock.
	Elapsed time.Duration
}

// RecordError reports one record that Run refused before sending it, or that Kinesis rejected
// with an error code no retry can fix. Run stops at the first one.
type RecordError struct {
	// Stream is the stream's name, or its ARN when no name was given.
	Stream string
	// Index is the record's position in the order Run read it from the Source, counting from 0.
	Index int
	// Code is the error code Kinesis returned for the record; "" when Run refused it itself.
	Code string
	// Err says what is wrong; it wraps ErrRecordTooLarge or ErrPartitionKey when Run refused
	// the record.
	Err error
}

func (e *RecordError) Error() string {
	if e.Code != "" {
		return fmt.Sprintf("put record %d to stream %s: rejected with %s: %v", e.Index, e.Stream, e.Code, e.Err)
	}
	return fmt.Sprintf("put record %d to stream %s: %v", e.Index, e.Stream, e.Err)
}

func (e *RecordError) Unwrap() error { return e.Err }

var (
	// ErrRecordTooLarge is wrapped by the error for a record over MaxRecordBytes.
	ErrRecordTooLarge = errors.New("record too large")
	// ErrPartitionKey is wrapped by the error for a partition key longer than MaxPartitionKeyLen.
	ErrPartitionKey = errors.New("invalid partition key")
)

// rateTick is the shortest wait of the rate limiter: at a set rate, records are sent in batches
// at most this often instead of one call per record.
const rateTick = 100 * time.Millisecond

// Run reads records from opts.Source and puts them into the stream until it has sent opts.Count
// records, the Source returns io.EOF, ctx ends, or an error no retry can fix. A nil error means
// every record read was accepted. Records already read but not yet accepted when Run stops are
// not sent. Errors name the stream; when ctx ended, the error wraps ctx.Err().
func Run(ctx context.Context, opts Options) (Stats, error) {
	if err := opts.validate(); err != nil {
		return Stats{}, err
	}
	p := &producer{
		opts:   opts,
		clk:    opts.Clock,
		log:    opts.Logger,
		policy: opts.Retry,
		target: opts.Stream,
		keys:   rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
	}
	if p.clk == nil {
		p.clk = clock.Real()
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.policy == (retry.Policy{}) {
		p.policy = DefaultRetry()
	}
	if p.target == "" {
		p.target = opts.StreamARN
	}
	p.start = p.clk.Now()
	err := p.run(ctx)
	p.stats.Elapsed = p.clk.Now().Sub(p.start)
	return p.stats, err
}

func (o Options) validate() error {
	var errs []error
	if o.Stream == "" && o.StreamARN == "" {
		errs = append(errs, errors.New("stream: set the stream's name or its ARN"))
	}
	if o.Client == nil {
		errs = append(errs, errors.New("client: a Kinesis client is required"))
	}
	if o.Source == nil {
		errs = append(errs, errors.New("source: a record source is required"))
	}
	if o.Count < 0 {
		errs = append(errs, fmt.Errorf("count: %d is negative; use 0 for no limit", o.Count))
	}
	if o.Rate < 0 || math.IsNaN(o.Rate) || math.IsInf(o.Rate, 0) {
		errs = append(errs, fmt.Errorf("rate: %v records/s is not allowed; use a positive number, or 0 for as fast as possible", o.Rate))
	}
	if o.Schedule != nil && o.Rate != 0 {
		errs = append(errs, fmt.Errorf("rate: %v records/s is set together with a schedule; use one of them", o.Rate))
	}
	if o.Duration < 0 {
		errs = append(errs, fmt.Errorf("duration: %v is negative; use 0 for no limit", o.Duration))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("produce: invalid options: %w", err)
	}
	return nil
}

type producer struct {
	opts   Options
	clk    clock.Clock
	log    *slog.Logger
	policy retry.Policy
	target string     // stream name, or ARN when no name was given: for messages
	keys   *rand.Rand // random partition keys for entries that have none
	stats  Stats
	start  time.Time
}

// pending is a record read from the Source and checked, waiting to be accepted.
type pending struct {
	index int // position in Source order, from 0
	data  []byte
	key   string
	size  int // len(data) + len(key): what counts against the Kinesis limits
}

func (p *producer) run(ctx context.Context) error {
	var lim *limiter
	switch {
	case p.opts.Schedule != nil:
		lim = newLimiter(p.clk, p.opts.Schedule)
	case p.opts.Rate > 0:
		lim = newLimiter(p.clk, Constant(p.opts.Rate))
	}
	batch := make([]pending, 0, MaxRecordsPerCall)
	batchBytes := 0
	var held *pending // read from the Source but not yet in a batch
	read := 0         // records read from the Source
	exhausted := false
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("produce to stream %s: stopped after %d records: %w", p.target, p.stats.Sent, err)
		}
		var stop error
		throttled := false
		for len(batch) < MaxRecordsPerCall {
			if held == nil {
				if exhausted || (p.opts.Count > 0 && read >= p.opts.Count) ||
					(p.opts.Duration > 0 && p.clk.Now().Sub(p.start) >= p.opts.Duration) {
					exhausted = true
					break
				}
				e, err := p.opts.Source.Next()
				if errors.Is(err, io.EOF) {
					exhausted = true
					break
				}
				if err != nil {
					stop = fmt.Errorf("produce to stream %s: read record %d from source: %w", p.target, read, err)
					break
				}
				rec, err := p.prepare(read, e)
				read++
				if err != nil {
					stop = err
					break
				}
				held = &rec
			}
			if batchBytes+held.size > MaxBytesPerCall {
				break
			}
			if lim != nil && !lim.take() {
				throttled = true
				break
			}
			batch = append(batch, *held)
			batchBytes += held.size
			held = nil
		}
		if len(batch) > 0 {
			if err := p.send(ctx, batch); err != nil {
				return err
			}
			batch = batch[:0]
			batchBytes = 0
		}
		if stop != nil {
			return stop
		}
		if exhausted && held == nil {
			return nil
		}
		if throttled {
			if err := lim.wait(ctx); err != nil {
				return fmt.Errorf("produce to stream %s: stopped after %d records: %w", p.target, p.stats.Sent, err)
			}
		}
	}
}

// prepare gives e its partition key and checks it against the Kinesis limits.
func (p *producer) prepare(index int, e Entry) (pending, error) {
	key := e.PartitionKey
	if key == "" {
		key = randomPartitionKey(p.keys)
	}
	if n := utf8.RuneCountInString(key); n > MaxPartitionKeyLen {
		return pending{}, &RecordError{Stream: p.target, Index: index,
			Err: fmt.Errorf("%w: %d characters, Kinesis allows at most %d", ErrPartitionKey, n, MaxPartitionKeyLen)}
	}
	size := len(e.Data) + len(key)
	if size > MaxRecordBytes {
		return pending{}, &RecordError{Stream: p.target, Index: index,
			Err: fmt.Errorf("%w: %d bytes of data and partition key, Kinesis allows at most %d (1 MiB)", ErrRecordTooLarge, size, MaxRecordBytes)}
	}
	data := e.Data
	if data == nil {
		data = []byte{} // Kinesis takes an empty record; the SDK refuses a missing one
	}
	return pending{index: index, data: data, key: key, size: size}, nil
}

// send puts batch into the stream, resending only the rejected entries, in their order, until all
// were accepted, the retry policy gives up, or an error no retry can fix.
func (p *producer) send(ctx context.Context, batch []pending) error {
	remaining := batch
	_, err := retry.Do(ctx, p.clk, p.policy,
		func(ctx context.Context, _ int) error {
			left, err := p.attempt(ctx, remaining)
			remaining = left
			return err
		},
		func(attempt int, err error, wait time.Duration) {
			var pf *partialFailure
			if errors.As(err, &pf) {
				p.log.Debug("kinesis rejected records; resending them", "stream", p.target,
					"rejected", pf.rejected, "of", pf.of, "codes", pf.codeList(), "attempt", attempt, "wait", wait)
				return
			}
			p.log.Warn("PutRecords failed; retrying", "stream", p.target, "records", len(remaining),
				"attempt", attempt, "wait", wait, "err", err)
		})
	switch {
	case err == nil:
		return nil
	case retry.IsPermanent(err):
		return err
	case ctx.Err() != nil:
		return fmt.Errorf("produce to stream %s: stopped with %d of %d records of a batch not accepted: %w",
			p.target, len(remaining), len(batch), err)
	}
	return fmt.Errorf("produce to stream %s: gave up with %d of %d records of a batch not accepted: %w",
		p.target, len(remaining), len(batch), err)
}

// attempt makes one PutRecords call with recs and returns the records still to send: none on
// success, the rejected ones after a partial failure, all of them after a failed call.
func (p *producer) attempt(ctx context.Context, recs []pending) ([]pending, error) {
	entries := make([]types.PutRecordsRequestEntry, len(recs))
	for i, r := range recs {
		entries[i] = types.PutRecordsRequestEntry{Data: r.data, PartitionKey: aws.String(r.key)}
	}
	in := &kinesis.PutRecordsInput{Records: entries}
	if p.opts.Stream != "" {
		in.StreamName = aws.String(p.opts.Stream)
	}
	if p.opts.StreamARN != "" {
		in.StreamARN = aws.String(p.opts.StreamARN)
	}
	p.stats.Calls++
	defer p.progress()
	out, err := p.opts.Client.PutRecords(ctx, in)
	if err != nil {
		p.stats.CallErrors++
		if throttlingError(err) {
			p.stats.Throttled += len(recs)
		}
		return recs, p.callError(len(recs), err)
	}
	if len(out.Records) != len(recs) {
		// Kinesis answers one result per entry, in order. Without that there is no telling which
		// records were written, and resending all of them would duplicate some.
		return recs, retry.Permanent(fmt.Errorf("put %d records to stream %s: the response has %d results, so which records were written is unknown",
			len(recs), p.target, len(out.Records)))
	}
	var (
		rejected []pending
		accepted int
		bytes    int64
		fatal    error
		codes    = map[string]int{}
	)
	now := p.clk.Now()
	for i, res := range out.Records {
		code := aws.ToString(res.ErrorCode)
		if code == "" {
			accepted++
			bytes += int64(recs[i].size)
			if p.opts.OnAccepted != nil {
				p.opts.OnAccepted(recs[i].index, now)
			}
			continue
		}
		if !retryableEntryCode(code) && fatal == nil {
			fatal = &RecordError{Stream: p.target, Index: recs[i].index, Code: code, Err: errors.New(aws.ToString(res.ErrorMessage))}
		}
		rejected = append(rejected, recs[i])
		codes[code]++
	}
	p.stats.Sent += accepted
	p.stats.Bytes += bytes
	if accepted > 0 && p.opts.OnSent != nil {
		p.opts.OnSent(accepted)
	}
	if fatal != nil {
		return rejected, retry.Permanent(fatal)
	}
	if len(rejected) == 0 {
		return nil, nil
	}
	p.stats.Failed += len(rejected)
	p.stats.Throttled += codes["ProvisionedThroughputExceededException"]
	return rejected, &partialFailure{stream: p.target, rejected: len(rejected), of: len(recs), codes: codes}
}

// progress hands the statistics so far to OnProgress.
func (p *producer) progress() {
	if p.opts.OnProgress != nil {
		st := p.stats
		st.Elapsed = p.clk.Now().Sub(p.start)
		p.opts.OnProgress(st)
	}
}

// throttlingError reports whether a failed call was refused for exceeding a limit.
func throttlingError(err error) bool {
	var api smithy.APIError
	if !errors.As(err, &api) {
		return false
	}
	switch api.ErrorCode() {
	case "ProvisionedThroughputExceededException", "ThrottlingException", "LimitExceededException", "KMSThrottlingException":
		return true
	}
	return false
}

// callError describes a failed PutRecords call and marks it Permanent when no retry can fix it.
func (p *producer) callError(n int, err error) error {
	var api smithy.APIError
	if errors.As(err, &api) && api.ErrorCode() == "ResourceNotFoundException" {
		return retry.Permanent(fmt.Errorf("put %d records to stream %s: the stream does not exist (check its name, the region and the endpoint): %w", n, p.target, err))
	}
	err = fmt.Errorf("put %d records to stream %s: %w", n, p.target, err)
	if permanentCallError(err) {
		return retry.Permanent(err)
	}
	return err
}

// permanentCallError reports whether a failed PutRecords call must not be retried: the stream
// does not exist, the request is invalid, the caller is not allowed, or the stream's KMS key is
// unusable. Everything else (throttling, KMS throttling, InternalFailure, transport errors,
// unknown codes) is retried, bounded by the retry policy.
func permanentCallError(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var invalid smithy.InvalidParamsError
	if errors.As(err, &invalid) {
		return true
	}
	var api smithy.APIError
	if !errors.As(err, &api) {
		return false
	}
	switch api.ErrorCode() {
	case "ResourceNotFoundException", "ValidationException", "InvalidArgumentException",
		"AccessDeniedException", "UnrecognizedClientException", "InvalidSignatureException",
		"MissingAuthenticationTokenException", "IncompleteSignature", "SerializationException",
		"KMSAccessDeniedException", "KMSDisabledException", "KMSInvalidStateException",
		"KMSNotFoundException", "KMSOptInRequired":
		return true
	}
	return false
}

// retryableEntryCode reports whether an entry a partial failure rejected with code may be resent:
// the codes PutRecords documents for throttling and service-side failures. Any other code stops Run.
func retryableEntryCode(code string) bool {
	switch code {
	case "ProvisionedThroughputExceededException", "InternalFailure", "KMSThrottlingException":
		return true
	}
	return false
}

// partialFailure is the retryable error of a call in which Kinesis rejected some entries.
type partialFailure struct {
	stream   string
	rejected int
	of       int
	codes    map[string]int
}

func (e *partialFailure) codeList() string {
	var parts []string
	for _, c := range slices.Sorted(maps.Keys(e.codes)) {
		parts = append(parts, fmt.Sprintf("%s: %d", c, e.codes[c]))
	}
	return strings.Join(parts, ", ")
}

func (e *partialFailure) Error() string {
	return fmt.Sprintf("put records to stream %s: %d of %d records rejected (%s)", e.stream, e.rejected, e.of, e.codeList())
}

// randomPartitionKey returns a random 10-digit partition key, as the Kinesis Data Generator uses.
func randomPartitionKey(r *rand.Rand) string {
	return fmt.Sprintf("%010d", r.Int64N(10_000_000_000))
}
