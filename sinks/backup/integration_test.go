package backup

import (
	"context"
	"io"
	"regexp"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/shardhose/shardhose/internal/clock"
	"github.com/shardhose/shardhose/internal/retry"
	"github.com/shardhose/shardhose/internal/testenv"
	"github.com/shardhose/shardhose/sinks/sinktest"
)

// storedObjects reads every object of bucket from moto.
func storedObjects(t *testing.T, ctx context.Context, c *awss3.Client, bucket string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	pages := awss3.NewListObjectsV2Paginator(c, &awss3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			t.Fatalf("list objects of %s: %v", bucket, err)
		}
		for _, o := range page.Contents {
			got, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String(bucket), Key: o.Key})
			if err != nil {
				t.Fatalf("get %s: %v", aws.ToString(o.Key), err)
			}
			body, err := io.ReadAll(got.Body)
			got.Body.Close()
			if err != nil {
				t.Fatalf("read %s: %v", aws.ToString(o.Key), err)
			}
			out[aws.ToString(o.Key)] = body
		}
	}
	return out
}

// TestIntegrationMotoWrites stores error records and an AllData copy in moto's S3 and reads them
// back.
func TestIntegrationMotoWrites(t *testing.T) {
	client := testenv.S3Client(t, testenv.Require(t))
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	bucket := testenv.UniqueName(t, "backup")
	testenv.CreateBucket(t, client, bucket)

	w, err := NewS3Writer(S3Options{Client: client, Bucket: bucket, Prefix: "it/", Compression: CompressionGZIP, SinkName: "it-sink"})
	if err != nil {
		t.Fatal(err)
	}
	recs := sinktest.Records(100, "shardId-000000000000")
	errs := make([]ErrorRecord, len(recs))
	for i, r := range recs {
		errs[i] = ErrorRecord{
			AttemptsMade: 3, ArrivalTimestamp: r.ApproximateArrivalTimestamp.UnixMilli(),
			ErrorCode: "HttpEndpoint.DestinationException", ErrorMessage: "Received the following response from the endpoint destination. 500",
			AttemptEndingTimestamp: time.Now().UnixMilli(), RawData: r.Data,
			Extra: map[string]any{"subsequenceNumber": 0, "dataId": r.SequenceNumber + ".0"},
		}
	}
	if err := w.WriteErrors(ctx, FolderHTTPEndpointFailed, errs); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteRaw(ctx, recs); err != nil {
		t.Fatal(err)
	}

	objects := storedObjects(t, ctx, client, bucket)
	if len(objects) != 2 {
		t.Fatalf("%d objects, want 2", len(objects))
	}
	errKey := regexp.MustCompile(`^it/http-endpoint-failed/2024/05/06/10/it-sink-1-2024-05-06-10-00-00-` + uuidRe + `\.gz$`)
	rawKey := regexp.MustCompile(`^it/2024/05/06/10/it-sink-1-2024-05-06-10-00-00-` + uuidRe + `\.gz$`)
	for key, body := range objects {
		switch {
		case errKey.MatchString(key):
			got, err := ReadErrorRecords(key, body)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(recs) {
				t.Fatalf("%d error records, want %d", len(got), len(recs))
			}
			for i, e := range got {
				if string(e.RawData) != string(recs[i].Data) || e.Extra["dataId"] != recs[i].SequenceNumber+".0" || e.AttemptsMade != 3 {
					t.Errorf("error record %d = %+v", i, e)
				}
			}
		case rawKey.MatchString(key):
			lines, err := ReadLines(key, body)
			if err != nil {
				t.Fatal(err)
			}
			if len(lines) != len(recs) || string(lines[99]) != string(recs[99].Data) {
				t.Errorf("AllData copy has %d lines", len(lines))
			}
		default:
			t.Errorf("unexpected key %s", key)
		}
	}
}

// TestIntegrationMotoPause backs up into a bucket that does not exist yet: the batch is neither
// delivered nor stored (the sink pauses) until the bucket is created, then it is stored.
func TestIntegrationMotoPause(t *testing.T) {
	client := testenv.S3Client(t, testenv.Require(t))
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	bucket := testenv.UniqueName(t, "backup-pause")
	clk := clock.NewFake(time.Now())
	w, err := NewS3Writer(S3Options{Client: client, Bucket: bucket, SinkName: "it-sink", Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	d := &destination{err: errDestination}
	backup := func(ctx context.Context, lastErr error, attempts int) error {
		return w.WriteErrors(ctx, FolderHTTPEndpointFailed, []ErrorRecord{{AttemptsMade: attempts, ErrorCode: "HttpEndpoint.DestinationException", ErrorMessage: lastErr.Error(), RawData: []byte("payload")}})
	}
	res := start(ctx, clk, retry1(), d.deliver, backup)
	// The clock moves only while the Writer waits between PUTs (two timers: its backoff and the
	// round's), never while a PUT is in flight, so no round ends in the middle of one.
	end := clk.Now().Add(3 * time.Minute)
	for clk.Now().Before(end) {
		if err := clk.WaitForTimers(ctx, 2); err != nil {
			t.Fatal(err)
		}
		select {
		case r := <-res:
			t.Fatalf("returned %+v with the backup bucket missing", r)
		default:
		}
		clk.Advance(5 * time.Second)
	}
	if d.count() < 2 {
		t.Errorf("destination tried %d times during the pause", d.count())
	}
	testenv.CreateBucket(t, client, bucket)
	r := advanceUntil(t, ctx, clk, 2, 5*time.Second, res)
	if r.delivered || r.err != nil {
		t.Fatalf("result %+v, want backed up", r)
	}
	objects := storedObjects(t, ctx, client, bucket)
	if len(objects) != 1 {
		t.Fatalf("%d objects, want 1", len(objects))
	}
	for key, body := range objects {
		got, err := ReadErrorRecords(key, body)
		if err != nil || len(got) != 1 || got[0].AttemptsMade != r.attempts {
			t.Errorf("stored %+v (%v)", got, err)
		}
	}
}

// retry1 is a retry duration of 0 s: one delivery attempt, then the backup.
func retry1() retry.Policy {
	p := steady
	p.MaxAttempts = 1
	return p
}
