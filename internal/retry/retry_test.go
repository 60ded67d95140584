package retry

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/shardhose/shardhose/internal/clock"
)

func TestDelayDoublesAndCaps(t *testing.T) {
	p := Policy{Initial: time.Second, Max: 2 * time.Minute, Multiplier: 2}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}
	for i, w := range want {
		if got := p.Delay(i + 1); got != w {
			t.Errorf("Delay(%d) = %v, want %v", i+1, got, w)
		}
	}
	if got := p.Delay(30); got != 2*time.Minute {
		t.Errorf("Delay(30) = %v, want the 2m cap", got)
	}
}

func TestDelayJitterStaysWithinBand(t *testing.T) {
	p := Policy{Initial: 10 * time.Second, Multiplier: 2, Jitter: 0.15}
	for i := 0; i < 1000; i++ {
		d := p.Delay(1)
		if d < 8500*time.Millisecond || d > 11500*time.Millisecond {
			t.Fatalf("Delay(1) = %v, outside 10s ±15%%", d)
		}
	}
}

func TestDoStopsAtMaxElapsedMeasuredOnTheClock(t *testing.T) {
	fc := clock.NewFake(time.Unix(0, 0))
	p := Policy{Initial: time.Second, Max: time.Minute, Multiplier: 2, MaxElapsed: 10 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	boom := errors.New("boom")
	done := make(chan Outcome, 1)
	go func() {
		out, err := Do(ctx, fc, p, func(context.Context, int) error { return boom }, nil)
		if !errors.Is(err, boom) {
			t.Errorf("Do error = %v, want boom", err)
		}
		done <- out
	}()
	for {
		waited := make(chan error, 1)
		go func() { waited <- fc.WaitForTimers(ctx, 1) }()
		select {
		case out := <-done:
			// waits of 1, 2, 4 and then the 3 s left: five attempts in 10 s.
			if out.Attempts != 5 {
				t.Fatalf("attempts = %d, want 5", out.Attempts)
			}
			if got := out.Ended.Sub(out.Started); got != 10*time.Second {
				t.Fatalf("elapsed = %v, want 10s", got)
			}
			return
		case err := <-waited:
			if err != nil {
				t.Fatal(err)
			}
			fc.Advance(time.Second)
		}
	}
}

func TestDoReturnsPermanentErrorAtOnce(t *testing.T) {
	calls := 0
	_, err := Do(context.Background(), clock.Real(), Policy{Initial: time.Hour}, func(context.Context, int) error {
		calls++
		return Permanent(errors.New("413"))
	}, nil)
	if !IsPermanent(err) || calls != 1 {
		t.Fatalf("err=%v calls=%d, want permanent after 1 call", err, calls)
	}
}
