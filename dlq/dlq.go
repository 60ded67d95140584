// Package dlq writes dead letters, the batches the processing stage gave up on, and reads them
// back to inspect or replay them.
//
// A dead letter is Lambda's on-failure record for Kinesis, field for field (see Message), plus
// what Lambda leaves out: the last error message, the attempts made, and the records themselves.
// Lambda's metadata-only record makes users race the stream's retention to fetch the records;
// here they travel with the message, or, where the message would exceed its destination's size
// limit (SQS and SNS 256 KiB, a Kinesis record 1 MiB), in an S3 object the message points at.
//
// Writing: a Destination (SQS, SNS, S3, Kinesis or a local file, built from the configuration
// by Build) stores one dead letter per Send and reports success only once it is durably stored.
// It does not retry beyond the AWS SDK's own attempts: the caller retries until Send succeeds
// and does not checkpoint past the records until then, so nothing given up on is ever dropped.
//
// Reading: a Reader yields stored dead letters (from SQS, S3 or a file); a Fetcher gets each
// one's records wherever they are (in the message, in the overflow object, or still in the
// source stream, for Lambda's metadata-only records); Replay puts them back into a stream and,
// for SQS, deletes a message only after its records were accepted.
package dlq

import (
	"context"
	"errors"
	"time"

	"github.com/shardhose/shardhose/record"
)

// Condition says why a batch was given up on. The first two are Lambda's values of
// requestContext.condition.
type Condition string

// Conditions.
const (
	// RetryAttemptsExhausted: the handler failed on the batch MaximumRetryAttempts+1 times.
	RetryAttemptsExhausted Condition = "RetryAttemptsExhausted"
	// RecordAgeExceeded: the batch's oldest record passed MaximumRecordAgeInSeconds.
	RecordAgeExceeded Condition = "RecordAgeExceeded"
	// DeaggregationFailed: a KPL aggregate could not be split into its user records; it is
	// dead-lettered whole, as the one Kinesis record it is.
	DeaggregationFailed Condition = "DeaggregationFailed"
)

// Failure is one batch given up on: what the caller hands to Destination.Send.
//
// Records are in shard order and never empty; KinesisBatchInfo's sequence range and arrival
// times come from the first and last of them. StreamARN identifies the source stream in the
// message (Lambda's streamArn); replaying a metadata-only dead letter depends on it.
type Failure struct {
	Condition  Condition
	StreamName string
	StreamARN  string
	ShardID    string
	Region     string
	// Records are the batch's records, in order; never empty.
	Records []record.Record
	// Attempts is how many times the handler was invoked on the batch (approximateInvokeCount).
	Attempts int
	// ErrorMessage is the last error.
	ErrorMessage string
	// FunctionError is "Unhandled" for a handler error, "" when not applicable.
	FunctionError string
	// FunctionARN is the handler's identity: a Lambda function's ARN, or "shardhose:<handler chain name>".
	FunctionARN string
	// Time is when the batch was given up on; it dates the message and its S3 keys. The caller
	// sets it once and sends the same Failure on every retry of Send, which then writes the same
	// message id and the same S3 keys (see Message.RequestContext.RequestID).
	Time time.Time
}

// Destination stores dead letters.
//
// Send returns nil only once the dead letter is durably stored (the SQS message sent, the SNS
// message accepted, the S3 object or the Kinesis record written, the file line synced). It makes
// no retries of its own beyond the AWS SDK's: on an error the caller retries, with backoff, until
// Send succeeds, and meanwhile does not checkpoint past the failure's records. A retried Send of
// the same Failure writes the same message id and S3 keys, so a retry after an ambiguous error
// (a timeout after the service stored the message) yields at worst a duplicate with the same id,
// and an S3 object is simply overwritten.
//
// Implementations are safe for concurrent use.
type Destination interface {
	// Name says what the destination is, for logs: "sqs https://…/dlq", "file ./dead-letters.jsonl".
	Name() string
	// Send stores one dead letter; see the contract above.
	Send(ctx context.Context, f Failure) error
}

// Checker is implemented by destinations that can verify, before any dead letter is sent, that
// their queue, topic, bucket, stream or file is usable. Every destination of this package
// implements it. Call it at start-up: a missing queue is then a configuration error at once,
// rather than a shard stuck retrying Send when its first poison record arrives.
type Checker interface {
	Check(ctx context.Context) error
}

// Size limits of the destinations: a message larger than its limit has its records moved to
// the overflow S3 location.
const (
	// MaxSQSMessageBytes is SQS's limit on a message body: 256 KiB.
	MaxSQSMessageBytes = 256 << 10
	// MaxSNSMessageBytes is SNS's limit on a published message: 256 KiB.
	MaxSNSMessageBytes = 256 << 10
	// MaxKinesisRecordBytes is Kinesis's limit on a record's data plus partition key: 1 MiB.
	MaxKinesisRecordBytes = 1 << 20
)

// ErrNoRecords is returned by Send for a Failure without records: a caller's bug, since a batch
// given up on always has at least one record.
var ErrNoRecords = errors.New("dead letter has no records")
