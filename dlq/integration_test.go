package dlq

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/shardhose/shardhose/internal/retry"
	"github.com/shardhose/shardhose/internal/testenv"
	"github.com/shardhose/shardhose/record"
)

// testVisibility is the visibility timeout of the tests' SQS readers: a message whose receive
// answer is lost on the way (moto's connections break now and then) reappears within it, and
// the reader waits for it that long at most.
const testVisibility = 10 * time.Second

// overflowPrefix is where the integration tests' destinations overflow to.
const overflowPrefix = "dead-letters/records/"

// bigFailure has n records of 1 KiB: 300 of them make a dead letter of about 400 KiB (base64),
// over SQS's and SNS's 256 KiB.
func bigFailure(shard string, n int, tm time.Time) Failure {
	f := smallFailure(shard, n, 1024, tm)
	for i := range f.Records {
		f.Records[i].Data = []byte(fmt.Sprintf("%05d:%s", i, strings.Repeat("x", 1018)))
	}
	return f
}

// sameRecords fails the test unless got holds want's records: keys, positions, data.
func sameRecords(t *testing.T, what string, got []record.Record, want []record.Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d records, want %d", what, len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.PartitionKey != w.PartitionKey || g.SequenceNumber != w.SequenceNumber || g.SubSequenceNumber != w.SubSequenceNumber || string(g.Data) != string(w.Data) {
			t.Fatalf("%s: record %d = {%s %s.%d %d bytes}, want {%s %s.%d %d bytes}", what, i,
				g.PartitionKey, g.SequenceNumber, g.SubSequenceNumber, len(g.Data), w.PartitionKey, w.SequenceNumber, w.SubSequenceNumber, len(w.Data))
		}
	}
}

// checkSmallAndBig checks the two messages a size-limited destination wrote for small (inline)
// and big (overflowed to S3), whatever order they arrived in.
func checkSmallAndBig(t *testing.T, bodies []string, limit int, small, big Failure, fetch *Fetcher) {
	t.Helper()
	var sawSmall, sawBig bool
	for _, body := range bodies {
		m, err := ParseMessage([]byte(body))
		if err != nil {
			t.Fatalf("parse message: %v", err)
		}
		switch m.KinesisBatchInfo.ShardID {
		case small.ShardID:
			sawSmall = true
			want, _ := encode(NewMessage(small))
			if m.RecordsLocation != nil || len(m.Inline) != len(small.Records) {
				t.Errorf("small dead letter: %d inline records, location %v", len(m.Inline), m.RecordsLocation)
			}
			if !strings.Contains(body, "\"Type\"") && body != string(want) {
				t.Errorf("small dead letter differs from NewMessage:\n got %s\nwant %s", body, want)
			}
			recs, err := m.Records()
			if err != nil {
				t.Fatal(err)
			}
			sameRecords(t, "small dead letter", recs, small.Records)
		case big.ShardID:
			sawBig = true
			if m.RecordsLocation == nil || len(m.Inline) != 0 {
				t.Fatalf("big dead letter (%d records): not overflowed", len(big.Records))
			}
			if got := m.KinesisBatchInfo; got.BatchSize != len(big.Records) || got.StartSequenceNumber != big.Records[0].SequenceNumber {
				t.Errorf("big dead letter's batch info %+v", got)
			}
			raw, _ := encode(m)
			if len(raw) > limit {
				t.Errorf("big dead letter's message is %d bytes, over %d", len(raw), limit)
			}
			if !strings.HasPrefix(m.RecordsLocation.Key, overflowPrefix) {
				t.Errorf("overflow key %s is not under %s", m.RecordsLocation.Key, overflowPrefix)
			}
			recs, from, err := fetch.Records(t.Context(), m)
			if err != nil || from != FromS3 {
				t.Fatalf("fetch the big dead letter's records: %v (from %s)", err, from)
			}
			sameRecords(t, "big dead letter from "+m.RecordsLocation.String(), recs, big.Records)
		default:
			t.Errorf("unexpected dead letter of shard %s", m.KinesisBatchInfo.ShardID)
		}
	}
	if !sawSmall || !sawBig {
		t.Errorf("saw the small dead letter: %v, the big one: %v", sawSmall, sawBig)
	}
}

func TestSQSDestination(t *testing.T) {
	env := testenv.Require(t)
	ctx := t.Context()
	s3c, q := testenv.S3Client(t, env), testenv.SQSClient(t, env)
	bucket := testenv.UniqueName(t, "dlq")
	testenv.CreateBucket(t, s3c, bucket)
	url := testenv.CreateQueue(t, q, testenv.UniqueName(t, "dlq"))

	d, err := NewSQS(q, url, Overflow{Client: s3c, Bucket: bucket, Prefix: overflowPrefix})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Check(ctx); err != nil {
		t.Fatalf("Check: %v", err)
	}
	now := time.Now()
	small, big := smallFailure("shardId-000000000001", 5, 100, now), bigFailure("shardId-000000000002", 300, now)
	for _, f := range []Failure{small, big} {
		if err := d.Send(ctx, f); err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
	var bodies []string
	for _, m := range receiveAll(t, q, url, 2) {
		bodies = append(bodies, aws.ToString(m.Body))
	}
	checkSmallAndBig(t, bodies, MaxSQSMessageBytes, small, big, &Fetcher{S3: s3c})

	missing, _ := NewSQS(q, strings.TrimSuffix(url, "/"+lastPart(url))+"/no-such-queue", Overflow{Client: s3c, Bucket: bucket})
	if err := missing.Check(ctx); err == nil {
		t.Error("Check of a missing queue passed")
	}
	if err := missing.Send(ctx, small); err == nil {
		t.Error("Send to a missing queue succeeded")
	}
}

func lastPart(url string) string { return url[strings.LastIndex(url, "/")+1:] }

func TestSNSDestination(t *testing.T) {
	env := testenv.Require(t)
	ctx := t.Context()
	s3c, q, p := testenv.S3Client(t, env), testenv.SQSClient(t, env), snsClient(t, env)
	bucket := testenv.UniqueName(t, "dlq")
	testenv.CreateBucket(t, s3c, bucket)
	topic := createTopic(t, p, testenv.UniqueName(t, "dlq"))
	url := testenv.CreateQueue(t, q, testenv.UniqueName(t, "dlq-sub"))
	subscribeQueue(t, p, q, topic, url)

	d, err := NewSNS(p, topic, Overflow{Client: s3c, Bucket: bucket, Prefix: overflowPrefix})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Check(ctx); err != nil {
		t.Fatalf("Check: %v", err)
	}
	now := time.Now()
	small, big := smallFailure("shardId-000000000001", 5, 100, now), bigFailure("shardId-000000000002", 300, now)
	for _, f := range []Failure{small, big} {
		if err := d.Send(ctx, f); err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
	var bodies []string
	for _, m := range receiveAll(t, q, url, 2) {
		body := aws.ToString(m.Body)
		if !strings.Contains(body, `"Type"`) || !strings.Contains(body, "Notification") {
			t.Errorf("message from the subscribed queue is not in SNS's envelope: %.200s", body)
		}
		bodies = append(bodies, body)
	}
	checkSmallAndBig(t, bodies, MaxSNSMessageBytes, small, big, &Fetcher{S3: s3c})
}

func TestS3Destination(t *testing.T) {
	env := testenv.Require(t)
	ctx := t.Context()
	s3c := testenv.S3Client(t, env)
	bucket := testenv.UniqueName(t, "dlq")
	testenv.CreateBucket(t, s3c, bucket)
	d, err := NewS3(s3c, bucket, "dead-letters/")
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Check(ctx); err != nil {
		t.Fatalf("Check: %v", err)
	}
	now := time.Now()
	small, big := smallFailure("shardId-000000000001", 5, 100, now), bigFailure("shardId-000000000002", 1200, now)
	for _, f := range []Failure{small, big, small} { // the retried Send of small overwrites its object
		if err := d.Send(ctx, f); err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
	list, err := s3c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range list.Contents {
		keys = append(keys, aws.ToString(o.Key))
	}
	want := []string{ObjectKey("dead-letters/", NewMessage(small)), ObjectKey("dead-letters/", NewMessage(big))}
	slices.Sort(want)
	if !slices.Equal(keys, want) {
		t.Fatalf("objects %v, want %v", keys, want)
	}
	r := NewS3Reader(s3c, bucket, "dead-letters/")
	n := 0
	for {
		l, err := r.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil || l.Err != nil {
			t.Fatalf("read: %v %v", err, l.Err)
		}
		n++
		recs, err := l.Message.Records()
		if err != nil {
			t.Fatal(err)
		}
		wantRecs := small.Records
		if l.Message.KinesisBatchInfo.ShardID == big.ShardID {
			wantRecs = big.Records // 1200 KiB of records: inline, S3 has no small limit
		}
		sameRecords(t, l.Origin, recs, wantRecs)
	}
	if n != 2 {
		t.Errorf("read %d dead letters, want 2", n)
	}
}

func TestKinesisDestination(t *testing.T) {
	env := testenv.Require(t)
	ctx := t.Context()
	s3c, kin := testenv.S3Client(t, env), testenv.KinesisClient(t, env)
	bucket := testenv.UniqueName(t, "dlq")
	testenv.CreateBucket(t, s3c, bucket)
	stream := testenv.UniqueName(t, "dlq")
	testenv.CreateStream(t, kin, stream, 1)

	d, err := NewKinesis(kin, stream, Overflow{Client: s3c, Bucket: bucket, Prefix: overflowPrefix})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Check(ctx); err != nil {
		t.Fatalf("Check: %v", err)
	}
	now := time.Now()
	// 800 records of 1 KiB are about 1.1 MB in base64: over a Kinesis record's 1 MiB.
	small, big := smallFailure("shardId-000000000001", 5, 100, now), bigFailure("shardId-000000000002", 800, now)
	for _, f := range []Failure{small, big} {
		if err := d.Send(ctx, f); err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
	var bodies []string
	for _, r := range readStream(t, kin, stream, 2) {
		if pk := aws.ToString(r.PartitionKey); pk != small.ShardID && pk != big.ShardID {
			t.Errorf("partition key %q, want the source shard", pk)
		}
		bodies = append(bodies, string(r.Data))
	}
	checkSmallAndBig(t, bodies, MaxKinesisRecordBytes-len(big.ShardID), small, big, &Fetcher{S3: s3c})

	missing, _ := NewKinesis(kin, stream+"-missing", Overflow{Client: s3c, Bucket: bucket})
	if err := missing.Check(ctx); err == nil {
		t.Error("Check of a missing stream passed")
	}
}

// replayStack is a source stream, a target stream, a dead-letter queue and an overflow bucket.
type replayStack struct {
	env            testenv.Env
	q              *sqs.Client
	s3c            *s3.Client
	source, target string
	url, bucket    string
	dest           *SQS
}

func newReplayStack(t *testing.T) *replayStack {
	env := testenv.Require(t)
	st := &replayStack{env: env, q: testenv.SQSClient(t, env), s3c: testenv.S3Client(t, env)}
	kin := testenv.KinesisClient(t, env)
	st.source, st.target = testenv.UniqueName(t, "src"), testenv.UniqueName(t, "dst")
	testenv.CreateStream(t, kin, st.source, 1)
	testenv.CreateStream(t, kin, st.target, 2)
	st.bucket = testenv.UniqueName(t, "dlq")
	testenv.CreateBucket(t, st.s3c, st.bucket)
	st.url = testenv.CreateQueue(t, st.q, testenv.UniqueName(t, "dlq"))
	var err error
	st.dest, err = NewSQS(st.q, st.url, Overflow{Client: st.s3c, Bucket: st.bucket, Prefix: overflowPrefix})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// putBatch puts n records into the source stream and returns them as the consumer would have
// read them, as one failed batch.
func (st *replayStack) putBatch(t *testing.T, name string, n, size int) Failure {
	t.Helper()
	kin := testenv.KinesisClient(t, st.env)
	recs := make([]testenv.Rec, n)
	for i := range recs {
		data := fmt.Sprintf("%s-%04d:", name, i)
		recs[i] = testenv.Rec{PartitionKey: fmt.Sprintf("%s-key-%d", name, i%7), Data: []byte(data + strings.Repeat("z", max(0, size-len(data))))}
	}
	puts := testenv.PutRecords(t, kin, st.source, recs)
	f := Failure{
		Condition: RetryAttemptsExhausted, StreamName: st.source, ShardID: puts[0].ShardID, Region: testenv.Region,
		StreamARN: "arn:aws:kinesis:us-east-1:000000000000:stream/" + st.source,
		Attempts:  3, ErrorMessage: name + " failed", FunctionError: "Unhandled", FunctionARN: "shardhose:test", Time: time.Now(),
	}
	for i, p := range puts {
		f.Records = append(f.Records, record.Record{
			StreamName: st.source, ShardID: p.ShardID, PartitionKey: recs[i].PartitionKey, SequenceNumber: p.SequenceNumber,
			Data: recs[i].Data, ApproximateArrivalTimestamp: time.Now(),
		})
	}
	return f
}

// replayAll replays what r reads into the target stream, closes r, and returns the stats and
// each letter's result; it fails the test for a letter that was not replayed and removed.
func (st *replayStack) replayAll(t *testing.T, r *SQSReader) (ReplayStats, []LetterResult) {
	t.Helper()
	kin := testenv.KinesisClient(t, st.env)
	var results []LetterResult
	stats, err := Replay(t.Context(), ReplayOptions{
		Reader:  r,
		Fetcher: &Fetcher{S3: st.s3c, Kinesis: kin, PollInterval: 200 * time.Millisecond},
		Client:  kin,
		Stream:  st.target,
		OnLetter: func(lr LetterResult) {
			if lr.Err != nil {
				t.Errorf("%s: %v", lr.Letter.Origin, lr.Err)
			}
			if !lr.Removed {
				t.Errorf("%s: not removed", lr.Letter.Origin)
			}
			results = append(results, lr)
		},
	})
	if err := errors.Join(err, r.Close(t.Context())); err != nil {
		t.Fatalf("Replay: %v", err)
	}
	return stats, results
}

// checkTargetAndQueue fails the test unless the target stream holds exactly the records want
// (as keyed gives them) and the dead-letter queue is empty.
func (st *replayStack) checkTargetAndQueue(t *testing.T, want []string) {
	t.Helper()
	var got []string
	for _, r := range readStream(t, testenv.KinesisClient(t, st.env), st.target, len(want)) {
		got = append(got, aws.ToString(r.PartitionKey)+"="+string(r.Data))
	}
	slices.Sort(got)
	want = slices.Sorted(slices.Values(want))
	if !slices.Equal(got, want) {
		t.Errorf("target stream holds %d records, want %d (each dead letter's records exactly once)", len(got), len(want))
	}
	if n := queueDepth(t, st.q, st.url); n != 0 {
		t.Errorf("%d messages left in the dead-letter queue, want 0", n)
	}
}

// threeBatches puts three batches into the source stream, to be dead-lettered with records
// inline (5), overflowed to S3 (300 of 1 KiB) and as metadata only (7), then 3 records more: a
// fetch from the stream must stop at the metadata-only letter's endSequenceNumber.
func (st *replayStack) threeBatches(t *testing.T) (inline, overflowed, metadata Failure) {
	t.Helper()
	inline = st.putBatch(t, "inline", 5, 50)
	overflowed = st.putBatch(t, "overflowed", 300, 1024)
	metadata = st.putBatch(t, "metadata", 7, 80)
	st.putBatch(t, "after", 3, 10)
	return inline, overflowed, metadata
}

// sendMetadataOnly sends f's dead letter as Lambda writes it: no records, no pointer to them.
func (st *replayStack) sendMetadataOnly(t *testing.T, f Failure) {
	t.Helper()
	m := NewMessage(f)
	m.Inline = nil
	body, err := encode(m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.q.SendMessage(t.Context(), &sqs.SendMessageInput{QueueUrl: aws.String(st.url), MessageBody: aws.String(string(body))}); err != nil {
		t.Fatal(err)
	}
}

func keyed(recs []record.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.PartitionKey + "=" + string(r.Data)
	}
	return out
}

// Three dead letters in SQS: records inline, records overflowed to S3, and metadata only (the
// records still in the source stream). Replay puts all their records into a second stream and
// deletes the three messages.
func TestReplayFromSQS(t *testing.T) {
	st := newReplayStack(t)
	ctx := t.Context()
	inline, overflowed, metadata := st.threeBatches(t)

	for _, f := range []Failure{inline, overflowed} {
		if err := st.dest.Send(ctx, f); err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
	st.sendMetadataOnly(t, metadata)

	stats, results := st.replayAll(t, NewSQSReader(st.q, SQSReaderOptions{QueueURL: st.url, Batch: 1, VisibilityTimeout: testVisibility}))
	froms := map[string]RecordsFrom{}
	for _, lr := range results {
		froms[strings.TrimSuffix(lr.Letter.Message.ErrorMessage, " failed")] = lr.From
	}
	want := slices.Concat(keyed(inline.Records), keyed(overflowed.Records), keyed(metadata.Records))
	if stats.Letters != 3 || stats.Replayed != 3 || stats.Removed != 3 || stats.Records != len(want) {
		t.Errorf("stats %+v, want 3 letters replayed and removed, %d records", stats, len(want))
	}
	if froms["inline"] != FromMessage || froms["overflowed"] != FromS3 || froms["metadata"] != FromStream {
		t.Errorf("records found in %v", froms)
	}
	st.checkTargetAndQueue(t, want)
	t.Logf("replayed %d dead letters, %d records (%d inline, %d from S3, %d from the source stream) into %s",
		stats.Replayed, stats.Records, len(inline.Records), len(overflowed.Records), len(metadata.Records), st.target)
}

// With the target stream missing, nothing is deleted; a dry run deletes nothing either.
func TestReplayLeavesSQSMessagesUnlessSent(t *testing.T) {
	st := newReplayStack(t)
	ctx := t.Context()
	kin := testenv.KinesisClient(t, st.env)
	for _, name := range []string{"a", "b"} {
		if err := st.dest.Send(ctx, st.putBatch(t, name, 3, 20)); err != nil {
			t.Fatal(err)
		}
	}
	fetch := &Fetcher{S3: st.s3c, Kinesis: kin}

	r := NewSQSReader(st.q, SQSReaderOptions{QueueURL: st.url, Batch: 1, VisibilityTimeout: testVisibility})
	stats, err := Replay(ctx, ReplayOptions{Reader: r, Fetcher: fetch, Client: kin, Stream: st.target + "-missing",
		Retry: retry.Policy{Initial: 10 * time.Millisecond, MaxAttempts: 3}})
	if !errors.Is(err, ErrTargetStream) {
		t.Fatalf("Replay into a missing stream: %v, want ErrTargetStream", err)
	}
	if err := r.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if stats.Removed != 0 {
		t.Errorf("%d messages removed", stats.Removed)
	}
	if n := queueDepth(t, st.q, st.url); n != 2 {
		t.Errorf("%d messages in the queue after a failed replay, want 2", n)
	}

	r = NewSQSReader(st.q, SQSReaderOptions{QueueURL: st.url, Batch: 1, VisibilityTimeout: testVisibility})
	stats, err = Replay(ctx, ReplayOptions{Reader: r, Fetcher: fetch, Client: kin, Stream: st.target, DryRun: true})
	if err := errors.Join(err, r.Close(ctx)); err != nil {
		t.Fatalf("dry run: %v", err)
	}
	if stats.Letters != 2 || stats.Replayed != 2 || stats.Records != 6 || stats.Removed != 0 {
		t.Errorf("dry run stats %+v", stats)
	}
	if n := queueDepth(t, st.q, st.url); n != 2 {
		t.Errorf("%d messages in the queue after a dry run, want 2", n)
	}
	// The released messages are visible again at once: a real replay now takes both.
	r = NewSQSReader(st.q, SQSReaderOptions{QueueURL: st.url, Batch: 1, VisibilityTimeout: testVisibility})
	stats, err = Replay(ctx, ReplayOptions{Reader: r, Fetcher: fetch, Client: kin, Stream: st.target})
	if err := errors.Join(err, r.Close(ctx)); err != nil || stats.Removed != 2 {
		t.Fatalf("replay after the dry run: %+v, %v", stats, err)
	}
	if got := readStream(t, kin, st.target, 6); len(got) != 6 {
		t.Errorf("target holds %d records, want 6 (nothing from the dry run)", len(got))
	}
	if n := queueDepth(t, st.q, st.url); n != 0 {
		t.Errorf("%d messages left, want 0", n)
	}
}

// lostSendAnswer sends every message twice, as the SDK does when the connection breaks after
// SQS stored the message and before its answer arrived: the call is retried and stored again.
type lostSendAnswer struct{ SQSAPI }

func (l lostSendAnswer) SendMessage(ctx context.Context, in *sqs.SendMessageInput, opts ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	if _, err := l.SQSAPI.SendMessage(ctx, in, opts...); err != nil {
		return nil, err
	}
	return l.SQSAPI.SendMessage(ctx, in, opts...)
}

// lostReceiveAnswer throws away the answer of the nth ReceiveMessage that brought a message and
// receives again, as the SDK does when the connection breaks after SQS handed the message out:
// that message stays hidden for its visibility timeout without its reader ever seeing it.
type lostReceiveAnswer struct {
	SQSReadAPI
	nth   int
	calls int
}

func (l *lostReceiveAnswer) ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, opts ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	out, err := l.SQSReadAPI.ReceiveMessage(ctx, in, opts...)
	if err != nil || len(out.Messages) == 0 {
		return out, err
	}
	if l.calls++; l.calls == l.nth {
		return l.SQSReadAPI.ReceiveMessage(ctx, in, opts...)
	}
	return out, nil
}

// Answers lost after SQS acted on them: a dead letter sent twice (SendMessage retried) and a
// message received but never seen by the reader (ReceiveMessage retried). Replay still re-sends
// each batch's records exactly once, removes both copies of the duplicate, and waits for the
// hidden message to come back instead of ending without it.
func TestReplayFromSQSAfterLostAnswers(t *testing.T) {
	st := newReplayStack(t)
	ctx := t.Context()
	inline, overflowed, metadata := st.threeBatches(t)

	dest, err := NewSQS(st.q, st.url, Overflow{Client: st.s3c, Bucket: st.bucket, Prefix: overflowPrefix})
	if err != nil {
		t.Fatal(err)
	}
	twice, err := NewSQS(lostSendAnswer{st.q}, st.url, Overflow{Client: st.s3c, Bucket: st.bucket, Prefix: overflowPrefix})
	if err != nil {
		t.Fatal(err)
	}
	if err := dest.Send(ctx, inline); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if err := twice.Send(ctx, overflowed); err != nil {
		t.Fatalf("Send: %v", err)
	}
	st.sendMetadataOnly(t, metadata)
	if n := queueDepth(t, st.q, st.url); n != 4 {
		t.Fatalf("%d messages in the queue, want 4 (the overflowed dead letter twice)", n)
	}

	// The fourth message received (the metadata-only dead letter) is lost on its way.
	stats, results := st.replayAll(t, NewSQSReader(&lostReceiveAnswer{SQSReadAPI: st.q, nth: 4}, SQSReaderOptions{QueueURL: st.url, Batch: 1, VisibilityTimeout: testVisibility}))
	seen := map[string]int{}
	for _, lr := range results {
		if !lr.Duplicate {
			seen[lr.Letter.Message.ErrorMessage]++
		}
	}
	want := slices.Concat(keyed(inline.Records), keyed(overflowed.Records), keyed(metadata.Records))
	if stats.Letters != 4 || stats.Duplicates != 1 || stats.Replayed != 3 || stats.Removed != 4 || stats.Records != len(want) {
		t.Errorf("stats %+v, want 4 letters read, 1 duplicate, 3 replayed, 4 removed, %d records", stats, len(want))
	}
	for _, name := range []string{"inline failed", "overflowed failed", "metadata failed"} {
		if seen[name] != 1 {
			t.Errorf("dead letter %q replayed %d times, want once", name, seen[name])
		}
	}
	st.checkTargetAndQueue(t, want)
}
