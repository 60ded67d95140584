// Command e2e is `make bench-e2e`: on the local stack (kinesalite, dynalite, moto, started by
// deploy/local/with-stack.sh, which passes their endpoints in SHARDHOSE_TEST_*_ENDPOINT) it loads
// -records JSON records of -size bytes onto a stream of -shards shards once, then runs, -rounds
// times and interleaved, each variant over the whole stream: the floor (deploy/bench/floor, a
// plain GetRecords loop, with the SDK's decoder and with consumer/getrecords) and the shardhose
// daemon delivering to S3 with GZIP, ZSTD, Snappy, and GZIP after the json handler. Each process
// is measured from outside: CPU (user + system) and peak RSS from its rusage, wall time, and the
// machine's load average when it started. A daemon run ends when the lease table shows every
// shard checkpointed at its last record (so everything was delivered), then gets SIGTERM.
//
// In the same rounds it measures freshness (fresh.go: the load tester, package loadtest, sends
// at -freshness-rate for -freshness-window through one daemon whose S3 sink flushes on a 5 s
// interval, and finds every record in S3) and the daemon's shutdown time, from SIGTERM to exit,
// with an empty buffer and with a full one (-shutdown-records records buffered and not yet
// uploaded), checking after the latter that every record is in S3 and every shard checkpointed
// at its last record.
//
// It reports and never asserts a time: the tables, with ratios to the floor, replace the section
// between the bench-e2e markers of -doc (docs/benchmarks.md). A record lost at shutdown is an
// error.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/shardhose/shardhose/record"
)

type variant struct {
	name  string
	floor []string // floor arguments; nil for a daemon run
	codec string   // the S3 sink's compression, for a daemon run
	json  bool     // the json handler before the sink
	// memoryMBs, when set, is the daemon's memory.limit_mbs.
	memoryMBs int
}

var variants = []variant{
	{name: "floor, SDK decoder", floor: []string{"-decoder", "sdk"}},
	{name: "floor, getrecords decoder", floor: []string{"-decoder", "getrecords"}},
	{name: "floor, getrecords decoder + gzip", floor: []string{"-decoder", "getrecords", "-codec", "gzip"}},
	{name: "shardhose GZIP", codec: "GZIP"},
	{name: "shardhose ZSTD", codec: "ZSTD"},
	{name: "shardhose Snappy", codec: "SNAPPY"},
	{name: "shardhose Snappy (memory.limit_mbs 32)", codec: "SNAPPY", memoryMBs: 32},
	{name: "shardhose Snappy (memory.limit_mbs 64)", codec: "SNAPPY", memoryMBs: 64},
	{name: "shardhose GZIP + json handler", codec: "GZIP", json: true},
}

type run struct {
	cpu, wall time.Duration
	rssKiB    int64
	// anonKiB and fileKiB are the highest anonymous and file-backed resident sizes seen by
	// sampling /proc/PID/status (the program's mapped code is the file-backed part).
	anonKiB, fileKiB int64
	load             string
}

// sampleResident reads /proc/pid/status every 20 ms until stop is closed and keeps the highest
// RssAnon and RssFile seen in r.
func sampleResident(pid int, r *run, stop <-chan struct{}) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
			for _, line := range strings.Split(string(b), "\n") {
				f := strings.Fields(line)
				if len(f) < 2 {
					continue
				}
				n, _ := strconv.ParseInt(f[1], 10, 64)
				switch f[0] {
				case "RssAnon:":
					r.anonKiB = max(r.anonKiB, n)
				case "RssFile:":
					r.fileKiB = max(r.fileKiB, n)
				}
			}
		}
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}

func main() {
	records := flag.Int("records", 100000, "records to load")
	size := flag.Int("size", 1024, "bytes per record")
	shards := flag.Int("shards", 4, "shards of the stream")
	rounds := flag.Int("rounds", 3, "interleaved rounds")
	bin := flag.String("shardhose", "bin/shardhose", "the daemon's binary")
	floorBin := flag.String("floor", "bin/bench-floor", "the floor's binary")
	doc := flag.String("doc", "docs/benchmarks.md", "document whose bench-e2e section is replaced")
	only := flag.String("only", "", "comma-separated name prefixes of what to run: variants, freshness, shutdown (default all)")
	idle := flag.String("idle", "", "comma-separated shard counts: measure the daemon on an idle stream of each size instead")
	window := flag.Duration("idle-window", time.Minute, "how long each idle measurement lasts")
	var m measures
	flag.DurationVar(&m.freshWindow, "freshness-window", time.Minute, "how long the freshness load test sends")
	flag.Float64Var(&m.freshRate, "freshness-rate", 500, "records per second the freshness load test sends")
	flag.IntVar(&m.shutdownRecords, "shutdown-records", 5000, "records in the buffer when the full-buffer shutdown is measured")
	flag.Parse()
	if *idle != "" {
		if err := idleBench(*idle, *window, *bin, *doc); err != nil {
			fmt.Fprintln(os.Stderr, "bench-e2e:", err)
			os.Exit(1)
		}
		return
	}
	m.records, m.size, m.shards, m.rounds, m.bin, m.floorBin = *records, *size, *shards, *rounds, *bin, *floorBin
	if err := bench(m, *doc, *only); err != nil {
		fmt.Fprintln(os.Stderr, "bench-e2e:", err)
		os.Exit(1)
	}
}

// stack is the local stack's endpoints and clients.
type stack struct {
	kinEP, ddbEP, s3EP string
	kin                *kinesis.Client
	ddb                *dynamodb.Client
	s3                 *s3.Client
}

// connect reads the endpoints with-stack.sh passes and makes the clients.
func connect() (*stack, error) {
	var st stack
	for _, e := range []struct {
		name string
		to   *string
	}{{"SHARDHOSE_TEST_KINESALITE_ENDPOINT", &st.kinEP}, {"SHARDHOSE_TEST_DYNAMODB_ENDPOINT", &st.ddbEP}, {"SHARDHOSE_TEST_MOTO_ENDPOINT", &st.s3EP}} {
		v, err := env(e.name)
		if err != nil {
			return nil, err
		}
		*e.to = v
	}
	creds := credentials.NewStaticCredentialsProvider("test", "test", "")
	st.kin = kinesis.New(kinesis.Options{Region: "us-east-1", BaseEndpoint: aws.String(st.kinEP), Credentials: creds})
	st.ddb = dynamodb.New(dynamodb.Options{Region: "us-east-1", BaseEndpoint: aws.String(st.ddbEP), Credentials: creds})
	st.s3 = s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(st.s3EP), Credentials: creds, UsePathStyle: true})
	return &st, nil
}

// createStream creates an empty stream of n shards and waits until it is active.
func createStream(ctx context.Context, kin *kinesis.Client, stream string, n int) error {
	if _, err := kin.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(stream), ShardCount: aws.Int32(int32(n))}); err != nil {
		return fmt.Errorf("create stream: %w", err)
	}
	for {
		out, err := kin.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(stream)})
		if err == nil && out.StreamDescriptionSummary.StreamStatus == ktypes.StreamStatusActive {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func env(name string) (string, error) {
	if v := os.Getenv(name); v != "" {
		return v, nil
	}
	return "", fmt.Errorf("%s is not set: run under deploy/local/with-stack.sh", name)
}

// measures is what one `make bench-e2e` measures and how.
type measures struct {
	records, size, shards, rounds int
	bin, floorBin                 string
	freshWindow                   time.Duration
	freshRate                     float64
	shutdownRecords               int
}

// chosenBy reports whether name is selected by -only (comma-separated name prefixes, or whole
// names when they end in $; "" selects all).
func chosenBy(only, name string) bool {
	return only == "" || slices.ContainsFunc(strings.Split(only, ","), func(p string) bool {
		if whole, ok := strings.CutSuffix(p, "$"); ok {
			return name == whole
		}
		return p != "" && strings.HasPrefix(name, p)
	})
}

func bench(m measures, doc, only string) error {
	records, size, shards, rounds, bin, floorBin := m.records, m.size, m.shards, m.rounds, m.bin, m.floorBin
	st, err := connect()
	if err != nil {
		return err
	}
	kinEP, ddbEP, s3EP, kin, ddb, s3c := st.kinEP, st.ddbEP, st.s3EP, st.kin, st.ddb, st.s3
	ctx := context.Background()

	stamp := strconv.FormatInt(time.Now().Unix(), 36)
	stream, bucket := "bench-e2e-"+stamp, "bench-e2e-"+stamp
	if _, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		return fmt.Errorf("create bucket: %w", err)
	}
	var chosen []variant
	for _, v := range variants {
		if chosenBy(only, v.name) {
			chosen = append(chosen, v)
		}
	}
	doFresh, doShutdown := chosenBy(only, freshnessName), chosenBy(only, shutdownName)
	var last map[string]string
	if len(chosen) > 0 {
		fmt.Printf("== loading %d records of %d bytes onto %s (%d shards)\n", records, size, stream, shards)
		if last, err = load(ctx, kin, stream, shards, records, size); err != nil {
			return err
		}
	}

	dir, err := os.MkdirTemp("", "bench-e2e-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	lat := latencyBench{st: st, m: m, bucket: bucket, dir: dir, stamp: stamp}
	if doShutdown {
		if err := lat.loadShutdownStream(ctx); err != nil {
			return err
		}
	}
	results := map[string][]run{}
	var fresh []freshRun
	var stops []shutdownRun
	for round := 1; round <= rounds; round++ {
		for i, v := range chosen {
			var r run
			var err error
			if v.floor != nil {
				args := append([]string{"-endpoint", kinEP, "-stream", stream, "-records", strconv.Itoa(records)}, v.floor...)
				r, err = measure(exec.Command(floorBin, args...), nil)
			} else {
				table := fmt.Sprintf("bench-%s-%d-%d", stamp, round, i)
				cfg, werr := writeConfig(dir, kinEP, ddbEP, s3EP, daemonConfig{stream: stream, bucket: bucket, table: table, codec: v.codec, json: v.json, bufferMiB: 5, intervalS: 1, memoryMBs: v.memoryMBs})
				if werr != nil {
					return werr
				}
				cmd := exec.Command(bin, "run", "-c", cfg)
				r, err = measure(cmd, func() error { return drained(ctx, ddb, table, last) })
			}
			if err != nil {
				return fmt.Errorf("round %d, %s: %w", round, v.name, err)
			}
			fmt.Printf("round %d  %-34s cpu %6.2fs  wall %6.1fs  rss %4d MiB  %7.0f records/CPU-s  load %s\n",
				round, v.name, r.cpu.Seconds(), r.wall.Seconds(), r.rssKiB/1024, float64(records)/r.cpu.Seconds(), r.load)
			results[v.name] = append(results[v.name], r)
		}
		if doFresh {
			f, err := lat.freshness(ctx, round)
			if err != nil {
				return fmt.Errorf("round %d, freshness: %w", round, err)
			}
			fmt.Printf("round %d  freshness: %s\n", round, f)
			fresh = append(fresh, f)
		}
		if doShutdown {
			s, err := lat.shutdown(ctx, round)
			if err != nil {
				return fmt.Errorf("round %d, shutdown: %w", round, err)
			}
			fmt.Printf("round %d  shutdown: %s\n", round, s)
			stops = append(stops, s)
		}
	}
	var body strings.Builder
	if len(chosen) > 0 {
		body.WriteString(report(chosen, results, records, size, shards, rounds))
	}
	if doFresh {
		body.WriteString("\n" + freshReport(fresh, m))
	}
	if doShutdown {
		body.WriteString("\n" + shutdownReport(stops, m))
	}
	return writeDoc(doc, strings.TrimPrefix(body.String(), "\n"))
}

// load creates the stream and writes the records with 4 writers, retrying throttled entries,
// and returns the last sequence number written to each shard.
func load(ctx context.Context, kin *kinesis.Client, stream string, shards, n, size int) (map[string]string, error) {
	if err := createStream(ctx, kin, stream, shards); err != nil {
		return nil, err
	}
	var mu sync.Mutex
	last := map[string]string{}
	jobs := make(chan int)
	errs := make(chan error, 4)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for start := range jobs {
				if err := putBatch(ctx, kin, stream, start, min(start+500, n), size, &mu, last); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	for start := 0; start < n; start += 500 {
		select {
		case jobs <- start:
		case err := <-errs:
			close(jobs)
			wg.Wait()
			return nil, err
		}
	}
	close(jobs)
	wg.Wait()
	select {
	case err := <-errs:
		return nil, err
	default:
	}
	return last, nil
}

func putBatch(ctx context.Context, kin *kinesis.Client, stream string, from, to, size int, mu *sync.Mutex, last map[string]string) error {
	var entries []ktypes.PutRecordsRequestEntry
	for i := from; i < to; i++ {
		entries = append(entries, ktypes.PutRecordsRequestEntry{Data: event(i, size), PartitionKey: aws.String(strconv.Itoa(i))})
	}
	for attempt := 0; len(entries) > 0; attempt++ {
		if attempt > 50 {
			return errors.New("PutRecords keeps failing")
		}
		out, err := kin.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: entries})
		if err != nil {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		var retry []ktypes.PutRecordsRequestEntry
		mu.Lock()
		for i, r := range out.Records {
			if r.ErrorCode != nil {
				retry = append(retry, entries[i])
				continue
			}
			shard, seq := aws.ToString(r.ShardId), aws.ToString(r.SequenceNumber)
			if cur, ok := last[shard]; !ok || (record.Position{SequenceNumber: seq}).Compare(record.Position{SequenceNumber: cur}) > 0 {
				last[shard] = seq
			}
		}
		mu.Unlock()
		entries = retry
		if len(retry) > 0 {
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

var words = strings.Fields("lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore et dolore magna aliqua order basket shipped returned café naïve")

// event is a JSON object of exactly size bytes (at least about 200), varied by i.
func event(i, size int) []byte {
	rng := rand.New(rand.NewPCG(uint64(i), 42))
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"id":"%08x-%04x-%04x-%04x-%012x","time":"2026-01-02T03:%02d:%02d.%03dZ","event":"%s","user":{"id":%d,"tags":["%s","%s"]},"amount":%d.%02d,"message":"`,
		rng.Uint32(), rng.IntN(1<<16), rng.IntN(1<<16), rng.IntN(1<<16), rng.Uint64()&(1<<48-1), rng.IntN(60), rng.IntN(60), rng.IntN(1000),
		[]string{"view", "cart", "purchase"}[rng.IntN(3)], rng.IntN(1_000_000), words[rng.IntN(len(words))], words[rng.IntN(len(words))], rng.IntN(1000), rng.IntN(100))
	for b.Len() < size-2 {
		w := words[rng.IntN(len(words))]
		if b.Len()+len(w)+1 > size-2 {
			b.WriteString(strings.Repeat("x", size-2-b.Len()))
			break
		}
		b.WriteString(w)
		b.WriteByte(' ')
	}
	b.WriteString(`"}`)
	return b.Bytes()
}

// daemonConfig is what differs between the daemon's runs.
type daemonConfig struct {
	stream, bucket string
	table          string // the lease table; also the S3 prefix (table + "/") and the file names
	codec          string // the S3 sink's compression
	json           bool   // the json handler before the sink
	bufferMiB      int    // buffering_hints.size_in_mbs
	intervalS      int    // buffering_hints.interval_in_seconds
	metrics        string // metrics.listen, "" for none
	memoryMBs      int    // memory.limit_mbs, 0 for none
}

// writeConfig writes the daemon's configuration for c into dir and returns its path.
func writeConfig(dir, kinEP, ddbEP, s3EP string, c daemonConfig) (string, error) {
	path := filepath.Join(dir, c.table+".yaml")
	return path, os.WriteFile(path, []byte(config(kinEP, ddbEP, s3EP, dir, c)), 0o644)
}

func config(kinEP, ddbEP, s3EP, dir string, c daemonConfig) string {
	extra := ""
	if c.json {
		extra = "processing:\n  handlers:\n    - type: json\n"
	}
	if c.metrics != "" {
		extra += fmt.Sprintf("metrics: {listen: %q}\n", c.metrics)
	}
	if c.memoryMBs > 0 {
		extra += fmt.Sprintf("memory:\n  limit_mbs: %d\n", c.memoryMBs)
	}
	return fmt.Sprintf(`aws:
  region: us-east-1
  endpoints: {kinesis: %q, dynamodb: %q, s3: %q}
  credentials: {source: static, access_key_id: test, secret_access_key: test}
  s3_use_path_style: true
stream:
  name: %s
leases:
  table: %s
sinks:
  - name: archive
    type: s3
    s3:
      bucket: %s
      prefix: %s/
      compression: %s
      buffering_hints: {size_in_mbs: %d, interval_in_seconds: %d}
%sdead_letter:
  type: file
  file: {path: %q}
log: {format: text, level: warn}
`, kinEP, ddbEP, s3EP, c.stream, c.table, c.bucket, c.table, c.codec, c.bufferMiB, c.intervalS, extra, filepath.Join(dir, c.table+"-dead-letters.jsonl"))
}

// drained reports nil once every shard of last is checkpointed at (or past) its last record.
func drained(ctx context.Context, ddb *dynamodb.Client, table string, last map[string]string) error {
	ok, err := checkpointedAtLast(ctx, ddb, table, last)
	if err != nil {
		return err
	}
	if !ok {
		return errNotYet
	}
	return nil
}

var errNotYet = errors.New("not drained yet")

// measure runs cmd to its end, or, with done, until done returns nil (then SIGTERM and wait),
// and returns its CPU, wall time and peak RSS from its rusage.
func measure(cmd *exec.Cmd, done func() error) (run, error) {
	load, _ := os.ReadFile("/proc/loadavg")
	fields := strings.Fields(string(load))
	r := run{load: strings.Join(fields[:min(3, len(fields))], " ")}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return r, err
	}
	stopSampling, sampled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sampled)
		sampleResident(cmd.Process.Pid, &r, stopSampling)
	}()
	exited := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		close(stopSampling)
		<-sampled
		exited <- err
	}()
	var waitErr error
	if done == nil {
		waitErr = <-exited
	} else {
		deadline := time.After(20 * time.Minute)
	poll:
		for {
			select {
			case err := <-exited:
				return r, fmt.Errorf("the daemon exited before draining (%v): %s", err, tail(stderr.String()))
			case <-deadline:
				_ = cmd.Process.Kill()
				<-exited
				return r, errors.New("not drained within 20 minutes")
			case <-time.After(250 * time.Millisecond):
				if err := done(); err == nil {
					break poll
				} else if !errors.Is(err, errNotYet) && !strings.Contains(err.Error(), "ResourceNotFound") {
					fmt.Fprintln(os.Stderr, "bench-e2e: reading the lease table:", err)
				}
			}
		}
		r.wall = time.Since(start)
		_ = cmd.Process.Signal(syscall.SIGTERM)
		waitErr = <-exited
	}
	if r.wall == 0 {
		r.wall = time.Since(start)
	}
	if waitErr != nil {
		return r, fmt.Errorf("%v: %s", waitErr, tail(stderr.String()))
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return r, errors.New("no rusage on this platform")
	}
	r.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	r.rssKiB = ru.Maxrss
	return r, nil
}

func tail(s string) string {
	if len(s) > 2000 {
		return s[len(s)-2000:]
	}
	return s
}

func median[T any](xs []T, key func(T) float64) float64 {
	v := make([]float64, len(xs))
	for i, x := range xs {
		v[i] = key(x)
	}
	slices.Sort(v)
	if len(v) == 0 {
		return 0
	}
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func report(chosen []variant, results map[string][]run, records, size, shards, rounds int) string {
	var b strings.Builder
	host, _ := os.Hostname()
	fmt.Fprintf(&b, "Taken %s on %s (%d cores, %s): %d records of %d bytes of JSON on %d kinesalite shards, %d interleaved rounds; each figure is the median over the rounds.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), host, runtime.NumCPU(), runtime.Version(), records, size, shards, rounds)
	b.WriteString("| run | CPU s | records per CPU-s | CPU vs SDK floor | CPU vs getrecords floor | peak RSS MiB (median, max) | of it: peak anonymous, file MiB (median) | wall s | load average at start (1, 5, 15 min) per round |\n")
	b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n")
	base := func(name string) float64 {
		return median(results[name], func(r run) float64 { return r.cpu.Seconds() })
	}
	sdkFloor, fastFloor := base(variants[0].name), base(variants[1].name)
	ratio := func(cpu, floor float64) string {
		if floor == 0 {
			return "–"
		}
		return fmt.Sprintf("%.2f×", cpu/floor)
	}
	for _, v := range chosen {
		rs := results[v.name]
		cpu := median(rs, func(r run) float64 { return r.cpu.Seconds() })
		var loads []string
		maxRSS := 0.0
		for _, r := range rs {
			loads = append(loads, r.load)
			maxRSS = max(maxRSS, float64(r.rssKiB)/1024)
		}
		fmt.Fprintf(&b, "| %s | %.2f | %.0f | %s | %s | %.0f, %.0f | %.0f, %.0f | %.1f | %s |\n", v.name, cpu, float64(records)/cpu,
			ratio(cpu, sdkFloor), ratio(cpu, fastFloor), median(rs, func(r run) float64 { return float64(r.rssKiB) / 1024 }), maxRSS,
			median(rs, func(r run) float64 { return float64(r.anonKiB) / 1024 }), median(rs, func(r run) float64 { return float64(r.fileKiB) / 1024 }),
			median(rs, func(r run) float64 { return r.wall.Seconds() }), strings.Join(loads, "; "))
	}
	return b.String()
}

const beginMarker, endMarker = "<!-- bench-e2e:begin -->", "<!-- bench-e2e:end -->"

// writeDoc replaces the text between the bench-e2e markers in doc, or appends a section.
func writeDoc(doc, body string) error {
	return writeSection(doc, beginMarker, endMarker, "End to end (`make bench-e2e`)", body)
}

// writeSection replaces the text between begin and end in doc, or appends a section with them.
func writeSection(doc, beginMarker, endMarker, title, body string) error {
	old, err := os.ReadFile(doc)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	s := string(old)
	section := beginMarker + "\n" + body + endMarker
	i, j := strings.Index(s, beginMarker), strings.Index(s, endMarker)
	if i >= 0 && j > i {
		s = s[:i] + section + s[j+len(endMarker):]
	} else {
		s += "\n## " + title + "\n\n" + section + "\n"
	}
	fmt.Print(body)
	return os.WriteFile(doc, []byte(s), 0o644)
}
