package s3

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/shardhose/shardhose/config"
	"github.com/shardhose/shardhose/internal/testenv"
	"github.com/shardhose/shardhose/record"
	"github.com/shardhose/shardhose/sinks/backup"
	"github.com/shardhose/shardhose/sinks/sinktest"
)

// bucketObjects reads every object of bucket.
func bucketObjects(ctx context.Context, t *testing.T, client *awss3.Client, bucket string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	pages := awss3.NewListObjectsV2Paginator(client, &awss3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			t.Fatalf("list objects of %s: %v", bucket, err)
		}
		for _, obj := range page.Contents {
			got, err := client.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String(bucket), Key: obj.Key})
			if err != nil {
				t.Fatalf("get object %s: %v", aws.ToString(obj.Key), err)
			}
			body, err := io.ReadAll(got.Body)
			got.Body.Close()
			if err != nil {
				t.Fatalf("read object %s: %v", aws.ToString(obj.Key), err)
			}
			out[aws.ToString(obj.Key)] = body
		}
	}
	return out
}

// TestIntegrationMotoPartitioned writes the recipe's events, many copies of them from four
// pseudo-shards, with dynamic partitioning by event type into moto's S3, plus records that cannot
// be partitioned, and reads every object back: one partition per event type under the recipe's
// prefix, every record exactly once, and the failures as error records under the error prefix.
func TestIntegrationMotoPartitioned(t *testing.T) {
	client := testenv.S3Client(t, testenv.Require(t))
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	bucket := testenv.UniqueName(t, "s3part")
	testenv.CreateBucket(t, client, bucket)

	cfg := testConfig(1)
	cfg.Bucket = bucket
	cfg.Compression = CompressionZSTD
	cfg.Prefix = "transformed-data/event_type=!{partitionKeyFromQuery:event_type}/!{timestamp:yyyy/MM/dd}/"
	cfg.ErrorOutputPrefix = "error-data/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd}/"
	cfg.DynamicPartitioning = &config.DynamicPartitioning{Enabled: true, Queries: map[string]string{"event_type": ".event_type"}}
	s, err := New(Options{Name: "it-lake", Config: cfg, Client: client})
	if err != nil {
		t.Fatal(err)
	}

	events := recipeRecords(t)
	acks := sinktest.NewAckRecorder(t)
	want := map[string]string{} // record data -> event type ("" for a failure)
	const shards, copies = 4, 50
	for sh := range shards {
		var recs []record.Record
		for c := range copies {
			for _, ev := range events {
				r := ev
				r.ShardID = fmt.Sprintf("shardId-%012d", sh)
				r.Data = fmt.Appendf(bytes.TrimSuffix(bytes.Clone(ev.Data), []byte("}")), `,"copy":"%s-%d"}`, r.ShardID, c)
				recs = append(recs, r)
				var typ string
				if m := regexp.MustCompile(`"event_type":"([a-z_]+)"`).FindSubmatch(r.Data); m != nil {
					typ = string(m[1])
				}
				want[string(r.Data)] = typ
			}
		}
		bad := record.Record{ShardID: "bad", SequenceNumber: "1", Data: fmt.Appendf(nil, "not json %d", sh), ApproximateArrivalTimestamp: events[0].ApproximateArrivalTimestamp}
		recs = append(recs, bad)
		want[string(bad.Data)] = ""
		if err := s.Write(ctx, recs, acks.Done(sh)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
	if n := acks.Count(); n != shards {
		t.Fatalf("%d writes acknowledged, want %d", n, shards)
	}

	dataKey := regexp.MustCompile(`^transformed-data/event_type=([a-z_]+)/2025/01/15/it-lake-1-2025-01-15-10-3[0-4]-00-` + uuidPattern + `\.zst$`)
	errKey := regexp.MustCompile(`^error-data/partitioning-failed/2025/01/15/it-lake-1-2025-01-15-10-30-00-` + uuidPattern + `$`)
	seen := map[string]int{}
	for key, body := range bucketObjects(ctx, t, client, bucket) {
		switch {
		case dataKey.MatchString(key):
			typ := dataKey.FindStringSubmatch(key)[1]
			for _, line := range strings.Split(strings.TrimSuffix(string(decodeObject(t, key, body)), "\n"), "\n") {
				seen[line]++
				if want[line] != typ {
					t.Errorf("%s holds a record of type %q: %.80s", key, want[line], line)
				}
			}
		case errKey.MatchString(key):
			errs, err := backup.ReadErrorRecords(key, body)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range errs {
				seen[string(e.RawData)]++
				if e.ErrorCode != ErrorCodeMetadataExtractionFailed || want[string(e.RawData)] != "" {
					t.Errorf("error record %+v", e)
				}
			}
		default:
			t.Errorf("unexpected object %s", key)
		}
	}
	for line := range want {
		if seen[line] != 1 {
			t.Errorf("record stored %d times: %.80s", seen[line], line)
		}
	}
	t.Logf("%d records in %s", len(seen), bucket)
}

// TestIntegrationMotoMultipartAndParquet writes a 17 MiB object (a multipart upload with CRC32
// checksums) and a Parquet file to moto's S3 and reads both back.
func TestIntegrationMotoMultipartAndParquet(t *testing.T) {
	client := testenv.S3Client(t, testenv.Require(t))
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	bucket := testenv.UniqueName(t, "s3mp")
	testenv.CreateBucket(t, client, bucket)

	cfg := testConfig(0)
	cfg.Bucket = bucket
	cfg.Compression = CompressionUncompressed
	cfg.Prefix = "big/"
	s, err := New(Options{Name: "it-big", Config: cfg, Client: client})
	if err != nil {
		t.Fatal(err)
	}
	big := record.Record{Data: bytes.Repeat([]byte("0123456789abcdef"), (MultipartThreshold+1<<20)/16), ApproximateArrivalTimestamp: sinktest.Start}
	if err := s.Write(ctx, []record.Record{big}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}

	pcfg := parquetConfig()
	pcfg.Bucket = bucket
	pcfg.Prefix = "lake/"
	p, err := New(Options{Name: "it-lake", Config: pcfg, Client: client})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Write(ctx, recipeRecords(t), nil); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}

	objs := bucketObjects(ctx, t, client, bucket)
	if len(objs) != 2 {
		t.Fatalf("objects %v, want the big one and the Parquet file", objs)
	}
	for key, body := range objs {
		switch {
		case strings.HasPrefix(key, "big/2024/05/06/10/it-big-1-"):
			if !bytes.Equal(body, append(big.Data, '\n')) {
				t.Errorf("%s holds %d bytes that differ from the %d written", key, len(body), len(big.Data)+1)
			}
		case strings.HasPrefix(key, "lake/2025/01/15/10/it-lake-1-") && strings.HasSuffix(key, ".parquet"):
			rows, _ := readParquet(t, body)
			if len(rows) != 5 || rows[0].EventID != "evt001" || rows[4].EventType != "remove_from_cart" {
				t.Errorf("%s holds rows %+v", key, rows)
			}
		default:
			t.Errorf("unexpected object %s", key)
		}
	}
	uploads, err := client.ListMultipartUploads(ctx, &awss3.ListMultipartUploadsInput{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatal(err)
	}
	if len(uploads.Uploads) != 0 {
		t.Errorf("%d multipart uploads left open", len(uploads.Uploads))
	}
}
