package outage

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shardhose/shardhose/internal/clock"
)

type line map[string]any

func lines(t *testing.T, buf *bytes.Buffer) []line {
	t.Helper()
	var out []line
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if l == "" {
			continue
		}
		var m line
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not JSON: %q", l)
		}
		out = append(out, m)
	}
	return out
}

type sdkErr struct{ n int }

func (e sdkErr) Error() string { return fmt.Sprintf("failed after %d attempts", e.n) }
func (e sdkErr) Attempts() int { return e.n }

func newReporter(every time.Duration) (*Reporter, *clock.Fake, *bytes.Buffer) {
	var buf bytes.Buffer
	clk := clock.NewFake(time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC))
	r := New(Options{
		Dependency: "s3", Resource: "bucket-a",
		Logger: slog.New(slog.NewJSONHandler(&buf, nil)).With("sink", "archive"),
		Clock:  clk, Every: every,
	})
	return r, clk, &buf
}

func TestFirstFailureAtOnceRepeatsBoundedRecoveryOnce(t *testing.T) {
	r, clk, buf := newReporter(10 * time.Second)
	r.Succeeded() // healthy: nothing to say
	if n := len(lines(t, buf)); n != 0 {
		t.Fatalf("a success while healthy logged %d lines", n)
	}

	r.Failed(sdkErr{3}, "key", "k1")
	got := lines(t, buf)
	if len(got) != 1 || got[0]["msg"] != MsgFailing || got[0]["level"] != "WARN" || got[0]["attempts"] != 3.0 ||
		got[0]["dependency"] != "s3" || got[0]["resource"] != "bucket-a" || got[0]["sink"] != "archive" || got[0]["key"] != "k1" {
		t.Fatalf("first failure: %v", got)
	}
	if !r.Down() {
		t.Error("Down() = false after a failure")
	}

	// 50 more failures over 49 s: one line per 10 s at most, each counting the unlogged ones.
	for i := 0; i < 50; i++ {
		clk.Advance(time.Second)
		r.Failed(errors.New("connection refused"))
	}
	got = lines(t, buf)[1:]
	if len(got) != 5 {
		t.Fatalf("50 failures over 50 s with a 10 s interval logged %d more lines, want 5: %v", len(got), got)
	}
	unlogged := 0.0
	for _, l := range got {
		if l["msg"] != MsgStillFailing {
			t.Fatalf("repeat line %v", l)
		}
		unlogged += l["unlogged"].(float64)
	}
	if unlogged+float64(len(got)) != 50 {
		t.Errorf("logged %d and counted %v unlogged, want 50 in all", len(got), unlogged)
	}
	last := got[len(got)-1]
	if last["failures"] != 51.0 || last["attempts"] != 53.0 || last["down_for"] != "50s" {
		t.Errorf("last repeat line %v: want failures 51, attempts 53, down_for 50s", last)
	}

	clk.Advance(2 * time.Second)
	r.Succeeded()
	r.Succeeded()
	got = lines(t, buf)[6:]
	if len(got) != 1 || got[0]["msg"] != MsgRecovered || got[0]["level"] != "INFO" || got[0]["down_for"] != "52s" || got[0]["failures"] != 51.0 {
		t.Fatalf("recovery: %v", got)
	}

	// A new outage is logged at once again.
	r.Failed(errors.New("again"))
	if got := lines(t, buf); len(got) != 8 || got[7]["msg"] != MsgFailing || got[7]["attempts"] != 1.0 {
		t.Fatalf("second outage: %v", got[7:])
	}
}

func TestConcurrentReportsKeepCounts(t *testing.T) {
	r, _, buf := newReporter(time.Hour)
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				r.Failed(sdkErr{2})
			}
		}()
	}
	wg.Wait()
	r.Succeeded()
	got := lines(t, buf)
	if len(got) != 2 || got[0]["msg"] != MsgFailing || got[1]["msg"] != MsgRecovered || got[1]["failures"] != 800.0 || got[1]["attempts"] != 1600.0 {
		t.Fatalf("800 concurrent failures then a success: %v", got)
	}
}

func TestNilReporterIsSilent(t *testing.T) {
	var r *Reporter
	r.Failed(errors.New("x"))
	r.Succeeded()
	if r.Down() {
		t.Error("a nil Reporter is never down")
	}
}

// TestFlappingDependencyIsLoggedAtABoundedRate: calls failing and succeeding in turn (some of
// many concurrent calls timing out) start an outage at each failure; only one per interval is
// announced, with the failures of the others counted, and only an announced one's recovery is
// logged.
func TestFlappingDependencyIsLoggedAtABoundedRate(t *testing.T) {
	r, clk, buf := newReporter(10 * time.Second)
	for i := 0; i < 100; i++ { // 100 flaps over 25 s
		r.Failed(errors.New("timeout"))
		r.Succeeded()
		clk.Advance(250 * time.Millisecond)
	}
	got := lines(t, buf)
	var failing, recovered int
	unlogged := 0.0
	for _, l := range got {
		switch l["msg"] {
		case MsgFailing:
			failing++
			if u, ok := l["unlogged"].(float64); ok {
				unlogged += u
			}
		case MsgRecovered:
			recovered++
		default:
			t.Fatalf("unexpected line %v", l)
		}
	}
	if failing != 3 || recovered != 3 {
		t.Fatalf("100 flaps over 25 s with a 10 s interval: %d failing and %d recovered lines, want 3 each: %v", failing, recovered, got)
	}
	// Announced at 0 s, 10 s and 20 s; the 39 failures between two announcements are counted
	// in the later one (those after 20 s wait for the next line).
	if unlogged != 78 {
		t.Errorf("the failing lines count %v unlogged failures, want 78", unlogged)
	}
}

func TestActionIsOnTheLines(t *testing.T) {
	r, clk, buf := newReporter(10 * time.Second)
	err := WithAction(fmt.Errorf("put: %w", sdkErr{2}), "grant firehose:PutRecordBatch")
	for i := 0; i < 20; i++ {
		r.Failed(err)
		clk.Advance(time.Second)
	}
	got := lines(t, buf)
	if len(got) != 2 || got[0]["msg"] != MsgFailing || got[0]["level"] != "ERROR" || got[0]["action"] != "grant firehose:PutRecordBatch" || got[0]["attempts"] != 2.0 ||
		got[1]["msg"] != MsgStillFailing || got[1]["level"] != "ERROR" || got[1]["action"] != "grant firehose:PutRecordBatch" {
		t.Fatalf("20 failures needing an operator over 20 s: %v", got)
	}
	if Attempts(err) != 2 || !errors.Is(err, err) || Action(errors.New("x")) != "" {
		t.Error("WithAction must keep the error's attempts and chain")
	}
}
