package testenv

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

const (
	// setupTimeout bounds each helper that creates a resource, including waiting for it to be usable.
	setupTimeout = 60 * time.Second
	// cleanupTimeout bounds each best-effort deletion at the end of a test.
	cleanupTimeout = 20 * time.Second
	// pollInterval is how often a helper asks whether a resource has become usable.
	pollInterval = 25 * time.Millisecond
)

// pause waits for d or until ctx ends, whichever is first.
func pause(ctx context.Context, d time.Duration) error {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-tm.C:
		return nil
	}
}

func cleanupContext() (context.Context, context.CancelFunc) {
	// t.Context() is already canceled when cleanup functions run.
	return context.WithTimeout(context.Background(), cleanupTimeout)
}

func baseEndpoint(p *string) string {
	if p == nil {
		return "(default endpoint)"
	}
	return *p
}

// CreateStream creates a provisioned Kinesis stream with the given number of shards, waits until
// it is ACTIVE and returns its ARN. The stream is deleted when the test ends (best effort: a
// failure is logged, not reported), which also frees the memory kinesis-local holds for it.
func CreateStream(t testing.TB, c *kinesis.Client, name string, shards int) string {
	t.Helper()
	if shards < 1 {
		t.Fatalf("create stream %s: shard count %d, want at least 1", name, shards)
	}
	ep := baseEndpoint(c.Options().BaseEndpoint)
	ctx, cancel := context.WithTimeout(t.Context(), setupTimeout)
	defer cancel()
	if _, err := c.CreateStream(ctx, &kinesis.CreateStreamInput{
		StreamName: aws.String(name),
		ShardCount: aws.Int32(int32(shards)),
	}); err != nil {
		t.Fatalf("create stream %s (%d shards) at %s: %v", name, shards, ep, err)
	}
	t.Cleanup(func() { deleteStream(t, c, name) })
	return WaitStreamActive(t, c, name)
}

// WaitStreamActive waits until the stream is ACTIVE, for instance after SplitShard, MergeShards
// or UpdateShardCount, and returns its ARN. It fails the test after a minute.
func WaitStreamActive(t testing.TB, c *kinesis.Client, name string) string {
	t.Helper()
	ep := baseEndpoint(c.Options().BaseEndpoint)
	ctx, cancel := context.WithTimeout(t.Context(), setupTimeout)
	defer cancel()
	var status ktypes.StreamStatus
	for {
		out, err := c.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
		var notFound *ktypes.ResourceNotFoundException
		switch {
		case err == nil:
			status = out.StreamDescriptionSummary.StreamStatus
			if status == ktypes.StreamStatusActive {
				return aws.ToString(out.StreamDescriptionSummary.StreamARN)
			}
		case errors.As(err, &notFound):
			// Not visible yet right after CreateStream.
		case ctx.Err() == nil:
			t.Fatalf("wait for stream %s at %s to become ACTIVE: %v", name, ep, err)
		}
		if err := pause(ctx, pollInterval); err != nil {
			t.Fatalf("wait for stream %s at %s to become ACTIVE: still %q after %s", name, ep, status, setupTimeout)
		}
	}
}

func deleteStream(t testing.TB, c *kinesis.Client, name string) {
	ctx, cancel := cleanupContext()
	defer cancel()
	_, err := c.DeleteStream(ctx, &kinesis.DeleteStreamInput{
		StreamName:              aws.String(name),
		EnforceConsumerDeletion: aws.Bool(true),
	})
	var notFound *ktypes.ResourceNotFoundException
	if err != nil && !errors.As(err, &notFound) {
		t.Logf("cleanup: delete stream %s at %s: %v", name, baseEndpoint(c.Options().BaseEndpoint), err)
	}
}

// CreateBucket creates an S3 bucket. When the test ends, its objects, object versions and
// unfinished multipart uploads are deleted, then the bucket (best effort).
func CreateBucket(t testing.TB, c *s3.Client, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), setupTimeout)
	defer cancel()
	_, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)})
	var owned *s3types.BucketAlreadyOwnedByYou
	if err != nil && !errors.As(err, &owned) {
		t.Fatalf("create bucket %s at %s: %v", name, baseEndpoint(c.Options().BaseEndpoint), err)
	}
	t.Cleanup(func() {
		ctx, cancel := cleanupContext()
		defer cancel()
		if err := deleteBucket(ctx, c, name); err != nil {
			t.Logf("cleanup: delete bucket %s at %s: %v", name, baseEndpoint(c.Options().BaseEndpoint), err)
		}
	})
}

func deleteBucket(ctx context.Context, c *s3.Client, name string) error {
	uploads := s3.NewListMultipartUploadsPaginator(c, &s3.ListMultipartUploadsInput{Bucket: aws.String(name)})
	for uploads.HasMorePages() {
		page, err := uploads.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list multipart uploads: %w", err)
		}
		for _, u := range page.Uploads {
			if _, err := c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
				Bucket: aws.String(name), Key: u.Key, UploadId: u.UploadId,
			}); err != nil {
				return fmt.Errorf("abort multipart upload of %s: %w", aws.ToString(u.Key), err)
			}
		}
	}
	versions := s3.NewListObjectVersionsPaginator(c, &s3.ListObjectVersionsInput{Bucket: aws.String(name)})
	for versions.HasMorePages() {
		page, err := versions.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list object versions: %w", err)
		}
		var ids []s3types.ObjectIdentifier
		for _, v := range page.Versions {
			ids = append(ids, s3types.ObjectIdentifier{Key: v.Key, VersionId: v.VersionId})
		}
		for _, m := range page.DeleteMarkers {
			ids = append(ids, s3types.ObjectIdentifier{Key: m.Key, VersionId: m.VersionId})
		}
		if len(ids) == 0 {
			continue
		}
		out, err := c.DeleteObjects(ctx, &s3.DeleteObjectsInput{
			Bucket: aws.String(name),
			Delete: &s3types.Delete{Objects: ids, Quiet: aws.Bool(true)},
		})
		if err != nil {
			return fmt.Errorf("delete %d objects: %w", len(ids), err)
		}
		if len(out.Errors) > 0 {
			e := out.Errors[0]
			return fmt.Errorf("delete objects: %d failed, first %s: %s %s",
				len(out.Errors), aws.ToString(e.Key), aws.ToString(e.Code), aws.ToString(e.Message))
		}
	}
	if _, err := c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(name)}); err != nil {
		return fmt.Errorf("delete bucket: %w", err)
	}
	return nil
}

// CreateQueue creates an SQS queue and returns its URL; a name ending in ".fifo" makes a FIFO
// queue with content-based deduplication. The queue is deleted when the test ends (best effort).
func CreateQueue(t testing.TB, c *sqs.Client, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), setupTimeout)
	defer cancel()
	in := &sqs.CreateQueueInput{QueueName: aws.String(name)}
	if strings.HasSuffix(name, ".fifo") {
		in.Attributes = map[string]string{
			string(sqstypes.QueueAttributeNameFifoQueue):                 "true",
			string(sqstypes.QueueAttributeNameContentBasedDeduplication): "true",
		}
	}
	out, err := c.CreateQueue(ctx, in)
	if err != nil {
		t.Fatalf("create queue %s at %s: %v", name, baseEndpoint(c.Options().BaseEndpoint), err)
	}
	u := aws.ToString(out.QueueUrl)
	t.Cleanup(func() {
		ctx, cancel := cleanupContext()
		defer cancel()
		_, err := c.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: aws.String(u)})
		var gone *sqstypes.QueueDoesNotExist
		if err != nil && !errors.As(err, &gone) {
			t.Logf("cleanup: delete queue %s: %v", u, err)
		}
	})
	return u
}
