package dlq

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// S3API is the part of the S3 client the S3 destination and overflow use; *s3.Client implements it.
type S3API interface {
	PutObject(ctx context.Context, in *s3.PutObjectInput, optFns ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	HeadBucket(ctx context.Context, in *s3.HeadBucketInput, optFns ...func(*s3.Options)) (*s3.HeadBucketOutput, error)
}

var _ S3API = (*s3.Client)(nil)

// Overflow is the S3 location where a size-limited destination (SQS, SNS, Kinesis) writes a
// dead letter that does not fit in one of its messages. The object holds the full message,
// records included; the message sent instead carries recordsLocation pointing at it.
type Overflow struct {
	Client S3API
	Bucket string
	// Prefix starts every key; the key goes on like the S3 destination's (see ObjectKey).
	Prefix string
}

func (o Overflow) validate(dest string) error {
	if o.Client == nil || o.Bucket == "" {
		return fmt.Errorf("%s dead letters need an overflow S3 location (client and bucket) for messages over the size limit", dest)
	}
	return nil
}

// ObjectKey returns the S3 key of f's dead letter under prefix:
// <prefix>YYYY/MM/dd/HH/<shard>-<first sequence number>-<id>.json, the date (UTC) being
// Failure.Time. Keys of one prefix thus list in time order, and a retried Send writes the same key.
func ObjectKey(prefix string, m Message) string {
	t := m.Time()
	return prefix + t.UTC().Format("2006/01/02/15/") + m.KinesisBatchInfo.ShardID + "-" +
		m.KinesisBatchInfo.StartSequenceNumber + "-" + m.RequestContext.RequestID + ".json"
}

// putJSON writes body as a JSON object at bucket/key.
func putJSON(ctx context.Context, c S3API, bucket, key string, body []byte) error {
	_, err := c.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        aws.String(bucket),
		Key:           aws.String(key),
		Body:          bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))),
		ContentType:   aws.String("application/json"),
	})
	if err != nil {
		return fmt.Errorf("put object s3://%s/%s: %w", bucket, key, err)
	}
	return nil
}

// checkBucket verifies that the bucket exists and can be reached.
func checkBucket(ctx context.Context, c S3API, bucket string) error {
	if _, err := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(bucket)}); err != nil {
		return fmt.Errorf("bucket %s: %w", bucket, err)
	}
	return nil
}

// fit encodes f's message for a destination whose messages may hold at most limit bytes
// (reserve of them are taken by something else, such as a Kinesis partition key). When the full
// message fits it is returned as is. Otherwise the full message is written to the overflow
// location first, and the message returned carries recordsLocation instead of the records (and,
// if that is still too large, a shortened error message: the full one is in the object).
func (o Overflow) fit(ctx context.Context, f Failure, limit, reserve int) ([]byte, Message, error) {
	m := NewMessage(f)
	body, err := encode(m)
	if err != nil {
		return nil, m, err
	}
	max := limit - reserve
	if len(body) <= max {
		return body, m, nil
	}
	loc := Location{Bucket: o.Bucket, Key: ObjectKey(o.Prefix, m)}
	if err := putJSON(ctx, o.Client, loc.Bucket, loc.Key, body); err != nil {
		return nil, m, fmt.Errorf("write records of a %d-byte dead letter to overflow: %w", len(body), err)
	}
	small := m
	small.Inline = nil
	small.RecordsLocation = &loc
	for range 4 {
		body, err = encode(small)
		if err != nil {
			return nil, small, err
		}
		over := len(body) - max
		if over <= 0 {
			return body, small, nil
		}
		small.ErrorMessage = shorten(small.ErrorMessage, len(small.ErrorMessage)-over-128, loc)
	}
	return nil, small, errors.New("dead letter does not fit the destination even without its records and error message")
}

// shorten cuts s to at most n bytes (at a character boundary) and says where the rest is.
func shorten(s string, n int, loc Location) string {
	if n < 0 {
		n = 0
	}
	cut := min(n, len(s))
	for cut > 0 && cut < len(s) && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strings.TrimSpace(s[:cut]) + " … (truncated; full text in " + loc.String() + ")"
}
