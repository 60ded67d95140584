// Package consumer is shardhose's engine: it leases shards in the lease table, reads each leased
// shard in order, hands its records to the sinks, and checkpoints a shard only up to the last
// position below which every record has been acknowledged by every sink.
//
// One Consumer runs per process. Several processes sharing a lease table share the stream's
// shards between them: see docs/design.md for how leases, fencing and hand-off work.
package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/shardhose/shardhose/checkpoint"
	"github.com/shardhose/shardhose/config"
	"github.com/shardhose/shardhose/hooks"
	"github.com/shardhose/shardhose/internal/clock"
	"github.com/shardhose/shardhose/internal/outage"
	"github.com/shardhose/shardhose/internal/retry"
	"github.com/shardhose/shardhose/record"
	"github.com/shardhose/shardhose/sinks"
)

// LeaseTable is the part of *checkpoint.Table the consumer uses. Every write is fenced: it fails
// with checkpoint.ErrLeaseLost when this worker no longer holds the lease it names.
type LeaseTable interface {
	Ensure(ctx context.Context) error
	List(ctx context.Context) ([]checkpoint.Lease, error)
	CreateIfAbsent(ctx context.Context, shardID string, parents []string) error
	Take(ctx context.Context, seen checkpoint.Lease) (checkpoint.Lease, error)
	Renew(ctx context.Context, held checkpoint.Lease) (checkpoint.Lease, error)
	// CheckpointDelivered writes the checkpoint and, in the same fenced write, the position up
	// to which each exactly-once sink holds the shard (nil: none).
	CheckpointDelivered(ctx context.Context, held checkpoint.Lease, pos record.Position, shardEnd bool, delivered map[string]record.Position) (checkpoint.Lease, error)
	Release(ctx context.Context, held checkpoint.Lease) error
	Claim(ctx context.Context, seen checkpoint.Lease) error
	Delete(ctx context.Context, seen checkpoint.Lease) error
}

// Options are what a Consumer is made of. Kinesis, Table and at least one sink are required.
// NewPipeline, when nil, is DeliverToSinks(Sinks).
type Options struct {
	WorkerID string
	Stream   config.Stream
	Leases   config.Leases
	Batching config.Batching
	Kinesis  KinesisAPI
	Table    LeaseTable
	Sinks    []sinks.Sink
	// NewPipeline makes the pipeline each shard's batches go through (processing, delivery, dead
	// letters). The sinks are flushed and closed by the consumer on shutdown either way.
	NewPipeline PipelineFactory
	Clock       clock.Clock
	Logger      *slog.Logger
	Hooks       hooks.Set
	// Memory, when set, bounds the record data held over all shards and sizes reads to it (see
	// MemoryBudget); nil leaves only the per-shard Batching.MaxInFlightRecords.
	Memory *MemoryBudget
	// NoClaims keeps the worker from claiming leases held by live workers: it takes only free and
	// expired ones (vmware-go-kcl's EnableLeaseStealing = false).
	NoClaims bool
	// StallTimeout, when positive, is how long a shard may hold records read but not yet
	// delivered without its safe position moving before the consumer reports it, releases its
	// lease and reads it again from the checkpoint (see checkStalls). Zero turns this off.
	StallTimeout time.Duration
}

// StartupError is returned by Run when the consumer cannot start: the stream or the lease table is
// missing or unreachable. The process should exit 1 and not be restarted until it is fixed.
type StartupError struct{ Err error }

func (e *StartupError) Error() string { return e.Err.Error() }
func (e *StartupError) Unwrap() error { return e.Err }

// DrainError is returned by Shutdown when the drain deadline passed with records still undelivered.
// Their shards' checkpoints stay before them, so they are read again by whoever takes the shard next.
type DrainError struct {
	// Pending maps shard id to the records read but not acknowledged by every sink.
	Pending map[string]int
}

func (e *DrainError) Error() string {
	total := 0
	for _, n := range e.Pending {
		total += n
	}
	return fmt.Sprintf("drain deadline passed with %d records undelivered in %d shards %v; their checkpoints stay before them and they will be read again", total, len(e.Pending), e.Pending)
}

// Consumer leases and reads the shards of one stream and delivers them to the sinks.
//
// Run blocks until Shutdown completes or Run's context is cancelled (a hard stop: nothing more is
// written to the lease table, and records not yet checkpointed are read again by the next owner).
// Shutdown may be called once, from another goroutine.
type Consumer struct {
	opts       Options
	log        *slog.Logger
	streamName string
	streamARN  string
	expiry     *checkpoint.ExpiryTracker
	readPolicy retry.Policy
	// exactly are the sinks that deliver each shard exactly once: each shard run is opened in
	// them with the lease, and their delivered positions are checkpointed with it.
	exactly []sinks.ExactlyOnce

	mu       sync.Mutex
	workers  map[string]*shardWorker
	inStream map[string]bool // shards ListShards returned last time
	inTable  map[string]bool // shards whose rows the last read of the lease table showed
	stalls   stallWatch      // used by the Run goroutine only

	// tableHealth and streamHealth report failed calls to the lease table and the stream
	// without flooding the log (internal/outage); every shard's calls report to the same two.
	tableHealth  *outage.Reporter
	streamHealth *outage.Reporter

	// Events from shard workers for the Run goroutine: an unbounded queue, so that posting
	// never blocks (see post).
	eventsMu   sync.Mutex
	queued     []workerEvent
	eventReady chan struct{} // capacity 1: a wake-up for the Run goroutine

	stopOnce     sync.Once
	stopping     chan struct{}
	shutdownCtx  context.Context
	shutdownDone chan error
	runDone      chan struct{}
}

// New checks the options and returns a Consumer ready to Run.
func New(opts Options) (*Consumer, error) {
	if opts.Kinesis == nil || opts.Table == nil {
		return nil, errors.New("consumer: Kinesis client and lease table are required")
	}
	if len(opts.Sinks) == 0 {
		return nil, errors.New("consumer: at least one sink is required")
	}
	if opts.WorkerID == "" {
		return nil, errors.New("consumer: worker id is required")
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real()
	}
	if opts.NewPipeline == nil {
		opts.NewPipeline = DeliverToSinks(opts.Sinks)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	c := &Consumer{
		opts:         opts,
		log:          opts.Logger.With("worker", opts.WorkerID),
		streamName:   opts.Stream.StreamName(),
		streamARN:    opts.Stream.ARN,
		expiry:       checkpoint.NewExpiryTracker(opts.Leases.LeaseDuration, opts.Clock),
		readPolicy:   retry.Policy{Initial: 500 * time.Millisecond, Max: 10 * time.Second, Multiplier: 2, Jitter: 0.2},
		workers:      map[string]*shardWorker{},
		inStream:     map[string]bool{},
		eventReady:   make(chan struct{}, 1),
		stopping:     make(chan struct{}),
		shutdownDone: make(chan error, 1),
		runDone:      make(chan struct{}),
	}
	c.tableHealth = outage.New(outage.Options{Dependency: "dynamodb", Resource: opts.Leases.Table, Logger: c.log, Clock: opts.Clock})
	c.streamHealth = outage.New(outage.Options{Dependency: "kinesis", Resource: c.streamName, Logger: c.log, Clock: opts.Clock})
	for _, sk := range opts.Sinks {
		if eo, ok := sk.(sinks.ExactlyOnce); ok && eo.ExactlyOnce() {
			c.exactly = append(c.exactly, eo)
		}
	}
	return c, nil
}

// Check verifies that the stream and the lease table can be used (creating the table when it does
// not exist). Run calls it first; callers may call it earlier to fail fast.
func (c *Consumer) Check(ctx context.Context) error {
	in := &kinesis.DescribeStreamSummaryInput{}
	if c.streamARN != "" {
		in.StreamARN = aws.String(c.streamARN)
	} else {
		in.StreamName = aws.String(c.streamName)
	}
	if _, err := c.opts.Kinesis.DescribeStreamSummary(ctx, in); err != nil {
		var nf *types.ResourceNotFoundException
		if errors.As(err, &nf) {
			return &StartupError{fmt.Errorf("stream %q not found", c.streamName)}
		}
		return &StartupError{fmt.Errorf("describe stream %q: %w", c.streamName, err)}
	}
	if err := c.opts.Table.Ensure(ctx); err != nil {
		return &StartupError{fmt.Errorf("lease table %q: %w", c.opts.Leases.Table, err)}
	}
	return nil
}

// Run checks the stream and table, then leases and reads shards until Shutdown finishes (it then
// returns Shutdown's result) or ctx is cancelled (it returns ctx's error at once).
func (c *Consumer) Run(ctx context.Context) error {
	defer close(c.runDone)
	if err := c.Check(ctx); err != nil {
		return err
	}
	c.log.Info("consumer started", "stream", c.streamName, "lease_table", c.opts.Leases.Table)
	if c.opts.Memory != nil {
		pctx, stop := context.WithCancel(ctx)
		defer stop()
		go c.flushOnPressure(pctx)
	}

	leaseTimer := c.opts.Clock.NewTimer(0)
	defer leaseTimer.Stop()
	var lastShardSync time.Time
	var drainDone chan error
	stopping := c.stopping
	for {
		select {
		case <-ctx.Done():
			c.abandonAll("hard stop")
			return ctx.Err()

		case <-leaseTimer.C():
			c.renewAll(ctx)
			if drainDone == nil {
				now := c.opts.Clock.Now()
				if lastShardSync.IsZero() || now.Sub(lastShardSync) >= c.opts.Leases.ShardSyncInterval {
					// syncShards reports its failures itself; it is tried again next pass.
					if err := c.syncShards(ctx); err == nil {
						lastShardSync = now
					}
				}
				c.balance(ctx)
			}
			hooks.Each(c.opts.Hooks, func(h hooks.LeasePass) { h.OnLeasePass() })
			leaseTimer.Reset(c.opts.Leases.RenewInterval)

		case <-c.eventReady:
			for _, ev := range c.takeEvents() {
				c.handleEvent(ev)
			}

		case <-stopping:
			stopping = nil
			drainDone = make(chan error, 1)
			go func() { drainDone <- c.drain(c.shutdownCtx) }()

		case err := <-drainDone:
			c.shutdownDone <- err
			return err
		}
	}
}

// Shutdown stops reading, flushes the sinks, waits for every record read to be acknowledged,
// writes the final checkpoints and releases the leases, all before ctx's deadline. It returns a
// *DrainError naming what was left undelivered when the deadline passed first.
func (c *Consumer) Shutdown(ctx context.Context) error {
	first := false
	c.stopOnce.Do(func() {
		first = true
		c.shutdownCtx = ctx
		close(c.stopping)
	})
	if !first {
		return errors.New("consumer: Shutdown called twice")
	}
	select {
	case err := <-c.shutdownDone:
		return err
	case <-c.runDone:
		select {
		case err := <-c.shutdownDone:
			return err
		default:
			return errors.New("consumer: Run ended before the drain finished")
		}
	}
}

// Held returns the shards this worker currently reads.
func (c *Consumer) Held() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, len(c.workers))
	for id := range c.workers {
		out = append(out, id)
	}
	return out
}

// drain is the graceful stop: see Shutdown.
func (c *Consumer) drain(ctx context.Context) error {
	c.mu.Lock()
	workers := make([]*shardWorker, 0, len(c.workers))
	for _, w := range c.workers {
		workers = append(workers, w)
	}
	c.mu.Unlock()
	c.log.Info("draining", "shards", len(workers))

	// Keep a slice of the deadline for the final lease writes, whatever the sinks do.
	waitCtx := ctx
	if dl, ok := ctx.Deadline(); ok {
		reserve := time.Until(dl) / 5
		if reserve > 3*time.Second {
			reserve = 3 * time.Second
		}
		var cancel context.CancelFunc
		waitCtx, cancel = context.WithDeadline(ctx, dl.Add(-reserve))
		defer cancel()
	}

	for _, w := range workers {
		w.stopReading()
	}
	for _, w := range workers {
		w.waitReader(waitCtx)
	}
	c.deliverAll(waitCtx, workers)

	pending := map[string]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			left := w.finish(waitCtx, ctx, "shutdown")
			if left > 0 {
				mu.Lock()
				pending[w.shardID] = left
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, s := range c.opts.Sinks {
		if err := s.Close(waitCtx); err != nil {
			c.log.Warn("sink did not close cleanly", "sink", s.Name(), "error", err)
		}
	}
	if len(pending) > 0 {
		return &DrainError{Pending: pending}
	}
	c.log.Info("drained: every record read was delivered and checkpointed; leases released")
	return nil
}

// flushRepeat is how often deliverAll flushes the sinks again while records are in flight.
const flushRepeat = 200 * time.Millisecond

// deliverAll flushes the sinks until every record the workers read is acknowledged, or ctx ends.
// The readers must have stopped. A processing stage may still be working on records when the
// drain or hand-off begins and write them to the sinks later, so a single flush is not enough:
// what a lane writes after it would wait for the sink's buffering interval (minutes). The sinks
// are flushed at once, then again every flushRepeat while records are in flight.
func (c *Consumer) deliverAll(ctx context.Context, workers []*shardWorker) {
	drainedCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	drained := make(chan struct{})
	go func() {
		for _, w := range workers {
			if w.tracker.waitDrained(drainedCtx) != nil {
				return
			}
		}
		close(drained)
	}()
	t := c.opts.Clock.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-drained:
			return
		case <-ctx.Done():
			return
		case <-t.C():
		}
		c.flushSinks(ctx, true)
		t.Reset(flushRepeat)
	}
}

// flushSinks flushes every sink at once and waits until each has delivered or ctx ends; with
// report, a flush that did not finish is logged.
func (c *Consumer) flushSinks(ctx context.Context, report bool) {
	var wg sync.WaitGroup
	for _, s := range c.opts.Sinks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Flush(ctx); err != nil && report {
				c.log.Warn("sink flush did not finish", "sink", s.Name(), "error", err)
			}
		}()
	}
	wg.Wait()
}

// errPressureFlushCut ends the wait of a flush on memory pressure, which only needs it started.
var errPressureFlushCut = errors.New("a flush on memory pressure waits no longer than its delay")

// pressureFlushDelay is how long reads wait for room in the memory budget before the sinks are
// asked to deliver what they buffer.
const pressureFlushDelay = time.Second

// flushOnPressure starts delivery of everything the sinks buffer whenever reads have waited
// pressureFlushDelay for room in the memory budget: the records held are then sitting in sink
// buffers (many partitions each below its size hint, or a long interval) that would otherwise
// keep reading stopped until their interval. Flushing early makes smaller objects, never loses
// anything. It returns when ctx ends.
func (c *Consumer) flushOnPressure(ctx context.Context) {
	b := c.opts.Memory
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.Pressure():
		}
		if clock.Sleep(ctx, c.opts.Clock, pressureFlushDelay) != nil {
			return
		}
		if !b.waiting() {
			continue
		}
		c.log.Debug("memory budget full: reads are waiting; flushing the sinks", "held_bytes", b.Used(), "limit_bytes", b.Limit())
		hooks.Each(c.opts.Hooks, func(h hooks.MemoryPressure) { h.OnMemoryPressure() })
		// Flush starts delivery at once and then waits for it; the wait is not needed here, and
		// during a sink outage it would not end: it is cut short, quietly.
		fctx, stop := clock.WithTimeout(ctx, c.opts.Clock, pressureFlushDelay, errPressureFlushCut)
		c.flushSinks(fctx, false)
		stop()
	}
}

// abandonAll stops every shard at once without writing to the lease table.
func (c *Consumer) abandonAll(reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, w := range c.workers {
		w.abandon(reason)
		delete(c.workers, id)
	}
}
