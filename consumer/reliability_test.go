package consumer

// Regression tests of the lease loop and the graceful stop under stress: many leases lost at
// once, a processing stage that writes to the sinks after a drain or hand-off began, batches
// held up by backpressure past the lease's trust window. All run in synctest bubbles (virtual
// time), against the in-memory lease table and stream of leases_test.go.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/shardhose/shardhose/checkpoint"
	"github.com/shardhose/shardhose/record"
	"github.com/shardhose/shardhose/sinks"
)

// steal makes thief the owner of every open lease, bumping each counter as a Take does: what
// the table looks like after another worker took every lease while this one was paused.
func (m *memLeases) steal(thief string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, l := range m.rows {
		if l.ShardEnd {
			continue
		}
		l.Owner, l.ClaimRequest = thief, ""
		l.Counter++
		m.rows[id] = l
	}
}

// manyShards returns a stream of n shards (shard-0000 ...) with 2 records each, and an empty
// lease table.
func manyShards(n int) (*memStream, *memLeases) {
	st := &memStream{}
	for i := range n {
		id := fmt.Sprintf("shard-%04d", i)
		st.addShard(id)
		st.put(id, 2)
	}
	return st, newMemLeases()
}

// TestMassLeaseLossDoesNotWedgeTheLeaseLoop: every lease of a worker is taken by another at
// once (as after a long GC or VM pause). Each shard must stop within a renewal pass or two, and
// the worker must go on renewing and balancing: it takes the leases back once the thief's have
// expired, and drains cleanly. Far more shards than the lease loop's event buffer ever held.
func TestMassLeaseLossDoesNotWedgeTheLeaseLoop(t *testing.T) {
	for _, shards := range []int{70, 500} {
		t.Run(fmt.Sprintf("%d shards", shards), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				st, m := manyShards(shards)
				ev := &leaseEvents{}
				opts := leaseTestOptions("a", st, m)
				opts.Stream.PollInterval = time.Second
				opts.Hooks = append(opts.Hooks, ev)
				a := runConsumer(t, opts)
				withinVirtual(t, 2*vRenewInterval, "all leases taken", func() bool { return len(a.c.Held()) == shards })
				// Every shard read and checkpointed: from now on only renewals write to the table,
				// so they are what finds the leases lost.
				withinVirtual(t, 3*vRenewInterval, "all shards checkpointed", func() bool {
					for i := range shards {
						id := fmt.Sprintf("shard-%04d", i)
						if l, _ := m.get(id); l.Checkpoint.SequenceNumber != st.lastSeq(id) {
							return false
						}
					}
					return true
				})

				m.steal("thief")
				took := withinVirtual(t, 3*vRenewInterval, "every shard stopped after its lease was stolen", func() bool {
					return len(a.c.Held()) == 0
				})
				t.Logf("%d shards stopped %s after their leases were stolen", shards, took)
				if _, losses := ev.snapshot(); len(losses) != shards {
					t.Errorf("%d leases reported lost, want %d", len(losses), shards)
				}
				// The thief never renews: its leases expire and this worker takes them back, which
				// only a lease loop that still runs does.
				withinVirtual(t, vLeaseDuration+3*vRenewInterval, "the leases taken back", func() bool {
					return m.owners()["a"] == shards
				})
				a.stop(t)
			})
		})
	}
}

// bufferingSink holds what it is given until Flush, or until its buffering interval passes,
// like the S3 and HTTP sinks with their default 300 s interval.
type bufferingSink struct {
	interval time.Duration
	mu       sync.Mutex
	held     []func()
	records  int
	flushes  int
}

var _ sinks.Sink = (*bufferingSink)(nil)

func (s *bufferingSink) Name() string { return "buffering" }

func (s *bufferingSink) Write(_ context.Context, recs []record.Record, done func()) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.held) == 0 {
		time.AfterFunc(s.interval, func() { s.deliver() })
	}
	s.held = append(s.held, done)
	s.records += len(recs)
	return nil
}

func (s *bufferingSink) deliver() {
	s.mu.Lock()
	held := s.held
	s.held = nil
	s.mu.Unlock()
	for _, done := range held {
		done()
	}
}

func (s *bufferingSink) Flush(context.Context) error {
	s.mu.Lock()
	s.flushes++
	s.mu.Unlock()
	s.deliver()
	return nil
}

func (s *bufferingSink) Close(ctx context.Context) error { return s.Flush(ctx) }

// slowStage is a processing stage: it takes batches at once and writes them to its sinks only
// when release is closed (a handler still working when the drain begins).
type slowStage struct {
	sinks    []sinks.Sink
	release  chan struct{}
	received chan struct{} // closed when the first batch arrives
	once     sync.Once
}

func (p *slowStage) Handle(_ context.Context, batch []record.Record, done func()) error {
	p.once.Do(func() { close(p.received) })
	go func() {
		<-p.release
		_ = WriteToSinks(context.Background(), p.sinks, batch, done)
	}()
	return nil
}

func (p *slowStage) Close() {}

// runWithSlowStage starts a worker on one shard of 5 records whose pipeline is a slowStage in
// front of a bufferingSink with a 300 s interval, and returns once the stage holds the batch.
func runWithSlowStage(t *testing.T) (*memStream, *memLeases, *slowStage, *runningConsumer) {
	st := &memStream{}
	st.addShard("shard-0")
	st.put("shard-0", 5)
	m := newMemLeases()
	sink := &bufferingSink{interval: 300 * time.Second}
	stage := &slowStage{sinks: []sinks.Sink{sink}, release: make(chan struct{}), received: make(chan struct{})}
	opts := leaseTestOptions("a", st, m)
	opts.Sinks = []sinks.Sink{sink}
	opts.NewPipeline = func(context.Context, string) Pipeline { return stage }
	a := runConsumer(t, opts)
	<-stage.received
	synctest.Wait()
	return st, m, stage, a
}

// TestDrainFlushesWhatTheProcessingStageWritesAfterItBegan: records a processing stage writes
// to a buffering sink 300 ms into the drain must be flushed and checkpointed by that drain, not
// wait for the sink's 300 s interval past the drain deadline.
func TestDrainFlushesWhatTheProcessingStageWritesAfterItBegan(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, m, stage, a := runWithSlowStage(t)

		const drainTimeout = 10 * time.Second
		began := time.Now()
		time.AfterFunc(300*time.Millisecond, func() { close(stage.release) })
		ctx, cancel := context.WithTimeout(t.Context(), drainTimeout)
		defer cancel()
		if err := a.c.Shutdown(ctx); err != nil {
			t.Fatalf("shutdown: %v", err)
		}
		<-a.done
		took := time.Since(began)
		t.Logf("drained %s after it began (records ready after 300ms, drain timeout %s)", took, drainTimeout)
		if took > drainTimeout/2 {
			t.Errorf("the drain took %s, want it to end soon after the stage wrote its records", took)
		}
		if l, _ := m.get("shard-0"); l.Owner != "" || l.Checkpoint.SequenceNumber != st.lastSeq("shard-0") {
			t.Errorf("after the drain: owner %q checkpoint %s, want released at %s", l.Owner, l.Checkpoint, st.lastSeq("shard-0"))
		}
	})
}

// TestHandOffFlushesWhatTheProcessingStageWritesAfterItBegan: the same for a hand-off to a
// worker that claimed the lease: the shard is released at its last record soon after the stage
// writes, not after a lease duration with its records undelivered.
func TestHandOffFlushesWhatTheProcessingStageWritesAfterItBegan(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, m, stage, a := runWithSlowStage(t)

		l, _ := m.get("shard-0")
		if err := m.as("b").Claim(t.Context(), l); err != nil {
			t.Fatal(err)
		}
		claimed := time.Now()
		// The owner sees the claim at its next renewal; the stage writes 300 ms after that.
		withinVirtual(t, 2*vRenewInterval, "hand-off begun", func() bool {
			a.c.mu.Lock()
			defer a.c.mu.Unlock()
			w := a.c.workers["shard-0"]
			if w == nil {
				return true
			}
			w.stateMu.Lock()
			defer w.stateMu.Unlock()
			return w.handing
		})
		time.Sleep(300 * time.Millisecond)
		close(stage.release)
		took := withinVirtual(t, vLeaseDuration, "lease released", func() bool { l, _ := m.get("shard-0"); return l.Owner == "" })
		t.Logf("released %s after the stage wrote (%s after the claim)", took, time.Since(claimed))
		if took >= vLeaseDuration/2 {
			t.Errorf("released %s after the stage wrote its records, want soon after", took)
		}
		if l, _ := m.get("shard-0"); l.Checkpoint.SequenceNumber != st.lastSeq("shard-0") {
			t.Errorf("released at checkpoint %s, want %s (every record delivered)", l.Checkpoint, st.lastSeq("shard-0"))
		}
		a.stop(t)
	})
}

// downTable is a lease table that can be made to fail every call, as when DynamoDB cannot be
// reached.
type downTable struct {
	LeaseTable
	mu   sync.Mutex
	down bool
	// frozen makes every call hang until its context ends or thaw is closed, as calls do
	// while DynamoDB is stopped (SIGSTOP) or a network partition swallows the packets.
	frozen bool
	thaw   chan struct{}
}

func (d *downTable) freeze() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.frozen, d.thaw = true, make(chan struct{})
}

func (d *downTable) unfreeze() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.frozen {
		d.frozen = false
		close(d.thaw)
	}
}

var errUnreachable = errors.New("dial tcp 127.0.0.1:8000: connect: connection refused")

func (d *downTable) setDown(v bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.down = v
}

func (d *downTable) err(ctx context.Context) error {
	d.mu.Lock()
	frozen, thaw := d.frozen, d.thaw
	down := d.down
	d.mu.Unlock()
	if frozen {
		select {
		case <-ctx.Done():
			return fmt.Errorf("operation error DynamoDB: UpdateItem, %w", ctx.Err())
		case <-thaw:
		}
	}
	if down {
		return errUnreachable
	}
	return nil
}

func (d *downTable) List(ctx context.Context) ([]checkpoint.Lease, error) {
	if err := d.err(ctx); err != nil {
		return nil, err
	}
	return d.LeaseTable.List(ctx)
}

func (d *downTable) CreateIfAbsent(ctx context.Context, id string, parents []string) error {
	if err := d.err(ctx); err != nil {
		return err
	}
	return d.LeaseTable.CreateIfAbsent(ctx, id, parents)
}

func (d *downTable) Take(ctx context.Context, seen checkpoint.Lease) (checkpoint.Lease, error) {
	if err := d.err(ctx); err != nil {
		return checkpoint.Lease{}, err
	}
	return d.LeaseTable.Take(ctx, seen)
}

func (d *downTable) Renew(ctx context.Context, held checkpoint.Lease) (checkpoint.Lease, error) {
	if err := d.err(ctx); err != nil {
		return checkpoint.Lease{}, err
	}
	return d.LeaseTable.Renew(ctx, held)
}

func (d *downTable) CheckpointDelivered(ctx context.Context, held checkpoint.Lease, pos record.Position, shardEnd bool, delivered map[string]record.Position) (checkpoint.Lease, error) {
	if err := d.err(ctx); err != nil {
		return checkpoint.Lease{}, err
	}
	return d.LeaseTable.CheckpointDelivered(ctx, held, pos, shardEnd, delivered)
}

func (d *downTable) Release(ctx context.Context, held checkpoint.Lease) error {
	if err := d.err(ctx); err != nil {
		return err
	}
	return d.LeaseTable.Release(ctx, held)
}

// gatedPipeline blocks every Handle (backpressure: a full lane) until gate is closed, then
// takes the batch and delivers it at once. It notes when it took each batch.
type gatedPipeline struct {
	gate    chan struct{}
	mu      *sync.Mutex
	handled *[]time.Time
}

func (p gatedPipeline) Handle(ctx context.Context, _ []record.Record, done func()) error {
	select {
	case <-p.gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	p.mu.Lock()
	*p.handled = append(*p.handled, time.Now())
	p.mu.Unlock()
	done()
	return nil
}

func (gatedPipeline) Close() {}

// gatedRun is a worker on one shard of 5 records, with a gatedPipeline and a downTable.
type gatedRun struct {
	st      *memStream
	m       *memLeases
	table   *downTable
	gate    chan struct{}
	mu      sync.Mutex
	handled []time.Time
	a       *runningConsumer
}

// runGated starts a gatedRun on a shard of 10 records (with its options changed by opt, when
// given) and returns once the worker holds the lease and its reader waits (in Handle, with the
// gatedPipeline).
func runGated(t *testing.T, opt func(*Options, *gatedRun)) *gatedRun {
	g := &gatedRun{st: &memStream{}, m: newMemLeases(), gate: make(chan struct{})}
	g.st.addShard("shard-0")
	g.st.put("shard-0", 10)
	g.table = &downTable{LeaseTable: g.m.as("a")}
	opts := leaseTestOptions("a", g.st, g.m)
	opts.Table = g.table
	opts.NewPipeline = func(context.Context, string) Pipeline {
		return gatedPipeline{gate: g.gate, mu: &g.mu, handled: &g.handled}
	}
	if opt != nil {
		opt(&opts, g)
	}
	g.a = runConsumer(t, opts)
	withinVirtual(t, 2*vRenewInterval, "lease taken", func() bool { l, _ := g.m.get("shard-0"); return l.Owner == "a" })
	synctest.Wait() // the reader waits in Handle
	return g
}

// checkNothingHandedOnAfter fails the test for every batch the pipeline took a lease duration
// or more after lastExtended (the last moment the lease could have been extended).
func (g *gatedRun) checkNothingHandedOnAfter(t *testing.T, lastExtended time.Time) {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, at := range g.handled {
		if late := at.Sub(lastExtended); late >= vLeaseDuration {
			t.Errorf("a batch was handed on %s after the lease was last extended (lease duration %s)", late, vLeaseDuration)
		}
	}
}

// checkReadAgain brings the table back and waits for the shard to be taken again and every
// record delivered from the checkpoint, then stops the worker.
func (g *gatedRun) checkReadAgain(t *testing.T) {
	t.Helper()
	g.table.setDown(false)
	withinVirtual(t, 3*vRenewInterval, "read again and delivered", func() bool {
		l, _ := g.m.get("shard-0")
		return l.Owner == "a" && l.Checkpoint.SequenceNumber == g.st.lastSeq("shard-0")
	})
	g.a.stop(t)
}

// TestBatchBlockedPastTheTrustWindowIsNotHandedOn: a batch that waits in Handle (backpressure)
// while the lease cannot be renewed must not be handed on once the lease's trust window has
// ended, even though it was trusted when the wait began; once the table is back, the shard is
// taken again and the records delivered from the checkpoint.
func TestBatchBlockedPastTheTrustWindowIsNotHandedOn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := runGated(t, nil)
		g.table.setDown(true)
		lastExtended := time.Now()

		time.Sleep(vLeaseDuration + vRenewInterval)
		close(g.gate) // the pipeline has room again, after the trust window
		synctest.Wait()
		g.checkNothingHandedOnAfter(t, lastExtended)
		g.checkReadAgain(t)
	})
}

// TestFrozenTableDoesNotHoldUpTheLeaseLoopWithManyLeases: with the lease table frozen, a
// renewal pass over 500 leases must end within one call timeout, not take each renewal's timeout
// in turn, so that the loop goes on handling events and a stop begins at once. Every lease is
// given up as unreachable, and the drain ends within its deadline.
func TestFrozenTableDoesNotHoldUpTheLeaseLoopWithManyLeases(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const shards = 500
		st, m := manyShards(shards)
		table := &downTable{LeaseTable: m.as("a")}
		ev := &leaseEvents{}
		opts := leaseTestOptions("a", st, m)
		opts.Stream.PollInterval = time.Second
		opts.Table = table
		opts.Hooks = append(opts.Hooks, ev)
		a := runConsumer(t, opts)
		withinVirtual(t, 2*vRenewInterval, "all leases taken", func() bool { return len(a.c.Held()) == shards })

		table.freeze()
		defer table.unfreeze()
		frozen := time.Now()
		// Records come in once the trust window has ended, so every shard's reader finds its
		// lease untrusted.
		time.Sleep(vLeaseDuration)
		for i := range shards {
			st.put(fmt.Sprintf("shard-%04d", i), 1)
		}
		withinVirtual(t, 3*vRenewInterval, "every shard stopped", func() bool { return len(a.c.Held()) == 0 })
		took := time.Since(frozen)
		t.Logf("%d shards stopped %s after the table froze", shards, took)
		_, losses := ev.snapshot()
		for _, l := range losses {
			if !strings.HasSuffix(l, ": lease table unreachable") {
				t.Errorf("lease given up as %q, want unreachable", l)
				break
			}
		}

		began := time.Now()
		const drainTimeout = 10 * time.Second
		ctx, cancel := context.WithTimeout(t.Context(), drainTimeout)
		defer cancel()
		_ = a.c.Shutdown(ctx)
		<-a.done
		if stopped := time.Since(began); stopped > drainTimeout {
			t.Errorf("the stop took %s, longer than its drain timeout %s", stopped, drainTimeout)
		}
	})
}

// lateAckPipeline takes every batch at once and finishes them all when gate is closed (a sink
// that acknowledges late). It notes when it took each batch.
type lateAckPipeline struct {
	gate    chan struct{}
	mu      *sync.Mutex
	handled *[]time.Time
}

func (p lateAckPipeline) Handle(_ context.Context, _ []record.Record, done func()) error {
	p.mu.Lock()
	*p.handled = append(*p.handled, time.Now())
	p.mu.Unlock()
	go func() {
		<-p.gate
		done()
	}()
	return nil
}

func (lateAckPipeline) Close() {}

// TestBatchWaitingForInFlightRoomPastTheTrustWindowIsNotHandedOn: the same as
// TestBatchBlockedPastTheTrustWindowIsNotHandedOn for the other wait, the shard's in-flight cap:
// room that frees up after the trust window ended must not let the waiting batch through.
func TestBatchWaitingForInFlightRoomPastTheTrustWindowIsNotHandedOn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := runGated(t, func(o *Options, g *gatedRun) {
			o.Batching.BatchSize, o.Batching.MaxInFlightRecords = 5, 5
			o.NewPipeline = func(context.Context, string) Pipeline {
				return lateAckPipeline{gate: g.gate, mu: &g.mu, handled: &g.handled}
			}
		})
		// The first batch is in flight; the second waits for room.
		g.table.setDown(true)
		lastExtended := time.Now()

		time.Sleep(vLeaseDuration + vRenewInterval)
		close(g.gate) // the first batch is acknowledged, after the trust window
		synctest.Wait()
		if g.mu.Lock(); len(g.handled) == 0 {
			t.Error("the first batch was never handed on")
		}
		g.mu.Unlock()
		g.checkNothingHandedOnAfter(t, lastExtended)
		g.checkReadAgain(t)
	})
}
