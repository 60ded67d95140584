package clock

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestFakeTimerFiresOnlyWhenAdvancedPastDeadline(t *testing.T) {
	f := NewFake(time.Unix(0, 0))
	tm := f.NewTimer(10 * time.Second)
	f.Advance(9 * time.Second)
	select {
	case <-tm.C():
		t.Fatal("timer fired before its deadline")
	default:
	}
	f.Advance(time.Second)
	select {
	case got := <-tm.C():
		if !got.Equal(time.Unix(10, 0)) {
			t.Fatalf("fired at %v, want 10s", got)
		}
	default:
		t.Fatal("timer did not fire at its deadline")
	}
}

func TestFakeSleepReturnsAfterAdvance(t *testing.T) {
	f := NewFake(time.Unix(0, 0))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Sleep(ctx, f, time.Minute) }()
	if err := f.WaitForTimers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	f.Advance(time.Minute)
	if err := <-done; err != nil {
		t.Fatalf("Sleep returned %v", err)
	}
}

func TestSleepStopsOnContextCancel(t *testing.T) {
	f := NewFake(time.Unix(0, 0))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Sleep(ctx, f, time.Hour); err != context.Canceled {
		t.Fatalf("Sleep = %v, want context.Canceled", err)
	}
}

func TestWithTimeoutEndsWithItsCauseOnTheClock(t *testing.T) {
	f := NewFake(time.Unix(0, 0))
	cause := errors.New("retry round over")
	ctx, stop := WithTimeout(context.Background(), f, time.Minute, cause)
	defer stop()
	f.Advance(59 * time.Second)
	if ctx.Err() != nil {
		t.Fatal("ended before its time on the clock")
	}
	f.Advance(time.Second)
	<-ctx.Done()
	if context.Cause(ctx) != cause {
		t.Fatalf("cause = %v, want %v", context.Cause(ctx), cause)
	}
}
