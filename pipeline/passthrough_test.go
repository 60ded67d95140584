package pipeline

import (
	"context"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/shardhose/shardhose/dlq"
	"github.com/shardhose/shardhose/internal/clock"
	"github.com/shardhose/shardhose/process"
	"github.com/shardhose/shardhose/record"
	"github.com/shardhose/shardhose/sinks"
)

// callRecorder notes handler calls and outcome counts as hooks see them.
type callRecorder struct {
	mu        sync.Mutex
	calls     []int // batch sizes
	callErrs  []error
	delivered int
	others    int // filtered, dropped and failed
}

func (r *callRecorder) OnHandlerCall(_ string, records int, _ time.Duration, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, records)
	r.callErrs = append(r.callErrs, err)
}

func (r *callRecorder) OnProcessed(_ string, delivered, filtered, dropped, failed int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.delivered += delivered
	r.others += filtered + dropped + failed
}

// TestPassThroughDeliversBatchesUnchanged: with the pass-through handler (no handlers
// configured) every record reaches the sinks exactly as read, the batch is acknowledged, and
// hooks see one successful handler call with every record delivered, as with any handler.
func TestPassThroughDeliversBatchesUnchanged(t *testing.T) {
	rec, sink := &callRecorder{}, &memSink{}
	opts := Options{
		Policy:  Policy{MaximumRetryAttempts: -1, ParallelizationFactor: 1},
		Handler: process.PassThrough(), Sinks: []sinks.Sink{sink}, Clock: clock.Real(), Hooks: []any{rec},
	}
	batch := records("a", "b", "c")
	batch[1].PartitionKeys = map[string]string{"k": "v"}
	batch[2].Aggregated, batch[2].SubSequenceNumber = true, 4
	want := make([]record.Record, len(batch))
	copy(want, batch)
	if !run(t, opts, batch) {
		t.Fatal("batch not acknowledged")
	}
	sink.mu.Lock()
	got := sink.recs
	sink.mu.Unlock()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("sink got %+v, want the batch unchanged %+v", got, want)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if !reflect.DeepEqual(rec.calls, []int{3}) || rec.callErrs[0] != nil {
		t.Errorf("handler calls %v with errors %v, want one call of 3 records without error", rec.calls, rec.callErrs)
	}
	if rec.delivered != 3 || rec.others != 0 {
		t.Errorf("processed: %d delivered, %d otherwise; want 3 delivered", rec.delivered, rec.others)
	}
}

// TestPassThroughStillHonoursRecordAge: records past the maximum record age go to the dead
// letters, not to the sinks, also without handlers.
func TestPassThroughStillHonoursRecordAge(t *testing.T) {
	sink, dead := &memSink{}, &memDLQ{}
	fc := clock.NewFake(time.Unix(1000, 0).Add(2 * time.Minute)) // the records arrived at 1000
	opts := Options{
		Policy:  Policy{MaximumRetryAttempts: -1, MaximumRecordAge: time.Minute, ParallelizationFactor: 1},
		Handler: process.PassThrough(), Sinks: []sinks.Sink{sink}, DeadLetters: dead, Clock: fc,
	}
	if !run(t, opts, records("old", "older")) {
		t.Fatal("batch not acknowledged")
	}
	if got := sink.data(); len(got) != 0 {
		t.Errorf("sink got %q, want nothing", got)
	}
	if dl := dead.all(); len(dl) != 1 || dl[0].Condition != dlq.RecordAgeExceeded || len(dl[0].Records) != 2 {
		t.Errorf("dead letters %+v, want one RecordAgeExceeded with both records", dl)
	}
}

// TestPassThroughWithTheShardStoppingLeavesTheBatchUnacknowledged: a batch that reaches the
// stage after its shard's context ended is neither delivered nor acknowledged.
func TestPassThroughWithTheShardStoppingLeavesTheBatchUnacknowledged(t *testing.T) {
	sink := &memSink{}
	factory, err := New(Options{Policy: Policy{MaximumRetryAttempts: -1, ParallelizationFactor: 1}, Handler: process.PassThrough(), Sinks: []sinks.Sink{sink}, Clock: clock.Real()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	stage := factory(ctx, "shardId-000000000000").(*shardStage)
	cancel()
	c := newCompletion(func() { t.Error("batch acknowledged after its shard stopped") })
	if err := stage.process(ctx, records("a"), 0, 0, c); err == nil {
		t.Fatal("process returned nil for a batch it could not deliver")
	}
	c.fail() // as runLane does with the error
	c.finish()
	if got := sink.data(); len(got) != 0 {
		t.Errorf("sink got %q", got)
	}
	stage.Close()
}
