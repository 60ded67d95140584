package firehose

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsfirehose "github.com/aws/aws-sdk-go-v2/service/firehose"
	"github.com/aws/aws-sdk-go-v2/service/firehose/types"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/shardhose/shardhose/config"
	"github.com/shardhose/shardhose/internal/testenv"
	"github.com/shardhose/shardhose/sinks/backup"
	"github.com/shardhose/shardhose/sinks/sinktest"
)

// firehoseClient returns a client of moto's Firehose (static credentials test/test, us-east-1).
func firehoseClient(t *testing.T, e testenv.Env) *awsfirehose.Client {
	t.Helper()
	return awsfirehose.NewFromConfig(testenv.AWSConfig(t, e.Moto), func(o *awsfirehose.Options) {
		o.BaseEndpoint = aws.String(e.Moto)
	})
}

// countingClient passes calls on and counts the PutRecordBatch calls that succeeded.
type countingClient struct {
	PutRecordBatchAPI
	calls atomic.Int64
}

func (c *countingClient) PutRecordBatch(ctx context.Context, in *awsfirehose.PutRecordBatchInput, optFns ...func(*awsfirehose.Options)) (*awsfirehose.PutRecordBatchOutput, error) {
	out, err := c.PutRecordBatchAPI.PutRecordBatch(ctx, in, optFns...)
	if err == nil {
		c.calls.Add(1)
	}
	return out, err
}

// deliveryStreamToS3 creates a bucket and a Direct PUT delivery stream writing to it under prefix.
func deliveryStreamToS3(ctx context.Context, t *testing.T, fh *awsfirehose.Client, s3c *awss3.Client, prefix string) (stream, bucket string) {
	t.Helper()
	bucket = testenv.UniqueName(t, "fh")
	if _, err := s3c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("create bucket %s: %v", bucket, err)
	}
	stream = testenv.UniqueName(t, "fh")
	_, err := fh.CreateDeliveryStream(ctx, &awsfirehose.CreateDeliveryStreamInput{
		DeliveryStreamName: aws.String(stream),
		DeliveryStreamType: types.DeliveryStreamTypeDirectPut,
		ExtendedS3DestinationConfiguration: &types.ExtendedS3DestinationConfiguration{
			BucketARN:      aws.String("arn:aws:s3:::" + bucket),
			RoleARN:        aws.String("arn:aws:iam::123456789012:role/firehose-delivery"),
			Prefix:         aws.String(prefix),
			BufferingHints: &types.BufferingHints{IntervalInSeconds: aws.Int32(60), SizeInMBs: aws.Int32(5)},
		},
	})
	if err != nil {
		t.Fatalf("create delivery stream %s: %v", stream, err)
	}
	t.Cleanup(func() {
		// t.Context has ended by now.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := fh.DeleteDeliveryStream(ctx, &awsfirehose.DeleteDeliveryStreamInput{DeliveryStreamName: aws.String(stream)}); err != nil {
			t.Logf("delete delivery stream %s: %v", stream, err)
		}
	})
	return stream, bucket
}

// objects returns the body of every object under prefix in bucket, by key.
func objects(ctx context.Context, t *testing.T, s3c *awss3.Client, bucket, prefix string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	p := awss3.NewListObjectsV2Paginator(s3c, &awss3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("list s3://%s/%s: %v", bucket, prefix, err)
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			got, err := s3c.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
			if err != nil {
				t.Fatalf("get s3://%s/%s: %v", bucket, key, err)
			}
			body, err := io.ReadAll(got.Body)
			got.Body.Close()
			if err != nil {
				t.Fatalf("read s3://%s/%s: %v", bucket, key, err)
			}
			out[key] = body
		}
	}
	return out
}

// TestIntegrationMoto writes 1,000 records from 4 concurrent pseudo-shards through the sink to
// moto's Firehose, which delivers into moto's S3, and finds every record in the objects there.
//
// moto delivers synchronously: each PutRecordBatch becomes one S3 object at once
// (<prefix>YYYY/MM/dd/HH/<stream>-1-YYYY-MM-dd-HH-MM-SS-<uuid>) holding the records' data
// concatenated, whatever the buffering hints. The sink appends newlines so the records can be
// told apart.
func TestIntegrationMoto(t *testing.T) {
	e := testenv.Require(t)
	fh, s3c := firehoseClient(t, e), testenv.S3Client(t, e)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	stream, bucket := deliveryStreamToS3(ctx, t, fh, s3c, "fh/")

	cfg := config.FirehoseDefaults()
	cfg.DeliveryStream = stream
	cfg.AppendNewline = true
	client := &countingClient{PutRecordBatchAPI: fh}
	s, err := New(Options{Name: "it-firehose", Config: cfg, Client: client})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Check(ctx); err != nil {
		t.Fatalf("check: %v", err)
	}

	const shards, perShard, batch = 4, 250, 25
	acks := sinktest.NewAckRecorder(t)
	want := map[string]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for sh := range shards {
		shard := fmt.Sprintf("shardId-%012d", sh)
		recs := sinktest.Records(perShard, shard)
		mu.Lock()
		for _, r := range recs {
			want[string(r.Data)] = true
		}
		mu.Unlock()
		wg.Go(func() {
			for w := range perShard / batch {
				if err := s.Write(ctx, recs[w*batch:(w+1)*batch], acks.Done(sh*100+w)); err != nil {
					t.Errorf("write %s batch %d: %v", shard, w, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := s.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
	if n := acks.Count(); n != shards*perShard/batch {
		t.Fatalf("%d writes acknowledged, want %d", n, shards*perShard/batch)
	}

	objs := objects(ctx, t, s3c, bucket, "fh/")
	if int64(len(objs)) != client.calls.Load() {
		t.Errorf("%d objects for %d PutRecordBatch calls; moto writes one per call", len(objs), client.calls.Load())
	}
	seen := map[string]int{}
	for key, body := range objs {
		if !strings.HasPrefix(key, "fh/") || !strings.Contains(key, "/"+stream+"-1-") {
			t.Errorf("unexpected object key %s", key)
		}
		if len(body) == 0 || body[len(body)-1] != '\n' {
			t.Errorf("object %s does not end with a newline", key)
		}
		for _, line := range bytes.Split(bytes.TrimSuffix(body, []byte("\n")), []byte("\n")) {
			if !want[string(line)] {
				t.Errorf("object %s holds an unexpected record %q", key, line)
			}
			seen[string(line)]++
		}
	}
	for d := range want {
		if seen[d] != 1 {
			t.Errorf("record %s found %d times, want once", d, seen[d])
		}
	}
	t.Logf("%d records in %d objects from %d calls", len(seen), len(objs), client.calls.Load())
}

// TestIntegrationMotoBackup sends a record over Firehose's size limit with a real S3 backup
// writer: it lands in moto's S3 as an error record under firehose-failed/, and the records that
// fit reach the delivery stream.
func TestIntegrationMotoBackup(t *testing.T) {
	e := testenv.Require(t)
	fh, s3c := firehoseClient(t, e), testenv.S3Client(t, e)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	stream, bucket := deliveryStreamToS3(ctx, t, fh, s3c, "data/")

	bw, err := backup.NewS3Writer(backup.S3Options{Client: s3c, Bucket: bucket, Prefix: "backup/", SinkName: "it-firehose"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.FirehoseDefaults()
	cfg.DeliveryStream = stream
	cfg.S3Backup = config.FirehoseS3Backup{Bucket: bucket, Prefix: "backup/"}
	s, err := New(Options{Name: "it-firehose", Config: cfg, Client: fh, Backup: bw})
	if err != nil {
		t.Fatal(err)
	}
	recs := sinktest.Records(3, "shardId-000000000000")
	big := bytes.Repeat([]byte{'z'}, MaxRecordSize+1)
	recs[1].Data = big
	acks := sinktest.NewAckRecorder(t)
	if err := s.Write(ctx, recs, acks.Done(0)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
	if !acks.Acked(0) {
		t.Fatal("write not acknowledged")
	}

	var delivered []byte
	for _, body := range objects(ctx, t, s3c, bucket, "data/") {
		delivered = append(delivered, body...)
	}
	if want := string(recs[0].Data) + string(recs[2].Data); string(delivered) != want {
		t.Errorf("delivered %q, want %q", delivered, want)
	}
	backups := objects(ctx, t, s3c, bucket, "backup/"+BackupFolder)
	if len(backups) != 1 {
		t.Fatalf("%d backup objects, want 1", len(backups))
	}
	for key, body := range backups {
		ers, err := backup.ReadErrorRecords(key, body)
		if err != nil {
			t.Fatal(err)
		}
		if len(ers) != 1 || ers[0].ErrorCode != CodeRecordTooLarge || !bytes.Equal(ers[0].RawData, big) {
			t.Fatalf("backup object %s holds %d records (code %q)", key, len(ers), ers[0].ErrorCode)
		}
		if ers[0].ArrivalTimestamp != recs[1].ApproximateArrivalTimestamp.UnixMilli() {
			t.Errorf("arrivalTimestamp %d, want %d", ers[0].ArrivalTimestamp, recs[1].ApproximateArrivalTimestamp.UnixMilli())
		}
	}
}

// TestIntegrationMotoCheck finds a missing delivery stream at start-up.
func TestIntegrationMotoCheck(t *testing.T) {
	e := testenv.Require(t)
	cfg := config.FirehoseDefaults()
	cfg.DeliveryStream = testenv.UniqueName(t, "missing")
	s, err := New(Options{Name: "it-firehose", Config: cfg, Client: firehoseClient(t, e)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(t.Context())
	err = s.Check(t.Context())
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("Check = %v, want an error saying the delivery stream does not exist", err)
	}
}
