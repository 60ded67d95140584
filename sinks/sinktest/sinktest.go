// Package sinktest holds helpers for testing sinks: predictable records, and done callbacks that
// check the acknowledgement contract of sinks.Sink (done called exactly once per Write).
package sinktest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shardhose/shardhose/record"
)

// Start is the ApproximateArrivalTimestamp of the first record Records makes.
var Start = time.Date(2024, time.May, 6, 10, 0, 0, 0, time.UTC)

// Records returns n records of shard, numbered 0 to n-1: record i has a 56-digit sequence number
// that grows with i (as Kinesis's do, so record.CompareSequenceNumbers orders them), arrives at
// Start plus i milliseconds, and carries the JSON {"shard":...,"seq":...,"n":i} as Data, so every
// record of a test is unique and says where it came from.
func Records(n int, shard string) []record.Record {
	recs := make([]record.Record, n)
	for i := range recs {
		seq := SequenceNumber(i)
		recs[i] = record.Record{
			StreamName:                  "sinktest",
			ShardID:                     shard,
			PartitionKey:                fmt.Sprintf("pk-%d", i),
			SequenceNumber:              seq,
			Data:                        fmt.Appendf(nil, `{"shard":%q,"seq":%q,"n":%d}`, shard, seq, i),
			ApproximateArrivalTimestamp: Start.Add(time.Duration(i) * time.Millisecond),
		}
	}
	return recs
}

// SequenceNumber returns the sequence number Records gives record i.
func SequenceNumber(i int) string { return fmt.Sprintf("49%054d", i+1) }

// AckRecorder hands out done callbacks, one per Write, and records their calls. A callback called
// a second time fails the test (t.Errorf, so it is safe from a sink's goroutines). It is safe for
// concurrent use.
type AckRecorder struct {
	t       testing.TB
	mu      sync.Mutex
	issued  map[int]bool
	calls   map[int]int
	changed chan struct{} // closed and replaced on every first call of a callback
}

// NewAckRecorder returns an AckRecorder that reports contract violations to t.
func NewAckRecorder(t testing.TB) *AckRecorder {
	return &AckRecorder{t: t, issued: map[int]bool{}, calls: map[int]int{}, changed: make(chan struct{})}
}

// Done returns the done callback for the Write identified by id. Each id may be issued once.
func (a *AckRecorder) Done(id int) func() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.issued[id] {
		a.t.Errorf("sinktest: done callback for write %d issued twice", id)
	}
	a.issued[id] = true
	return func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		a.calls[id]++
		if a.calls[id] > 1 {
			a.t.Errorf("sinktest: done for write %d called %d times, want exactly once", id, a.calls[id])
			return
		}
		close(a.changed)
		a.changed = make(chan struct{})
	}
}

// Acked reports whether the callback for write id has been called.
func (a *AckRecorder) Acked(id int) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.calls[id] > 0
}

// Count returns how many distinct writes have been acknowledged.
func (a *AckRecorder) Count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.calls)
}

// Calls returns how many times the callback for write id was called (more than 1 is a violation
// that has already failed the test).
func (a *AckRecorder) Calls(id int) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.calls[id]
}

// Wait blocks until the callbacks of all the given writes have been called, or ctx ends.
func (a *AckRecorder) Wait(ctx context.Context, ids ...int) error {
	return a.waitFor(ctx, func() bool {
		for _, id := range ids {
			if a.calls[id] == 0 {
				return false
			}
		}
		return true
	}, fmt.Sprintf("writes %v", ids))
}

// WaitCount blocks until at least n distinct writes have been acknowledged, or ctx ends.
func (a *AckRecorder) WaitCount(ctx context.Context, n int) error {
	return a.waitFor(ctx, func() bool { return len(a.calls) >= n }, fmt.Sprintf("%d writes", n))
}

func (a *AckRecorder) waitFor(ctx context.Context, ok func() bool, what string) error {
	for {
		a.mu.Lock()
		if ok() {
			a.mu.Unlock()
			return nil
		}
		ch, got := a.changed, len(a.calls)
		a.mu.Unlock()
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for acknowledgement of %s (%d acknowledged): %w", what, got, ctx.Err())
		case <-ch:
		}
	}
}

// LogBuffer collects log output from many goroutines; String returns everything so far.
type LogBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
