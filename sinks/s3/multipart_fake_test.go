package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
)

// fakeUpload is a multipart upload in progress in fakeS3.
type fakeUpload struct {
	key         string
	contentType string
	parts       map[int32][]byte
}

var _ MultipartAPI = (*fakeS3)(nil)

func (f *fakeS3) CreateMultipartUpload(_ context.Context, in *awss3.CreateMultipartUploadInput, _ ...func(*awss3.Options)) (*awss3.CreateMultipartUploadOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextUpload++
	id := fmt.Sprintf("upload-%d", f.nextUpload)
	f.uploads[id] = &fakeUpload{key: aws.ToString(in.Key), contentType: aws.ToString(in.ContentType), parts: map[int32][]byte{}}
	f.createdChecks = append(f.createdChecks, string(in.ChecksumAlgorithm))
	return &awss3.CreateMultipartUploadOutput{UploadId: aws.String(id)}, nil
}

func (f *fakeS3) UploadPart(_ context.Context, in *awss3.UploadPartInput, _ ...func(*awss3.Options)) (*awss3.UploadPartOutput, error) {
	body, err := io.ReadAll(in.Body)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.partCalls++
	if f.failParts > 0 {
		f.failParts--
		return nil, errInjected
	}
	u, ok := f.uploads[aws.ToString(in.UploadId)]
	if !ok {
		return nil, errors.New("NoSuchUpload")
	}
	if in.ContentLength == nil || *in.ContentLength != int64(len(body)) {
		return nil, errors.New("ContentLength does not match the part")
	}
	n := aws.ToInt32(in.PartNumber)
	u.parts[n] = body
	return &awss3.UploadPartOutput{ETag: aws.String(fmt.Sprintf("etag-%d", n)), ChecksumCRC32: aws.String(fmt.Sprintf("crc-%d", n))}, nil
}

func (f *fakeS3) CompleteMultipartUpload(_ context.Context, in *awss3.CompleteMultipartUploadInput, _ ...func(*awss3.Options)) (*awss3.CompleteMultipartUploadOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := aws.ToString(in.UploadId)
	u, ok := f.uploads[id]
	if !ok {
		return nil, errors.New("NoSuchUpload")
	}
	var body bytes.Buffer
	var numbers []int32
	for i, p := range in.MultipartUpload.Parts {
		n := aws.ToInt32(p.PartNumber)
		if n != int32(i+1) || aws.ToString(p.ETag) != fmt.Sprintf("etag-%d", n) || aws.ToString(p.ChecksumCRC32) != fmt.Sprintf("crc-%d", n) {
			return nil, fmt.Errorf("InvalidPart: part %d of the request is %+v", i, p)
		}
		part, ok := u.parts[n]
		if !ok {
			return nil, fmt.Errorf("InvalidPart: part %d was not uploaded", n)
		}
		if i < len(in.MultipartUpload.Parts)-1 && len(part) < 5<<20 {
			return nil, fmt.Errorf("EntityTooSmall: part %d is %d bytes", n, len(part))
		}
		body.Write(part)
		numbers = append(numbers, n)
	}
	if len(numbers) != len(u.parts) || !slices.IsSorted(numbers) {
		return nil, fmt.Errorf("InvalidPart: %d parts uploaded, %d listed", len(u.parts), len(numbers))
	}
	delete(f.uploads, id)
	f.completed = append(f.completed, id)
	f.objects[u.key] = storedObject{body: body.Bytes(), contentType: u.contentType}
	close(f.changed)
	f.changed = make(chan struct{})
	return &awss3.CompleteMultipartUploadOutput{}, nil
}

func (f *fakeS3) AbortMultipartUpload(_ context.Context, in *awss3.AbortMultipartUploadInput, _ ...func(*awss3.Options)) (*awss3.AbortMultipartUploadOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := aws.ToString(in.UploadId)
	if _, ok := f.uploads[id]; !ok {
		return nil, errors.New("NoSuchUpload")
	}
	delete(f.uploads, id)
	f.aborted = append(f.aborted, id)
	return &awss3.AbortMultipartUploadOutput{}, nil
}
