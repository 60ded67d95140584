package opensearch

import (
	"context"
	"io"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/shardhose/shardhose/internal/clock"
	"github.com/shardhose/shardhose/internal/testenv"
	"github.com/shardhose/shardhose/sinks/backup"
	"github.com/shardhose/shardhose/sinks/opensearch/bulktest"
	"github.com/shardhose/shardhose/sinks/sinktest"
)

// Keys of the backup objects of sinktest.Records (arrived 2024-05-06 10:00:00.xxx UTC).
var (
	errorKeyPattern = regexp.MustCompile(`^os-it/AmazonOpenSearchService_failed/2024/05/06/10/search-1-2024-05-06-10-00-00-[0-9a-f-]{36}\.gz$`)
	rawKeyPattern   = regexp.MustCompile(`^os-it/2024/05/06/10/search-1-2024-05-06-10-00-00-[0-9a-f-]{36}\.gz$`)
)

// TestIntegrationBackupToS3 delivers through the real S3 backup writer into moto: a rejected
// and a throttled document end up as Firehose error records in S3, every record as an
// AllDocuments copy, and the rest in the index.
func TestIntegrationBackupToS3(t *testing.T) {
	s3c := testenv.S3Client(t, testenv.Require(t))
	bucket := testenv.UniqueName(t, "os-backup")
	testenv.CreateBucket(t, s3c, bucket)

	srv := bulktest.Start(t)
	clk := clock.NewFake(start)
	w, err := backup.NewS3Writer(backup.S3Options{Client: s3c, Bucket: bucket, Prefix: "os-it/", Compression: backup.CompressionGZIP, SinkName: "search", Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvWith(t, srv, clk, w, func(o *Options) {
		o.Config.S3BackupMode = "AllDocuments"
		o.Config.RetryDurationInSeconds = 60
		o.Config.S3Backup = configBackup(bucket)
	})
	recs := sinktest.Records(20, "shardId-000000000000")
	rejected, throttled := positionID(&recs[3]), positionID(&recs[11])
	srv.FailID(rejected, bulktest.Failure{Status: 400, Type: "mapper_parsing_exception", Reason: "failed to parse field [seq] of type [long]"})
	srv.FailID(throttled, bulktest.Failure{Status: 429, Type: "es_rejected_execution_exception", Reason: "rejected execution of coordinating operation"})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	acks := sinktest.NewAckRecorder(t)
	if err := e.sink.Write(ctx, recs, acks.Done(1)); err != nil {
		t.Fatal(err)
	}
	e.seal(t)
	warp(t, clk)
	if err := e.sink.Flush(ctx); err != nil || !acks.Acked(1) {
		t.Fatalf("Flush: %v (acknowledged: %v)", err, acks.Acked(1))
	}

	if n := srv.Count(); n != 18 {
		t.Errorf("%d documents indexed, want 18", n)
	}
	objects := readObjects(t, s3c, bucket)
	var errorRecs []backup.ErrorRecord
	var raw [][]byte
	for key, body := range objects {
		switch {
		case errorKeyPattern.MatchString(key):
			recs, err := backup.ReadErrorRecords(key, body)
			if err != nil {
				t.Fatal(err)
			}
			errorRecs = append(errorRecs, recs...)
		case rawKeyPattern.MatchString(key):
			lines, err := backup.ReadLines(key, body)
			if err != nil {
				t.Fatal(err)
			}
			raw = append(raw, lines...)
		default:
			t.Errorf("unexpected object %s", key)
		}
	}
	if len(raw) != len(recs) {
		t.Errorf("AllDocuments copy holds %d records, want %d", len(raw), len(recs))
	}
	for i := range recs {
		if !slices.ContainsFunc(raw, func(l []byte) bool { return string(l) == string(recs[i].Data) }) {
			t.Errorf("record %d missing from the AllDocuments copy", i)
		}
	}
	if len(errorRecs) != 2 {
		t.Fatalf("%d error records in S3, want 2: %+v", len(errorRecs), errorRecs)
	}
	slices.SortFunc(errorRecs, func(a, b backup.ErrorRecord) int { return a.AttemptsMade - b.AttemptsMade })
	checks := []struct {
		r        backup.ErrorRecord
		id, code string
		rec      int
		multiple bool
	}{
		{errorRecs[0], rejected, "400", 3, false},
		{errorRecs[1], throttled, "429", 11, true},
	}
	for _, c := range checks {
		r := c.r
		if r.Extra["esDocumentId"] != c.id || r.Extra["esIndexName"] != "logs-2024-05-06" || r.Extra["esTypeName"] != "_doc" {
			t.Errorf("error record fields %v", r.Extra)
		}
		if r.ErrorCode != c.code || string(r.RawData) != string(recs[c.rec].Data) || r.ArrivalTimestamp != recs[c.rec].ApproximateArrivalTimestamp.UnixMilli() {
			t.Errorf("error record %+v", r)
		}
		if c.multiple != (r.AttemptsMade > 1) || r.AttemptsMade < 1 {
			t.Errorf("%s: attemptsMade %d", c.code, r.AttemptsMade)
		}
	}
}

// TestIntegrationPauseUntilBackupBucketExists: the cluster answers 503 and the backup bucket does
// not exist yet. Nothing is acknowledged; once the bucket exists, the documents land there as
// error records and the write is acknowledged.
func TestIntegrationPauseUntilBackupBucketExists(t *testing.T) {
	s3c := testenv.S3Client(t, testenv.Require(t))
	bucket := testenv.UniqueName(t, "os-late")
	srv := bulktest.Start(t)
	srv.FailRequests(bulktest.RequestFailure{Status: 503, Type: "cluster_block_exception", Reason: "blocked by: [SERVICE_UNAVAILABLE/2/no cluster-manager]"})
	clk := clock.NewFake(start)
	w, err := backup.NewS3Writer(backup.S3Options{Client: s3c, Bucket: bucket, Prefix: "os-it/", Compression: backup.CompressionGZIP, SinkName: "search", Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvWith(t, srv, clk, w, func(o *Options) {
		o.Config.RetryDurationInSeconds = 30
		o.Config.S3Backup = configBackup(bucket)
	})

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	acks := sinktest.NewAckRecorder(t)
	recs := sinktest.Records(5, "shardId-000000000000")
	if err := e.sink.Write(ctx, recs, acks.Done(1)); err != nil {
		t.Fatal(err)
	}
	e.seal(t)
	warp(t, clk)
	flushed := make(chan error, 1)
	go func() { flushed <- e.sink.Flush(ctx) }()

	// Several delivery attempts past the retry duration, with backup rounds between them.
	if err := srv.WaitBulkRequests(ctx, 12); err != nil {
		t.Fatal(err)
	}
	if acks.Acked(1) {
		t.Fatal("acknowledged with neither the cluster nor the backup taking the documents")
	}
	testenv.CreateBucket(t, s3c, bucket)
	if err := <-flushed; err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if !acks.Acked(1) {
		t.Fatal("not acknowledged once the bucket exists")
	}
	// A backup round whose window ends while its PUT is in flight gives that PUT up, yet S3 may
	// still store it (here, with rounds of 60 ms, it often does): the batch is then backed up
	// more than once. That is at least once, as everywhere; what must hold is that every object
	// is a whole copy of the batch.
	var got []backup.ErrorRecord
	objects := 0
	for key, body := range readObjects(t, s3c, bucket) {
		if !errorKeyPattern.MatchString(key) {
			t.Errorf("unexpected object %s", key)
			continue
		}
		inObject, err := backup.ReadErrorRecords(key, body)
		if err != nil {
			t.Fatal(err)
		}
		if len(inObject) != len(recs) {
			t.Fatalf("object %s holds %d error records, want the whole batch of %d", key, len(inObject), len(recs))
		}
		for i, r := range inObject {
			if string(r.RawData) != string(recs[i].Data) {
				t.Fatalf("object %s: error record %d holds %q, want %q", key, i, r.RawData, recs[i].Data)
			}
		}
		objects++
		got = append(got, inObject...)
	}
	if objects == 0 {
		t.Fatal("no backup object once the bucket exists")
	}
	for _, r := range got {
		if r.ErrorCode != "503" || r.AttemptsMade < 2 || !strings.Contains(r.ErrorMessage, "cluster_block_exception") {
			t.Errorf("error record %+v", r)
		}
	}
}

// warp runs the fake clock 500 times faster than real time until the test ends. Here the
// backup rounds and retry waits bound real requests to moto, so fake time must not jump while one
// is in flight, as the unit tests' driver makes it do; at this pace a 30 s backup round lasts
// 60 ms, enough for most local PUTs (one that takes longer is given up and may be stored twice),
// and the retry duration a fraction of a second.
func warp(t *testing.T, c *clock.Fake) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				c.Advance(time.Second)
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// readObjects returns every object of bucket by key.
func readObjects(t *testing.T, c *awss3.Client, bucket string) map[string][]byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	out := map[string][]byte{}
	pages := awss3.NewListObjectsV2Paginator(c, &awss3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			t.Fatalf("list s3://%s: %v", bucket, err)
		}
		for _, o := range page.Contents {
			res, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String(bucket), Key: o.Key})
			if err != nil {
				t.Fatalf("get s3://%s/%s: %v", bucket, *o.Key, err)
			}
			b, err := io.ReadAll(res.Body)
			res.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			out[*o.Key] = b
		}
	}
	return out
}
