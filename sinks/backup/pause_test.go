package backup

import (
	"sync"
	"testing"
	"time"

	"github.com/shardhose/shardhose/hooks"
	"github.com/shardhose/shardhose/internal/clock"
)

// pauses records hooks.SinkPaused calls.
type pauses struct {
	mu    sync.Mutex
	calls []string
}

func (p *pauses) OnSinkPaused(sink string, paused bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if paused {
		p.calls = append(p.calls, sink+" paused")
	} else {
		p.calls = append(p.calls, sink+" resumed")
	}
}

func (p *pauses) seen() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.calls...)
}

// A batch whose destination and backup both fail is reported paused once, and resumed once it is
// delivered; a batch backed up at the first try is never reported.
func TestPauseIsReportedToHooks(t *testing.T) {
	ctx := waitCtx(t)
	clk := clock.NewFake(testStart)
	h := &pauses{}
	pctx := WithPauseHooks(ctx, "api", hooks.Set{h})

	d := &destination{err: errDestination}
	b := &backupTarget{err: errInjected}
	p := steady
	p.MaxElapsed = 5 * time.Second
	res := start(pctx, clk, p, d.deliver, b.backup)
	for clk.Now().Sub(testStart) < 2*time.Minute {
		if err := clk.WaitForTimers(ctx, 1); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Second)
	}
	if got := h.seen(); len(got) != 1 || got[0] != "api paused" {
		t.Fatalf("during the pause: hooks saw %v, want one pause", got)
	}
	d.set(nil)
	if r := advanceUntil(t, ctx, clk, 1, time.Second, res); !r.delivered || r.err != nil {
		t.Fatalf("result %+v, want delivered", r)
	}
	if got := h.seen(); len(got) != 2 || got[1] != "api resumed" {
		t.Fatalf("after delivery: hooks saw %v, want paused then resumed", got)
	}

	h2 := &pauses{}
	b2 := &backupTarget{}
	res = start(WithPauseHooks(ctx, "api", hooks.Set{h2}), clk, p, (&destination{err: errDestination}).deliver, b2.backup)
	if r := advanceUntil(t, ctx, clk, 1, time.Second, res); r.delivered || r.err != nil {
		t.Fatalf("result %+v, want backed up", r)
	}
	if got := h2.seen(); len(got) != 0 {
		t.Fatalf("backed up at once: hooks saw %v, want nothing", got)
	}
}
