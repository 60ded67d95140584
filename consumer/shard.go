package consumer

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/shardhose/shardhose/checkpoint"
	"github.com/shardhose/shardhose/hooks"
	"github.com/shardhose/shardhose/internal/clock"
	"github.com/shardhose/shardhose/record"
	"github.com/shardhose/shardhose/sinks"
)

// errLeaseGone is returned by heldLease once the lease was released or found lost, and wrapped
// by every error that stops a shard because its lease can no longer be trusted.
var errLeaseGone = errors.New("lease no longer held")

// heldLease is this worker's copy of a lease it holds. Every write to the lease's row goes
// through it, one at a time (lockWrites), so each carries the counter of the previous one (the
// fencing token). Its state (mu) is never held across a call to the table, so asking whether the
// lease is trusted never waits for a write that hangs, and every write is bounded by callTimeout.
type heldLease struct {
	// writing serialises the writes to the row (a lock that can be given up on, see
	// lockWrites); made on first use.
	writing chan struct{}
	mu      sync.Mutex // guards writing and the fields below
	lease   checkpoint.Lease
	gone    bool
	clock   clock.Clock
	// callTimeout bounds each write to the table (see callWithin); zero means none.
	callTimeout time.Duration
	// renewedAt is when (local clock) the last write that extended the lease was sent; the
	// lease is trusted for a lease duration from then (see trusted in leases.go).
	renewedAt time.Time
	// failingSince is when (local clock) a write first failed since the last one that
	// succeeded, and writeErr the last failure; both are cleared by a success. A failure seen
	// while the lease was still trusted tells a lease the table could not extend from one
	// nobody tried to extend in time (a paused process: its writes fail, if at all, only after
	// it resumes).
	failingSince time.Time
	writeErr     error
}

// lockWrites waits for this worker's other write to the row, if any, to finish, or for ctx to
// end. unlockWrites undoes it.
func (h *heldLease) lockWrites(ctx context.Context) error {
	h.mu.Lock()
	if h.writing == nil {
		h.writing = make(chan struct{}, 1)
	}
	writing := h.writing
	h.mu.Unlock()
	select {
	case writing <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *heldLease) unlockWrites() { <-h.writing }

// write sends one write to the row (fn, given the lease as last written) and records its outcome:
// on success the new row, and, when extends, the new start of the trust window. The caller holds
// the write lock (lockWrites).
func (h *heldLease) write(ctx context.Context, extends bool, fn func(ctx context.Context, held checkpoint.Lease) (checkpoint.Lease, error)) (checkpoint.Lease, error) {
	h.mu.Lock()
	if h.gone {
		h.mu.Unlock()
		return checkpoint.Lease{}, errLeaseGone
	}
	held := h.lease
	sent := h.now()
	h.mu.Unlock()

	var l checkpoint.Lease
	err := callWithin(ctx, h.clock, h.callTimeout, func(ctx context.Context) error {
		var err error
		l, err = fn(ctx, held)
		return err
	})

	h.mu.Lock()
	defer h.mu.Unlock()
	if err != nil {
		if errors.Is(err, checkpoint.ErrLeaseLost) {
			h.gone = true
		} else {
			h.failedLocked(err)
		}
		return checkpoint.Lease{}, err
	}
	h.failingSince, h.writeErr = time.Time{}, nil
	h.lease = l
	if extends {
		h.renewedAt = sent
	}
	return l, nil
}

// writeFailed records a write that could not even be sent (it is as failed as one that was).
func (h *heldLease) writeFailed(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.failedLocked(err)
}

func (h *heldLease) failedLocked(err error) {
	if h.failingSince.IsZero() {
		h.failingSince = h.now()
	}
	h.writeErr = err
}

func (h *heldLease) renew(ctx context.Context, t LeaseTable) (claim string, err error) {
	if err := h.lockWrites(ctx); err != nil {
		return "", err
	}
	defer h.unlockWrites()
	l, err := h.write(ctx, true, func(ctx context.Context, held checkpoint.Lease) (checkpoint.Lease, error) {
		return t.Renew(ctx, held)
	})
	if err != nil {
		return "", err
	}
	return l.ClaimRequest, nil
}

// checkpoint writes pos (or SHARD_END) if it is past what the row holds, with the delivered
// positions of the exactly-once sinks; positions that moved alone are written too, with the
// checkpoint the row holds, once there is one.
func (h *heldLease) checkpoint(ctx context.Context, t LeaseTable, pos record.Position, shardEnd bool, delivered map[string]record.Position) (bool, error) {
	if err := h.lockWrites(ctx); err != nil {
		return false, err
	}
	defer h.unlockWrites()
	h.mu.Lock()
	gone, cur, was := h.gone, h.lease.Checkpoint, h.lease.Delivered
	h.mu.Unlock()
	if gone {
		return false, errLeaseGone
	}
	if !shardEnd && (pos.IsZero() || pos.Compare(cur) <= 0) {
		if cur.IsZero() || !movedOn(was, delivered) {
			return false, nil
		}
		pos = cur
	}
	_, err := h.write(ctx, true, func(ctx context.Context, held checkpoint.Lease) (checkpoint.Lease, error) {
		return t.CheckpointDelivered(ctx, held, pos, shardEnd, delivered)
	})
	return err == nil, err
}

// movedOn reports whether a position in now differs from the one in was.
func movedOn(was, now map[string]record.Position) bool {
	for name, p := range now {
		if was[name] != p {
			return true
		}
	}
	return false
}

// leaseState is the lease as an exactly-once sink sees it (sinks.ShardLease): lost once the worker
// stopped or a write found it taken, uncertain while it is not trusted (see trusted).
func (w *shardWorker) leaseState() sinks.LeaseState {
	w.stateMu.Lock()
	finished := w.finished
	w.stateMu.Unlock()
	if finished {
		return sinks.LeaseLost
	}
	h := w.lease
	h.mu.Lock()
	gone := h.gone
	h.mu.Unlock()
	if gone {
		return sinks.LeaseLost
	}
	if h.trusted(w.c.opts.Leases.LeaseDuration) != nil {
		return sinks.LeaseUncertain
	}
	return sinks.LeaseHeld
}

func (h *heldLease) release(ctx context.Context, t LeaseTable) error {
	if err := h.lockWrites(ctx); err != nil {
		return err
	}
	defer h.unlockWrites()
	h.mu.Lock()
	if h.gone {
		h.mu.Unlock()
		return errLeaseGone
	}
	h.gone = true
	held := h.lease
	h.mu.Unlock()
	return callWithin(ctx, h.clock, h.callTimeout, func(ctx context.Context) error { return t.Release(ctx, held) })
}

func (h *heldLease) current() checkpoint.Lease {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lease
}

// shardWorker reads one leased shard and hands its records to the sinks. Its reader stops when
// the lease is lost (abandon), handed over or the process drains (stopReading, then finish), or
// the shard ends (it then finishes on its own with a SHARD_END checkpoint).
type shardWorker struct {
	c        *Consumer
	shardID  string
	lease    *heldLease
	tracker  *tracker
	reader   *shardReader
	pipeline Pipeline

	// gathered holds records waiting for the batching window; only the reader goroutine uses it.
	gathered      []record.Record
	gatheredSince time.Time

	// checkpointedCompleted is the tracker's count of completed records when the checkpoint last
	// written (or found already written) was taken: records completed after it are not yet
	// behind the checkpoint.
	checkpointedCompleted atomic.Int64

	ctx        context.Context // ends when the worker is abandoned
	cancel     context.CancelFunc
	readCancel context.CancelFunc
	readerDone chan struct{}

	stateMu  sync.Mutex
	handing  bool // a hand-off or drain has begun
	finished bool
}

func (c *Consumer) startWorker(parent context.Context, l checkpoint.Lease, byID map[string]checkpoint.Lease) {
	ctx, cancel := context.WithCancel(parent)
	readCtx, readCancel := context.WithCancel(ctx)
	account := newShardAccount(c.opts.Memory)
	w := &shardWorker{
		c:          c,
		shardID:    l.ShardID,
		lease:      &heldLease{lease: l, clock: c.opts.Clock, callTimeout: c.callTimeout(), renewedAt: c.opts.Clock.Now()},
		tracker:    newTracker(l.Checkpoint, c.opts.Batching.MaxInFlightRecords),
		pipeline:   c.opts.NewPipeline(ctx, l.ShardID),
		ctx:        ctx,
		cancel:     cancel,
		readCancel: readCancel,
		readerDone: make(chan struct{}),
		reader: &shardReader{
			api:          c.opts.Kinesis,
			streamName:   c.streamName,
			streamARN:    c.streamARN,
			shardID:      l.ShardID,
			clock:        c.opts.Clock,
			log:          c.log,
			health:       c.streamHealth,
			hooks:        c.opts.Hooks,
			pollInterval: c.opts.Stream.PollInterval,
			maxIdlePoll:  c.opts.Stream.MaxIdlePollInterval,
			limit:        int32(c.opts.Stream.MaxRecordsPerRead),
			backoff:      c.readPolicy,
			account:      account,
		},
	}
	w.tracker.account = account
	// dispatch runs on the reader's goroutine, so gathered is read there without a lock.
	w.reader.pending = func() bool { return len(w.gathered) > 0 }
	start := startPosition{after: l.Checkpoint}
	if l.Checkpoint.IsZero() {
		if len(l.ParentShardIDs) > 0 {
			// A child of a reshard starts at its beginning: its parents were read to their end.
			start.iteratorType = types.ShardIteratorTypeTrimHorizon
		} else {
			start.iteratorType = types.ShardIteratorType(c.opts.Stream.StartingPosition)
			if start.iteratorType == types.ShardIteratorTypeAtTimestamp {
				ts := c.opts.Stream.StartingPositionTimestamp
				start.timestamp = time.Unix(0, int64(ts*float64(time.Second)))
			}
		}
	}
	for _, eo := range c.exactly {
		from, ok := l.Delivered[eo.Name()]
		switch {
		case !ok:
			from = l.Checkpoint
		case from == beforeFirst:
			from = record.Position{}
		}
		eo.OpenShard(l.ShardID, from, w.leaseState)
	}
	c.mu.Lock()
	c.workers[l.ShardID] = w
	c.mu.Unlock()
	c.log.Info("took lease; reading shard", "shard", l.ShardID, "checkpoint", l.Checkpoint.String(), "start", string(start.iteratorType), "counter", l.Counter)
	hooks.Each(c.opts.Hooks, func(h hooks.LeaseChanged) { h.OnLeaseTaken(l.ShardID) })

	go w.checkpointLoop()
	go w.read(readCtx, start)
	go func() {
		// Once the worker has ended and its reader is gone, what it still holds (records the
		// sinks never acknowledged) is no longer its to hold.
		<-w.ctx.Done()
		<-w.readerDone
		account.close()
	}()
}

// dataBytes is the size of the records' data: what they hold of the memory budget.
func dataBytes(recs []record.Record) int64 {
	n := 0
	for i := range recs {
		n += len(recs[i].Data)
	}
	return int64(n)
}

func (w *shardWorker) read(ctx context.Context, start startPosition) {
	defer close(w.readerDone)
	defer w.pipeline.Close()
	ended, err := w.reader.run(ctx, start, w.dispatch)
	if !ended {
		// Records the batching window still holds are dropped: read again by the next owner.
		defer func() {
			w.reader.account.give(dataBytes(w.gathered))
			w.gathered = nil
		}()
	}
	if ended {
		if err := w.flushGathered(ctx); err != nil {
			return
		}
		if p, ok := w.pipeline.(ShardEndPipeline); ok {
			p.ShardEnded()
		}
		// Waiting for the shard's last records to be delivered is backpressure, not a wedge.
		hooks.Each(w.c.opts.Hooks, func(h hooks.ShardWaiting) { h.OnShardWaiting(w.c.streamName, w.shardID, true) })
		w.finishShardEnd()
		return
	}
	if err != nil && ctx.Err() == nil {
		if tableUnreachable(err) {
			w.c.log.Warn("giving up the lease: the lease table could not be reached to renew it within the lease duration; "+
				"not handing on more records and stopping the shard (it is read again from its checkpoint once the table answers)",
				"shard", w.shardID, "error", err)
			w.c.post(workerEvent{w.shardID, "lease table unreachable"})
			return
		}
		if errors.Is(err, errLeaseGone) {
			w.c.log.Warn("lease lost: not handing on records of a lease another worker may hold; stopping the shard", "shard", w.shardID, "error", err)
			w.c.post(workerEvent{w.shardID, "lease lost"})
			return
		}
		w.c.log.Error("shard reader stopped", "shard", w.shardID, "error", err)
		w.c.post(workerEvent{w.shardID, "failed: " + err.Error()})
	}
}

// dispatch hands records read from the shard to its pipeline in batches of at most batch_size
// records. With a batching window (Lambda's MaximumBatchingWindowInSeconds), records are gathered
// until a batch is full or the window has passed since the oldest gathered record was read; the
// reader calls dispatch after every read, empty or not, so the window closes on time. It blocks
// while the shard's in-flight cap is reached or the pipeline is full.
func (w *shardWorker) dispatch(ctx context.Context, recs []record.Record) error {
	size := w.c.opts.Batching.BatchSize
	if size <= 0 {
		size = max(len(recs), 1)
	}
	window := time.Duration(w.c.opts.Batching.MaximumBatchingWindowInSeconds) * time.Second
	now := w.c.opts.Clock.Now()
	if len(recs) > 0 {
		if len(w.gathered) == 0 {
			w.gatheredSince = now
			// The reader hands recs over and does not use them again: taking them as they are
			// saves copying every record of every read.
			w.gathered = recs
		} else {
			w.gathered = append(w.gathered, recs...)
		}
	}
	for len(w.gathered) >= size {
		batch := w.gathered[:size:size]
		w.gathered = w.gathered[size:]
		w.gatheredSince = now
		if err := w.handOn(ctx, batch); err != nil {
			return err
		}
	}
	if len(w.gathered) > 0 && now.Sub(w.gatheredSince) >= window {
		batch := w.gathered
		w.gathered = nil
		if err := w.handOn(ctx, batch); err != nil {
			return err
		}
	}
	return nil
}

// flushGathered hands on what the batching window still holds (at the end of a shard).
func (w *shardWorker) flushGathered(ctx context.Context) error {
	if len(w.gathered) == 0 {
		return nil
	}
	batch := w.gathered
	w.gathered = nil
	return w.handOn(ctx, batch)
}

// handOn registers one batch with the tracker and gives it to the pipeline. Both can wait long
// (the in-flight cap, a full pipeline): the batch is handed on only while the lease is trusted
// (see trusted), which is checked before, bounds both waits, and is checked again after. When it
// returns an error the batch is not handed on and its bytes are back in the memory budget.
func (w *shardWorker) handOn(ctx context.Context, batch []record.Record) error {
	leaseDuration := w.c.opts.Leases.LeaseDuration
	bytes := dataBytes(batch)
	if err := w.lease.trusted(leaseDuration); err != nil {
		w.reader.account.give(bytes)
		return err
	}
	newest := batch[len(batch)-1].ApproximateArrivalTimestamp
	age := w.c.opts.Clock.Now().Sub(newest)
	hooks.Each(w.c.opts.Hooks, func(h hooks.IteratorAge) { h.OnIteratorAge(w.c.streamName, w.shardID, age) })

	// Registering and handing on block while the shard's in-flight cap is reached or the pipeline
	// is full: the backpressure of a slow destination, reported so liveness checks tell it apart
	// from a wedged reader.
	hooks.Each(w.c.opts.Hooks, func(h hooks.ShardWaiting) { h.OnShardWaiting(w.c.streamName, w.shardID, true) })
	defer hooks.Each(w.c.opts.Hooks, func(h hooks.ShardWaiting) { h.OnShardWaiting(w.c.streamName, w.shardID, false) })
	tctx, stop := w.lease.trustContext(ctx, w.c.opts.Clock, leaseDuration)
	defer stop()
	tk, err := w.tracker.add(tctx, batch[len(batch)-1].Position(), len(batch), bytes, 1)
	if err != nil {
		w.reader.account.give(bytes)
		return trustCause(tctx, err)
	}
	if pp, ok := w.pipeline.(ProgressPipeline); ok {
		err = pp.HandleProgress(tctx, batch, tk.progress, tk.ack)
	} else {
		err = w.pipeline.Handle(tctx, batch, tk.ack)
	}
	if err != nil {
		// Refused (the reader is being stopped, or the lease is no longer trusted): done will
		// never be called, so the batch must not hold up the drain. Its records stay after the
		// checkpoint and are read again.
		w.tracker.withdraw(tk)
		return trustCause(tctx, err)
	}
	if err := w.lease.trusted(leaseDuration); err != nil {
		// Handle took the batch just as the trust window ended. Unless it is finished already,
		// it must not count as delivered: it is withdrawn (acks that still come are ignored),
		// the shard stops (its pipeline's work is abandoned) and the checkpoint stays before it.
		w.tracker.withdraw(tk)
		return err
	}
	w.c.log.Debug("records handed on", "shard", w.shardID, "records", len(batch), "last", batch[len(batch)-1].Position().String())
	return nil
}

// checkpointLoop writes the safe position every checkpoint interval while the worker runs.
func (w *shardWorker) checkpointLoop() {
	interval := w.c.opts.Leases.CheckpointInterval
	t := w.c.opts.Clock.NewTimer(interval)
	defer t.Stop()
	for {
		select {
		case <-w.ctx.Done():
			return
		case <-t.C():
		}
		w.writeCheckpoint(w.ctx)
		w.reportCheckpointLag()
		t.Reset(interval)
	}
}

// reportCheckpointLag tells hooks how many records were read from the shard but are not behind
// its written checkpoint: those in flight, plus those delivered since the last checkpoint write.
func (w *shardWorker) reportCheckpointLag() {
	completed, inFlight := w.tracker.progress()
	lag := inFlight + int(completed-w.checkpointedCompleted.Load())
	hooks.Each(w.c.opts.Hooks, func(h hooks.CheckpointLag) { h.OnCheckpointLag(w.c.streamName, w.shardID, lag) })
}

func (w *shardWorker) writeCheckpoint(ctx context.Context) {
	pos, completed := w.tracker.safeMark()
	// Read after the safe position: every record the sinks acknowledged up to pos is in an
	// object by then, so each delivered position is at or past every delivered record up to pos.
	wrote, err := w.lease.checkpoint(ctx, w.c.opts.Table, pos, false, w.delivered())
	if err == nil {
		w.checkpointedCompleted.Store(completed)
	}
	switch {
	case errors.Is(err, checkpoint.ErrLeaseLost):
		w.c.log.Warn("checkpoint refused: the lease is held by another worker now; stopping the shard", "shard", w.shardID)
		w.c.post(workerEvent{w.shardID, "lease lost"})
	case errors.Is(err, errLeaseGone):
	case err != nil:
		if ctx.Err() == nil {
			w.c.tableFailed("checkpoint", err, "shard", w.shardID)
		}
	case wrote:
		w.c.tableHealth.Succeeded()
		w.c.log.Debug("checkpointed", "shard", w.shardID, "position", pos.String())
		hooks.Each(w.c.opts.Hooks, func(h hooks.Checkpointed) {
			h.OnCheckpoint(w.c.streamName, w.shardID, pos.SequenceNumber, pos.SubSequenceNumber)
		})
	}
}

// beforeFirst stands in the lease row for the zero Position (before the shard's first record),
// which is not a sequence number.
var beforeFirst = record.Position{SequenceNumber: "0"}

// delivered returns the position up to which each exactly-once sink holds the shard; nil when
// there are no such sinks. A sink that holds nothing of the shard yet has its run's start
// recorded all the same (beforeFirst for the zero Position): the checkpoint can move past records
// that never reach the sink (filtered, dead-lettered), and the next owner must start its run
// where this one did, not at the checkpoint, to find the objects this run may still write.
func (w *shardWorker) delivered() map[string]record.Position {
	if len(w.c.exactly) == 0 {
		return nil
	}
	m := make(map[string]record.Position, len(w.c.exactly))
	for _, eo := range w.c.exactly {
		if p, ok := eo.Delivered(w.shardID); ok {
			if p.IsZero() {
				p = beforeFirst
			}
			m[eo.Name()] = p
		}
	}
	return m
}

// finishShardEnd runs when the reader reached the end of a closed shard: once every record is
// delivered, write SHARD_END (which lets the children start) and release the lease.
func (w *shardWorker) finishShardEnd() {
	waitCtx, cancel := untilSettled(w.ctx, w.pipeline)
	defer cancel()
	if err := w.tracker.waitDrained(waitCtx); err != nil {
		if w.ctx.Err() == nil {
			// The pipeline settled with records unfinished: keep what is finished, let the
			// shard be read again from there.
			w.finish(w.ctx, w.ctx, "shard end not reached by the processor")
			w.c.post(workerEvent{w.shardID, "failed: records before the shard end left unfinished"})
		}
		return // abandoned or stopping: the next owner reads the rest again
	}
	w.writeCheckpoint(w.ctx)
	if _, err := w.lease.checkpoint(w.ctx, w.c.opts.Table, record.Position{}, true, nil); err != nil {
		if !errors.Is(err, errLeaseGone) {
			w.c.log.Warn("writing SHARD_END failed; the shard will be read again to its end", "shard", w.shardID, "error", err)
		}
		w.c.post(workerEvent{w.shardID, "failed at shard end"})
		return
	}
	if err := w.lease.release(w.ctx, w.c.opts.Table); err != nil && !errors.Is(err, errLeaseGone) {
		w.c.log.Warn("releasing a finished shard's lease failed", "shard", w.shardID, "error", err)
	}
	w.c.log.Info("shard read to its end", "shard", w.shardID)
	w.c.post(workerEvent{w.shardID, "shard end"})
}

// startHandOff marks the worker as leaving; it reports false if it already is.
func (w *shardWorker) startHandOff() bool {
	w.stateMu.Lock()
	defer w.stateMu.Unlock()
	if w.handing || w.finished {
		return false
	}
	w.handing = true
	return true
}

func (w *shardWorker) stopReading() {
	w.stateMu.Lock()
	w.handing = true
	w.stateMu.Unlock()
	w.readCancel()
}

func (w *shardWorker) waitReader(ctx context.Context) {
	select {
	case <-w.readerDone:
	case <-ctx.Done():
	}
}

// finish waits (until waitCtx ends) for every record read to be delivered, then writes the final
// checkpoint and releases the lease using writeCtx. It returns how many records were left
// undelivered.
func (w *shardWorker) finish(waitCtx, writeCtx context.Context, reason string) int {
	waitCtx, cancel := untilSettled(waitCtx, w.pipeline)
	defer cancel()
	_ = w.tracker.waitDrained(waitCtx)
	_, left := w.tracker.pending()
	w.writeCheckpoint(writeCtx)
	if err := w.lease.release(writeCtx, w.c.opts.Table); err != nil && !errors.Is(err, errLeaseGone) {
		hooks.Each(w.c.opts.Hooks, func(h hooks.LeaseTableFailed) { h.OnLeaseTableFailed("release", err) })
		w.c.log.Warn("releasing the lease failed; others take it when it expires", "shard", w.shardID, "error", err)
	}
	w.stateMu.Lock()
	w.finished = true
	w.stateMu.Unlock()
	w.cancel()
	w.c.log.Info("released lease", "shard", w.shardID, "reason", reason, "checkpoint", w.lease.current().Checkpoint.String(), "undelivered", left)
	return left
}

// abandon stops the worker without writing anything more to its lease.
func (w *shardWorker) abandon(reason string) {
	w.stateMu.Lock()
	w.finished = true
	w.stateMu.Unlock()
	w.cancel()
}
