// Package hooks is how shardhose reports what it does without depending on a metrics library.
// A hook is any value; shardhose calls the methods of the interfaces below that it implements, so
// an adapter (Prometheus, logs, a test recorder) implements only what it needs. Hooks are called
// synchronously from the data path and must return quickly and be safe for concurrent use.
package hooks

import "time"

// RecordsRead is told of each GetRecords result for a shard (Firehose's
// DataReadFromKinesisStream.{Records,Bytes} and KinesisMillisBehindLatest).
type RecordsRead interface {
	OnRecordsRead(stream, shardID string, records, bytes int, millisBehindLatest int64)
}

// ThrottledRead is told when GetRecords was throttled (Firehose's ThrottledGetRecords).
type ThrottledRead interface {
	OnThrottledRead(stream, shardID string)
}

// Checkpointed is told when a shard's checkpoint was written.
type Checkpointed interface {
	OnCheckpoint(stream, shardID, sequenceNumber string, subSequenceNumber int64)
}

// IteratorAge is told, for each batch handed on, the age of its newest record (Lambda's IteratorAge).
type IteratorAge interface {
	OnIteratorAge(stream, shardID string, age time.Duration)
}

// Delivered is told of each delivery a sink completed (Firehose's DeliveryToS3.{Records,Bytes,Success}).
type Delivered interface {
	OnDelivered(sink string, records, bytes int, took time.Duration)
}

// DeliveryFailed is told of each failed delivery attempt that a sink will retry or back up.
type DeliveryFailed interface {
	OnDeliveryFailed(sink string, records int, err error)
}

// LeaseChanged is told when this worker takes or gives up a shard's lease.
type LeaseChanged interface {
	OnLeaseTaken(shardID string)
	OnLeaseLost(shardID string, reason string)
}

// ShardProgress is told each time a shard reader's loop turns: every GetRecords or
// GetShardIterator attempt, whether it succeeded or not. Liveness checks use it: a reader that
// stops turning without waiting for room (ShardWaiting) is wedged.
type ShardProgress interface {
	OnShardProgress(stream, shardID string)
}

// ShardWaiting is told when a shard reader starts (waiting true) and stops waiting to hand records
// on: the shard's in-flight cap is reached, or the pipeline or a sink is full. This is the
// backpressure of a slow or failing destination, bounded by leases.stall_timeout, not a wedge.
type ShardWaiting interface {
	OnShardWaiting(stream, shardID string, waiting bool)
}

// MemoryPressure is told when reads have waited a while for room in the memory budget
// (memory.max_in_flight_mbs) and the sinks are asked to deliver what they buffer early.
type MemoryPressure interface {
	OnMemoryPressure()
}

// CheckpointLag is told, at every checkpoint interval of a shard, how many records were read from
// it but are not yet behind its written checkpoint (the records a restart would read again).
type CheckpointLag interface {
	OnCheckpointLag(stream, shardID string, records int)
}

// ShardEnded is told when this worker read a shard to its end (after a reshard), wrote SHARD_END
// and released its lease: it holds the lease no more (LeaseChanged.OnLeaseLost is not called).
type ShardEnded interface {
	OnShardEnd(stream, shardID string)
}

// LeaseClaimed is told when this worker claims a lease from a busier worker, which then hands it
// over (the KCL calls this stealing).
type LeaseClaimed interface {
	OnLeaseClaimed(shardID, owner string)
}

// LeaseTakenOver is told when this worker takes a lease that another worker let expire.
type LeaseTakenOver interface {
	OnLeaseTakenOver(shardID, previousOwner string)
}

// LeaseTableFailed is told of each lease table write (or read) that failed for a reason other than
// a lost lease: operation is renew, checkpoint, take, release, claim, create, delete or list.
type LeaseTableFailed interface {
	OnLeaseTableFailed(operation string, err error)
}

// HandlerCalled is told of every handler call of the processing stage: the shard, the batch size,
// how long it took and its error (nil on success). err wraps process.InvocationError when the
// handler could not be invoked at all.
type HandlerCalled interface {
	OnHandlerCall(shardID string, records int, took time.Duration, err error)
}

// Processed is told what became of the records of each successful handler call: delivered on to
// the sinks, filtered out (FilterCriteria), dropped (Firehose transform result Dropped), or
// processing failed (sent to the error output).
type Processed interface {
	OnProcessed(shardID string, delivered, filtered, dropped, failed int)
}

// BatchSplit is told when a failing batch of records is split in two (bisect_batch_on_function_error).
type BatchSplit interface {
	OnBatchSplit(shardID string, records int)
}

// BatchRetried is told when a failing batch is retried after a backoff; retry counts from 1.
type BatchRetried interface {
	OnBatchRetry(shardID string, records int, retry int)
}

// GaveUp is told when records are given up on (condition is the dead letter's:
// RetryAttemptsExhausted, RecordAgeExceeded, DeaggregationFailed), before they are stored as a
// dead letter (Lambda's DroppedEventCount).
type GaveUp interface {
	OnGiveUp(shardID string, condition string, records int)
}

// DeadLettered is told of each dead letter stored (Lambda's OnFailureDestinationDeliveredEventCount).
type DeadLettered interface {
	OnDeadLetter(shardID string, condition string, records int)
}

// DeadLetterFailed is told of each failed attempt to store a dead letter; it is retried until it
// is stored (Lambda's DestinationDeliveryFailures).
type DeadLetterFailed interface {
	OnDeadLetterFailed(shardID string, condition string, records int, err error)
}

// BackedUp is told of records a sink wrote to its S3 backup after its destination refused them
// (Firehose's BackupToS3.Records for failed records).
type BackedUp interface {
	OnBackedUp(sink string, records int)
}

// SinkPaused is told when one delivery of a sink starts (true) and stops (false) being paused:
// its destination and its backup (or, for S3, its destination, which has no backup) both failing,
// so the sink does not acknowledge and the checkpoint waits. Calls come in pairs per delivery;
// a sink is paused while any of its deliveries is.
type SinkPaused interface {
	OnSinkPaused(sink string, paused bool)
}

// SinkPending is told when a write is handed to a sink (with the arrival time of its oldest record
// and a write id unique per process) and when the sink acknowledges it (OnSinkDone with the same
// id; never for a write that is never acknowledged). Firehose's DataFreshness is the age of the
// oldest record of the writes pending. See sinks.Observe.
type SinkPending interface {
	OnSinkWrite(sink string, id uint64, oldest time.Time, records int)
	OnSinkDone(sink string, id uint64)
}

// Set holds any number of hooks and calls those that implement a given interface.
type Set []any

// Each calls fn for every hook in s that implements H.
func Each[H any](s Set, fn func(H)) {
	for _, h := range s {
		if x, ok := h.(H); ok {
			fn(x)
		}
	}
}

// LeasePass is told each time the lease loop finishes a pass (renewals, shard sync, balance).
type LeasePass interface {
	OnLeasePass()
}
