package dlq

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/shardhose/shardhose/config"
	"github.com/shardhose/shardhose/record"
)

// smallFailure is a failure of n records of size bytes each on shard, given up on at tm.
func smallFailure(shard string, n, size int, tm time.Time) Failure {
	recs := make([]record.Record, n)
	for i := range recs {
		recs[i] = record.Record{
			StreamName: "src", ShardID: shard, PartitionKey: fmt.Sprint("pk-", i),
			SequenceNumber: fmt.Sprintf("4960%020d", 1000+i), Data: []byte(strings.Repeat(string(rune('a'+i%26)), size)),
			ApproximateArrivalTimestamp: tm.Add(-time.Minute + time.Duration(i)*time.Millisecond),
		}
	}
	return Failure{
		Condition: RetryAttemptsExhausted, StreamName: "src", StreamARN: "arn:aws:kinesis:us-east-1:000000000000:stream/src",
		ShardID: shard, Region: "us-east-1", Records: recs, Attempts: 3, ErrorMessage: "handler failed",
		FunctionError: "Unhandled", FunctionARN: "shardhose:test", Time: tm,
	}
}

var testTime = time.Date(2025, 6, 7, 8, 9, 10, 0, time.UTC)

func TestOverflowBoundary(t *testing.T) {
	ctx := t.Context()
	f := smallFailure(testShard, 20, 100, testTime)
	full, err := encode(NewMessage(f))
	if err != nil {
		t.Fatal(err)
	}
	s3c := newFakeS3()
	o := Overflow{Client: s3c, Bucket: "over", Prefix: "dl/records/"}

	body, m, err := o.fit(ctx, f, len(full), 0)
	if err != nil || string(body) != string(full) || m.RecordsLocation != nil || len(s3c.objects) != 0 {
		t.Fatalf("at exactly the limit: body %d bytes (want %d), location %v, %d objects, err %v", len(body), len(full), m.RecordsLocation, len(s3c.objects), err)
	}

	body, m, err = o.fit(ctx, f, len(full)-1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if m.RecordsLocation == nil || len(m.Inline) != 0 || len(body) > len(full)-1 {
		t.Fatalf("one byte over: location %v, %d inline records, %d bytes", m.RecordsLocation, len(m.Inline), len(body))
	}
	wantKey := "dl/records/2025/06/07/08/" + testShard + "-" + f.Records[0].SequenceNumber + "-" + m.RequestContext.RequestID + ".json"
	if m.RecordsLocation.Bucket != "over" || m.RecordsLocation.Key != wantKey {
		t.Errorf("location %s, want s3://over/%s", m.RecordsLocation, wantKey)
	}
	if got := s3c.objects["over/"+wantKey]; string(got) != string(full) {
		t.Errorf("overflow object holds %d bytes, want the full message (%d)", len(got), len(full))
	}
	parsed, err := ParseMessage(body)
	if err != nil || parsed.RecordsLocation == nil || parsed.KinesisBatchInfo.BatchSize != 20 || parsed.ErrorMessage != "handler failed" {
		t.Errorf("small message parsed as %+v, %v", parsed, err)
	}

	// Kinesis counts the partition key against the limit.
	if _, m, _ := o.fit(ctx, f, len(full)+5, 5); m.RecordsLocation != nil {
		t.Error("body plus a 5-byte key at the limit overflowed")
	}
	if _, m, _ := o.fit(ctx, f, len(full)+4, 5); m.RecordsLocation == nil {
		t.Error("body plus a 5-byte key one byte over the limit did not overflow")
	}
}

func TestOverflowShortensAHugeErrorMessage(t *testing.T) {
	f := smallFailure(testShard, 2, 10, testTime)
	f.ErrorMessage = "panic: " + strings.Repeat("é stack frame\n", 30000) // ~450 KB
	s3c := newFakeS3()
	d, err := NewSQS(&fakeSQS{}, "https://sqs.us-east-1.amazonaws.com/1/q", Overflow{Client: s3c, Bucket: "over"})
	if err != nil {
		t.Fatal(err)
	}
	body, m, err := d.overflow.fit(t.Context(), f, MaxSQSMessageBytes, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(body) > MaxSQSMessageBytes || m.RecordsLocation == nil {
		t.Fatalf("%d bytes, location %v", len(body), m.RecordsLocation)
	}
	if !strings.HasPrefix(m.ErrorMessage, "panic: é stack") || !strings.HasSuffix(m.ErrorMessage, "(truncated; full text in "+m.RecordsLocation.String()+")") {
		t.Errorf("shortened error message starts %q, ends %q", m.ErrorMessage[:20], m.ErrorMessage[len(m.ErrorMessage)-80:])
	}
	_, obj := s3c.only()
	full, err := ParseMessage(obj)
	if err != nil || full.ErrorMessage != f.ErrorMessage {
		t.Errorf("the overflow object does not hold the full error message (err %v)", err)
	}
}

func TestSendFailsWhenOverflowFails(t *testing.T) {
	s3c := newFakeS3()
	s3c.failPut = errors.New("AccessDenied")
	q := &fakeSQS{}
	d, _ := NewSQS(q, "https://sqs.us-east-1.amazonaws.com/1/q", Overflow{Client: s3c, Bucket: "over"})
	err := d.Send(t.Context(), smallFailure(testShard, 300, 1024, testTime))
	if err == nil || !strings.Contains(err.Error(), "AccessDenied") || !strings.Contains(err.Error(), "overflow") {
		t.Errorf("Send = %v, want the overflow's error", err)
	}
	if len(q.sent) != 0 {
		t.Errorf("%d messages sent pointing at an object that was not written", len(q.sent))
	}
}

func TestFIFOGroupsByShardAndDeduplicatesByID(t *testing.T) {
	ctx := t.Context()
	f := smallFailure("shardId-000000000007", 1, 10, testTime)
	id := NewMessage(f).RequestContext.RequestID
	over := Overflow{Client: newFakeS3(), Bucket: "over"}

	q := &fakeSQS{}
	for _, url := range []string{"https://sqs.us-east-1.amazonaws.com/1/q.fifo", "https://sqs.us-east-1.amazonaws.com/1/q"} {
		d, _ := NewSQS(q, url, over)
		if err := d.Send(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	if g, dd := aws.ToString(q.sent[0].MessageGroupId), aws.ToString(q.sent[0].MessageDeduplicationId); g != f.ShardID || dd != id {
		t.Errorf("sqs fifo: group %q dedup %q, want %q %q", g, dd, f.ShardID, id)
	}
	if q.sent[1].MessageGroupId != nil || q.sent[1].MessageDeduplicationId != nil {
		t.Error("sqs standard queue got FIFO attributes")
	}

	p := &fakeSNS{}
	d, _ := NewSNS(p, "arn:aws:sns:us-east-1:123456789012:t.fifo", over)
	if err := d.Send(ctx, f); err != nil {
		t.Fatal(err)
	}
	if g, dd := aws.ToString(p.sent[0].MessageGroupId), aws.ToString(p.sent[0].MessageDeduplicationId); g != f.ShardID || dd != id {
		t.Errorf("sns fifo: group %q dedup %q", g, dd)
	}

	k := &fakeKinesisPut{}
	kd, _ := NewKinesis(k, "arn:aws:kinesis:us-east-1:123456789012:stream/dlq", over)
	if err := kd.Send(ctx, f); err != nil {
		t.Fatal(err)
	}
	if in := k.sent[0]; aws.ToString(in.PartitionKey) != f.ShardID || in.StreamName != nil || aws.ToString(in.StreamARN) == "" {
		t.Errorf("kinesis put: key %q name %v arn %v", aws.ToString(in.PartitionKey), in.StreamName, in.StreamARN)
	}
}

func TestSendRefusesAFailureWithoutRecords(t *testing.T) {
	over := Overflow{Client: newFakeS3(), Bucket: "over"}
	sq, _ := NewSQS(&fakeSQS{}, "https://q/1/q", over)
	sn, _ := NewSNS(&fakeSNS{}, "arn:aws:sns:us-east-1:123456789012:t", over)
	kd, _ := NewKinesis(&fakeKinesisPut{}, "dlq", over)
	s3d, _ := NewS3(newFakeS3(), "b", "")
	fd, _ := NewFile(filepath.Join(t.TempDir(), "dl.jsonl"))
	for _, d := range []Destination{sq, sn, kd, s3d, fd} {
		if err := d.Send(t.Context(), Failure{ShardID: "s"}); !errors.Is(err, ErrNoRecords) {
			t.Errorf("%s: Send without records = %v, want ErrNoRecords", d.Name(), err)
		}
	}
}

func TestBuild(t *testing.T) {
	clients := Clients{SQS: &fakeSQS{}, SNS: &fakeSNS{}, S3: newFakeS3(), Kinesis: &fakeKinesisPut{}}
	over := config.DeadLetterS3{Bucket: "over", Prefix: "p/"}
	cases := []struct {
		cfg  config.DeadLetter
		name string
	}{
		{config.DeadLetter{Type: "sqs", SQS: config.DeadLetterSQS{QueueURL: "https://q/1/dlq"}, Overflow: over}, "sqs https://q/1/dlq"},
		{config.DeadLetter{Type: "sns", SNS: config.DeadLetterSNS{TopicARN: "arn:aws:sns:us-east-1:123456789012:t"}, Overflow: over}, "sns arn:aws:sns:us-east-1:123456789012:t"},
		{config.DeadLetter{Type: "s3", S3: config.DeadLetterS3{Bucket: "b", Prefix: "dl/"}}, "s3 s3://b/dl/"},
		{config.DeadLetter{Type: "kinesis", Kinesis: config.DeadLetterKinesis{Stream: "dlq"}, Overflow: over}, "kinesis dlq"},
		{config.DeadLetter{Type: "file", File: config.DeadLetterFile{Path: "x.jsonl"}}, "file x.jsonl"},
	}
	for _, tc := range cases {
		d, err := Build(t.Context(), tc.cfg, clients)
		if err != nil {
			t.Errorf("%s: %v", tc.cfg.Type, err)
			continue
		}
		if d.Name() != tc.name {
			t.Errorf("%s: Name = %q, want %q", tc.cfg.Type, d.Name(), tc.name)
		}
		if _, ok := d.(Checker); !ok {
			t.Errorf("%s: not a Checker", tc.cfg.Type)
		}
	}
	if d, err := Build(t.Context(), config.DeadLetter{}, Clients{}); d != nil || err != nil {
		t.Errorf("type \"\": %v, %v; want nil, nil", d, err)
	}
	if _, err := Build(t.Context(), cases[0].cfg, Clients{SQS: &fakeSQS{}}); err == nil || !strings.Contains(err.Error(), "overflow") {
		t.Errorf("sqs without an S3 client: %v", err)
	}
	if _, err := Build(t.Context(), config.DeadLetter{Type: "sqs", SQS: cases[0].cfg.SQS}, clients); err == nil {
		t.Error("sqs without an overflow bucket: no error")
	}
	if _, err := Build(t.Context(), config.DeadLetter{Type: "kafka"}, clients); err == nil {
		t.Error("type kafka: no error")
	}
}

func TestFileDestination(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "dead-letters.jsonl")
	d, err := NewFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Check(ctx); err != nil {
		t.Fatal(err)
	}
	const n = 40
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			f := smallFailure(fmt.Sprintf("shardId-%012d", i), 1+i%5, 2000, testTime)
			errs <- d.Send(ctx, f)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != fileMode {
		t.Errorf("mode %v, want %v", st.Mode().Perm(), os.FileMode(fileMode))
	}

	r, err := NewFileReader(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctx)
	var shards []string
	for {
		l, err := r.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil || l.Err != nil {
			t.Fatalf("read: %v %v", err, l.Err)
		}
		recs, err := l.Message.Records()
		if err != nil || len(recs) != l.Message.KinesisBatchInfo.BatchSize || len(recs[0].Data) != 2000 {
			t.Fatalf("%s: %d records, err %v", l.Origin, len(recs), err)
		}
		shards = append(shards, l.Message.KinesisBatchInfo.ShardID)
	}
	slices.Sort(shards)
	if len(slices.Compact(shards)) != n {
		t.Errorf("read %d distinct dead letters, want %d", len(shards), n)
	}
}

func TestFileReaderReportsWhatIsNotADeadLetter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mixed.jsonl")
	body, _ := encode(NewMessage(smallFailure(testShard, 1, 5, testTime)))
	content := string(body) + "\n\n{\"hello\":1}\n" + string(body) // no final newline
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := NewFileReader(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(t.Context())
	var origins []string
	var bad int
	for {
		l, err := r.Next(t.Context())
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		origins = append(origins, l.Origin)
		if l.Err != nil {
			bad++
			if !errors.Is(l.Err, ErrNotDeadLetter) {
				t.Errorf("%s: %v", l.Origin, l.Err)
			}
		}
	}
	want := []string{path + ":1", path + ":3", path + ":4"}
	if !slices.Equal(origins, want) || bad != 1 {
		t.Errorf("origins %v (want %v), %d bad (want 1)", origins, want, bad)
	}
}
