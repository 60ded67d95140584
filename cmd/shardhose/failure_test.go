package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
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
		out, err := q.client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(q.url), MaxNumberOfMessages: 10, VisibilityTimeout: 1})
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

// visible returns the messages in the queue that a receive would return now.
func (q *deadLetterQueue) visible(t *testing.T) int {
	t.Helper()
	out, err := q.client.GetQueueAttributes(t.Context(), &sqs.GetQueueAttributesInput{
		QueueUrl:       aws.String(q.url),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages},
	})
	if err != nil {
		t.Fatalf("queue attributes: %v", err)
	}
	var n int
	fmt.Sscan(out.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessages)], &n)
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

	// Re-drive straight to the sinks: the record (fixed or not: here as it was) lands in S3, and
	// the message is deleted once it is there.
	waitFor(t, 10*time.Second, "the dead letter visible again", func() (bool, string) { return q.visible(t) == 1, "" })
	out, code := runCLI(t, "dlq", "replay", "-c", cfg, "--to-sinks")
	if code != 0 {
		t.Fatalf("dlq replay --to-sinks exit %d:\n%s", code, out)
	}
	if counts, _ := s.delivered(t); counts[string(recs[2].Data)] != 1 {
		t.Fatalf("after replay to the sinks, S3 holds the poison record %d times, want 1\n%s", counts[string(recs[2].Data)], out)
	}
	if n := q.count(t); n != 0 {
		t.Fatalf("%d dead letters left after replay to the sinks, want 0", n)
	}
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

// TestTenThousandRecordsWithThreePoisonRecords: exactly 9,997 records reach S3 and three dead
// letters hold one poison record each; the handler calls are counted against the bisect bound.
// Then `shardhose dlq replay` sends the three back into a second stream, where all three arrive.
func TestTenThousandRecordsWithThreePoisonRecords(t *testing.T) {
	s := newE2EStack(t, 1)
	q := newDeadLetterQueue(t, s)
	const n = 10000
	poison := map[int]bool{1234: true, 5000: true, 8765: true}
	recs := make([]testenv.Rec, n)
	for i := range recs {
		data := fmt.Sprintf(`{"id":%d,"event_type":"view"}`, i)
		if poison[i] {
			data = fmt.Sprintf(`{"id":%d, poison`, i)
		}
		recs[i] = testenv.Rec{PartitionKey: fmt.Sprintf("user-%d", i%101), Data: []byte(data)}
	}
	testenv.PutRecords(t, s.kin, s.stream, recs)
	cfg := s.config(t, 5, 1, `batching: {batch_size: 10000}
processing:
  handlers: [{type: json}]
  bisect_batch_on_function_error: true
  maximum_retry_attempts: 2
  retry: {initial_backoff: 10ms, max_backoff: 50ms}
`+q.config(s))
	d := startDaemon(t, cfg, "worker-a")
	msgs := q.receiveAll(t, len(poison), 120*time.Second)
	waitFor(t, 120*time.Second, "9,997 records in S3", func() (bool, string) {
		counts, _ := s.delivered(t)
		return len(counts) >= n-len(poison), itoa(len(counts))
	})
	d.cmd.Process.Signal(syscall.SIGTERM)
	if code := d.waitExit(40 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	counts, _ := s.delivered(t)
	for i, r := range recs {
		want := 1
		if poison[i] {
			want = 0
		}
		if counts[string(r.Data)] != want {
			t.Fatalf("record %d is in S3 %d times, want %d", i, counts[string(r.Data)], want)
		}
	}
	if q.count(t) != len(poison) {
		t.Fatalf("%d dead letters, want %d", q.count(t), len(poison))
	}
	for _, m := range msgs {
		if m.KinesisBatchInfo.BatchSize != 1 {
			t.Fatalf("a dead letter holds %d records, want each poison record alone", m.KinesisBatchInfo.BatchSize)
		}
	}
	calls, batches := d.handlerCalls()
	k := float64(len(poison))
	bound := 2*k*math.Ceil(math.Log2(float64(n))) + 1
	t.Logf("%d handler calls for %d batches read; isolating %d poison records in %d used %d calls beyond the retries (bound 2·k·⌈log2 N⌉ + 1 = %.0f)",
		calls, batches, len(poison), n, calls-batches-2*len(poison), bound)
	// Each poison record also has its 2 retries; every batch read costs one call of its own.
	if float64(calls-2*len(poison)) > bound+float64(batches) {
		t.Fatalf("%d handler calls, above the bound", calls)
	}

	// Replay the three dead letters into a second stream.
	second := testenv.UniqueName(t, "replayed")
	testenv.CreateStream(t, s.kin, second, 1)
	// Messages this test received are hidden for a second; wait until all are visible again.
	waitFor(t, 10*time.Second, "dead letters visible again", func() (bool, string) {
		n := q.visible(t)
		return n == len(poison), itoa(n)
	})
	out, code := runCLI(t, "dlq", "replay", "-c", cfg, "--to-stream", second)
	t.Logf("dlq replay:\n%s", out)
	if code != 0 {
		t.Fatalf("dlq replay exit %d:\n%s", code, out)
	}
	got := readStream(t, s, second, len(poison))
	for i := range poison {
		if !got[string(recs[i].Data)] {
			t.Fatalf("poison record %d did not arrive in %s; got %v", i, second, got)
		}
	}
	if q.count(t) != 0 {
		t.Errorf("%d dead letters left in the queue after a successful replay, want 0", q.count(t))
	}
	t.Logf("replayed %d dead letters into %s", len(poison), second)
}

// handlerCalls counts the handler calls the daemon logged, and the batches it handed on.
func (d *daemon) handlerCalls() (calls, batches int) {
	sc := bufio.NewScanner(strings.NewReader(d.logs.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line struct {
			Msg string `json:"msg"`
		}
		if json.Unmarshal(sc.Bytes(), &line) != nil {
			continue
		}
		switch line.Msg {
		case "handler called":
			calls++
		case "records handed on":
			batches++
		}
	}
	return calls, batches
}

// readStream reads a one-shard stream from its start until want records are seen.
func readStream(t *testing.T, s *e2eStack, stream string, want int) map[string]bool {
	t.Helper()
	ctx := t.Context()
	shards, err := s.kin.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	if err != nil {
		t.Fatal(err)
	}
	it, err := s.kin.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(stream), ShardId: shards.Shards[0].ShardId, ShardIteratorType: ktypes.ShardIteratorTypeTrimHorizon})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	iter := it.ShardIterator
	waitFor(t, 30*time.Second, fmt.Sprintf("%d records in %s", want, stream), func() (bool, string) {
		out, err := s.kin.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter})
		if err != nil {
			return false, err.Error()
		}
		for _, r := range out.Records {
			got[string(r.Data)] = true
		}
		iter = out.NextShardIterator
		return len(got) >= want, itoa(len(got))
	})
	return got
}
