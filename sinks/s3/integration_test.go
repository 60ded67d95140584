package s3

import (
	"context"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/shardhose/shardhose/internal/testenv"
	"github.com/shardhose/shardhose/record"
	"github.com/shardhose/shardhose/sinks/sinktest"
)

// objectKeyPattern matches the keys of objects holding sinktest.Records, which arrive from
// 10:00:00 to 10:00:01.249 on 2024-05-06.
var objectKeyPattern = regexp.MustCompile(`^2024/05/06/10/it-sink-1-2024-05-06-10-00-0[01]-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\.gz$`)

// TestIntegrationMoto writes 5,000 records of about 1 KiB from 4 concurrent pseudo-shards to
// moto's S3 through 1 MiB buffers, two uploads at a time, and reads every object back.
func TestIntegrationMoto(t *testing.T) {
	client := testenv.S3Client(t, testenv.Require(t))
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	bucket := testenv.UniqueName(t, "s3sink")
	if _, err := client.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("create bucket %s: %v", bucket, err)
	}

	cfg := testConfig(1)
	cfg.Bucket = bucket
	cfg.MaxUploads = 2
	s, err := New(Options{Name: "it-sink", Config: cfg, Client: client})
	if err != nil {
		t.Fatal(err)
	}

	const shards, perShard, batch = 4, 1250, 50
	pad := strings.Repeat("x", 950)
	acks := sinktest.NewAckRecorder(t)
	want := map[string]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for sh := range shards {
		shard := fmt.Sprintf("shardId-%012d", sh)
		recs := sinktest.Records(perShard, shard)
		for i := range recs {
			recs[i].Data = append(recs[i].Data[:len(recs[i].Data)-1], `,"pad":"`+pad+`"}`...)
			mu.Lock()
			want[string(recs[i].Data)] = true
			mu.Unlock()
		}
		wg.Go(func() {
			for w := 0; w < perShard/batch; w++ {
				id := sh*perShard/batch + w
				if err := s.Write(ctx, recs[w*batch:(w+1)*batch], acks.Done(id)); err != nil {
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

	seen := map[string]int{}
	objects := 0
	pages := awss3.NewListObjectsV2Paginator(client, &awss3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			t.Fatalf("list objects of %s: %v", bucket, err)
		}
		for _, obj := range page.Contents {
			objects++
			key := aws.ToString(obj.Key)
			if !objectKeyPattern.MatchString(key) {
				t.Errorf("key %s does not match %s", key, objectKeyPattern)
			}
			out, err := client.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String(bucket), Key: obj.Key})
			if err != nil {
				t.Fatalf("get object %s: %v", key, err)
			}
			body, err := io.ReadAll(out.Body)
			out.Body.Close()
			if err != nil {
				t.Fatalf("read object %s: %v", key, err)
			}
			if ct := aws.ToString(out.ContentType); ct != contentType {
				t.Errorf("object %s has ContentType %q", key, ct)
			}
			last := map[string]string{}
			for _, line := range lines(t, body, true) {
				seen[line]++
				shard, seq := shardSeq(t, line)
				if prev, ok := last[shard]; ok && record.CompareSequenceNumbers(prev, seq) >= 0 {
					t.Errorf("object %s: %s record %s follows %s", key, shard, seq, prev)
				}
				last[shard] = seq
			}
		}
	}
	for line, n := range seen {
		if !want[line] {
			t.Errorf("unexpected record in bucket: %.60s", line)
		} else if n != 1 {
			t.Errorf("record stored %d times: %.60s", n, line)
		}
	}
	if len(seen) != len(want) {
		t.Fatalf("%d of %d records found in %d objects", len(seen), len(want), objects)
	}
	t.Logf("%d records in %d objects", len(seen), objects)
}
