package pipeline

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shardhose/shardhose/dlq"
	"github.com/shardhose/shardhose/internal/clock"
	"github.com/shardhose/shardhose/internal/retry"
	"github.com/shardhose/shardhose/process"
	"github.com/shardhose/shardhose/record"
	"github.com/shardhose/shardhose/sinks"
	"github.com/shardhose/shardhose/sinks/backup"
)

// unfinishedRecorder implements Unfinished and HandlerCalled.
type unfinishedRecorder struct {
	unfinished chan error
	mu         sync.Mutex
	callErrs   []error
}

func newUnfinishedRecorder() *unfinishedRecorder {
	return &unfinishedRecorder{unfinished: make(chan error, 16)}
}

func (u *unfinishedRecorder) OnUnfinished(_ string, _ int, err error) { u.unfinished <- err }

func (u *unfinishedRecorder) OnHandlerCall(_ string, _ int, _ time.Duration, err error) {
	u.mu.Lock()
	u.callErrs = append(u.callErrs, err)
	u.mu.Unlock()
}

func (u *unfinishedRecorder) handlerErrors() []error {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]error(nil), u.callErrs...)
}

// wait returns the error of the first lane job reported unfinished, failing the test if the
// batch is acknowledged instead (before or after), or if nothing is reported within 10 s.
func (u *unfinishedRecorder) wait(t *testing.T, finished <-chan struct{}) error {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	select {
	case <-finished:
		t.Fatal("batch acknowledged although its records were neither all delivered nor all stored")
	case err := <-u.unfinished:
		if err == nil {
			t.Fatal("batch reported unfinished with a nil error")
		}
		select {
		case <-finished:
			t.Fatal("batch acknowledged after it was reported unfinished")
		default:
		}
		return err
	case <-deadline.C:
		t.Fatal("the stage never reported the batch unfinished")
	}
	return nil
}

// handleOne hands batch to a fresh stage and returns a channel closed when its done fires.
func handleOne(t *testing.T, opts Options, batch []record.Record) <-chan struct{} {
	t.Helper()
	factory, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stage := factory(ctx, "shardId-000000000000")
	finished := make(chan struct{})
	if err := stage.Handle(ctx, batch, func() { close(finished) }); err != nil {
		t.Fatal(err)
	}
	stage.Close()
	return finished
}

// corrupt marks the records at the given indexes as KPL aggregates that could not be split.
func corrupt(recs []record.Record, at ...int) []record.Record {
	for _, i := range at {
		recs[i].DeaggregationError = "aggregate checksum mismatch"
	}
	return recs
}

// A dead letter whose storing gives up while the shard is still running is a failure of the
// batch: nothing of it was delivered or stored, so it must not be acknowledged.
func TestDeadLetterThatGivesUpLeavesTheBatchUnacknowledged(t *testing.T) {
	rec, sink, dead := newUnfinishedRecorder(), &memSink{}, &memDLQ{failingStore: failingStore{failFirst: 1 << 30}}
	opts := Options{
		Policy:  Policy{MaximumRetryAttempts: -1, ParallelizationFactor: 1, Backoff: noWait()},
		Handler: &passHandler{}, Sinks: []sinks.Sink{sink}, DeadLetters: dead, Clock: clock.Real(),
		StoreRetry: retry.Policy{Initial: time.Nanosecond, Max: time.Nanosecond, MaxAttempts: 3},
		Hooks:      []any{rec},
	}
	finished := handleOne(t, opts, corrupt(records("a", "corrupt", "b"), 1))
	if err := rec.wait(t, finished); !strings.Contains(err.Error(), "dead-letter queue unavailable") {
		t.Fatalf("batch left unfinished with error %v, want the dead-letter failure", err)
	}
	if got := sink.data(); len(got) != 0 {
		t.Fatalf("sink got %q", got)
	}
	if len(dead.all()) != 0 {
		t.Fatalf("dead letters stored: %+v", dead.all())
	}
}

// shapeHandler returns, on its first call, the result shape; afterwards every record delivered.
type shapeHandler struct {
	first func(batch []record.Record) ([]process.Output, error)
	mu    sync.Mutex
	calls int
}

func (h *shapeHandler) Name() string { return "shape-breaker" }
func (h *shapeHandler) Handle(_ context.Context, batch []record.Record) ([]process.Output, error) {
	h.mu.Lock()
	h.calls++
	n := h.calls
	h.mu.Unlock()
	if n == 1 {
		return h.first(batch)
	}
	out := make([]process.Output, len(batch))
	for i, r := range batch {
		out[i] = process.Output{Outcome: process.Deliver, Record: r}
	}
	return out, nil
}

// A lone handler (no chain around it) whose partial failure holds fewer outputs than its
// FirstFailed must fail the whole batch, not acknowledge records it never handled.
func TestShortPartialFailureFromALoneHandlerIsABatchFailure(t *testing.T) {
	h := &shapeHandler{first: func(batch []record.Record) ([]process.Output, error) {
		return nil, &process.PartialFailure{FirstFailed: 3, Outputs: []process.Output{{Outcome: process.Deliver, Record: batch[0]}}, Err: errors.New("record 3 failed")}
	}}
	checkShapeIsABatchFailure(t, h)
}

// ... and one with more outputs than its FirstFailed must not index past the batch.
func TestLongPartialFailureFromALoneHandlerIsABatchFailure(t *testing.T) {
	h := &shapeHandler{first: func(batch []record.Record) ([]process.Output, error) {
		outs := []process.Output{
			{Outcome: process.Deliver, Record: batch[0]},
			{Outcome: process.Deliver, Record: batch[1]},
			{Outcome: process.Deliver, Record: batch[2]},
			{Outcome: process.ProcessingFailed, Record: batch[3], Err: "bad"},
		}
		return nil, &process.PartialFailure{FirstFailed: 2, Outputs: outs, Err: errors.New("record 2 failed")}
	}}
	checkShapeIsABatchFailure(t, h)
}

func checkShapeIsABatchFailure(t *testing.T, h *shapeHandler) {
	t.Helper()
	rec, sink, dead := newUnfinishedRecorder(), &memSink{}, &memDLQ{}
	opts := Options{
		Policy:  Policy{MaximumRetryAttempts: 3, ReportBatchItemFailures: true, ParallelizationFactor: 1, Backoff: noWait()},
		Handler: h, Sinks: []sinks.Sink{sink}, DeadLetters: dead, ErrorOutput: &memErrors{}, Clock: clock.Real(),
		Hooks: []any{rec},
	}
	if !run(t, opts, records("a", "b", "c", "d", "e")) {
		t.Fatal("batch never finished")
	}
	if got := strings.Join(sink.data(), ","); got != "a,b,c,d,e" {
		t.Fatalf("sink got %q, want every record once, in order, after the malformed result was retried", got)
	}
	errs := rec.handlerErrors()
	if len(errs) != 2 || errs[0] == nil || !strings.Contains(errs[0].Error(), "shape-breaker") || errs[1] != nil {
		t.Fatalf("handler call errors %v, want a first call failed by an error naming the handler, then success", errs)
	}
	var pf *process.PartialFailure
	if errors.As(errs[0], &pf) {
		t.Fatalf("the malformed result %v is still usable as a partial failure", errs[0])
	}
	if len(dead.all()) != 0 {
		t.Fatalf("unexpected dead letters %+v", dead.all())
	}
}

// memErrors is a backup.Writer that keeps error records; failFirst fails the first n writes.
type memErrors struct {
	mu      sync.Mutex
	folders []string
	recs    []backup.ErrorRecord
	failingStore
}

func (m *memErrors) WriteErrors(_ context.Context, folder string, recs []backup.ErrorRecord) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.next("error bucket"); err != nil {
		return err
	}
	m.folders = append(m.folders, folder)
	m.recs = append(m.recs, recs...)
	return nil
}

func (m *memErrors) WriteRaw(context.Context, []record.Record) error {
	return errors.New("not used by the pipeline")
}

func (m *memErrors) stored() ([]string, []backup.ErrorRecord) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.folders...), append([]backup.ErrorRecord(nil), m.recs...)
}

// failEvery marks the records whose data starts with "fail" ProcessingFailed, as a Firehose
// transform does, and delivers the others.
func failEvery() process.Handler {
	return process.PerRecord("transform", func(_ context.Context, r record.Record) (process.Output, error) {
		if strings.HasPrefix(string(r.Data), "fail") {
			return process.Output{Outcome: process.ProcessingFailed, Record: r, Err: "cannot parse " + string(r.Data)}, nil
		}
		return process.Output{Outcome: process.Deliver, Record: r}, nil
	})
}

func TestProcessingFailedRecordsGoToTheErrorOutput(t *testing.T) {
	errOut, sink := &memErrors{failingStore: failingStore{failFirst: 2}}, &memSink{}
	opts := Options{
		Policy:  Policy{MaximumRetryAttempts: -1, ParallelizationFactor: 1, Backoff: noWait()},
		Handler: failEvery(), Sinks: []sinks.Sink{sink}, ErrorOutput: errOut, Clock: clock.Real(),
		FunctionARN: "arn:aws:lambda:eu-west-1:123456789012:function:transform",
		StoreRetry:  noWait(),
	}
	batch := records("a", "fail-1", "b", "fail-2")
	if !run(t, opts, batch) {
		t.Fatal("batch never finished")
	}
	if got := strings.Join(sink.data(), ","); got != "a,b" {
		t.Fatalf("sink got %q, want the records that did not fail", got)
	}
	folders, errs := errOut.stored()
	if len(folders) != 1 || folders[0] != "processing-failed/" || len(errs) != 2 {
		t.Fatalf("error output got %v with %d records, want one processing-failed/ object of 2 (after 2 failed writes)", folders, len(errs))
	}
	for i, want := range []string{"fail-1", "fail-2"} {
		e := errs[i]
		if string(e.RawData) != want || e.ErrorCode != "Lambda.ProcessingFailedStatus" || e.ErrorMessage != "cannot parse "+want ||
			e.AttemptsMade != 1 || e.ArrivalTimestamp != batch[0].ApproximateArrivalTimestamp.UnixMilli() ||
			e.Extra["lambdaArn"] != opts.FunctionARN {
			t.Fatalf("error record %d = %+v", i, e)
		}
	}
}

func TestProcessingFailedRecordsWithoutErrorOutputAreDeadLetters(t *testing.T) {
	dead, sink := &memDLQ{}, &memSink{}
	opts := Options{
		Policy:  Policy{MaximumRetryAttempts: -1, ParallelizationFactor: 1, Backoff: noWait()},
		Handler: failEvery(), Sinks: []sinks.Sink{sink}, DeadLetters: dead, Clock: clock.Real(),
		StoreRetry: noWait(),
	}
	if !run(t, opts, records("a", "fail-1")) {
		t.Fatal("batch never finished")
	}
	dl := dead.all()
	if len(dl) != 1 || len(dl[0].Records) != 1 || string(dl[0].Records[0].Data) != "fail-1" || !strings.Contains(dl[0].ErrorMessage, "cannot parse fail-1") {
		t.Fatalf("dead letters %+v, want one holding fail-1 and its reason", dl)
	}
	if got := strings.Join(sink.data(), ","); got != "a" {
		t.Fatalf("sink got %q", got)
	}
}

// A handler under Firehose's transform contract can mark records ProcessingFailed; with neither
// an error output nor a dead-letter destination such a record could never be stored, and the
// shard would never move on. The stage refuses to be built.
func TestFirehoseContractWithNowhereForProcessingFailedIsRefused(t *testing.T) {
	h, err := process.NewHTTP(process.HTTPOptions{URL: "http://127.0.0.1:1/transform", Contract: process.FirehoseContract})
	if err != nil {
		t.Fatal(err)
	}
	for name, handler := range map[string]process.Handler{"alone": h, "chained": process.Chain(process.NewJSON(), h)} {
		_, err := New(Options{Policy: Policy{MaximumRetryAttempts: -1}, Handler: handler, Sinks: []sinks.Sink{&memSink{}}})
		if err == nil {
			t.Fatalf("%s: a Firehose-contract handler with no error output and no dead-letter destination was accepted", name)
		}
		if !strings.Contains(err.Error(), "ErrorOutput") || !strings.Contains(err.Error(), "DeadLetters") {
			t.Fatalf("%s: error %q does not name ErrorOutput and DeadLetters", name, err)
		}
		if _, err := New(Options{Policy: Policy{MaximumRetryAttempts: -1}, Handler: handler, Sinks: []sinks.Sink{&memSink{}}, ErrorOutput: &memErrors{}}); err != nil {
			t.Fatalf("%s with an error output: %v", name, err)
		}
		if _, err := New(Options{Policy: Policy{MaximumRetryAttempts: -1}, Handler: handler, Sinks: []sinks.Sink{&memSink{}}, DeadLetters: &memDLQ{}}); err != nil {
			t.Fatalf("%s with dead letters: %v", name, err)
		}
	}
}

func TestCorruptAggregatesGoToTheDeadLettersBeforeAnyHandler(t *testing.T) {
	h, dead, sink := &poisonHandler{}, &memDLQ{failingStore: failingStore{failFirst: 1}}, &memSink{}
	opts := Options{
		Policy:  Policy{MaximumRetryAttempts: -1, ParallelizationFactor: 1, Backoff: noWait()},
		Handler: h, Sinks: []sinks.Sink{sink}, DeadLetters: dead, Clock: clock.Real(), StoreRetry: noWait(),
	}
	if !run(t, opts, corrupt(records("a", "agg-1", "b", "agg-2"), 1, 3)) {
		t.Fatal("batch never finished")
	}
	dl := dead.all()
	if len(dl) != 1 || dl[0].Condition != dlq.DeaggregationFailed || len(dl[0].Records) != 2 ||
		string(dl[0].Records[0].Data) != "agg-1" || string(dl[0].Records[1].Data) != "agg-2" ||
		dl[0].ErrorMessage != "aggregate checksum mismatch" {
		t.Fatalf("dead letters %+v, want one DeaggregationFailed letter of agg-1 and agg-2", dl)
	}
	if got := strings.Join(sink.data(), ","); got != "a,b" {
		t.Fatalf("sink got %q, want the records that could be split", got)
	}
	if len(h.batches) != 1 || strings.Join(h.batches[0], ",") != "a,b" {
		t.Fatalf("handler saw %v, want only a,b", h.batches)
	}
}

func TestCorruptAggregatesWithoutDeadLettersAreDeliveredWhole(t *testing.T) {
	h, sink := &poisonHandler{}, &memSink{}
	opts := Options{
		Policy:  Policy{MaximumRetryAttempts: -1, ParallelizationFactor: 1, Backoff: noWait()},
		Handler: h, Sinks: []sinks.Sink{sink}, Clock: clock.Real(),
	}
	if !run(t, opts, corrupt(records("a", "agg-1", "b"), 1)) {
		t.Fatal("batch never finished")
	}
	if got := strings.Join(sink.data(), ","); got != "agg-1,a,b" {
		t.Fatalf("sink got %q, want the aggregate whole, then the handled records", got)
	}
}

// refusingSink refuses every Write, as a closed sink does.
type refusingSink struct{}

func (refusingSink) Name() string                                         { return "refusing" }
func (refusingSink) Write(context.Context, []record.Record, func()) error { return sinks.ErrClosed }
func (refusingSink) Flush(context.Context) error                          { return nil }
func (refusingSink) Close(context.Context) error                          { return nil }

func TestCorruptAggregatesTheSinkRefusesLeaveTheBatchUnacknowledged(t *testing.T) {
	rec := newUnfinishedRecorder()
	opts := Options{
		Policy:  Policy{MaximumRetryAttempts: -1, ParallelizationFactor: 1, Backoff: noWait()},
		Handler: &passHandler{}, Sinks: []sinks.Sink{refusingSink{}}, Clock: clock.Real(), Hooks: []any{rec},
	}
	finished := handleOne(t, opts, corrupt(records("agg-1", "a"), 0))
	if err := rec.wait(t, finished); !errors.Is(err, sinks.ErrClosed) {
		t.Fatalf("unfinished with %v, want the sink's refusal", err)
	}
}

// A handler of a program's own that does not say it can fail records (process.RecordFailer)
// gets past New; when it does mark one ProcessingFailed with nowhere to store it, the batch is
// left unfinished with an error that says so.
func TestProcessingFailedWithNowhereToGoLeavesTheBatchUnfinished(t *testing.T) {
	rec, sink := newUnfinishedRecorder(), &memSink{}
	opts := Options{
		Policy:  Policy{MaximumRetryAttempts: -1, ParallelizationFactor: 1, Backoff: noWait()},
		Handler: failEvery(), Sinks: []sinks.Sink{sink}, Clock: clock.Real(), Hooks: []any{rec},
	}
	err := rec.wait(t, handleOne(t, opts, records("a", "fail-1")))
	for _, want := range []string{"transform", "ProcessingFailed", "error output", "dead-letter destination", "process.RecordFailer"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("unfinished with %q, want it to mention %q", err, want)
		}
	}
}
