package dlq

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sns"
)

// SNSAPI is the part of the SNS client the SNS destination uses; *sns.Client implements it.
type SNSAPI interface {
	Publish(ctx context.Context, in *sns.PublishInput, optFns ...func(*sns.Options)) (*sns.PublishOutput, error)
	GetTopicAttributes(ctx context.Context, in *sns.GetTopicAttributesInput, optFns ...func(*sns.Options)) (*sns.GetTopicAttributesOutput, error)
}

var _ SNSAPI = (*sns.Client)(nil)

// SNS publishes each dead letter as one message to an SNS topic. A message over
// MaxSNSMessageBytes has its records written to the overflow location first. On a FIFO topic
// (ARN ending in .fifo) the message group is the source shard and the deduplication id the dead
// letter's id. Send succeeds once SNS accepted the message; delivering it to the subscribers is
// SNS's job, so subscribe something durable (an SQS queue). Safe for concurrent use.
type SNS struct {
	client   SNSAPI
	topicARN string
	fifo     bool
	overflow Overflow
}

var (
	_ Destination = (*SNS)(nil)
	_ Checker     = (*SNS)(nil)
)

// NewSNS returns a destination publishing to the topic topicARN, overflowing to overflow.
func NewSNS(client SNSAPI, topicARN string, overflow Overflow) (*SNS, error) {
	if client == nil || topicARN == "" {
		return nil, errors.New("sns dead letters: a client and a topic ARN are required")
	}
	if err := overflow.validate("sns"); err != nil {
		return nil, err
	}
	return &SNS{client: client, topicARN: topicARN, fifo: strings.HasSuffix(topicARN, ".fifo"), overflow: overflow}, nil
}

// Name returns "sns <topic ARN>".
func (d *SNS) Name() string { return "sns " + d.topicARN }

// Send publishes f's dead letter; see Destination.
func (d *SNS) Send(ctx context.Context, f Failure) error {
	if len(f.Records) == 0 {
		return fmt.Errorf("dead letter to sns topic %s: %w", d.topicARN, ErrNoRecords)
	}
	body, m, err := d.overflow.fit(ctx, f, MaxSNSMessageBytes, 0)
	if err != nil {
		return fmt.Errorf("dead letter to sns topic %s: %w", d.topicARN, err)
	}
	in := &sns.PublishInput{TopicArn: aws.String(d.topicARN), Message: aws.String(string(body))}
	if d.fifo {
		in.MessageGroupId = aws.String(m.KinesisBatchInfo.ShardID)
		in.MessageDeduplicationId = aws.String(m.RequestContext.RequestID)
	}
	if _, err := d.client.Publish(ctx, in); err != nil {
		return fmt.Errorf("dead letter to sns topic %s: publish: %w", d.topicARN, err)
	}
	return nil
}

// Check verifies that the topic and the overflow bucket exist and can be reached.
func (d *SNS) Check(ctx context.Context) error {
	if _, err := d.client.GetTopicAttributes(ctx, &sns.GetTopicAttributesInput{TopicArn: aws.String(d.topicARN)}); err != nil {
		return fmt.Errorf("dead-letter topic %s: %w", d.topicARN, err)
	}
	if err := checkBucket(ctx, d.overflow.Client, d.overflow.Bucket); err != nil {
		return fmt.Errorf("dead-letter overflow: %w", err)
	}
	return nil
}
