package pipeline

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/shardhose/shardhose/internal/clock"
	"github.com/shardhose/shardhose/record"
	"github.com/shardhose/shardhose/sinks"
)

// BenchmarkIsolateOnePoisonIn10000 measures what bisecting costs: the handler calls and the CPU
// time to isolate one poison record in a batch of 10,000 with a handler that does nothing else.
func BenchmarkIsolateOnePoisonIn10000(b *testing.B) {
	const n = 10000
	data := make([]string, n)
	for i := range data {
		data[i] = fmt.Sprintf(`{"i":%d}`, i)
	}
	data[n/3] = "poison"
	batch := records(data...)
	var calls int64
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h, dead := &poisonHandler{}, &memDLQ{}
		factory, err := New(Options{
			Policy:  Policy{MaximumRetryAttempts: 0, BisectBatchOnFunctionError: true, ParallelizationFactor: 1, Backoff: noWait()},
			Handler: h, Sinks: []sinks.Sink{discardSink{}}, DeadLetters: dead, Clock: clock.Real(),
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		stage := factory(ctx, "shardId-000000000000")
		finished := make(chan struct{})
		if err := stage.Handle(ctx, batch, func() { close(finished) }); err != nil {
			b.Fatal(err)
		}
		<-finished
		stage.Close()
		if len(dead.all()) != 1 {
			b.Fatalf("%d dead letters, want 1", len(dead.all()))
		}
		calls = h.calls.Load()
	}
	b.ReportMetric(float64(calls), "handler-calls/op")
}

type discardSink struct{}

func (discardSink) Name() string { return "discard" }
func (discardSink) Write(_ context.Context, _ []record.Record, done func()) error {
	done()
	return nil
}
func (discardSink) Flush(context.Context) error { return nil }
func (discardSink) Close(context.Context) error { return nil }
