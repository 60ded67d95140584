package produce

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"

	"github.com/shardhose/shardhose/internal/clock"
	"github.com/shardhose/shardhose/internal/retry"
)

var t0 = time.Date(2025, 1, 15, 10, 30, 0, 0, time.UTC)

// testPolicy has no jitter, so waits on the fake clock are exact: 1 s, 2 s, 4 s, ...
var testPolicy = retry.Policy{Initial: time.Second, Max: 10 * time.Second, Multiplier: 2}

// fakeCall is what one PutRecords call carried.
type fakeCall struct {
	at     time.Time
	stream string
	arn    string
	data   [][]byte
	keys   []string
}

func (c fakeCall) bytes() int {
	n := 0
	for i := range c.data {
		n += len(c.data[i]) + len(c.keys[i])
	}
	return n
}

// fakeKinesis records every PutRecords call; respond decides the outcome of call n (from 0), and
// a nil respond accepts everything.
type fakeKinesis struct {
	clk     clock.Clock
	respond func(n int, c fakeCall) (*kinesis.PutRecordsOutput, error)

	mu    sync.Mutex
	calls []fakeCall
}

func (f *fakeKinesis) PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	c := fakeCall{at: f.clk.Now(), stream: aws.ToString(in.StreamName), arn: aws.ToString(in.StreamARN)}
	for _, e := range in.Records {
		c.data = append(c.data, e.Data)
		c.keys = append(c.keys, aws.ToString(e.PartitionKey))
	}
	f.mu.Lock()
	n := len(f.calls)
	f.calls = append(f.calls, c)
	f.mu.Unlock()
	if f.respond != nil {
		return f.respond(n, c)
	}
	return results(make([]string, len(c.data))...), nil
}

func (f *fakeKinesis) recorded() []fakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// results builds a PutRecords answer with one entry per code; "" is an accepted record.
func results(codes ...string) *kinesis.PutRecordsOutput {
	out := &kinesis.PutRecordsOutput{}
	failed := int32(0)
	for i, c := range codes {
		if c == "" {
			out.Records = append(out.Records, types.PutRecordsResultEntry{
				SequenceNumber: aws.String(fmt.Sprint(i)), ShardId: aws.String("shardId-000000000000")})
			continue
		}
		failed++
		out.Records = append(out.Records, types.PutRecordsResultEntry{ErrorCode: aws.String(c), ErrorMessage: aws.String(c + " for this record")})
	}
	out.FailedRecordCount = aws.Int32(failed)
	return out
}

// apiError wraps an API error the way the SDK returns it.
func apiError(err error) error {
	return &smithy.OperationError{ServiceID: "Kinesis", OperationName: "PutRecords", Err: err}
}

// sliceSource yields its entries, then io.EOF.
type sliceSource struct {
	entries []Entry
	next    int
}

func (s *sliceSource) Next() (Entry, error) {
	if s.next >= len(s.entries) {
		return Entry{}, io.EOF
	}
	e := s.entries[s.next]
	s.next++
	return e, nil
}

// numbered returns n entries with distinct payloads of size bytes and key "k<i>".
func numbered(n, size int) []Entry {
	out := make([]Entry, n)
	for i := range out {
		d := []byte(fmt.Sprintf("record-%06d", i))
		if size > len(d) {
			d = append(d, bytes.Repeat([]byte{'x'}, size-len(d))...)
		}
		out[i] = Entry{Data: d, PartitionKey: fmt.Sprintf("k%d", i)}
	}
	return out
}

// runOnFakeClock runs Run with opts on fc, advancing fc by step whenever Run waits, until Run returns.
func runOnFakeClock(ctx context.Context, t *testing.T, fc *clock.Fake, step time.Duration, opts Options) (Stats, error) {
	t.Helper()
	opts.Clock = fc
	type result struct {
		stats Stats
		err   error
	}
	done := make(chan result, 1)
	waiting, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		s, err := Run(ctx, opts)
		stop()
		done <- result{s, err}
	}()
	for i := 0; fc.WaitForTimers(waiting, 1) == nil; i++ {
		if i > 1_000_000 {
			t.Fatal("Run kept waiting after a million clock steps")
		}
		fc.Advance(step)
	}
	r := <-done
	return r.stats, r.err
}

func TestRunResendsOnlyRejectedEntries(t *testing.T) {
	fc := clock.NewFake(t0)
	entries := numbered(10, 20)
	for i := range entries {
		entries[i].PartitionKey = "" // Run picks random keys: they must survive the resends
	}
	fk := &fakeKinesis{clk: fc, respond: func(n int, c fakeCall) (*kinesis.PutRecordsOutput, error) {
		switch n {
		case 0: // records 1, 4 and 7 rejected
			codes := make([]string, len(c.data))
			codes[1], codes[4], codes[7] = "ProvisionedThroughputExceededException", "InternalFailure", "ProvisionedThroughputExceededException"
			return results(codes...), nil
		case 1: // of the three resent, record 4 rejected again
			return results("", "InternalFailure", ""), nil
		}
		return results(make([]string, len(c.data))...), nil
	}}
	var onSent []int
	stats, err := runOnFakeClock(t.Context(), t, fc, 100*time.Millisecond, Options{
		Stream: "orders", Client: fk, Source: &sliceSource{entries: entries}, Retry: testPolicy,
		OnSent: func(n int) { onSent = append(onSent, n) },
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	calls := fk.recorded()
	if len(calls) != 3 {
		t.Fatalf("got %d calls, want 3", len(calls))
	}
	wantData := func(call int, idx ...int) {
		t.Helper()
		var want [][]byte
		for _, i := range idx {
			want = append(want, entries[i].Data)
		}
		if !slices.EqualFunc(calls[call].data, want, bytes.Equal) {
			t.Errorf("call %d sent %q, want %q", call, calls[call].data, want)
		}
	}
	wantData(0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9)
	wantData(1, 1, 4, 7)
	wantData(2, 4)
	if k := calls[0].keys; calls[1].keys[0] != k[1] || calls[1].keys[1] != k[4] || calls[1].keys[2] != k[7] || calls[2].keys[0] != k[4] {
		t.Errorf("partition keys changed between resends: %q, %q, %q", calls[0].keys, calls[1].keys, calls[2].keys)
	}
	if want := (Stats{Sent: 10, Failed: 4, Throttled: 2, Calls: 3, Bytes: stats.Bytes, Elapsed: 3 * time.Second}); stats != want {
		t.Errorf("stats = %+v, want %+v", stats, want)
	}
	if wantBytes := int64(calls[0].bytes()); stats.Bytes != wantBytes {
		t.Errorf("stats.Bytes = %d, want %d", stats.Bytes, wantBytes)
	}
	if !slices.Equal(onSent, []int{7, 2, 1}) {
		t.Errorf("OnSent got %v, want [7 2 1]", onSent)
	}
	// The backoff ran on the fake clock: 1 s after the first partial failure, 2 s after the second.
	for i, want := range []time.Duration{0, time.Second, 3 * time.Second} {
		if got := calls[i].at.Sub(t0); got != want {
			t.Errorf("call %d at +%v, want +%v", i, got, want)
		}
	}
}

func TestRunChunksAt500Records(t *testing.T) {
	fc := clock.NewFake(t0)
	fk := &fakeKinesis{clk: fc}
	entries := numbered(1234, 10)
	stats, err := Run(t.Context(), Options{Stream: "s", Client: fk, Source: &sliceSource{entries: entries}, Clock: fc})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	var sizes []int
	var all [][]byte
	for _, c := range fk.recorded() {
		sizes = append(sizes, len(c.data))
		all = append(all, c.data...)
	}
	if !slices.Equal(sizes, []int{500, 500, 234}) {
		t.Errorf("call sizes %v, want [500 500 234]", sizes)
	}
	for i := range entries {
		if !bytes.Equal(all[i], entries[i].Data) {
			t.Fatalf("record %d out of order: got %q", i, all[i])
		}
	}
	if stats.Sent != 1234 || stats.Calls != 3 || stats.Failed != 0 {
		t.Errorf("stats = %+v", stats)
	}
}

func TestRunChunksAt5MiB(t *testing.T) {
	t.Run("equal records", func(t *testing.T) {
		fc := clock.NewFake(t0)
		fk := &fakeKinesis{clk: fc}
		// 1,000,000 bytes of data plus a 1-byte key: five fit in 5 MiB (5,242,880), six do not.
		entries := numbered(12, 1_000_000)
		for i := range entries {
			entries[i].PartitionKey = "k"
		}
		if _, err := Run(t.Context(), Options{Stream: "s", Client: fk, Source: &sliceSource{entries: entries}, Clock: fc}); err != nil {
			t.Fatalf("Run: %v", err)
		}
		var sizes []int
		for _, c := range fk.recorded() {
			sizes = append(sizes, len(c.data))
		}
		if !slices.Equal(sizes, []int{5, 5, 2}) {
			t.Errorf("call sizes %v, want [5 5 2]", sizes)
		}
	})
	t.Run("mixed sizes", func(t *testing.T) {
		fc := clock.NewFake(t0)
		fk := &fakeKinesis{clk: fc}
		r := rand.New(rand.NewPCG(1, 2))
		var entries []Entry
		for i := range 3000 {
			size := 1 + r.IntN(200) // mostly small records, so the 500-record limit binds too
			if r.IntN(50) == 0 {
				size = MaxRecordBytes - 10
			}
			entries = append(entries, Entry{Data: bytes.Repeat([]byte{'a' + byte(i%26)}, size), PartitionKey: fmt.Sprintf("%010d", i)})
		}
		stats, err := Run(t.Context(), Options{Stream: "s", Client: fk, Source: &sliceSource{entries: entries}, Clock: fc})
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		calls := fk.recorded()
		next := 0
		for i, c := range calls {
			if len(c.data) > MaxRecordsPerCall || c.bytes() > MaxBytesPerCall {
				t.Errorf("call %d: %d records, %d bytes: over the PutRecords limits", i, len(c.data), c.bytes())
			}
			next += len(c.data)
			// Batches are full: the next record would not have fitted.
			if i < len(calls)-1 && len(c.data) < MaxRecordsPerCall {
				if nextSize := len(entries[next].Data) + len(entries[next].PartitionKey); c.bytes()+nextSize <= MaxBytesPerCall {
					t.Errorf("call %d: %d records, %d bytes, ended although record %d (%d bytes) fitted", i, len(c.data), c.bytes(), next, nextSize)
				}
			}
		}
		if stats.Sent != len(entries) || next != len(entries) {
			t.Errorf("sent %d (%d in calls), want %d", stats.Sent, next, len(entries))
		}
		t.Logf("%d records in %d calls", len(entries), len(calls))
	})
}

func TestRunRefusesOversizedRecord(t *testing.T) {
	fc := clock.NewFake(t0)
	fk := &fakeKinesis{clk: fc}
	entries := numbered(6, 100)
	entries[3] = Entry{Data: make([]byte, MaxRecordBytes), PartitionKey: "k"} // one byte over with its key
	stats, err := Run(t.Context(), Options{Stream: "orders", Client: fk, Source: &sliceSource{entries: entries}, Clock: fc})
	var re *RecordError
	if !errors.As(err, &re) || re.Index != 3 || !errors.Is(err, ErrRecordTooLarge) {
		t.Fatalf("err = %v, want a RecordError for record 3 wrapping ErrRecordTooLarge", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "record 3") || !strings.Contains(msg, "orders") {
		t.Errorf("error %q does not name the record and the stream", msg)
	}
	// The records before it were sent; none after.
	if stats.Sent != 3 {
		t.Errorf("sent %d, want the 3 records before the oversized one", stats.Sent)
	}
}

func TestRunRefusesLongPartitionKey(t *testing.T) {
	fc := clock.NewFake(t0)
	entries := []Entry{{Data: []byte("{}"), PartitionKey: strings.Repeat("é", MaxPartitionKeyLen)}, {Data: []byte("{}"), PartitionKey: strings.Repeat("k", MaxPartitionKeyLen+1)}}
	_, err := Run(t.Context(), Options{Stream: "s", Client: &fakeKinesis{clk: fc}, Source: &sliceSource{entries: entries}, Clock: fc})
	var re *RecordError
	if !errors.As(err, &re) || re.Index != 1 || !errors.Is(err, ErrPartitionKey) {
		t.Fatalf("err = %v, want a RecordError for record 1 wrapping ErrPartitionKey", err)
	}
}

func TestRunRateLimitOnFakeClock(t *testing.T) {
	fc := clock.NewFake(t0)
	fk := &fakeKinesis{clk: fc}
	src := NewGeneratedSource(1)
	src.Clock = fc
	stats, err := runOnFakeClock(t.Context(), t, fc, 10*time.Millisecond, Options{
		Stream: "s", Client: fk, Source: src, Count: 300, Rate: 100,
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if stats.Sent != 300 {
		t.Fatalf("sent %d, want 300", stats.Sent)
	}
	// 300 records at 100/s: the first goes at once, the 300th 2.99 s later, rounded up to the
	// 100 ms batching tick.
	if stats.Elapsed < 2900*time.Millisecond || stats.Elapsed > 3100*time.Millisecond {
		t.Errorf("elapsed on the fake clock %v, want about 3 s", stats.Elapsed)
	}
	if moved := fc.Now().Sub(t0); moved < 2900*time.Millisecond || moved > 3200*time.Millisecond {
		t.Errorf("fake clock moved %v, want about 3 s", moved)
	}
	calls := fk.recorded()
	sent := 0
	for i, c := range calls {
		sent += len(c.data)
		if limit := 1 + 100*c.at.Sub(t0).Seconds(); float64(sent) > limit+1e-6 {
			t.Errorf("call %d at +%v brought the total to %d, over the rate (at most %.0f)", i, c.at.Sub(t0), sent, limit)
		}
	}
	// Records go in batches, not one call each.
	if len(calls) > 31 {
		t.Errorf("%d calls for 300 records at 100/s; want 31: one, then batches of 10 every 100 ms", len(calls))
	}
	t.Logf("elapsed %v, %d calls", stats.Elapsed, len(calls))
}

func TestRunRateWithSlowCalls(t *testing.T) {
	fc := clock.NewFake(t0)
	// Each call takes 5 ms of (fake) time: the tokens that accrue meanwhile must not turn into
	// one call per record.
	fk := &fakeKinesis{clk: fc, respond: func(_ int, c fakeCall) (*kinesis.PutRecordsOutput, error) {
		fc.Advance(5 * time.Millisecond)
		return results(make([]string, len(c.data))...), nil
	}}
	stats, err := runOnFakeClock(t.Context(), t, fc, 10*time.Millisecond, Options{
		Stream: "s", Client: fk, Source: &sliceSource{entries: numbered(400, 10)}, Rate: 200,
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if stats.Sent != 400 || stats.Calls > 25 {
		t.Errorf("stats = %+v, want 400 records in about 20 calls", stats)
	}
	if stats.Elapsed < 1990*time.Millisecond || stats.Elapsed > 2200*time.Millisecond {
		t.Errorf("elapsed %v, want about 2 s", stats.Elapsed)
	}
	t.Logf("stats %+v", stats)
}

func TestRunRateBelowOnePerTick(t *testing.T) {
	fc := clock.NewFake(t0)
	fk := &fakeKinesis{clk: fc}
	stats, err := runOnFakeClock(t.Context(), t, fc, 50*time.Millisecond, Options{
		Stream: "s", Client: fk, Source: &sliceSource{entries: numbered(5, 10)}, Rate: 2,
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	// At 2/s, records go at 0, 0.5, 1, 1.5 and 2 s, one per call.
	for i, c := range fk.recorded() {
		if want := time.Duration(i) * 500 * time.Millisecond; c.at.Sub(t0) != want || len(c.data) != 1 {
			t.Errorf("call %d: %d records at +%v, want 1 at +%v", i, len(c.data), c.at.Sub(t0), want)
		}
	}
	if stats.Elapsed != 2*time.Second {
		t.Errorf("elapsed %v, want 2s", stats.Elapsed)
	}
}

func TestRunPermanentErrorNamesStream(t *testing.T) {
	fc := clock.NewFake(t0)
	fk := &fakeKinesis{clk: fc, respond: func(int, fakeCall) (*kinesis.PutRecordsOutput, error) {
		return nil, apiError(&types.ResourceNotFoundException{Message: aws.String("Stream orders under account 000000000000 not found.")})
	}}
	stats, err := runOnFakeClock(t.Context(), t, fc, 100*time.Millisecond, Options{
		Stream: "orders", Client: fk, Source: &sliceSource{entries: numbered(3, 10)}, Retry: testPolicy,
	})
	var nf *types.ResourceNotFoundException
	if !errors.As(err, &nf) {
		t.Fatalf("err = %v, want it to wrap ResourceNotFoundException", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "stream orders") || !strings.Contains(msg, "does not exist") {
		t.Errorf("error %q should say that stream orders does not exist", msg)
	}
	if stats.Calls != 1 || stats.Sent != 0 {
		t.Errorf("stats = %+v, want one call and no retry", stats)
	}
}

func TestRunPermanentErrors(t *testing.T) {
	for name, e := range map[string]error{
		"validation":    apiError(&smithy.GenericAPIError{Code: "ValidationException", Message: "1 validation error detected"}),
		"invalid arg":   apiError(&types.InvalidArgumentException{Message: aws.String("bad")}),
		"access denied": apiError(&types.AccessDeniedException{Message: aws.String("no")}),
		"invalid params": apiError(func() error {
			var p smithy.InvalidParamsError
			p.Add(smithy.NewErrParamRequired("Records"))
			return p
		}()),
	} {
		t.Run(name, func(t *testing.T) {
			fc := clock.NewFake(t0)
			fk := &fakeKinesis{clk: fc, respond: func(int, fakeCall) (*kinesis.PutRecordsOutput, error) { return nil, e }}
			stats, err := runOnFakeClock(t.Context(), t, fc, 100*time.Millisecond, Options{
				StreamARN: "arn:aws:kinesis:us-east-1:000000000000:stream/orders", Client: fk, Source: &sliceSource{entries: numbered(3, 10)}, Retry: testPolicy,
			})
			if err == nil || stats.Calls != 1 {
				t.Fatalf("err = %v after %d calls, want an error after one call", err, stats.Calls)
			}
			if !strings.Contains(err.Error(), "stream/orders") {
				t.Errorf("error %q does not name the stream", err)
			}
		})
	}
}

func TestRunRetriesFailedCall(t *testing.T) {
	fc := clock.NewFake(t0)
	fk := &fakeKinesis{clk: fc, respond: func(n int, c fakeCall) (*kinesis.PutRecordsOutput, error) {
		switch n {
		case 0:
			return nil, apiError(&types.ProvisionedThroughputExceededException{Message: aws.String("Rate exceeded for stream")})
		case 1:
			return nil, apiError(errors.New("read tcp 127.0.0.1:1->127.0.0.1:2: connection reset by peer"))
		}
		return results(make([]string, len(c.data))...), nil
	}}
	entries := numbered(4, 10)
	stats, err := runOnFakeClock(t.Context(), t, fc, 100*time.Millisecond, Options{
		Stream: "s", Client: fk, Source: &sliceSource{entries: entries}, Retry: testPolicy,
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if stats.Sent != 4 || stats.Calls != 3 || stats.Failed != 0 || stats.Elapsed != 3*time.Second ||
		stats.CallErrors != 2 || stats.Throttled != 4 {
		t.Errorf("stats = %+v, want 4 sent in 3 calls after 1 s + 2 s of backoff, 2 failed calls, 4 entries throttled", stats)
	}
	for i, c := range fk.recorded() {
		if len(c.data) != 4 {
			t.Errorf("call %d resent %d records, want all 4", i, len(c.data))
		}
	}
}

func TestRunGivesUpAfterMaxElapsed(t *testing.T) {
	fc := clock.NewFake(t0)
	fk := &fakeKinesis{clk: fc, respond: func(_ int, c fakeCall) (*kinesis.PutRecordsOutput, error) {
		codes := make([]string, len(c.data))
		codes[0] = "ProvisionedThroughputExceededException" // the first record never gets in
		return results(codes...), nil
	}}
	p := testPolicy
	p.MaxElapsed = 10 * time.Second
	stats, err := runOnFakeClock(t.Context(), t, fc, 100*time.Millisecond, Options{
		Stream: "s", Client: fk, Source: &sliceSource{entries: numbered(2, 10)}, Retry: p,
	})
	if err == nil || !strings.Contains(err.Error(), "gave up") || !strings.Contains(err.Error(), "ProvisionedThroughputExceededException") {
		t.Fatalf("err = %v, want a give-up error naming the rejection", err)
	}
	// Waits of 1, 2, 4 s, then the 3 s left of the 10 s budget.
	if stats.Elapsed != 10*time.Second || stats.Calls != 5 {
		t.Errorf("stats = %+v, want 5 calls over 10 s", stats)
	}
}

func TestRunStopsOnUnretryableEntryCode(t *testing.T) {
	fc := clock.NewFake(t0)
	fk := &fakeKinesis{clk: fc, respond: func(n int, c fakeCall) (*kinesis.PutRecordsOutput, error) {
		return results("", "ProvisionedThroughputExceededException", "KMSAccessDeniedException", ""), nil
	}}
	stats, err := runOnFakeClock(t.Context(), t, fc, 100*time.Millisecond, Options{
		Stream: "s", Client: fk, Source: &sliceSource{entries: numbered(4, 10)}, Retry: testPolicy,
	})
	var re *RecordError
	if !errors.As(err, &re) || re.Index != 2 || re.Code != "KMSAccessDeniedException" {
		t.Fatalf("err = %v, want a RecordError for record 2 with its code", err)
	}
	if stats.Calls != 1 || stats.Sent != 2 {
		t.Errorf("stats = %+v, want one call with 2 accepted", stats)
	}
}

func TestRunStopsWhenContextEnds(t *testing.T) {
	fc := clock.NewFake(t0)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	fk := &fakeKinesis{clk: fc, respond: func(n int, c fakeCall) (*kinesis.PutRecordsOutput, error) {
		if n == 2 {
			cancel()
		}
		return results(make([]string, len(c.data))...), nil
	}}
	src := NewGeneratedSource(3)
	src.Clock = fc
	stats, err := runOnFakeClock(ctx, t, fc, 100*time.Millisecond, Options{Stream: "s", Client: fk, Source: src})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if stats.Sent != 3*MaxRecordsPerCall || stats.Calls != 3 {
		t.Errorf("stats = %+v, want three full calls", stats)
	}
}

func TestRunStopsWhenContextEndsWhileRateLimited(t *testing.T) {
	fc := clock.NewFake(t0)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	fk := &fakeKinesis{clk: fc}
	done := make(chan error, 1)
	go func() {
		_, err := Run(ctx, Options{Stream: "s", Client: fk, Source: NewGeneratedSource(1), Rate: 1, Clock: fc})
		done <- err
	}()
	if err := fc.WaitForTimers(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestRunStopsAtCountAndAtEOF(t *testing.T) {
	fc := clock.NewFake(t0)
	stats, err := Run(t.Context(), Options{Stream: "s", Client: &fakeKinesis{clk: fc}, Source: &sliceSource{entries: numbered(7, 10)}, Count: 100, Clock: fc})
	if err != nil || stats.Sent != 7 {
		t.Errorf("source of 7, count 100: sent %d, err %v; want 7, nil", stats.Sent, err)
	}
	fs, err := parseFileSource("f.jsonl", []byte("{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n"))
	if err != nil {
		t.Fatal(err)
	}
	fk := &fakeKinesis{clk: fc}
	stats, err = Run(t.Context(), Options{Stream: "s", Client: fk, Source: fs, Count: 8, Clock: fc})
	if err != nil || stats.Sent != 8 {
		t.Fatalf("file of 3, count 8: sent %d, err %v; want 8, nil", stats.Sent, err)
	}
	var got []string
	for _, d := range fk.recorded()[0].data {
		got = append(got, string(d))
	}
	if want := `{"a":1} {"a":2} {"a":3} {"a":1} {"a":2} {"a":3} {"a":1} {"a":2}`; strings.Join(got, " ") != want {
		t.Errorf("sent %s, want the file cycled: %s", strings.Join(got, " "), want)
	}
}

type failingSource struct {
	good int
}

func (s *failingSource) Next() (Entry, error) {
	if s.good == 0 {
		return Entry{}, errors.New("template render failed")
	}
	s.good--
	return Entry{Data: []byte("{}")}, nil
}

func TestRunSourceError(t *testing.T) {
	fc := clock.NewFake(t0)
	stats, err := Run(t.Context(), Options{Stream: "s", Client: &fakeKinesis{clk: fc}, Source: &failingSource{good: 4}, Clock: fc})
	if err == nil || !strings.Contains(err.Error(), "read record 4 from source: template render failed") {
		t.Fatalf("err = %v, want the source's error naming record 4", err)
	}
	if stats.Sent != 4 {
		t.Errorf("sent %d, want the 4 records read before the error", stats.Sent)
	}
}

func TestRunRandomPartitionKeys(t *testing.T) {
	fc := clock.NewFake(t0)
	fk := &fakeKinesis{clk: fc}
	entries := numbered(50, 10)
	for i := range entries {
		if i%2 == 0 {
			entries[i].PartitionKey = ""
		}
	}
	if _, err := Run(t.Context(), Options{Stream: "orders", Client: fk, Source: &sliceSource{entries: entries}, Clock: fc}); err != nil {
		t.Fatal(err)
	}
	c := fk.recorded()[0]
	if c.stream != "orders" || c.arn != "" {
		t.Errorf("sent StreamName %q, StreamARN %q; want orders and none", c.stream, c.arn)
	}
	tenDigits := regexp.MustCompile(`^[0-9]{10}$`)
	seen := map[string]bool{}
	for i, k := range c.keys {
		if i%2 == 1 {
			if k != entries[i].PartitionKey {
				t.Errorf("record %d: key %q, want the source's %q", i, k, entries[i].PartitionKey)
			}
			continue
		}
		if !tenDigits.MatchString(k) {
			t.Errorf("record %d: random key %q is not 10 digits", i, k)
		}
		seen[k] = true
	}
	if len(seen) < 20 {
		t.Errorf("only %d distinct random keys in 25", len(seen))
	}
}

func TestRunValidatesOptions(t *testing.T) {
	_, err := Run(t.Context(), Options{Count: -1, Rate: math.NaN()})
	if err == nil {
		t.Fatal("Run accepted empty options")
	}
	for _, want := range []string{"stream:", "client:", "source:", "count:", "rate:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestPermanentCallError(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{apiError(&types.ResourceNotFoundException{}), true},
		{fmt.Errorf("wrapped: %w", apiError(&smithy.GenericAPIError{Code: "ValidationException"})), true},
		{apiError(&types.KMSNotFoundException{}), true},
		{apiError(&types.ProvisionedThroughputExceededException{}), false},
		{apiError(&types.KMSThrottlingException{}), false},
		{apiError(&smithy.GenericAPIError{Code: "InternalFailure"}), false},
		{apiError(&types.ResourceInUseException{}), false},
		{errors.New("dial tcp: connection refused"), false},
		{fmt.Errorf("put: %w", context.Canceled), true},
	} {
		if got := permanentCallError(tc.err); got != tc.want {
			t.Errorf("permanentCallError(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
