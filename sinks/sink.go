// Package sinks defines the contract every destination implements, in the manner of Firehose:
// a sink buffers records by its own hints (size and interval), delivers them, and acknowledges
// them only once they are durably delivered or backed up.
//
// The consumer checkpoints a record only after every sink it was written to has acknowledged it,
// so a sink that cannot deliver simply never acknowledges: the checkpoint stays put, the sink's
// bounded buffers fill, Write blocks, and reading stops. Nothing is dropped.
package sinks

import (
	"context"
	"errors"

	"github.com/shardhose/shardhose/record"
)

// ErrClosed is returned by Write after Close has begun.
var ErrClosed = errors.New("sink is closed")

// Sink delivers records to one destination.
//
// Contract:
//   - Write takes ownership of the records (it must not keep references to a caller's slice
//     past delivery, and the caller must not change the records after handing them over).
//   - done is called exactly once per successful Write, after every record of that call is durably
//     delivered or written to the sink's backup; never earlier, never twice. If the records are
//     never delivered (the process stops first), done is never called. done may be called from any
//     goroutine and must not block the sink for long; it is never called while Write holds a lock
//     the caller needs.
//   - Write blocks while the sink's bounded buffers are full (backpressure), and returns early only
//     with ctx's error or ErrClosed; on such an error done is never called for that Write (records
//     of it already buffered may still be delivered: a duplicate at worst, never a loss).
//   - The same records may be handed to several sinks: a sink must not modify them.
//   - Records of one Write keep their order in the destination. Writes from different goroutines
//     may interleave.
//   - All methods are safe for concurrent use.
type Sink interface {
	// Name is the sink's configured name, used in logs, metrics and object names.
	Name() string
	// Write hands records to the sink; see the contract above.
	Write(ctx context.Context, records []record.Record, done func()) error
	// Flush starts delivery of everything buffered so far and waits until it is delivered (every
	// pending done called) or ctx ends, in which case it returns ctx's error and delivery goes on.
	Flush(ctx context.Context) error
	// Close flushes like Flush, then stops the sink's goroutines. After Close, Write returns ErrClosed.
	Close(ctx context.Context) error
}

// LeaseState is what the lease of a shard looks like to the worker reading it, as an
// exactly-once sink asks before each write of that shard's records.
type LeaseState int

const (
	// LeaseHeld: the worker holds the lease and has extended it within a lease duration.
	LeaseHeld LeaseState = iota
	// LeaseUncertain: the lease was not extended for a lease duration (the lease table is slow
	// or unreachable); another worker may hold it. Wait and ask again.
	LeaseUncertain
	// LeaseLost: the lease was lost, released or given up. Nothing more may be written for this
	// run of the shard; its unwritten records stay unacknowledged and are read again by the
	// lease's next owner.
	LeaseLost
)

// ShardLease reports the state of one lease, at the moment it is called. It must be cheap and
// safe to call from any goroutine.
type ShardLease func() LeaseState

// ExactlyOnce is implemented by a sink that can deliver each shard's records exactly once
// (sinks/s3 with delivery: exactly_once). Such a sink keeps, per shard, the position up to which
// the shard's records are in its destination; the consumer stores that position in the lease row
// with each checkpoint and hands it back to whoever takes the lease next, so that a new owner
// neither writes again what is delivered nor leaves a gap.
//
// Contract:
//   - OpenShard is called when this worker takes a shard's lease, before any of the lease's
//     records are written: from is the position the lease row holds for this sink (else the
//     row's checkpoint, else the zero Position). It starts a new run of the shard that replaces
//     any earlier run in this process; lease fences that run: the sink writes nothing for it
//     unless lease reports LeaseHeld, and gives the run up once it reports LeaseLost.
//   - Records of a shard with no open run are delivered at least once, as by any sink.
//   - Delivered returns the position up to which the records of the shard's current run are in
//     the destination (from, until something more is), and is never before any record the
//     sink has acknowledged. It is monotonic within a run.
//   - A shard's records must reach Write in shard order (one pipeline lane per shard).
type ExactlyOnce interface {
	Sink
	// ExactlyOnce reports whether the sink is configured for exactly-once delivery; when false,
	// OpenShard does nothing and the sink delivers at least once.
	ExactlyOnce() bool
	OpenShard(shardID string, from record.Position, lease ShardLease)
	Delivered(shardID string) (record.Position, bool)
}
