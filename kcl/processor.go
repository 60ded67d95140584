package kcl

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/vmware/vmware-go-kcl-v2/clientlibrary/interfaces"

	"github.com/shardhose/shardhose/checkpoint"
	"github.com/shardhose/shardhose/consumer"
	"github.com/shardhose/shardhose/record"
)

// ErrShutdown is returned by Checkpoint once the processor can no longer checkpoint: the lease
// was lost (another worker may already process the shard), the worker stopped, or the
// processor's Shutdown has returned. Nothing was written. It matches the library's ShutdownError:
// the processor should stop processing.
var ErrShutdown = errors.New("kcl: the record processor has been shut down; the checkpoint was not written")

// ErrUnknownSequenceNumber is returned by Checkpoint for a sequence number that was not handed to
// this processor and is past its checkpoint.
var ErrUnknownSequenceNumber = errors.New("kcl: sequence number not among the records handed to this processor")

// handed is one ProcessRecords batch not yet fully checkpointed.
type handed struct {
	positions []record.Position
	progress  func(record.Position)
	done      func()
}

func (h *handed) last() record.Position { return h.positions[len(h.positions)-1] }

// shardProcessor is the consumer's pipeline for one shard: it drives the application's record
// processor and turns its Checkpoint calls into acknowledgements of the batches it was handed,
// which the consumer then writes, fenced, to the lease table.
//
// A Checkpoint at position P acknowledges every record up to P; the consumer's tracker lets the
// checkpoint reach P, its checkpoint loop writes it (conditional on this worker's lease), and
// Checkpoint returns once that write is seen (or ErrShutdown if the lease is lost first).
type shardProcessor struct {
	w       *Worker
	shardID string
	ctx     context.Context // ends when the consumer is done with the shard
	log     *slog.Logger
	proc    interfaces.IRecordProcessor
	cp      *checkpointer

	ready    chan struct{} // closed once Initialize returned (or init gave up)
	initErr  error
	settled  chan struct{} // closed once Shutdown returned: no more acknowledgements
	shutOnce sync.Once

	mu         sync.Mutex
	written    record.Position // last checkpoint known written
	writtenCh  chan struct{}   // closed and replaced when written moves
	finished   record.Position // last position acknowledged to the consumer
	lastHanded record.Position
	pending    []*handed
	closed     bool // Shutdown returned, or the processor panicked: Checkpoint refuses
	lost       bool // shut down as ZOMBIE: Checkpoint refuses
}

var (
	_ consumer.ProgressPipeline = (*shardProcessor)(nil)
	_ consumer.ShardEndPipeline = (*shardProcessor)(nil)
	_ consumer.SettlingPipeline = (*shardProcessor)(nil)
)

func newShardProcessor(ctx context.Context, w *Worker, shardID string) *shardProcessor {
	sp := &shardProcessor{
		w:         w,
		shardID:   shardID,
		ctx:       ctx,
		log:       w.log.With("shard", shardID),
		ready:     make(chan struct{}),
		settled:   make(chan struct{}),
		writtenCh: make(chan struct{}),
	}
	sp.cp = &checkpointer{sp: sp}
	go sp.initialize()
	return sp
}

// initialize reads the shard's checkpoint and calls the processor's Initialize with it.
func (sp *shardProcessor) initialize() {
	defer close(sp.ready)
	var (
		l   checkpoint.Lease
		err error
	)
	for attempt := 0; ; attempt++ {
		l, _, err = sp.w.rows.Get(sp.ctx, sp.shardID)
		if err == nil || sp.ctx.Err() != nil {
			break
		}
		sp.log.Warn("kcl: reading the shard's checkpoint failed; retrying", "error", err)
		select {
		case <-sp.ctx.Done():
		case <-time.After(time.Duration(min(attempt+1, 10)) * 200 * time.Millisecond):
		}
	}
	if err != nil {
		sp.initErr = err
		return
	}
	// As the library does, ExtendedSequenceNumber is never nil: its SequenceNumber is the stored
	// checkpoint, "" when there is none.
	in := &interfaces.InitializationInput{ShardId: sp.shardID, ExtendedSequenceNumber: &interfaces.ExtendedSequenceNumber{
		SequenceNumber:    aws.String(l.Checkpoint.SequenceNumber),
		SubSequenceNumber: l.Checkpoint.SubSequenceNumber,
	}}
	if l.ShardEnd {
		in.ExtendedSequenceNumber.SequenceNumber = aws.String(checkpoint.ShardEnd)
	}
	sp.mu.Lock()
	sp.written, sp.finished = l.Checkpoint, l.Checkpoint
	sp.mu.Unlock()
	sp.proc = sp.w.factory.CreateProcessor()
	if p := sp.call(func() { sp.proc.Initialize(in) }); p != nil {
		sp.initErr = fmt.Errorf("record processor panicked in Initialize: %v", p)
		sp.log.Error("kcl: record processor panicked in Initialize; the shard will be read again from its checkpoint", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		sp.mu.Lock()
		sp.closed = true
		sp.mu.Unlock()
		sp.settle()
	}
}

// call runs fn, returning what it panicked with, or nil.
func (sp *shardProcessor) call(fn func()) (panicked any) {
	defer func() { panicked = recover() }()
	fn()
	return nil
}

// waitReady waits for Initialize to have returned; it returns ctx's error only when ctx ends
// first (a processor that was initialized is always shut down, even on a cancelled context).
func (sp *shardProcessor) waitReady(ctx context.Context) error {
	select {
	case <-sp.ready:
		return sp.initErr
	default:
	}
	select {
	case <-sp.ready:
		return sp.initErr
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Handle is HandleProgress without progress reports (the consumer uses HandleProgress).
func (sp *shardProcessor) Handle(ctx context.Context, batch []record.Record, done func()) error {
	return sp.HandleProgress(ctx, batch, func(record.Position) {}, done)
}

// HandleProgress calls ProcessRecords with the batch. done (and progress, for a checkpoint
// inside the batch) are called when the processor checkpoints them. A panic shuts the processor
// down and returns an error, which stops the shard; it is read again from its checkpoint.
func (sp *shardProcessor) HandleProgress(ctx context.Context, batch []record.Record, progress func(record.Position), done func()) error {
	if err := sp.waitReady(ctx); err != nil {
		return err
	}
	recs := make([]types.Record, len(batch))
	h := &handed{positions: make([]record.Position, len(batch)), progress: progress, done: done}
	for i, r := range batch {
		ts := r.ApproximateArrivalTimestamp
		recs[i] = types.Record{
			Data:                        r.Data,
			PartitionKey:                aws.String(r.PartitionKey),
			SequenceNumber:              aws.String(r.SequenceNumber),
			ApproximateArrivalTimestamp: &ts,
		}
		h.positions[i] = r.Position()
	}
	sp.mu.Lock()
	if sp.closed || sp.lost {
		sp.mu.Unlock()
		return ErrShutdown
	}
	sp.pending = append(sp.pending, h)
	sp.lastHanded = h.last()
	sp.mu.Unlock()

	now := time.Now()
	in := &interfaces.ProcessRecordsInput{
		Records:            recs,
		Checkpointer:       sp.cp,
		MillisBehindLatest: sp.w.millisBehind(sp.shardID),
		CacheEntryTime:     &now,
		CacheExitTime:      &now,
	}
	if p := sp.call(func() { sp.proc.ProcessRecords(in) }); p != nil {
		sp.log.Error("kcl: record processor panicked in ProcessRecords; shutting it down and reading the shard again from its checkpoint",
			"panic", fmt.Sprint(p), "records", len(batch), "first", batch[0].Position().String(), "stack", string(debug.Stack()))
		sp.shutdown(interfaces.ZOMBIE)
		return fmt.Errorf("record processor panicked: %v", p)
	}
	return nil
}

// ShardEnded calls Shutdown with TERMINATE: the processor checkpoints (Checkpoint(nil) or the last
// sequence number) to let the consumer write SHARD_END and start the children.
func (sp *shardProcessor) ShardEnded() {
	if sp.waitReady(sp.ctx) != nil {
		return
	}
	sp.shutdown(interfaces.TERMINATE)
}

// Close calls Shutdown when the shard stops for another reason than its end: ZOMBIE when the
// lease was lost (or the worker stopped hard), REQUESTED on a graceful stop or hand-off.
func (sp *shardProcessor) Close() {
	if sp.waitReady(sp.ctx) != nil {
		sp.settle()
		return
	}
	if sp.ctx.Err() != nil {
		sp.shutdown(interfaces.ZOMBIE)
		return
	}
	sp.shutdown(interfaces.REQUESTED)
}

// Settled is closed once the processor's Shutdown has returned.
func (sp *shardProcessor) Settled() <-chan struct{} { return sp.settled }

func (sp *shardProcessor) settle() {
	sp.shutOnce.Do(func() {
		close(sp.settled)
		sp.w.forget(sp)
	})
}

func (sp *shardProcessor) shutdown(reason interfaces.ShutdownReason) {
	sp.mu.Lock()
	if sp.closed {
		sp.mu.Unlock()
		sp.settle()
		return
	}
	if reason == interfaces.ZOMBIE {
		sp.lost = true
	}
	sp.mu.Unlock()
	if p := sp.call(func() {
		sp.proc.Shutdown(&interfaces.ShutdownInput{ShutdownReason: reason, Checkpointer: sp.cp})
	}); p != nil {
		sp.log.Error("kcl: record processor panicked in Shutdown", "reason", aws.ToString(interfaces.ShutdownReasonMessage(reason)), "panic", fmt.Sprint(p))
	}
	sp.mu.Lock()
	sp.closed = true
	sp.mu.Unlock()
	sp.log.Info("kcl: record processor shut down", "reason", aws.ToString(interfaces.ShutdownReasonMessage(reason)))
	sp.settle()
}

func (sp *shardProcessor) markWritten(pos record.Position) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if pos.Compare(sp.written) > 0 {
		sp.written = pos
		close(sp.writtenCh)
		sp.writtenCh = make(chan struct{})
	}
}

// resolve returns the position a Checkpoint of seq stands for: the last record handed with that
// sequence number (all user records of a KPL aggregate), or the last record handed when seq is
// nil. ok is false when seq is at or before what is already acknowledged (nothing to do).
func (sp *shardProcessor) resolveLocked(seq *string) (pos record.Position, ok bool, err error) {
	if seq == nil {
		if sp.lastHanded.Compare(sp.finished) <= 0 {
			return record.Position{}, false, nil
		}
		return sp.lastHanded, true, nil
	}
	s := *seq
	if record.CompareSequenceNumbers(s, sp.finished.SequenceNumber) < 0 ||
		(s == sp.finished.SequenceNumber && len(sp.pending) == 0) {
		return record.Position{}, false, nil
	}
	for i := len(sp.pending) - 1; i >= 0; i-- {
		ps := sp.pending[i].positions
		for j := len(ps) - 1; j >= 0; j-- {
			if ps[j].SequenceNumber == s {
				if ps[j].Compare(sp.finished) <= 0 {
					return record.Position{}, false, nil
				}
				return ps[j], true, nil
			}
		}
	}
	return record.Position{}, false, fmt.Errorf("%w: %s (shard %s, checkpoint %s, last handed %s)",
		ErrUnknownSequenceNumber, s, sp.shardID, sp.finished.String(), sp.lastHanded.String())
}

// checkpoint acknowledges everything up to seq and waits until the consumer has written it.
func (sp *shardProcessor) checkpoint(seq *string) error {
	sp.mu.Lock()
	if sp.closed || sp.lost || sp.ctx.Err() != nil {
		sp.mu.Unlock()
		return fmt.Errorf("%w (shard %s)", ErrShutdown, sp.shardID)
	}
	target, ok, err := sp.resolveLocked(seq)
	if err != nil || !ok {
		sp.mu.Unlock()
		return err
	}
	for len(sp.pending) > 0 {
		h := sp.pending[0]
		if h.last().Compare(target) <= 0 {
			h.done()
			sp.pending[0] = nil
			sp.pending = sp.pending[1:]
			continue
		}
		if h.positions[0].Compare(target) <= 0 {
			h.progress(target)
		}
		break
	}
	sp.finished = target
	for sp.written.Compare(target) < 0 {
		ch := sp.writtenCh
		sp.mu.Unlock()
		select {
		case <-ch:
		case <-sp.ctx.Done():
			return fmt.Errorf("%w: the lease on shard %s was lost or the worker stopped before position %s was written",
				ErrShutdown, sp.shardID, target.String())
		}
		sp.mu.Lock()
	}
	sp.mu.Unlock()
	return nil
}

// checkpointer is the IRecordProcessorCheckpointer handed to the application.
type checkpointer struct{ sp *shardProcessor }

// Checkpoint records that every record up to sequenceNumber (nil: every record handed so far)
// is processed, and returns once the checkpoint is written to the lease table with a write fenced
// on this worker's lease. It returns ErrShutdown, writing nothing, when the lease was lost.
//
// Unlike the library, nil means "everything handed so far", not SHARD_END: the consumer writes
// SHARD_END itself once a closed shard is checkpointed to its last record.
func (c *checkpointer) Checkpoint(sequenceNumber *string) error {
	return c.sp.checkpoint(sequenceNumber)
}

// PrepareCheckpoint checks sequenceNumber and returns a checkpoint to be written later.
func (c *checkpointer) PrepareCheckpoint(sequenceNumber *string) (interfaces.IPreparedCheckpointer, error) {
	sp := c.sp
	sp.mu.Lock()
	_, _, err := sp.resolveLocked(sequenceNumber)
	sp.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return &prepared{sp: sp, seq: sequenceNumber}, nil
}

type prepared struct {
	sp  *shardProcessor
	seq *string
}

func (p *prepared) GetPendingCheckpoint() *interfaces.ExtendedSequenceNumber {
	return &interfaces.ExtendedSequenceNumber{SequenceNumber: p.seq}
}

func (p *prepared) Checkpoint() error { return p.sp.checkpoint(p.seq) }
