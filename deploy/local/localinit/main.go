// Command localinit creates the demo resources on the local AWS stack, idempotently: the Kinesis
// stream (waiting until it is ACTIVE), the S3 bucket and the SQS dead-letter queue. The lease
// table is not created here: the daemon creates its own.
//
// Run by deploy/local/up.sh. Exit status 1 means a resource could not be created or did not
// become usable in time; the message says which and where.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

func main() {
	var (
		kinesisEP = flag.String("kinesis", "http://127.0.0.1:14567", "Kinesis endpoint (kinesis-local)")
		motoEP    = flag.String("moto", "http://127.0.0.1:14571", "S3 and SQS endpoint (moto)")
		stream    = flag.String("stream", "shardhose-demo", "Kinesis stream to create")
		shards    = flag.Int("shards", 4, "shard count of a newly created stream")
		bucket    = flag.String("bucket", "shardhose-demo", "S3 bucket to create")
		queue     = flag.String("queue", "shardhose-demo-dlq", "SQS queue to create")
		timeout   = flag.Duration("timeout", time.Minute, "give up after this long")
	)
	flag.Parse()
	if *shards < 1 {
		fmt.Fprintf(os.Stderr, "localinit: -shards %d: want at least 1\n", *shards)
		os.Exit(2)
	}

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if err := run(ctx, *kinesisEP, *motoEP, *stream, int32(*shards), *bucket, *queue); err != nil {
		fmt.Fprintf(os.Stderr, "localinit: %v\n", err)
		os.Exit(1)
	}
}

// config addresses one local server with static test credentials. It is built directly, not by
// config.LoadDefaultConfig, so no profile or AWS_* variable can send the calls elsewhere.
func config(endpoint string) aws.Config {
	return aws.Config{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
		BaseEndpoint: aws.String(endpoint),
	}
}

func run(ctx context.Context, kinesisEP, motoEP, stream string, shards int32, bucket, queue string) error {
	kc := kinesis.NewFromConfig(config(kinesisEP), func(o *kinesis.Options) { o.BaseEndpoint = aws.String(kinesisEP) })
	s3c := s3.NewFromConfig(config(motoEP), func(o *s3.Options) {
		o.BaseEndpoint = aws.String(motoEP)
		o.UsePathStyle = true
	})
	sqsc := sqs.NewFromConfig(config(motoEP), func(o *sqs.Options) { o.BaseEndpoint = aws.String(motoEP) })

	if err := ensureStream(ctx, kc, stream, shards); err != nil {
		return fmt.Errorf("kinesis stream %s at %s: %w", stream, kinesisEP, err)
	}
	if err := ensureBucket(ctx, s3c, bucket); err != nil {
		return fmt.Errorf("s3 bucket %s at %s: %w", bucket, motoEP, err)
	}
	url, err := ensureQueue(ctx, sqsc, queue)
	if err != nil {
		return fmt.Errorf("sqs queue %s at %s: %w", queue, motoEP, err)
	}
	fmt.Printf("localinit: queue %s ready: %s\n", queue, url)
	return nil
}

func ensureStream(ctx context.Context, c *kinesis.Client, name string, shards int32) error {
	_, err := c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(shards)})
	var inUse *ktypes.ResourceInUseException
	switch {
	case err == nil:
		fmt.Printf("localinit: stream %s created with %d shards\n", name, shards)
	case errors.As(err, &inUse):
		// Already there (or being deleted: then waiting below reports it).
	default:
		return fmt.Errorf("create: %w", err)
	}
	var status ktypes.StreamStatus
	for {
		out, err := c.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
		var notFound *ktypes.ResourceNotFoundException
		switch {
		case err == nil:
			s := out.StreamDescriptionSummary
			status = s.StreamStatus
			if status == ktypes.StreamStatusActive {
				fmt.Printf("localinit: stream %s ACTIVE, %d open shards\n", name, aws.ToInt32(s.OpenShardCount))
				return nil
			}
		case errors.As(err, &notFound):
			// Not visible yet right after CreateStream.
		case ctx.Err() == nil:
			return fmt.Errorf("describe: %w", err)
		}
		t := time.NewTimer(50 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("not ACTIVE in time (status %q): %w", status, ctx.Err())
		case <-t.C:
		}
	}
}

func ensureBucket(ctx context.Context, c *s3.Client, name string) error {
	_, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)})
	var owned *s3types.BucketAlreadyOwnedByYou
	switch {
	case err == nil:
	case errors.As(err, &owned):
	default:
		return fmt.Errorf("create: %w", err)
	}
	if _, err := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(name)}); err != nil {
		return fmt.Errorf("head after create: %w", err)
	}
	fmt.Printf("localinit: bucket %s ready\n", name)
	return nil
}

// ensureQueue creates the queue; CreateQueue with the same name and attributes returns the
// existing queue's URL, so it is idempotent by itself.
func ensureQueue(ctx context.Context, c *sqs.Client, name string) (string, error) {
	out, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name)})
	if err != nil {
		return "", fmt.Errorf("create: %w", err)
	}
	return aws.ToString(out.QueueUrl), nil
}
