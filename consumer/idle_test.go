package consumer

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/shardhose/shardhose/internal/clock"
	"github.com/shardhose/shardhose/record"
)

// quietShard answers GetRecords with nothing, or with the records queued by add, and notes the
// clock's time of every call.
type quietShard struct {
	KinesisAPI
	clk    clock.Clock
	behind int64

	mu     sync.Mutex
	queued int
	seq    int
	calls  []time.Time
}

func (q *quietShard) GetShardIterator(context.Context, *kinesis.GetShardIteratorInput, ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error) {
	return &kinesis.GetShardIteratorOutput{ShardIterator: aws.String("it")}, nil
}

func (q *quietShard) GetRecords(context.Context, *kinesis.GetRecordsInput, ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.calls = append(q.calls, q.clk.Now())
	out := &kinesis.GetRecordsOutput{NextShardIterator: aws.String("it"), MillisBehindLatest: aws.Int64(q.behind), Records: []types.Record{}}
	for ; q.queued > 0; q.queued-- {
		q.seq++
		out.Records = append(out.Records, types.Record{SequenceNumber: aws.String(string(rune('a' + q.seq))), Data: []byte("x"), PartitionKey: aws.String("k")})
	}
	return out, nil
}

func (q *quietShard) add(n int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.queued += n
}

func (q *quietShard) callCount() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.calls)
}

// gaps runs r against q on clk until q has seen calls reads, moving the fake clock in 100 ms
// steps only while the reader waits, and returns the time between consecutive reads. before,
// when set, runs before the read with that index (from 1).
func gaps(t *testing.T, r *shardReader, q *quietShard, clk *clock.Fake, calls int, before map[int]func()) []time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = r.run(ctx, startPosition{iteratorType: types.ShardIteratorTypeTrimHorizon}, func(context.Context, []record.Record) error { return nil })
	}()
	for q.callCount() < calls {
		if err := clk.WaitForTimers(ctx, 1); err != nil {
			t.Fatalf("the reader did not wait for its next read: %v", err)
		}
		if fn := before[q.callCount()]; fn != nil {
			fn()
			delete(before, q.callCount())
		}
		clk.Advance(100 * time.Millisecond)
	}
	cancel()
	<-done
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []time.Duration
	for i := 1; i < calls; i++ {
		out = append(out, q.calls[i].Sub(q.calls[i-1]))
	}
	return out
}

func equalDurations(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestQuietShardBacksOffAndTheFirstRecordResets: empty reads of a caught-up shard double the
// wait from poll_interval up to max_idle_poll_interval; a read that returns a record goes back
// to poll_interval, and the doubling starts over.
func TestQuietShardBacksOffAndTheFirstRecordResets(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	q := &quietShard{clk: clk}
	r := testReader(q, "s")
	r.clock = clk
	r.maxIdlePoll = 5 * time.Second
	// Reads 1 to 6 are empty; a record arrives before read 7; reads 8 on are empty again.
	got := gaps(t, r, q, clk, 10, map[int]func(){6: func() { q.add(1) }})
	s := time.Second
	want := []time.Duration{1 * s, 2 * s, 4 * s, 5 * s, 5 * s, 5 * s, 1 * s, 1 * s, 2 * s}
	if !equalDurations(got, want) {
		t.Fatalf("waits between reads %v, want %v", got, want)
	}
}

// TestNoBackOffWhileBehindOrHoldingABatch: an empty read while Kinesis reports the reader behind
// (a gap in the shard), or while records wait in an open batching window, is followed by the
// next read after poll_interval, not a longer wait.
func TestNoBackOffWhileBehindOrHoldingABatch(t *testing.T) {
	for _, c := range []struct {
		name    string
		behind  int64
		pending bool
	}{{"behind", 5000, false}, {"batch pending", 0, true}} {
		t.Run(c.name, func(t *testing.T) {
			clk := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
			q := &quietShard{clk: clk, behind: c.behind}
			r := testReader(q, "s")
			r.clock = clk
			r.maxIdlePoll = 5 * time.Second
			r.pending = func() bool { return c.pending }
			got := gaps(t, r, q, clk, 5, nil)
			want := []time.Duration{time.Second, time.Second, time.Second, time.Second}
			if !equalDurations(got, want) {
				t.Fatalf("waits between reads %v, want %v", got, want)
			}
		})
	}
}

// TestIdleWaitBounds: with max_idle_poll_interval at or below poll_interval there is no back-off.
func TestIdleWaitBounds(t *testing.T) {
	r := &shardReader{pollInterval: time.Second, maxIdlePoll: 500 * time.Millisecond}
	for n := 1; n < 70; n++ {
		if w := r.idleWait(n); w != time.Second {
			t.Fatalf("idle wait %d with max below poll_interval: %s, want 1s", n, w)
		}
	}
	r.maxIdlePoll = 4 * time.Minute
	if w := r.idleWait(200); w != 4*time.Minute {
		t.Fatalf("idle wait after 200 empty reads: %s, want the 4m bound", w)
	}
}

// TestShardSyncWritesOnlyNewShards: once the lease table shows a shard's row, later shard syncs
// do not write it again (a conditional write that finds the row is still a paid request); a
// shard that appears later gets its row at the next sync.
func TestShardSyncWritesOnlyNewShards(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &memStream{}
		m := newMemLeases()
		for i := range 4 {
			st.addShard(fmt.Sprintf("shard-%d", i))
		}
		a := runConsumer(t, leaseTestOptions("a", st, m))
		withinVirtual(t, vRenewInterval, "one worker holds all 4 leases", func() bool { return m.owners()["a"] == 4 })
		time.Sleep(5 * vShardSync) // several more shard syncs
		synctest.Wait()
		m.mu.Lock()
		creates := m.creates
		m.mu.Unlock()
		if creates != 4 {
			t.Fatalf("%d CreateIfAbsent calls over several shard syncs of 4 shards, want 4 (one per shard)", creates)
		}
		st.addShard("shard-4")
		withinVirtual(t, 2*vShardSync, "the new shard's lease is held", func() bool { return m.owners()["a"] == 5 })
		a.stop(t)
	})
}
