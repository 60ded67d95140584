package batcher

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
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

// Flush runs while other goroutines keep writing (as when one shard is handed off while the
// others go on): it must neither panic nor wait for batches sealed after it was called. This is
// the load that crashed the sink with "WaitGroup is reused before previous Wait has returned".
func TestFlushConcurrentWithWrites(t *testing.T) {
	t.Run("4 writers", func(t *testing.T) { flushConcurrentWithWrites(t, 4, 500) })
	t.Run("256 writers", func(t *testing.T) { flushConcurrentWithWrites(t, 256, 20) }) // hundreds of shards
}

// flushConcurrentWithWrites runs Flushes with a 50 ms deadline while writers each hand on
// perWrite records at a time, into 500-record batches closed after 1 s.
func flushConcurrentWithWrites(t *testing.T, writers, perWrite int) {
	// A bound on the whole test, not a wait: it takes well under a second on an idle machine.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	deliver := func(ctx context.Context, b []record.Record) error {
		select { // a destination that takes a little while
		case <-time.After(time.Millisecond):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	b, err := New(Options{MaxRecords: 500, Interval: time.Second, MaxInFlight: 4, Deliver: deliver})
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var running sync.WaitGroup
	var acked, written atomic.Int64
	errs := make(chan error, writers)
	for w := range writers {
		running.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if err := b.Write(ctx, recs(w*1_000_000+i*perWrite, perWrite), func() { acked.Add(1) }); err != nil {
					errs <- fmt.Errorf("writer %d: %w", w, err)
					return
				}
				written.Add(1)
			}
		})
	}
	stopWriters := sync.OnceFunc(func() { close(stop); running.Wait() })
	defer stopWriters() // on failure too: no writer outlives the test

	flushes, timedOut := 0, 0
	for flushes < 20 || written.Load() < int64(max(100, 8*writers)) { // both going on at once, for a while
		if ctx.Err() != nil {
			t.Fatalf("after %d flushes, %d writes: %v", flushes, written.Load(), ctx.Err())
		}
		short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		err := b.Flush(short)
		cancel()
		switch {
		case err == nil:
		case errors.Is(err, context.DeadlineExceeded):
			timedOut++
		default:
			t.Fatalf("Flush: %v", err)
		}
		flushes++
	}
	stopWriters()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := b.Flush(ctx); err != nil {
		t.Fatalf("final Flush: %v", err)
	}
	if acked.Load() != written.Load() {
		t.Fatalf("%d writes acknowledged after the final Flush, want all %d", acked.Load(), written.Load())
	}
	t.Logf("%d flushes (%d timed out) during %d writes", flushes, timedOut, written.Load())
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// Flush waits for what was buffered when it was called, not for batches sealed after it.
func TestFlushDoesNotWaitForLaterBatches(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		gates := map[string]chan struct{}{"first": make(chan struct{}), "later": make(chan struct{})}
		deliver := func(ctx context.Context, batch []record.Record) error {
			select {
			case <-gates[string(batch[0].Data)]:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		b, _ := New(Options{MaxRecords: 1, Interval: time.Hour, MaxInFlight: 2, Deliver: deliver, Clock: clock.NewFake(time.Unix(0, 0))})
		t.Cleanup(func() { // on failure too: end every goroutine of the bubble
			cancelled, cancel := context.WithCancel(context.Background())
			cancel()
			_ = b.Close(cancelled)
		})
		if err := b.Write(ctx, []record.Record{{Data: []byte("first")}}, func() {}); err != nil {
			t.Fatal(err)
		}
		flushed := make(chan error, 1)
		go func() { flushed <- b.Flush(ctx) }()
		synctest.Wait() // Flush is waiting for "first"
		if err := b.Write(ctx, []record.Record{{Data: []byte("later")}}, func() {}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		select {
		case err := <-flushed:
			t.Fatalf("Flush returned %v while the batch buffered before it was still being delivered", err)
		default:
		}
		close(gates["first"])
		synctest.Wait()
		select {
		case err := <-flushed:
			if err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatal("Flush still waiting after the batch buffered before it was delivered: it waits for a batch sealed after it was called")
		}
		close(gates["later"])
	})
}

// A Flush whose context ends leaves no goroutine behind.
func TestFlushThatTimesOutLeavesNoGoroutine(t *testing.T) {
	ctx := ctx10(t)
	c := &collector{gate: make(chan struct{})}
	b, _ := New(Options{MaxRecords: 1, Interval: time.Hour, MaxInFlight: 1, Deliver: c.deliver, Clock: clock.NewFake(time.Unix(0, 0))})
	if err := b.Write(ctx, recs(0, 1), func() {}); err != nil { // its delivery is held
		t.Fatal(err)
	}
	before := runtime.NumGoroutine()
	for range 20 {
		short, cancel := context.WithTimeout(ctx, time.Millisecond)
		if err := b.Flush(short); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Flush = %v, want the context's deadline", err)
		}
		cancel()
	}
	// Goroutines that are ending may take a moment to go; wait for the count to settle.
	settled := time.NewTimer(2 * time.Second)
	defer settled.Stop()
	for runtime.NumGoroutine() > before {
		select {
		case <-settled.C:
			t.Fatalf("%d goroutines after 20 timed-out Flushes, %d before: each left one behind", runtime.NumGoroutine(), before)
		case <-time.After(10 * time.Millisecond):
		}
	}
	close(c.gate)
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
}
