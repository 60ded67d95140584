package consumer

import (
	"context"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/shardhose/shardhose/checkpoint"
	"github.com/shardhose/shardhose/hooks"
)

// passRecorder records the LeasePass hook with the shards held at each pass.
type passRecorder struct {
	c      *Consumer
	mu     sync.Mutex
	passes [][]string
}

var _ hooks.LeasePass = (*passRecorder)(nil)

func (p *passRecorder) OnLeasePass() {
	held := slices.Sorted(slices.Values(p.c.Held()))
	p.mu.Lock()
	defer p.mu.Unlock()
	p.passes = append(p.passes, held)
}

func (p *passRecorder) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.passes)
}

func (p *passRecorder) last() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.passes) == 0 {
		return nil
	}
	return p.passes[len(p.passes)-1]
}

// wedgeableTable is a lease table whose List (the balance pass's read of the table) can be made
// to block until released, the way a call with no deadline on a hung connection would wedge the
// lease loop.
type wedgeableTable struct {
	LeaseTable
	mu     sync.Mutex
	wedged chan struct{} // non-nil: Renew blocks until it is closed
}

func (w *wedgeableTable) wedge() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.wedged = make(chan struct{})
}

func (w *wedgeableTable) unwedge() {
	w.mu.Lock()
	defer w.mu.Unlock()
	close(w.wedged)
	w.wedged = nil
}

func (w *wedgeableTable) List(ctx context.Context) ([]checkpoint.Lease, error) {
	w.mu.Lock()
	ch := w.wedged
	w.mu.Unlock()
	if ch != nil {
		<-ch
	}
	return w.LeaseTable.List(ctx)
}

// TestLeasePassIsReportedOncePerPassAndNotWhileTheLoopIsWedged: the hook a systemd watchdog
// relies on is called after every lease pass with the shards held, and not at all while a pass
// is stuck in a lease table call; it resumes when the call returns.
func TestLeasePassIsReportedOncePerPassAndNotWhileTheLoopIsWedged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &memStream{}
		m := newMemLeases()
		for _, id := range []string{"shard-0", "shard-1"} {
			st.addShard(id)
		}
		rec := &passRecorder{}
		opts := leaseTestOptions("a", st, m)
		table := &wedgeableTable{LeaseTable: opts.Table}
		opts.Table = table
		opts.Hooks = hooks.Set{rec}
		c, err := New(opts)
		if err != nil {
			t.Fatal(err)
		}
		rec.c = c
		r := &runningConsumer{c: c, done: make(chan error, 1)}
		go func() { r.done <- c.Run(t.Context()) }()

		withinVirtual(t, 2*vRenewInterval, "a pass reports both shards held", func() bool {
			return slices.Equal(rec.last(), []string{"shard-0", "shard-1"})
		})
		before := rec.count()
		time.Sleep(5 * vRenewInterval)
		synctest.Wait()
		if got := rec.count() - before; got < 4 || got > 6 {
			t.Fatalf("%d passes reported in 5 renew intervals, want about 5", got)
		}

		table.wedge()
		time.Sleep(vRenewInterval) // the next pass starts and blocks in List
		synctest.Wait()
		wedgedAt := rec.count()
		time.Sleep(10 * vRenewInterval)
		synctest.Wait()
		if got := rec.count(); got != wedgedAt {
			t.Fatalf("%d passes reported while the loop was wedged in List", got-wedgedAt)
		}
		table.unwedge()
		withinVirtual(t, 2*vRenewInterval, "passes resume once List returns", func() bool { return rec.count() > wedgedAt })
		r.stop(t)
	})
}
