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
