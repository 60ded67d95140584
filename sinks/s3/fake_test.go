package s3

import (
	"bytes"
	"compress/gzip" // the standard library's reader: an independent check of what klauspost wrote
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/shardhose/shardhose/config"
	"github.com/shardhose/shardhose/internal/clock"
	"github.com/shardhose/shardhose/record"
	"github.com/shardhose/shardhose/sinks/backup"
)

// fakeS3 is an in-memory PutObjectAPI. It can fail the next N calls, fail while a switch is on,
// or hold every call until released.
type fakeS3 struct {
	mu       sync.Mutex
	objects  map[string]storedObject
	calls    int
	failNext int           // fail this many more calls
	failing  bool          // fail every call while true
	hold     chan struct{} // when not nil, calls wait until it is closed
	entered  chan string   // when not nil, receives the key of each call as it starts
	changed  chan struct{}

	// Multipart uploads (see multipart_fake_test.go).
	uploads       map[string]*fakeUpload // by upload id
	nextUpload    int
	failParts     int // fail this many more UploadPart calls
	partCalls     int
	aborted       []string // upload ids
	completed     []string // upload ids
	createdChecks []string // ChecksumAlgorithm of each CreateMultipartUpload

	failKey  func(key string) bool // when set, PUTs of keys it accepts fail
	keyFails int                   // PUTs failed by failKey
	refused  int                   // conditional writes refused (412)
	heads    int                   // HeadObject calls
}

func (f *fakeS3) HeadObject(_ context.Context, in *awss3.HeadObjectInput, _ ...func(*awss3.Options)) (*awss3.HeadObjectOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.heads++
	o, ok := f.objects[aws.ToString(in.Key)]
	if !ok {
		return nil, &smithy.GenericAPIError{Code: "NotFound", Message: "Not Found"}
	}
	return &awss3.HeadObjectOutput{Metadata: o.metadata, ContentLength: aws.Int64(int64(len(o.body)))}, nil
}

type storedObject struct {
	body            []byte
	contentType     string
	contentEncoding string
	metadata        map[string]string
	versions        int // times the key was written
}

var errInjected = errors.New("injected failure")

func newFakeS3() *fakeS3 {
	return &fakeS3{objects: map[string]storedObject{}, uploads: map[string]*fakeUpload{}, changed: make(chan struct{})}
}

func (f *fakeS3) PutObject(ctx context.Context, in *awss3.PutObjectInput, _ ...func(*awss3.Options)) (*awss3.PutObjectOutput, error) {
	f.mu.Lock()
	f.calls++
	hold, entered := f.hold, f.entered
	f.mu.Unlock()
	if entered != nil {
		entered <- aws.ToString(in.Key)
	}
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	body, err := io.ReadAll(in.Body)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failNext > 0 || f.failing {
		if f.failNext > 0 {
			f.failNext--
		}
		return nil, errInjected
	}
	if in.ContentLength == nil || *in.ContentLength != int64(len(body)) {
		return nil, errors.New("ContentLength does not match the body")
	}
	key := aws.ToString(in.Key)
	if f.failKey != nil && f.failKey(key) {
		f.keyFails++
		return nil, errInjected
	}
	prev, exists := f.objects[key]
	if exists && aws.ToString(in.IfNoneMatch) == "*" {
		f.refused++
		return nil, &smithy.GenericAPIError{Code: "PreconditionFailed", Message: "At least one of the pre-conditions you specified did not hold"}
	}
	f.objects[key] = storedObject{body: body, contentType: aws.ToString(in.ContentType), contentEncoding: aws.ToString(in.ContentEncoding), metadata: in.Metadata, versions: prev.versions + 1}
	close(f.changed)
	f.changed = make(chan struct{})
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

func (f *fakeS3) stored() map[string]storedObject {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]storedObject, len(f.objects))
	for k, v := range f.objects {
		out[k] = v
	}
	return out
}

// waitObjects waits until at least n objects are stored.
func (f *fakeS3) waitObjects(ctx context.Context, t testing.TB, n int) {
	t.Helper()
	for {
		f.mu.Lock()
		got, ch := len(f.objects), f.changed
		f.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %d objects, have %d: %v", n, got, ctx.Err())
		case <-ch:
		}
	}
}

// hookRecorder implements hooks.Delivered and hooks.DeliveryFailed.
type hookRecorder struct {
	mu        sync.Mutex
	delivered []deliveredEvent
	failed    int
}

type deliveredEvent struct {
	sink           string
	records, bytes int
	took           time.Duration
}

func (h *hookRecorder) OnDelivered(sink string, records, bytes int, took time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.delivered = append(h.delivered, deliveredEvent{sink, records, bytes, took})
}

func (h *hookRecorder) OnDeliveryFailed(string, int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.failed++
}

func (h *hookRecorder) counts() (delivered []deliveredEvent, failed int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]deliveredEvent(nil), h.delivered...), h.failed
}

var testStart = time.Date(2024, time.May, 6, 12, 0, 0, 0, time.UTC)

// testConfig is config.S3Defaults for bucket "bucket", with 1 MiB buffers, waits of 1 s to 10 s
// between retries, and the given interval.
func testConfig(intervalSeconds int) config.S3Sink {
	cfg := config.S3Defaults()
	cfg.Bucket = "bucket"
	cfg.BufferingHints = config.BufferingHints{SizeInMBs: 1, IntervalInSeconds: intervalSeconds}
	cfg.Retry = config.Retry{InitialBackoff: time.Second, MaxBackoff: 10 * time.Second}
	return cfg
}

// newTestSink starts a sink named "test-sink" on the fake S3 and clock; the test's cleanup stops
// it without waiting for deliveries.
func newTestSink(t testing.TB, cfg config.S3Sink, f *fakeS3, clk clock.Clock, hs ...any) *Sink {
	t.Helper()
	s, err := New(Options{
		Name:   "test-sink",
		Config: cfg,
		Client: f,
		Clock:  clk,
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
		Hooks:  hs,
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // give up on anything still pending: the test has checked what it wanted
		_ = s.Close(ctx)
	})
	return s
}

// waitCtx bounds a test's waits for goroutines; nothing in these tests waits on real time otherwise.
func waitCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// lines decodes an object body into its newline-delimited records.
func lines(t testing.TB, body []byte, gzipped bool) []string {
	t.Helper()
	data := decode(t, body, gzipped)
	if len(data) == 0 {
		return nil
	}
	if !bytes.HasSuffix(data, []byte("\n")) {
		t.Fatalf("object does not end with a newline: %q", tail(data))
	}
	return strings.Split(string(data[:len(data)-1]), "\n")
}

func decode(t testing.TB, body []byte, gzipped bool) []byte {
	t.Helper()
	if !gzipped {
		return body
	}
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("gunzip object: %v", err)
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("gunzip object: %v", err)
	}
	return data
}

func tail(b []byte) []byte {
	if len(b) > 40 {
		return b[len(b)-40:]
	}
	return b
}

// recordingWriter is a backup.Writer that keeps what it is given.
type recordingWriter struct {
	mu      sync.Mutex
	folders []string
	recs    []backup.ErrorRecord
}

func (w *recordingWriter) WriteErrors(_ context.Context, folder string, recs []backup.ErrorRecord) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.folders = append(w.folders, folder)
	w.recs = append(w.recs, recs...)
	return nil
}

func (w *recordingWriter) WriteRaw(context.Context, []record.Record) error {
	return errors.New("recordingWriter: WriteRaw is not used by the s3 sink")
}

func (w *recordingWriter) get() ([]string, []backup.ErrorRecord) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.folders...), append([]backup.ErrorRecord(nil), w.recs...)
}
