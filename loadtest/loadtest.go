// Package loadtest measures a running shardhose end to end: it sends records rendered from
// Kinesis Data Generator templates into the stream, each stamped with a unique id, then looks for
// every id in what the daemon delivered (the objects of the configured S3 sinks, decompressed)
// and in its dead-letter destination, and reports what arrived, what was lost or duplicated and
// how long delivery took.
//
// A record counts as delivered when its id is in every checked S3 sink, as dead-lettered when it
// is in a dead letter, and as lost otherwise once the settle time after the last send has
// passed. Only objects that were not in the buckets when the test began are read, and only ids
// of this run (the id starts with a random run id) are counted, so earlier data in the same
// bucket does not disturb it.
package loadtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/shardhose/shardhose/internal/clock"
	"github.com/shardhose/shardhose/produce"
	"github.com/shardhose/shardhose/produce/kdg"
)

// IDField is the field loadtest adds at the start of every record (a JSON object): a run id and
// the record's number, "3f9c0a1b-000042".
const IDField = "shardhose_loadtest_id"

// Options configures Run. Kinesis, Stream, Source and Sinks are required.
type Options struct {
	// Stream is the stream's name, StreamARN its ARN; one is required.
	Stream, StreamARN string
	// Kinesis sends the records.
	Kinesis produce.PutRecordsAPI
	// Source yields the records; each must be a JSON object, which gets IDField.
	Source produce.Source
	// Schedule is the send rate; nil sends as fast as the stream accepts.
	Schedule produce.Schedule
	// Duration and Count bound the sending; at least one is required.
	Duration time.Duration
	Count    int
	// Sinks are the S3 destinations whose objects are checked. At least one is required.
	Sinks []Sink
	// DeadLetters, if set, returns the data of every record stored in the dead-letter
	// destination; Run calls it during the settle wait, at most every DeadLetterInterval, and
	// once at the end.
	DeadLetters func(ctx context.Context) ([][]byte, error)
	// Settle is how long to wait after the last send for every record to show up (default 2 min).
	Settle time.Duration
	// PollInterval is how often the sinks are listed (default 250 ms); it is the resolution of
	// the delivery latencies.
	PollInterval time.Duration
	// Metrics, if set, reads the daemon's iterator age (see ScrapeIteratorAge); Run calls it
	// every MetricsInterval (default 2 s) while the test runs.
	Metrics         func(ctx context.Context) (time.Duration, error)
	MetricsInterval time.Duration
	// Process, if set, reads the daemon's CPU time and peak RSS at the start and the end.
	Process func() (ProcessUsage, error)
	// Progress, if set, is shown while sending.
	Progress *produce.Progress
	// Clock times everything; nil means the system clock.
	Clock  clock.Clock
	Logger *slog.Logger
}

// Report is what a load test found. Latencies are measured from the moment Kinesis accepted a
// record to the poll that first saw it in every sink, so they include up to one PollInterval.
type Report struct {
	RunID        string  `json:"run_id"`
	Stream       string  `json:"stream"`
	Sent         int     `json:"records_sent"`
	SendSeconds  float64 `json:"send_seconds"`
	RateAchieved float64 `json:"rate_achieved"`
	RateAsked    float64 `json:"rate_asked,omitempty"`
	Throttled    int     `json:"throttled_entries"`
	Delivered    int     `json:"delivered"`
	DeadLettered int     `json:"dead_lettered"`
	Lost         int     `json:"lost"`
	// Unchecked counts records not yet seen when the test was interrupted (ctx ended): they
	// may still arrive, so they are not counted as lost.
	Unchecked      int      `json:"unchecked,omitempty"`
	Duplicates     int      `json:"duplicates"`
	Objects        int      `json:"objects_read"`
	SettleSeconds  float64  `json:"settle_seconds"`
	LatencyP50     *float64 `json:"latency_p50_seconds"`
	LatencyP95     *float64 `json:"latency_p95_seconds"`
	LatencyP99     *float64 `json:"latency_p99_seconds"`
	LatencyMax     *float64 `json:"latency_max_seconds"`
	IteratorAgeMax *float64 `json:"iterator_age_max_seconds"`
	IteratorAgeEnd *float64 `json:"iterator_age_end_seconds"`
	IteratorAgeErr string   `json:"iterator_age_error,omitempty"`
	DaemonCPU      *float64 `json:"daemon_cpu_seconds"`
	DaemonCPUPct   *float64 `json:"daemon_cpu_percent"`
	DaemonPeakRSS  *int64   `json:"daemon_peak_rss_bytes"`
	LostIDs        []string `json:"lost_ids,omitempty"`
	SendError      string   `json:"send_error,omitempty"`
}

// ProcessUsage is a process's CPU time so far and its peak resident memory.
type ProcessUsage struct {
	CPU     time.Duration
	PeakRSS int64
}

// ErrLost is wrapped by Run's error when records were lost.
var ErrLost = errors.New("records lost")

// Run performs the load test and returns its report. The error is nil only when every record
// sent was delivered or dead-lettered; it wraps ErrLost when some were not, and reports a send
// that stopped early. The report is filled in either way.
func Run(ctx context.Context, opts Options) (Report, error) {
	if err := opts.validate(); err != nil {
		return Report{}, err
	}
	clk := cmpClock(opts.Clock)
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	poll := cmpDur(opts.PollInterval, 250*time.Millisecond)
	settle := cmpDur(opts.Settle, 2*time.Minute)
	runID := newRunID()
	rep := Report{RunID: runID, Stream: cmpStr(opts.Stream, opts.StreamARN)}

	// What is in the buckets already is not read.
	w := newWatcher(opts.Sinks, runID, clk, log)
	if err := w.snapshot(ctx); err != nil {
		return rep, err
	}
	var before ProcessUsage
	var procErr error
	if opts.Process != nil {
		before, procErr = opts.Process()
	}
	startWall := clk.Now()

	bg, stopBG := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var ages ageTracker
	if opts.Metrics != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ages.run(bg, clk, cmpDur(opts.MetricsInterval, 2*time.Second), opts.Metrics)
		}()
	}
	pollErr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		pollErr <- w.run(bg, poll)
	}()
	// The progress line shows while sending; the watcher and metrics keep going after it.
	stopProgress := func() {}
	if opts.Progress != nil {
		pctx, cancel := context.WithCancel(bg)
		done := make(chan struct{})
		go func() {
			defer close(done)
			opts.Progress.Run(pctx)
		}()
		stopProgress = func() { cancel(); <-done }
	}

	sent := &sendLog{}
	stamped := &stampSource{inner: opts.Source, runID: runID}
	stats, sendErr := produce.Run(ctx, produce.Options{
		Stream: opts.Stream, StreamARN: opts.StreamARN, Client: opts.Kinesis, Source: stamped,
		Count: opts.Count, Duration: opts.Duration, Schedule: opts.Schedule, Clock: clk, Logger: log,
		OnAccepted: sent.accepted,
		OnProgress: func(s produce.Stats) {
			if opts.Progress != nil {
				opts.Progress.Update(s)
			}
		},
	})
	stopProgress()
	if stamped.err != nil {
		sendErr = stamped.err
	}
	rep.Sent, rep.Throttled = stats.Sent, stats.Throttled
	rep.SendSeconds = stats.Elapsed.Seconds()
	if stats.Elapsed > 0 {
		rep.RateAchieved = float64(stats.Sent) / stats.Elapsed.Seconds()
	}
	rep.RateAsked = produce.MeanRate(opts.Schedule, stats.Elapsed)
	if sendErr != nil {
		rep.SendError = sendErr.Error()
	}

	// Wait for every accepted record to show up somewhere.
	ids := sent.ids()
	settleStart := clk.Now()
	deadLettered := map[int]bool{}
	lastDLQ := time.Time{}
	dlqInterval := 5 * time.Second
	var dlqErr error
	readDLQ := func() {
		if opts.DeadLetters == nil {
			return
		}
		lastDLQ = clk.Now()
		datas, err := opts.DeadLetters(ctx)
		if err != nil {
			dlqErr = err
			log.Warn("reading the dead-letter destination failed", "err", err)
			return
		}
		dlqErr = nil
		for _, d := range datas {
			for _, n := range w.idsIn(d) {
				deadLettered[n] = true
			}
		}
	}
	for {
		missing := w.missing(ids, deadLettered)
		if missing == 0 {
			break
		}
		if ctx.Err() != nil {
			break // interrupted: what is missing is unchecked, not lost
		}
		if clk.Now().Sub(settleStart) >= settle {
			readDLQ()
			break
		}
		if opts.DeadLetters != nil && clk.Now().Sub(lastDLQ) >= dlqInterval {
			readDLQ()
			continue
		}
		if clock.Sleep(ctx, clk, poll) != nil {
			break
		}
	}
	rep.SettleSeconds = clk.Now().Sub(settleStart).Seconds()
	stopBG()
	wg.Wait()
	if err := <-pollErr; err != nil && !errors.Is(err, context.Canceled) {
		return rep, err
	}

	// Count.
	w.mu.Lock()
	var latencies []time.Duration
	for _, n := range ids {
		seen, dups := w.deliveredAt(n)
		rep.Duplicates += dups
		switch {
		case !seen.IsZero():
			rep.Delivered++
			latencies = append(latencies, seen.Sub(sent.at(n)))
		case deadLettered[n]:
			rep.DeadLettered++
		case ctx.Err() != nil:
			rep.Unchecked++
		default:
			rep.Lost++
			if len(rep.LostIDs) < 20 {
				rep.LostIDs = append(rep.LostIDs, formatID(runID, n))
			}
		}
	}
	rep.Objects = w.objects
	w.mu.Unlock()
	slices.Sort(latencies)
	rep.LatencyP50, rep.LatencyP95, rep.LatencyP99 = percentile(latencies, 50), percentile(latencies, 95), percentile(latencies, 99)
	rep.LatencyMax = percentile(latencies, 100)
	rep.IteratorAgeMax, rep.IteratorAgeEnd, rep.IteratorAgeErr = ages.result()
	if opts.Process != nil && procErr == nil {
		after, err := opts.Process()
		if err == nil {
			cpu := (after.CPU - before.CPU).Seconds()
			wall := clk.Now().Sub(startWall).Seconds()
			pct := 100 * cpu / wall
			rss := after.PeakRSS
			rep.DaemonCPU, rep.DaemonCPUPct, rep.DaemonPeakRSS = &cpu, &pct, &rss
		}
	}

	var errs []error
	if sendErr != nil {
		errs = append(errs, fmt.Errorf("sending stopped early: %w", sendErr))
	}
	if rep.Unchecked > 0 {
		errs = append(errs, fmt.Errorf("interrupted with %d records not yet seen in the sinks: %w", rep.Unchecked, context.Cause(ctx)))
	}
	if rep.Lost > 0 {
		e := fmt.Errorf("%w: %d of %d records reached no sink and no dead letter within %v of the last send", ErrLost, rep.Lost, len(ids), settle)
		if dlqErr != nil {
			e = fmt.Errorf("%w (reading the dead letters failed: %v)", e, dlqErr)
		}
		errs = append(errs, e)
	}
	return rep, errors.Join(errs...)
}

func (o Options) validate() error {
	var errs []error
	if o.Stream == "" && o.StreamARN == "" {
		errs = append(errs, errors.New("stream: set the stream's name or ARN"))
	}
	if o.Kinesis == nil || o.Source == nil {
		errs = append(errs, errors.New("a Kinesis client and a record source are required"))
	}
	if len(o.Sinks) == 0 {
		errs = append(errs, errors.New("sinks: the load test checks S3 sinks, and the configuration has none"))
	}
	if o.Duration <= 0 && o.Count <= 0 {
		errs = append(errs, errors.New("give a duration or a count of records to send"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("load test: %w", err)
	}
	return nil
}

// CheckTemplates renders each template once and fails unless every record is a JSON object,
// which the load test needs to stamp its id into; it catches a wrong template before anything
// is sent.
func CheckTemplates(tmpls []*kdg.Template) error {
	f := kdg.NewFaker(1, nil, nil)
	for _, t := range tmpls {
		data := bytes.TrimSpace(t.Render(f))
		if len(data) == 0 || data[0] != '{' {
			return fmt.Errorf("template %s renders %q, not a JSON object: the load test stamps an id field into each record, so its templates must render JSON objects", t.Name(), truncate(data, 40))
		}
	}
	return nil
}

// stampSource adds IDField to every record of inner.
type stampSource struct {
	inner produce.Source
	runID string
	n     int
	err   error
}

func (s *stampSource) Next() (produce.Entry, error) {
	e, err := s.inner.Next()
	if err != nil {
		return e, err
	}
	data := bytes.TrimLeft(e.Data, " \t\r\n")
	if len(data) == 0 || data[0] != '{' {
		s.err = fmt.Errorf("record %d is not a JSON object (it starts %q); the load test stamps an id field into each record, so its templates must render JSON objects", s.n, truncate(e.Data, 40))
		return produce.Entry{}, s.err
	}
	rest := bytes.TrimLeft(data[1:], " \t\r\n")
	out := make([]byte, 0, len(e.Data)+48)
	out = append(out, `{"`+IDField+`":"`+formatID(s.runID, s.n)+`"`...)
	if len(rest) > 0 && rest[0] != '}' {
		out = append(out, ',')
	}
	out = append(out, data[1:]...)
	s.n++
	return produce.Entry{Data: out, PartitionKey: e.PartitionKey}, nil
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

func formatID(runID string, n int) string { return fmt.Sprintf("%s-%06d", runID, n) }

func newRunID() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b) // crypto/rand.Read does not fail
	return hex.EncodeToString(b)
}

// idPattern finds the ids of run runID in delivered bytes.
func idPattern(runID string) *regexp.Regexp {
	return regexp.MustCompile(`"` + IDField + `":"` + runID + `-(\d+)"`)
}

// sendLog keeps when each record was accepted, by its number. Used from produce.Run's goroutine
// only, then read after Run returns.
type sendLog struct {
	times []time.Time
}

func (l *sendLog) accepted(n int, at time.Time) {
	for len(l.times) <= n {
		l.times = append(l.times, time.Time{})
	}
	l.times[n] = at
}

func (l *sendLog) at(n int) time.Time { return l.times[n] }

// ids returns the numbers of the accepted records.
func (l *sendLog) ids() []int {
	var out []int
	for n, t := range l.times {
		if !t.IsZero() {
			out = append(out, n)
		}
	}
	return out
}

func percentile(sorted []time.Duration, p int) *float64 {
	if len(sorted) == 0 {
		return nil
	}
	i := (len(sorted)*p + 99) / 100
	i = min(max(i-1, 0), len(sorted)-1)
	v := sorted[i].Seconds()
	return &v
}

func cmpClock(c clock.Clock) clock.Clock {
	if c == nil {
		return clock.Real()
	}
	return c
}

func cmpDur(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

func cmpStr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// ageTracker keeps the iterator ages read from the metrics.
type ageTracker struct {
	mu       sync.Mutex
	max, end time.Duration
	seen     bool
	err      error
}

func (a *ageTracker) run(ctx context.Context, clk clock.Clock, every time.Duration, read func(context.Context) (time.Duration, error)) {
	for {
		age, err := read(ctx)
		a.mu.Lock()
		if err == nil {
			a.max, a.end, a.seen = max(a.max, age), age, true
		} else if ctx.Err() == nil {
			a.err = err
		}
		a.mu.Unlock()
		if clock.Sleep(ctx, clk, every) != nil {
			return
		}
	}
}

// result returns the largest and the last age in seconds, or nil and why not.
func (a *ageTracker) result() (maxAge, end *float64, why string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.seen {
		why = "no metrics endpoint configured"
		if a.err != nil {
			why = a.err.Error()
		}
		return nil, nil, why
	}
	m, e := a.max.Seconds(), a.end.Seconds()
	return &m, &e, ""
}

func (r Report) String() string {
	var b bytes.Buffer
	f := func(v *float64, unit string, scale float64, prec int) string {
		if v == nil {
			return "n/a"
		}
		return strconv.FormatFloat(*v*scale, 'f', prec, 64) + unit
	}
	fmt.Fprintf(&b, "load test %s on stream %s\n", r.RunID, r.Stream)
	asked := "as fast as possible"
	if r.RateAsked > 0 {
		asked = fmt.Sprintf("%.1f/s", r.RateAsked)
	}
	fmt.Fprintf(&b, "  sent           %d records in %.1fs: %.1f/s (asked %s), %d throttled entries\n", r.Sent, r.SendSeconds, r.RateAchieved, asked, r.Throttled)
	fmt.Fprintf(&b, "  delivered      %d (in every S3 sink; %d new objects read)\n", r.Delivered, r.Objects)
	fmt.Fprintf(&b, "  dead-lettered  %d\n", r.DeadLettered)
	fmt.Fprintf(&b, "  lost           %d\n", r.Lost)
	if r.Unchecked > 0 {
		fmt.Fprintf(&b, "  unchecked      %d (the test was interrupted before they were seen)\n", r.Unchecked)
	}
	fmt.Fprintf(&b, "  duplicates     %d\n", r.Duplicates)
	fmt.Fprintf(&b, "  latency        p50 %s  p95 %s  p99 %s  max %s (accepted by Kinesis to seen in S3)\n",
		f(r.LatencyP50, "s", 1, 2), f(r.LatencyP95, "s", 1, 2), f(r.LatencyP99, "s", 1, 2), f(r.LatencyMax, "s", 1, 2))
	age := "n/a"
	if r.IteratorAgeMax != nil {
		age = fmt.Sprintf("max %s, at the end %s", f(r.IteratorAgeMax, "s", 1, 1), f(r.IteratorAgeEnd, "s", 1, 1))
	} else if r.IteratorAgeErr != "" {
		age = "n/a (" + r.IteratorAgeErr + ")"
	}
	fmt.Fprintf(&b, "  iterator age   %s\n", age)
	rss := "n/a"
	if r.DaemonPeakRSS != nil {
		rss = fmt.Sprintf("%.1f MiB", float64(*r.DaemonPeakRSS)/(1<<20))
	}
	fmt.Fprintf(&b, "  daemon         CPU %s (%s of one core), peak RSS %s\n", f(r.DaemonCPU, "s", 1, 1), f(r.DaemonCPUPct, "%", 1, 1), rss)
	fmt.Fprintf(&b, "  settled in     %.1fs after the last send\n", r.SettleSeconds)
	if len(r.LostIDs) > 0 {
		fmt.Fprintf(&b, "  lost ids       %v\n", r.LostIDs)
	}
	if r.SendError != "" {
		fmt.Fprintf(&b, "  send error     %s\n", r.SendError)
	}
	return b.String()
}

// JSON returns the report as one line of JSON; figures that could not be measured are null.
func (r Report) JSON() []byte {
	b, _ := json.Marshal(r) // plain fields always marshal
	return b
}
