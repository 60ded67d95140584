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
