package dlq

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/aws/smithy-go"

	"github.com/shardhose/shardhose/internal/clock"
	"github.com/shardhose/shardhose/internal/retry"
	"github.com/shardhose/shardhose/produce"
	"github.com/shardhose/shardhose/record"
)

// ReplayOptions configures Replay. Reader, Fetcher, Client and Stream are required.
type ReplayOptions struct {
	// Reader yields the dead letters. Replay does not close it: the caller does, after Replay
	// returns (for SQS, that makes the messages not replayed visible again at once).
	Reader Reader
	// Fetcher gets each dead letter's records.
	Fetcher *Fetcher
	// Client puts the records into Stream.
	Client produce.PutRecordsAPI
	// Stream is the name of the stream the records are put into: the source stream or another.
	Stream string
	// Deliver, when set, is used instead of Client and Stream: it hands one dead letter's records
	// to their destination (for example straight to the sinks) and returns once they are stored.
	Deliver func(ctx context.Context, recs []record.Record) error
	// DryRun reads the dead letters and their records (from S3 or the source stream too) but
	// puts nothing and removes nothing.
	DryRun bool
	// Max is how many dead letters to read at most; 0 means all.
	Max int
	// Retry is the backoff of PutRecords (see produce.Options.Retry); zero means produce's default.
	Retry retry.Policy
	// Clock paces retries; nil means the system clock.
	Clock clock.Clock
	// Logger receives PutRecords retries; nil discards them.
	Logger *slog.Logger
	// OnLetter, if set, is told the outcome of each dead letter as soon as it is known.
	OnLetter func(LetterResult)
}

// LetterResult is what Replay did with one dead letter.
type LetterResult struct {
	Letter Letter
	// From is where its records were found; Records how many there were and Bytes their data.
	From    RecordsFrom
	Records int
	Bytes   int64
	// Sent is how many records the stream accepted (0 on a dry run).
	Sent int
	// Removed is true when the dead letter was removed from where it was stored (an SQS message
	// deleted); only after all its records were accepted.
	Removed bool
	// Duplicate is true when a dead letter with the same id (requestContext.requestId) was
	// replayed earlier in this Replay: a destination stored it twice (a send retried after its
	// answer was lost). Its records are not sent again; it is removed like the first.
	Duplicate bool
	// Err says why the dead letter was not replayed, or was replayed but not removed. A letter
	// that is not a dead letter is skipped with Letter.Err as Err.
	Err error
}

// ReplayStats sums up a Replay.
type ReplayStats struct {
	Letters    int // dead letters read
	Replayed   int // whose records were all accepted (on a dry run: whose records were found)
	Removed    int // removed after replay (SQS messages deleted)
	Failed     int // not replayed, or replayed but not removed
	Records    int // records accepted (on a dry run: records found)
	Duplicates int // copies of a dead letter replayed earlier in the run: removed, not re-sent
}

// ErrTargetStream is wrapped by Replay's error when the target stream does not exist; Replay
// then stops at the first dead letter instead of failing each in turn.
var ErrTargetStream = errors.New("target stream does not exist")

// Replay reads dead letters from opts.Reader, gets each one's records with opts.Fetcher, and puts
// them into opts.Stream with PutRecords (through produce.Run: calls of at most 500 records and
// 5 MiB, in order, resending only the entries Kinesis rejected). A dead letter is removed from
// its store (Reader.Done: an SQS message is deleted) only after every one of its records was
// accepted; one that fails is left where it is and the next is tried. Replay is at least once: a
// dead letter replayed but not removed (the delete failed, or the process stopped in between)
// is replayed again next time.
//
// The records keep their partition keys, so records of one key stay in order in the target
// stream; their data is put as stored (a KPL aggregate as the aggregate).
//
// It returns nil when every dead letter read was replayed (and removed, where its store removes);
// otherwise an error saying how many were not. It stops early, wrapping ErrTargetStream, when the
// target stream does not exist, and with ctx's error when ctx ends.
//
// Each dead letter's records are sent once per Replay: a copy of a dead letter already replayed
// in this run (same requestContext.requestId, as when an SQS send was retried after its answer
// was lost and the queue holds the letter twice) is removed without sending its records again.
func Replay(ctx context.Context, opts ReplayOptions) (ReplayStats, error) {
	var st ReplayStats
	if opts.Reader == nil || opts.Fetcher == nil || (opts.Deliver == nil && (opts.Client == nil || opts.Stream == "")) {
		return st, errors.New("replay: reader, fetcher, and a target (client and stream, or Deliver) are required")
	}
	report := func(r LetterResult) {
		if r.Err != nil {
			st.Failed++
		}
		if opts.OnLetter != nil {
			opts.OnLetter(r)
		}
	}
	replayed := map[string]bool{} // ids of the dead letters whose records were all accepted
	remove := func(l Letter, res LetterResult) {
		if err := opts.Reader.Done(ctx, l); err != nil {
			res.Err = fmt.Errorf("replayed, but not removed (a later replay sends its records again): %w", err)
			report(res)
			return
		}
		res.Removed = l.handle != "" // only SQS letters have a receipt handle; only they are removed
		if res.Removed {
			st.Removed++
		}
		report(res)
	}
	for opts.Max <= 0 || st.Letters < opts.Max {
		l, err := opts.Reader.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return st, fmt.Errorf("replay: %w", err)
		}
		st.Letters++
		if l.Err != nil {
			report(LetterResult{Letter: l, Err: l.Err})
			continue
		}
		res := LetterResult{Letter: l}
		id := l.Message.RequestContext.RequestID
		if id != "" && replayed[id] {
			res.Duplicate = true
			st.Duplicates++
			if opts.DryRun {
				report(res)
			} else {
				remove(l, res)
			}
			continue
		}
		recs, from, err := opts.Fetcher.Records(ctx, l.Message)
		res.From = from
		if err != nil {
			res.Err = err
			report(res)
			if ctx.Err() != nil {
				return st, fmt.Errorf("replay: stopped: %w", ctx.Err())
			}
			continue
		}
		res.Records = len(recs)
		for _, r := range recs {
			res.Bytes += int64(len(r.Data))
		}
		if opts.DryRun {
			st.Replayed++
			st.Records += len(recs)
			replayed[id] = id != ""
			report(res)
			continue
		}
		if opts.Deliver != nil {
			if err = opts.Deliver(ctx, recs); err == nil {
				res.Sent = len(recs)
				st.Records += len(recs)
			} else {
				res.Err = fmt.Errorf("deliver %d records: %w", len(recs), err)
				report(res)
				if ctx.Err() != nil {
					return st, fmt.Errorf("replay: stopped: %w", ctx.Err())
				}
				continue
			}
		} else {
			var stats produce.Stats
			stats, err = produce.Run(ctx, produce.Options{
				Stream: opts.Stream,
				Client: opts.Client,
				Source: &recordSource{recs: recs},
				Clock:  opts.Clock,
				Logger: opts.Logger,
				Retry:  opts.Retry,
			})
			res.Sent = stats.Sent
			st.Records += stats.Sent
		}
		if err != nil {
			res.Err = fmt.Errorf("put %d records into stream %s: %w", len(recs), opts.Stream, err)
			report(res)
			var api smithy.APIError
			if errors.As(err, &api) && api.ErrorCode() == "ResourceNotFoundException" {
				return st, fmt.Errorf("replay into stream %s: %w: %w", opts.Stream, ErrTargetStream, err)
			}
			if ctx.Err() != nil {
				return st, fmt.Errorf("replay: stopped: %w", ctx.Err())
			}
			continue
		}
		st.Replayed++
		replayed[id] = id != ""
		remove(l, res)
	}
	if st.Failed > 0 {
		return st, fmt.Errorf("replay: %d of %d dead letters not replayed or not removed", st.Failed, st.Letters)
	}
	return st, nil
}

// recordSource hands a dead letter's records to produce.Run, in order.
type recordSource struct {
	recs []record.Record
	next int
}

func (s *recordSource) Next() (produce.Entry, error) {
	if s.next == len(s.recs) {
		return produce.Entry{}, io.EOF
	}
	r := s.recs[s.next]
	s.next++
	return produce.Entry{Data: r.Data, PartitionKey: r.PartitionKey}, nil
}
