package dlq

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// SQSAPI is the part of the SQS client the SQS destination uses; *sqs.Client implements it.
type SQSAPI interface {
	SendMessage(ctx context.Context, in *sqs.SendMessageInput, optFns ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
	GetQueueAttributes(ctx context.Context, in *sqs.GetQueueAttributesInput, optFns ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error)
}

var _ SQSAPI = (*sqs.Client)(nil)

// SQS sends each dead letter as one message to an SQS queue. A message over MaxSQSMessageBytes
// has its records written to the overflow location first. On a FIFO queue (URL ending in
// .fifo) the message group is the source shard, so a shard's dead letters stay in order, and the
// deduplication id is the dead letter's id, so SQS drops a retried Send's duplicate.
// Safe for concurrent use.
type SQS struct {
	client   SQSAPI
	queueURL string
	fifo     bool
	overflow Overflow
}

var (
	_ Destination = (*SQS)(nil)
	_ Checker     = (*SQS)(nil)
)

// NewSQS returns a destination sending to the queue at queueURL, overflowing to overflow.
func NewSQS(client SQSAPI, queueURL string, overflow Overflow) (*SQS, error) {
	if client == nil || queueURL == "" {
		return nil, errors.New("sqs dead letters: a client and a queue URL are required")
	}
	if err := overflow.validate("sqs"); err != nil {
		return nil, err
	}
	return &SQS{client: client, queueURL: queueURL, fifo: strings.HasSuffix(queueURL, ".fifo"), overflow: overflow}, nil
}

// Name returns "sqs <queue URL>".
func (d *SQS) Name() string { return "sqs " + d.queueURL }

// Send sends f's dead letter; see Destination.
func (d *SQS) Send(ctx context.Context, f Failure) error {
	if len(f.Records) == 0 {
		return fmt.Errorf("dead letter to sqs queue %s: %w", d.queueURL, ErrNoRecords)
	}
	body, m, err := d.overflow.fit(ctx, f, MaxSQSMessageBytes, 0)
	if err != nil {
		return fmt.Errorf("dead letter to sqs queue %s: %w", d.queueURL, err)
	}
	in := &sqs.SendMessageInput{QueueUrl: aws.String(d.queueURL), MessageBody: aws.String(string(body))}
	if d.fifo {
		in.MessageGroupId = aws.String(m.KinesisBatchInfo.ShardID)
		in.MessageDeduplicationId = aws.String(m.RequestContext.RequestID)
	}
	if _, err := d.client.SendMessage(ctx, in); err != nil {
		return fmt.Errorf("dead letter to sqs queue %s: send message: %w", d.queueURL, err)
	}
	return nil
}

// Check verifies that the queue and the overflow bucket exist and can be reached.
func (d *SQS) Check(ctx context.Context) error {
	_, err := d.client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl:       aws.String(d.queueURL),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn},
	})
	if err != nil {
		return fmt.Errorf("dead-letter queue %s: %w", d.queueURL, err)
	}
	if err := checkBucket(ctx, d.overflow.Client, d.overflow.Bucket); err != nil {
		return fmt.Errorf("dead-letter overflow: %w", err)
	}
	return nil
}
