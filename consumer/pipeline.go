package consumer

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/shardhose/shardhose/record"
	"github.com/shardhose/shardhose/sinks"
)

// Pipeline sees the batches of one shard through once they are read: processing, delivery to
// the sinks, dead letters. The consumer makes one per shard it reads (Options.NewPipeline) and
// calls Handle with that shard's batches in read order, one call at a time.
//
// Contract:
//   - Handle may return before the batch is finished. It calls done exactly once, when every
//     record of the batch has been delivered to every sink it goes to, or filtered, dropped, or
//     written as a dead letter; never earlier. A batch that never finishes (the process stops
//     first) never calls done, and the shard's checkpoint stays before it.
//   - Handle blocks while the pipeline is full (backpressure), and returns early only with ctx's
//     error, after which the shard stops.
//   - Close is called once the consumer stops reading the shard, after its last Handle returned.
//     It releases per-shard resources; batches still in flight may go on finishing.
type Pipeline interface {
	Handle(ctx context.Context, batch []record.Record, done func()) error
	Close()
}

// PipelineFactory makes the Pipeline of one shard. ctx ends when the consumer stops reading the
// shard for good (after a graceful finish, or at once when the lease is lost or on a hard stop):
// work still under way for the shard should end with it.
type PipelineFactory func(ctx context.Context, shardID string) Pipeline

// DeliverToSinks returns the PipelineFactory that hands every batch, unchanged, to every sink:
// done is called once all of them have acknowledged it.
func DeliverToSinks(s []sinks.Sink) PipelineFactory {
	return func(context.Context, string) Pipeline { return fanout(s) }
}

type fanout []sinks.Sink

func (f fanout) Handle(ctx context.Context, batch []record.Record, done func()) error {
	return WriteToSinks(ctx, f, batch, done)
}

func (f fanout) Close() {}

// WriteToSinks writes records to every sink and calls done once all of them have acknowledged
// the write. With no records (or no sinks) done is called at once.
func WriteToSinks(ctx context.Context, to []sinks.Sink, records []record.Record, done func()) error {
	if len(records) == 0 || len(to) == 0 {
		done()
		return nil
	}
	var left atomic.Int32
	left.Store(int32(len(to)))
	ack := func() {
		if left.Add(-1) == 0 {
			done()
		}
	}
	for _, s := range to {
		if err := s.Write(ctx, records, ack); err != nil {
			return fmt.Errorf("write to sink %s: %w", s.Name(), err)
		}
	}
	return nil
}

// ProgressPipeline is a Pipeline that can also report a batch finished up to a record inside it,
// before the whole batch is. The consumer calls HandleProgress instead of Handle. progress(pos)
// says every record of the batch at or before pos is finished; the shard's checkpoint may then
// pass pos once every earlier batch is done. Positions must not go backwards; done is still
// called once, when the whole batch is finished.
type ProgressPipeline interface {
	Pipeline
	HandleProgress(ctx context.Context, batch []record.Record, progress func(record.Position), done func()) error
}

// ShardEndPipeline is a Pipeline that is told when its shard has been read to its end, after the
// last Handle returned and before the consumer waits for every batch to finish to write
// SHARD_END.
type ShardEndPipeline interface {
	Pipeline
	ShardEnded()
}

// SettlingPipeline is a Pipeline that can tell when it will finish no more batches (it gave up on
// those still open, which stay after the checkpoint and are read again by the next owner).
// Settled's channel is closed then; a drain, hand-off or shard end stops waiting for the batches
// left at that moment instead of waiting for its deadline.
type SettlingPipeline interface {
	Pipeline
	Settled() <-chan struct{}
}

// untilSettled returns ctx, ended early when p is a SettlingPipeline that has settled.
func untilSettled(ctx context.Context, p Pipeline) (context.Context, context.CancelFunc) {
	sp, ok := p.(SettlingPipeline)
	if !ok {
		return ctx, func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-sp.Settled():
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}
