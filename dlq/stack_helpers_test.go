package dlq

import (
	"context"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/shardhose/shardhose/internal/testenv"
)

// stackWait bounds every wait for the local stack to show something.
const stackWait = 60 * time.Second

// pollEvery is how often a test asks the stack again.
const pollEvery = 50 * time.Millisecond

// snsClient returns a client of moto's SNS (testenv has none).
func snsClient(t testing.TB, e testenv.Env) *sns.Client {
	t.Helper()
	return sns.NewFromConfig(testenv.AWSConfig(t, e.Moto), func(o *sns.Options) {
		o.BaseEndpoint = aws.String(e.Moto)
	})
}

// createTopic creates an SNS topic, deleted when the test ends, and returns its ARN.
func createTopic(t testing.TB, c *sns.Client, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), stackWait)
	defer cancel()
	out, err := c.CreateTopic(ctx, &sns.CreateTopicInput{Name: aws.String(name)})
	if err != nil {
		t.Fatalf("create topic %s: %v", name, err)
	}
	arn := aws.ToString(out.TopicArn)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if _, err := c.DeleteTopic(ctx, &sns.DeleteTopicInput{TopicArn: aws.String(arn)}); err != nil {
			t.Logf("cleanup: delete topic %s: %v", arn, err)
		}
	})
	return arn
}

// subscribeQueue subscribes the queue at url to the topic (SNS's envelope kept: no raw delivery).
func subscribeQueue(t testing.TB, c *sns.Client, q *sqs.Client, topicARN, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), stackWait)
	defer cancel()
	attrs, err := q.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(url), AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn},
	})
	if err != nil {
		t.Fatalf("queue ARN of %s: %v", url, err)
	}
	if _, err := c.Subscribe(ctx, &sns.SubscribeInput{
		TopicArn: aws.String(topicARN), Protocol: aws.String("sqs"),
		Endpoint: aws.String(attrs.Attributes[string(sqstypes.QueueAttributeNameQueueArn)]),
	}); err != nil {
		t.Fatalf("subscribe %s to %s: %v", url, topicARN, err)
	}
}

// receiveAll receives messages from the queue until it has n of them (deleting none; each stays
// hidden for the test's duration), or fails the test after stackWait.
func receiveAll(t testing.TB, q *sqs.Client, url string, n int) []sqstypes.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), stackWait)
	defer cancel()
	var got []sqstypes.Message
	for len(got) < n {
		out, err := q.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl: aws.String(url), MaxNumberOfMessages: 10, VisibilityTimeout: 600, WaitTimeSeconds: 1,
		})
		if err != nil {
			t.Fatalf("receive from %s: have %d of %d messages: %v", url, len(got), n, err)
		}
		got = append(got, out.Messages...)
	}
	if len(got) != n {
		t.Fatalf("received %d messages from %s, want %d", len(got), url, n)
	}
	return got
}

// queueDepth returns the queue's visible plus in-flight messages.
func queueDepth(t testing.TB, q *sqs.Client, url string) int {
	t.Helper()
	out, err := q.GetQueueAttributes(t.Context(), &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(url),
		AttributeNames: []sqstypes.QueueAttributeName{
			sqstypes.QueueAttributeNameApproximateNumberOfMessages,
			sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
		},
	})
	if err != nil {
		t.Fatalf("attributes of %s: %v", url, err)
	}
	n := 0
	for _, k := range []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages, sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible} {
		v, err := strconv.Atoi(out.Attributes[string(k)])
		if err != nil {
			t.Fatalf("attribute %s of %s: %q", k, url, out.Attributes[string(k)])
		}
		n += v
	}
	return n
}

// readStream reads every shard of the stream from TRIM_HORIZON until it has n records, then
// once more (so extras show), and returns them in shard order; it fails the test after stackWait.
func readStream(t testing.TB, c *kinesis.Client, stream string, n int) []ktypes.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), stackWait)
	defer cancel()
	shards, err := c.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	if err != nil {
		t.Fatalf("list shards of %s: %v", stream, err)
	}
	ids := make([]string, 0, len(shards.Shards))
	for _, s := range shards.Shards {
		ids = append(ids, aws.ToString(s.ShardId))
	}
	sort.Strings(ids)
	iters := map[string]*string{}
	for _, id := range ids {
		it, err := c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
			StreamName: aws.String(stream), ShardId: aws.String(id), ShardIteratorType: ktypes.ShardIteratorTypeTrimHorizon,
		})
		if err != nil {
			t.Fatalf("iterator of %s/%s: %v", stream, id, err)
		}
		iters[id] = it.ShardIterator
	}
	byShard := map[string][]ktypes.Record{}
	total := 0
	for total < n {
		progress := false
		for _, id := range ids {
			if iters[id] == nil {
				continue
			}
			out, err := c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iters[id]})
			if err != nil {
				t.Fatalf("read %s/%s: have %d of %d records: %v", stream, id, total, n, err)
			}
			iters[id] = out.NextShardIterator
			byShard[id] = append(byShard[id], out.Records...)
			total += len(out.Records)
			progress = progress || len(out.Records) > 0
		}
		if !progress && total < n {
			select {
			case <-ctx.Done():
				t.Fatalf("read %s: %d of %d records after %s", stream, total, n, stackWait)
			case <-time.After(pollEvery):
			}
		}
	}
	// One more read of every shard, so that records beyond n show up as extras.
	for _, id := range ids {
		if iters[id] == nil {
			continue
		}
		out, err := c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iters[id]})
		if err != nil {
			t.Fatalf("read %s/%s after %d records: %v", stream, id, total, err)
		}
		byShard[id] = append(byShard[id], out.Records...)
	}
	var all []ktypes.Record
	for _, id := range ids {
		all = append(all, byShard[id]...)
	}
	return all
}
