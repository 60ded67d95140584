// Package firehose is a sink that forwards records to an Amazon Data Firehose delivery stream
// (of type Direct PUT) with PutRecordBatch. Firehose is the durable buffer: a record is
// acknowledged only once Firehose accepted it (or, when configured, once it is in the S3 backup),
// and records Firehose refuses are sent again, alone, until it takes them.
//
// Error codes in the backup's error records are Firehose's own for records it refused (for
// example ServiceUnavailableException, InternalFailure) or for a call it failed as a whole (for
// example ResourceNotFoundException), and two of this sink's: Firehose.RecordTooLarge for a record
// over the 1,000 KiB limit, which is never sent, and Firehose.RequestFailed for a call that got no
// answer from Firehose (a network error).
package firehose

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsfirehose "github.com/aws/aws-sdk-go-v2/service/firehose"
	"github.com/aws/aws-sdk-go-v2/service/firehose/types"

	"github.com/shardhose/shardhose/config"
	"github.com/shardhose/shardhose/hooks"
	"github.com/shardhose/shardhose/internal/clock"
	"github.com/shardhose/shardhose/internal/outage"
	"github.com/shardhose/shardhose/internal/retry"
	"github.com/shardhose/shardhose/record"
	"github.com/shardhose/shardhose/sinks"
	"github.com/shardhose/shardhose/sinks/backup"
	"github.com/shardhose/shardhose/sinks/batcher"
)

// PutRecordBatch's limits.
const (
	// MaxRecordsPerCall is the most records one PutRecordBatch call takes.
	MaxRecordsPerCall = 500
	// MaxBytesPerCall is the most data (before base64) one PutRecordBatch call takes: 4 MiB.
	MaxBytesPerCall = 4 << 20
	// MaxRecordSize is the largest record Firehose accepts (before base64): 1,000 KiB. A larger
	// record is never sent; it goes to the backup at once, or pauses the sink when there is none.
	MaxRecordSize = 1000 << 10
)

// BackupFolder is the folder (Firehose's error output type) of the error records this sink
// writes to its backup.
const BackupFolder = "firehose-failed/"

// promptInterval is how long a record waits for others to share its PutRecordBatch call when
// buffering_hints.interval_in_seconds is 0. It is short enough to be prompt and long enough for
// the records of one Write (and of Writes arriving together from several shards) to go out in one
// call rather than one call each.
const promptInterval = 10 * time.Millisecond

// PutRecordBatchAPI is the part of the Firehose client the sink uses; *firehose.Client
// implements it. DescribeDeliveryStream is called only by Check.
type PutRecordBatchAPI interface {
	PutRecordBatch(ctx context.Context, in *awsfirehose.PutRecordBatchInput, optFns ...func(*awsfirehose.Options)) (*awsfirehose.PutRecordBatchOutput, error)
	DescribeDeliveryStream(ctx context.Context, in *awsfirehose.DescribeDeliveryStreamInput, optFns ...func(*awsfirehose.Options)) (*awsfirehose.DescribeDeliveryStreamOutput, error)
}

// Options configures a Sink. Name, Config and Client are required; the rest have defaults.
type Options struct {
	// Name is the sink's configured name, in logs, hooks and backup object names.
	Name string
	// Config is the sink's section, with config.FirehoseDefaults already applied.
	Config config.FirehoseSink
	Client PutRecordBatchAPI
	// Backup stores records that cannot be delivered (see config.FirehoseSink.S3Backup); nil
	// means none. Required when Config.RetryDurationInSeconds > 0 or Config.S3Backup.Bucket is set.
	Backup backup.Writer
	// Clock drives the buffering interval and the waits between retries; nil means clock.Real().
	Clock clock.Clock
	// Logger receives a line per failed attempt; nil discards.
	Logger *slog.Logger
	Hooks  hooks.Set
}

// Sink forwards records to a Firehose delivery stream. It implements sinks.Sink.
//
// Buffering (sinks/batcher): records from concurrent Writes gather into batches of at most 500
// records and 4 MiB (PutRecordBatch's limits), closed when full or interval_in_seconds after their
// first record (with 0, after 10 ms, so that records arriving together share a call). Each batch
// is sent by one of max_in_flight goroutines; while all are busy and the open batch is full, Write
// blocks, so memory stays near (max_in_flight+1) × 4 MiB.
//
// Failure: when Firehose refuses some records of a call (FailedPutCount > 0), only those are sent
// again, in their order, by their index in RequestResponses. A call that fails as a whole
// (throttling, a 5xx, a network error, a delivery stream that does not exist or may not be
// written) is sent again whole. Retries wait by backup.FirehoseHTTPRetry (1 s, doubling, 15%
// jitter, each wait at most 2 minutes) on the injected clock, without end when
// retry_duration_in_seconds is 0 (the sink pauses; nothing is dropped), or for that long, after
// which the records still refused go to the backup as error records under BackupFolder. A
// record over MaxRecordSize is never sent: it goes to the backup at once, and without a backup it
// pauses the sink (logged at Error), since no retry can deliver it. If the backup fails too, the
// sink pauses until Firehose or the backup takes the records (backup.DeliverOrBackup).
//
// Acknowledgement: a Write's done runs once every one of its records was accepted by Firehose or
// stored in the backup, from the goroutine that finished the last of its batches.
//
// Ordering: the records of one Write are handed to Firehose in order, but batches go out
// concurrently (max_in_flight) and refused records are sent again after later ones, so Firehose
// may store them out of order, as it does for any concurrent producer. Set max_in_flight to 1 to
// keep the order of batches.
//
// All methods are safe for concurrent use.
type Sink struct {
	name    string
	stream  string // the delivery stream's name
	arn     string // the configured ARN, checked by Check; may be empty
	client  PutRecordBatchAPI
	backup  backup.Writer
	clock   clock.Clock
	log     *slog.Logger
	health  *outage.Reporter // the delivery stream's outages, from every call of the sink
	hooks   hooks.Set
	policy  retry.Policy
	newline bool
	batches *batcher.Batcher
}

var _ sinks.Sink = (*Sink)(nil)

// New checks opts and returns a running Sink; every problem is reported at once. It does no I/O:
// call Check to find out at start-up whether the delivery stream can be written.
func New(opts Options) (*Sink, error) {
	cfg := opts.Config
	var problems []error
	if opts.Name == "" {
		problems = append(problems, errors.New("name: must be set"))
	}
	if opts.Client == nil {
		problems = append(problems, errors.New("no Firehose client given"))
	}
	stream := cfg.DeliveryStreamName()
	if stream == "" {
		problems = append(problems, errors.New("delivery_stream: must be set (or delivery_stream_arn)"))
	}
	if cfg.DeliveryStreamARN != "" {
		a, err := config.ParseDeliveryStreamARN(cfg.DeliveryStreamARN)
		switch {
		case err != nil:
			problems = append(problems, fmt.Errorf("delivery_stream_arn: %w", err))
		case cfg.DeliveryStream != "" && a.Name != cfg.DeliveryStream:
			problems = append(problems, fmt.Errorf("delivery_stream %q differs from the name in delivery_stream_arn (%q)", cfg.DeliveryStream, a.Name))
		}
	}
	if h := cfg.BufferingHints.IntervalInSeconds; h < 0 || h > config.FirehoseMaxInterval {
		problems = append(problems, fmt.Errorf("buffering_hints.interval_in_seconds is %d: must be 0 to %d", h, config.FirehoseMaxInterval))
	}
	if cfg.MaxInFlight < 1 {
		problems = append(problems, fmt.Errorf("max_in_flight is %d: must be at least 1", cfg.MaxInFlight))
	}
	if d := cfg.RetryDurationInSeconds; d < 0 || d > config.FirehoseMaxRetryDuration {
		problems = append(problems, fmt.Errorf("retry_duration_in_seconds is %d: must be 0 to %d", d, config.FirehoseMaxRetryDuration))
	}
	if opts.Backup == nil && cfg.RetryDurationInSeconds > 0 {
		problems = append(problems, fmt.Errorf("retry_duration_in_seconds is %d but no backup writer is given: records refused for that long would have nowhere to go", cfg.RetryDurationInSeconds))
	}
	if opts.Backup == nil && cfg.S3Backup.Bucket != "" {
		problems = append(problems, fmt.Errorf("s3_backup.bucket is %q but no backup writer is given", cfg.S3Backup.Bucket))
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("firehose sink %q: %w", opts.Name, errors.Join(problems...))
	}

	s := &Sink{
		name:    opts.Name,
		stream:  stream,
		arn:     cfg.DeliveryStreamARN,
		client:  opts.Client,
		backup:  opts.Backup,
		clock:   opts.Clock,
		log:     opts.Logger,
		hooks:   opts.Hooks,
		policy:  backup.FirehoseHTTPRetry,
		newline: cfg.AppendNewline,
	}
	s.policy.MaxElapsed = time.Duration(cfg.RetryDurationInSeconds) * time.Second // 0: no limit
	if s.clock == nil {
		s.clock = clock.Real()
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("sink", s.name, "delivery_stream", s.stream)
	s.health = outage.New(outage.Options{Dependency: "firehose", Resource: s.stream, Logger: s.log, Clock: s.clock})

	interval := time.Duration(cfg.BufferingHints.IntervalInSeconds) * time.Second
	if interval == 0 {
		interval = promptInterval
	}
	maxBytes := MaxBytesPerCall
	if s.newline {
		// The batcher counts data only; leave room for a newline after each record so that a
		// full batch still fits in one call.
		maxBytes -= MaxRecordsPerCall
	}
	b, err := batcher.New(batcher.Options{
		MaxRecords:  MaxRecordsPerCall,
		MaxBytes:    maxBytes,
		Interval:    interval,
		MaxInFlight: cfg.MaxInFlight,
		Deliver:     s.deliver,
		Clock:       s.clock,
		Logger:      s.log,
	})
	if err != nil {
		return nil, fmt.Errorf("firehose sink %q: %w", opts.Name, err)
	}
	s.batches = b
	return s, nil
}

// Name returns the sink's configured name.
func (s *Sink) Name() string { return s.name }

// Write hands records to the sink; see sinks.Sink for the contract and Sink for buffering,
// failure and ordering. It blocks while max_in_flight batches are being delivered and the open
// batch is full; it returns early only with ctx's error or sinks.ErrClosed.
func (s *Sink) Write(ctx context.Context, records []record.Record, done func()) error {
	if done == nil {
		done = func() {}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.batches.Write(ctx, records, done)
}

// Flush sends the open batch and waits until every batch so far is delivered or backed up (every
// pending done called), or ctx ends; then it returns ctx's error and delivery goes on.
func (s *Sink) Flush(ctx context.Context) error {
	if err := s.batches.Flush(ctx); err != nil {
		return fmt.Errorf("flush firehose sink %s: %w", s.name, err)
	}
	return nil
}

// Close stops taking Writes, flushes like Flush, and stops the sink. If ctx ends first, the
// deliveries under way are given up (the batcher cancels their context: their retries stop and
// their Writes are never acknowledged; the records will be read again) and Close returns ctx's
// error. After Close, Write returns sinks.ErrClosed.
func (s *Sink) Close(ctx context.Context) error {
	if err := s.batches.Close(ctx); err != nil {
		return fmt.Errorf("close firehose sink %s: %w", s.name, err)
	}
	return nil
}

// Check describes the delivery stream and returns an error, one line meant for the operator, when
// the sink could not deliver to it: the stream does not exist or may not be described, is not
// ACTIVE, does not take PutRecordBatch (it reads from its own Kinesis stream or MSK topic), or has
// another ARN than the configured one (another region or account). It does not retry.
func (s *Sink) Check(ctx context.Context) error {
	out, err := s.client.DescribeDeliveryStream(ctx, &awsfirehose.DescribeDeliveryStreamInput{DeliveryStreamName: aws.String(s.stream)})
	if err != nil {
		switch code := errorCode(err); {
		case code == "ResourceNotFoundException":
			return fmt.Errorf("firehose sink %s: delivery stream %q does not exist in the client's region and account: %w", s.name, s.stream, err)
		case isAccessCode(code):
			return fmt.Errorf("firehose sink %s: not allowed to describe delivery stream %q (the sink needs firehose:DescribeDeliveryStream and firehose:PutRecordBatch): %w", s.name, s.stream, err)
		default:
			return fmt.Errorf("firehose sink %s: describe delivery stream %q: %w", s.name, s.stream, err)
		}
	}
	d := out.DeliveryStreamDescription
	if d == nil {
		return fmt.Errorf("firehose sink %s: describe delivery stream %q: the answer has no description", s.name, s.stream)
	}
	if d.DeliveryStreamStatus != types.DeliveryStreamStatusActive {
		return fmt.Errorf("firehose sink %s: delivery stream %q is %s, not ACTIVE", s.name, s.stream, d.DeliveryStreamStatus)
	}
	if t := d.DeliveryStreamType; t != "" && t != types.DeliveryStreamTypeDirectPut {
		return fmt.Errorf("firehose sink %s: delivery stream %q is of type %s: it reads from its own source and refuses PutRecordBatch; use a DirectPut delivery stream", s.name, s.stream, t)
	}
	if s.arn != "" && aws.ToString(d.DeliveryStreamARN) != s.arn {
		return fmt.Errorf("firehose sink %s: delivery stream %q has ARN %s, not the configured %s: the client reaches another region or account", s.name, s.stream, aws.ToString(d.DeliveryStreamARN), s.arn)
	}
	return nil
}
