package dlq

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/shardhose/shardhose/internal/clock"
	"github.com/shardhose/shardhose/record"
)

// RecordsFrom says where a dead letter's records were found.
type RecordsFrom string

// Where records are found.
const (
	FromMessage RecordsFrom = "message" // carried in the message
	FromS3      RecordsFrom = "s3"      // in the overflow object recordsLocation names
	FromStream  RecordsFrom = "stream"  // read from the source stream (a metadata-only message)
)

// KinesisReadAPI is the part of the Kinesis client Fetcher uses to read a metadata-only dead
// letter's records from the source stream; *kinesis.Client implements it.
type KinesisReadAPI interface {
	GetShardIterator(ctx context.Context, in *kinesis.GetShardIteratorInput, optFns ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error)
	GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error)
}

var _ KinesisReadAPI = (*kinesis.Client)(nil)

// ErrNotInStream is wrapped by Fetcher's error when the source stream no longer holds a
// metadata-only dead letter's records: its retention passed them, or the stream is gone.
var ErrNotInStream = errors.New("records are no longer in the stream")

// Fetcher gets a dead letter's records wherever they are: in the message, in the overflow S3
// object, or, for a metadata-only message (as Lambda writes), from the source stream while it
// still holds them. Leave S3 or Kinesis nil to refuse that kind (inspect leaves Kinesis nil so
// that looking does not read streams). A Fetcher is safe for concurrent use if its clients are.
type Fetcher struct {
	S3      S3ReadAPI
	Kinesis KinesisReadAPI
	// Clock paces GetRecords calls; nil means the system clock.
	Clock clock.Clock
	// PollInterval is the wait after a GetRecords call that returned nothing while the shard
	// has more (Kinesis allows 5 calls per shard per second); 0 means 250 ms.
	PollInterval time.Duration
}

// Records returns m's records and where they were found.
//
// From the stream, the read starts AT_SEQUENCE_NUMBER startSequenceNumber in the message's shard
// of the stream named by streamArn (by name, through the Kinesis client's region and endpoint)
// and ends with the record at endSequenceNumber. Kinesis records are returned as stored: the
// user records of a KPL aggregate come back as the one aggregate record, whole. It fails, wrapping
// ErrNotInStream, when the first record is no longer there, and when the shard holds nothing up
// to the last one.
func (f *Fetcher) Records(ctx context.Context, m Message) ([]record.Record, RecordsFrom, error) {
	switch {
	case len(m.Inline) > 0:
		recs, err := m.Records()
		return recs, FromMessage, err
	case m.RecordsLocation != nil:
		recs, err := f.fromS3(ctx, *m.RecordsLocation)
		return recs, FromS3, err
	default:
		recs, err := f.fromStream(ctx, m.KinesisBatchInfo)
		return recs, FromStream, err
	}
}

func (f *Fetcher) fromS3(ctx context.Context, loc Location) ([]record.Record, error) {
	if f.S3 == nil {
		return nil, fmt.Errorf("records are in %s: no S3 client to read them", loc)
	}
	raw, err := getObject(ctx, f.S3, loc.Bucket, loc.Key)
	if err != nil {
		return nil, fmt.Errorf("read records: %w", err)
	}
	full, err := ParseMessage(raw)
	if err != nil {
		return nil, fmt.Errorf("read records from %s: %w", loc, err)
	}
	if len(full.Inline) == 0 {
		return nil, fmt.Errorf("read records from %s: the object holds no records", loc)
	}
	return full.Records()
}

// maxFetchCalls bounds the GetRecords calls of one fetch, so a shard that keeps answering
// empty without being caught up cannot hold a replay forever (at 250 ms, about 40 minutes).
const maxFetchCalls = 10000

func (f *Fetcher) fromStream(ctx context.Context, b KinesisBatchInfo) ([]record.Record, error) {
	if f.Kinesis == nil {
		return nil, fmt.Errorf("%w: it holds only metadata; its records must be read from the stream", ErrNoInlineRecords)
	}
	stream := streamNameOf(b.StreamARN)
	if stream == "" {
		return nil, fmt.Errorf("read records from the stream: streamArn %q names no Kinesis stream", b.StreamARN)
	}
	where := fmt.Sprintf("stream %s shard %s", stream, b.ShardID)
	it, err := f.Kinesis.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
		StreamName:             aws.String(stream),
		ShardId:                aws.String(b.ShardID),
		ShardIteratorType:      ktypes.ShardIteratorTypeAtSequenceNumber,
		StartingSequenceNumber: aws.String(b.StartSequenceNumber),
	})
	if err != nil {
		var notFound *ktypes.ResourceNotFoundException
		if errors.As(err, &notFound) {
			return nil, fmt.Errorf("read records %s..%s from %s: %w: %w", b.StartSequenceNumber, b.EndSequenceNumber, where, ErrNotInStream, err)
		}
		return nil, fmt.Errorf("read records from %s: get shard iterator at %s: %w", where, b.StartSequenceNumber, err)
	}
	clk := f.Clock
	if clk == nil {
		clk = clock.Real()
	}
	poll := f.PollInterval
	if poll <= 0 {
		poll = 250 * time.Millisecond
	}
	iter := it.ShardIterator
	var out []record.Record
	for calls := 0; ; calls++ {
		if iter == nil {
			return nil, fmt.Errorf("read records from %s: %w: the shard ended before sequence number %s", where, ErrNotInStream, b.EndSequenceNumber)
		}
		if calls == maxFetchCalls {
			return nil, fmt.Errorf("read records from %s: sequence number %s not reached after %d reads", where, b.EndSequenceNumber, calls)
		}
		res, err := f.Kinesis.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter})
		if err != nil {
			return nil, fmt.Errorf("read records from %s: %w", where, err)
		}
		for _, r := range res.Records {
			seq := aws.ToString(r.SequenceNumber)
			if len(out) == 0 && seq != b.StartSequenceNumber {
				return nil, fmt.Errorf("read records from %s: %w: the first record is gone (the oldest is %s, the dead letter starts at %s)",
					where, ErrNotInStream, seq, b.StartSequenceNumber)
			}
			if record.CompareSequenceNumbers(seq, b.EndSequenceNumber) > 0 {
				return out, nil
			}
			out = append(out, record.Record{
				StreamName:                  stream,
				ShardID:                     b.ShardID,
				PartitionKey:                aws.ToString(r.PartitionKey),
				SequenceNumber:              seq,
				Data:                        r.Data,
				ApproximateArrivalTimestamp: aws.ToTime(r.ApproximateArrivalTimestamp),
			})
			if seq == b.EndSequenceNumber {
				return out, nil
			}
		}
		iter = res.NextShardIterator
		if len(res.Records) == 0 {
			if aws.ToInt64(res.MillisBehindLatest) == 0 && iter != nil {
				if len(out) == 0 {
					return nil, fmt.Errorf("read records from %s: %w: nothing at or after sequence number %s", where, ErrNotInStream, b.StartSequenceNumber)
				}
				return nil, fmt.Errorf("read records from %s: %w: the shard holds records only up to %s, the dead letter ends at %s",
					where, ErrNotInStream, out[len(out)-1].SequenceNumber, b.EndSequenceNumber)
			}
			if err := clock.Sleep(ctx, clk, poll); err != nil {
				return nil, fmt.Errorf("read records from %s: %w", where, err)
			}
		}
	}
}
