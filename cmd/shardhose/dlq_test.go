package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/shardhose/shardhose/dlq"
	"github.com/shardhose/shardhose/internal/testenv"
	"github.com/shardhose/shardhose/record"
)

// dlqConfig writes a config file whose dead_letter section is deadLetter (YAML, indented two
// spaces), pointing every service at env's endpoints when env is set.
func dlqConfig(t *testing.T, env *testenv.Env, deadLetter string) string {
	t.Helper()
	awsSection := "aws:\n  region: us-east-1\n  credentials: {source: static, access_key_id: test, secret_access_key: test}\n"
	if env != nil {
		awsSection += fmt.Sprintf("  endpoints: {kinesis: %q, s3: %q, sqs: %q, sns: %q}\n  s3_use_path_style: true\n", env.Kinesis, env.Moto, env.Moto, env.Moto)
	}
	y := awsSection + `stream:
  name: orders
sinks:
  - name: archive
    type: s3
    s3: {bucket: my-bucket}
log: {format: text, level: warn}
dead_letter:
` + deadLetter
	path := filepath.Join(t.TempDir(), "shardhose.yaml")
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// dlqFailure is a batch of n records given up on.
func dlqFailure(shard, name string, n int, seqs []string, tm time.Time) dlq.Failure {
	f := dlq.Failure{
		Condition: dlq.RetryAttemptsExhausted, StreamName: "orders", ShardID: shard, Region: "us-east-1",
		StreamARN: "arn:aws:kinesis:us-east-1:000000000000:stream/orders", Attempts: 3,
		ErrorMessage: "invalid JSON: unexpected end of input", FunctionError: "Unhandled", FunctionARN: "shardhose:json", Time: tm,
	}
	for i := range n {
		seq := fmt.Sprintf("4960%020d", 100+i)
		if seqs != nil {
			seq = seqs[i]
		}
		f.Records = append(f.Records, record.Record{
			ShardID: shard, PartitionKey: fmt.Sprintf("%s-key-%d", name, i), SequenceNumber: seq,
			Data: []byte(fmt.Sprintf(`{"order":"%s-%d","amount":%d}`, name, i, 10*i)), ApproximateArrivalTimestamp: tm.Add(-time.Minute),
		})
	}
	return f
}

func runDLQCommand(t *testing.T, args ...string) (string, int, error) {
	t.Helper()
	var out strings.Builder
	code, err := dlqMain(t.Context(), args, &out)
	return out.String(), code, err
}

func TestDLQInspectFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dead-letters.jsonl")
	d, err := dlq.NewFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tm := time.Date(2025, 1, 2, 3, 4, 5, 678e6, time.UTC)
	poison := dlqFailure("shardId-000000000001", "poison", 1, nil, tm)
	poison.Records[0].Data = []byte("{not json\x07")
	for _, f := range []dlq.Failure{poison, dlqFailure("shardId-000000000002", "batch", 12, nil, tm)} {
		if err := d.Send(t.Context(), f); err != nil {
			t.Fatal(err)
		}
	}
	fh, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(fh, `{"something":"else"}`)
	fh.Close()

	cfg := dlqConfig(t, nil, fmt.Sprintf("  type: file\n  file: {path: %q}\n", path))
	out, code, err := runDLQCommand(t, "inspect", "-c", cfg, "--records", "3")
	if err != nil || code != exitOK {
		t.Fatalf("inspect: exit %d, %v\n%s", code, err, out)
	}
	for _, want := range []string{
		"== " + path + ":1\n",
		"  condition:  RetryAttemptsExhausted (Unhandled) after 3 attempts\n",
		"  when:       2025-01-02T03:04:05.678Z\n",
		"  function:   shardhose:json\n",
		"  shard:      shardId-000000000001\n",
		"  sequence:   496000000000000000000100\n",
		"  batch size: 1\n",
		"  error:      invalid JSON: unexpected end of input\n",
		"  records:    1 in the message\n",
		`  [1] seq 496000000000000000000100  key "poison-key-0"  arrived 2025-01-02T03:03:05.678Z  10 bytes` + "\n      {not json\\a\n",
		"== " + path + ":2\n",
		"  sequences:  496000000000000000000100 .. 496000000000000000000111\n",
		"  batch size: 12\n",
		`      {"order":"batch-2","amount":20}` + "\n",
		"  ... 9 more records (--records 0 shows all)\n",
		"== " + path + ":3\n  not a dead letter:",
		"2 dead letters in " + path + ", and 1 item that could not be read as dead letters\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect output lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", out)
	}

	// --max stops early; a missing file is an error naming it.
	out, code, _ = runDLQCommand(t, "inspect", "-c", cfg, "--max", "1")
	if code != exitOK || strings.Count(out, "== ") != 1 {
		t.Errorf("--max 1: exit %d, %d dead letters shown", code, strings.Count(out, "== "))
	}
	_, code, err = runDLQCommand(t, "inspect", "-c", cfg, "--path", path+".missing")
	if code != exitConfig || err == nil || !strings.Contains(err.Error(), ".missing") {
		t.Errorf("missing file: exit %d, %v", code, err)
	}
}

func TestDLQUsageErrors(t *testing.T) {
	noneCfg := dlqConfig(t, nil, "  type: \"\"\n")
	snsCfg := dlqConfig(t, nil, "  type: sns\n  sns: {topic_arn: \"arn:aws:sns:us-east-1:123456789012:t\"}\n  overflow: {bucket: b-1}\n")
	cases := []struct {
		args []string
		want string
	}{
		{nil, "name a subcommand"},
		{[]string{"peek"}, `unknown subcommand "peek"`},
		{[]string{"inspect", "-c", noneCfg}, "no dead_letter destination is configured"},
		{[]string{"inspect", "-c", noneCfg, "--from", "sqs"}, "--from sqs needs --queue-url"},
		{[]string{"inspect", "-c", noneCfg, "--from", "s3"}, "--from s3 needs --bucket"},
		{[]string{"inspect", "-c", noneCfg, "--from", "kafka"}, `--from "kafka"`},
		{[]string{"inspect", "-c", snsCfg}, "subscribe an SQS queue to the topic"},
		{[]string{"replay", "-c", noneCfg, "--from", "file", "--path", "x"}, "needs one target: --to-stream NAME or --to-sinks"},
		{[]string{"inspect", "-c", noneCfg, "--bogus"}, "unknown flag: --bogus"},
	}
	for _, tc := range cases {
		_, code, err := runDLQCommand(t, tc.args...)
		if code != exitConfig || err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("dlq %v: exit %d, error %v; want exit 1 saying %q", tc.args, code, err, tc.want)
		}
		// The usage printed with the error is dlq's own, not the top-level one.
		var ce commandUsageError
		if !errors.As(err, &ce) || ce.usage != dlqUsage {
			t.Errorf("dlq %v: error %T does not carry the dlq usage", tc.args, err)
		}
	}
}

func dlqQueueDepth(t *testing.T, q *sqs.Client, url string) int {
	t.Helper()
	out, err := q.GetQueueAttributes(t.Context(), &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url), AttributeNames: []sqstypes.QueueAttributeName{
		sqstypes.QueueAttributeNameApproximateNumberOfMessages, sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
	}})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := strconv.Atoi(out.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessages)])
	b, _ := strconv.Atoi(out.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible)])
	return a + b
}

// dlqReadStream reads the one-shard stream from TRIM_HORIZON until it has n records, and once more.
func dlqReadStream(t *testing.T, c *kinesis.Client, stream string, n int) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	shards, err := c.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range shards.Shards {
		it, err := c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(stream), ShardId: s.ShardId, ShardIteratorType: ktypes.ShardIteratorTypeTrimHorizon})
		if err != nil {
			t.Fatal(err)
		}
		iter := it.ShardIterator
		for empty := 0; iter != nil && empty < 3; {
			out, err := c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range out.Records {
				got = append(got, aws.ToString(r.PartitionKey)+"="+string(r.Data))
			}
			if len(out.Records) == 0 {
				empty++
			}
			iter = out.NextShardIterator
		}
	}
	if len(got) != n {
		t.Fatalf("stream %s holds %d records, want %d", stream, len(got), n)
	}
	return got
}

// The commands against the local stack: inspect leaves SQS messages in place and shows records
// from the message and from the overflow object; replay --dry-run sends and deletes nothing;
// replay into a missing stream exits 1 and deletes nothing; replay sends every record (from the
// message, S3 and the source stream) and deletes every message.
func TestDLQCommandsAgainstSQS(t *testing.T) {
	env := testenv.Require(t)
	ctx := t.Context()
	q, s3c, kin := testenv.SQSClient(t, env), testenv.S3Client(t, env), testenv.KinesisClient(t, env)
	bucket := testenv.UniqueName(t, "dlq")
	testenv.CreateBucket(t, s3c, bucket)
	url := testenv.CreateQueue(t, q, testenv.UniqueName(t, "dlq"))
	source, target := testenv.UniqueName(t, "src"), testenv.UniqueName(t, "dst")
	testenv.CreateStream(t, kin, source, 1)
	testenv.CreateStream(t, kin, target, 1)

	// The metadata-only dead letter's records are in the source stream.
	recs := []testenv.Rec{{PartitionKey: "meta-key-0", Data: []byte("m0")}, {PartitionKey: "meta-key-1", Data: []byte("m1")}}
	puts := testenv.PutRecords(t, kin, source, recs)
	now := time.Now()
	meta := dlqFailure(puts[0].ShardID, "meta", 2, []string{puts[0].SequenceNumber, puts[1].SequenceNumber}, now)
	meta.StreamARN = "arn:aws:kinesis:us-east-1:000000000000:stream/" + source
	for i := range meta.Records {
		meta.Records[i].Data = recs[i].Data
	}
	m := dlq.NewMessage(meta)
	m.Inline = nil
	body, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(string(body))}); err != nil {
		t.Fatal(err)
	}
	d, err := dlq.NewSQS(q, url, dlq.Overflow{Client: s3c, Bucket: bucket, Prefix: "dl/records/"})
	if err != nil {
		t.Fatal(err)
	}
	small := dlqFailure("shardId-000000000001", "small", 3, nil, now)
	big := dlqFailure("shardId-000000000002", "big", 250, nil, now)
	for i := range big.Records {
		big.Records[i].Data = append(big.Records[i].Data, strings.Repeat(" ", 1000)...)
	}
	for _, f := range []dlq.Failure{small, big} {
		if err := d.Send(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	cfg := dlqConfig(t, &env, fmt.Sprintf("  type: sqs\n  sqs: {queue_url: %q}\n  overflow: {bucket: %s, prefix: dl/records/}\n", url, bucket))

	out, code, err := runDLQCommand(t, "inspect", "-c", cfg, "--visibility-timeout", "10s", "--records", "1")
	if err != nil || code != exitOK {
		t.Fatalf("inspect: exit %d, %v\n%s", code, err, out)
	}
	for _, want := range []string{
		"3 dead letters in sqs " + url,
		"records:    3 in the message",
		"records:    in s3://" + bucket + "/dl/records/",
		`key "big-key-0"`,
		"records:    not carried (metadata only",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, out)
		}
	}
	if n := dlqQueueDepth(t, q, url); n != 3 {
		t.Fatalf("%d messages after inspect, want 3", n)
	}
	t.Logf("inspect output:\n%s", out)

	out, code, err = runDLQCommand(t, "replay", "-c", cfg, "--visibility-timeout", "10s", "--to-stream", target, "--dry-run")
	if err != nil || code != exitOK || !strings.Contains(out, "dry run: 3 of 3 dead letters from sqs "+url+" would be replayed (255 records)") {
		t.Fatalf("dry run: exit %d, %v\n%s", code, err, out)
	}
	if !strings.Contains(out, "2 records (4 bytes, read from the source stream)") {
		t.Errorf("dry run did not fetch the metadata-only dead letter's records from the stream:\n%s", out)
	}

	out, code, err = runDLQCommand(t, "replay", "-c", cfg, "--visibility-timeout", "10s", "--to-stream", target+"-missing")
	if code != exitConfig || err == nil || !strings.Contains(err.Error(), "target stream does not exist") {
		t.Fatalf("replay into a missing stream: exit %d, %v\n%s", code, err, out)
	}
	if n := dlqQueueDepth(t, q, url); n != 3 {
		t.Fatalf("%d messages after a dry run and a failed replay, want 3", n)
	}

	out, code, err = runDLQCommand(t, "replay", "-c", cfg, "--visibility-timeout", "10s", "--to-stream", target)
	if err != nil || code != exitOK || !strings.Contains(out, "replayed 3 of 3 dead letters from sqs "+url+" (255 records) into "+target+"; 3 removed") {
		t.Fatalf("replay: exit %d, %v\n%s", code, err, out)
	}
	if strings.Count(out, "; message deleted") != 3 {
		t.Errorf("replay output:\n%s", out)
	}
	t.Logf("replay output:\n%s", out)
	var want []string
	for _, f := range []dlq.Failure{meta, small, big} {
		for _, r := range f.Records {
			want = append(want, r.PartitionKey+"="+string(r.Data))
		}
	}
	got := dlqReadStream(t, kin, target, len(want))
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("target stream does not hold exactly the dead letters' records")
	}
	if n := dlqQueueDepth(t, q, url); n != 0 {
		t.Errorf("%d messages left after replay, want 0", n)
	}
}
