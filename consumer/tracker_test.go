package consumer

import (
	"context"
	"testing"
	"time"

	"github.com/shardhose/shardhose/record"
)

func pos(s string) record.Position { return record.Position{SequenceNumber: s} }

func TestTrackerAdvancesOnlyOverAContiguousPrefix(t *testing.T) {
	ctx := context.Background()
	tr := newTracker(pos("0"), 1000)
	a, _ := tr.add(ctx, pos("10"), 10, 0, 2)
	b, _ := tr.add(ctx, pos("20"), 10, 0, 2)
	c, _ := tr.add(ctx, pos("30"), 10, 0, 2)

	// The later batches complete first: nothing may be checkpointed past the first.
	b.ack()
	b.ack()
	c.ack()
	c.ack()
	if got := tr.safePosition(); got != pos("0") {
		t.Fatalf("safe = %v before the first batch completed, want 0", got)
	}
	// One of two sinks acking the first batch is not enough.
	a.ack()
	if got := tr.safePosition(); got != pos("0") {
		t.Fatalf("safe = %v with one sink still pending, want 0", got)
	}
	a.ack()
	if got := tr.safePosition(); got != pos("30") {
		t.Fatalf("safe = %v after all acks, want 30", got)
	}
	if n, r := tr.pending(); n != 0 || r != 0 {
		t.Fatalf("pending = %d batches %d records, want none", n, r)
	}
}

func TestTrackerIgnoresExtraAcks(t *testing.T) {
	ctx := context.Background()
	tr := newTracker(record.Position{}, 100)
	a, _ := tr.add(ctx, pos("1"), 1, 0, 1)
	b, _ := tr.add(ctx, pos("2"), 1, 0, 2)
	a.ack()
	a.ack() // a sink that acked twice must not complete b on its behalf
	b.ack()
	if got := tr.safePosition(); got != pos("1") {
		t.Fatalf("safe = %v, want 1", got)
	}
}

func TestTrackerBlocksAtTheInFlightCap(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr := newTracker(record.Position{}, 10)
	a, _ := tr.add(ctx, pos("8"), 8, 0, 1)
	added := make(chan *ticket)
	go func() {
		k, err := tr.add(ctx, pos("16"), 8, 0, 1)
		if err != nil {
			t.Errorf("add: %v", err)
		}
		added <- k
	}()
	select {
	case <-added:
		t.Fatal("add went past the in-flight cap")
	default:
	}
	if _, r := tr.pending(); r != 8 {
		t.Fatalf("in flight = %d, want 8 while the second add waits", r)
	}
	a.ack()
	select {
	case k := <-added:
		k.ack()
	case <-ctx.Done():
		t.Fatal("add still blocked after room was made")
	}
	if got := tr.safePosition(); got != pos("16") {
		t.Fatalf("safe = %v, want 16", got)
	}
}

func TestTrackerAddReturnsOnContextEnd(t *testing.T) {
	tr := newTracker(record.Position{}, 1)
	if _, err := tr.add(context.Background(), pos("1"), 1, 0, 1); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := tr.add(ctx, pos("2"), 1, 0, 1); err == nil {
		t.Fatal("add past the cap with a cancelled context returned no error")
	}
}

func TestTrackerWaitDrained(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr := newTracker(record.Position{}, 100)
	a, _ := tr.add(ctx, pos("1"), 1, 0, 1)
	done := make(chan error, 1)
	go func() { done <- tr.waitDrained(ctx) }()
	a.ack()
	if err := <-done; err != nil {
		t.Fatalf("waitDrained: %v", err)
	}
}

func TestTrackerProgressInsideTheOldestBatch(t *testing.T) {
	tr := newTracker(record.Position{}, 1000)
	ctx := context.Background()
	a, _ := tr.add(ctx, pos("10"), 10, 0, 1)
	b, _ := tr.add(ctx, pos("20"), 10, 0, 1)
	b.progress(pos("15")) // not the oldest batch: the safe position may not pass the first one
	if got := tr.safePosition(); !got.IsZero() {
		t.Fatalf("safe = %s after progress in the second batch, want zero", got)
	}
	a.progress(pos("5"))
	if got := tr.safePosition(); got != pos("5") {
		t.Fatalf("safe = %s after progress to 5 in the oldest batch, want 5", got)
	}
	a.progress(pos("3")) // backwards: ignored
	if got := tr.safePosition(); got != pos("5") {
		t.Fatalf("safe = %s after a backward progress, want 5", got)
	}
	a.ack()
	if got := tr.safePosition(); got != pos("15") {
		t.Fatalf("safe = %s once the first batch is done, want the second batch's progress 15", got)
	}
	b.ack()
	if got := tr.safePosition(); got != pos("20") {
		t.Fatalf("safe = %s once both are done, want 20", got)
	}
}
