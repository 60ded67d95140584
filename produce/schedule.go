package produce

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Schedule gives the target send rate, in records per second, at each moment of a run, counted
// from Run's start. Run's limiter reads it at least every 100 ms. Implementations must be safe
// to call from Run's goroutine and return a finite rate of 0 or more.
type Schedule interface {
	RateAt(elapsed time.Duration) float64
}

// Constant is a steady rate in records per second.
type Constant float64

// RateAt returns the constant rate.
func (c Constant) RateAt(time.Duration) float64 { return float64(c) }

// Ramp climbs linearly from From to To records per second over Over, then stays at To: a load
// test that finds where a pipeline stops keeping up.
type Ramp struct {
	From, To float64
	Over     time.Duration
}

// RateAt returns the ramp's rate elapsed after the start.
func (r Ramp) RateAt(elapsed time.Duration) float64 {
	if elapsed >= r.Over || r.Over <= 0 {
		return r.To
	}
	return r.From + (r.To-r.From)*float64(elapsed)/float64(r.Over)
}

// Periodic swings smoothly between Min and Max records per second and back every Period (a
// cosine wave starting at Min), like the periodic load of the Kinesis Data Generator: the daily
// rise and fall of real traffic, compressed.
type Periodic struct {
	Min, Max float64
	Period   time.Duration
}

// RateAt returns the wave's rate elapsed after the start.
func (p Periodic) RateAt(elapsed time.Duration) float64 {
	phase := 2 * math.Pi * float64(elapsed%p.Period) / float64(p.Period)
	return p.Min + (p.Max-p.Min)*(1-math.Cos(phase))/2
}

// ParseRamp reads a ramp written FROM:TO:DURATION, e.g. 100:5000:60s.
func ParseRamp(s string) (Ramp, error) {
	a, b, d, err := parseTriple("--ramp", s, "FROM:TO:DURATION, e.g. 100:5000:60s")
	return Ramp{From: a, To: b, Over: d}, err
}

// ParsePeriodic reads a periodic rate written MIN:MAX:PERIOD, e.g. 100:1000:60s.
func ParsePeriodic(s string) (Periodic, error) {
	a, b, d, err := parseTriple("--periodic", s, "MIN:MAX:PERIOD, e.g. 100:1000:60s")
	if err == nil && a > b {
		err = fmt.Errorf("--periodic %s: MIN %g is above MAX %g", s, a, b)
	}
	return Periodic{Min: a, Max: b, Period: d}, err
}

func parseTriple(flag, s, form string) (float64, float64, time.Duration, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return 0, 0, 0, fmt.Errorf("%s %q: want %s", flag, s, form)
	}
	var rates [2]float64
	for i, p := range parts[:2] {
		r, err := strconv.ParseFloat(p, 64)
		if err != nil || r < 0 || math.IsInf(r, 0) || math.IsNaN(r) {
			return 0, 0, 0, fmt.Errorf("%s %q: %q is not a rate; want records per second, 0 or more, as %s", flag, s, p, form)
		}
		rates[i] = r
	}
	d, err := time.ParseDuration(parts[2])
	if err != nil || d <= 0 {
		return 0, 0, 0, fmt.Errorf("%s %q: %q is not a positive duration (e.g. 60s, 5m); want %s", flag, s, parts[2], form)
	}
	if rates[0] == 0 && rates[1] == 0 {
		return 0, 0, 0, fmt.Errorf("%s %q: both rates are 0, so nothing would be sent", flag, s)
	}
	return rates[0], rates[1], d, nil
}
