package produce

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/shardhose/shardhose/internal/clock"
)

// Progress shows how a run is going while it runs: on a terminal one line rewritten in place
// every second, otherwise a plain line every Interval. Each says how many records were sent, the
// rate achieved over the last interval against the rate asked, and how many entries were
// throttled and calls failed. Update is Options.OnProgress; Run prints until its ctx ends. Update
// and Run may be called from different goroutines.
type Progress struct {
	w        io.Writer
	terminal bool
	clk      clock.Clock
	sched    Schedule // nil: as fast as possible
	interval time.Duration

	mu       sync.Mutex
	stats    Stats
	prevSent int
	prevAt   time.Duration
}

// NewProgress returns a Progress writing to w; terminal picks the in-place line. sched is the
// rate asked (nil for as fast as possible); interval is the plain lines' period (default 10 s).
func NewProgress(w io.Writer, terminal bool, clk clock.Clock, sched Schedule, interval time.Duration) *Progress {
	if clk == nil {
		clk = clock.Real()
	}
	if terminal {
		interval = time.Second
	} else if interval <= 0 {
		interval = 10 * time.Second
	}
	return &Progress{w: w, terminal: terminal, clk: clk, sched: sched, interval: interval}
}

// Update records the latest statistics; it is meant as Options.OnProgress.
func (p *Progress) Update(s Stats) {
	p.mu.Lock()
	p.stats = s
	p.mu.Unlock()
}

// Run prints a line every interval until ctx ends; on a terminal it then clears the line.
func (p *Progress) Run(ctx context.Context) {
	start := p.clk.Now()
	t := p.clk.NewTimer(p.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if p.terminal {
				fmt.Fprint(p.w, "\r\033[K")
			}
			return
		case <-t.C():
			p.print(p.clk.Now().Sub(start))
			t.Reset(p.interval)
		}
	}
}

func (p *Progress) print(elapsed time.Duration) {
	line := p.line(elapsed)
	if p.terminal {
		fmt.Fprint(p.w, "\r\033[K"+line)
		return
	}
	fmt.Fprintln(p.w, line)
}

// line describes the run elapsed after its start, and starts a new interval.
func (p *Progress) line(elapsed time.Duration) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	rate := 0.0
	if d := elapsed - p.prevAt; d > 0 {
		rate = float64(s.Sent-p.prevSent) / d.Seconds()
	}
	p.prevSent, p.prevAt = s.Sent, elapsed
	asked := "as fast as possible"
	if p.sched != nil {
		asked = fmt.Sprintf("%.0f/s", p.sched.RateAt(elapsed))
	}
	return fmt.Sprintf("%s sent %d records, %.0f/s (asked %s), %d throttled, %d failed calls",
		elapsed.Truncate(time.Second), s.Sent, rate, asked, s.Throttled, s.CallErrors)
}

// MeanRate is the average rate s asks over a run of length d, in records per second; 0 for a
// nil schedule (as fast as possible) or an empty run.
func MeanRate(s Schedule, d time.Duration) float64 {
	if s == nil || d <= 0 {
		return 0
	}
	const steps = 1000
	sum := 0.0
	for i := range steps {
		sum += s.RateAt(time.Duration((float64(i) + 0.5) / steps * float64(d)))
	}
	return sum / steps
}

// Summary is what a run did, for people (String) and scripts (JSON).
type Summary struct {
	Stream         string         `json:"stream"`
	Sent           int            `json:"records_sent"`
	Bytes          int64          `json:"bytes"`
	Calls          int            `json:"put_records_calls"`
	ElapsedSeconds float64        `json:"elapsed_seconds"`
	RateAchieved   float64        `json:"rate_achieved"`
	RateAsked      float64        `json:"rate_asked,omitempty"`
	Throttled      int            `json:"throttled_entries"`
	Retried        int            `json:"retried_entries"`
	CallErrors     int            `json:"failed_calls"`
	Seed           *uint64        `json:"seed,omitempty"`
	NonJSON        map[string]int `json:"non_json_records,omitempty"`
	Error          string         `json:"error,omitempty"`
}

// NewSummary sums up a run's statistics; sched is the rate asked (nil: as fast as possible).
func NewSummary(stream string, s Stats, sched Schedule, runErr error) Summary {
	sum := Summary{
		Stream: stream, Sent: s.Sent, Bytes: s.Bytes, Calls: s.Calls, ElapsedSeconds: s.Elapsed.Seconds(),
		RateAsked: MeanRate(sched, s.Elapsed), Throttled: s.Throttled, Retried: s.Failed, CallErrors: s.CallErrors,
	}
	if s.Elapsed > 0 {
		sum.RateAchieved = float64(s.Sent) / s.Elapsed.Seconds()
	}
	if runErr != nil {
		sum.Error = runErr.Error()
	}
	return sum
}

func (s Summary) String() string {
	asked := ""
	if s.RateAsked > 0 {
		asked = fmt.Sprintf(" (asked %.1f)", s.RateAsked)
	}
	out := fmt.Sprintf("sent %d records (%d bytes) to %s in %d PutRecords calls over %.1fs: %.1f records/s%s; %d throttled, %d retried, %d failed calls",
		s.Sent, s.Bytes, s.Stream, s.Calls, s.ElapsedSeconds, s.RateAchieved, asked, s.Throttled, s.Retried, s.CallErrors)
	if s.Seed != nil {
		out += fmt.Sprintf("; seed %d", *s.Seed)
	}
	for name, n := range s.NonJSON {
		out += fmt.Sprintf("; %d records of %s were not JSON", n, name)
	}
	return out
}

// JSON returns the summary as one line of JSON.
func (s Summary) JSON() []byte {
	b, _ := json.Marshal(s) // a struct of plain fields always marshals
	return b
}
