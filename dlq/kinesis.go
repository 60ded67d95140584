package dlq

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
)

// KinesisAPI is the part of the Kinesis client the Kinesis destination uses; *kinesis.Client
// implements it.
type KinesisAPI interface {
	PutRecord(ctx context.Context, in *kinesis.PutRecordInput, optFns ...func(*kinesis.Options)) (*kinesis.PutRecordOutput, error)
	DescribeStreamSummary(ctx context.Context, in *kinesis.DescribeStreamSummaryInput, optFns ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error)
}

var _ KinesisAPI = (*kinesis.Client)(nil)

// Kinesis puts each dead letter as one record into a Kinesis stream, with the source shard's id
// as partition key, so one shard's dead letters stay in order in one shard of the stream. A
// dead letter over MaxKinesisRecordBytes (data plus partition key) has its records written to
// the overflow location first. Safe for concurrent use.
type Kinesis struct {
	client   KinesisAPI
	stream   string // name or ARN, as configured
	overflow Overflow
}

var (
	_ Destination = (*Kinesis)(nil)
	_ Checker     = (*Kinesis)(nil)
)

// NewKinesis returns a destination putting records into stream (a name or an ARN), overflowing
// to overflow.
func NewKinesis(client KinesisAPI, stream string, overflow Overflow) (*Kinesis, error) {
	if client == nil || stream == "" {
		return nil, errors.New("kinesis dead letters: a client and a stream are required")
	}
	if err := overflow.validate("kinesis"); err != nil {
		return nil, err
	}
	return &Kinesis{client: client, stream: stream, overflow: overflow}, nil
}

// Name returns "kinesis <stream>".
func (d *Kinesis) Name() string { return "kinesis " + d.stream }

func (d *Kinesis) streamRef() (name, arn *string) {
	if strings.HasPrefix(d.stream, "arn:") {
		return nil, aws.String(d.stream)
	}
	return aws.String(d.stream), nil
}

// Send puts f's dead letter; see Destination.
func (d *Kinesis) Send(ctx context.Context, f Failure) error {
	if len(f.Records) == 0 {
		return fmt.Errorf("dead letter to kinesis stream %s: %w", d.stream, ErrNoRecords)
	}
	key := f.ShardID
	if key == "" {
		key = f.Records[0].ShardID
	}
	if key == "" {
		key = "unknown-shard"
	}
	body, _, err := d.overflow.fit(ctx, f, MaxKinesisRecordBytes, len(key))
	if err != nil {
		return fmt.Errorf("dead letter to kinesis stream %s: %w", d.stream, err)
	}
	in := &kinesis.PutRecordInput{Data: body, PartitionKey: aws.String(key)}
	in.StreamName, in.StreamARN = d.streamRef()
	if _, err := d.client.PutRecord(ctx, in); err != nil {
		return fmt.Errorf("dead letter to kinesis stream %s: put record: %w", d.stream, err)
	}
	return nil
}

// Check verifies that the stream and the overflow bucket exist and can be reached.
func (d *Kinesis) Check(ctx context.Context) error {
	in := &kinesis.DescribeStreamSummaryInput{}
	in.StreamName, in.StreamARN = d.streamRef()
	if _, err := d.client.DescribeStreamSummary(ctx, in); err != nil {
		return fmt.Errorf("dead-letter stream %s: %w", d.stream, err)
	}
	if err := checkBucket(ctx, d.overflow.Client, d.overflow.Bucket); err != nil {
		return fmt.Errorf("dead-letter overflow: %w", err)
	}
	return nil
}
