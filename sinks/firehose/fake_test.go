package firehose

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsfirehose "github.com/aws/aws-sdk-go-v2/service/firehose"
	"github.com/aws/aws-sdk-go-v2/service/firehose/types"
	"github.com/aws/smithy-go"

	"github.com/shardhose/shardhose/internal/clock"
	"github.com/shardhose/shardhose/record"
	"github.com/shardhose/shardhose/sinks/backup"
	"github.com/shardhose/shardhose/sinks/sinktest"
)

// answer is what the fake returns for one PutRecordBatch call: an error for the whole call, or
// the error code of each refused record by its index in the call.
type answer struct {
	err     error
	refused map[int]string
}

// fakeFirehose is an in-memory PutRecordBatchAPI. Every call is recorded and checked against
// PutRecordBatch's limits. By default a call is accepted whole; respond, when set, decides.
type fakeFirehose struct {
	t       *testing.T
	mu      sync.Mutex
	calls   [][][]byte // the data of each call's records
	respond func(call int, data [][]byte) answer
	hold    chan struct{} // when not nil, calls wait until it is closed
	entered chan int      // when not nil, receives each call's number as it starts
	changed chan struct{} // closed and replaced on every call
	desc    func() (*awsfirehose.DescribeDeliveryStreamOutput, error)
}

func newFake(t *testing.T) *fakeFirehose {
	return &fakeFirehose{t: t, changed: make(chan struct{})}
}

func (f *fakeFirehose) PutRecordBatch(ctx context.Context, in *awsfirehose.PutRecordBatchInput, _ ...func(*awsfirehose.Options)) (*awsfirehose.PutRecordBatchOutput, error) {
	if aws.ToString(in.DeliveryStreamName) == "" {
		f.t.Errorf("PutRecordBatch without a delivery stream name")
	}
	data := make([][]byte, len(in.Records))
	size := 0
	for i, r := range in.Records {
		data[i] = bytes.Clone(r.Data)
		size += len(r.Data)
		if len(r.Data) > MaxRecordSize {
			f.t.Errorf("record of %d bytes sent; the limit is %d", len(r.Data), MaxRecordSize)
		}
	}
	if n := len(in.Records); n == 0 || n > MaxRecordsPerCall {
		f.t.Errorf("PutRecordBatch with %d records; allowed 1 to %d", n, MaxRecordsPerCall)
	}
	if size > MaxBytesPerCall {
		f.t.Errorf("PutRecordBatch with %d bytes; the limit is %d", size, MaxBytesPerCall)
	}

	f.mu.Lock()
	call := len(f.calls)
	f.calls = append(f.calls, data)
	respond, hold, entered := f.respond, f.hold, f.entered
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()

	if entered != nil {
		entered <- call
	}
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	var a answer
	if respond != nil {
		a = respond(call, data)
	}
	if a.err != nil {
		return nil, a.err
	}
	out := &awsfirehose.PutRecordBatchOutput{
		FailedPutCount:   aws.Int32(int32(len(a.refused))),
		RequestResponses: make([]types.PutRecordBatchResponseEntry, len(data)),
	}
	for i := range data {
		if code, bad := a.refused[i]; bad {
			out.RequestResponses[i] = types.PutRecordBatchResponseEntry{ErrorCode: aws.String(code), ErrorMessage: aws.String("injected " + code)}
			continue
		}
		out.RequestResponses[i] = types.PutRecordBatchResponseEntry{RecordId: aws.String(fmt.Sprintf("id-%d-%d", call, i))}
	}
	return out, nil
}

func (f *fakeFirehose) DescribeDeliveryStream(ctx context.Context, in *awsfirehose.DescribeDeliveryStreamInput, _ ...func(*awsfirehose.Options)) (*awsfirehose.DescribeDeliveryStreamOutput, error) {
	return f.desc()
}

func (f *fakeFirehose) setRespond(fn func(call int, data [][]byte) answer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.respond = fn
}

// recorded returns the data of every call so far.
func (f *fakeFirehose) recorded() [][][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func (f *fakeFirehose) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

// reached returns a channel closed once at least n calls were made.
func (f *fakeFirehose) reached(ctx context.Context, n int) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		for {
			f.mu.Lock()
			got, changed := len(f.calls), f.changed
			f.mu.Unlock()
			if got >= n {
				return
			}
			select {
			case <-changed:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch
}

// apiError is how the SDK returns a service error: wrapped in an OperationError.
func apiError(code, msg string) error {
	return &smithy.OperationError{ServiceID: "Firehose", OperationName: "PutRecordBatch", Err: &smithy.GenericAPIError{Code: code, Message: msg}}
}

// fakeBackup is an in-memory backup.Writer.
type fakeBackup struct {
	mu      sync.Mutex
	writes  []backupWrite
	changed chan struct{}
}

type backupWrite struct {
	folder string
	recs   []backup.ErrorRecord
}

var _ backup.Writer = (*fakeBackup)(nil)

func newFakeBackup() *fakeBackup { return &fakeBackup{changed: make(chan struct{})} }

// WriteErrors stores recs; it ignores ctx, so a round that ends while it runs cannot undo it.
func (f *fakeBackup) WriteErrors(_ context.Context, folder string, recs []backup.ErrorRecord) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writes = append(f.writes, backupWrite{folder: folder, recs: slices.Clone(recs)})
	close(f.changed)
	f.changed = make(chan struct{})
	return nil
}

func (f *fakeBackup) WriteRaw(context.Context, []record.Record) error {
	panic("the firehose sink does not write raw copies")
}

func (f *fakeBackup) stored() []backupWrite {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.writes)
}

func testLogger(buf *sinktest.LogBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// waitCtx is the test's context with a deadline that turns a hang into a failure.
func waitCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// drive moves the fake clock past every wait the sink starts (buffering interval, retry backoff,
// backup rounds) until until is closed. Each step waits for a timer to exist, then advances three
// minutes, more than the longest backoff (2 minutes plus 15% jitter).
func drive(t *testing.T, fc *clock.Fake, until <-chan struct{}) {
	t.Helper()
	ctx := waitCtx(t)
	for {
		select {
		case <-until:
			return
		default:
		}
		wctx, stop := context.WithCancel(ctx)
		go func() {
			select {
			case <-until:
				stop()
			case <-wctx.Done():
			}
		}()
		err := fc.WaitForTimers(wctx, 1)
		stop()
		if ctx.Err() != nil {
			t.Fatalf("driving the clock: %v", ctx.Err())
		}
		if err == nil {
			fc.Advance(3 * time.Minute)
		}
	}
}

// closed returns a channel closed when fn returns.
func closed(fn func()) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		fn()
	}()
	return ch
}
