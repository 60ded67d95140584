package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsfirehose "github.com/aws/aws-sdk-go-v2/service/firehose"
	fhtypes "github.com/aws/aws-sdk-go-v2/service/firehose/types"
	awssns "github.com/aws/aws-sdk-go-v2/service/sns"

	"github.com/shardhose/shardhose/iampolicy"
	"github.com/shardhose/shardhose/internal/awsclient"
	"github.com/shardhose/shardhose/internal/testenv"
)

// iamAction is the IAM action an SDK operation needs: service prefix and operation name, but
// for the operations whose permission is named otherwise.
func iamAction(service, operation string) string {
	switch service + " " + operation {
	case "S3 HeadBucket", "S3 ListObjectsV2":
		return "s3:ListBucket"
	case "S3 HeadObject":
		return "s3:GetObject"
	case "S3 CreateMultipartUpload", "S3 UploadPart", "S3 CompleteMultipartUpload":
		return "s3:PutObject"
	case "Lambda Invoke":
		return "lambda:InvokeFunction"
	}
	return strings.ToLower(strings.ReplaceAll(service, " ", "")) + ":" + operation
}

// allowed reports whether some statement of p allows action.
func allowed(p iampolicy.Policy, action string) bool {
	for _, s := range p.Statement {
		if s.Effect == "Allow" && slices.Contains(s.Action, action) && len(s.Resource) > 0 {
			return true
		}
	}
	return false
}

// TestIAMPolicyAllowsEveryCallOfARealRun runs the daemon with a configuration that uses every
// kind of AWS destination the local stack serves (an S3 sink with an error prefix, a Firehose
// sink with an S3 backup, an HTTP sink with an S3 backup, the json handler with an error output
// bucket, an SQS dead-letter queue with an overflow bucket), with a poison record so that a dead
// letter is written, while the SDK clients record every operation they call. Each operation must
// be allowed by what `shardhose iam-policy` prints for that configuration.
func TestIAMPolicyAllowsEveryCallOfARealRun(t *testing.T) {
	s := newE2EStack(t, 2)
	q := newDeadLetterQueue(t, s)
	c := &collector{t: t, got: map[string]int{}}
	srv := httptest.NewServer(c)
	defer srv.Close()
	c.sourceARN = testenv.WaitStreamActive(t, s.kin, s.stream)

	fh := awsfirehose.NewFromConfig(testenv.AWSConfig(t, s.env.Moto))
	delivery := testenv.UniqueName(t, "fh")
	if _, err := fh.CreateDeliveryStream(t.Context(), &awsfirehose.CreateDeliveryStreamInput{
		DeliveryStreamName: aws.String(delivery),
		DeliveryStreamType: fhtypes.DeliveryStreamTypeDirectPut,
		ExtendedS3DestinationConfiguration: &fhtypes.ExtendedS3DestinationConfiguration{
			BucketARN: aws.String("arn:aws:s3:::" + s.bucket),
			RoleARN:   aws.String("arn:aws:iam::123456789012:role/firehose-delivery"),
			Prefix:    aws.String("via-firehose/"),
		},
	}); err != nil {
		t.Fatalf("create delivery stream: %v", err)
	}

	cfg := s.config(t, 1, 1, `processing:
  handlers: [{type: json}]
  bisect_batch_on_function_error: true
  maximum_retry_attempts: 0
  retry: {initial_backoff: 100ms, max_backoff: 200ms}
  error_output: {bucket: REPLACE_BUCKET, prefix: processing-errors/}
`+q.config(s))
	withHTTPSink(t, cfg, srv.URL, 60)
	rewrite(t, cfg, "shutdown:\n", fmt.Sprintf(`  - name: via-firehose
    type: firehose
    firehose:
      delivery_stream: %s
      buffering_hints: {interval_in_seconds: 1}
      s3_backup: {bucket: REPLACE_BUCKET, prefix: firehose-backup/}
shutdown:
`, delivery))
	for range 3 {
		rewrite(t, cfg, "REPLACE_BUCKET", s.bucket)
	}
	rewrite(t, cfg, "      bucket: "+s.bucket+"\n      compression: GZIP", "      bucket: "+s.bucket+"\n      prefix: data/\n      error_output_prefix: data-errors/\n      compression: GZIP")

	calls := recordedRun(t, s, cfg, func() { q.receiveAll(t, 1, 30*time.Second) })
	for _, need := range []string{"Kinesis GetRecords", "DynamoDB UpdateItem", "S3 PutObject", "SQS SendMessage", "Firehose PutRecordBatch"} {
		if !slices.Contains(calls, need) {
			t.Fatalf("the run did not call %s, so it does not exercise what it should; calls: %q", need, calls)
		}
	}
	assertPolicyAllows(t, cfg, calls)
}

// TestIAMPolicyAllowsTheCallsOfEachDeadLetterDestination: the same for the dead-letter
// destinations the first test does not use.
func TestIAMPolicyAllowsTheCallsOfEachDeadLetterDestination(t *testing.T) {
	for _, kind := range []string{"sns", "kinesis", "s3"} {
		t.Run(kind, func(t *testing.T) {
			s := newE2EStack(t, 1)
			var section, need string
			switch kind {
			case "sns":
				c := awssns.NewFromConfig(testenv.AWSConfig(t, s.env.Moto))
				out, err := c.CreateTopic(t.Context(), &awssns.CreateTopicInput{Name: aws.String(testenv.UniqueName(t, "dlq"))})
				if err != nil {
					t.Fatal(err)
				}
				section = fmt.Sprintf("  sns: {topic_arn: %q}\n  overflow: {bucket: %s}\n", aws.ToString(out.TopicArn), s.bucket)
				need = "SNS Publish"
			case "kinesis":
				stream := testenv.UniqueName(t, "dlq")
				testenv.CreateStream(t, s.kin, stream, 1)
				section = fmt.Sprintf("  kinesis: {stream: %s}\n  overflow: {bucket: %s}\n", stream, s.bucket)
				need = "Kinesis PutRecord"
			case "s3":
				section = fmt.Sprintf("  s3: {bucket: %s, prefix: dead/}\n", s.bucket)
				need = "S3 PutObject"
			}
			cfg := s.config(t, 1, 1, `processing:
  handlers: [{type: json}]
  maximum_retry_attempts: 0
dead_letter:
  type: `+kind+"\n"+section)
			calls := recordedRun(t, s, cfg, nil)
			if !slices.Contains(calls, need) {
				t.Fatalf("the run did not call %s; calls: %q", need, calls)
			}
			assertPolicyAllows(t, cfg, calls)
		})
	}
}

// TestIAMPolicyAllowsTheCallsOfAnExactlyOnceS3Sink: an exactly-once S3 sink also reads back
// the objects it wrote.
func TestIAMPolicyAllowsTheCallsOfAnExactlyOnceS3Sink(t *testing.T) {
	s := newE2EStack(t, 1)
	cfg := s.config(t, 1, 1, `processing:
  handlers: [{type: json}]
  maximum_retry_attempts: 0
dead_letter:
  type: s3
  s3: {bucket: `+s.bucket+`, prefix: dead/}
`)
	rewrite(t, cfg, "      compression: GZIP", "      compression: GZIP\n      delivery: exactly_once")
	calls := recordedRun(t, s, cfg, nil)
	if !slices.Contains(calls, "S3 PutObject") {
		t.Fatalf("the run did not write to S3; calls: %q", calls)
	}
	assertPolicyAllows(t, cfg, calls)
}

// recordedRun puts 100 records and a poison one, runs the daemon with its AWS calls recorded
// until every shard is checkpointed at its last record (so the poison record was dead-lettered)
// and then, when given, until also holds, stops it and returns the operations it called.
func recordedRun(t *testing.T, s *e2eStack, cfg string, also func()) []string {
	t.Helper()
	recs := makeRecords(0, 100)
	recs = append(recs, testenv.Rec{PartitionKey: "poison", Data: []byte(`{"not json`)})
	want := lastSequencePerShard(testenv.PutRecords(t, s.kin, s.stream, recs))
	callLog := filepath.Join(t.TempDir(), "calls.txt")
	d := startDaemonEnv(t, cfg, "worker-iam", []string{awsclient.CallLogEnv + "=" + callLog})
	s.waitCheckpointedAt(t, d, want, 90*time.Second)
	if also != nil {
		also()
	}
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := d.waitExit(40 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	raw, err := os.ReadFile(callLog)
	if err != nil {
		t.Fatalf("call log: %v", err)
	}
	return strings.Split(strings.TrimSpace(string(raw)), "\n")
}

// assertPolicyAllows checks that what `shardhose iam-policy -c cfg` prints allows every call.
func assertPolicyAllows(t *testing.T, cfg string, calls []string) {
	t.Helper()
	var out, notes bytes.Buffer
	if code, err := iamPolicyMain([]string{"-c", cfg, "--account", "123456789012"}, &out, &notes); code != 0 || err != nil {
		t.Fatalf("iam-policy exit %d: %v", code, err)
	}
	var p iampolicy.Policy
	if err := json.Unmarshal(out.Bytes(), &p); err != nil {
		t.Fatalf("iam-policy printed no JSON policy: %v\n%s", err, out.String())
	}
	var missingActions []string
	for _, call := range calls {
		service, op, _ := strings.Cut(call, " ")
		if a := iamAction(service, op); !allowed(p, a) {
			missingActions = append(missingActions, call+" -> "+a)
		}
	}
	if len(missingActions) > 0 {
		t.Fatalf("the policy does not allow %d operation(s) the daemon called: %q\npolicy:\n%s", len(missingActions), missingActions, out.String())
	}
	t.Logf("all %d operations of the run are allowed: %s", len(calls), strings.Join(calls, ", "))
}
