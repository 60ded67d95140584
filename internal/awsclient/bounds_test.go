package awsclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/logging"

	"github.com/shardhose/shardhose/config"
	"github.com/shardhose/shardhose/internal/outage"
)

// silentServer accepts requests, reads their bodies and never answers (a frozen process behind
// a live socket looks the same to a client). It counts the requests it saw.
func silentServer(t *testing.T) (url string, requests *atomic.Int64) {
	t.Helper()
	requests = &atomic.Int64{}
	testDone := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-testDone:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(testDone) }) // runs before srv.Close, which waits for handlers
	return srv.URL, requests
}

func putItem(ctx context.Context, c *dynamodb.Client) error {
	_, err := c.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String("t"),
		Item:      map[string]ddbtypes.AttributeValue{"k": &ddbtypes.AttributeValueMemberS{Value: "v"}},
	})
	return err
}

// With the default settings, a write to a server that never answers fails within
// aws.timeouts.write, in one attempt, with an error that names the key. (It used to take 3
// attempts of a one-minute response timeout: 3 minutes of silence.)
func TestSilentServerFailsAWriteWithinTheDefaultTimeout(t *testing.T) {
	url, requests := silentServer(t)
	c := config.Defaults().AWS
	c.Credentials = staticAWS().Credentials
	c.Endpoint = url
	awsCfg, err := Load(t.Context(), c, nil)
	if err != nil {
		t.Fatal(err)
	}
	guard, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	start := time.Now()
	err = putItem(guard, DynamoDB(awsCfg, c))
	took := time.Since(start)
	if err == nil {
		t.Fatal("PutItem against a silent server succeeded")
	}
	if limit := config.DefaultWriteTimeout + 2*time.Second; took > limit {
		t.Fatalf("PutItem failed after %v, want within %v (aws.timeouts.write is %v): %v", took.Round(time.Millisecond), limit, config.DefaultWriteTimeout, err)
	}
	var te *TimeoutError
	if !errors.As(err, &te) || !strings.Contains(err.Error(), "aws.timeouts.write") {
		t.Errorf("error does not say which timeout ran out: %v", err)
	}
	if n := outage.Attempts(err); n != 1 || requests.Load() != 1 {
		t.Errorf("outage.Attempts(err) = %d, server saw %d requests; want 1 and 1", n, requests.Load())
	}
}

// Each kind of call gets its own key's timeout.
func TestEachKindOfCallHasItsOwnTimeout(t *testing.T) {
	url, _ := silentServer(t)
	c := staticAWS()
	c.Endpoint = url
	c.Timeouts = config.Timeouts{Read: 200 * time.Millisecond, Write: 400 * time.Millisecond, Upload: 700 * time.Millisecond}
	awsCfg, err := Load(t.Context(), c, nil)
	if err != nil {
		t.Fatal(err)
	}
	calls := []struct {
		name string
		key  string
		want time.Duration
		call func(ctx context.Context) error
	}{
		{"kinesis GetRecords", "aws.timeouts.read", c.Timeouts.Read, func(ctx context.Context) error {
			_, err := Kinesis(awsCfg, c).GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: aws.String("it")})
			return err
		}},
		{"dynamodb PutItem", "aws.timeouts.write", c.Timeouts.Write, func(ctx context.Context) error {
			return putItem(ctx, DynamoDB(awsCfg, c))
		}},
		{"s3 PutObject of 5 MiB", "aws.timeouts.upload", c.Timeouts.Upload, func(ctx context.Context) error {
			_, err := S3(awsCfg, c).PutObject(ctx, &s3.PutObjectInput{
				Bucket: aws.String("b"), Key: aws.String("k"), Body: bytes.NewReader(make([]byte, 5<<20)),
			})
			return err
		}},
	}
	for _, tc := range calls {
		t.Run(tc.name, func(t *testing.T) {
			guard, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			start := time.Now()
			err := tc.call(guard)
			took := time.Since(start)
			var te *TimeoutError
			if !errors.As(err, &te) || te.Key != tc.key || te.After != tc.want {
				t.Fatalf("error %v, want a TimeoutError of %s (%v)", err, tc.key, tc.want)
			}
			if took < tc.want || took > tc.want+time.Second {
				t.Errorf("failed after %v, want just after %v", took.Round(time.Millisecond), tc.want)
			}
			if guard.Err() != nil {
				t.Error("the caller's context ended: the timeout did not fire first")
			}
			if errors.Is(err, context.DeadlineExceeded) {
				t.Error("the error looks like the caller's own context ending")
			}
		})
	}
}

// A call the SDK retries reports every attempt it made.
func TestAttemptsCountTheSDKRetries(t *testing.T) {
	var requests atomic.Int64
	status := http.StatusInternalServerError
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		w.WriteHeader(status)
		code := "InternalServerError"
		if status == http.StatusBadRequest {
			code = "ValidationException"
		}
		_, _ = io.WriteString(w, `{"__type":"com.amazonaws.dynamodb.v20120810#`+code+`","message":"no"}`)
	}))
	defer srv.Close()
	c := staticAWS()
	c.Endpoint = srv.URL
	c.Timeouts = config.TimeoutsDefaults()
	awsCfg, err := Load(t.Context(), c, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := putItem(t.Context(), DynamoDB(awsCfg, c)); err == nil || outage.Attempts(err) != MaxAttempts || requests.Load() != MaxAttempts {
		t.Errorf("a call failing with 500: outage.Attempts(err) = %d, server saw %d; want %d (err %v)", outage.Attempts(err), requests.Load(), MaxAttempts, err)
	}
	status = http.StatusBadRequest
	requests.Store(0)
	if err := putItem(t.Context(), DynamoDB(awsCfg, c)); err == nil || outage.Attempts(err) != 1 || requests.Load() != 1 {
		t.Errorf("a call refused with 400: outage.Attempts(err) = %d, server saw %d; want 1 (err %v)", outage.Attempts(err), requests.Load(), err)
	}
	if outage.Attempts(errors.New("not from the SDK")) != 1 {
		t.Error("an error without a count must count as one attempt")
	}
}

// The SDK's own log lines go through slog, in the configured format, not to a raw "SDK ..." line.
func TestSDKLogLinesGoThroughSlog(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	awsCfg, err := Load(t.Context(), staticAWS(), log)
	if err != nil {
		t.Fatal(err)
	}
	awsCfg.Logger.Logf(logging.Warn, "failed to discard remaining HTTP response body, this may affect connection reuse")
	awsCfg.Logger.Logf(logging.Debug, "retrying request") // below the level: dropped
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("want one line, got %d:\n%s", len(lines), buf.String())
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatalf("not JSON: %q: %v", lines[0], err)
	}
	if rec["level"] != "WARN" || rec["component"] != "aws-sdk" || !strings.Contains(rec["msg"].(string), "discard remaining") {
		t.Errorf("line %v: want level WARN, component aws-sdk and the SDK's message", rec)
	}
}

func TestCallKind(t *testing.T) {
	for op, want := range map[string]string{
		"GetRecords": kindRead, "GetShardIterator": kindRead, "ListShards": kindRead, "DescribeStreamSummary": kindRead,
		"Scan": kindRead, "GetItem": kindRead, "HeadBucket": kindRead, "ListObjectsV2": kindRead, "ReceiveMessage": kindRead,
		"PutItem": kindWrite, "UpdateItem": kindWrite, "DeleteItem": kindWrite, "CreateTable": kindWrite, "SendMessage": kindWrite,
		"DeleteMessage": kindWrite, "Publish": kindWrite, "CreateMultipartUpload": kindWrite, "CompleteMultipartUpload": kindWrite,
		"PutObject": kindUpload, "UploadPart": kindUpload, "PutRecordBatch": kindUpload, "PutRecords": kindUpload,
		"Invoke": "", "GetObject": "", "SubscribeToShard": "",
	} {
		if got := callKind(op); got != want {
			t.Errorf("callKind(%s) = %q, want %q", op, got, want)
		}
	}
}
