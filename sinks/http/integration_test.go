package httpsink

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/shardhose/shardhose/config"
	"github.com/shardhose/shardhose/internal/testenv"
	"github.com/shardhose/shardhose/sinks/backup"
	"github.com/shardhose/shardhose/sinks/sinktest"
)

// motoObjects reads every object of bucket.
func motoObjects(t *testing.T, ctx context.Context, c *awss3.Client, bucket string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	pages := awss3.NewListObjectsV2Paginator(c, &awss3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			t.Fatalf("list %s: %v", bucket, err)
		}
		for _, o := range page.Contents {
			got, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String(bucket), Key: o.Key})
			if err != nil {
				t.Fatalf("get %s: %v", aws.ToString(o.Key), err)
			}
			body, err := io.ReadAll(got.Body)
			got.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			out[aws.ToString(o.Key)] = body
		}
	}
	return out
}

// newMotoSink starts a sink on the real clock whose backup is a bucket in moto's S3.
func newMotoSink(t *testing.T, recv *receiver, mod func(*config.HTTPSink)) (*Sink, *awss3.Client, string, *sinktest.LogBuffer) {
	t.Helper()
	client := testenv.S3Client(t, testenv.Require(t))
	bucket := testenv.UniqueName(t, "http-backup")
	testenv.CreateBucket(t, client, bucket)
	cfg := testConfig(recv.srv.URL)
	cfg.BufferingHints.IntervalInSeconds = 1
	cfg.S3Backup.Bucket = bucket
	cfg.S3Backup.Prefix = "it/"
	cfg.S3Backup.Compression = "GZIP"
	mod(&cfg)
	logs := &sinktest.LogBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	w, err := backup.NewS3Writer(backup.S3Options{Client: client, Bucket: bucket, Prefix: cfg.S3Backup.Prefix, Compression: cfg.S3Backup.Compression, SinkName: "it-http", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{Name: "it-http", Config: cfg, SourceARN: testSourceARN, Backup: w, HTTPClient: recv.srv.Client(), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
		if strings.Contains(logs.String(), testAccessKey) {
			t.Error("the access key appears in the logs")
		}
	})
	return s, client, bucket, logs
}

// TestIntegrationOutageLandsInMotoBackup: the endpoint answers 500 for longer than the retry
// duration, so the records land in moto's S3 as Firehose error records with attemptsMade > 1;
// then the endpoint recovers and new records flow to it.
func TestIntegrationOutageLandsInMotoBackup(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	recv := newReceiver(t, newSignal())
	recv.setScript(func(int, received) reply {
		return reply{status: http.StatusInternalServerError, body: `{"errorMessage":"outage"}`}
	})
	s, client, bucket, _ := newMotoSink(t, recv, func(c *config.HTTPSink) { c.RetryDurationInSeconds = 2 })

	acks := sinktest.NewAckRecorder(t)
	down := sinktest.Records(50, "shardId-000000000001")
	if err := s.Write(ctx, down, acks.Done(0)); err != nil {
		t.Fatal(err)
	}
	if err := acks.Wait(ctx, 0); err != nil {
		t.Fatal(err)
	}
	attempts := recv.count()
	if attempts < 2 {
		t.Fatalf("%d attempts in a 2 s retry duration", attempts)
	}
	objects := motoObjects(t, ctx, client, bucket)
	if len(objects) != 1 {
		t.Fatalf("%d backup objects, want 1", len(objects))
	}
	for key, body := range objects {
		if !strings.HasPrefix(key, "it/http-endpoint-failed/2024/05/06/10/it-http-1-2024-05-06-10-00-00-") || !strings.HasSuffix(key, ".gz") {
			t.Errorf("backup key %s", key)
		}
		recs, err := backup.ReadErrorRecords(key, body)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != len(down) {
			t.Fatalf("%d error records, want %d", len(recs), len(down))
		}
		for i, er := range recs {
			r := down[i]
			if er.AttemptsMade != attempts || er.ErrorCode != ErrorCodeDestinationException ||
				!strings.Contains(er.ErrorMessage, `500: {"errorMessage":"outage"}`) ||
				er.ArrivalTimestamp != r.ApproximateArrivalTimestamp.UnixMilli() || er.AttemptEndingTimestamp < time.Now().Add(-time.Minute).UnixMilli() ||
				string(er.RawData) != string(r.Data) || er.Extra["dataId"] != r.SequenceNumber+".0" || er.Extra["subsequenceNumber"] == nil {
				t.Errorf("error record %d: %+v", i, er)
			}
		}
	}

	recv.setScript(nil)
	up := sinktest.Records(20, "shardId-000000000002")
	if err := s.Write(ctx, up, acks.Done(1)); err != nil {
		t.Fatal(err)
	}
	if err := acks.Wait(ctx, 1); err != nil {
		t.Fatal(err)
	}
	reqs := recv.requests()
	if got := reqs[len(reqs)-1].data(); !slices.Equal(got, dataOf(up)) {
		t.Errorf("after recovery the endpoint got %d records", len(got))
	}
	if n := len(motoObjects(t, ctx, client, bucket)); n != 1 {
		t.Errorf("%d backup objects after recovery, want still 1", n)
	}
}

// TestIntegrationAllDataInMoto: in AllData mode every batch is also stored raw in moto's S3.
func TestIntegrationAllDataInMoto(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	recv := newReceiver(t, newSignal())
	s, client, bucket, _ := newMotoSink(t, recv, func(c *config.HTTPSink) { c.S3BackupMode = "AllData" })
	acks := sinktest.NewAckRecorder(t)
	recs := sinktest.Records(30, "shardId-000000000003")
	if err := s.Write(ctx, recs, acks.Done(0)); err != nil {
		t.Fatal(err)
	}
	if err := acks.Wait(ctx, 0); err != nil {
		t.Fatal(err)
	}
	var delivered []string
	for _, r := range recv.requests() {
		delivered = append(delivered, r.data()...)
	}
	if !slices.Equal(delivered, dataOf(recs)) {
		t.Errorf("endpoint got %d records, want %d", len(delivered), len(recs))
	}
	objects := motoObjects(t, ctx, client, bucket)
	var copied []string
	for key, body := range objects {
		if !strings.HasPrefix(key, "it/2024/05/06/10/it-http-1-") {
			t.Errorf("raw copy key %s", key)
		}
		lines, err := backup.ReadLines(key, body)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range lines {
			copied = append(copied, string(l))
		}
	}
	if !slices.Equal(copied, dataOf(recs)) {
		t.Errorf("raw copies hold %d records, want %d", len(copied), len(recs))
	}
}
