package backup

import (
	"context"
	"errors"
	"io"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
)

// fakeS3 is an in-memory PutObjectAPI that can fail while a switch is on or for the next N calls.
type fakeS3 struct {
	mu       sync.Mutex
	objects  map[string]storedObject
	calls    int
	failNext int
	failing  bool
	changed  chan struct{} // closed and replaced on every call
}

type storedObject struct {
	bucket      string
	body        []byte
	contentType string
}

var errInjected = errors.New("injected S3 failure")

func newFakeS3() *fakeS3 {
	return &fakeS3{objects: map[string]storedObject{}, changed: make(chan struct{})}
}

func (f *fakeS3) PutObject(ctx context.Context, in *awss3.PutObjectInput, _ ...func(*awss3.Options)) (*awss3.PutObjectOutput, error) {
	body, err := io.ReadAll(in.Body)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	close(f.changed)
	f.changed = make(chan struct{})
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if f.failNext > 0 || f.failing {
		if f.failNext > 0 {
			f.failNext--
		}
		return nil, errInjected
	}
	if in.ContentLength == nil || *in.ContentLength != int64(len(body)) {
		return nil, errors.New("ContentLength does not match the body")
	}
	f.objects[aws.ToString(in.Key)] = storedObject{bucket: aws.ToString(in.Bucket), body: body, contentType: aws.ToString(in.ContentType)}
	return &awss3.PutObjectOutput{}, nil
}

func (f *fakeS3) setFailing(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failing = on
}

func (f *fakeS3) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// waitCalls blocks until at least n PutObject calls were made.
func (f *fakeS3) waitCalls(ctx context.Context, t *testing.T, n int) {
	t.Helper()
	for {
		f.mu.Lock()
		calls, ch := f.calls, f.changed
		f.mu.Unlock()
		if calls >= n {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("waiting for %d PutObject calls (have %d): %v", n, calls, ctx.Err())
		}
	}
}

func (f *fakeS3) keys() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Sorted(maps.Keys(f.objects))
}

func (f *fakeS3) object(key string) storedObject {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.objects[key]
}

// waitCtx is the test's context with a deadline that turns a hang into a failure.
func waitCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}
