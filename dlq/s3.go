package dlq

import (
	"context"
	"errors"
	"fmt"
)

// S3 writes each dead letter as one JSON object, records always inline (an S3 object has no
// practical size limit), at ObjectKey(prefix, message). A retried Send of the same Failure
// overwrites the same key. Safe for concurrent use.
type S3 struct {
	client S3API
	bucket string
	prefix string
}

var (
	_ Destination = (*S3)(nil)
	_ Checker     = (*S3)(nil)
)

// NewS3 returns a destination writing objects to bucket under prefix.
func NewS3(client S3API, bucket, prefix string) (*S3, error) {
	if client == nil || bucket == "" {
		return nil, errors.New("s3 dead letters: a client and a bucket are required")
	}
	return &S3{client: client, bucket: bucket, prefix: prefix}, nil
}

// Name returns "s3 s3://bucket/prefix".
func (d *S3) Name() string { return "s3 s3://" + d.bucket + "/" + d.prefix }

// Send writes f's dead letter; see Destination.
func (d *S3) Send(ctx context.Context, f Failure) error {
	if len(f.Records) == 0 {
		return fmt.Errorf("dead letter to s3://%s/%s: %w", d.bucket, d.prefix, ErrNoRecords)
	}
	m := NewMessage(f)
	body, err := encode(m)
	if err != nil {
		return err
	}
	if err := putJSON(ctx, d.client, d.bucket, ObjectKey(d.prefix, m), body); err != nil {
		return fmt.Errorf("dead letter: %w", err)
	}
	return nil
}

// Check verifies that the bucket exists and can be reached.
func (d *S3) Check(ctx context.Context) error {
	if err := checkBucket(ctx, d.client, d.bucket); err != nil {
		return fmt.Errorf("dead-letter %w", err)
	}
	return nil
}
