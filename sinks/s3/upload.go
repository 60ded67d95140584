package s3

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sync/errgroup"
)

// PutObjectAPI is the part of the S3 client the sink needs; *awss3.Client implements it.
type PutObjectAPI interface {
	PutObject(ctx context.Context, in *awss3.PutObjectInput, optFns ...func(*awss3.Options)) (*awss3.PutObjectOutput, error)
}

// MultipartAPI is the part of the S3 client used for multipart uploads; *awss3.Client
// implements it. A sink whose client implements it too writes objects of MultipartThreshold
// bytes or more in parts; otherwise every object is one PutObject (S3 takes up to 5 GiB so).
type MultipartAPI interface {
	CreateMultipartUpload(ctx context.Context, in *awss3.CreateMultipartUploadInput, optFns ...func(*awss3.Options)) (*awss3.CreateMultipartUploadOutput, error)
	UploadPart(ctx context.Context, in *awss3.UploadPartInput, optFns ...func(*awss3.Options)) (*awss3.UploadPartOutput, error)
	CompleteMultipartUpload(ctx context.Context, in *awss3.CompleteMultipartUploadInput, optFns ...func(*awss3.Options)) (*awss3.CompleteMultipartUploadOutput, error)
	AbortMultipartUpload(ctx context.Context, in *awss3.AbortMultipartUploadInput, optFns ...func(*awss3.Options)) (*awss3.AbortMultipartUploadOutput, error)
}

// Multipart upload sizes. Parts of 8 MiB, four in flight, keep a 128 MiB object to 16 parts and
// about 32 MiB on the wire at once; S3 wants parts of at least 5 MiB (but the last).
const (
	// MultipartThreshold is the object size from which a sink uploads in parts.
	MultipartThreshold = 16 << 20
	multipartPartSize  = 8 << 20
	multipartParallel  = 4
	// abortTimeout bounds the AbortMultipartUpload after a failed attempt, which runs even when
	// the sink is stopping (an upload left open costs storage until a lifecycle rule removes it).
	abortTimeout = 30 * time.Second
)

// put writes body under key: one PutObject, or a multipart upload for a large body. It makes one
// attempt; the caller retries. A failed multipart upload is aborted, so that the retry starts a
// new one from the first part.
func (s *Sink) put(ctx context.Context, key string, body []byte) error {
	if s.multipart != nil && len(body) >= s.partThreshold {
		return s.putMultipart(ctx, key, body)
	}
	if err := s.putOne(ctx, &awss3.PutObjectInput{Key: aws.String(key)}, body); err != nil {
		return fmt.Errorf("put object %s: %w", key, err)
	}
	return nil
}

// putOne sends one PutObject of body with in's key and conditions, in the sink's bucket.
func (s *Sink) putOne(ctx context.Context, in *awss3.PutObjectInput, body []byte) error {
	in.Bucket = aws.String(s.bucket)
	in.Body = bytes.NewReader(body)
	in.ContentLength = aws.Int64(int64(len(body)))
	in.ContentType = aws.String(contentType)
	_, err := s.client.PutObject(ctx, in)
	return err
}

func (s *Sink) putMultipart(ctx context.Context, key string, body []byte) error {
	created, err := s.multipart.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{
		Bucket:            aws.String(s.bucket),
		Key:               aws.String(key),
		ContentType:       aws.String(contentType),
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
	})
	if err != nil {
		return fmt.Errorf("create multipart upload of %s: %w", key, err)
	}
	uploadID := created.UploadId
	n := (len(body) + s.partSize - 1) / s.partSize
	parts := make([]types.CompletedPart, n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(multipartParallel)
	for i := range n {
		part := body[i*s.partSize : min((i+1)*s.partSize, len(body))]
		number := aws.Int32(int32(i + 1))
		g.Go(func() error {
			out, err := s.multipart.UploadPart(gctx, &awss3.UploadPartInput{
				Bucket:            aws.String(s.bucket),
				Key:               aws.String(key),
				UploadId:          uploadID,
				PartNumber:        number,
				Body:              bytes.NewReader(part),
				ContentLength:     aws.Int64(int64(len(part))),
				ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
			})
			if err != nil {
				return fmt.Errorf("upload part %d of %d of %s: %w", i+1, n, key, err)
			}
			parts[i] = types.CompletedPart{PartNumber: number, ETag: out.ETag, ChecksumCRC32: out.ChecksumCRC32}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		s.abortMultipart(ctx, key, uploadID)
		return err
	}
	_, err = s.multipart.CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{
		Bucket:          aws.String(s.bucket),
		Key:             aws.String(key),
		UploadId:        uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	if err != nil {
		s.abortMultipart(ctx, key, uploadID)
		return fmt.Errorf("complete multipart upload of %s (%d parts): %w", key, n, err)
	}
	return nil
}

// abortMultipart aborts a failed upload so that its parts stop costing storage. It runs even if
// ctx has ended (the sink stopping), bounded by abortTimeout. A failure is only logged: the
// retry starts a new upload either way.
func (s *Sink) abortMultipart(ctx context.Context, key string, uploadID *string) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
	defer cancel()
	_, err := s.multipart.AbortMultipartUpload(actx, &awss3.AbortMultipartUploadInput{
		Bucket:   aws.String(s.bucket),
		Key:      aws.String(key),
		UploadId: uploadID,
	})
	if err != nil {
		s.log.Warn("abort of a failed multipart upload failed; its parts stay until a lifecycle rule removes them", "key", key, "upload_id", aws.ToString(uploadID), "error", err)
	}
}
