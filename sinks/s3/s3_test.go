package s3

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/shardhose/shardhose/internal/clock"
	"github.com/shardhose/shardhose/record"
	"github.com/shardhose/shardhose/sinks"
	"github.com/shardhose/shardhose/sinks/sinktest"
)

const kib = 1 << 10

// bigRecord returns a record whose Data is size bytes: a label, then filler.
func bigRecord(label string, size int) record.Record {
	data := make([]byte, size)
	copy(data, label+":")
	for i := len(label) + 1; i < size; i++ {
		data[i] = 'a' + byte(i%26)
	}
	return record.Record{ShardID: "shard-0", Data: data, ApproximateArrivalTimestamp: sinktest.Start}
}

// label returns the part of a bigRecord's data before the colon.
func label(line string) string {
	l, _, _ := strings.Cut(line, ":")
	return l
}

// objectLabels returns the labels of each stored object's records, sorted for comparison.
func objectLabels(t *testing.T, f *fakeS3, gzipped bool) [][]string {
	t.Helper()
	var out [][]string
	for _, o := range f.stored() {
		var ls []string
		for _, line := range lines(t, o.body, gzipped) {
			ls = append(ls, label(line))
		}
		out = append(out, ls)
	}
	slices.SortFunc(out, func(a, b []string) int { return strings.Compare(strings.Join(a, ","), strings.Join(b, ",")) })
	return out
}

func TestSizeFlush(t *testing.T) {
	ctx := waitCtx(t)
	f := newFakeS3()
	acks := sinktest.NewAckRecorder(t)
	s := newTestSink(t, testConfig(900), f, clock.NewFake(testStart))

	// 100 KiB records: ten fit in 1 MiB, the eleventh would overflow and starts the next object.
	var recs []record.Record
	for i := range 25 {
		recs = append(recs, bigRecord(fmt.Sprintf("r%02d", i), 100*kib))
	}
	if err := s.Write(ctx, recs, acks.Done(1)); err != nil {
		t.Fatal(err)
	}
	f.waitObjects(ctx, t, 2)
	if got := len(f.stored()); got != 2 {
		t.Fatalf("%d objects before Flush, want 2 (the last 5 records stay buffered)", got)
	}
	if acks.Acked(1) {
		t.Fatal("done called while 5 of the Write's records were still buffered")
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if acks.Calls(1) != 1 {
		t.Fatalf("done called %d times after Flush, want 1", acks.Calls(1))
	}
	var want [][]string
	for start, n := range map[int]int{0: 10, 10: 10, 20: 5} {
		var ls []string
		for i := start; i < start+n; i++ {
			ls = append(ls, fmt.Sprintf("r%02d", i))
		}
		want = append(want, ls)
	}
	slices.SortFunc(want, func(a, b []string) int { return strings.Compare(strings.Join(a, ","), strings.Join(b, ",")) })
	if got := objectLabels(t, f, true); !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("objects hold %v, want %v", got, want)
	}
}

func TestSizeFlushWhenExactlyFull(t *testing.T) {
	ctx := waitCtx(t)
	f := newFakeS3()
	acks := sinktest.NewAckRecorder(t)
	cfg := testConfig(900)
	cfg.Compression = CompressionUncompressed
	s := newTestSink(t, cfg, f, clock.NewFake(testStart))

	// Four records of 256 KiB with their newlines reach 1 MiB exactly: delivered without Flush.
	var recs []record.Record
	for i := range 4 {
		recs = append(recs, bigRecord(fmt.Sprintf("r%d", i), 256*kib-1))
	}
	if err := s.Write(ctx, recs, acks.Done(1)); err != nil {
		t.Fatal(err)
	}
	if err := acks.Wait(ctx, 1); err != nil {
		t.Fatal(err)
	}
	objs := f.stored()
	if len(objs) != 1 {
		t.Fatalf("%d objects, want 1", len(objs))
	}
	for key, o := range objs {
		if len(o.body) != 1<<20 {
			t.Errorf("object is %d bytes, want %d", len(o.body), 1<<20)
		}
		if strings.HasSuffix(key, ".gz") {
			t.Errorf("uncompressed object named %s", key)
		}
	}
}

func TestIntervalFlush(t *testing.T) {
	ctx := waitCtx(t)
	f := newFakeS3()
	clk := clock.NewFake(testStart)
	acks := sinktest.NewAckRecorder(t)
	s := newTestSink(t, testConfig(60), f, clk)

	recs := sinktest.Records(3, "shardId-000000000000")
	if err := s.Write(ctx, recs[:1], acks.Done(1)); err != nil {
		t.Fatal(err)
	}
	if err := clk.WaitForTimers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	clk.Advance(30 * time.Second)
	// A second record does not restart the interval: it counts from the first record.
	if err := s.Write(ctx, recs[1:2], acks.Done(2)); err != nil {
		t.Fatal(err)
	}
	clk.Advance(29 * time.Second)
	if n := f.callCount(); n != 0 {
		t.Fatalf("%d PUTs 59 s after the first record, want 0", n)
	}
	clk.Advance(time.Second)
	if err := acks.Wait(ctx, 1, 2); err != nil {
		t.Fatal(err)
	}
	objs := f.stored()
	if len(objs) != 1 {
		t.Fatalf("%d objects, want 1", len(objs))
	}
	for _, o := range objs {
		want := []string{string(recs[0].Data), string(recs[1].Data)}
		if got := lines(t, o.body, true); !slices.Equal(got, want) {
			t.Fatalf("object holds %q, want %q", got, want)
		}
	}

	// The next record starts a new buffer with a new interval.
	if err := s.Write(ctx, recs[2:], acks.Done(3)); err != nil {
		t.Fatal(err)
	}
	if err := clk.WaitForTimers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	clk.Advance(59 * time.Second)
	if acks.Acked(3) {
		t.Fatal("third write acknowledged before its interval passed")
	}
	clk.Advance(time.Second)
	if err := acks.Wait(ctx, 3); err != nil {
		t.Fatal(err)
	}
}

func TestIntervalZeroDeliversEveryWrite(t *testing.T) {
	ctx := waitCtx(t)
	f := newFakeS3()
	acks := sinktest.NewAckRecorder(t)
	s := newTestSink(t, testConfig(0), f, clock.NewFake(testStart))

	recs := sinktest.Records(10, "shardId-000000000000")
	for i := range 5 {
		if err := s.Write(ctx, recs[2*i:2*i+2], acks.Done(i)); err != nil {
			t.Fatal(err)
		}
		if err := acks.Wait(ctx, i); err != nil { // the clock never moves
			t.Fatal(err)
		}
	}
	if n := len(f.stored()); n != 5 {
		t.Fatalf("%d objects, want one per Write", n)
	}
}

var keyPattern = regexp.MustCompile(`^2024/05/06/10/test-sink-1-2024-05-06-10-59-59-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\.gz$`)

func TestObjectKey(t *testing.T) {
	oldest := time.Date(2024, time.May, 6, 10, 59, 59, 500e6, time.UTC)
	// Arrival times in another zone: the key uses UTC. The oldest record is not the first.
	zone := time.FixedZone("UTC+5", 5*3600)
	arrivals := []time.Time{oldest.Add(time.Second).In(zone), oldest.In(zone), oldest.Add(2 * time.Hour)}
	recs := sinktest.Records(3, "shardId-000000000000")
	for i := range recs {
		recs[i].ApproximateArrivalTimestamp = arrivals[i]
	}

	for _, tc := range []struct {
		name        string
		prefix      string
		compression string
		want        *regexp.Regexp
	}{
		{"default prefix", "", CompressionGZIP, keyPattern},
		{"literal prefix gets the time folders", "logs/", CompressionGZIP,
			regexp.MustCompile(`^logs/` + strings.TrimPrefix(keyPattern.String(), "^"))},
		{"uncompressed has no extension", "", CompressionUncompressed,
			regexp.MustCompile(strings.TrimSuffix(keyPattern.String(), `\.gz$`) + "$")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := waitCtx(t)
			f := newFakeS3()
			acks := sinktest.NewAckRecorder(t)
			cfg := testConfig(0)
			cfg.Prefix = tc.prefix
			cfg.Compression = tc.compression
			s := newTestSink(t, cfg, f, clock.NewFake(testStart))
			if err := s.Write(ctx, recs, acks.Done(1)); err != nil {
				t.Fatal(err)
			}
			if err := acks.Wait(ctx, 1); err != nil {
				t.Fatal(err)
			}
			objs := f.stored()
			if len(objs) != 1 {
				t.Fatalf("%d objects, want 1", len(objs))
			}
			for key, o := range objs {
				if !tc.want.MatchString(key) {
					t.Errorf("key %s does not match %s", key, tc.want)
				}
				if o.contentType != "application/octet-stream" {
					t.Errorf("ContentType %q, want application/octet-stream", o.contentType)
				}
				if o.contentEncoding != "" {
					t.Errorf("ContentEncoding %q set; clients would decompress on download", o.contentEncoding)
				}
			}
		})
	}
}

func TestKeysAreUnique(t *testing.T) {
	tmpl, err := dataPrefix(testConfig(0))
	if err != nil {
		t.Fatal(err)
	}
	k := keyBuilder{prefix: tmpl, name: "n", ext: ".gz", random: randomUUID}
	seen := map[string]bool{}
	for range 1000 {
		key := k.key(testStart, nil, "")
		if seen[key] {
			t.Fatalf("key %s made twice", key)
		}
		seen[key] = true
	}
}

func TestGzipRoundTrip(t *testing.T) {
	for _, newline := range []bool{true, false} {
		t.Run(fmt.Sprintf("newline=%v", newline), func(t *testing.T) {
			ctx := waitCtx(t)
			f := newFakeS3()
			acks := sinktest.NewAckRecorder(t)
			cfg := testConfig(900)
			cfg.AppendNewline = newline
			s := newTestSink(t, cfg, f, clock.NewFake(testStart))

			recs := sinktest.Records(1000, "shardId-000000000007")
			var want bytes.Buffer
			for i := range 10 {
				if err := s.Write(ctx, recs[100*i:100*i+100], acks.Done(i)); err != nil {
					t.Fatal(err)
				}
			}
			for _, r := range recs {
				want.Write(r.Data)
				if newline {
					want.WriteByte('\n')
				}
			}
			if err := s.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			if acks.Count() != 10 {
				t.Fatalf("%d writes acknowledged after Flush, want 10", acks.Count())
			}
			objs := f.stored()
			if len(objs) != 1 {
				t.Fatalf("%d objects, want 1", len(objs))
			}
			for _, o := range objs {
				if got := decode(t, o.body, true); !bytes.Equal(got, want.Bytes()) {
					t.Fatalf("object holds %d bytes that differ from the %d written", len(got), want.Len())
				}
				if len(o.body) >= want.Len() {
					t.Errorf("gzipped object is %d bytes for %d of records", len(o.body), want.Len())
				}
			}
		})
	}
}

func TestBigRecordGetsItsOwnObject(t *testing.T) {
	ctx := waitCtx(t)
	f := newFakeS3()
	acks := sinktest.NewAckRecorder(t)
	s := newTestSink(t, testConfig(900), f, clock.NewFake(testStart))

	recs := []record.Record{
		bigRecord("a", 10*kib), bigRecord("b", 10*kib), bigRecord("big", 1536*kib), bigRecord("c", 10*kib),
	}
	if err := s.Write(ctx, recs, acks.Done(1)); err != nil {
		t.Fatal(err)
	}
	f.waitObjects(ctx, t, 2) // a+b, then big: both closed by size
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	want := [][]string{{"a", "b"}, {"big"}, {"c"}}
	if got := objectLabels(t, f, true); !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("objects hold %v, want %v", got, want)
	}
	if acks.Calls(1) != 1 {
		t.Fatalf("done called %d times, want 1", acks.Calls(1))
	}
}

func TestRetryUntilPutSucceeds(t *testing.T) {
	ctx := waitCtx(t)
	f := newFakeS3()
	f.failNext = 3
	clk := clock.NewFake(testStart)
	hooks := &hookRecorder{}
	acks := sinktest.NewAckRecorder(t)
	s := newTestSink(t, testConfig(0), f, clk, hooks)

	done := acks.Done(1)
	if err := s.Write(ctx, sinktest.Records(5, "shardId-000000000000"), func() {
		if len(f.stored()) != 1 {
			t.Error("done called before the object was stored")
		}
		done()
	}); err != nil {
		t.Fatal(err)
	}
	// Waits between attempts: 1 s, 2 s, 4 s, each ±15%. Each is a timer on the fake clock, and
	// no further attempt is made until the clock is moved past it.
	for attempt := 1; attempt <= 3; attempt++ {
		if err := clk.WaitForTimers(ctx, 1); err != nil {
			t.Fatal(err)
		}
		if n := f.callCount(); n != attempt {
			t.Fatalf("%d PUTs while waiting after attempt %d", n, attempt)
		}
		if acks.Acked(1) {
			t.Fatalf("done called after %d failed PUTs", attempt)
		}
		clk.Advance(5 * time.Second)
	}
	if err := acks.Wait(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if n := f.callCount(); n != 4 {
		t.Fatalf("%d PUTs, want 4", n)
	}
	if acks.Calls(1) != 1 {
		t.Fatalf("done called %d times, want 1", acks.Calls(1))
	}
	delivered, failed := hooks.counts()
	if failed != 3 || len(delivered) != 1 {
		t.Fatalf("hooks saw %d failures and %d deliveries, want 3 and 1", failed, len(delivered))
	}
	if d := delivered[0]; d.sink != "test-sink" || d.records != 5 || d.took != 15*time.Second {
		t.Fatalf("delivered %+v, want 5 records of test-sink taking 15s of fake time", d)
	}
}

func TestFlushWaitsForDelivery(t *testing.T) {
	ctx := waitCtx(t)
	f := newFakeS3()
	f.setFailing(true)
	clk := clock.NewFake(testStart)
	acks := sinktest.NewAckRecorder(t)
	s := newTestSink(t, testConfig(0), f, clk) // interval 0: the only timer is the retry's

	if err := s.Write(ctx, sinktest.Records(5, "shardId-000000000000"), acks.Done(1)); err != nil {
		t.Fatal(err)
	}
	// A Flush whose ctx ends while the PUT keeps failing returns ctx's error; delivery goes on.
	short, cancel := context.WithCancel(ctx)
	flushed := make(chan error, 1)
	go func() { flushed <- s.Flush(short) }()
	if err := clk.WaitForTimers(ctx, 1); err != nil { // the first PUT failed
		t.Fatal(err)
	}
	select {
	case err := <-flushed:
		t.Fatalf("Flush returned %v while the PUT was failing", err)
	default:
	}
	cancel()
	if err := <-flushed; !errors.Is(err, context.Canceled) {
		t.Fatalf("Flush returned %v, want context.Canceled", err)
	}

	flushed2 := make(chan error, 1)
	go func() { flushed2 <- s.Flush(ctx) }()
	f.setFailing(false)
	clk.Advance(2 * time.Second)
	if err := <-flushed2; err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if acks.Calls(1) != 1 || len(f.stored()) != 1 {
		t.Fatalf("after Flush: done called %d times, %d objects; want 1 and 1", acks.Calls(1), len(f.stored()))
	}
}

// TestBackpressure runs in a synctest bubble so that synctest.Wait can tell that a Write is
// blocked; time there is the fake clock's alone.
func TestBackpressure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		f := newFakeS3()
		f.hold = make(chan struct{})
		f.entered = make(chan string, 10)
		acks := sinktest.NewAckRecorder(t)
		cfg := testConfig(900)
		cfg.MaxUploads = 1
		s := newTestSink(t, cfg, f, clock.NewFake(testStart))

		// 600 KiB records: two never share a 1 MiB object.
		write := func(ctx context.Context, id int) error {
			return s.Write(ctx, []record.Record{bigRecord(fmt.Sprintf("w%d", id), 600*kib)}, acks.Done(id))
		}
		if err := write(ctx, 1); err != nil { // buffered
			t.Fatal(err)
		}
		if err := write(ctx, 2); err != nil { // closes w1's object (uploading, held); w2 buffered
			t.Fatal(err)
		}
		<-f.entered

		// One upload pending and the buffer full: w3 would close a second object. It blocks.
		wctx, cancel := context.WithCancel(ctx)
		result := make(chan error, 1)
		go func() { result <- write(wctx, 3) }()
		synctest.Wait()
		select {
		case err := <-result:
			t.Fatalf("Write returned %v while max_uploads objects were pending and the buffer full", err)
		default:
		}
		cancel()
		if err := <-result; !errors.Is(err, context.Canceled) {
			t.Fatalf("blocked Write returned %v, want context.Canceled", err)
		}

		// w4 blocks too, and goes through once the upload finishes.
		go func() { result <- write(ctx, 4) }()
		synctest.Wait()
		select {
		case err := <-result:
			t.Fatalf("Write returned %v while blocked", err)
		default:
		}
		close(f.hold)
		if err := <-result; err != nil {
			t.Fatalf("Write after the upload finished: %v", err)
		}
		if err := s.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		// The cancelled Write kept nothing: no object holds w3, and its done is never called.
		want := [][]string{{"w1"}, {"w2"}, {"w4"}}
		if got := objectLabels(t, f, true); !slices.EqualFunc(got, want, slices.Equal) {
			t.Fatalf("objects hold %v, want %v", got, want)
		}
		if !acks.Acked(1) || !acks.Acked(2) || acks.Acked(3) || !acks.Acked(4) {
			t.Fatalf("acknowledged w1..w4: %v %v %v %v, want true true false true", acks.Acked(1), acks.Acked(2), acks.Acked(3), acks.Acked(4))
		}
	})
}

func TestCloseWakesBlockedWrites(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		f := newFakeS3()
		f.hold = make(chan struct{})
		acks := sinktest.NewAckRecorder(t)
		cfg := testConfig(900)
		cfg.MaxUploads = 1
		s := newTestSink(t, cfg, f, clock.NewFake(testStart))
		for id := 1; id <= 2; id++ {
			if err := s.Write(ctx, []record.Record{bigRecord("w", 600*kib)}, acks.Done(id)); err != nil {
				t.Fatal(err)
			}
		}
		result := make(chan error, 1)
		go func() { result <- s.Write(ctx, []record.Record{bigRecord("w", 600*kib)}, acks.Done(3)) }()
		synctest.Wait()

		closeCtx, cancel := context.WithCancel(ctx)
		closed := make(chan error, 1)
		go func() { closed <- s.Close(closeCtx) }()
		if err := <-result; !errors.Is(err, sinks.ErrClosed) {
			t.Fatalf("blocked Write returned %v when Close began, want ErrClosed", err)
		}
		close(f.hold)
		if err := <-closed; err != nil {
			t.Fatalf("Close: %v", err)
		}
		cancel()
		if !acks.Acked(1) || !acks.Acked(2) || acks.Acked(3) {
			t.Fatal("Close must deliver w1 and w2 and nothing of w3")
		}
	})
}

func TestWriteAfterClose(t *testing.T) {
	ctx := waitCtx(t)
	f := newFakeS3()
	acks := sinktest.NewAckRecorder(t)
	s := newTestSink(t, testConfig(900), f, clock.NewFake(testStart))
	if err := s.Write(ctx, sinktest.Records(3, "shardId-000000000000"), acks.Done(1)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if !acks.Acked(1) || len(f.stored()) != 1 {
		t.Fatal("Close did not deliver the buffered records")
	}
	if err := s.Write(ctx, sinktest.Records(1, "shardId-000000000000"), acks.Done(2)); !errors.Is(err, sinks.ErrClosed) {
		t.Fatalf("Write after Close returned %v, want ErrClosed", err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatalf("Flush after Close with nothing pending: %v", err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if acks.Acked(2) {
		t.Fatal("done of a refused Write was called")
	}
}

func TestCloseGivesUpWhenCtxEnds(t *testing.T) {
	ctx := waitCtx(t)
	f := newFakeS3()
	f.setFailing(true)
	clk := clock.NewFake(testStart)
	hooks := &hookRecorder{}
	acks := sinktest.NewAckRecorder(t)
	s := newTestSink(t, testConfig(0), f, clk, hooks) // interval 0: the only timer is the retry's
	if err := s.Write(ctx, sinktest.Records(3, "shardId-000000000000"), acks.Done(1)); err != nil {
		t.Fatal(err)
	}
	closeCtx, cancel := context.WithCancel(ctx)
	closed := make(chan error, 1)
	go func() { closed <- s.Close(closeCtx) }()
	if err := clk.WaitForTimers(ctx, 1); err != nil { // the PUT failed and waits to retry
		t.Fatal(err)
	}
	cancel()
	err := <-closed
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "1 objects not written") {
		t.Fatalf("Close returned %v, want context.Canceled naming 1 object not written", err)
	}
	if acks.Acked(1) {
		t.Fatal("done called for records that were never written")
	}
	if err := s.Flush(ctx); !errors.Is(err, sinks.ErrClosed) {
		t.Fatalf("Flush after a Close that gave up returned %v, want ErrClosed", err)
	}
	if delivered, failed := hooks.counts(); failed != 1 || len(delivered) != 0 {
		t.Fatalf("hooks saw %d failures and %d deliveries, want the 1 failed attempt and none", failed, len(delivered))
	}
}

func TestEmptyWriteIsAcknowledged(t *testing.T) {
	ctx := waitCtx(t)
	acks := sinktest.NewAckRecorder(t)
	s := newTestSink(t, testConfig(900), newFakeS3(), clock.NewFake(testStart))
	if err := s.Write(ctx, nil, acks.Done(1)); err != nil {
		t.Fatal(err)
	}
	if acks.Calls(1) != 1 {
		t.Fatal("done of an empty Write not called")
	}
}

func TestConcurrentWrites(t *testing.T) {
	ctx := waitCtx(t)
	f := newFakeS3()
	acks := sinktest.NewAckRecorder(t)
	cfg := testConfig(0)
	cfg.MaxUploads = 2
	s := newTestSink(t, cfg, f, clock.NewFake(testStart))

	const shards, writes, per = 8, 50, 20
	var wg sync.WaitGroup
	for sh := range shards {
		wg.Go(func() {
			recs := sinktest.Records(writes*per, fmt.Sprintf("shardId-%012d", sh))
			for w := range writes {
				if err := s.Write(ctx, recs[w*per:(w+1)*per], acks.Done(sh*writes+w)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := acks.Count(); n != shards*writes {
		t.Fatalf("%d writes acknowledged, want %d", n, shards*writes)
	}
	seen := map[string]int{}
	for key, o := range f.stored() {
		last := map[string]string{}
		for _, line := range lines(t, o.body, true) {
			seen[line]++
			shard, seq := shardSeq(t, line)
			if prev, ok := last[shard]; ok && record.CompareSequenceNumbers(prev, seq) >= 0 {
				t.Fatalf("object %s: %s record %s follows %s", key, shard, seq, prev)
			}
			last[shard] = seq
		}
	}
	if len(seen) != shards*writes*per {
		t.Fatalf("%d distinct records stored, want %d", len(seen), shards*writes*per)
	}
	for line, n := range seen {
		if n != 1 {
			t.Fatalf("record %s stored %d times", line, n)
		}
	}
}

var shardSeqPattern = regexp.MustCompile(`^\{"shard":"([^"]+)","seq":"([0-9]+)"`)

func shardSeq(t *testing.T, line string) (shard, seq string) {
	t.Helper()
	m := shardSeqPattern.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("unexpected record %q", line)
	}
	return m[1], m[2]
}

func TestNewRejectsBadConfig(t *testing.T) {
	cfg := testConfig(901)
	cfg.Bucket = ""
	cfg.Compression = "ZIP"
	cfg.BufferingHints.SizeInMBs = 129
	cfg.MaxUploads = 0
	cfg.Retry.MaxElapsed = time.Hour
	_, err := New(Options{Name: "bad/name", Config: cfg})
	if err == nil {
		t.Fatal("New accepted a bad configuration")
	}
	for _, want := range []string{"name", "no S3 client", "bucket", "compression", "size_in_mbs", "interval_in_seconds", "max_uploads", "max_elapsed"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s: %v", want, err)
		}
	}

	cfg = testConfig(0)
	cfg.Prefix = "logs/!{timestamp:yyyy}/"
	if _, err := New(Options{Name: "ok", Config: cfg, Client: newFakeS3()}); err == nil || !strings.Contains(err.Error(), "error_output_prefix: must be set") {
		t.Fatalf("New with a prefix expression and no error prefix returned %v, want error_output_prefix to be required", err)
	}
}

// An outage of the bucket is logged when the first PUT fails, not once per attempt, and its end
// once when a PUT succeeds again.
func TestBucketOutageIsLoggedOnceAndItsRecovery(t *testing.T) {
	ctx := waitCtx(t)
	f := newFakeS3()
	f.failNext = 3
	clk := clock.NewFake(testStart)
	var logs sinktest.LogBuffer
	s, err := New(Options{Name: "test-sink", Config: testConfig(0), Client: f, Clock: clk,
		Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(ctx) })
	acks := sinktest.NewAckRecorder(t)
	if err := s.Write(ctx, sinktest.Records(5, "shardId-000000000000"), acks.Done(1)); err != nil {
		t.Fatal(err)
	}
	for attempt := 1; attempt <= 3; attempt++ {
		if err := clk.WaitForTimers(ctx, 1); err != nil {
			t.Fatal(err)
		}
		if attempt == 1 && !strings.Contains(logs.String(), `"msg":"dependency failing"`) {
			t.Fatalf("the first failed PUT was not logged at once:\n%s", logs.String())
		}
		clk.Advance(5 * time.Second)
	}
	if err := acks.Wait(ctx, 1); err != nil {
		t.Fatal(err)
	}
	var msgs []string
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var rec struct{ Msg, Level, Dependency, Resource, Sink string }
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("not JSON: %q", l)
		}
		if rec.Dependency != "s3" || rec.Resource != "bucket" || rec.Sink != "test-sink" || strings.Count(l, `"sink":`) != 1 {
			t.Errorf("line does not name the sink once and the bucket: %s", l)
		}
		msgs = append(msgs, rec.Level+" "+rec.Msg)
	}
	if want := []string{"WARN dependency failing", "INFO dependency recovered"}; !slices.Equal(msgs, want) {
		t.Fatalf("logged %q, want %q", msgs, want)
	}
}
