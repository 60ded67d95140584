package s3

import (
	"context"
	"encoding/json"
	"io"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/shardhose/shardhose/internal/clock"
	"github.com/shardhose/shardhose/internal/testenv"
	"github.com/shardhose/shardhose/record"
)

// TestIntegrationExactlyOnceMoto runs the crash-and-rerun case against moto's S3 in a versioned
// bucket: a first run writes records 1..9 in two objects, a second run of the same shard reads
// 1..20 again with other boundaries. moto refuses its conditional writes of the first run's keys
// (412), the second run reads their metadata and writes only 10..20, and no key gets a second
// version.
func TestIntegrationExactlyOnceMoto(t *testing.T) {
	client := testenv.S3Client(t, testenv.Require(t))
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	bucket := testenv.UniqueName(t, "s3eo")
	testenv.CreateBucket(t, client, bucket)
	if _, err := client.PutBucketVersioning(ctx, &awss3.PutBucketVersioningInput{
		Bucket:                  aws.String(bucket),
		VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled},
	}); err != nil {
		t.Fatalf("enable versioning: %v", err)
	}
	cfg := eoConfig()
	cfg.Bucket = bucket
	run := func(from record.Position, batches ...[]record.Record) *Sink {
		s, err := New(Options{Name: "it-eo", Config: cfg, Client: client, Clock: clock.Real()})
		if err != nil {
			t.Fatal(err)
		}
		var lease leaseSwitch
		s.OpenShard("shardId-000000000001", from, lease.get)
		for _, b := range batches {
			writeAndWait(t, s, b)
		}
		if err := s.Close(ctx); err != nil {
			t.Fatalf("close: %v", err)
		}
		return s
	}
	const shard = "shardId-000000000001"
	run(record.Position{}, shardRecords(shard, 1, 4), shardRecords(shard, 5, 9))
	second := run(record.Position{}, shardRecords(shard, 1, 6), shardRecords(shard, 7, 20))
	if got, _ := second.Delivered(shard); got != seqPos(20) {
		t.Errorf("Delivered = %s, want %s", got, seqPos(20))
	}

	versions, err := client.ListObjectVersions(ctx, &awss3.ListObjectVersionsInput{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatal(err)
	}
	perKey := map[string]int{}
	for _, v := range versions.Versions {
		perKey[aws.ToString(v.Key)]++
	}
	if len(perKey) != 3 {
		t.Errorf("%d objects, want 3: %v", len(perKey), perKey)
	}
	counts := map[int]int{}
	for key, n := range perKey {
		if n != 1 {
			t.Errorf("object %s has %d versions: it was overwritten", key, n)
		}
		head, err := client.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
		if err != nil {
			t.Fatal(err)
		}
		if head.Metadata[MetaShard] != shard || head.Metadata[MetaFirst] == "" || head.Metadata[MetaLast] == "" {
			t.Errorf("object %s metadata %v", key, head.Metadata)
		}
		got, err := client.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(got.Body)
		got.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range lines(t, body, true) {
			var v struct{ N int }
			if err := json.Unmarshal([]byte(line), &v); err != nil {
				t.Fatal(err)
			}
			counts[v.N]++
		}
	}
	assertEachOnce(t, counts, 1, 20)
}
