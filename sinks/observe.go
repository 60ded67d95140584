package sinks

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/shardhose/shardhose/hooks"
	"github.com/shardhose/shardhose/record"
)

// writeIDs numbers the writes of every observed sink, so hooks can match a write with its ack.
var writeIDs atomic.Uint64

// Observe wraps s so that hooks.SinkPending hooks are told of each write handed to it and of each
// acknowledgement: from these a metrics adapter knows the age of the oldest record a sink holds
// undelivered (Firehose's DataFreshness). Without such hooks it returns s itself. The wrapper
// keeps s's contract: done is called exactly when s calls it, after the hooks.
func Observe(s Sink, hs hooks.Set) Sink {
	watching := false
	hooks.Each(hs, func(hooks.SinkPending) { watching = true })
	if !watching {
		return s
	}
	o := &observed{Sink: s, hooks: hs}
	if eo, ok := s.(ExactlyOnce); ok {
		// The consumer finds exactly-once sinks by this interface: hiding it would make the
		// sink deliver at least once.
		return &observedExactlyOnce{observed: o, exactly: eo}
	}
	return o
}

// observedExactlyOnce is an observed sink that keeps the ExactlyOnce contract of the sink it
// wraps, passing its calls straight through.
type observedExactlyOnce struct {
	*observed
	exactly ExactlyOnce
}

func (o *observedExactlyOnce) ExactlyOnce() bool { return o.exactly.ExactlyOnce() }
func (o *observedExactlyOnce) OpenShard(shardID string, from record.Position, lease ShardLease) {
	o.exactly.OpenShard(shardID, from, lease)
}
func (o *observedExactlyOnce) Delivered(shardID string) (record.Position, bool) {
	return o.exactly.Delivered(shardID)
}

type observed struct {
	Sink
	hooks hooks.Set
}

func (o *observed) Write(ctx context.Context, records []record.Record, done func()) error {
	if len(records) == 0 {
		return o.Sink.Write(ctx, records, done)
	}
	oldest := records[0].ApproximateArrivalTimestamp
	for _, r := range records[1:] {
		if r.ApproximateArrivalTimestamp.Before(oldest) {
			oldest = r.ApproximateArrivalTimestamp
		}
	}
	if oldest.IsZero() {
		oldest = time.Now()
	}
	id := writeIDs.Add(1)
	name := o.Sink.Name()
	hooks.Each(o.hooks, func(h hooks.SinkPending) { h.OnSinkWrite(name, id, oldest, len(records)) })
	ack := func() {
		hooks.Each(o.hooks, func(h hooks.SinkPending) { h.OnSinkDone(name, id) })
		done()
	}
	if err := o.Sink.Write(ctx, records, ack); err != nil {
		// done is never called for a refused write: it is no longer pending in the sink.
		hooks.Each(o.hooks, func(h hooks.SinkPending) { h.OnSinkDone(name, id) })
		return err
	}
	return nil
}
