package produce

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/shardhose/shardhose/internal/clock"
)

func TestScheduleRates(t *testing.T) {
	r := Ramp{From: 100, To: 5000, Over: 60 * time.Second}
	for at, want := range map[time.Duration]float64{0: 100, 30 * time.Second: 2550, 60 * time.Second: 5000, time.Hour: 5000} {
		if got := r.RateAt(at); math.Abs(got-want) > 1e-9 {
			t.Errorf("ramp at %v = %v, want %v", at, got, want)
		}
	}
	p := Periodic{Min: 100, Max: 1000, Period: 60 * time.Second}
	for at, want := range map[time.Duration]float64{0: 100, 15 * time.Second: 550, 30 * time.Second: 1000, 45 * time.Second: 550, 60 * time.Second: 100, 90 * time.Second: 1000} {
		if got := p.RateAt(at); math.Abs(got-want) > 1e-9 {
			t.Errorf("periodic at %v = %v, want %v", at, got, want)
		}
	}
}

func TestParseSchedules(t *testing.T) {
	r, err := ParseRamp("100:5000:60s")
	if err != nil || r != (Ramp{From: 100, To: 5000, Over: time.Minute}) {
		t.Errorf("ParseRamp = %+v, %v", r, err)
	}
	p, err := ParsePeriodic("0:1000:2m")
	if err != nil || p != (Periodic{Min: 0, Max: 1000, Period: 2 * time.Minute}) {
		t.Errorf("ParsePeriodic = %+v, %v", p, err)
	}
	for in, msg := range map[string]string{
		"100:5000":      `want FROM:TO:DURATION`,
		"x:5000:60s":    `"x" is not a rate`,
		"100:-1:60s":    `"-1" is not a rate`,
		"100:5000:soon": `"soon" is not a positive duration`,
		"100:5000:0s":   `"0s" is not a positive duration`,
		"0:0:10s":       `both rates are 0`,
	} {
		if _, err := ParseRamp(in); err == nil || !strings.Contains(err.Error(), msg) || !strings.HasPrefix(err.Error(), "--ramp ") {
			t.Errorf("ParseRamp(%q) = %v, want an error with %q", in, err, msg)
		}
	}
	if _, err := ParsePeriodic("1000:100:60s"); err == nil || !strings.Contains(err.Error(), "MIN 1000 is above MAX 100") {
		t.Errorf("ParsePeriodic with MIN > MAX = %v", err)
	}
}

// sentBy returns how many records the calls made up to (and including) elapsed d carried.
func sentBy(calls []fakeCall, d time.Duration) int {
	n := 0
	for _, c := range calls {
		if c.at.Sub(t0) <= d {
			n += len(c.data)
		}
	}
	return n
}

func TestRunFollowsARamp(t *testing.T) {
	fc := clock.NewFake(t0)
	fk := &fakeKinesis{clk: fc}
	// 100/s rising to 1100/s over 10 s, for 20 s: 6,000 records in the ramp, 11,000 after it.
	stats, err := runOnFakeClock(t.Context(), t, fc, 10*time.Millisecond, Options{
		Stream: "s", Client: fk, Source: NewGeneratedSource(1),
		Schedule: Ramp{From: 100, To: 1100, Over: 10 * time.Second}, Duration: 20 * time.Second,
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	calls := fk.recorded()
	for _, c := range []struct {
		at   time.Duration
		want float64
	}{{time.Second, 1 + 150}, {5 * time.Second, 1 + 1750}, {10 * time.Second, 1 + 6000}, {20 * time.Second, 1 + 17000}} {
		got := float64(sentBy(calls, c.at))
		if math.Abs(got-c.want) > 0.02*c.want+20 {
			t.Errorf("by %v: %v records sent, want about %v", c.at, got, c.want)
		}
	}
	if stats.Elapsed < 20*time.Second || stats.Elapsed > 20200*time.Millisecond {
		t.Errorf("elapsed %v, want the 20 s duration", stats.Elapsed)
	}
}

func TestRunFollowsAPeriodicRate(t *testing.T) {
	fc := clock.NewFake(t0)
	fk := &fakeKinesis{clk: fc}
	p := Periodic{Min: 0, Max: 1000, Period: 10 * time.Second}
	stats, err := runOnFakeClock(t.Context(), t, fc, 10*time.Millisecond, Options{
		Stream: "s", Client: fk, Source: NewGeneratedSource(1), Schedule: p, Duration: 20 * time.Second,
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	calls := fk.recorded()
	// The mean of the wave is 500/s: 10,000 records in 20 s, half of them in each period; the
	// second before each trough carries few, the second around each crest many.
	if math.Abs(float64(stats.Sent)-10000) > 200 {
		t.Errorf("sent %d in two periods, want about 10000", stats.Sent)
	}
	trough := sentBy(calls, 10*time.Second) - sentBy(calls, 9500*time.Millisecond)
	crest := sentBy(calls, 5250*time.Millisecond) - sentBy(calls, 4750*time.Millisecond)
	if trough > 20 || crest < 450 {
		t.Errorf("records in the half second before the trough %d (want few), around the crest %d (want about 500)", trough, crest)
	}
}

func TestRunReportsAcceptedRecordsAndProgress(t *testing.T) {
	fc := clock.NewFake(t0)
	fk := &fakeKinesis{clk: fc, respond: func(n int, c fakeCall) (*kinesis.PutRecordsOutput, error) {
		if n == 0 {
			codes := make([]string, len(c.data))
			codes[2] = "ProvisionedThroughputExceededException"
			return results(codes...), nil
		}
		return results(make([]string, len(c.data))...), nil
	}}
	accepted := map[int]time.Time{}
	var progress []Stats
	_, err := runOnFakeClock(t.Context(), t, fc, 100*time.Millisecond, Options{
		Stream: "s", Client: fk, Source: &sliceSource{entries: numbered(5, 10)}, Retry: testPolicy,
		OnAccepted: func(i int, at time.Time) {
			if _, dup := accepted[i]; dup {
				t.Errorf("record %d reported accepted twice", i)
			}
			accepted[i] = at
		},
		OnProgress: func(s Stats) { progress = append(progress, s) },
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	for i := range 5 {
		want := t0
		if i == 2 {
			want = t0.Add(time.Second) // resent after the 1 s backoff
		}
		if at, ok := accepted[i]; !ok || !at.Equal(want) {
			t.Errorf("record %d accepted at %v (reported: %v), want %v", i, at, ok, want)
		}
	}
	if len(progress) != 2 || progress[0].Sent != 4 || progress[0].Throttled != 1 || progress[1].Sent != 5 || progress[1].Elapsed != time.Second {
		t.Errorf("progress = %+v, want 4 sent and 1 throttled after the first call, 5 sent at 1 s after the second", progress)
	}
}

func TestRunValidatesScheduleAndDuration(t *testing.T) {
	_, err := Run(t.Context(), Options{Stream: "s", Client: &fakeKinesis{}, Source: &sliceSource{},
		Rate: 10, Schedule: Constant(5), Duration: -time.Second})
	if err == nil || !strings.Contains(err.Error(), "set together with a schedule") || !strings.Contains(err.Error(), "duration: -1s is negative") {
		t.Errorf("Run = %v, want both problems", err)
	}
}
