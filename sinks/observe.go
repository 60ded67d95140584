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
	return &observed{Sink: s, hooks: hs}
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
