package s3

import (
	"bytes"
	"context"
	"testing"
	"time"

	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/shardhose/shardhose/internal/clock"
	"github.com/shardhose/shardhose/record"
	"github.com/shardhose/shardhose/sinks/sinktest"
)

// An object of MultipartThreshold bytes or more goes up in 8 MiB parts with CRC32 checksums; a
// failed part aborts the upload, and the retry uploads the whole object again.
func TestMultipartUpload(t *testing.T) {
	ctx := waitCtx(t)
	f := newFakeS3()
	f.failParts = 1
	clk := clock.NewFake(testStart)
	hooks := &hookRecorder{}
	acks := sinktest.NewAckRecorder(t)
	cfg := testConfig(0)
	cfg.Compression = CompressionUncompressed
	s := newTestSink(t, cfg, f, clk, hooks)

	// 17 MiB: an object of its own, in 3 parts.
	big := record.Record{ShardID: "shard-0", Data: bytes.Repeat([]byte("0123456789abcdef"), (MultipartThreshold+1<<20)/16), ApproximateArrivalTimestamp: sinktest.Start}
	if err := s.Write(ctx, []record.Record{big}, acks.Done(1)); err != nil {
		t.Fatal(err)
	}
	if err := clk.WaitForTimers(ctx, 1); err != nil { // the first attempt failed; waiting to retry
		t.Fatal(err)
	}
	f.mu.Lock()
	aborted, calls := len(f.aborted), f.calls
	f.mu.Unlock()
	if aborted != 1 || calls != 0 || acks.Acked(1) {
		t.Fatalf("after a failed part: %d uploads aborted, %d PutObject calls, acknowledged %v; want 1, 0, false", aborted, calls, acks.Acked(1))
	}
	clk.Advance(2 * time.Second)
	if err := acks.Wait(ctx, 1); err != nil {
		t.Fatal(err)
	}
	objs := f.stored()
	if len(objs) != 1 {
		t.Fatalf("%d objects, want 1", len(objs))
	}
	want := append(bytes.Clone(big.Data), '\n')
	for key, o := range objs {
		if !bytes.Equal(o.body, want) {
			t.Fatalf("%s holds %d bytes that differ from the %d written", key, len(o.body), len(want))
		}
		if o.contentType != contentType {
			t.Errorf("ContentType %q", o.contentType)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.completed) != 1 || len(f.uploads) != 0 || f.partCalls < 4 {
		t.Fatalf("%d uploads completed, %d left open, %d parts sent; want 1, 0 and the 3 parts again", len(f.completed), len(f.uploads), f.partCalls)
	}
	for _, c := range f.createdChecks {
		if c != "CRC32" {
			t.Errorf("multipart upload created with checksum %q, want CRC32", c)
		}
	}
	if delivered, failed := hooks.counts(); failed != 1 || len(delivered) != 1 || delivered[0].bytes != len(want) {
		t.Errorf("hooks saw %d failures and deliveries %+v", failed, delivered)
	}
}

// putOnly hides the multipart methods of a client.
type putOnly struct{ f *fakeS3 }

func (p putOnly) PutObject(ctx context.Context, in *awss3.PutObjectInput, o ...func(*awss3.Options)) (*awss3.PutObjectOutput, error) {
	return p.f.PutObject(ctx, in, o...)
}

// A client without the multipart methods gets every object in one PutObject.
func TestLargeObjectWithoutMultipart(t *testing.T) {
	ctx := waitCtx(t)
	f := newFakeS3()
	cfg := testConfig(0)
	cfg.Compression = CompressionUncompressed
	s, err := New(Options{Name: "test-sink", Config: cfg, Client: putOnly{f}, Clock: clock.NewFake(testStart)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(ctx) })
	big := record.Record{Data: bytes.Repeat([]byte("x"), MultipartThreshold), ApproximateArrivalTimestamp: sinktest.Start}
	if err := s.Write(ctx, []record.Record{big}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if f.callCount() != 1 || len(f.stored()) != 1 || f.nextUpload != 0 {
		t.Fatalf("%d PutObject calls, %d objects, %d multipart uploads; want 1, 1, 0", f.callCount(), len(f.stored()), f.nextUpload)
	}
}
