package consumer

import (
	"context"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/shardhose/shardhose/health"
	"github.com/shardhose/shardhose/internal/clock"
	"github.com/shardhose/shardhose/record"
)

// progressHooks records the liveness and checkpoint-lag hooks.
type progressHooks struct {
	mu       sync.Mutex
	passes   int
	progress int
	waits    []bool
	lag      []int
}

func (h *progressHooks) OnLeasePass() { h.mu.Lock(); h.passes++; h.mu.Unlock() }
func (h *progressHooks) OnShardProgress(_, _ string) {
	h.mu.Lock()
	h.progress++
	h.mu.Unlock()
}
func (h *progressHooks) OnShardWaiting(_, _ string, waiting bool) {
	h.mu.Lock()
	h.waits = append(h.waits, waiting)
	h.mu.Unlock()
}
func (h *progressHooks) OnCheckpointLag(_, _ string, records int) {
	h.mu.Lock()
	h.lag = append(h.lag, records)
	h.mu.Unlock()
}

func (h *progressHooks) lastLag() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.lag) == 0 {
		return -1
	}
	return h.lag[len(h.lag)-1]
}

// holdPipeline keeps every batch's done until release is called.
type holdPipeline struct {
	mu    sync.Mutex
	dones []func()
}

func (p *holdPipeline) Handle(_ context.Context, _ []record.Record, done func()) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dones = append(p.dones, done)
	return nil
}
func (p *holdPipeline) Close() {}
func (p *holdPipeline) release() {
	p.mu.Lock()
	dones := p.dones
	p.dones = nil
	p.mu.Unlock()
	for _, d := range dones {
		d()
	}
}

// TestHooksReportLivenessAndCheckpointLag: the lease loop reports its passes, the reader its
// turns and each wait to hand on (in pairs), and the checkpoint lag counts the records read but
// not behind the written checkpoint: all of them while the pipeline holds them, none once they
// are delivered and checkpointed.
func TestHooksReportLivenessAndCheckpointLag(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &memStream{}
		st.addShard("shard-0")
		st.put("shard-0", 250)
		m := newMemLeases()
		h := &progressHooks{}
		p := &holdPipeline{}
		opts := leaseTestOptions("a", st, m)
		opts.Hooks = append(opts.Hooks, h)
		opts.NewPipeline = func(context.Context, string) Pipeline { return p }
		a := runConsumer(t, opts)

		withinVirtual(t, 5*time.Second, "all 250 records read and held: lag 250", func() bool { return h.lastLag() == 250 })
		p.release()
		withinVirtual(t, 5*time.Second, "delivered and checkpointed: lag 0", func() bool { return h.lastLag() == 0 })
		if l, _ := m.get("shard-0"); l.Checkpoint.SequenceNumber != st.lastSeq("shard-0") {
			t.Fatalf("checkpoint at %s, want the last record", l.Checkpoint.String())
		}
		time.Sleep(3 * vRenewInterval)
		a.stop(t)

		h.mu.Lock()
		defer h.mu.Unlock()
		if h.passes < 3 {
			t.Errorf("%d lease passes reported, want one per renew interval", h.passes)
		}
		if h.progress < 3 {
			t.Errorf("%d reader turns reported", h.progress)
		}
		if len(h.waits) != 6 { // 3 batches of at most 100
			t.Errorf("waits reported %v, want a true/false pair per batch (3 batches)", h.waits)
		}
		for i, w := range h.waits {
			if w != (i%2 == 0) {
				t.Fatalf("waits %v do not alternate true, false", h.waits)
			}
		}
	})
}

// wedgingHook blocks the lease loop, once wedge is closed, until release is closed: a stand-in
// for whatever may stop the loop inside a pass (the loop calls hooks synchronously).
type wedgingHook struct {
	wedge   chan struct{}
	release chan struct{}
}

func (w *wedgingHook) OnLeasePass() {
	select {
	case <-w.wedge:
		<-w.release
	default:
	}
}

// TestAWedgedLeaseLoopTurnsHealthRed: the health monitor, plugged in as a hook, stays green while
// the lease loop passes and the reader turns, goes red once the loop is blocked inside a pass for
// longer than the liveness timeout, and green again once it passes.
func TestAWedgedLeaseLoopTurnsHealthRed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &memStream{}
		st.addShard("shard-0")
		st.put("shard-0", 10)
		m := newMemLeases()
		opts := leaseTestOptions("a", st, m)
		wt := &wedgingHook{wedge: make(chan struct{}), release: make(chan struct{})}
		mon := health.New(clock.Real(), time.Minute, 2*opts.Stream.PollInterval)
		mon.Started()
		opts.Hooks = append(opts.Hooks, wt, mon) // the wedge comes first: the monitor hears no more passes
		a := runConsumer(t, opts)

		withinVirtual(t, 5*time.Second, "lease taken", func() bool { l, _ := m.get("shard-0"); return l.Owner == "a" })
		time.Sleep(2 * time.Minute)
		if p := mon.Live(); p != nil {
			t.Fatalf("a running consumer is reported not alive: %v", p)
		}
		if p := mon.Ready(); p != nil {
			t.Fatalf("a running consumer is reported not ready: %v", p)
		}
		close(wt.wedge)
		time.Sleep(time.Minute + 2*vRenewInterval)
		live := mon.Live()
		if len(live) == 0 || !strings.Contains(live[0], "lease loop: no pass") {
			t.Fatalf("a lease loop wedged for over a minute: Live = %v, want the lease loop reported", live)
		}
		if r := mon.Ready(); len(r) == 0 {
			t.Fatal("a wedged lease loop is still reported ready")
		}
		close(wt.release)
		withinVirtual(t, 2*vRenewInterval, "alive again once the loop passes", func() bool { return mon.Live() == nil })
		a.stop(t)
	})
}
