package produce

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/shardhose/shardhose/internal/clock"
)

// chanWriter hands every write to the test.
type chanWriter chan string

func (c chanWriter) Write(p []byte) (int, error) {
	c <- string(p)
	return len(p), nil
}

// next returns the next write, failing the test after 10 s.
func (c chanWriter) next(t *testing.T) string {
	t.Helper()
	select {
	case s := <-c:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("nothing written within 10 s")
		return ""
	}
}

func TestProgressLines(t *testing.T) {
	for _, terminal := range []bool{false, true} {
		fc := clock.NewFake(t0)
		out := make(chanWriter)
		p := NewProgress(out, terminal, fc, Ramp{From: 100, To: 300, Over: 20 * time.Second}, 10*time.Second)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			defer close(done)
			p.Run(ctx)
		}()
		step := 10 * time.Second
		if terminal {
			step = time.Second // a terminal line is rewritten every second
		}
		var got []string
		for i := 1; i <= 2; i++ {
			if err := fc.WaitForTimers(ctx, 1); err != nil {
				t.Fatal(err)
			}
			p.Update(Stats{Sent: 1500 * i, Throttled: i, CallErrors: 1})
			fc.Advance(step)
			got = append(got, out.next(t))
		}
		cancel()
		if terminal {
			got = append(got, out.next(t)) // the line cleared
		}
		<-done
		want := []string{
			"10s sent 1500 records, 150/s (asked 200/s), 1 throttled, 1 failed calls\n",
			"20s sent 3000 records, 150/s (asked 300/s), 2 throttled, 1 failed calls\n",
		}
		if terminal {
			want = []string{
				"\r\033[K1s sent 1500 records, 1500/s (asked 110/s), 1 throttled, 1 failed calls",
				"\r\033[K2s sent 3000 records, 1500/s (asked 120/s), 2 throttled, 1 failed calls",
				"\r\033[K",
			}
		}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("terminal %v: wrote %q, want %q", terminal, got, want)
		}
	}
}

func TestSummary(t *testing.T) {
	seed := uint64(9)
	s := NewSummary("orders", Stats{Sent: 1000, Bytes: 5000, Calls: 3, Elapsed: 2 * time.Second, Throttled: 4, Failed: 6, CallErrors: 1}, Constant(500), nil)
	s.Seed = &seed
	if got := s.String(); got != "sent 1000 records (5000 bytes) to orders in 3 PutRecords calls over 2.0s: 500.0 records/s (asked 500.0); 4 throttled, 6 retried, 1 failed calls; seed 9" {
		t.Errorf("summary: %s", got)
	}
	if got := string(s.JSON()); got != `{"stream":"orders","records_sent":1000,"bytes":5000,"put_records_calls":3,"elapsed_seconds":2,"rate_achieved":500,"rate_asked":500,"throttled_entries":4,"retried_entries":6,"failed_calls":1,"seed":9}` {
		t.Errorf("json: %s", got)
	}
	if m := MeanRate(Ramp{From: 0, To: 100, Over: 10 * time.Second}, 20*time.Second); m < 74.9 || m > 75.1 {
		t.Errorf("mean of a 10 s ramp to 100 held for 10 s more = %v, want 75", m)
	}
}
