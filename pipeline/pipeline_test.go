package pipeline

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shardhose/shardhose/consumer"
	"github.com/shardhose/shardhose/dlq"
	"github.com/shardhose/shardhose/internal/clock"
	"github.com/shardhose/shardhose/internal/retry"
	"github.com/shardhose/shardhose/process"
	"github.com/shardhose/shardhose/record"
	"github.com/shardhose/shardhose/sinks"
)

// poisonHandler fails any batch holding a record whose data is "poison", and counts its calls.
type poisonHandler struct {
	calls   atomic.Int64
	mu      sync.Mutex
	batches [][]string // the data of each call's records
}

func (h *poisonHandler) Name() string { return "poison-detector" }

func (h *poisonHandler) Handle(_ context.Context, batch []record.Record) ([]process.Output, error) {
	h.calls.Add(1)
	var seen []string
	for _, r := range batch {
		seen = append(seen, string(r.Data))
	}
	h.mu.Lock()
	h.batches = append(h.batches, seen)
	h.mu.Unlock()
	out := make([]process.Output, len(batch))
	for i, r := range batch {
		if string(r.Data) == "poison" {
			return nil, fmt.Errorf("record %s is poison", r.SequenceNumber)
		}
		out[i] = process.Output{Outcome: process.Deliver, Record: r}
	}
	return out, nil
}

// memSink collects records and acknowledges at once.
type memSink struct {
	mu   sync.Mutex
	recs []record.Record
}

func (s *memSink) Name() string { return "mem" }
func (s *memSink) Write(_ context.Context, recs []record.Record, done func()) error {
	s.mu.Lock()
	s.recs = append(s.recs, recs...)
	s.mu.Unlock()
	done()
	return nil
}
func (s *memSink) Flush(context.Context) error { return nil }
func (s *memSink) Close(context.Context) error { return nil }
func (s *memSink) data() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.recs))
	for i, r := range s.recs {
		out[i] = string(r.Data)
	}
	return out
}

var _ sinks.Sink = (*memSink)(nil)

// failingStore fails the first failFirst calls of a fake store; its owner holds its lock around next.
type failingStore struct {
	failFirst int
	calls     int
}

func (o *failingStore) next(what string) error {
	o.calls++
	if o.calls <= o.failFirst {
		return errors.New(what + " unavailable")
	}
	return nil
}

// memDLQ collects dead letters; failFirst makes the first n sends fail.
type memDLQ struct {
	mu       sync.Mutex
	failures []dlq.Failure
	failingStore
}

func (d *memDLQ) Name() string { return "mem" }
func (d *memDLQ) Send(_ context.Context, f dlq.Failure) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.next("dead-letter queue"); err != nil {
		return err
	}
	d.failures = append(d.failures, f)
	return nil
}
func (d *memDLQ) all() []dlq.Failure {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]dlq.Failure(nil), d.failures...)
}

func records(data ...string) []record.Record {
	out := make([]record.Record, len(data))
	for i, d := range data {
		out[i] = record.Record{ShardID: "shardId-000000000000", PartitionKey: fmt.Sprintf("k%d", i), SequenceNumber: fmt.Sprintf("%05d", i+1), Data: []byte(d), ApproximateArrivalTimestamp: time.Unix(1000, 0)}
	}
	return out
}

// run hands one batch to a fresh stage and waits until it is finished; it reports whether done
// fired within 20 s.
func run(t *testing.T, opts Options, batch []record.Record) bool {
	t.Helper()
	finished := handleOne(t, opts, batch)
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	select {
	case <-finished:
		return true
	case <-deadline.C:
		return false
	}
}

// noWait makes retries go (almost) at once.
func noWait() retry.Policy { return retry.Policy{Initial: time.Nanosecond, Max: time.Nanosecond} }

func TestSeedScenarioBisectIsolatesThePoisonPill(t *testing.T) {
	h, sink, dead := &poisonHandler{}, &memSink{}, &memDLQ{}
	opts := Options{
		Policy:  Policy{MaximumRetryAttempts: 2, BisectBatchOnFunctionError: true, ParallelizationFactor: 1, Backoff: noWait()},
		Handler: h, Sinks: []sinks.Sink{sink}, DeadLetters: dead, Clock: clock.Real(),
	}
	if !run(t, opts, records(`{"id":1}`, `{"id":2}`, "poison", `{"id":3}`)) {
		t.Fatal("batch never finished")
	}
	if got := strings.Join(sink.data(), " "); got != `{"id":1} {"id":2} {"id":3}` {
		t.Fatalf("sink got %q, want the three good records in order", got)
	}
	dl := dead.all()
	if len(dl) != 1 || len(dl[0].Records) != 1 || string(dl[0].Records[0].Data) != "poison" {
		t.Fatalf("dead letters = %+v, want exactly one holding only the poison record", dl)
	}
	if dl[0].Condition != dlq.RetryAttemptsExhausted || dl[0].Records[0].SequenceNumber != "00003" {
		t.Fatalf("dead letter condition %s seq %s, want RetryAttemptsExhausted for 00003", dl[0].Condition, dl[0].Records[0].SequenceNumber)
	}
	// 1 call for the batch, the halves [1 2] and [poison 3], then [poison] and [3], then 2 retries.
	if got := h.calls.Load(); got != 7 {
		t.Fatalf("handler calls = %d, want 7 (%v)", got, h.batches)
	}
}

func TestBisectIsolatesScatteredPoisonWithinTheCallBound(t *testing.T) {
	const n = 10000
	data := make([]string, n)
	for i := range data {
		data[i] = fmt.Sprintf(`{"i":%d}`, i)
	}
	poison := []int{17, 4242, 9998}
	for _, p := range poison {
		data[p] = "poison"
	}
	h, sink, dead := &poisonHandler{}, &memSink{}, &memDLQ{}
	const retries = 2
	opts := Options{
		Policy:  Policy{MaximumRetryAttempts: retries, BisectBatchOnFunctionError: true, ParallelizationFactor: 1, Backoff: noWait()},
		Handler: h, Sinks: []sinks.Sink{sink}, DeadLetters: dead, Clock: clock.Real(),
	}
	if !run(t, opts, records(data...)) {
		t.Fatal("batch never finished")
	}
	if got := len(sink.data()); got != n-len(poison) {
		t.Fatalf("sink got %d records, want %d", got, n-len(poison))
	}
	dl := dead.all()
	if len(dl) != len(poison) {
		t.Fatalf("%d dead letters, want %d", len(dl), len(poison))
	}
	for i, f := range dl {
		if len(f.Records) != 1 || string(f.Records[0].Data) != "poison" {
			t.Fatalf("dead letter %d holds %d records, want the poison record alone", i, len(f.Records))
		}
	}
	k := float64(len(poison))
	bound := 2*k*math.Ceil(math.Log2(n)) + 1 + k*retries
	calls := h.calls.Load()
	t.Logf("isolated %d poison records in %d with %d handler calls (bound 2·k·⌈log2 N⌉ + 1 + k·retries = %.0f)", len(poison), n, calls, bound)
	if float64(calls) > bound {
		t.Fatalf("%d handler calls, above the bound %.0f", calls, bound)
	}
}

func TestWithoutBisectAFailingBatchIsTriedRetryCountPlusOneTimes(t *testing.T) {
	for _, maxRetries := range []int{0, 1, 3} {
		h, sink, dead := &poisonHandler{}, &memSink{}, &memDLQ{}
		opts := Options{
			Policy:  Policy{MaximumRetryAttempts: maxRetries, ParallelizationFactor: 1, Backoff: noWait()},
			Handler: h, Sinks: []sinks.Sink{sink}, DeadLetters: dead, Clock: clock.Real(),
		}
		if !run(t, opts, records(`{}`, "poison", `{}`)) {
			t.Fatal("batch never finished")
		}
		if got := h.calls.Load(); got != int64(maxRetries+1) {
			t.Errorf("MaximumRetryAttempts %d: %d calls, want %d", maxRetries, got, maxRetries+1)
		}
		dl := dead.all()
		if len(dl) != 1 || len(dl[0].Records) != 3 || dl[0].Attempts != maxRetries+1 {
			t.Errorf("MaximumRetryAttempts %d: dead letters %+v, want the whole batch once with %d attempts", maxRetries, dl, maxRetries+1)
		}
		if len(sink.data()) != 0 {
			t.Errorf("records of a failed batch reached the sink")
		}
	}
}

func TestRecordAgeSendsOldRecordsToDeadLettersWithoutAnotherCall(t *testing.T) {
	fc := clock.NewFake(time.Unix(1000, 0))
	h, sink, dead := &poisonHandler{}, &memSink{}, &memDLQ{}
	opts := Options{
		Policy: Policy{MaximumRetryAttempts: -1, MaximumRecordAge: time.Minute, ParallelizationFactor: 1,
			Backoff: retry.Policy{Initial: 10 * time.Second, Max: 10 * time.Second}},
		Handler: h, Sinks: []sinks.Sink{sink}, DeadLetters: dead, Clock: fc,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	factory, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	stage := factory(ctx, "shardId-000000000000")
	finished := make(chan struct{})
	if err := stage.Handle(ctx, records("poison"), func() { close(finished) }); err != nil {
		t.Fatal(err)
	}
	// Each retry waits 10 s on the fake clock; the record (arrived at t=1000) is older than a
	// minute once the clock passes 1060.
	for {
		select {
		case <-finished:
			dl := dead.all()
			if len(dl) != 1 || dl[0].Condition != dlq.RecordAgeExceeded {
				t.Fatalf("dead letters = %+v, want one RecordAgeExceeded", dl)
			}
			calls := h.calls.Load()
			// Calls at t = 1000, 1010, ..., 1060: at 1070 the record is too old and is not handed over.
			if calls != 7 {
				t.Fatalf("handler calls = %d, want 7 (none after the record passed the maximum age)", calls)
			}
			if age := fc.Now().Sub(time.Unix(1000, 0)); age <= time.Minute {
				t.Fatalf("dead-lettered at age %v, not past the maximum", age)
			}
			return
		default:
		}
		waitCtx, stop := context.WithTimeout(ctx, 50*time.Millisecond)
		err := fc.WaitForTimers(waitCtx, 1)
		stop()
		if err == nil {
			fc.Advance(10 * time.Second)
		} else if ctx.Err() != nil {
			t.Fatal("stage never dead-lettered the old record")
		}
	}
}

// partialHandler reports the record with data "bad" as the first failure once, then succeeds.
type partialHandler struct {
	calls  atomic.Int64
	inputs [][]string
	mu     sync.Mutex
	failed atomic.Bool
}

func (h *partialHandler) Name() string { return "partial" }
func (h *partialHandler) Handle(_ context.Context, batch []record.Record) ([]process.Output, error) {
	h.calls.Add(1)
	var in []string
	for _, r := range batch {
		in = append(in, string(r.Data))
	}
	h.mu.Lock()
	h.inputs = append(h.inputs, in)
	h.mu.Unlock()
	out := make([]process.Output, len(batch))
	for i, r := range batch {
		if string(r.Data) == "bad" && !h.failed.Swap(true) {
			return nil, &process.PartialFailure{FirstFailed: i, Outputs: out[:i], Err: errors.New("bad record")}
		}
		out[i] = process.Output{Outcome: process.Deliver, Record: r}
	}
	return out, nil
}

func TestPartialBatchResponseRetriesFromTheFailedItem(t *testing.T) {
	for _, bisect := range []bool{false, true} {
		h, sink, dead := &partialHandler{}, &memSink{}, &memDLQ{}
		opts := Options{
			Policy:  Policy{MaximumRetryAttempts: 3, ReportBatchItemFailures: true, BisectBatchOnFunctionError: bisect, ParallelizationFactor: 1, Backoff: noWait()},
			Handler: h, Sinks: []sinks.Sink{sink}, DeadLetters: dead, Clock: clock.Real(),
		}
		if !run(t, opts, records("a", "b", "bad", "c", "d")) {
			t.Fatal("batch never finished")
		}
		if got := strings.Join(sink.data(), ","); got != "a,b,bad,c,d" {
			t.Fatalf("bisect=%v: sink got %q, want every record once in order", bisect, got)
		}
		if len(h.inputs) != 2 || strings.Join(h.inputs[1], ",") != "bad,c,d" {
			t.Fatalf("bisect=%v: calls %v, want the retry to start at the failed item", bisect, h.inputs)
		}
		if len(dead.all()) != 0 {
			t.Fatalf("bisect=%v: unexpected dead letters", bisect)
		}
	}
}

func TestPartialFailureIsAWholeBatchFailureWithoutReportBatchItemFailures(t *testing.T) {
	h, sink, dead := &partialHandler{}, &memSink{}, &memDLQ{}
	opts := Options{
		Policy:  Policy{MaximumRetryAttempts: 3, ParallelizationFactor: 1, Backoff: noWait()},
		Handler: h, Sinks: []sinks.Sink{sink}, DeadLetters: dead, Clock: clock.Real(),
	}
	if !run(t, opts, records("a", "bad", "c")) {
		t.Fatal("batch never finished")
	}
	if len(h.inputs) != 2 || strings.Join(h.inputs[1], ",") != "a,bad,c" {
		t.Fatalf("calls %v, want the whole batch retried", h.inputs)
	}
	if got := strings.Join(sink.data(), ","); got != "a,bad,c" {
		t.Fatalf("sink got %q, want each record once", got)
	}
}

// orderHandler succeeds, recording nothing: ordering is checked at the sink.
type passHandler struct{ calls atomic.Int64 }

func (h *passHandler) Name() string { return "pass" }
func (h *passHandler) Handle(_ context.Context, batch []record.Record) ([]process.Output, error) {
	h.calls.Add(1)
	out := make([]process.Output, len(batch))
	for i, r := range batch {
		out[i] = process.Output{Outcome: process.Deliver, Record: r}
	}
	return out, nil
}

func TestParallelizationKeepsPerKeyOrder(t *testing.T) {
	sink := &memSink{}
	opts := Options{
		Policy:  Policy{MaximumRetryAttempts: -1, ParallelizationFactor: 5, Backoff: noWait()},
		Handler: &passHandler{}, Sinks: []sinks.Sink{sink}, Clock: clock.Real(),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	factory, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	stage := factory(ctx, "shardId-000000000000")
	const keys, perKey = 50, 40
	var finished sync.WaitGroup
	n := 0
	for b := 0; b < perKey; b++ {
		var batch []record.Record
		for k := 0; k < keys; k++ {
			batch = append(batch, record.Record{PartitionKey: fmt.Sprintf("key-%d", k), SequenceNumber: fmt.Sprint(n), Data: []byte(fmt.Sprintf("key-%d:%d", k, b))})
			n++
		}
		finished.Add(1)
		if err := stage.Handle(ctx, batch, finished.Done); err != nil {
			t.Fatal(err)
		}
	}
	stage.Close()
	finished.Wait()
	next := map[string]int{}
	for _, d := range sink.data() {
		var key string
		var i int
		fmt.Sscanf(strings.Replace(d, ":", " ", 1), "%s %d", &key, &i)
		if next[key] != i {
			t.Fatalf("key %s: got item %d, want %d: per-key order broken", key, i, next[key])
		}
		next[key]++
	}
	if len(sink.data()) != keys*perKey {
		t.Fatalf("sink got %d records, want %d", len(sink.data()), keys*perKey)
	}
}

type panicHandler struct{ calls atomic.Int64 }

func (h *panicHandler) Name() string { return "panicky" }
func (h *panicHandler) Handle(context.Context, []record.Record) ([]process.Output, error) {
	h.calls.Add(1)
	panic("nil map write")
}

func TestAPanicIsAFailureOfTheBatch(t *testing.T) {
	h, dead := &panicHandler{}, &memDLQ{}
	opts := Options{
		Policy:  Policy{MaximumRetryAttempts: 1, ParallelizationFactor: 1, Backoff: noWait()},
		Handler: h, Sinks: []sinks.Sink{&memSink{}}, DeadLetters: dead, Clock: clock.Real(),
	}
	if !run(t, opts, records("a")) {
		t.Fatal("batch never finished")
	}
	dl := dead.all()
	if h.calls.Load() != 2 || len(dl) != 1 || !strings.Contains(dl[0].ErrorMessage, "panicked") {
		t.Fatalf("calls %d, dead letters %+v: want 2 calls and one dead letter naming the panic", h.calls.Load(), dl)
	}
}

type slowHandler struct{}

func (slowHandler) Name() string { return "slow" }
func (slowHandler) Handle(ctx context.Context, _ []record.Record) ([]process.Output, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func TestAHandlerTimeoutIsAFailureOfTheBatch(t *testing.T) {
	dead := &memDLQ{}
	opts := Options{
		Policy:  Policy{MaximumRetryAttempts: 0, HandlerTimeout: 10 * time.Millisecond, ParallelizationFactor: 1, Backoff: noWait()},
		Handler: slowHandler{}, Sinks: []sinks.Sink{&memSink{}}, DeadLetters: dead, Clock: clock.Real(),
	}
	if !run(t, opts, records("a")) {
		t.Fatal("batch never finished")
	}
	dl := dead.all()
	if len(dl) != 1 || !strings.Contains(dl[0].ErrorMessage, "timed out") {
		t.Fatalf("dead letters %+v, want one naming the timeout", dl)
	}
}

func TestDeadLetterIsRetriedUntilStoredBeforeTheBatchFinishes(t *testing.T) {
	dead := &memDLQ{failingStore: failingStore{failFirst: 3}}
	opts := Options{
		Policy:  Policy{MaximumRetryAttempts: 0, ParallelizationFactor: 1, Backoff: noWait()},
		Handler: &poisonHandler{}, Sinks: []sinks.Sink{&memSink{}}, DeadLetters: dead, Clock: clock.Real(),
		StoreRetry: retry.Policy{Initial: time.Nanosecond, Max: time.Nanosecond},
	}
	if !run(t, opts, records("poison")) {
		t.Fatal("batch never finished")
	}
	if dead.calls != 4 || len(dead.all()) != 1 {
		t.Fatalf("sends = %d, stored = %d: want 3 failures then one stored dead letter", dead.calls, len(dead.all()))
	}
}

func TestFiniteLimitsWithoutDeadLettersAreRefused(t *testing.T) {
	_, err := New(Options{Policy: Policy{MaximumRetryAttempts: 2}, Handler: &passHandler{}, Sinks: []sinks.Sink{&memSink{}}})
	if err == nil {
		t.Fatal("a policy that gives up with nowhere to put the records was accepted")
	}
}

var _ consumer.PipelineFactory = func(context.Context, string) consumer.Pipeline { return nil }

// throttledHandler cannot be invoked for its first n calls, then succeeds.
type throttledHandler struct {
	n     int64
	calls atomic.Int64
}

func (h *throttledHandler) Name() string { return "throttled" }
func (h *throttledHandler) Handle(ctx context.Context, batch []record.Record) ([]process.Output, error) {
	if h.calls.Add(1) <= h.n {
		return nil, &process.InvocationError{Err: errors.New("TooManyRequestsException: Rate exceeded")}
	}
	return (&passHandler{}).Handle(ctx, batch)
}

func TestInvocationErrorsUseUpNoRetry(t *testing.T) {
	h, sink, dead := &throttledHandler{n: 5}, &memSink{}, &memDLQ{}
	opts := Options{
		Policy:  Policy{MaximumRetryAttempts: 1, BisectBatchOnFunctionError: true, ParallelizationFactor: 1, Backoff: noWait()},
		Handler: h, Sinks: []sinks.Sink{sink}, DeadLetters: dead, Clock: clock.Real(),
	}
	if !run(t, opts, records("a", "b", "c")) {
		t.Fatal("batch never finished")
	}
	if len(dead.all()) != 0 || strings.Join(sink.data(), ",") != "a,b,c" || h.calls.Load() != 6 {
		t.Fatalf("calls %d, dead letters %d, sink %v: want 5 throttled calls, then the whole batch delivered", h.calls.Load(), len(dead.all()), sink.data())
	}
}
