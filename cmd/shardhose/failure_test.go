package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/shardhose/shardhose/dlq"
	"github.com/shardhose/shardhose/internal/testenv"
)

// deadLetterQueue is an SQS queue used as the dead-letter destination of a test.
type deadLetterQueue struct {
	client *sqs.Client
	url    string
}

func newDeadLetterQueue(t *testing.T, s *e2eStack) *deadLetterQueue {
	t.Helper()
	c := testenv.SQSClient(t, s.env)
	return &deadLetterQueue{client: c, url: testenv.CreateQueue(t, c, testenv.UniqueName(t, "dlq"))}
}

// config is the dead_letter section sending to this queue, overflowing to the stack's bucket.
func (q *deadLetterQueue) config(s *e2eStack) string {
	return fmt.Sprintf("dead_letter:\n  type: sqs\n  sqs: {queue_url: %q}\n  overflow: {bucket: %s, prefix: dead-letters/}\n", q.url, s.bucket)
}

// receiveAll reads every message in the queue (deleting none) until it has want or the deadline passes.
func (q *deadLetterQueue) receiveAll(t *testing.T, want int, within time.Duration) []dlq.Message {
	t.Helper()
	var msgs []dlq.Message
	seen := map[string]bool{}
	waitFor(t, within, fmt.Sprintf("%d dead letters in the queue", want), func() (bool, string) {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		out, err := q.client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(q.url), MaxNumberOfMessages: 10, VisibilityTimeout: 300})
		if err != nil {
			return false, err.Error()
		}
		for _, m := range out.Messages {
			if seen[aws.ToString(m.MessageId)] {
				continue
			}
			seen[aws.ToString(m.MessageId)] = true
			var msg dlq.Message
			if err := json.Unmarshal([]byte(aws.ToString(m.Body)), &msg); err != nil {
				t.Fatalf("dead letter is not a JSON message: %v\n%s", err, aws.ToString(m.Body))
			}
			msgs = append(msgs, msg)
		}
		return len(msgs) >= want, fmt.Sprintf("%d so far", len(msgs))
	})
	return msgs
}

// count returns the messages in the queue, received or not.
func (q *deadLetterQueue) count(t *testing.T) int {
	t.Helper()
	out, err := q.client.GetQueueAttributes(t.Context(), &sqs.GetQueueAttributesInput{
		QueueUrl:       aws.String(q.url),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages, sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible},
	})
	if err != nil {
		t.Fatalf("queue attributes: %v", err)
	}
	n := 0
	for _, v := range out.Attributes {
		var x int
		fmt.Sscan(v, &x)
		n += x
	}
	return n
}

// TestSeedPoisonPillGoesAloneToTheDeadLetterQueue is seed 004's scenario: three good records and
// one that is not JSON in one batch, bisect on, two retries. The good ones reach S3; the queue
// holds exactly one dead letter, for the poison record alone, carrying its data.
func TestSeedPoisonPillGoesAloneToTheDeadLetterQueue(t *testing.T) {
	s := newE2EStack(t, 1)
	q := newDeadLetterQueue(t, s)
	recs := []testenv.Rec{
		{PartitionKey: "user-1", Data: []byte(`{"event_id":"evt001","event_type":"purchase","amount":150.5}`)},
		{PartitionKey: "user-2", Data: []byte(`{"event_id":"evt002","event_type":"view"}`)},
		{PartitionKey: "user-3", Data: []byte(`{"event_id":"evt003", this is not JSON`)},
		{PartitionKey: "user-4", Data: []byte(`{"event_id":"evt004","event_type":"add_to_cart"}`)},
	}
	puts := testenv.PutRecords(t, s.kin, s.stream, recs)
	poisonSeq := puts[2].SequenceNumber
	cfg := s.config(t, 1, 1, `processing:
  handlers: [{type: json}]
  bisect_batch_on_function_error: true
  maximum_retry_attempts: 2
  retry: {initial_backoff: 100ms, max_backoff: 200ms}
`+q.config(s))

	d := startDaemon(t, cfg, "worker-a")
	waitFor(t, 60*time.Second, "the shard checkpointed past every record", func() (bool, string) {
		l := s.leases(t)[puts[3].ShardID]
		return l.Checkpoint.SequenceNumber == puts[3].SequenceNumber, "at " + l.Checkpoint.String()
	})
	counts, _ := s.delivered(t)
	for i, r := range recs {
		want := 1
		if i == 2 {
			want = 0
		}
		if counts[string(r.Data)] != want {
			t.Errorf("record %d is in S3 %d times, want %d", i, counts[string(r.Data)], want)
		}
	}
	msgs := q.receiveAll(t, 1, 30*time.Second)
	d.cmd.Process.Signal(syscall.SIGTERM)
	if code := d.waitExit(40 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	// Nothing more arrived by the end of the drain: exactly one dead letter.
	if n := q.count(t); n != 1 {
		t.Fatalf("the queue holds %d dead letters, want exactly 1", n)
	}
	m := msgs[0]
	if m.KinesisBatchInfo.BatchSize != 1 || m.KinesisBatchInfo.StartSequenceNumber != poisonSeq || m.KinesisBatchInfo.EndSequenceNumber != poisonSeq {
		t.Fatalf("KinesisBatchInfo = %+v, want batchSize 1 for sequence %s", m.KinesisBatchInfo, poisonSeq)
	}
	if m.RequestContext.Condition != dlq.RetryAttemptsExhausted || m.AttemptsMade < 3 {
		t.Errorf("condition %s after %d attempts, want RetryAttemptsExhausted after at least 3", m.RequestContext.Condition, m.AttemptsMade)
	}
	got, err := m.Records()
	if err != nil || len(got) != 1 || string(got[0].Data) != string(recs[2].Data) {
		t.Fatalf("dead letter records = %+v (%v), want the poison record's data", got, err)
	}
	t.Logf("dead letter: condition %s, attempts %d, error %q", m.RequestContext.Condition, m.AttemptsMade, m.ErrorMessage)
}

// TestParallelizationKeepsPerKeyOrderAtTheSink: 1,000 records over 50 partition keys on one shard,
// five lanes: every record arrives and each key's records are in order.
func TestParallelizationKeepsPerKeyOrderAtTheSink(t *testing.T) {
	s := newE2EStack(t, 1)
	var recs []testenv.Rec
	for i := 0; i < 20; i++ {
		for k := 0; k < 50; k++ {
			recs = append(recs, testenv.Rec{PartitionKey: fmt.Sprintf("key-%02d", k), Data: []byte(fmt.Sprintf(`{"key":"key-%02d","n":%d}`, k, i))})
		}
	}
	testenv.PutRecords(t, s.kin, s.stream, recs)
	cfg := s.config(t, 5, 300, `batching: {batch_size: 37}
processing:
  handlers: [{type: json}]
  parallelization_factor: 5
`)
	d := startDaemon(t, cfg, "worker-a")
	waitFor(t, 60*time.Second, "every record handed on", func() (bool, string) {
		n := d.handedToSinks()
		return n >= len(recs), itoa(n)
	})
	d.cmd.Process.Signal(syscall.SIGTERM) // the drain writes the one buffered object
	if code := d.waitExit(40 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	lines := s.objectLines(t)
	if len(lines) != len(recs) {
		t.Fatalf("S3 holds %d records, want %d", len(lines), len(recs))
	}
	next := map[string]int{}
	for _, l := range lines {
		var r struct {
			Key string `json:"key"`
			N   int    `json:"n"`
		}
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatal(err)
		}
		if r.N != next[r.Key] {
			t.Fatalf("key %s: record %d arrived where %d was due", r.Key, r.N, next[r.Key])
		}
		next[r.Key]++
	}
}

// objectLines returns the records of every object in the bucket, objects in key order.
func (s *e2eStack) objectLines(t *testing.T) []string {
	t.Helper()
	keys, bodies := s.objectBodies(t)
	sort.Strings(keys)
	var out []string
	for _, k := range keys {
		for _, l := range strings.Split(strings.TrimSuffix(bodies[k], "\n"), "\n") {
			if l != "" {
				out = append(out, l)
			}
		}
	}
	return out
}
