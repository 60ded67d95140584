package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/shardhose/shardhose/consumer/kpl"
	"github.com/shardhose/shardhose/hooks"
	"github.com/shardhose/shardhose/internal/clock"
	"github.com/shardhose/shardhose/internal/outage"
	"github.com/shardhose/shardhose/internal/retry"
	"github.com/shardhose/shardhose/record"
)

// KinesisAPI is the part of the Kinesis client the consumer uses.
type KinesisAPI interface {
	ListShards(ctx context.Context, in *kinesis.ListShardsInput, optFns ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
	GetShardIterator(ctx context.Context, in *kinesis.GetShardIteratorInput, optFns ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error)
	GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error)
	DescribeStreamSummary(ctx context.Context, in *kinesis.DescribeStreamSummaryInput, optFns ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error)
}

// startPosition is where a shard reader begins.
type startPosition struct {
	// after, when set, resumes from a checkpoint: the reader asks for AT_SEQUENCE_NUMBER and skips
	// the checkpointed record itself (and, inside a KPL aggregate, the user records up to its
	// sub-sequence number), so a partly delivered aggregate resumes at its next user record.
	after record.Position
	// iteratorType is used when after is zero: TRIM_HORIZON, LATEST or AT_TIMESTAMP.
	iteratorType types.ShardIteratorType
	timestamp    time.Time
}

// shardReader reads one shard from a start position to its end (or until its context ends),
// handing each GetRecords result, de-aggregated, to emit. It retries throttling and service
// errors with backoff and renews an expired iterator from the last record it read, so the only
// ways out are the shard's end, emit's error, and ctx.
type shardReader struct {
	api          KinesisAPI
	streamName   string
	streamARN    string
	shardID      string
	clock        clock.Clock
	log          *slog.Logger
	health       *outage.Reporter // the stream's outages, shared by every shard's reader; nil logs none
	hooks        hooks.Set
	pollInterval time.Duration
	// maxIdlePoll bounds the wait after consecutive empty reads of a caught-up shard: the wait
	// doubles from pollInterval up to it, and a read that returns records resets it. At or
	// below pollInterval, every wait is pollInterval.
	maxIdlePoll time.Duration
	// pending, when set, reports that emit holds records it has not handed on yet (an open
	// batching window): the reader then polls at pollInterval, not backing off, because emit's
	// calls after each read are what close that window on time.
	pending func() bool
	limit   int32
	backoff retry.Policy
	// account, when set, is the shard's share of the process's memory budget: each read first
	// reserves room for what it may return and is sized to that room (see MemoryBudget).
	account *shardAccount
	// average is the shard's mean Kinesis record size (bytes) over its reads so far, 0 before
	// the first record; it sizes reservations.
	average float64
}

// minCallGap keeps a reader within Kinesis's 5 GetRecords calls per shard per second.
const minCallGap = 200 * time.Millisecond

// run reads until the shard ends (returns true) or ctx ends / emit fails (returns the error).
// The records passed to emit are emit's to keep: run never touches that slice again.
func (r *shardReader) run(ctx context.Context, start startPosition, emit func(ctx context.Context, recs []record.Record) error) (bool, error) {
	// done is the position at or before which every record has been handled: the checkpoint at
	// first, then the last Kinesis record read (all its user records). Iterators are renewed from
	// it and records at or before it are never handed on twice.
	done := start.after
	// renewFrom is where an iterator that expires before the first record is read is renewed.
	// LATEST again would skip every record written since the first iterator was taken; so a
	// reader that starts at LATEST renews at that moment instead (AT_TIMESTAMP, local clock: a
	// record written just before it may be read, none after it is skipped).
	renewFrom := start
	if done.IsZero() && start.iteratorType == types.ShardIteratorTypeLatest {
		renewFrom = startPosition{iteratorType: types.ShardIteratorTypeAtTimestamp, timestamp: r.clock.Now()}
	}
	iterator, err := r.iterator(ctx, start, done)
	if err != nil {
		return false, err
	}
	failures := 0
	idle := 0 // consecutive empty reads of a caught-up shard
	for {
		hooks.Each(r.hooks, func(h hooks.ShardProgress) { h.OnShardProgress(r.streamName, r.shardID) })
		reserved, limit, err := r.account.reserve(ctx, r.limit, r.average, r.waiting)
		if err != nil {
			return false, err
		}
		out, err := r.api.GetRecords(ctx, &kinesis.GetRecordsInput{
			ShardIterator: iterator,
			Limit:         aws.Int32(limit),
			StreamARN:     r.arnOrNil(),
		})
		if err != nil {
			r.account.give(reserved)
			if ctx.Err() != nil {
				return false, ctx.Err()
			}
			failures++
			var expired *types.ExpiredIteratorException
			var throttled *types.ProvisionedThroughputExceededException
			switch {
			case errors.As(err, &expired):
				if done.IsZero() {
					r.log.Info("shard iterator expired before a record was read; renewing at the start position", "shard", r.shardID,
						"start", string(renewFrom.iteratorType), "timestamp", renewFrom.timestamp)
				} else {
					r.log.Info("shard iterator expired; renewing", "shard", r.shardID, "after", done.SequenceNumber)
				}
				iterator, err = r.iterator(ctx, renewFrom, done)
				if err != nil {
					return false, err
				}
				continue
			case errors.As(err, &throttled):
				hooks.Each(r.hooks, func(h hooks.ThrottledRead) { h.OnThrottledRead(r.streamName, r.shardID) })
				r.log.Debug("GetRecords throttled", "shard", r.shardID)
			default:
				r.health.Failed(err, "operation", "GetRecords", "shard", r.shardID)
				r.log.Debug("GetRecords failed; retrying", "shard", r.shardID, "attempt", failures, "sdk_attempts", outage.Attempts(err), "error", err)
			}
			if err := clock.Sleep(ctx, r.clock, r.backoff.Delay(failures)); err != nil {
				return false, err
			}
			continue
		}
		failures = 0
		r.health.Succeeded()

		recs, bytes := r.convert(out.Records, done)
		r.account.settle(reserved, int64(bytes))
		r.learnAverage(out.Records)
		behind := aws.ToInt64(out.MillisBehindLatest)
		hooks.Each(r.hooks, func(h hooks.RecordsRead) {
			h.OnRecordsRead(r.streamName, r.shardID, len(recs), bytes, behind)
		})
		if n := len(out.Records); n > 0 {
			last := out.Records[n-1]
			done = record.Position{SequenceNumber: aws.ToString(last.SequenceNumber), SubSequenceNumber: math.MaxInt64}
		}
		// emit is called after every read, with or without records, so that a batching window
		// can close on time while the shard is quiet.
		if err := emit(ctx, recs); err != nil {
			return false, err
		}
		if out.NextShardIterator == nil {
			return true, nil
		}
		iterator = out.NextShardIterator

		wait := r.pollInterval
		switch {
		case len(out.Records) > 0 && (behind > 0 || len(out.Records) >= int(limit)):
			wait = minCallGap // more is waiting: read again as soon as Kinesis allows
			idle = 0
		case len(out.Records) > 0 || behind > 0 || (r.pending != nil && r.pending()):
			idle = 0
		default:
			idle++
			wait = r.idleWait(idle)
		}
		if err := clock.Sleep(ctx, r.clock, wait); err != nil {
			return false, err
		}
	}
}

// waiting reports a read waiting for room in the memory budget as backpressure, so that liveness
// checks do not take it for a wedged reader.
func (r *shardReader) waiting(on bool) {
	hooks.Each(r.hooks, func(h hooks.ShardWaiting) { h.OnShardWaiting(r.streamName, r.shardID, on) })
}

// learnAverage folds a read's Kinesis records into the shard's mean record size: a moving
// average that follows a change of record size within a few reads.
func (r *shardReader) learnAverage(recs []types.Record) {
	if len(recs) == 0 {
		return
	}
	total := 0
	for _, kr := range recs {
		total += len(kr.Data)
	}
	mean := float64(total) / float64(len(recs))
	if r.average == 0 {
		r.average = mean
		return
	}
	r.average = 0.5*r.average + 0.5*mean
}

// idleWait is the wait after the n-th consecutive empty read (n >= 1) of a caught-up shard:
// pollInterval, then twice as long after each further empty read, up to maxIdlePoll.
func (r *shardReader) idleWait(n int) time.Duration {
	wait := r.pollInterval
	for i := 1; i < n && wait < r.maxIdlePoll; i++ {
		wait *= 2
	}
	if wait > r.maxIdlePoll {
		wait = max(r.maxIdlePoll, r.pollInterval)
	}
	return wait
}

func (r *shardReader) arnOrNil() *string {
	if r.streamARN == "" {
		return nil
	}
	return aws.String(r.streamARN)
}

// iterator gets a shard iterator for start, retrying service errors with backoff.
func (r *shardReader) iterator(ctx context.Context, start startPosition, done record.Position) (*string, error) {
	in := &kinesis.GetShardIteratorInput{ShardId: aws.String(r.shardID)}
	if r.streamARN != "" {
		in.StreamARN = aws.String(r.streamARN)
	} else {
		in.StreamName = aws.String(r.streamName)
	}
	switch {
	case !done.IsZero():
		in.ShardIteratorType = types.ShardIteratorTypeAtSequenceNumber
		in.StartingSequenceNumber = aws.String(done.SequenceNumber)
	case start.iteratorType == types.ShardIteratorTypeAtTimestamp:
		in.ShardIteratorType = start.iteratorType
		in.Timestamp = aws.Time(start.timestamp)
	case start.iteratorType != "":
		in.ShardIteratorType = start.iteratorType
	default:
		in.ShardIteratorType = types.ShardIteratorTypeTrimHorizon
	}
	var it *string
	_, err := retry.Do(ctx, r.clock, r.backoff, func(ctx context.Context, _ int) error {
		out, err := r.api.GetShardIterator(ctx, in)
		if err != nil && ctx.Err() == nil {
			r.health.Failed(err, "operation", "GetShardIterator", "shard", r.shardID)
		}
		if err != nil {
			var notFound *types.ResourceNotFoundException
			var invalid *types.InvalidArgumentException
			if errors.As(err, &notFound) || errors.As(err, &invalid) {
				return retry.Permanent(err)
			}
			return err
		}
		r.health.Succeeded()
		it = out.ShardIterator
		return nil
	}, func(attempt int, err error, wait time.Duration) {
		hooks.Each(r.hooks, func(h hooks.ShardProgress) { h.OnShardProgress(r.streamName, r.shardID) })
		r.log.Debug("GetShardIterator failed; retrying", "shard", r.shardID, "attempt", attempt, "sdk_attempts", outage.Attempts(err), "wait", wait, "error", err)
	})
	if err != nil {
		return nil, fmt.Errorf("get shard iterator for %s (%s): %w", r.shardID, in.ShardIteratorType, err)
	}
	return it, nil
}

// convert turns Kinesis records into user records, de-aggregating KPL aggregates and skipping
// everything at or before skip. It returns the records and their total data size.
func (r *shardReader) convert(in []types.Record, skip record.Position) ([]record.Record, int) {
	out := make([]record.Record, 0, len(in))
	bytes := 0
	for _, kr := range in {
		base := record.Record{
			StreamName:                  r.streamName,
			ShardID:                     r.shardID,
			PartitionKey:                aws.ToString(kr.PartitionKey),
			SequenceNumber:              aws.ToString(kr.SequenceNumber),
			ApproximateArrivalTimestamp: aws.ToTime(kr.ApproximateArrivalTimestamp),
		}
		users, ok, err := kpl.Deaggregate(kr.Data)
		if err != nil {
			// Kept whole, never dropped: the raw aggregate goes on as one record, marked so the
			// pipeline sends it to the dead letters.
			r.log.Warn("KPL aggregate could not be de-aggregated; passing it on whole", "shard", r.shardID, "sequence", base.SequenceNumber, "error", err)
			base.DeaggregationError = err.Error()
			ok = false
		}
		if !ok {
			if !skip.IsZero() && base.Position().Compare(skip) <= 0 {
				continue
			}
			base.Data = kr.Data
			bytes += len(kr.Data)
			out = append(out, base)
			continue
		}
		for i, u := range users {
			rec := base
			rec.SubSequenceNumber = int64(i)
			rec.Aggregated = true
			rec.PartitionKey = u.PartitionKey
			rec.ExplicitHashKey = u.ExplicitHashKey
			rec.Data = u.Data
			if !skip.IsZero() && rec.Position().Compare(skip) <= 0 {
				continue
			}
			bytes += len(u.Data)
			out = append(out, rec)
		}
	}
	return out, bytes
}
