package sinks

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/shardhose/shardhose/hooks"
	"github.com/shardhose/shardhose/record"
)

// holdSink keeps each write's done until release, or refuses writes with err.
type holdSink struct {
	mu    sync.Mutex
	dones []func()
	err   error
}

func (s *holdSink) Name() string { return "lake" }
func (s *holdSink) Write(_ context.Context, _ []record.Record, done func()) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	s.dones = append(s.dones, done)
	return nil
}
func (s *holdSink) Flush(context.Context) error { return nil }
func (s *holdSink) Close(context.Context) error { return nil }

type pendingHook struct {
	mu      sync.Mutex
	pending map[uint64]time.Time
	events  []string
}

func (p *pendingHook) OnSinkWrite(sink string, id uint64, oldest time.Time, records int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pending[id] = oldest
	p.events = append(p.events, "write")
}

func (p *pendingHook) OnSinkDone(sink string, id uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.pending, id)
	p.events = append(p.events, "done")
}

func TestObserveReportsPendingWritesUntilAcknowledged(t *testing.T) {
	inner := &holdSink{}
	if got := Observe(inner, hooks.Set{struct{}{}}); got != Sink(inner) {
		t.Fatal("Observe without a SinkPending hook should return the sink itself")
	}
	h := &pendingHook{pending: map[uint64]time.Time{}}
	s := Observe(inner, hooks.Set{h})
	old := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	recs := []record.Record{{ApproximateArrivalTimestamp: old.Add(time.Second)}, {ApproximateArrivalTimestamp: old}}
	acked := false
	if err := s.Write(context.Background(), recs, func() { acked = true }); err != nil {
		t.Fatal(err)
	}
	for _, ts := range h.pending {
		if !ts.Equal(old) {
			t.Fatalf("pending write's oldest arrival %v, want %v", ts, old)
		}
	}
	if len(h.pending) != 1 || acked {
		t.Fatalf("after Write: pending %d, acked %v; want 1 pending, not acked", len(h.pending), acked)
	}
	inner.dones[0]()
	if len(h.pending) != 0 || !acked {
		t.Fatalf("after the sink's ack: pending %d, acked %v", len(h.pending), acked)
	}
	inner.err = errors.New("closed")
	if err := s.Write(context.Background(), recs, func() { t.Fatal("done of a refused write") }); err == nil {
		t.Fatal("the sink's error was not returned")
	}
	if len(h.pending) != 0 {
		t.Fatalf("a refused write stays pending: %v", h.pending)
	}
	if want := []string{"write", "done", "write", "done"}; len(h.events) != 4 {
		t.Fatalf("events %v, want %v", h.events, want)
	}
}

// exactlySink is a holdSink that delivers exactly once: it records the runs opened on it.
type exactlySink struct {
	holdSink
	opened []string
}

func (s *exactlySink) ExactlyOnce() bool { return true }
func (s *exactlySink) OpenShard(shardID string, _ record.Position, _ ShardLease) {
	s.opened = append(s.opened, shardID)
}
func (s *exactlySink) Delivered(string) (record.Position, bool) {
	return record.Position{SequenceNumber: "7"}, true
}

// An observed exactly-once sink must still be one: the consumer finds the ExactlyOnce interface
// on the sinks it is given, and a sink without it delivers at least once.
func TestObserveKeepsExactlyOnce(t *testing.T) {
	inner := &exactlySink{}
	observed := Observe(inner, hooks.Set{&pendingHook{pending: map[uint64]time.Time{}}})
	if observed == Sink(inner) {
		t.Fatal("Observe did not wrap the sink although a SinkPending hook was given")
	}
	eo, ok := observed.(ExactlyOnce)
	if !ok || !eo.ExactlyOnce() {
		t.Fatalf("the observed sink (%T) is not ExactlyOnce: its records would be delivered at least once", observed)
	}
	eo.OpenShard("shardId-1", record.Position{}, nil)
	if len(inner.opened) != 1 || inner.opened[0] != "shardId-1" {
		t.Fatalf("OpenShard reached the sink as %q", inner.opened)
	}
	if p, ok := eo.Delivered("shardId-1"); !ok || p.SequenceNumber != "7" {
		t.Fatalf("Delivered = %v, %v; want the sink's own", p, ok)
	}
	if _, ok := Observe(&holdSink{}, hooks.Set{&pendingHook{}}).(ExactlyOnce); ok {
		t.Fatal("an observed at-least-once sink claims to be ExactlyOnce")
	}
}
