package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dto "github.com/prometheus/client_model/go"

	"github.com/shardhose/shardhose/checkpoint"
	"github.com/shardhose/shardhose/loadtest"
	"github.com/shardhose/shardhose/produce"
	"github.com/shardhose/shardhose/record"
)

// Names by which -only selects the freshness and the shutdown measurements.
const (
	freshnessName = "freshness"
	shutdownName  = "shutdown"
)

// The S3 sink's buffering in the freshness and shutdown runs: the largest size Firehose allows,
// so that only the interval flushes.
const (
	latencyBufferMiB    = 128
	freshIntervalS      = 5   // the freshness runs' interval
	emptyIntervalS      = 1   // the empty-buffer shutdown: delivered soon after the start
	fullIntervalS       = 900 // the full-buffer shutdown: Firehose's longest, so nothing leaves before SIGTERM
	latencyCodec        = "GZIP"
	checkPollInterval   = 250 * time.Millisecond // how often the load tester lists the bucket
	conditionPoll       = 100 * time.Millisecond
	daemonReadyTimeout  = 2 * time.Minute
	shutdownWaitTimeout = 2 * time.Minute
)

// latencyBench runs the freshness and shutdown measurements on the local stack.
type latencyBench struct {
	st     *stack
	m      measures
	bucket string
	dir    string
	stamp  string
	// The stream the shutdown runs read, loaded once: its last sequence number per shard.
	shutdownStream string
	shutdownLast   map[string]string
}

// freshRun is one freshness round: the load tester's figures.
type freshRun struct {
	p50, p99, max                     float64 // seconds, accepted by Kinesis to seen in S3
	sent, delivered, lost, duplicates int
	rate                              float64 // achieved
	load                              string
}

func (f freshRun) String() string {
	return fmt.Sprintf("sent %d (%.1f/s), delivered %d, lost %d, duplicates %d; p50 %.2fs p99 %.2fs max %.2fs; load %s",
		f.sent, f.rate, f.delivered, f.lost, f.duplicates, f.p50, f.p99, f.max, f.load)
}

// shutdownRun is one shutdown round: SIGTERM to exit with an empty and with a full buffer, and
// what the full-buffer run left in S3 and in the lease table.
type shutdownRun struct {
	empty, full time.Duration
	delivered   int // of the shutdown stream's records, found in S3 after the full-buffer run
	duplicates  int
	objects     int
	atLast      int // shards checkpointed at their last record after the full-buffer run
	shards      int
	load        string
}

func (s shutdownRun) String() string {
	return fmt.Sprintf("empty buffer %.1f ms, full buffer %.1f ms (then %d records in %d objects, %d duplicates, %d of %d shards checkpointed at their last record); load %s",
		ms(s.empty), ms(s.full), s.delivered, s.objects, s.duplicates, s.atLast, s.shards, s.load)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// freshness starts one daemon on a new stream, waits until it holds every shard, and runs the
// load tester against it: -freshness-rate records per second for -freshness-window, every
// record found in S3 by its id.
func (b *latencyBench) freshness(ctx context.Context, round int) (freshRun, error) {
	name := fmt.Sprintf("bench-fresh-%s-%d", b.stamp, round)
	if err := createStream(ctx, b.st.kin, name, b.m.shards); err != nil {
		return freshRun{}, err
	}
	d, err := b.start(daemonConfig{stream: name, bucket: b.bucket, table: name, codec: latencyCodec, bufferMiB: latencyBufferMiB, intervalS: freshIntervalS})
	if err != nil {
		return freshRun{}, err
	}
	defer d.stop()
	if err := d.waitFor(ctx, daemonReadyTimeout, "hold every shard", func() (bool, error) {
		return holdsEvery(ctx, b.st.ddb, name, b.m.shards)
	}); err != nil {
		return freshRun{}, err
	}
	r := freshRun{load: loadAverage()}
	rep, err := loadtest.Run(ctx, loadtest.Options{
		Stream: name, Kinesis: b.st.kin, Source: &eventSource{size: b.m.size},
		Schedule: produce.Constant(b.m.freshRate), Duration: b.m.freshWindow,
		Sinks:        []loadtest.Sink{{Name: "archive", Client: b.st.s3, Bucket: b.bucket, Prefix: name + "/", Compression: latencyCodec}},
		PollInterval: checkPollInterval,
	})
	r.sent, r.delivered, r.lost, r.duplicates, r.rate = rep.Sent, rep.Delivered, rep.Lost, rep.Duplicates, rep.RateAchieved
	if err != nil {
		return r, fmt.Errorf("load test: %w\n%s", err, rep)
	}
	if rep.LatencyP50 == nil {
		return r, errors.New("load test: no record delivered, so no latency")
	}
	r.p50, r.p99, r.max = *rep.LatencyP50, *rep.LatencyP99, *rep.LatencyMax
	if _, err := d.terminate(); err != nil {
		return r, err
	}
	return r, nil
}

// eventSource yields the bench's JSON events (see event) as a produce.Source for the load tester,
// which stamps its id into each.
type eventSource struct {
	size, n int
}

func (s *eventSource) Next() (produce.Entry, error) {
	i := s.n
	s.n++
	return produce.Entry{Data: event(i, s.size), PartitionKey: strconv.Itoa(i)}, nil
}

// loadShutdownStream creates the stream the shutdown runs read and loads -shutdown-records
// records onto it.
func (b *latencyBench) loadShutdownStream(ctx context.Context) error {
	b.shutdownStream = "bench-shutdown-" + b.stamp
	fmt.Printf("== loading %d records of %d bytes onto %s (%d shards)\n", b.m.shutdownRecords, b.m.size, b.shutdownStream, b.m.shards)
	last, err := load(ctx, b.st.kin, b.shutdownStream, b.m.shards, b.m.shutdownRecords, b.m.size)
	b.shutdownLast = last
	return err
}

// shutdown measures SIGTERM to exit twice on the loaded shutdown stream, each time with a new
// lease table (so from TRIM_HORIZON): once when everything is delivered and checkpointed and
// the daemon idles, once with every record in the S3 sink's buffer and nothing uploaded. After
// the second it checks that every record is in S3 and every shard checkpointed at its last
// record; anything else is an error.
func (b *latencyBench) shutdown(ctx context.Context, round int) (shutdownRun, error) {
	s := shutdownRun{load: loadAverage(), shards: len(b.shutdownLast)}
	var err error
	if s.empty, err = b.shutdownEmpty(ctx, fmt.Sprintf("bench-stop-empty-%s-%d", b.stamp, round)); err != nil {
		return s, fmt.Errorf("empty buffer: %w", err)
	}
	if err := b.shutdownFull(ctx, fmt.Sprintf("bench-stop-full-%s-%d", b.stamp, round), &s); err != nil {
		return s, fmt.Errorf("full buffer: %w", err)
	}
	return s, nil
}

func (b *latencyBench) shutdownEmpty(ctx context.Context, table string) (time.Duration, error) {
	d, err := b.start(daemonConfig{stream: b.shutdownStream, bucket: b.bucket, table: table, codec: latencyCodec, bufferMiB: latencyBufferMiB, intervalS: emptyIntervalS})
	if err != nil {
		return 0, err
	}
	defer d.stop()
	if err := d.waitFor(ctx, daemonReadyTimeout, "deliver and checkpoint every record", func() (bool, error) {
		return checkpointedAtLast(ctx, b.st.ddb, table, b.shutdownLast)
	}); err != nil {
		return 0, err
	}
	return d.terminate()
}

func (b *latencyBench) shutdownFull(ctx context.Context, table string, s *shutdownRun) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	metricsURL := "http://" + port + "/metrics"
	d, err := b.start(daemonConfig{stream: b.shutdownStream, bucket: b.bucket, table: table, codec: latencyCodec, bufferMiB: latencyBufferMiB, intervalS: fullIntervalS, metrics: port})
	if err != nil {
		return err
	}
	defer d.stop()
	want := float64(b.m.shutdownRecords)
	hc := &http.Client{Timeout: 5 * time.Second}
	if err := d.waitFor(ctx, daemonReadyTimeout, fmt.Sprintf("hand all %d records to the sink", b.m.shutdownRecords), func() (bool, error) {
		families, err := loadtest.Scrape(ctx, hc, metricsURL)
		return err == nil && counterSum(families, "shardhose_processed_records_total", "outcome", "delivered") >= want, err
	}); err != nil {
		return err
	}
	sink := loadtest.Sink{Name: "archive", Client: b.st.s3, Bucket: b.bucket, Prefix: table + "/", Compression: latencyCodec}
	before, err := loadtest.ReadSink(ctx, sink)
	if err != nil {
		return err
	}
	if len(before) > 0 {
		return fmt.Errorf("%d objects were uploaded before SIGTERM: the buffer was not full at shutdown", len(before))
	}
	if s.full, err = d.terminate(); err != nil {
		return err
	}
	objects, err := loadtest.ReadSink(ctx, sink)
	if err != nil {
		return err
	}
	missing, dups := countEvents(b.m.shutdownRecords, b.m.size, objects)
	s.delivered, s.duplicates, s.objects = b.m.shutdownRecords-missing, dups, len(objects)
	if s.atLast, err = shardsAtLast(ctx, b.st.ddb, table, b.shutdownLast); err != nil {
		return err
	}
	var problems []string
	if missing > 0 {
		problems = append(problems, fmt.Sprintf("%d of %d records are not in S3", missing, b.m.shutdownRecords))
	}
	if s.atLast < len(b.shutdownLast) {
		problems = append(problems, fmt.Sprintf("only %d of %d shards are checkpointed at their last record", s.atLast, len(b.shutdownLast)))
	}
	if len(problems) > 0 {
		return fmt.Errorf("after the daemon exited: %s (its log: %s)", strings.Join(problems, "; "), d.logPath)
	}
	return nil
}

// idPattern finds the id of an event (see event) in delivered bytes.
var idPattern = regexp.MustCompile(`"id":"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"`)

// countEvents looks for events 0 to n-1 of size bytes (see event) in the objects' data, and
// returns how many are missing and how many extra copies there are.
func countEvents(n, size int, objects map[string][]byte) (missing, duplicates int) {
	seen := map[string]int{}
	for _, data := range objects {
		for _, m := range idPattern.FindAllSubmatch(data, -1) {
			seen[string(m[1])]++
		}
	}
	for i := range n {
		m := idPattern.FindSubmatch(event(i, size))
		switch c := seen[string(m[1])]; {
		case c == 0:
			missing++
		case c > 1:
			duplicates += c - 1
		}
	}
	return missing, duplicates
}

// shardsAtLast counts the shards of last checkpointed at (or past) their last record.
func shardsAtLast(ctx context.Context, ddb *dynamodb.Client, table string, last map[string]string) (int, error) {
	leases, err := checkpoint.NewTable(ddb, table, "", checkpoint.Options{}).List(ctx)
	if err != nil {
		return 0, err
	}
	return atLast(leases, last), nil
}

// checkpointedAtLast reports whether every shard of last is checkpointed at its last record.
func checkpointedAtLast(ctx context.Context, ddb *dynamodb.Client, table string, last map[string]string) (bool, error) {
	n, err := shardsAtLast(ctx, ddb, table, last)
	return n == len(last), err
}

// holdsEvery reports whether n leases of the table have an owner.
func holdsEvery(ctx context.Context, ddb *dynamodb.Client, table string, n int) (bool, error) {
	leases, err := checkpoint.NewTable(ddb, table, "", checkpoint.Options{}).List(ctx)
	if err != nil {
		return false, err
	}
	owned := 0
	for _, l := range leases {
		if !l.Free() {
			owned++
		}
	}
	return owned == n, nil
}

// counterSum sums the samples of counter name (in Prometheus metrics families) whose label has
// value; a counter with no such sample sums to 0.
func counterSum(families map[string]*dto.MetricFamily, name, label, value string) float64 {
	sum := 0.0
	for _, m := range families[name].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == label && l.GetValue() == value {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// freePort returns a 127.0.0.1 host:port that was free a moment ago.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func loadAverage() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	return strings.Join(f[:min(3, len(f))], " ")
}

// daemon is a shardhose process started by the bench, its log in a file.
type daemon struct {
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{} // closed once Wait returned; waitErr is set then
	waitErr error
}

// start writes c's configuration and starts the daemon on it.
func (b *latencyBench) start(c daemonConfig) (*daemon, error) {
	cfg, err := writeConfig(b.dir, b.st.kinEP, b.st.ddbEP, b.st.s3EP, c)
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(b.dir, c.table+".log")
	log, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(b.m.bin, "run", "-c", cfg)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("start %s: %w", b.m.bin, err)
	}
	d := &daemon{cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		d.waitErr = cmd.Wait()
		log.Close()
		close(d.exited)
	}()
	return d, nil
}

// waitFor polls cond until it holds, and fails if the daemon exits first or within passes.
func (d *daemon) waitFor(ctx context.Context, within time.Duration, what string, cond func() (bool, error)) error {
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	var lastErr error
	for {
		ok, err := cond()
		if ok && err == nil {
			return nil
		}
		lastErr = err
		select {
		case <-d.exited:
			return fmt.Errorf("the daemon exited (%v) before it would %s: %s", d.waitErr, what, logTail(d.logPath))
		case <-deadline.C:
			return fmt.Errorf("the daemon did not %s within %v (last error: %v); its log: %s", what, within, lastErr, d.logPath)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(conditionPoll):
		}
	}
}

// terminate sends SIGTERM and returns the time until the process exited; the daemon exiting
// with an error, or not within shutdownWaitTimeout (then it is killed), is an error.
func (d *daemon) terminate() (time.Duration, error) {
	select {
	case <-d.exited:
		return 0, fmt.Errorf("the daemon had exited (%v) before SIGTERM: %s", d.waitErr, logTail(d.logPath))
	default:
	}
	start := time.Now()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return 0, err
	}
	select {
	case <-d.exited:
	case <-time.After(shutdownWaitTimeout):
		_ = d.cmd.Process.Kill()
		<-d.exited
		return 0, fmt.Errorf("the daemon did not exit within %v of SIGTERM; killed: %s", shutdownWaitTimeout, logTail(d.logPath))
	}
	took := time.Since(start)
	if d.waitErr != nil {
		return took, fmt.Errorf("the daemon exited with %v after SIGTERM: %s", d.waitErr, logTail(d.logPath))
	}
	return took, nil
}

// stop kills the daemon if it still runs (after a failed measurement) and waits for it.
func (d *daemon) stop() {
	select {
	case <-d.exited:
	default:
		_ = d.cmd.Process.Kill()
		<-d.exited
	}
}

func logTail(path string) string {
	b, _ := os.ReadFile(path)
	return tail(string(b))
}

// freshReport is the freshness table: each figure the median over the rounds, with every round's.
func freshReport(rs []freshRun, m measures) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Freshness: the load tester (package loadtest) sends %d-byte JSON records (plus its id field) at %.0f records/s for %v into a new %d-shard stream, one daemon (poll_interval 1s) delivering to S3 (%s, buffering_hints %d MiB or %d s: the interval flushes), and finds each record in S3 by its id, listing the bucket every %v. Latency is from Kinesis accepting a record to the listing that first shows it.\n\n",
		m.size, m.freshRate, m.freshWindow, m.shards, latencyCodec, latencyBufferMiB, freshIntervalS, checkPollInterval)
	b.WriteString("| freshness | median | per round |\n| --- | ---: | --- |\n")
	row := func(name string, key func(freshRun) float64, format string) {
		var per []string
		for _, r := range rs {
			per = append(per, fmt.Sprintf(format, key(r)))
		}
		fmt.Fprintf(&b, "| %s | "+format+" | %s |\n", name, median(rs, key), strings.Join(per, "; "))
	}
	row("p50 s", func(r freshRun) float64 { return r.p50 }, "%.2f")
	row("p99 s", func(r freshRun) float64 { return r.p99 }, "%.2f")
	row("max s", func(r freshRun) float64 { return r.max }, "%.2f")
	row("records/s sent", func(r freshRun) float64 { return r.rate }, "%.1f")
	var counts, loads []string
	for _, r := range rs {
		counts = append(counts, fmt.Sprintf("%d / %d / %d / %d", r.sent, r.delivered, r.lost, r.duplicates))
		loads = append(loads, r.load)
	}
	fmt.Fprintf(&b, "| sent / delivered / lost / duplicates | | %s |\n", strings.Join(counts, "; "))
	fmt.Fprintf(&b, "| load average at start (1, 5, 15 min) | | %s |\n", strings.Join(loads, "; "))
	return b.String()
}

// shutdownReport is the shutdown table: SIGTERM to exit, the median over the rounds and each round's.
func shutdownReport(rs []shutdownRun, m measures) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Shutdown: SIGTERM to process exit of one daemon on a %d-shard stream holding %d records (%s to S3, %d MiB buffers). Empty buffer: every record delivered and checkpointed (interval %d s), the daemon idle. Full buffer: every record read and handed to the S3 sink, whose %d s interval has not passed, nothing uploaded; the stop uploads them and checkpoints; after exit every record is looked for in S3 and every shard's checkpoint compared with its last record.\n\n",
		m.shards, m.shutdownRecords, latencyCodec, latencyBufferMiB, emptyIntervalS, fullIntervalS)
	b.WriteString("| shutdown | SIGTERM to exit, ms (median) | per round | after exit |\n| --- | ---: | --- | --- |\n")
	var empty, full, checks, loads []string
	for _, r := range rs {
		empty = append(empty, fmt.Sprintf("%.1f", ms(r.empty)))
		full = append(full, fmt.Sprintf("%.1f", ms(r.full)))
		checks = append(checks, fmt.Sprintf("%d of %d records in S3 (%d objects, %d duplicates), %d of %d shards checkpointed at their last record",
			r.delivered, m.shutdownRecords, r.objects, r.duplicates, r.atLast, r.shards))
		loads = append(loads, r.load)
	}
	fmt.Fprintf(&b, "| empty buffer | %.1f | %s | |\n", median(rs, func(r shutdownRun) float64 { return ms(r.empty) }), strings.Join(empty, "; "))
	fmt.Fprintf(&b, "| full buffer (%d records) | %.1f | %s | %s |\n", m.shutdownRecords, median(rs, func(r shutdownRun) float64 { return ms(r.full) }), strings.Join(full, "; "), strings.Join(checks, "; "))
	fmt.Fprintf(&b, "| load average at start (1, 5, 15 min) | | %s | |\n", strings.Join(loads, "; "))
	return b.String()
}

// atLast counts the shards of last whose lease is checkpointed at (or past) the shard's last record.
func atLast(leases []checkpoint.Lease, last map[string]string) int {
	done := 0
	for _, l := range leases {
		if want, ok := last[l.ShardID]; ok && !l.Checkpoint.IsZero() &&
			l.Checkpoint.Compare(record.Position{SequenceNumber: want}) >= 0 {
			done++
		}
	}
	return done
}
