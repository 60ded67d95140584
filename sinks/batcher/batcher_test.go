package batcher

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shardhose/shardhose/internal/clock"
	"github.com/shardhose/shardhose/record"
)

func recs(from, n int) []record.Record {
	out := make([]record.Record, n)
	for i := range out {
		out[i] = record.Record{SequenceNumber: fmt.Sprint(from + i), Data: []byte(fmt.Sprintf("r%04d", from+i))}
	}
	return out
}

// collector records delivered batches; gate, when set, holds every delivery until closed.
type collector struct {
	mu      sync.Mutex
	batches [][]record.Record
	gate    chan struct{}
}

func (c *collector) deliver(ctx context.Context, b []record.Record) error {
	if c.gate != nil {
		select {
		case <-c.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	c.mu.Lock()
	c.batches = append(c.batches, append([]record.Record(nil), b...))
	c.mu.Unlock()
	return nil
}

func (c *collector) sizes() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []int
	for _, b := range c.batches {
		out = append(out, len(b))
	}
	return out
}

func ctx10(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestBatchesByCountAndAcksOnceAfterDelivery(t *testing.T) {
	ctx := ctx10(t)
	c := &collector{}
	fc := clock.NewFake(time.Unix(0, 0))
	b, err := New(Options{MaxRecords: 10, Interval: time.Minute, MaxInFlight: 2, Deliver: c.deliver, Clock: fc})
	if err != nil {
		t.Fatal(err)
	}
	var acks atomic.Int32
	if err := b.Write(ctx, recs(0, 25), func() { acks.Add(1) }); err != nil {
		t.Fatal(err)
	}
	// Two full batches went out; five records wait for the interval, so the write is not acked.
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := c.sizes(); fmt.Sprint(got) != "[10 10 5]" && fmt.Sprint(got) != "[10 5 10]" {
		t.Fatalf("batch sizes = %v, want two of 10 and one of 5", got)
	}
	if acks.Load() != 1 {
		t.Fatalf("done called %d times, want exactly once", acks.Load())
	}
}

func TestIntervalClosesABatchOnlyWhenTheClockPassesIt(t *testing.T) {
	ctx := ctx10(t)
	c := &collector{}
	fc := clock.NewFake(time.Unix(0, 0))
	b, _ := New(Options{MaxRecords: 100, Interval: 30 * time.Second, Deliver: c.deliver, Clock: fc})
	acked := make(chan struct{})
	if err := b.Write(ctx, recs(0, 3), func() { close(acked) }); err != nil {
		t.Fatal(err)
	}
	if err := fc.WaitForTimers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	fc.Advance(29 * time.Second)
	select {
	case <-acked:
		t.Fatal("delivered before the interval passed")
	default:
	}
	fc.Advance(time.Second)
	select {
	case <-acked:
	case <-ctx.Done():
		t.Fatal("not delivered after the interval passed")
	}
	if got := c.sizes(); fmt.Sprint(got) != "[3]" {
		t.Fatalf("batches = %v, want [3]", got)
	}
}

func TestBatchesByBytesAndABigRecordGoesAlone(t *testing.T) {
	ctx := ctx10(t)
	c := &collector{}
	b, _ := New(Options{MaxBytes: 12, Interval: time.Hour, Deliver: c.deliver, Clock: clock.NewFake(time.Unix(0, 0))})
	big := record.Record{SequenceNumber: "99", Data: make([]byte, 40)}
	in := append(recs(0, 2), big) // 5+5 bytes, then 40
	in = append(in, recs(2, 1)...)
	if err := b.Write(ctx, in, func() {}); err != nil {
		t.Fatal(err)
	}
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := c.sizes(); fmt.Sprint(got) != "[2 1 1]" {
		t.Fatalf("batch sizes = %v, want [2 1 1] (the 40-byte record alone)", got)
	}
}

func TestWriteBlocksAtMaxInFlightAndReturnsOnContextEnd(t *testing.T) {
	c := &collector{gate: make(chan struct{})}
	b, _ := New(Options{MaxRecords: 1, Interval: time.Hour, MaxInFlight: 1, Deliver: c.deliver, Clock: clock.NewFake(time.Unix(0, 0))})
	ctx := ctx10(t)
	var first atomic.Bool
	if err := b.Write(ctx, recs(0, 1), func() { first.Store(true) }); err != nil {
		t.Fatal(err)
	}
	// The only slot is busy (delivery held at the gate): the next write must wait, then give up.
	short, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- b.Write(short, recs(1, 1), func() { t.Error("a write that failed was acknowledged") }) }()
	select {
	case err := <-errc:
		t.Fatalf("write returned %v while every slot was busy", err)
	default:
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("blocked write returned %v, want context.Canceled", err)
	}
	close(c.gate)
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if !first.Load() {
		t.Fatal("first write not acknowledged after delivery")
	}
	if got := c.sizes(); fmt.Sprint(got) != "[1]" {
		t.Fatalf("delivered %v, want only the first record", got)
	}
}

func TestCloseLeavesUndeliveredBatchesUnacknowledged(t *testing.T) {
	c := &collector{gate: make(chan struct{})} // never opens: the destination is down
	b, _ := New(Options{MaxRecords: 1, Interval: time.Hour, Deliver: c.deliver, Clock: clock.NewFake(time.Unix(0, 0))})
	ctx := ctx10(t)
	if err := b.Write(ctx, recs(0, 1), func() { t.Error("acknowledged without delivery") }); err != nil {
		t.Fatal(err)
	}
	closeCtx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := b.Close(closeCtx); err == nil {
		t.Fatal("Close reported success with a batch undelivered")
	}
	if err := b.Write(ctx, recs(1, 1), func() {}); err == nil {
		t.Fatal("Write after Close succeeded")
	}
}

func TestWithoutIntervalEachWriteGoesOutTogether(t *testing.T) {
	ctx := ctx10(t)
	c := &collector{}
	b, _ := New(Options{MaxRecords: 500, Deliver: c.deliver, Clock: clock.NewFake(time.Unix(0, 0))})
	for i := 0; i < 3; i++ {
		if err := b.Write(ctx, recs(i*10, 10), func() {}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := c.sizes(); fmt.Sprint(got) != "[10 10 10]" {
		t.Fatalf("batch sizes = %v, want one batch per write", got)
	}
}

func TestFlushReturnsOnContextEndWhileEverySlotIsBusy(t *testing.T) {
	c := &collector{gate: make(chan struct{})}
	b, _ := New(Options{MaxRecords: 1, Interval: time.Hour, MaxInFlight: 1, Deliver: c.deliver, Clock: clock.NewFake(time.Unix(0, 0))})
	ctx := ctx10(t)
	if err := b.Write(ctx, recs(0, 1), func() {}); err != nil { // takes the only slot
		t.Fatal(err)
	}
	b.mu.Lock()
	b.open = &batch{records: recs(1, 1), bytes: 5}
	b.mu.Unlock()
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := b.Flush(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Flush = %v, want the context's deadline", err)
	}
	close(c.gate)
}
