package firehose

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsfirehose "github.com/aws/aws-sdk-go-v2/service/firehose"
	"github.com/aws/aws-sdk-go-v2/service/firehose/types"

	"github.com/shardhose/shardhose/config"
	"github.com/shardhose/shardhose/hooks"
	"github.com/shardhose/shardhose/internal/clock"
	"github.com/shardhose/shardhose/internal/outage"
	"github.com/shardhose/shardhose/record"
	"github.com/shardhose/shardhose/sinks"
	"github.com/shardhose/shardhose/sinks/sinktest"
)

func testConfig() config.FirehoseSink {
	c := config.FirehoseDefaults()
	c.DeliveryStream = "orders"
	return c
}

type fixture struct {
	sink  *Sink
	fake  *fakeFirehose
	bak   *fakeBackup
	clock *clock.Fake
	acks  *sinktest.AckRecorder
	logs  *sinktest.LogBuffer
}

// newFixture starts a sink on a fake client and a fake clock; edit changes the config, and
// withBackup gives it a fake backup.
func newFixture(t *testing.T, withBackup bool, edit func(*config.FirehoseSink), hks ...any) *fixture {
	t.Helper()
	f := &fixture{fake: newFake(t), clock: clock.NewFake(sinktest.Start), acks: sinktest.NewAckRecorder(t), logs: &sinktest.LogBuffer{}}
	cfg := testConfig()
	if edit != nil {
		edit(&cfg)
	}
	opts := Options{Name: "fh", Config: cfg, Client: f.fake, Clock: f.clock, Logger: testLogger(f.logs), Hooks: hks}
	if withBackup {
		f.bak = newFakeBackup()
		opts.Backup = f.bak
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	f.sink = s
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Close(ctx)
	})
	return f
}

// flush runs Flush while driving the clock, and fails the test if it fails.
func (f *fixture) flush(t *testing.T) {
	t.Helper()
	var err error
	done := closed(func() { err = f.sink.Flush(waitCtx(t)) })
	drive(t, f.clock, done)
	if err != nil {
		t.Fatalf("flush: %v", err)
	}
}

func (f *fixture) waitAck(t *testing.T, ids ...int) {
	t.Helper()
	var err error
	drive(t, f.clock, closed(func() { err = f.acks.Wait(waitCtx(t), ids...) }))
	if err != nil {
		t.Fatal(err)
	}
}

func dataOf(recs []record.Record) [][]byte {
	out := make([][]byte, len(recs))
	for i := range recs {
		out[i] = recs[i].Data
	}
	return out
}

func equalData(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

func sizes(calls [][][]byte) []int {
	out := make([]int, len(calls))
	for i, c := range calls {
		out[i] = len(c)
	}
	return out
}

// sized returns n records whose data is size bytes, each starting with its number.
func sized(n, size int) []record.Record {
	recs := sinktest.Records(n, "shardId-000000000000")
	for i := range recs {
		d := bytes.Repeat([]byte{'x'}, size)
		copy(d, fmt.Sprintf("%08d", i))
		recs[i].Data = d
	}
	return recs
}

func TestChunksAt500Records(t *testing.T) {
	f := newFixture(t, false, func(c *config.FirehoseSink) { c.MaxInFlight = 1 })
	recs := sinktest.Records(1200, "shardId-000000000000")
	if err := f.sink.Write(waitCtx(t), recs, f.acks.Done(0)); err != nil {
		t.Fatal(err)
	}
	f.flush(t)
	calls := f.fake.recorded()
	if fmt.Sprint(sizes(calls)) != "[500 500 200]" {
		t.Fatalf("call sizes = %v, want [500 500 200]", sizes(calls))
	}
	var sent [][]byte
	for _, c := range calls {
		sent = append(sent, c...)
	}
	if !equalData(sent, dataOf(recs)) {
		t.Fatal("the calls do not hold the records in order")
	}
	if f.acks.Calls(0) != 1 {
		t.Fatalf("write acknowledged %d times, want 1", f.acks.Calls(0))
	}
}

func TestChunksAt4MiB(t *testing.T) {
	cases := []struct {
		name    string
		newline bool
		recs    []record.Record
		want    string
	}{
		// 300 KiB records: 13 fit in 4 MiB (3,993,600 bytes), 14 do not.
		{"300KiB", false, sized(30, 300<<10), "[13 13 4]"},
		// Records at Firehose's limit: 4 fit (4,096,000 bytes), 5 do not.
		{"at the record limit", false, sized(9, MaxRecordSize), "[4 4 1]"},
		// With a newline the payload is at the limit.
		{"at the record limit with newline", true, sized(9, MaxRecordSize-1), "[4 4 1]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, false, func(cfg *config.FirehoseSink) { cfg.MaxInFlight = 1; cfg.AppendNewline = c.newline })
			if err := f.sink.Write(waitCtx(t), c.recs, f.acks.Done(0)); err != nil {
				t.Fatal(err)
			}
			f.flush(t)
			calls := f.fake.recorded()
			if got := fmt.Sprint(sizes(calls)); got != c.want {
				t.Fatalf("call sizes = %v, want %s", got, c.want)
			}
			n := 0
			for _, call := range calls {
				for _, d := range call {
					want := c.recs[n].Data
					if c.newline {
						want = append(bytes.Clone(want), '\n')
					}
					if !bytes.Equal(d, want) {
						t.Fatalf("record %d sent as %q..., want %q...", n, d[:8], want[:8])
					}
					n++
				}
			}
			if !f.acks.Acked(0) {
				t.Fatal("write not acknowledged")
			}
		})
	}
}

// A batch can exceed 4 MiB once newlines are added to 500 records that fill the batcher's byte
// budget almost exactly; the sink then splits it into two calls.
func TestNewlinesSplitAFullBatch(t *testing.T) {
	f := newFixture(t, false, func(c *config.FirehoseSink) { c.AppendNewline = true })
	recs := sized(MaxRecordsPerCall, 8388) // 500 × 8,389 = 4,194,500 bytes with newlines: 196 too many
	if err := f.sink.deliver(waitCtx(t), recs); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(sizes(f.fake.recorded())); got != "[499 1]" {
		t.Fatalf("call sizes = %v, want [499 1]", got)
	}
	for i := range recs {
		if len(recs[i].Data) != 8388 {
			t.Fatalf("record %d was changed: %d bytes", i, len(recs[i].Data))
		}
	}
}

func TestPartialFailureResendsOnlyTheRefusedRecords(t *testing.T) {
	failures := newCountHook()
	f := newFixture(t, false, func(c *config.FirehoseSink) { c.MaxInFlight = 1 }, failures)
	f.fake.setRespond(func(call int, data [][]byte) answer {
		switch call {
		case 0: // the first 500
			return answer{refused: map[int]string{0: "ServiceUnavailableException", 7: "InternalFailure", 250: "ServiceUnavailableException", 499: "InternalFailure"}}
		case 1: // records 0, 7, 250, 499: refuse 7 again
			return answer{refused: map[int]string{1: "ServiceUnavailableException"}}
		}
		return answer{}
	})
	recs := sinktest.Records(500, "shardId-000000000000")
	if err := f.sink.Write(waitCtx(t), recs, f.acks.Done(0)); err != nil {
		t.Fatal(err)
	}
	// The batch is full: it goes out without waiting for the interval.
	<-f.fake.reached(waitCtx(t), 1)
	if f.acks.Acked(0) {
		t.Fatal("acknowledged while records were refused")
	}
	f.waitAck(t, 0)

	calls := f.fake.recorded()
	if len(calls) != 3 {
		t.Fatalf("%d calls, want 3 (all, the 4 refused, the 1 refused again)", len(calls))
	}
	if !equalData(calls[0], dataOf(recs)) {
		t.Error("first call does not hold the 500 records in order")
	}
	want := dataOf([]record.Record{recs[0], recs[7], recs[250], recs[499]})
	if !equalData(calls[1], want) {
		t.Errorf("second call = %q, want records 0, 7, 250 and 499", calls[1])
	}
	if !equalData(calls[2], [][]byte{recs[7].Data}) {
		t.Errorf("third call = %q, want record 7 only", calls[2])
	}
	if f.acks.Calls(0) != 1 {
		t.Errorf("acknowledged %d times, want 1", f.acks.Calls(0))
	}
	if got := failures.failed(); got != "[4 1]" {
		t.Errorf("DeliveryFailed got %s records, want [4 1]", got)
	}
}

func TestAcksOnlyAfterFirehoseAccepts(t *testing.T) {
	f := newFixture(t, false, nil)
	f.fake.hold = make(chan struct{})
	f.fake.entered = make(chan int, 10)
	if err := f.sink.Write(waitCtx(t), sinktest.Records(10, "s"), f.acks.Done(0)); err != nil {
		t.Fatal(err)
	}
	if f.acks.Acked(0) {
		t.Fatal("acknowledged before anything was sent")
	}
	f.clock.Advance(promptInterval) // the interval closes the batch
	select {
	case <-f.fake.entered:
	case <-waitCtx(t).Done():
		t.Fatal("no call was made")
	}
	if f.acks.Acked(0) {
		t.Fatal("acknowledged while the call was under way")
	}
	close(f.fake.hold)
	if err := f.acks.Wait(waitCtx(t), 0); err != nil {
		t.Fatal(err)
	}
}

func TestRetriesForeverWithoutBackup(t *testing.T) {
	f := newFixture(t, false, nil)
	var mu sync.Mutex
	failing := true
	f.fake.setRespond(func(call int, data [][]byte) answer {
		mu.Lock()
		defer mu.Unlock()
		if failing {
			return answer{err: apiError("ServiceUnavailableException", "Slow down.")}
		}
		return answer{}
	})
	recs := sinktest.Records(20, "s")
	if err := f.sink.Write(waitCtx(t), recs, f.acks.Done(0)); err != nil {
		t.Fatal(err)
	}
	// 80 attempts take more than two hours of (fake) time, past Firehose's longest retry duration.
	start := f.clock.Now()
	drive(t, f.clock, f.fake.reached(waitCtx(t), 80))
	if f.acks.Acked(0) {
		t.Fatal("acknowledged while Firehose refused every call")
	}
	if d := f.clock.Now().Sub(start); d < 2*time.Hour {
		t.Fatalf("only %s passed", d)
	}
	mu.Lock()
	failing = false
	mu.Unlock()
	f.waitAck(t, 0)
	calls := f.fake.recorded()
	if !equalData(calls[len(calls)-1], dataOf(recs)) {
		t.Error("the last call does not hold the batch")
	}
	if !strings.Contains(f.logs.String(), "level=WARN") {
		t.Error("throttling was not logged as a warning")
	}
}

func TestMissingDeliveryStreamIsLoggedAndRetried(t *testing.T) {
	f := newFixture(t, false, nil)
	f.fake.setRespond(func(call int, data [][]byte) answer {
		if call < 3 {
			return answer{err: apiError("ResourceNotFoundException", "Firehose orders under account 123456789012 not found.")}
		}
		return answer{}
	})
	if err := f.sink.Write(waitCtx(t), sinktest.Records(5, "s"), f.acks.Done(0)); err != nil {
		t.Fatal(err)
	}
	f.waitAck(t, 0)
	if n := f.fake.callCount(); n != 4 {
		t.Errorf("%d calls, want 4", n)
	}
	logs := f.logs.String()
	if !strings.Contains(logs, "level=ERROR") || !strings.Contains(logs, "does not exist in the client's region and account") {
		t.Errorf("no clear error logged:\n%s", logs)
	}
}

// N refused calls in a row are one outage of the delivery stream: one line when it begins
// (an error, since it needs an operator, saying what to look at), reminders at most every
// outage.DefaultEvery, one line when it ends, and each attempt at debug level only.
func TestRefusedCallsAreOneOutageInTheLog(t *testing.T) {
	const refusals = 6
	f := newFixture(t, false, nil)
	f.fake.setRespond(func(call int, data [][]byte) answer {
		if call < refusals {
			return answer{err: apiError("AccessDeniedException", "User is not authorized to perform: firehose:PutRecordBatch")}
		}
		return answer{}
	})
	if err := f.sink.Write(waitCtx(t), sinktest.Records(5, "s"), f.acks.Done(0)); err != nil {
		t.Fatal(err)
	}
	f.waitAck(t, 0)
	if n := f.fake.callCount(); n != refusals+1 {
		t.Errorf("%d calls, want %d", n, refusals+1)
	}
	var failing, recovered, debug []string
	for _, l := range strings.Split(strings.TrimSpace(f.logs.String()), "\n") {
		switch {
		case strings.Contains(l, "msg=\""+outage.MsgFailing+"\""):
			failing = append(failing, l)
		case strings.Contains(l, "msg=\""+outage.MsgRecovered+"\""):
			recovered = append(recovered, l)
		case strings.Contains(l, "msg=\""+outage.MsgStillFailing+"\""):
			// the reminder: the fake clock moves minutes between attempts
		case strings.Contains(l, "level=DEBUG") && strings.Contains(l, "firehose refused the call"):
			debug = append(debug, l)
		case strings.Contains(l, "level=ERROR") || strings.Contains(l, "level=WARN"):
			t.Errorf("a line besides the outage's: %s", l)
		}
	}
	if len(failing) != 1 || !strings.Contains(failing[0], "level=ERROR") || !strings.Contains(failing[0], "grant firehose:PutRecordBatch") ||
		!strings.Contains(failing[0], "dependency=firehose") {
		t.Errorf("%d refused calls logged %d %q lines, want one error naming the permission:\n%s", refusals, len(failing), outage.MsgFailing, f.logs)
	}
	if len(recovered) != 1 || !strings.Contains(recovered[0], "failures="+strconv.Itoa(refusals)) {
		t.Errorf("recovery lines %q, want one counting %d failures", recovered, refusals)
	}
	if len(debug) != refusals {
		t.Errorf("%d refused calls logged %d debug lines, want one each", refusals, len(debug))
	}
}

func TestRetryDurationThenBackup(t *testing.T) {
	f := newFixture(t, true, func(c *config.FirehoseSink) {
		c.RetryDurationInSeconds = 60
		c.S3Backup = config.FirehoseS3Backup{Bucket: "backup-bucket"}
	})
	recs := sinktest.Records(10, "shardId-000000000003")
	recs[2].SubSequenceNumber = 4
	poison := string(recs[2].Data)
	f.fake.setRespond(func(call int, data [][]byte) answer {
		for i, d := range data {
			if string(d) == poison {
				return answer{refused: map[int]string{i: "InternalFailure"}}
			}
		}
		return answer{}
	})
	if err := f.sink.Write(waitCtx(t), recs, f.acks.Done(0)); err != nil {
		t.Fatal(err)
	}
	f.waitAck(t, 0)

	stored := f.bak.stored()
	if len(stored) != 1 || stored[0].folder != BackupFolder || len(stored[0].recs) != 1 {
		t.Fatalf("backup got %+v, want one write of one record under %s", stored, BackupFolder)
	}
	e := stored[0].recs[0]
	if string(e.RawData) != poison || e.ErrorCode != "InternalFailure" || e.AttemptsMade < 2 {
		t.Errorf("error record = %+v, want the refused record, InternalFailure, at least 2 attempts", e)
	}
	if e.ArrivalTimestamp != recs[2].ApproximateArrivalTimestamp.UnixMilli() || e.AttemptEndingTimestamp < e.ArrivalTimestamp {
		t.Errorf("timestamps: arrival %d, attempt ending %d", e.ArrivalTimestamp, e.AttemptEndingTimestamp)
	}
	if e.Extra["shardId"] != "shardId-000000000003" || e.Extra["dataId"] != recs[2].SequenceNumber+".4" {
		t.Errorf("extra fields = %v", e.Extra)
	}
	// The other records went to Firehose once each, the refused one on every attempt.
	for _, c := range f.fake.recorded()[1:] {
		if len(c) != 1 || string(c[0]) != poison {
			t.Errorf("a retry sent %d records; want only the refused one", len(c))
		}
	}
}

func TestRecordTooLargeGoesToBackupAtOnce(t *testing.T) {
	f := newFixture(t, true, func(c *config.FirehoseSink) { c.S3Backup.Bucket = "backup-bucket" })
	recs := sized(3, 100)
	recs[1].Data = bytes.Repeat([]byte{'y'}, MaxRecordSize+1)
	if err := f.sink.Write(waitCtx(t), recs, f.acks.Done(0)); err != nil {
		t.Fatal(err)
	}
	f.waitAck(t, 0)
	calls := f.fake.recorded()
	if len(calls) != 1 || !equalData(calls[0], [][]byte{recs[0].Data, recs[2].Data}) {
		t.Fatalf("calls = %v records, want one call with records 0 and 2", sizes(calls))
	}
	stored := f.bak.stored()
	if len(stored) != 1 || len(stored[0].recs) != 1 {
		t.Fatalf("backup got %d writes, want 1 with 1 record", len(stored))
	}
	if e := stored[0].recs[0]; e.ErrorCode != CodeRecordTooLarge || len(e.RawData) != MaxRecordSize+1 || e.AttemptsMade != 0 {
		t.Errorf("error record: code %s, %d bytes, %d attempts", e.ErrorCode, len(e.RawData), e.AttemptsMade)
	}
}

func TestRecordTooLargeWithoutBackupPausesTheSink(t *testing.T) {
	failures := newCountHook()
	f := newFixture(t, false, nil, failures)
	recs := sized(2, 100)
	recs[0].Data = bytes.Repeat([]byte{'y'}, MaxRecordSize+1)
	if err := f.sink.Write(waitCtx(t), recs, f.acks.Done(0)); err != nil {
		t.Fatal(err)
	}
	// Drive through three pauses: the record that fits is delivered, the write never acknowledged.
	drive(t, f.clock, failures.reached(3))
	if f.acks.Acked(0) {
		t.Fatal("acknowledged a write whose record could not be delivered")
	}
	if calls := f.fake.recorded(); len(calls) != 1 || !equalData(calls[0], [][]byte{recs[1].Data}) {
		t.Fatalf("calls = %v, want one with the record that fits", sizes(calls))
	}
	if logs := f.logs.String(); !strings.Contains(logs, "level=ERROR") || !strings.Contains(logs, "configure s3_backup") {
		t.Errorf("the pause was not explained:\n%s", logs)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := f.sink.Close(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Close = %v, want context.Canceled", err)
	}
	if f.acks.Acked(0) {
		t.Fatal("acknowledged at Close")
	}
}

func TestCloseGivesUpOnAStuckDelivery(t *testing.T) {
	f := newFixture(t, false, nil)
	f.fake.setRespond(func(int, [][]byte) answer { return answer{err: apiError("ServiceUnavailableException", "down")} })
	if err := f.sink.Write(waitCtx(t), sinktest.Records(3, "s"), f.acks.Done(0)); err != nil {
		t.Fatal(err)
	}
	drive(t, f.clock, f.fake.reached(waitCtx(t), 2))
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	err := f.sink.Close(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close = %v, want DeadlineExceeded", err)
	}
	if f.acks.Acked(0) {
		t.Fatal("acknowledged records that were never accepted")
	}
	if err := f.sink.Write(waitCtx(t), sinktest.Records(1, "s"), f.acks.Done(1)); !errors.Is(err, sinks.ErrClosed) {
		t.Fatalf("Write after Close = %v, want ErrClosed", err)
	}
}

func TestFlushReturnsWhenCtxEnds(t *testing.T) {
	f := newFixture(t, false, nil)
	f.fake.setRespond(func(int, [][]byte) answer { return answer{err: apiError("ServiceUnavailableException", "down")} })
	if err := f.sink.Write(waitCtx(t), sinktest.Records(3, "s"), f.acks.Done(0)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := f.sink.Flush(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Flush = %v, want DeadlineExceeded", err)
	}
	if err := f.sink.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close = %v, want DeadlineExceeded", err)
	}
	if f.acks.Acked(0) {
		t.Fatal("acknowledged records that were never accepted")
	}
}

func TestConcurrentWritesAreAllDeliveredAndAckedOnce(t *testing.T) {
	f := newFixture(t, false, nil)
	f.fake.setRespond(func(call int, data [][]byte) answer {
		if call%3 == 0 { // refuse the first record of every third call
			return answer{refused: map[int]string{0: "ServiceUnavailableException"}}
		}
		return answer{}
	})
	const writers, perWriter, batch = 4, 1000, 50
	want := map[string]bool{}
	var wg sync.WaitGroup
	for w := range writers {
		recs := sinktest.Records(perWriter, fmt.Sprintf("shardId-%012d", w))
		for _, r := range recs {
			want[string(r.Data)] = true
		}
		wg.Go(func() {
			for b := 0; b < perWriter/batch; b++ {
				if err := f.sink.Write(waitCtx(t), recs[b*batch:(b+1)*batch], f.acks.Done(w*1000+b)); err != nil {
					t.Errorf("write: %v", err)
					return
				}
			}
		})
	}
	drive(t, f.clock, closed(wg.Wait))
	f.flush(t)
	if n := f.acks.Count(); n != writers*perWriter/batch {
		t.Fatalf("%d writes acknowledged, want %d", n, writers*perWriter/batch)
	}
	got := map[string]bool{}
	for _, c := range f.fake.recorded() {
		for _, d := range c {
			got[string(d)] = true
		}
	}
	for d := range want {
		if !got[d] {
			t.Fatalf("record %s never sent", d)
		}
	}
}

func TestCheck(t *testing.T) {
	active := func(status types.DeliveryStreamStatus, typ types.DeliveryStreamType, arn string) func() (*awsfirehose.DescribeDeliveryStreamOutput, error) {
		return func() (*awsfirehose.DescribeDeliveryStreamOutput, error) {
			return &awsfirehose.DescribeDeliveryStreamOutput{DeliveryStreamDescription: &types.DeliveryStreamDescription{
				DeliveryStreamName:   aws.String("orders"),
				DeliveryStreamARN:    aws.String(arn),
				DeliveryStreamStatus: status,
				DeliveryStreamType:   typ,
			}}, nil
		}
	}
	const arn = "arn:aws:firehose:us-east-1:123456789012:deliverystream/orders"
	cases := []struct {
		name    string
		desc    func() (*awsfirehose.DescribeDeliveryStreamOutput, error)
		withARN string
		want    string // "" for no error
	}{
		{"active direct put", active(types.DeliveryStreamStatusActive, types.DeliveryStreamTypeDirectPut, arn), "", ""},
		{"configured ARN matches", active(types.DeliveryStreamStatusActive, types.DeliveryStreamTypeDirectPut, arn), arn, ""},
		{"not found", func() (*awsfirehose.DescribeDeliveryStreamOutput, error) {
			return nil, apiError("ResourceNotFoundException", "not found")
		}, "", `delivery stream "orders" does not exist`},
		{"access denied", func() (*awsfirehose.DescribeDeliveryStreamOutput, error) {
			return nil, apiError("AccessDeniedException", "no")
		}, "", "firehose:DescribeDeliveryStream"},
		{"creating", active(types.DeliveryStreamStatusCreating, types.DeliveryStreamTypeDirectPut, arn), "", "is CREATING, not ACTIVE"},
		{"kinesis source", active(types.DeliveryStreamStatusActive, types.DeliveryStreamTypeKinesisStreamAsSource, arn), "", "refuses PutRecordBatch"},
		{"other account", active(types.DeliveryStreamStatusActive, types.DeliveryStreamTypeDirectPut, arn), "arn:aws:firehose:us-east-1:000000000000:deliverystream/orders", "another region or account"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fake := newFake(t)
			fake.desc = c.desc
			cfg := testConfig()
			cfg.DeliveryStreamARN = c.withARN
			s, err := New(Options{Name: "fh", Config: cfg, Client: fake})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close(t.Context())
			err = s.Check(t.Context())
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("Check = %v, want nil", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("Check = %v, want an error containing %q", err, c.want)
			case err != nil && strings.Contains(err.Error(), "\n"):
				t.Fatalf("Check's error is not one line: %q", err)
			}
		})
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	cases := []struct {
		name string
		edit func(*Options)
		want string
	}{
		{"no client", func(o *Options) { o.Client = nil }, "no Firehose client"},
		{"no stream", func(o *Options) { o.Config.DeliveryStream = "" }, "delivery_stream: must be set"},
		{"retry duration without backup", func(o *Options) { o.Config.RetryDurationInSeconds = 60 }, "no backup writer"},
		{"bucket without backup", func(o *Options) { o.Config.S3Backup.Bucket = "b" }, "no backup writer"},
		{"max in flight 0", func(o *Options) { o.Config.MaxInFlight = 0 }, "max_in_flight"},
		{"interval 901", func(o *Options) { o.Config.BufferingHints.IntervalInSeconds = 901 }, "interval_in_seconds"},
		{"arn disagrees", func(o *Options) {
			o.Config.DeliveryStreamARN = "arn:aws:firehose:us-east-1:123456789012:deliverystream/other"
		}, "differs"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := Options{Name: "fh", Config: testConfig(), Client: newFake(t)}
			c.edit(&o)
			if _, err := New(o); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("New = %v, want an error containing %q", err, c.want)
			}
		})
	}
	o := Options{Name: "fh", Config: testConfig(), Client: newFake(t)}
	o.Config.DeliveryStream = ""
	o.Config.DeliveryStreamARN = "arn:aws:firehose:us-east-1:123456789012:deliverystream/from-arn"
	s, err := New(o)
	if err != nil {
		t.Fatalf("New with an ARN only: %v", err)
	}
	defer s.Close(t.Context())
	if s.stream != "from-arn" {
		t.Errorf("stream = %q, want the name inside the ARN", s.stream)
	}
}

// countHook records the record counts DeliveryFailed is told of.
type countHook struct {
	mu      sync.Mutex
	counts  []int
	changed chan struct{}
}

var _ hooks.DeliveryFailed = (*countHook)(nil)

func newCountHook() *countHook { return &countHook{changed: make(chan struct{})} }

func (h *countHook) OnDeliveryFailed(_ string, records int, _ error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.counts = append(h.counts, records)
	close(h.changed)
	h.changed = make(chan struct{})
}

func (h *countHook) failed() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return fmt.Sprint(h.counts)
}

// reached returns a channel closed once the hook was called n times.
func (h *countHook) reached(n int) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		for {
			h.mu.Lock()
			got, changed := len(h.counts), h.changed
			h.mu.Unlock()
			if got >= n {
				return
			}
			<-changed
		}
	}()
	return ch
}
