// Package batcher is the buffering every record-batch sink shares (HTTP endpoint, OpenSearch,
// Firehose): it gathers records from concurrent Writes into batches by count, size and interval
// (Firehose's buffering hints), delivers each batch on one of a bounded number of goroutines, and
// calls each Write's done once every record of it is in a delivered batch.
//
// A Batcher never drops anything: a batch whose Deliver returns an error (only when the Batcher's
// context ends, at Close) is simply never acknowledged.
package batcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/shardhose/shardhose/internal/clock"
	"github.com/shardhose/shardhose/record"
	"github.com/shardhose/shardhose/sinks"
)

// DeliverFunc delivers one batch, retrying and backing up as its sink does, and returns nil once
// the batch is delivered or backed up. It returns an error only when ctx ends first; the batch is
// then not acknowledged. It is called from several goroutines at once (Options.MaxInFlight).
type DeliverFunc func(ctx context.Context, batch []record.Record) error

// Options configure a Batcher. MaxRecords or MaxBytes (or both) must be set.
type Options struct {
	// MaxRecords closes a batch at this many records (0 = no limit).
	MaxRecords int
	// MaxBytes closes a batch when its records' data reach this size (0 = no limit). A record
	// larger than MaxBytes goes out alone.
	MaxBytes int
	// Interval closes a batch this long after its first record arrived; 0 delivers at once.
	Interval time.Duration
	// MaxInFlight caps the batches being delivered at once (default 1). Writes block while that
	// many are in flight and the open batch is full: this bounds memory.
	MaxInFlight int
	Deliver     DeliverFunc
	Clock       clock.Clock
	Logger      *slog.Logger
}

// Batcher is safe for concurrent use. Records of one Write keep their order, within and across
// batches (batches are delivered concurrently, so across batches "order" means order of hand-off).
type Batcher struct {
	opts Options

	mu     sync.Mutex
	open   *batch
	timer  clock.Timer
	closed bool
	// sealed holds the batches sealed and not yet finished. Flush waits on the finished channels
	// of those present when it is called, so it never waits for a batch sealed after it, and no
	// counter is shared between Flushes and the Writes that run meanwhile.
	sealed map[*batch]struct{}
	slots  chan struct{} // one per batch in flight
	runCtx context.Context
	stop   context.CancelFunc
}

type batch struct {
	records  []record.Record
	bytes    int
	writes   []*write      // the writes with records in this batch (each once)
	finished chan struct{} // closed when its delivery has ended, delivered or not
}

type write struct {
	mu      sync.Mutex
	batches int // batches holding its records, not yet delivered
	sealed  bool
	done    func()
}

// New returns a running Batcher.
func New(opts Options) (*Batcher, error) {
	if opts.Deliver == nil {
		return nil, errors.New("batcher: Deliver is required")
	}
	if opts.MaxRecords <= 0 && opts.MaxBytes <= 0 {
		return nil, errors.New("batcher: MaxRecords or MaxBytes must be set")
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = 1
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real()
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background()) //nolint: lives until Close
	return &Batcher{opts: opts, sealed: make(map[*batch]struct{}), slots: make(chan struct{}, opts.MaxInFlight), runCtx: ctx, stop: cancel}, nil
}

// Write adds records; done is called once they are all delivered. See sinks.Sink for the contract.
func (b *Batcher) Write(ctx context.Context, recs []record.Record, done func()) error {
	if len(recs) == 0 {
		b.mu.Lock()
		closed := b.closed
		b.mu.Unlock()
		if closed {
			return sinks.ErrClosed
		}
		done()
		return nil
	}
	w := &write{done: done}
	for _, r := range recs {
		sealed, err := b.add(ctx, w, r)
		if err != nil {
			// Records added before the error are delivered as usual, but the write stays unsealed,
			// so done never fires: the caller's batch is not acknowledged.
			return err
		}
		if sealed != nil {
			b.dispatch(sealed)
		}
	}
	if b.opts.Interval <= 0 {
		// No interval: what this write left in the open batch goes out now, together.
		if err := b.sealOpen(ctx); err != nil {
			return err
		}
	}
	w.mu.Lock()
	w.sealed = true
	fire := w.batches == 0
	w.mu.Unlock()
	if fire {
		done()
	}
	return nil
}

// sealOpen takes a delivery slot (waiting while all are busy, until ctx ends) and dispatches the
// open batch, if it holds anything.
func (b *Batcher) sealOpen(ctx context.Context) error {
	b.mu.Lock()
	empty := b.open == nil || len(b.open.records) == 0
	b.mu.Unlock()
	if empty {
		return nil
	}
	if err := b.acquire(ctx); err != nil {
		return err
	}
	b.mu.Lock()
	var sealed *batch
	if b.open != nil && len(b.open.records) > 0 {
		sealed = b.sealLocked()
	}
	b.mu.Unlock()
	if sealed == nil {
		<-b.slots
		return nil
	}
	b.dispatch(sealed)
	return nil
}

// add appends r to the open batch. Whenever a batch must be sealed (r does not fit, or r fills
// it), a delivery slot is taken first, waiting while MaxInFlight batches are in flight; if ctx ends
// during that wait, r has not been added. It returns the batch to dispatch, if it sealed one (the
// caller then holds its slot).
func (b *Batcher) add(ctx context.Context, w *write, r record.Record) (*batch, error) {
	holding := false // this call holds a delivery slot
	release := func() {
		if holding {
			<-b.slots
			holding = false
		}
	}
	for {
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			release()
			return nil, sinks.ErrClosed
		}
		if b.open == nil {
			b.open = &batch{}
		}
		o := b.open
		fits := len(o.records) == 0 ||
			((b.opts.MaxRecords <= 0 || len(o.records) < b.opts.MaxRecords) &&
				(b.opts.MaxBytes <= 0 || o.bytes+len(r.Data) <= b.opts.MaxBytes))
		fills := fits && b.fullWith(o, r)
		if (!fits || fills) && !holding {
			b.mu.Unlock()
			if err := b.acquire(ctx); err != nil {
				return nil, err
			}
			holding = true
			continue // the open batch may have changed while waiting
		}
		if !fits {
			sealed := b.sealLocked()
			b.mu.Unlock()
			b.dispatch(sealed)
			holding = false // the slot went with the sealed batch
			continue
		}
		o.records = append(o.records, r)
		o.bytes += len(r.Data)
		if len(o.writes) == 0 || o.writes[len(o.writes)-1] != w {
			o.writes = append(o.writes, w)
			w.mu.Lock()
			w.batches++
			w.mu.Unlock()
		}
		if len(o.records) == 1 {
			b.armTimer()
		}
		var sealed *batch
		if fills {
			sealed = b.sealLocked()
			holding = false // handed to the caller with the batch
		}
		b.mu.Unlock()
		release()
		return sealed, nil
	}
}

// fullWith reports whether o is full once r is added.
func (b *Batcher) fullWith(o *batch, r record.Record) bool {
	n := len(o.records) + 1
	size := o.bytes + len(r.Data)
	return (b.opts.MaxRecords > 0 && n >= b.opts.MaxRecords) ||
		(b.opts.MaxBytes > 0 && size >= b.opts.MaxBytes)
}

// acquire takes a delivery slot, waiting while all are in use.
func (b *Batcher) acquire(ctx context.Context) error {
	select {
	case b.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *Batcher) acquireForce() { b.slots <- struct{}{} }

func (b *Batcher) armTimer() {
	if b.opts.Interval <= 0 {
		return
	}
	if b.timer == nil {
		b.timer = b.opts.Clock.NewTimer(b.opts.Interval)
		go b.timerLoop(b.timer)
		return
	}
	b.timer.Reset(b.opts.Interval)
}

func (b *Batcher) timerLoop(t clock.Timer) {
	for {
		select {
		case <-b.runCtx.Done():
			t.Stop()
			return
		case <-t.C():
		}
		b.mu.Lock()
		var sealed *batch
		if b.open != nil && len(b.open.records) > 0 {
			sealed = b.sealLocked()
		}
		b.mu.Unlock()
		if sealed != nil {
			b.acquireForce()
			b.dispatch(sealed)
		}
	}
}

// sealLocked closes the open batch; the caller dispatches it after taking a slot.
func (b *Batcher) sealLocked() *batch {
	o := b.open
	b.open = nil
	o.finished = make(chan struct{})
	b.sealed[o] = struct{}{}
	return o
}

// dispatch delivers a sealed batch on its own goroutine; the caller holds a slot for it.
func (b *Batcher) dispatch(o *batch) {
	go func() {
		defer func() {
			<-b.slots
			b.mu.Lock()
			delete(b.sealed, o)
			b.mu.Unlock()
			close(o.finished)
		}()
		if err := b.opts.Deliver(b.runCtx, o.records); err != nil {
			b.opts.Logger.Error("batch not delivered before the sink closed; its records stay unacknowledged and will be read again", "records", len(o.records), "error", err)
			return
		}
		for _, w := range o.writes {
			w.mu.Lock()
			w.batches--
			fire := w.sealed && w.batches == 0
			w.mu.Unlock()
			if fire {
				w.done()
			}
		}
	}()
}

// Flush seals the open batch and waits until every batch sealed before it returned from sealing
// has finished delivering, or ctx ends. Batches sealed later (by Writes running meanwhile) are not
// waited for, so a Flush ends even while other shards keep writing. It starts no goroutine.
func (b *Batcher) Flush(ctx context.Context) error {
	if err := b.sealOpen(ctx); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	b.mu.Lock()
	waits := make([]chan struct{}, 0, len(b.sealed))
	for o := range b.sealed {
		waits = append(waits, o.finished)
	}
	b.mu.Unlock()
	for _, finished := range waits {
		select {
		case <-finished:
		case <-ctx.Done():
			return fmt.Errorf("flush: %w", ctx.Err())
		}
	}
	return nil
}

// Close flushes, then stops: deliveries still running when ctx ends are cancelled (their records
// are never acknowledged). Write after Close returns sinks.ErrClosed.
func (b *Batcher) Close(ctx context.Context) error {
	err := b.Flush(ctx)
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.stop()
	return err
}
