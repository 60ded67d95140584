// Package process is the processing stage's handlers: what happens to a batch of one shard's
// records between reading and delivery. A Handler validates, filters, enriches or transforms the
// records, or hands them to a function (an AWS Lambda function, or a local function server over
// HTTP) and reads its answer.
//
// Handlers run inside a failure engine that owns retries, bisecting, record age, dead letters and
// parallelism; a handler only reports what happened: one Output per record, an error that fails
// the whole batch (Lambda's function error), or a *PartialFailure (Lambda's batchItemFailures).
//
// Built-in handlers, each built from the processing section of the configuration by Build:
//
//   - json: every record's data must be JSON (NewJSON).
//   - filter: Lambda event filtering patterns (NewFilter); records that match none are Filtered.
//   - enrich: add constant fields, the processing time and range categories to JSON records
//     (NewEnrich).
//   - lambda: invoke an AWS Lambda function with Lambda's Kinesis event, or with Firehose's
//     transform contract (NewLambda).
//   - http: the same two contracts POSTed to a URL (NewHTTP).
//
// # Go API
//
// Programs that embed shardhose add their own processing by implementing Handler (or wrapping a
// function with Func or PerRecord) and combining it with the built-in ones with Chain. A Handler
// must return one Output per input record in input order, must be safe for concurrent use
// (different shards call it at once), and must honour ctx: the engine applies the handler timeout
// through it. A handler must not modify the records it is given; it returns changed copies in
// Output.Record.
package process

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/shardhose/shardhose/record"
)

// Outcome is what became of one record in a handler.
type Outcome int

const (
	// Deliver sends the record on to the next handler, and after the last to the sinks;
	// Output.Record may be transformed.
	Deliver Outcome = iota
	// Filtered means the record matched none of the filter patterns: it is skipped and still
	// checkpointed, as Lambda does with records its FilterCriteria reject.
	Filtered
	// Dropped means a Firehose-contract transform returned result Dropped: the record is counted
	// and skipped (checkpointed, never delivered).
	Dropped
	// ProcessingFailed means a Firehose-contract transform returned result ProcessingFailed: the
	// record goes to the S3 error prefix (processing-failed/) and is not retried, as in Firehose.
	ProcessingFailed
)

// String returns the outcome's name, as used in logs and metrics.
func (o Outcome) String() string {
	switch o {
	case Deliver:
		return "deliver"
	case Filtered:
		return "filtered"
	case Dropped:
		return "dropped"
	case ProcessingFailed:
		return "processing_failed"
	}
	return fmt.Sprintf("outcome(%d)", int(o))
}

// Output is what a handler made of one record. Record is the record to deliver (transformed or
// not) when Outcome is Deliver; for the other outcomes it is the record as the handler received
// it. Err says why, for ProcessingFailed.
type Output struct {
	Outcome Outcome
	Record  record.Record
	Err     string
}

// Handler processes one batch of one shard, in order.
//
// Handle returns one Output per input record, in input order, or an error that fails the whole
// batch (Lambda's function error: the engine retries or bisects it). A partial failure (Lambda's
// batchItemFailures, honoured when ReportBatchItemFailures is on) is returned as a
// *PartialFailure, possibly wrapped. Handle must not modify batch or its records.
//
// Handlers must be safe for concurrent use: different shards call Handle at once. They must honour
// ctx: the engine applies the handler timeout through it, and a handler that returns after ctx is
// done has its result discarded.
type Handler interface {
	// Name identifies the handler in logs, metrics and errors, e.g. "json" or "lambda:my-fn".
	Name() string
	Handle(ctx context.Context, batch []record.Record) ([]Output, error)
}

// PartialFailure reports that records [0, FirstFailed) of a batch were handled, with their results
// in Outputs (len(Outputs) == FirstFailed), and that the record at FirstFailed and all records
// after it failed. It is Lambda's partial batch response: with ReportBatchItemFailures on the
// engine finishes the handled records and retries from FirstFailed; with it off the whole batch
// counts as failed. FirstFailed may be 0 (nothing was handled).
type PartialFailure struct {
	FirstFailed int
	Outputs     []Output
	// Err says why the record at FirstFailed failed.
	Err error
}

// Error says where the batch failed and why.
func (p *PartialFailure) Error() string {
	return fmt.Sprintf("records from index %d on failed: %v", p.FirstFailed, p.Err)
}

// Unwrap returns the cause.
func (p *PartialFailure) Unwrap() error { return p.Err }

// Func returns a Handler named name that calls fn. fn must follow Handler's contract.
func Func(name string, fn func(ctx context.Context, batch []record.Record) ([]Output, error)) Handler {
	return funcHandler{name: name, fn: fn}
}

type funcHandler struct {
	name string
	fn   func(ctx context.Context, batch []record.Record) ([]Output, error)
}

func (f funcHandler) Name() string { return f.name }

func (f funcHandler) Handle(ctx context.Context, batch []record.Record) ([]Output, error) {
	return f.fn(ctx, batch)
}

// PerRecord returns a Handler named name that calls fn for each record in turn. An error from fn
// stops the batch there: Handle returns a *PartialFailure at that record, wrapping the error with
// the record's position. fn must be safe for concurrent use.
func PerRecord(name string, fn func(ctx context.Context, r record.Record) (Output, error)) Handler {
	return Func(name, func(ctx context.Context, batch []record.Record) ([]Output, error) {
		outs := make([]Output, 0, len(batch))
		for i, r := range batch {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			o, err := fn(ctx, r)
			if err != nil {
				return nil, &PartialFailure{FirstFailed: i, Outputs: outs, Err: fmt.Errorf("%s: record %s: %w", name, describe(r), err)}
			}
			outs = append(outs, o)
		}
		return outs, nil
	})
}

// describe names a record in errors: its position, and its shard when known.
func describe(r record.Record) string {
	if r.ShardID == "" {
		return r.Position().String()
	}
	return r.Position().String() + " of " + r.ShardID
}

// PassThrough returns a Handler that delivers every record unchanged: the processing stage with no
// handlers configured.
func PassThrough() Handler { return passThrough{} }

type passThrough struct{}

// IsPassThrough reports whether h is PassThrough(): a handler that never fails and delivers every
// record unchanged, so a caller may hand a batch on as it is instead of building its Outputs.
func IsPassThrough(h Handler) bool {
	_, ok := h.(passThrough)
	return ok
}

func (passThrough) Name() string { return "pass-through" }

func (passThrough) Handle(ctx context.Context, batch []record.Record) ([]Output, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return deliverAll(batch), nil
}

func deliverAll(batch []record.Record) []Output {
	outs := make([]Output, len(batch))
	for i, r := range batch {
		outs[i] = Output{Outcome: Deliver, Record: r}
	}
	return outs
}

// Chain returns a Handler that runs hs in turn: the records one handler delivers are the next
// one's input (in order); Filtered, Dropped and ProcessingFailed outputs are final. With no
// handlers it is PassThrough; with one it is that handler with its results checked (Checked).
//
// Every handler's result is checked against Handler's contract, alone or chained: one Output
// per record, or a *PartialFailure with 0 <= FirstFailed < len(batch) and exactly FirstFailed
// Outputs. A result of another shape fails the whole batch with an error naming the handler.
//
// Failures map back onto the original batch:
//   - a whole-batch error from any handler fails the whole batch (wrapped with the handler's name);
//   - a *PartialFailure from a handler at its input index i becomes a *PartialFailure at the
//     original index of that record. The records of the original batch before it are handled:
//     those an earlier handler made final keep their outputs, and those the failing handler
//     delivered go on through the remaining handlers (whose own partial failures can only move the
//     failure point earlier). Records at or after the failure point are not handed to later
//     handlers.
func Chain(hs ...Handler) Handler {
	switch len(hs) {
	case 0:
		return PassThrough()
	case 1:
		return Checked(hs[0])
	}
	names := make([]string, len(hs))
	for i, h := range hs {
		names[i] = h.Name()
	}
	return &chain{hs: hs, name: strings.Join(names, ">")}
}

type chain struct {
	hs   []Handler
	name string
}

func (c *chain) Name() string { return c.name }

// MayFailRecords reports whether any handler of the chain may.
func (c *chain) MayFailRecords() bool {
	for _, h := range c.hs {
		if MayFailRecords(h) {
			return true
		}
	}
	return false
}

func (c *chain) Handle(ctx context.Context, batch []record.Record) ([]Output, error) {
	final := make([]Output, len(batch))
	cur := batch
	idx := make([]int, len(batch)) // idx[i] is cur[i]'s index in batch
	for i := range idx {
		idx[i] = i
	}
	failAt := -1 // original index of the first failed record, once a handler reported one
	var failErr error
	for _, h := range c.hs {
		if len(cur) == 0 {
			break
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("%s: %w", h.Name(), err)
		}
		outs, err := h.Handle(ctx, cur)
		if err := checkResult(h.Name(), len(cur), outs, err); err != nil {
			return nil, err
		}
		handled := len(cur)
		if err != nil {
			var pf *PartialFailure
			if !errors.As(err, &pf) {
				return nil, fmt.Errorf("%s: %w", h.Name(), err)
			}
			outs, handled = pf.Outputs, pf.FirstFailed
			if at := idx[pf.FirstFailed]; failAt < 0 || at < failAt {
				failAt, failErr = at, fmt.Errorf("%s: %w", h.Name(), pf.Err)
			}
		}
		next, nextIdx := cur[:0:0], idx[:0:0]
		for i := range handled {
			if failAt >= 0 && idx[i] >= failAt {
				break
			}
			if outs[i].Outcome == Deliver {
				next = append(next, outs[i].Record)
				nextIdx = append(nextIdx, idx[i])
				continue
			}
			final[idx[i]] = outs[i]
		}
		cur, idx = next, nextIdx
	}
	for i, r := range cur {
		final[idx[i]] = Output{Outcome: Deliver, Record: r}
	}
	if failAt >= 0 {
		return nil, &PartialFailure{FirstFailed: failAt, Outputs: final[:failAt], Err: failErr}
	}
	return final, nil
}

// Checked returns h with every result checked against Handler's contract (see Chain): a result
// of the wrong shape (too few or too many Outputs, or a *PartialFailure whose FirstFailed is
// outside the batch or whose Outputs do not number FirstFailed) becomes a whole-batch error
// naming h, which does not wrap the *PartialFailure, so the engine never acknowledges a record
// on the word of a malformed result. Checked of a checked handler (or of a Chain) is that handler.
func Checked(h Handler) Handler {
	switch h.(type) {
	case checked, *chain, passThrough:
		return h
	}
	return checked{h}
}

type checked struct{ h Handler }

func (c checked) Name() string { return c.h.Name() }

func (c checked) MayFailRecords() bool { return MayFailRecords(c.h) }

func (c checked) Handle(ctx context.Context, batch []record.Record) ([]Output, error) {
	outs, err := c.h.Handle(ctx, batch)
	if cerr := checkResult(c.h.Name(), len(batch), outs, err); cerr != nil {
		return nil, cerr
	}
	return outs, err
}

// checkResult returns an error naming handler when its result for a batch of n records breaks
// Handler's contract, and nil when the result (an error of any other kind included) has a
// usable shape.
func checkResult(handler string, n int, outs []Output, err error) error {
	if err == nil {
		if len(outs) != n {
			return fmt.Errorf("handler %s broke its contract: it returned %d results for %d records", handler, len(outs), n)
		}
		return nil
	}
	var pf *PartialFailure
	if errors.As(err, &pf) && (pf.FirstFailed < 0 || pf.FirstFailed >= n || len(pf.Outputs) != pf.FirstFailed) {
		// Not wrapped with %w: the engine must not mistake it for a usable partial failure.
		return fmt.Errorf("handler %s broke its contract: malformed partial failure (first failed %d, %d outputs, %d records): %v",
			handler, pf.FirstFailed, len(pf.Outputs), n, err)
	}
	return nil
}

// RecordFailer is implemented by handlers that can return ProcessingFailed outputs: the lambda and
// http handlers under Firehose's transform contract, and chains holding one. The engine refuses
// such a handler when it has nowhere to store processing-failed records. A Handler of a program's
// own that returns ProcessingFailed should implement it too.
type RecordFailer interface {
	MayFailRecords() bool
}

// MayFailRecords reports whether h says it can return ProcessingFailed outputs (RecordFailer).
func MayFailRecords(h Handler) bool {
	f, ok := h.(RecordFailer)
	return ok && f.MayFailRecords()
}
