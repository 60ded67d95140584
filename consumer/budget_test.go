package consumer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/shardhose/shardhose/record"
	"github.com/shardhose/shardhose/sinks"
)

func TestMemoryBudgetServesWaitersInArrivalOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := NewMemoryBudget(100, 100)
		ctx := t.Context()
		if n, err := b.acquire(ctx, 80, nil); err != nil || n != 80 {
			t.Fatalf("first acquire: %d, %v", n, err)
		}
		var order []string
		var mu sync.Mutex
		note := func(s string) { mu.Lock(); order = append(order, s); mu.Unlock() }
		go func() { _, _ = b.acquire(ctx, 50, nil); note("big") }()
		synctest.Wait()
		// 10 would fit now, but it came after the 50 that waits: it must not overtake it.
		go func() { _, _ = b.acquire(ctx, 10, nil); note("small") }()
		synctest.Wait()
		if len(order) != 0 {
			t.Fatalf("granted before anything was released: %v", order)
		}
		// Room for the 50 but then not for the 10: only the first to come is let in.
		b.release(30)
		synctest.Wait()
		if fmt.Sprint(order) != "[big]" {
			t.Fatalf("granted %v, want [big]", order)
		}
		b.release(50)
		synctest.Wait()
		if fmt.Sprint(order) != "[big small]" {
			t.Fatalf("granted in order %v, want [big small]", order)
		}
		if b.Used() != 60 {
			t.Fatalf("used %d, want 60", b.Used())
		}
	})
}

func TestMemoryBudgetWaiterThatGivesUpHoldsNothingAndBlocksNoOne(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := NewMemoryBudget(100, 100)
		if _, err := b.acquire(t.Context(), 100, nil); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		errc := make(chan error, 1)
		go func() { _, err := b.acquire(ctx, 60, nil); errc <- err }()
		granted := make(chan struct{})
		go func() { _, _ = b.acquire(t.Context(), 30, nil); close(granted) }()
		synctest.Wait()
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled acquire returned %v", err)
		}
		b.release(50)
		synctest.Wait()
		select {
		case <-granted:
		default:
			t.Fatal("the waiter behind a cancelled one was not granted")
		}
		if b.Used() != 80 {
			t.Fatalf("used %d, want 80 (50 left + 30 granted; the cancelled 60 holds nothing)", b.Used())
		}
	})
}

func TestMemoryBudgetPressureSignalledWhenAReadWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := NewMemoryBudget(10, 10)
		if _, err := b.acquire(t.Context(), 10, nil); err != nil {
			t.Fatal(err)
		}
		select {
		case <-b.Pressure():
			t.Fatal("pressure signalled while nothing waited")
		default:
		}
		var waits atomic.Int32
		go func() {
			_, _ = b.acquire(t.Context(), 5, func(on bool) {
				if on {
					waits.Add(1)
				}
			})
		}()
		synctest.Wait()
		select {
		case <-b.Pressure():
		default:
			t.Fatal("no pressure signalled while a read waits")
		}
		if waits.Load() != 1 {
			t.Fatalf("the waiting reader was told %d times that it waits, want 1", waits.Load())
		}
		b.release(10)
	})
}

func TestShardAccountSizesReadsToTheBudget(t *testing.T) {
	b := NewMemoryBudget(1<<20, 64<<10)
	a := newShardAccount(b)
	ctx := t.Context()
	for _, c := range []struct {
		average     float64
		wantReserve int64
		wantLimit   int32
	}{
		{0, 64 << 10, 1},         // nothing read yet: as many 1 MiB records as fit, at least 1
		{1024, 64 << 10, 64},     // 10,000 records of 1 KiB would not fit in 64 KiB: 64 of them
		{4, 40001, 10000},        // tiny records: all 10,000, reserving what they need
		{1 << 20, 64 << 10, 1},   // records larger than a read's share: one at a time
		{100 << 10, 64 << 10, 1}, // ditto
		{1000.5, 64 << 10, 65},   // rounds down
	} {
		got, limit, err := a.reserve(ctx, 10000, c.average, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got != c.wantReserve || limit != c.wantLimit {
			t.Errorf("average %v: reserved %d with limit %d, want %d with limit %d", c.average, got, limit, c.wantReserve, c.wantLimit)
		}
		a.settle(got, 0)
	}
	if a.holding() != 0 || b.Used() != 0 {
		t.Fatalf("after settling every read at 0: account holds %d, budget %d", a.holding(), b.Used())
	}
}

func TestShardAccountSettlesReturnsAndCloses(t *testing.T) {
	b := NewMemoryBudget(1000, 500)
	a := newShardAccount(b)
	got, _, err := a.reserve(t.Context(), 10, 0, nil)
	if err != nil || got != 500 {
		t.Fatalf("reserve: %d, %v", got, err)
	}
	a.settle(got, 700) // a read larger than reserved is let in over the reservation
	if a.holding() != 700 || b.Used() != 700 {
		t.Fatalf("after settling 700: account %d, budget %d", a.holding(), b.Used())
	}
	a.give(200)
	if a.holding() != 500 || b.Used() != 500 {
		t.Fatalf("after giving 200: account %d, budget %d", a.holding(), b.Used())
	}
	a.close()
	if a.holding() != 0 || b.Used() != 0 {
		t.Fatalf("after close: account %d, budget %d", a.holding(), b.Used())
	}
	// What comes back after the worker ended (a late ack) returns nothing twice.
	other := newShardAccount(b)
	if _, _, err := other.reserve(t.Context(), 10, 0, nil); err != nil {
		t.Fatal(err)
	}
	a.give(300)
	if b.Used() != 500 {
		t.Fatalf("a give after close changed the budget: %d, want 500 (the other shard's)", b.Used())
	}
	if _, _, err := a.reserve(t.Context(), 10, 0, nil); !errors.Is(err, errAccountClosed) {
		t.Fatalf("reserve after close: %v", err)
	}
	if b.Used() != 500 {
		t.Fatalf("a refused reserve kept %d bytes", b.Used()-500)
	}
}

// budgetWatchSink acknowledges nothing until flushed or until its interval passes (like an S3
// sink with a 300 s interval and a size hint no partition reaches), and notes the most the memory
// budget held at any write.
type budgetWatchSink struct {
	bufferingSink
	budget  *MemoryBudget
	maxUsed atomic.Int64
	got     sync.Map // sequence number → times written
}

func (s *budgetWatchSink) Write(ctx context.Context, recs []record.Record, done func()) error {
	for {
		used := s.budget.Used()
		if old := s.maxUsed.Load(); used <= old || s.maxUsed.CompareAndSwap(old, used) {
			break
		}
	}
	for _, r := range recs {
		n, _ := s.got.LoadOrStore(r.SequenceNumber, new(atomic.Int32))
		n.(*atomic.Int32).Add(1)
	}
	return s.bufferingSink.Write(ctx, recs, done)
}

// TestMemoryBudgetBoundsManyShardsAndFlushesBuffersThatHoldIt: 300 shards of 400 records each
// share a budget of 2,000 bytes (reads of at most 500) in front of a sink that holds everything
// for 300 s. Reading must never hold more than the budget, the sink must be flushed once reads
// wait on it (not 300 s later), and every record must arrive and be checkpointed.
func TestMemoryBudgetBoundsManyShardsAndFlushesBuffersThatHoldIt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const shards, perShard = 300, 400
		st := &memStream{}
		for i := range shards {
			id := fmt.Sprintf("shard-%04d", i)
			st.addShard(id)
			st.put(id, perShard) // 1-byte records
		}
		m := newMemLeases()
		budget := NewMemoryBudget(2000, 500)
		sink := &budgetWatchSink{bufferingSink: bufferingSink{interval: 300 * time.Second}, budget: budget}
		opts := leaseTestOptions("a", st, m)
		opts.Sinks = []sinks.Sink{sink}
		opts.Memory = budget
		opts.Batching.MaxInFlightRecords = 100000
		a := runConsumer(t, opts)
		took := withinVirtual(t, 120*time.Second, "every shard checkpointed at its last record", func() bool {
			for i := range shards {
				id := fmt.Sprintf("shard-%04d", i)
				if l, _ := m.get(id); l.Checkpoint.SequenceNumber != st.lastSeq(id) {
					return false
				}
			}
			return true
		})
		t.Logf("%d records of %d shards delivered and checkpointed in %s of virtual time; budget held at most %d bytes",
			shards*perShard, shards, took, sink.maxUsed.Load())
		// Every read of 1-byte records fits its reservation, so nothing goes over the limit.
		if max := sink.maxUsed.Load(); max > budget.Limit() {
			t.Errorf("the budget held %d bytes, more than its limit %d", max, budget.Limit())
		}
		sink.mu.Lock()
		flushes := sink.flushes
		sink.mu.Unlock()
		if flushes == 0 {
			t.Error("the sink was never flushed although reads waited on what it held")
		}
		n := 0
		sink.got.Range(func(_, _ any) bool { n++; return true })
		if n != shards*perShard {
			t.Errorf("%d records never reached the sink", shards*perShard-n)
		}
		a.stop(t)
		if used := budget.Used(); used != 0 {
			t.Errorf("after the drain the budget still counts %d bytes held", used)
		}
	})
}

// downSink takes records and never acknowledges them: a destination that is down. Flush waits
// for delivery, so it returns only with ctx's error.
type downSink struct{ writes atomic.Int64 }

func (s *downSink) Name() string { return "down" }
func (s *downSink) Write(_ context.Context, recs []record.Record, _ func()) error {
	s.writes.Add(int64(len(recs)))
	return nil
}
func (s *downSink) Flush(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
func (s *downSink) Close(ctx context.Context) error { return nil }

// countingStream counts GetRecords calls and the records they returned.
type countingStream struct {
	*memStream
	calls, records atomic.Int64
}

func (c *countingStream) GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, o ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	out, err := c.memStream.GetRecords(ctx, in, o...)
	c.calls.Add(1)
	if out != nil {
		c.records.Add(int64(len(out.Records)))
	}
	return out, err
}

// TestMemoryBudgetHoldsDuringASinkOutage: with the only sink down, 256 shards stop reading once
// the budget is full, whatever the per-shard cap allows, and stay stopped: what is read and held
// never passes the budget, however long the outage lasts.
func TestMemoryBudgetHoldsDuringASinkOutage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const shards = 256
		st := &memStream{}
		for i := range shards {
			id := fmt.Sprintf("shard-%04d", i)
			st.addShard(id)
			st.put(id, 1000)
		}
		cs := &countingStream{memStream: st}
		m := newMemLeases()
		budget := NewMemoryBudget(10000, 500)
		sink := &downSink{}
		opts := leaseTestOptions("a", st, m)
		opts.Kinesis = cs
		opts.Sinks = []sinks.Sink{sink}
		opts.Memory = budget
		opts.Batching.MaxInFlightRecords = 100000
		a := runConsumer(t, opts)
		withinVirtual(t, 30*time.Second, "all shards held", func() bool { return len(a.c.Held()) == shards })
		// Let the outage last: many poll intervals and pressure flushes.
		time.Sleep(2 * time.Minute)
		read := cs.records.Load()
		if read > budget.Limit() { // 1-byte records: records read = bytes held
			t.Errorf("read %d bytes during the outage, more than the budget of %d", read, budget.Limit())
		}
		if read == 0 {
			t.Fatal("nothing was read")
		}
		if used := budget.Used(); used > budget.Limit() {
			t.Errorf("the budget counts %d bytes held, more than its limit %d", used, budget.Limit())
		}
		calls := cs.calls.Load()
		time.Sleep(time.Minute)
		if more := cs.calls.Load() - calls; more != 0 {
			t.Errorf("%d more GetRecords calls in a minute of the outage with the budget full; reading should wait for room", more)
		}
		if got := sink.writes.Load(); got != read {
			t.Errorf("the sink got %d records of the %d read", got, read)
		}
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		var de *DrainError
		if err := a.c.Shutdown(ctx); !errors.As(err, &de) {
			t.Errorf("shutdown during the outage returned %v, want a DrainError naming what was left", err)
		}
		<-a.done
		for i := range shards {
			if l, _ := m.get(fmt.Sprintf("shard-%04d", i)); !l.Checkpoint.IsZero() {
				t.Fatalf("shard %d checkpointed at %s although nothing was acknowledged", i, l.Checkpoint)
			}
		}
	})
}
