package sinktest

import (
	"context"
	"errors"
	"testing"

	"github.com/shardhose/shardhose/record"
)

func TestRecordsIncrease(t *testing.T) {
	recs := Records(1000, "shardId-000000000001")
	for i := 1; i < len(recs); i++ {
		prev, cur := recs[i-1], recs[i]
		if record.CompareSequenceNumbers(prev.SequenceNumber, cur.SequenceNumber) >= 0 {
			t.Fatalf("sequence number %d (%s) does not follow %s", i, cur.SequenceNumber, prev.SequenceNumber)
		}
		if !cur.ApproximateArrivalTimestamp.After(prev.ApproximateArrivalTimestamp) {
			t.Fatalf("record %d arrives at %v, not after %v", i, cur.ApproximateArrivalTimestamp, prev.ApproximateArrivalTimestamp)
		}
		if string(cur.Data) == string(prev.Data) {
			t.Fatalf("records %d and %d carry the same data", i-1, i)
		}
	}
	if !recs[0].ApproximateArrivalTimestamp.Equal(Start) || recs[0].ShardID != "shardId-000000000001" {
		t.Fatalf("first record %+v", recs[0])
	}
}

// fakeTB records Errorf calls instead of failing the test.
type fakeTB struct {
	testing.TB
	errors int
}

func (f *fakeTB) Errorf(string, ...any) { f.errors++ }

func TestAckRecorder(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	tb := &fakeTB{TB: t}
	a := NewAckRecorder(tb)
	d1, d2 := a.Done(1), a.Done(2)

	waited := make(chan error, 1)
	go func() { waited <- a.Wait(ctx, 1, 2) }()
	d1()
	if a.Count() != 1 || !a.Acked(1) || a.Acked(2) {
		t.Fatalf("after one call: count %d", a.Count())
	}
	d2()
	if err := <-waited; err != nil {
		t.Fatal(err)
	}
	if tb.errors != 0 {
		t.Fatalf("%d errors for single calls", tb.errors)
	}

	d1()
	if tb.errors != 1 || a.Calls(1) != 2 {
		t.Fatalf("second call of a done: %d errors, %d calls; want 1 and 2", tb.errors, a.Calls(1))
	}
	a.Done(2)
	if tb.errors != 2 {
		t.Fatal("issuing an id twice was not reported")
	}

	cancel()
	if err := a.WaitCount(ctx, 3); !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitCount with 2 of 3 acknowledged and ctx cancelled returned %v", err)
	}
}
