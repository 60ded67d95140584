package metrics

import (
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shardhose/shardhose/hooks"
	"github.com/shardhose/shardhose/internal/clock"
	"github.com/shardhose/shardhose/process"
)

var t0 = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

func newAdapter() (*Adapter, *clock.Fake) {
	c := clock.NewFake(t0)
	return New(Options{Stream: "orders", DeadLetterDestination: "sqs", Sinks: map[string]string{"lake": "s3", "api": "http"}, Clock: c}), c
}

// value returns the value of the series of name whose labels include want ("k=v" pairs); it fails
// the test when there is none.
func value(t *testing.T, a *Adapter, name string, want ...string) float64 {
	t.Helper()
	fams, err := a.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for _, w := range want {
				k, v, _ := strings.Cut(w, "=")
				if have[k] != v {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.GetCounter().GetValue()
			case m.Gauge != nil:
				return m.GetGauge().GetValue()
			case m.Histogram != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	t.Fatalf("no series %s%v", name, want)
	return 0
}

func TestFreshnessIsTheAgeOfTheOldestPendingWrite(t *testing.T) {
	a, c := newAdapter()
	if got := value(t, a, "shardhose_delivery_data_freshness_seconds", "sink=lake"); got != 0 {
		t.Fatalf("nothing pending: freshness %v, want 0", got)
	}
	a.OnSinkWrite("lake", 1, t0.Add(-10*time.Second), 5)
	a.OnSinkWrite("lake", 2, t0.Add(-3*time.Second), 5)
	a.OnSinkWrite("api", 3, t0.Add(-1*time.Second), 5)
	c.Advance(5 * time.Second)
	if got := value(t, a, "shardhose_delivery_data_freshness_seconds", "sink=lake"); got != 15 {
		t.Fatalf("oldest pending arrived 15s ago: freshness %v", got)
	}
	if got := value(t, a, "shardhose_delivery_data_freshness_seconds", "sink=api"); got != 6 {
		t.Fatalf("api: freshness %v, want 6", got)
	}
	a.OnSinkDone("lake", 1)
	if got := value(t, a, "shardhose_delivery_data_freshness_seconds", "sink=lake"); got != 8 {
		t.Fatalf("after the oldest was delivered: freshness %v, want 8", got)
	}
	a.OnSinkDone("lake", 2)
	if got := value(t, a, "shardhose_delivery_data_freshness_seconds", "sink=lake"); got != 0 {
		t.Fatalf("all delivered: freshness %v, want 0", got)
	}
}

func TestPausedAndTimeInARetry(t *testing.T) {
	a, c := newAdapter()
	a.OnDeliveryFailed("lake", 10, errors.New("503"))
	a.OnSinkPaused("lake", true)
	a.OnSinkPaused("lake", true)
	c.Advance(30 * time.Second)
	a.OnDeliveryFailed("lake", 10, errors.New("503"))
	if got := value(t, a, "shardhose_delivery_retry_seconds", "sink=lake"); got != 30 {
		t.Fatalf("failing for 30s: retry seconds %v", got)
	}
	if got := value(t, a, "shardhose_sink_paused", "sink=lake"); got != 1 {
		t.Fatalf("paused %v, want 1", got)
	}
	a.OnSinkPaused("lake", false)
	if got := value(t, a, "shardhose_sink_paused", "sink=lake"); got != 1 {
		t.Fatalf("one of two deliveries still paused: paused %v, want 1", got)
	}
	a.OnSinkPaused("lake", false)
	a.OnDelivered("lake", 10, 1000, time.Second)
	if got := value(t, a, "shardhose_sink_paused", "sink=lake"); got != 0 {
		t.Fatalf("resumed: paused %v", got)
	}
	if got := value(t, a, "shardhose_delivery_retry_seconds", "sink=lake"); got != 0 {
		t.Fatalf("delivered: retry seconds %v", got)
	}
	if got := value(t, a, "shardhose_delivery_failures_total", "sink=lake"); got != 2 {
		t.Fatalf("failures %v, want 2", got)
	}
	a.OnDeliveryFailed("api", 3, errors.New("500"))
	c.Advance(time.Minute)
	a.OnBackedUp("api", 3)
	if got := value(t, a, "shardhose_delivery_retry_seconds", "sink=api"); got != 0 {
		t.Fatalf("backed up: retry seconds %v, want 0", got)
	}
	if got := value(t, a, "shardhose_backup_records_total", "sink=api"); got != 3 {
		t.Fatalf("backup records %v", got)
	}
}

func TestIteratorAgeGrowsWhileTheShardWaitsAndDropsWhenCaughtUp(t *testing.T) {
	a, c := newAdapter()
	a.OnLeaseTaken("shard-0")
	a.OnIteratorAge("orders", "shard-0", 2*time.Second)
	a.OnShardWaiting("orders", "shard-0", true)
	c.Advance(10 * time.Second)
	if got := value(t, a, "shardhose_iterator_age_seconds", "shard_id=shard-0"); got != 12 {
		t.Fatalf("waiting 10s after a 2s-old batch: age %v, want 12", got)
	}
	a.OnShardWaiting("orders", "shard-0", false)
	c.Advance(5 * time.Second)
	if got := value(t, a, "shardhose_iterator_age_seconds", "shard_id=shard-0"); got != 12 {
		t.Fatalf("handed on after the wait: age %v, want 12 (the batch's age when handed on)", got)
	}
	a.OnRecordsRead("orders", "shard-0", 0, 0, 0)
	if got := value(t, a, "shardhose_iterator_age_seconds", "shard_id=shard-0"); got != 0 {
		t.Fatalf("caught up: age %v, want 0", got)
	}
	a.OnRecordsRead("orders", "shard-0", 7, 700, 1500)
	if got := value(t, a, "shardhose_behind_latest_seconds", "shard_id=shard-0"); got != 1.5 {
		t.Fatalf("behind latest %v", got)
	}
	if got := value(t, a, "shardhose_esm_polled_events_total"); got != 7 {
		t.Fatalf("polled %v", got)
	}
}

func TestDeadLettersByConditionAndDestination(t *testing.T) {
	a, _ := newAdapter()
	a.OnGiveUp("shard-0", "RetryAttemptsExhausted", 1)
	a.OnDeadLetterFailed("shard-0", "RetryAttemptsExhausted", 1, errors.New("sqs down"))
	a.OnDeadLetter("shard-0", "RetryAttemptsExhausted", 1)
	a.OnGiveUp("shard-1", "RecordAgeExceeded", 4)
	a.OnDeadLetter("shard-1", "RecordAgeExceeded", 4)
	for _, c := range []struct {
		name string
		want float64
		lbl  []string
	}{
		{"shardhose_dead_letters_total", 1, []string{"condition=RetryAttemptsExhausted", "destination=sqs"}},
		{"shardhose_dead_letter_records_total", 4, []string{"condition=RecordAgeExceeded", "destination=sqs"}},
		{"shardhose_dead_letter_failures_total", 1, []string{"condition=RetryAttemptsExhausted"}},
		{"shardhose_esm_dropped_events_total", 5, nil},
		{"shardhose_esm_on_failure_destination_delivered_events_total", 5, nil},
	} {
		if got := value(t, a, c.name, c.lbl...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.lbl, got, c.want)
		}
	}
}

func TestHandlerCallsAndOutcomes(t *testing.T) {
	a, _ := newAdapter()
	a.OnHandlerCall("s", 10, 20*time.Millisecond, nil)
	a.OnHandlerCall("s", 10, time.Second, errors.New("boom"))
	a.OnHandlerCall("s", 5, time.Millisecond, fmt.Errorf("invoke: %w", &process.InvocationError{Err: errors.New("throttled")}))
	a.OnProcessed("s", 6, 3, 1, 0)
	a.OnBatchSplit("s", 10)
	a.OnBatchRetry("s", 5, 1)
	for _, c := range []struct {
		name string
		want float64
		lbl  []string
	}{
		{"shardhose_handler_duration_seconds", 1, []string{"result=ok"}},
		{"shardhose_handler_duration_seconds", 1, []string{"result=function_error"}},
		{"shardhose_handler_duration_seconds", 1, []string{"result=not_invoked"}},
		{"shardhose_esm_invoked_events_total", 25, nil},
		{"shardhose_esm_failed_invoke_events_total", 15, nil},
		{"shardhose_esm_filtered_out_events_total", 3, nil},
		{"shardhose_processed_records_total", 1, []string{"outcome=dropped"}},
		{"shardhose_batch_splits_total", 1, nil},
		{"shardhose_batch_retries_total", 1, nil},
	} {
		if got := value(t, a, c.name, c.lbl...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.lbl, got, c.want)
		}
	}
}

func TestLeases(t *testing.T) {
	a, _ := newAdapter()
	a.OnLeaseTaken("shard-0")
	a.OnLeaseTaken("shard-1")
	a.OnLeaseTakenOver("shard-1", "worker-b")
	a.OnLeaseClaimed("shard-2", "worker-c")
	a.OnLeaseLost("shard-0", "handed off")
	a.OnLeaseTableFailed("renew", errors.New("throttled"))
	for _, c := range []struct {
		name string
		want float64
		lbl  []string
	}{
		{"shardhose_leases_held", 1, nil},
		{"shardhose_lease_held", 0, []string{"shard_id=shard-0"}},
		{"shardhose_lease_held", 1, []string{"shard_id=shard-1"}},
		{"shardhose_leases_taken_total", 2, nil},
		{"shardhose_leases_expired_total", 1, nil},
		{"shardhose_leases_stolen_total", 1, nil},
		{"shardhose_leases_lost_total", 1, []string{"reason=handed_off"}},
		{"shardhose_lease_table_failures_total", 1, []string{"operation=renew"}},
	} {
		if got := value(t, a, c.name, c.lbl...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.lbl, got, c.want)
		}
	}
}

// The adapter is one value that the core's hooks.Each finds for every interface it implements.
func TestAdapterIsFoundByTheHooksItImplements(t *testing.T) {
	a, _ := newAdapter()
	set := hooks.Set{a}
	hooks.Each(set, func(h hooks.RecordsRead) { h.OnRecordsRead("orders", "shard-9", 3, 30, 0) })
	hooks.Each(set, func(h hooks.CheckpointLag) { h.OnCheckpointLag("orders", "shard-9", 42) })
	if got := value(t, a, "shardhose_records_read_total", "shard_id=shard-9"); got != 3 {
		t.Fatalf("records read %v", got)
	}
	if got := value(t, a, "shardhose_checkpoint_lag_records", "shard_id=shard-9"); got != 42 {
		t.Fatalf("checkpoint lag %v", got)
	}
	// The handler serves the text format with Go's and the process's metrics.
	rec := httptest.NewRecorder()
	a.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{`shardhose_records_read_total{shard_id="shard-9",stream="orders"} 3`, "go_goroutines", "process_cpu_seconds_total"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// Hundreds of shards and several sinks report at once while /metrics is scraped: under -race
// this checks the adapter's locking, and the totals must add up.
func TestConcurrentHooksFromManyShards(t *testing.T) {
	a, _ := newAdapter()
	const shards, batches = 300, 20
	done := make(chan struct{})
	scraped := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-done:
				scraped <- n
				return
			default:
			}
			rec := httptest.NewRecorder()
			a.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
			n++
		}
	}()
	var wg sync.WaitGroup
	for i := range shards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("shard-%03d", i)
			a.OnLeaseTaken(id)
			for b := range batches {
				a.OnRecordsRead("orders", id, 10, 100, 5)
				a.OnIteratorAge("orders", id, time.Second)
				a.OnShardWaiting("orders", id, true)
				wid := uint64(i*batches + b + 1)
				a.OnSinkWrite("lake", wid, t0, 10)
				a.OnShardWaiting("orders", id, false)
				a.OnDelivered("lake", 10, 100, time.Millisecond)
				a.OnSinkDone("lake", wid)
				a.OnCheckpointLag("orders", id, 0)
			}
			if i%2 == 0 {
				a.OnLeaseLost(id, "handed off")
			}
		}()
	}
	wg.Wait()
	close(done)
	if n := <-scraped; n == 0 {
		t.Fatal("no scrape ran alongside")
	}
	if got := value(t, a, "shardhose_esm_polled_events_total"); got != shards*batches*10 {
		t.Errorf("polled %v, want %d", got, shards*batches*10)
	}
	if got := value(t, a, "shardhose_delivery_records_total", "sink=lake"); got != shards*batches*10 {
		t.Errorf("delivered %v", got)
	}
	if got := value(t, a, "shardhose_leases_held"); got != shards/2 {
		t.Errorf("leases held %v, want %d", got, shards/2)
	}
	if got := value(t, a, "shardhose_delivery_data_freshness_seconds", "sink=lake"); got != 0 {
		t.Errorf("freshness %v with nothing pending", got)
	}
}

func TestAnEndedShardIsNoLongerHeld(t *testing.T) {
	a, _ := newAdapter()
	a.OnLeaseTaken("parent")
	a.OnShardEnd("orders", "parent")
	if got := value(t, a, "shardhose_leases_held"); got != 0 {
		t.Fatalf("leases held %v after the shard ended, want 0", got)
	}
	if got := value(t, a, "shardhose_lease_held", "shard_id=parent"); got != 0 {
		t.Fatalf("lease held %v", got)
	}
}
