package main

// Fleet tests: several `shardhose run` processes share one lease table on kinesis-local +
// dynalite + moto. Each test measures a lease transition from the lease table (or S3) and prints
// how long it took; nothing waits on a guess: every wait is a condition polled with a deadline.

import (
	"bufio"
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsretry "github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/shardhose/shardhose/checkpoint"
	"github.com/shardhose/shardhose/consumer/kpl"
	"github.com/shardhose/shardhose/internal/clock"
	"github.com/shardhose/shardhose/internal/testenv"
	"github.com/shardhose/shardhose/record"
	s3sink "github.com/shardhose/shardhose/sinks/s3"
)

// Lease timing of every fleet test: short, so that each multi-process test takes seconds.
const (
	fleetLeaseDuration = 3 * time.Second
	fleetRenewInterval = time.Second
)

// fleetOptions are the settings a fleet test chooses for its workers; zero values take the
// defaults of fleetConfig.
type fleetOptions struct {
	bufferIntervalSec int           // S3 buffering interval; default 1
	maxUploads        int           // S3 uploads at once per worker; default 4
	batchSize         int           // batching.batch_size; default 100
	maxInFlight       int           // batching.max_in_flight_records; default 50000
	drainTimeout      time.Duration // shutdown.drain_timeout; default 20s
	s3Endpoint        string        // default the stack's moto
	kinesisEndpoint   string        // default the stack's kinesis-local
	dynamoDBEndpoint  string        // default the stack's dynalite
	delivery          string        // the S3 sink's delivery; default at_least_once
	s3Extra           string        // more keys of the S3 sink's section, each line indented by 6
	extra             string        // top-level YAML sections appended as they are
}

// fleetConfig writes a worker config for the stack with the fleet's lease timing.
func (s *e2eStack) fleetConfig(t *testing.T, o fleetOptions) string {
	t.Helper()
	if o.bufferIntervalSec == 0 {
		o.bufferIntervalSec = 1
	}
	if o.maxUploads == 0 {
		o.maxUploads = 4
	}
	if o.batchSize == 0 {
		o.batchSize = 100
	}
	if o.maxInFlight == 0 {
		o.maxInFlight = 50000
	}
	if o.drainTimeout == 0 {
		o.drainTimeout = 20 * time.Second
	}
	if o.s3Endpoint == "" {
		o.s3Endpoint = s.env.Moto
	}
	o.kinesisEndpoint = cmp.Or(o.kinesisEndpoint, s.kinesisEndpoint, s.env.Kinesis)
	o.dynamoDBEndpoint = cmp.Or(o.dynamoDBEndpoint, s.env.DynamoDB)
	o.delivery = cmp.Or(o.delivery, "at_least_once")
	y := fmt.Sprintf(`aws:
  region: us-east-1
  credentials: {source: static, access_key_id: test, secret_access_key: test}
  endpoints: {kinesis: %q, dynamodb: %q, s3: %q}
  s3_use_path_style: true
stream:
  name: %s
  starting_position: TRIM_HORIZON
  poll_interval: 250ms
leases:
  table: %s
  lease_duration: %s
  renew_interval: %s
  shard_sync_interval: 2s
  checkpoint_interval: 250ms
batching:
  batch_size: %d
  max_in_flight_records: %d
sinks:
  - name: archive
    type: s3
    s3:
      bucket: %s
      compression: GZIP
      buffering_hints: {size_in_mbs: 1, interval_in_seconds: %d}
      max_uploads: %d
      retry: {initial_backoff: 200ms, max_backoff: 1s}
      delivery: %s
%s
shutdown:
  drain_timeout: %s
log:
  format: json
  level: debug
%s`, o.kinesisEndpoint, o.dynamoDBEndpoint, o.s3Endpoint, s.stream, s.table, fleetLeaseDuration, fleetRenewInterval,
		o.batchSize, o.maxInFlight, s.bucket, o.bufferIntervalSec, o.maxUploads, o.delivery, o.s3Extra, o.drainTimeout, o.extra)
	path := filepath.Join(t.TempDir(), "shardhose.yaml")
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// startWorker starts `shardhose run` as workerID. When SHARDHOSE_TEST_LOG_DIR names a directory,
// the worker's whole log is written there when the test ends (<test>-<worker>.log).
func startWorker(t *testing.T, cfg, workerID string) *daemon {
	t.Helper()
	return startWorkerEnv(t, cfg, workerID, nil)
}

// startWorkerEnv is startWorker with extra environment variables (NAME=value) for the process.
func startWorkerEnv(t *testing.T, cfg, workerID string, env []string) *daemon {
	t.Helper()
	d := startDaemonEnv(t, cfg, workerID, env)
	if dir := os.Getenv("SHARDHOSE_TEST_LOG_DIR"); dir != "" {
		t.Cleanup(func() {
			path := filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_")+"-"+workerID+".log")
			if err := os.WriteFile(path, []byte(d.logs.String()), 0o644); err != nil {
				t.Logf("write %s: %v", path, err)
			}
		})
	}
	return d
}

// ---- the daemon's logs ----

// logLine is one JSON log line of a worker, with the attributes the fleet tests read.
type logLine struct {
	Time       time.Time `json:"time"`
	Msg        string    `json:"msg"`
	Shard      string    `json:"shard"`
	Checkpoint string    `json:"checkpoint"`
	Position   string    `json:"position"`
	Last       string    `json:"last"`
	Reason     string    `json:"reason"`
	Key        string    `json:"key"`
	Records    int       `json:"records"`
	index      int       // line number in the worker's output
}

func (d *daemon) lines() []logLine {
	var out []logLine
	sc := bufio.NewScanner(strings.NewReader(d.logs.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for i := 0; sc.Scan(); i++ {
		var l logLine
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg != "" {
			l.index = i
			out = append(out, l)
		}
	}
	return out
}

// find returns the worker's log lines with message msg about shard (any shard when "").
func (d *daemon) find(msg, shard string) []logLine {
	var out []logLine
	for _, l := range d.lines() {
		if l.Msg == msg && (shard == "" || l.Shard == shard) {
			out = append(out, l)
		}
	}
	return out
}

func (d *daemon) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := d.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("send %v to worker: %v", sig, err)
	}
}

// stop sends SIGTERM and requires a clean exit.
func (d *daemon) stop(t *testing.T, name string) {
	t.Helper()
	select {
	case <-d.exited:
		t.Fatalf("worker %s exited (code %d) before it was asked to stop", name, d.code)
	default:
	}
	d.signal(t, syscall.SIGTERM)
	if code := d.waitExit(30 * time.Second); code != 0 {
		t.Fatalf("worker %s: exit code %d after SIGTERM, want 0; logs:\n%s", name, code, tail(d.logs.String(), 30))
	}
}

// ---- the lease table ----

// listLeases lists the table without failing the test, for use from other goroutines.
func (s *e2eStack) listLeases(ctx context.Context) (map[string]checkpoint.Lease, error) {
	tbl := checkpoint.NewTable(s.ddb, s.table, "fleet-test-reader", checkpoint.Options{LeaseDuration: fleetLeaseDuration, Clock: clock.Real()})
	list, err := tbl.List(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string]checkpoint.Lease, len(list))
	for _, l := range list {
		out[l.ShardID] = l
	}
	return out, nil
}

// ownerCounts counts the open shards (not at SHARD_END) each worker holds; "" counts free ones.
func ownerCounts(leases map[string]checkpoint.Lease) map[string]int {
	n := map[string]int{}
	for _, l := range leases {
		if !l.ShardEnd {
			n[l.Owner]++
		}
	}
	return n
}

func describeCounts(c map[string]int) string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		name := k
		if name == "" {
			name = "(free)"
		}
		parts = append(parts, fmt.Sprintf("%s=%d", name, c[k]))
	}
	return strings.Join(parts, " ")
}

// leaseSnapshot is the table as one poll saw it.
type leaseSnapshot struct {
	at     time.Time
	leases map[string]checkpoint.Lease
}

// leaseWatcher polls the lease table in the background for the whole of a test, so invariants
// can be checked over every state it saw, not just the last.
type leaseWatcher struct {
	stopCh chan struct{}
	done   chan struct{}
	mu     sync.Mutex
	snaps  []leaseSnapshot
	errs   int
}

func (s *e2eStack) watchLeases(t *testing.T, every time.Duration) *leaseWatcher {
	w := &leaseWatcher{stopCh: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			leases, err := s.listLeases(ctx)
			cancel()
			w.mu.Lock()
			if err != nil {
				w.errs++
			} else {
				w.snaps = append(w.snaps, leaseSnapshot{at: time.Now(), leases: leases})
			}
			w.mu.Unlock()
			select {
			case <-w.stopCh:
				return
			case <-time.After(every):
			}
		}
	}()
	t.Cleanup(w.halt)
	return w
}

func (w *leaseWatcher) halt() {
	select {
	case <-w.stopCh:
	default:
		close(w.stopCh)
	}
	<-w.done
}

func (w *leaseWatcher) snapshots() []leaseSnapshot {
	w.halt()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.snaps
}

// ---- producing records ----

// sentRecord is one record the producer put: its key, its counter within that key, and where
// it landed.
type sentRecord struct {
	Key    string
	N      int
	Shard  string
	Seq    string
	SentAt time.Time // just before the PutRecords call that wrote it
}

func (r sentRecord) data() string { return fmt.Sprintf(`{"k":%q,"n":%d}`, r.Key, r.N) }

// producer writes records in rounds while a test runs: every round puts one record per key,
// with the key's next counter, in one PutRecords call. A failed entry is retried before the
// next round, so the records of one key are put strictly in counter order.
type producer struct {
	kin    *kinesis.Client
	stream string
	keys   []string
	every  time.Duration

	stopCh chan struct{}
	done   chan struct{}
	mu     sync.Mutex
	sent   []sentRecord
	err    error
	burst  int // rounds to put back to back before pausing again
	// retried counts the PutRecords calls the SDK sent more than once: when an attempt was
	// stored but its answer lost (kinesalite answered 200 and the connection closed while the
	// SDK read it), the stream holds that round twice, under other sequence numbers.
	retried   int
	retryErrs []error // why the first few were sent again
}

func (s *e2eStack) startProducer(t *testing.T, keys int, every time.Duration) *producer {
	p := &producer{kin: s.kin, stream: s.stream, every: every, stopCh: make(chan struct{}), done: make(chan struct{})}
	for i := range keys {
		p.keys = append(p.keys, fmt.Sprintf("key-%02d", i))
	}
	go p.run()
	t.Cleanup(func() {
		select {
		case <-p.stopCh:
		default:
			close(p.stopCh)
		}
		<-p.done
	})
	return p
}

func (p *producer) run() {
	defer close(p.done)
	next := map[string]int{}
	for {
		select {
		case <-p.stopCh:
			return
		default:
		}
		round := make([]sentRecord, len(p.keys))
		now := time.Now()
		for i, k := range p.keys {
			next[k]++
			round[i] = sentRecord{Key: k, N: next[k], SentAt: now}
		}
		if err := p.put(round); err != nil {
			p.mu.Lock()
			p.err = err
			p.mu.Unlock()
			return
		}
		p.mu.Lock()
		p.sent = append(p.sent, round...)
		bursting := p.burst > 0
		if bursting {
			p.burst--
		}
		p.mu.Unlock()
		if bursting {
			continue
		}
		select {
		case <-p.stopCh:
			return
		case <-time.After(p.every):
		}
	}
}

// put writes one round, retrying failed entries (at most 30 attempts).
func (p *producer) put(round []sentRecord) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pending := make([]int, len(round))
	for i := range round {
		pending[i] = i
	}
	for attempt := 1; len(pending) > 0; attempt++ {
		entries := make([]ktypes.PutRecordsRequestEntry, len(pending))
		for j, i := range pending {
			entries[j] = ktypes.PutRecordsRequestEntry{Data: []byte(round[i].data()), PartitionKey: aws.String(round[i].Key)}
		}
		out, err := p.kin.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(p.stream), Records: entries})
		if err != nil {
			return fmt.Errorf("put records: %w", err)
		}
		if attempts, ok := awsretry.GetAttemptResults(out.ResultMetadata); ok && len(attempts.Results) > 1 {
			p.mu.Lock()
			p.retried++
			if p.retried <= 3 {
				p.retryErrs = append(p.retryErrs, attempts.Results[0].Err)
			}
			p.mu.Unlock()
		}
		var failed []int
		for j, r := range out.Records {
			i := pending[j]
			if r.ErrorCode != nil {
				failed = append(failed, i)
				continue
			}
			round[i].Shard, round[i].Seq = aws.ToString(r.ShardId), aws.ToString(r.SequenceNumber)
		}
		if len(failed) > 0 && attempt == 30 {
			return fmt.Errorf("%d records still failing after %d attempts", len(failed), attempt)
		}
		pending = failed
		if len(pending) > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	return nil
}

// putBurst puts rounds rounds back to back and returns once they are written.
func (p *producer) putBurst(t *testing.T, rounds int) {
	t.Helper()
	p.mu.Lock()
	p.burst += rounds
	p.mu.Unlock()
	waitFor(t, time.Minute, fmt.Sprintf("a burst of %d rounds put", rounds), func() (bool, string) {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.err != nil {
			t.Fatalf("producer: %v", p.err)
		}
		return p.burst == 0, fmt.Sprintf("%d rounds to go", p.burst)
	})
}

// records returns what was put so far.
func (p *producer) records() []sentRecord {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.sent)
}

// halt stops the producer and returns every record it put.
func (p *producer) halt(t *testing.T) []sentRecord {
	t.Helper()
	select {
	case <-p.stopCh:
	default:
		close(p.stopCh)
	}
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		t.Fatalf("producer: %v", p.err)
	}
	if p.retried > 0 {
		t.Logf("producer: the SDK sent %d PutRecords calls more than once, e.g. after %v", p.retried, p.retryErrs)
	}
	return slices.Clone(p.sent)
}

// lastPutPerShard is the sequence number of the last record put to each shard.
func lastPutPerShard(recs []sentRecord) map[string]string {
	last := map[string]string{}
	for _, r := range recs {
		if cur, ok := last[r.Shard]; !ok || compareSeq(r.Seq, cur) > 0 {
			last[r.Shard] = r.Seq
		}
	}
	return last
}

// ---- what arrived in S3 ----

// s3Object is one object of the bucket, decompressed.
type s3Object struct {
	key  string
	body []byte
}

func (s *e2eStack) objects(t *testing.T) []s3Object {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var out []s3Object
	p := awss3.NewListObjectsV2Paginator(s.s3, &awss3.ListObjectsV2Input{Bucket: aws.String(s.bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("list objects in %s: %v", s.bucket, err)
		}
		for _, o := range page.Contents {
			if strings.HasPrefix(aws.ToString(o.Key), s3sink.CutPrefix) {
				continue // an exactly-once sink's cut manifest: no records
			}
			got, err := s.s3.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String(s.bucket), Key: o.Key})
			if err != nil {
				t.Fatalf("get %s: %v", aws.ToString(o.Key), err)
			}
			zr, err := gzip.NewReader(got.Body)
			if err != nil {
				t.Fatalf("object %s is not gzip: %v", aws.ToString(o.Key), err)
			}
			body, err := io.ReadAll(zr)
			got.Body.Close()
			if err != nil {
				t.Fatalf("gunzip %s: %v", aws.ToString(o.Key), err)
			}
			out = append(out, s3Object{key: aws.ToString(o.Key), body: body})
		}
	}
	return out
}

// keyed is a record of the producer as read back from S3.
type keyed struct {
	K string `json:"k"`
	N int    `json:"n"`
}

// records parses the producer's records out of an object, in the order they were written.
func (o s3Object) records() []keyed {
	var out []keyed
	for _, line := range bytes.Split(o.body, []byte("\n")) {
		var r keyed
		if json.Unmarshal(line, &r) == nil && r.K != "" {
			out = append(out, r)
		}
	}
	return out
}

// deliveredCounts counts each producer record found in the objects.
func deliveredCounts(objs []s3Object) map[keyed]int {
	c := map[keyed]int{}
	for _, o := range objs {
		for _, r := range o.records() {
			c[r]++
		}
	}
	return c
}

// missingSent lists the sent records absent from counts (a few, for the message).
func missingSent(sent []sentRecord, counts map[keyed]int) (n int, sample []string) {
	for _, r := range sent {
		if counts[keyed{r.Key, r.N}] == 0 {
			n++
			if len(sample) < 5 {
				sample = append(sample, r.data())
			}
		}
	}
	return n, sample
}

func duplicates(counts map[keyed]int) int {
	d := 0
	for _, c := range counts {
		d += c - 1
	}
	return d
}

// waitAllDelivered waits until every sent record is in the bucket.
func (s *e2eStack) waitAllDelivered(t *testing.T, sent []sentRecord, within time.Duration) map[keyed]int {
	t.Helper()
	var counts map[keyed]int
	waitFor(t, within, fmt.Sprintf("all %d records in S3", len(sent)), func() (bool, string) {
		counts = deliveredCounts(s.objects(t))
		n, sample := missingSent(sent, counts)
		return n == 0, fmt.Sprintf("%d missing, e.g. %v", n, sample)
	})
	return counts
}

// waitCheckpointed waits until the lease table has shards rows, each with a checkpoint.
func (s *e2eStack) waitCheckpointed(t *testing.T, shards int) {
	t.Helper()
	waitFor(t, 20*time.Second, "every shard checkpointed", func() (bool, string) {
		leases, err := s.listLeases(t.Context())
		if err != nil {
			return false, err.Error()
		}
		for id, l := range leases {
			if l.Checkpoint.IsZero() {
				return false, id + " not yet"
			}
		}
		return len(leases) == shards, fmt.Sprintf("%d leases", len(leases))
	})
}

// waitBalanced waits until the open shards are spread over workers exactly as want (a multiset
// of counts), every shard owned by one of them, and reports how long that took.
func (s *e2eStack) waitBalanced(t *testing.T, within time.Duration, workers []string, want []int) time.Duration {
	t.Helper()
	start := time.Now()
	waitFor(t, within, fmt.Sprintf("leases spread %v over %v", want, workers), func() (bool, string) {
		return s.balanced(t, workers, want)
	})
	return time.Since(start)
}

// balanced reports whether the open shards are spread over workers exactly as want, every shard
// owned by one of them, and describes the table.
func (s *e2eStack) balanced(t *testing.T, workers []string, want []int) (bool, string) {
	leases, err := s.listLeases(t.Context())
	if err != nil {
		return false, err.Error()
	}
	want = slices.Sorted(slices.Values(want))
	c := ownerCounts(leases)
	var got []int
	for _, w := range workers {
		got = append(got, c[w])
	}
	sort.Ints(got)
	others := 0
	for o, n := range c {
		if !slices.Contains(workers, o) {
			others += n
		}
	}
	return others == 0 && slices.Equal(got, want), describeCounts(c)
}

// leaseOwners maps each open shard to its owner ("" when free).
func (s *e2eStack) leaseOwners(t *testing.T) map[string]string {
	t.Helper()
	leases, err := s.listLeases(t.Context())
	if err != nil {
		t.Fatalf("list leases: %v", err)
	}
	m := map[string]string{}
	for id, l := range leases {
		if !l.ShardEnd {
			m[id] = l.Owner
		}
	}
	return m
}

// steadyFor watches the table for d and returns the first open shard whose owner changed, with
// its owner before, or "" when every poll showed the owners of the first.
func (s *e2eStack) steadyFor(t *testing.T, d time.Duration) (shard, owner string) {
	t.Helper()
	first := s.leaseOwners(t)
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if err := clock.Sleep(t.Context(), clock.Real(), 100*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		now := s.leaseOwners(t)
		for _, id := range slices.Sorted(maps.Keys(first)) {
			if now[id] != first[id] {
				return id, first[id]
			}
		}
	}
	return "", ""
}

func shardsOf(leases map[string]checkpoint.Lease, owner string) []string {
	var out []string
	for id, l := range leases {
		if l.Owner == owner && !l.ShardEnd {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2fs", d.Seconds()) }

// ---- 1. fencing ----

// TestFleetFencingStaleWorkerCannotMoveTheCheckpoint pauses the owner of a shard (SIGSTOP) past
// its lease; a second worker takes the lease and checkpoints further; the first is resumed
// (SIGCONT). Its next renewal or checkpoint must fail and it must stop the shard, and the table,
// polled every 50 ms throughout, must never show the checkpoint or counter going back, nor the
// paused worker owning the shard again.
func TestFleetFencingStaleWorkerCannotMoveTheCheckpoint(t *testing.T) {
	s := newE2EStack(t, 1)
	cfg := s.fleetConfig(t, fleetOptions{})
	watch := s.watchLeases(t, 50*time.Millisecond)
	prod := s.startProducer(t, 8, 100*time.Millisecond)

	a := startWorker(t, cfg, "fence-a")
	var shard string
	waitFor(t, 30*time.Second, "worker A owns the shard and has checkpointed", func() (bool, string) {
		leases, err := s.listLeases(t.Context())
		if err != nil {
			return false, err.Error()
		}
		for id, l := range leases {
			shard = id
			return l.Owner == "fence-a" && !l.Checkpoint.IsZero(), describeCounts(ownerCounts(leases))
		}
		return false, "no lease yet"
	})

	a.signal(t, syscall.SIGSTOP)
	stopped := time.Now()
	b := startWorker(t, cfg, "fence-b")
	var takenAt checkpoint.Lease
	waitFor(t, 20*time.Second, "worker B takes the paused worker's lease", func() (bool, string) {
		leases, err := s.listLeases(t.Context())
		if err != nil {
			return false, err.Error()
		}
		takenAt = leases[shard]
		return takenAt.Owner == "fence-b", "owner " + takenAt.Owner
	})
	t.Logf("B took the lease %s after A was paused (lease_duration %s; B's first sight of the lease starts its clock)", secs(time.Since(stopped)), fleetLeaseDuration)

	waitFor(t, 20*time.Second, "worker B moves the checkpoint", func() (bool, string) {
		leases, err := s.listLeases(t.Context())
		if err != nil {
			return false, err.Error()
		}
		l := leases[shard]
		return l.Owner == "fence-b" && l.Checkpoint.Compare(takenAt.Checkpoint) > 0, "checkpoint " + l.Checkpoint.String()
	})

	a.signal(t, syscall.SIGCONT)
	resumed := time.Now()
	waitFor(t, 10*time.Second, "worker A learns it lost the lease and stops the shard", func() (bool, string) {
		for _, l := range a.find("stopped reading shard", shard) {
			if l.Reason == "lease lost" {
				return true, ""
			}
		}
		return false, "no 'stopped reading shard' with reason 'lease lost' in A's log"
	})
	t.Logf("A stopped the shard %s after SIGCONT (renew_interval %s)", secs(time.Since(resumed)), fleetRenewInterval)
	// Nothing A read after it resumed may reach the sinks: records put a second after the pause
	// began can only have come from a GetRecords sent after SIGCONT.
	var firstUnseen string
	for _, r := range prod.records() {
		if r.SentAt.After(stopped.Add(time.Second)) && (firstUnseen == "" || compareSeq(r.Seq, firstUnseen) < 0) {
			firstUnseen = r.Seq
		}
	}
	for _, l := range a.find("records handed on", shard) {
		if firstUnseen != "" && compareSeq(parsePosition(l.Last).SequenceNumber, firstUnseen) >= 0 {
			t.Errorf("A handed on %d records up to %s after it resumed, read under a lease B held", l.Records, l.Last)
		}
	}
	refused := len(a.find("lease lost: another worker holds it now; stopping the shard", shard)) +
		len(a.find("checkpoint refused: the lease is held by another worker now; stopping the shard", shard)) +
		len(a.find("lease lost: not handing on records of a lease another worker may hold; stopping the shard", shard))
	if refused == 0 {
		t.Errorf("A stopped the shard without a refused renewal or checkpoint in its log")
	}

	// B keeps checkpointing after A is back.
	var afterA record.Position
	if leases, err := s.listLeases(t.Context()); err == nil {
		afterA = leases[shard].Checkpoint
	}
	waitFor(t, 10*time.Second, "worker B checkpoints again after A resumed", func() (bool, string) {
		leases, err := s.listLeases(t.Context())
		if err != nil {
			return false, err.Error()
		}
		l := leases[shard]
		return l.Owner == "fence-b" && l.Checkpoint.Compare(afterA) > 0, "owner " + l.Owner + " checkpoint " + l.Checkpoint.String()
	})

	sent := prod.halt(t)
	counts := s.waitAllDelivered(t, sent, 30*time.Second)
	a.stop(t, "fence-a")
	b.stop(t, "fence-b")

	snaps := watch.snapshots()
	var prev checkpoint.Lease
	bOwned := false
	for i, sn := range snaps {
		l, ok := sn.leases[shard]
		if !ok {
			continue
		}
		if i > 0 && prev.ShardID != "" {
			if l.Checkpoint.Compare(prev.Checkpoint) < 0 {
				t.Errorf("checkpoint went back from %s to %s at %s", prev.Checkpoint, l.Checkpoint, sn.at.Format(time.RFC3339Nano))
			}
			if l.Counter < prev.Counter {
				t.Errorf("lease counter went back from %d to %d", prev.Counter, l.Counter)
			}
		}
		if l.Owner == "fence-b" {
			bOwned = true
		}
		if bOwned && l.Owner == "fence-a" {
			t.Errorf("the paused worker owns the shard again after B took it (counter %d)", l.Counter)
		}
		prev = l
	}
	if !bOwned || len(snaps) < 20 {
		t.Fatalf("the watcher saw %d states of the table (B owned: %v): too few to prove anything", len(snaps), bOwned)
	}
	t.Logf("%d table states watched; checkpoint only moved forward; %d records, all in S3, %d duplicates", len(snaps), len(sent), duplicates(counts))
}

// ---- 2. balance ----

// countedWorker is a worker whose lease-loop passes the test counts: the daemon pets systemd's
// watchdog once per pass (hooks.LeasePass, nowhere else), and the test stands in for systemd.
type countedWorker struct {
	name string
	d    *daemon
	sock *notifySocket
}

func startCountedWorker(t *testing.T, cfg, name string) *countedWorker {
	t.Helper()
	sock := newNotifySocket(t)
	d := startWorkerEnv(t, cfg, name, []string{
		"NOTIFY_SOCKET=" + sock.path, "WATCHDOG_USEC=" + strconv.FormatInt(time.Hour.Microseconds(), 10), "WATCHDOG_PID=",
	})
	return &countedWorker{name: name, d: d, sock: sock}
}

// passes is the number of lease-loop passes the worker has finished.
func (w *countedWorker) passes() int { return w.passesBetween(time.Time{}, time.Time{}) }

// passesBetween is the number of lease-loop passes whose watchdog ping the test read after from
// and before to (zero: no end). A ping is read a little after its pass ends, so a pass that
// ended just before from can be counted; one that ended just before to is not.
func (w *countedWorker) passesBetween(from, to time.Time) int {
	n := 0
	fields, at := w.sock.receivedAt()
	for i, f := range fields {
		if f == "WATCHDOG=1" && at[i].After(from) && (to.IsZero() || at[i].Before(to)) {
			n++
		}
	}
	return n
}

// How long a balance test waits: at least fleetBalanceWithin, and beyond it until each worker
// has made fleetBalancePasses lease passes since the change (ten lease durations' worth). On a
// loaded machine passes come late and the wait stretches with them, so what fails the test is
// a fleet that does not balance in that many passes of its own, not a slow machine.
// fleetBalanceMax ends a test that would never end.
const (
	fleetBalanceWithin = 20 * fleetLeaseDuration
	fleetBalancePasses = 10 * int(fleetLeaseDuration/fleetRenewInterval)
	fleetBalanceMax    = 5 * time.Minute
)

// waitBalancedByPasses waits until the open shards are spread over workers exactly as want (see
// balanced), within the bounds above, and returns how long that took and the fewest lease
// passes a worker made meanwhile.
func (s *e2eStack) waitBalancedByPasses(t *testing.T, workers []*countedWorker, want []int) (time.Duration, int) {
	t.Helper()
	names := make([]string, len(workers))
	from := make([]int, len(workers))
	for i, w := range workers {
		names[i], from[i] = w.name, w.passes()
	}
	fewest := func() int {
		m := -1
		for i, w := range workers {
			if n := w.passes() - from[i]; m < 0 || n < m {
				m = n
			}
		}
		return m
	}
	start := time.Now()
	for {
		ok, status := s.balanced(t, names, want)
		took := time.Since(start)
		if ok {
			return took, fewest()
		}
		if took > fleetBalanceMax || (took > fleetBalanceWithin && fewest() >= fleetBalancePasses) {
			t.Fatalf("leases not spread %v over %v after %s and %d lease passes of the slowest worker (%s)", want, names, secs(took), fewest(), status)
		}
		for _, w := range workers {
			select {
			case <-w.d.exited:
				t.Fatalf("worker %s exited (code %d) while the leases were being balanced", w.name, w.d.code)
			default:
			}
		}
		if err := clock.Sleep(t.Context(), clock.Real(), 100*time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
}

// holdsBalance checks that the balance just reached holds for d: no lease moves. Balanced
// workers never trade leases; a lease moves without a fault only when its owner went a lease
// duration without renewing it (a worker starved on a loaded machine), and the owner then says
// so as it stops reading the shard (reason "lease lost" or "lease table unreachable"). The
// fleet must then balance again, and the watch starts over, up to three times. A move for any
// other reason (a claim and hand-off) fails the test.
func (s *e2eStack) holdsBalance(t *testing.T, d time.Duration, workers []*countedWorker, want []int) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		marks := map[string]int{}
		for _, w := range workers {
			marks[w.name] = w.d.logLineCount()
		}
		shard, from := s.steadyFor(t, d)
		if shard == "" {
			return
		}
		i := slices.IndexFunc(workers, func(w *countedWorker) bool { return w.name == from })
		if i < 0 {
			t.Fatalf("after the leases were balanced, %s moved from %q, not one of the workers", shard, from)
		}
		var reason string
		waitFor(t, fleetBalanceWithin, from+" says why it stopped reading "+shard, func() (bool, string) {
			for _, l := range workers[i].d.find("stopped reading shard", shard) {
				if l.index >= marks[from] {
					reason = l.Reason
					return true, ""
				}
			}
			return false, "no line yet"
		})
		if !lostToExpiry(reason) {
			t.Fatalf("a lease moved after the leases were balanced: %s left %s (reason %q)", shard, from, reason)
		}
		if attempt == 3 {
			t.Fatalf("leases expired %d times after the leases were balanced (last: %s of %s, %q): the workers are starved", attempt, shard, from, reason)
		}
		t.Logf("%s lost %s after the balance (%q: it went a lease duration without renewing, on a loaded machine); balancing again", from, shard, reason)
		s.waitBalancedByPasses(t, workers, want)
	}
}

// lostToExpiry reports whether a "stopped reading shard" reason says the worker lost the lease
// by going a lease duration without renewing it (taken by another worker, or the table not
// reached in time), as a worker starved on a loaded machine does.
func lostToExpiry(reason string) bool {
	return reason == "lease lost" || reason == "lease table unreachable"
}

// TestFleetBalance8Shards1To3To2Workers starts one worker on 8 shards, then two more, then stops
// the third with SIGTERM: the leases must end up 3/3/2 and then 4/4, and stay so. Each balance
// must come within a bounded number of the workers' own lease passes (see fleetBalancePasses),
// so the test asserts that the fleet converges, not how fast a loaded machine runs it; the
// time taken and the passes are logged.
func TestFleetBalance8Shards1To3To2Workers(t *testing.T) {
	s := newE2EStack(t, 8)
	cfg := s.fleetConfig(t, fleetOptions{})
	prod := s.startProducer(t, 16, 200*time.Millisecond)

	a := startCountedWorker(t, cfg, "bal-a")
	took, passes := s.waitBalancedByPasses(t, []*countedWorker{a}, []int{8})
	t.Logf("1 worker: holds all 8 leases %s after start, %d lease passes (one pass takes them all)", secs(took), passes)

	b := startCountedWorker(t, cfg, "bal-b")
	c := startCountedWorker(t, cfg, "bal-c")
	three := []*countedWorker{a, b, c}
	took, passes = s.waitBalancedByPasses(t, three, []int{3, 3, 2})
	t.Logf("1 -> 3 workers: 3/3/2 %s after starting two, within %d lease passes of the slowest worker (renew_interval %s)", secs(took), passes, fleetRenewInterval)
	s.holdsBalance(t, 3*fleetRenewInterval, three, []int{3, 3, 2})

	c.d.signal(t, syscall.SIGTERM)
	two := []*countedWorker{a, b}
	took, passes = s.waitBalancedByPasses(t, two, []int{4, 4})
	t.Logf("3 -> 2 workers (SIGTERM): 4/4 after %s, within %d lease passes of the slowest worker", secs(took), passes)
	if code := c.d.waitExit(fleetBalanceWithin); code != 0 {
		t.Errorf("the stopped worker exited %d, want 0", code)
	}
	s.holdsBalance(t, 3*fleetRenewInterval, two, []int{4, 4})

	sent := prod.halt(t)
	counts := s.waitAllDelivered(t, sent, fleetBalanceWithin)
	a.d.stop(t, "bal-a")
	b.d.stop(t, "bal-b")
	t.Logf("%d records all in S3, %d duplicates", len(sent), duplicates(counts))
}

// ---- 3. failover ----

// leasePoll is the lease table as one read saw it, with the time the read began.
type leasePoll struct {
	began  time.Time
	leases map[string]checkpoint.Lease
}

// pollUntilWritten reads the table until each of shards has been written (its counter moved)
// since the first read, and returns the reads.
func (s *e2eStack) pollUntilWritten(t *testing.T, shards []string) []leasePoll {
	t.Helper()
	var polls []leasePoll
	waitFor(t, fleetBalanceWithin, fmt.Sprintf("%v written since the first read", shards), func() (bool, string) {
		began := time.Now()
		leases, err := s.listLeases(t.Context())
		if err != nil {
			return false, err.Error()
		}
		polls = append(polls, leasePoll{began: began, leases: leases})
		for _, id := range shards {
			if leases[id].Counter == polls[0].leases[id].Counter {
				return false, id + " not written yet"
			}
		}
		return true, ""
	})
	return polls
}

// writtenAfter is when the last of polls that saw shard's counter below counter began: the write
// that moved the counter to counter came after that.
func writtenAfter(polls []leasePoll, shard string, counter int64) time.Time {
	var at time.Time
	for _, p := range polls {
		if p.leases[shard].Counter < counter {
			at = p.began
		}
	}
	return at
}

// leaseTake is a "took lease; reading shard" line and the worker that wrote it.
type leaseTake struct {
	logLine
	by *countedWorker
}

// takesSince lists the "took lease; reading shard" lines about shard that workers wrote after
// since, earliest first.
func takesSince(workers []*countedWorker, shard string, since time.Time) []leaseTake {
	var out []leaseTake
	for _, w := range workers {
		for _, l := range w.d.find("took lease; reading shard", shard) {
			if l.Time.After(since) {
				out = append(out, leaseTake{logLine: l, by: w})
			}
		}
	}
	slices.SortFunc(out, func(a, b leaseTake) int { return a.Time.Compare(b.Time) })
	return out
}

// shardsLostToExpiry lists the shards one of workers stopped reading because it lost the lease
// by expiry (see lostToExpiry).
func shardsLostToExpiry(workers []*countedWorker) map[string]bool {
	out := map[string]bool{}
	for _, w := range workers {
		for _, l := range w.d.find("stopped reading shard", "") {
			if lostToExpiry(l.Reason) {
				out[l.Shard] = true
			}
		}
	}
	return out
}

// TestFleetFailoverAfterSIGKILL kills one of three workers: each shard it held must be taken by
// another no sooner than a lease duration after its last write to that lease (an early take
// would be two readers of one shard), resuming from its last checkpoint, and no record may be
// missing in S3. The failover must come within a bounded number of the survivors' own lease
// passes (waitBalancedByPasses), not within a wall-clock limit a loaded machine can exceed; the
// time taken and the passes are logged.
func TestFleetFailoverAfterSIGKILL(t *testing.T) {
	s := newE2EStack(t, 6)
	cfg := s.fleetConfig(t, fleetOptions{})
	prod := s.startProducer(t, 24, 100*time.Millisecond)
	a, b := startCountedWorker(t, cfg, "fo-a"), startCountedWorker(t, cfg, "fo-b")
	victim := startCountedWorker(t, cfg, "fo-c")
	survivors := []*countedWorker{a, b}
	s.waitBalancedByPasses(t, []*countedWorker{a, b, victim}, []int{2, 2, 2})

	var theirs []string
	waitFor(t, fleetBalanceWithin, "the victim's shards have checkpoints", func() (bool, string) {
		leases, err := s.listLeases(t.Context())
		if err != nil {
			return false, err.Error()
		}
		theirs = shardsOf(leases, victim.name)
		for _, id := range theirs {
			if leases[id].Checkpoint.IsZero() {
				return false, id + " has no checkpoint"
			}
		}
		return len(theirs) == 2, describeCounts(ownerCounts(leases))
	})
	// Reads of the table until the victim has renewed each lease: the last read that saw a
	// lease below its final counter began before the victim's last write to it.
	polls := s.pollUntilWritten(t, theirs)

	if err := victim.d.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	victim.d.waitExit(10 * time.Second)
	last, err := s.listLeases(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// A starved victim may have lost a lease by expiry before it died; the failover is of those
	// it still held.
	theirs = shardsOf(last, victim.name)
	if len(theirs) == 0 {
		t.Fatalf("the victim held no lease when it was killed (%s)", describeCounts(ownerCounts(last)))
	}

	took, passes := s.waitBalancedByPasses(t, survivors, []int{3, 3})
	t.Logf("failover: the killed worker's %d shards owned by the others %s after SIGKILL, within %d lease passes of the slowest survivor (lease_duration %s, renew_interval %s)",
		len(theirs), secs(took), passes, fleetLeaseDuration, fleetRenewInterval)
	for _, id := range theirs {
		takes := takesSince(survivors, id, killed)
		if len(takes) == 0 {
			t.Errorf("shard %s: owned by a survivor, but neither logged taking it", id)
			continue
		}
		first := takes[0]
		if first.Checkpoint != last[id].Checkpoint.String() {
			t.Errorf("shard %s: %s resumed from %s, want the killed worker's last checkpoint %s", id, first.by.name, first.Checkpoint, last[id].Checkpoint)
		}
		after := writtenAfter(polls, id, last[id].Counter)
		if early := first.Time.Sub(after); early < fleetLeaseDuration {
			t.Errorf("shard %s: %s took it %s after a read that came before the killed worker's last write to the lease, under a lease duration (%s): it took a live lease",
				id, first.by.name, secs(early), fleetLeaseDuration)
		}
		t.Logf("shard %s: taken by %s at the killed worker's last checkpoint, %s after SIGKILL and at least %s after the killed worker's last write to the lease",
			id, first.by.name, secs(first.Time.Sub(killed)), secs(first.Time.Sub(after)))
	}

	sent := prod.halt(t)
	counts := s.waitAllDelivered(t, sent, fleetBalanceWithin)
	a.d.stop(t, a.name)
	b.d.stop(t, b.name)
	t.Logf("%d records all in S3; %d duplicates (delivered by the killed worker after its last checkpoint, delivered again)", len(sent), duplicates(counts))
}

// ---- 4. graceful hand-off ----

// fleetHandOffPasses bounds the lease passes a new owner finishes between the leaving worker's
// last release and its take. The others take released leases at their next pass, and the pass
// that is running when the release lands may have read the table just before it: one pass, and
// one more for a ping of a pass that ended just before the release but was read just after it.
// A lease taken by expiry instead (never released) waits a lease duration from the new owner's
// first sight of its last write: at least lease_duration/renew_interval (3) passes.
const fleetHandOffPasses = 2

// TestFleetGracefulHandOffWithinSeconds stops one of three workers with SIGTERM: it must drain
// and release its leases (exit 0: within shutdown.drain_timeout), and the others must take each
// at their next lease pass after the release, at its final checkpoint, with no record
// delivered twice.
//
// "Within seconds" is measured and logged (SIGTERM to the others owning the shards: the drain,
// then at most a pass), but asserted in the new owners' own lease passes after the release
// (fleetHandOffPasses), well below the passes a lease duration takes. A wall-clock bound would
// measure how fast a loaded machine schedules the drain and the passes, not whether the leases
// were handed over rather than left to expire.
func TestFleetGracefulHandOffWithinSeconds(t *testing.T) {
	s := newE2EStack(t, 6)
	cfg := s.fleetConfig(t, fleetOptions{})
	prod := s.startProducer(t, 24, 100*time.Millisecond)
	a, b := startCountedWorker(t, cfg, "ho-a"), startCountedWorker(t, cfg, "ho-b")
	leaving := startCountedWorker(t, cfg, "ho-c")
	survivors, all := []*countedWorker{a, b}, []*countedWorker{a, b, leaving}
	s.waitBalancedByPasses(t, all, []int{2, 2, 2})
	var theirs []string
	waitFor(t, fleetBalanceWithin, "the leaving worker's shards have checkpoints", func() (bool, string) {
		leases, err := s.listLeases(t.Context())
		if err != nil {
			return false, err.Error()
		}
		theirs = shardsOf(leases, leaving.name)
		for _, id := range theirs {
			if leases[id].Checkpoint.IsZero() {
				return false, id + " has no checkpoint"
			}
		}
		return len(theirs) == 2, describeCounts(ownerCounts(leases))
	})

	leaving.d.signal(t, syscall.SIGTERM)
	signalled := time.Now()
	took, passes := s.waitBalancedByPasses(t, survivors, []int{3, 3})
	if code := leaving.d.waitExit(fleetBalanceWithin); code != 0 {
		t.Fatalf("the leaving worker exited %d, want 0 (drained within shutdown.drain_timeout)", code)
	}

	sent := prod.halt(t)
	counts := s.waitAllDelivered(t, sent, fleetBalanceWithin)
	// Stopping a hands its leases to b: takes from here on are not the hand-off under test.
	stopping := time.Now()
	a.d.stop(t, a.name)
	b.d.stop(t, b.name)

	// Every log is complete now. A worker starved for a lease duration loses a lease by expiry
	// (it says so); the next owner then reads again from the last checkpoint, which is the
	// product working, so the shard may be taken more than once and read twice.
	expired := shardsLostToExpiry(all)
	released := map[string]logLine{}
	var lastRelease time.Time
	for _, l := range leaving.d.find("released lease", "") {
		if l.Reason == "" {
			continue // the lease table's own debug line; the consumer's follows with the checkpoint
		}
		released[l.Shard] = l
		if l.Time.After(lastRelease) {
			lastRelease = l.Time
		}
	}
	for _, id := range theirs {
		rel, ok := released[id]
		takes := takesSince(survivors, id, signalled)
		takes = slices.DeleteFunc(takes, func(tk leaseTake) bool { return tk.Time.After(stopping) })
		if !ok || len(takes) == 0 {
			t.Errorf("shard %s: released by the leaving worker: %v; taken by the others %d times", id, ok, len(takes))
			continue
		}
		first := takes[0]
		if first.Time.Before(rel.Time) {
			// Taken before the release: only right if the leaving worker went a lease
			// duration without writing the lease while draining, and found it gone.
			refused := len(leaving.d.find("checkpoint refused: the lease is held by another worker now; stopping the shard", id)) > 0
			if !expired[id] && !refused {
				t.Errorf("shard %s: %s took it at %s before the leaving worker released it, and the leaving worker never found the lease gone", id, first.by.name, first.Checkpoint)
			}
			t.Logf("shard %s: taken by %s before the leaving worker released it (starved while draining: the lease expired)", id, first.by.name)
			expired[id] = true
			continue
		}
		if first.Checkpoint != rel.Checkpoint {
			t.Errorf("shard %s: %s took it at checkpoint %s, want the leaving worker's final checkpoint %s", id, first.by.name, first.Checkpoint, rel.Checkpoint)
		}
		if len(takes) > 1 && !expired[id] {
			var by []string
			for _, tk := range takes {
				by = append(by, tk.by.name+" at "+tk.Checkpoint)
			}
			t.Errorf("shard %s: taken %d times after SIGTERM (%s), and no worker lost it by expiry", id, len(takes), strings.Join(by, ", "))
		}
		n := first.by.passesBetween(lastRelease, first.Time)
		t.Logf("shard %s: released %s after SIGTERM; taken by %s %s after the last release, %d lease passes of its own in between", id,
			secs(rel.Time.Sub(signalled)), first.by.name, secs(first.Time.Sub(lastRelease)), n)
		if n > fleetHandOffPasses {
			t.Errorf("shard %s: %s finished %d lease passes between the release and its take, want at most %d: a released lease is taken at the next pass",
				id, first.by.name, n, fleetHandOffPasses)
		}
	}
	t.Logf("hand-off: %d shards owned by the others %s after SIGTERM, within %d lease passes of the slowest survivor (lease_duration %s)",
		len(theirs), secs(took), passes, fleetLeaseDuration)

	for shard, d := range duplicatesByShard(sent, counts) {
		if d > 0 && !expired[shard] {
			t.Errorf("shard %s: %d records delivered twice, and no worker lost its lease by expiry: a drained worker must checkpoint all it delivered", shard, d)
		}
	}
	t.Logf("%d records all in S3; %d duplicates (each on a shard whose lease expired: %v)", len(sent), duplicates(counts), slices.Sorted(maps.Keys(expired)))
}

// duplicatesByShard counts, per shard, the deliveries of sent records beyond the first.
func duplicatesByShard(sent []sentRecord, counts map[keyed]int) map[string]int {
	out := map[string]int{}
	for _, r := range sent {
		if c := counts[keyed{r.Key, r.N}]; c > 1 {
			out[r.Shard] += c - 1
		}
	}
	return out
}

// ---- 5. resharding ----

// TestFleetReshardKeepsPerKeyOrder splits one shard and merges two others while two workers
// read and records flow. A child must be read only after every parent was delivered to its last
// record and checkpointed; per partition key, records must reach S3 in order; none may be lost.
//
// The workers read slowly (at most 50 records in flight per shard, delivered every second: about
// 50 records per second per shard), and a burst put just before the reshard leaves each parent
// several seconds of records behind, while the children's rows appear within a shard sync
// interval (2 s): a child read before its parents' end would be caught.
//
// Order at the sink: each worker uploads one object at a time (max_uploads 1), so its objects
// complete in the order it sealed them, and its "s3 object written" log line follows each PUT.
// Objects are ordered by those lines (time across workers, line order within one); reading them
// in that order, each key's counters must strictly increase. Across workers the order is causal:
// a child's reader starts only after its parents' SHARD_END, which follows their last PUT.
func TestFleetReshardKeepsPerKeyOrder(t *testing.T) {
	s := newE2EStack(t, 4)
	cfg := s.fleetConfig(t, fleetOptions{maxUploads: 1, batchSize: 10, maxInFlight: 50})
	prod := s.startProducer(t, 24, 200*time.Millisecond)
	workers := []string{"rs-a", "rs-b"}
	ds := map[string]*daemon{}
	for _, w := range workers {
		ds[w] = startWorker(t, cfg, w)
	}
	s.waitBalanced(t, 30*time.Second, workers, []int{2, 2})
	s.waitCheckpointed(t, 4)

	prod.putBurst(t, 60) // 1,440 records: about 360 per shard, 7 s of reading
	open := openShardsByHashKey(t, s)
	if len(open) != 4 {
		t.Fatalf("%d open shards, want 4", len(open))
	}
	splitParent := s.splitInHalf(t, open[0])
	// Two adjacent shards: the third ends right before the fourth starts.
	end := hashKey(t, open[2].HashKeyRange.EndingHashKey)
	if new(big.Int).Add(end, big.NewInt(1)).Cmp(hashKey(t, open[3].HashKeyRange.StartingHashKey)) != 0 {
		t.Fatalf("shards %s and %s are not adjacent", aws.ToString(open[2].ShardId), aws.ToString(open[3].ShardId))
	}
	mergeParents := []string{aws.ToString(open[2].ShardId), aws.ToString(open[3].ShardId)}
	if _, err := s.kin.MergeShards(t.Context(), &kinesis.MergeShardsInput{
		StreamName: aws.String(s.stream), ShardToMerge: aws.String(mergeParents[0]), AdjacentShardToMerge: aws.String(mergeParents[1]),
	}); err != nil {
		t.Fatalf("merge %v: %v", mergeParents, err)
	}
	testenv.WaitStreamActive(t, s.kin, s.stream)
	resharded := time.Now()

	children := map[string][]string{} // child -> parents
	for _, sh := range listAllShards(t, s) {
		var ps []string
		for _, p := range []*string{sh.ParentShardId, sh.AdjacentParentShardId} {
			if aws.ToString(p) != "" {
				ps = append(ps, aws.ToString(p))
			}
		}
		if len(ps) > 0 {
			children[aws.ToString(sh.ShardId)] = ps
		}
	}
	if len(children) != 3 {
		t.Fatalf("%d child shards after one split and one merge, want 3: %v", len(children), children)
	}

	// Records keep flowing into the children.
	childIDs := make([]string, 0, len(children))
	for c := range children {
		childIDs = append(childIDs, c)
	}
	waitFor(t, 45*time.Second, "every child read and checkpointed", func() (bool, string) {
		leases, err := s.listLeases(t.Context())
		if err != nil {
			return false, err.Error()
		}
		for _, c := range childIDs {
			if leases[c].Checkpoint.IsZero() {
				return false, c + " not checkpointed"
			}
		}
		return true, ""
	})
	t.Logf("every child checkpointed %s after the reshard", secs(time.Since(resharded)))
	sent := prod.halt(t)
	counts := s.waitAllDelivered(t, sent, 30*time.Second)
	for _, w := range workers {
		ds[w].stop(t, w)
	}

	// Keys that crossed from a parent to a child.
	shardsOfKey := map[string]map[string]bool{}
	for _, r := range sent {
		if shardsOfKey[r.Key] == nil {
			shardsOfKey[r.Key] = map[string]bool{}
		}
		shardsOfKey[r.Key][r.Shard] = true
	}
	crossed := 0 // (key, child) pairs with records in the child and in one of its parents
	for child, parents := range children {
		for _, sh := range shardsOfKey {
			if sh[child] && slices.ContainsFunc(parents, func(p string) bool { return sh[p] }) {
				crossed++
			}
		}
	}
	if crossed == 0 {
		t.Fatal("no partition key was written to both a parent and its child: the order check would prove nothing")
	}

	// A child is taken only after each parent's last record was delivered and checkpointed.
	last := lastPutPerShard(sent)
	leases := s.leases(t)
	for child, parents := range children {
		firstTake := time.Time{}
		for _, w := range workers {
			for _, l := range ds[w].find("took lease; reading shard", child) {
				if firstTake.IsZero() || l.Time.Before(firstTake) {
					firstTake = l.Time
				}
			}
		}
		if firstTake.IsZero() {
			t.Errorf("child %s was never taken", child)
			continue
		}
		for _, p := range parents {
			if !leases[p].ShardEnd {
				t.Errorf("parent %s is not at SHARD_END in the table", p)
			}
			var done time.Time
			ended := false
			for _, w := range workers {
				for _, l := range ds[w].find("checkpointed", p) {
					if l.Position == last[p] {
						done = l.Time
					}
				}
				ended = ended || len(ds[w].find("shard read to its end", p)) > 0
			}
			switch {
			case !ended:
				t.Errorf("no worker logged parent %s as read to its end", p)
			case done.IsZero():
				t.Errorf("no worker logged a checkpoint of parent %s at its last record %s", p, last[p])
			case !firstTake.After(done):
				t.Errorf("child %s was taken at %s, before parent %s was checkpointed at its last record (%s)",
					child, firstTake.Format(time.RFC3339Nano), p, done.Format(time.RFC3339Nano))
			default:
				t.Logf("child %s taken %s after parent %s's last record was checkpointed", child, secs(firstTake.Sub(done)), p)
			}
		}
	}

	// Per-key order at the sink.
	type written struct {
		at     time.Time
		worker int
		index  int
	}
	when := map[string]written{}
	for i, w := range workers {
		for _, l := range ds[w].find("s3 object written", "") {
			when[l.Key] = written{l.Time, i, l.index}
		}
	}
	objs := s.objects(t)
	for _, o := range objs {
		if _, ok := when[o.key]; !ok {
			t.Fatalf("object %s has no 'object written' line in any worker's log", o.key)
		}
	}
	sort.Slice(objs, func(i, j int) bool {
		a, b := when[objs[i].key], when[objs[j].key]
		if a.worker == b.worker {
			return a.index < b.index
		}
		return a.at.Before(b.at)
	})
	lastN := map[string]int{}
	disorder := 0
	for _, o := range objs {
		for _, r := range o.records() {
			if r.N <= lastN[r.K] {
				if disorder < 5 {
					t.Errorf("key %s: counter %d arrived after %d (object %s)", r.K, r.N, lastN[r.K], o.key)
				}
				disorder++
			}
			lastN[r.K] = r.N
		}
	}
	if disorder > 0 {
		t.Errorf("%d records out of per-key order at the sink", disorder)
	}
	if d := duplicates(counts); d != 0 {
		t.Errorf("%d duplicates in a run without failures", d)
	}

	// Finished parents' rows go once the stream stops listing them; kinesis-local keeps closed
	// shards for the stream's retention, so within a test they stay (the rule has a unit test).
	listed := map[string]bool{}
	for _, sh := range listAllShards(t, s) {
		listed[aws.ToString(sh.ShardId)] = true
	}
	for _, ps := range children {
		for _, p := range ps {
			if _, row := leases[p]; !row && listed[p] {
				t.Errorf("parent %s's row was deleted while the stream still lists it", p)
			}
		}
	}
	t.Logf("%d records in %d objects, per-key order held across the split of %s and the merge of %v; %d key/child pairs crossed a reshard",
		len(sent), len(objs), splitParent, mergeParents, crossed)
}

// parsePosition reads a position as Position.String writes it ("seq" or "seq.sub"); "-" is zero.
func parsePosition(s string) record.Position {
	if s == "-" {
		return record.Position{}
	}
	seq, sub, _ := strings.Cut(s, ".")
	n, _ := strconv.ParseInt(sub, 10, 64)
	return record.Position{SequenceNumber: seq, SubSequenceNumber: n}
}

// splitInHalf splits sh at the middle of its hash key range, waits for the stream to be
// active again and returns the parent's id.
func (s *e2eStack) splitInHalf(t *testing.T, sh ktypes.Shard) string {
	t.Helper()
	parent := aws.ToString(sh.ShardId)
	mid := new(big.Int).Add(hashKey(t, sh.HashKeyRange.StartingHashKey), hashKey(t, sh.HashKeyRange.EndingHashKey))
	mid.Rsh(mid, 1)
	if _, err := s.kin.SplitShard(t.Context(), &kinesis.SplitShardInput{
		StreamName: aws.String(s.stream), ShardToSplit: aws.String(parent), NewStartingHashKey: aws.String(mid.String()),
	}); err != nil {
		t.Fatalf("split %s: %v", parent, err)
	}
	testenv.WaitStreamActive(t, s.kin, s.stream)
	return parent
}

func hashKey(t *testing.T, s *string) *big.Int {
	t.Helper()
	n, ok := new(big.Int).SetString(aws.ToString(s), 10)
	if !ok {
		t.Fatalf("hash key %q is not a number", aws.ToString(s))
	}
	return n
}

func listAllShards(t *testing.T, s *e2eStack) []ktypes.Shard {
	t.Helper()
	var out []ktypes.Shard
	var token *string
	for {
		in := &kinesis.ListShardsInput{}
		if token != nil {
			in.NextToken = token
		} else {
			in.StreamName = aws.String(s.stream)
		}
		page, err := s.kin.ListShards(t.Context(), in)
		if err != nil {
			t.Fatalf("list shards: %v", err)
		}
		out = append(out, page.Shards...)
		if page.NextToken == nil {
			return out
		}
		token = page.NextToken
	}
}

// openShardsByHashKey lists the open shards in hash key order.
func openShardsByHashKey(t *testing.T, s *e2eStack) []ktypes.Shard {
	t.Helper()
	var open []ktypes.Shard
	for _, sh := range listAllShards(t, s) {
		if sh.SequenceNumberRange == nil || sh.SequenceNumberRange.EndingSequenceNumber == nil {
			open = append(open, sh)
		}
	}
	sort.Slice(open, func(i, j int) bool {
		return hashKey(t, open[i].HashKeyRange.StartingHashKey).Cmp(hashKey(t, open[j].HashKeyRange.StartingHashKey)) < 0
	})
	return open
}

// ---- 6. KPL ----

// kplAggregates builds n aggregates of size user records each; user record j of aggregate i
// holds {"agg":i,"sub":j,...} and is padded so that no length byte reads as a newline.
func kplAggregates(prefix string, n, size int) (recs []testenv.Rec, users [][]string) {
	for i := range n {
		var urs []kpl.UserRecord
		var datas []string
		for j := range size {
			d := fmt.Sprintf(`{"id":"%s-%03d-%02d","pad":"................"}`, prefix, i, j)
			urs = append(urs, kpl.UserRecord{PartitionKey: fmt.Sprintf("pk-%d", j%3), Data: []byte(d)})
			datas = append(datas, d)
		}
		recs = append(recs, testenv.Rec{PartitionKey: "pk-0", Data: kpl.Aggregate(urs)})
		users = append(users, datas)
	}
	return recs, users
}

// lineCounts counts every line of every object.
func lineCounts(objs []s3Object) map[string]int {
	c := map[string]int{}
	for _, o := range objs {
		for _, l := range bytes.Split(o.body, []byte("\n")) {
			if len(l) > 0 {
				c[string(l)]++
			}
		}
	}
	return c
}

// TestFleetKPLAggregatesArriveDeaggregated puts KPL aggregates (and a corrupt one and plain
// records among them) on one shard: every user record must arrive in S3 once, the corrupt
// aggregate whole and once (never dropped, never half de-aggregated), and the final checkpoint
// must name the last aggregate's last sub-record.
func TestFleetKPLAggregatesArriveDeaggregated(t *testing.T) {
	s := newE2EStack(t, 1)
	aggs, users := kplAggregates("kpl", 20, 10)
	corrupt, corruptUsers := kplAggregates("corrupt", 1, 5)
	bad := bytes.Clone(corrupt[0].Data)
	bad[len(bad)-1] ^= 0xFF // the MD5 trailer no longer matches
	var plain []string
	var recs []testenv.Rec
	recs = append(recs, aggs[:10]...)
	recs = append(recs, testenv.Rec{PartitionKey: "pk-0", Data: bad})
	for i := range 5 {
		d := fmt.Sprintf(`{"id":"plain-%d","pad":"................"}`, i)
		plain = append(plain, d)
		recs = append(recs, testenv.Rec{PartitionKey: "pk-1", Data: []byte(d)})
	}
	recs = append(recs, aggs[10:]...)
	puts := testenv.PutRecords(t, s.kin, s.stream, recs)
	lastAgg := puts[len(puts)-1]

	d := startWorker(t, s.fleetConfig(t, fleetOptions{}), "kpl-a")
	var want []string
	for _, u := range users {
		want = append(want, u...)
	}
	want = append(want, plain...)
	var objs []s3Object
	waitFor(t, 40*time.Second, "every user record and the corrupt aggregate in S3", func() (bool, string) {
		objs = s.objects(t)
		lines := lineCounts(objs)
		n := 0
		for _, w := range want {
			if lines[w] == 0 {
				n++
			}
		}
		whole := 0
		for _, o := range objs {
			whole += bytes.Count(o.body, bad)
		}
		return n == 0 && whole > 0, fmt.Sprintf("%d user records missing; corrupt aggregate found %d times", n, whole)
	})
	wantCP := record.Position{SequenceNumber: lastAgg.SequenceNumber, SubSequenceNumber: 9}
	waitFor(t, 20*time.Second, "checkpoint at the last aggregate's last sub-record", func() (bool, string) {
		l := s.leases(t)[lastAgg.ShardID]
		return l.Checkpoint == wantCP, "checkpoint " + l.Checkpoint.String() + ", want " + wantCP.String()
	})
	d.stop(t, "kpl-a")

	objs = s.objects(t)
	lines := lineCounts(objs)
	for _, w := range want {
		if lines[w] != 1 {
			t.Errorf("user record %s delivered %d times, want once", w, lines[w])
		}
	}
	whole := 0
	for _, o := range objs {
		whole += bytes.Count(o.body, bad)
	}
	if whole != 1 {
		t.Errorf("the corrupt aggregate is in S3 %d times, want once, whole", whole)
	}
	for _, u := range corruptUsers[0] {
		if lines[u] != 0 {
			t.Errorf("a user record of the corrupt aggregate was delivered on its own: %s", u)
		}
	}
	if len(d.find("KPL aggregate could not be de-aggregated; passing it on whole", "")) != 1 {
		t.Errorf("the corrupt aggregate was not reported once in the log")
	}
	t.Logf("%d user records from 20 aggregates + 5 plain records delivered once each; corrupt aggregate delivered whole (%d bytes); checkpoint %s",
		len(want), len(bad), wantCP)
}

// TestFleetKPLCorruptAggregateGoesToTheDeadLetters: with a dead-letter destination configured,
// an aggregate that cannot be de-aggregated is kept whole in one dead letter (condition
// DeaggregationFailed) and not delivered to the sinks; the records around it are, and the
// checkpoint moves past it.
func TestFleetKPLCorruptAggregateGoesToTheDeadLetters(t *testing.T) {
	s := newE2EStack(t, 1)
	aggs, users := kplAggregates("dl", 4, 10)
	corrupt, _ := kplAggregates("dl-corrupt", 1, 5)
	bad := bytes.Clone(corrupt[0].Data)
	bad[len(bad)-1] ^= 0xFF
	recs := append(append(append([]testenv.Rec{}, aggs[:2]...), testenv.Rec{PartitionKey: "pk-0", Data: bad}), aggs[2:]...)
	puts := testenv.PutRecords(t, s.kin, s.stream, recs)
	dlPath := filepath.Join(t.TempDir(), "dead-letters.jsonl")
	d := startWorker(t, s.fleetConfig(t, fleetOptions{extra: fmt.Sprintf("dead_letter:\n  type: file\n  file: {path: %q}\n", dlPath)}), "dl-a")

	var want []string
	for _, u := range users {
		want = append(want, u...)
	}
	end := record.Position{SequenceNumber: puts[len(puts)-1].SequenceNumber, SubSequenceNumber: 9}
	waitFor(t, 30*time.Second, "every user record in S3 and the checkpoint past the corrupt aggregate", func() (bool, string) {
		lines := lineCounts(s.objects(t))
		n := 0
		for _, w := range want {
			if lines[w] == 0 {
				n++
			}
		}
		leases, err := s.listLeases(t.Context())
		if err != nil {
			return false, err.Error()
		}
		cp := leases[puts[0].ShardID].Checkpoint
		return n == 0 && cp == end, fmt.Sprintf("%d missing, checkpoint %s", n, cp)
	})
	d.stop(t, "dl-a")

	body, err := os.ReadFile(dlPath)
	if err != nil {
		t.Fatalf("no dead letters: %v", err)
	}
	var found int
	for _, line := range bytes.Split(bytes.TrimSpace(body), []byte("\n")) {
		var msg struct {
			RequestContext struct {
				Condition string `json:"condition"`
			} `json:"requestContext"`
			Records []struct {
				Data           []byte `json:"data"`
				SequenceNumber string `json:"sequenceNumber"`
			} `json:"records"`
		}
		if err := json.Unmarshal(line, &msg); err != nil {
			t.Fatalf("dead letter is not JSON: %v\n%s", err, line)
		}
		for _, r := range msg.Records {
			if bytes.Equal(r.Data, bad) && r.SequenceNumber == puts[2].SequenceNumber && msg.RequestContext.Condition == "DeaggregationFailed" {
				found++
			}
		}
	}
	if found != 1 {
		t.Errorf("the corrupt aggregate is in %d dead letters with condition DeaggregationFailed, want 1:\n%s", found, body)
	}
	objs := s.objects(t)
	for _, o := range objs {
		if bytes.Contains(o.body, bad) {
			t.Errorf("the corrupt aggregate was also delivered to the sink (object %s)", o.key)
		}
	}
	lines := lineCounts(objs)
	for _, w := range want {
		if lines[w] != 1 {
			t.Errorf("user record %s delivered %d times, want once", w, lines[w])
		}
	}
	t.Logf("corrupt aggregate (%d bytes) in one dead letter; %d user records delivered once; checkpoint %s", len(bad), len(want), end)
}

// TestFleetKPLResumesInsideAnAggregate stops a worker with SIGTERM while it is part-way through a
// KPL aggregate (batches of 3 user records, at most 5 in flight, nothing delivered until the
// drain): it must checkpoint at the last delivered sub-record, and the next worker must deliver
// exactly the rest, every user record once.
func TestFleetKPLResumesInsideAnAggregate(t *testing.T) {
	s := newE2EStack(t, 1)
	aggs, users := kplAggregates("mid", 4, 10)
	puts := testenv.PutRecords(t, s.kin, s.stream, aggs)

	a := startWorker(t, s.fleetConfig(t, fleetOptions{batchSize: 3, maxInFlight: 5, bufferIntervalSec: 300}), "mid-a")
	waitFor(t, 30*time.Second, "the first batch of 3 user records handed on", func() (bool, string) {
		n := a.handedToSinks()
		return n >= 3, itoa(n) + " handed on"
	})
	a.stop(t, "mid-a")
	if n := a.handedToSinks(); n != 3 {
		t.Fatalf("worker A handed on %d user records; the in-flight cap of 5 with batches of 3 allows exactly 3", n)
	}
	mid := record.Position{SequenceNumber: puts[0].SequenceNumber, SubSequenceNumber: 2}
	l := s.leases(t)[puts[0].ShardID]
	if l.Checkpoint != mid || l.Owner != "" {
		t.Fatalf("after the drain: checkpoint %s owner %q, want %s (the third user record of the first aggregate) and released", l.Checkpoint, l.Owner, mid)
	}

	b := startWorker(t, s.fleetConfig(t, fleetOptions{}), "mid-b")
	var want []string
	for _, u := range users {
		want = append(want, u...)
	}
	waitFor(t, 30*time.Second, "every user record in S3", func() (bool, string) {
		lines := lineCounts(s.objects(t))
		n := 0
		for _, w := range want {
			if lines[w] == 0 {
				n++
			}
		}
		return n == 0, itoa(n) + " missing"
	})
	end := record.Position{SequenceNumber: puts[len(puts)-1].SequenceNumber, SubSequenceNumber: 9}
	waitFor(t, 20*time.Second, "checkpoint at the last sub-record", func() (bool, string) {
		l := s.leases(t)[puts[0].ShardID]
		return l.Checkpoint == end, l.Checkpoint.String()
	})
	b.stop(t, "mid-b")
	lines := lineCounts(s.objects(t))
	for _, w := range want {
		if lines[w] != 1 {
			t.Errorf("user record %s delivered %d times, want exactly once", w, lines[w])
		}
	}
	if got := b.find("took lease; reading shard", puts[0].ShardID); len(got) == 0 || got[0].Checkpoint != mid.String() {
		t.Errorf("worker B took the lease at %v, want checkpoint %s", got, mid)
	}
	t.Logf("drained mid-aggregate at %s; the next worker delivered the other %d user records, each once", mid, len(want)-3)
}

// ---- 7. shutdown within its deadline with S3 gone ----

// motoServer is a moto process of the test's own, so that killing it affects no other test.
type motoServer struct {
	bin  string
	port int
	cmd  *exec.Cmd
	done chan struct{}
}

func findMoto(t *testing.T) string {
	t.Helper()
	if m := os.Getenv("SHARDHOSE_MOTO_SERVER"); m != "" {
		return m
	}
	if _, err := os.Stat("/root/.pyenv/versions/3.11.7/bin/moto_server"); err == nil {
		return "/root/.pyenv/versions/3.11.7/bin/moto_server"
	}
	if m, err := exec.LookPath("moto_server"); err == nil {
		return m
	}
	testenv.SkipOrFail(t, "needs a moto_server executable of its own, and none was found (SHARDHOSE_MOTO_SERVER, /root/.pyenv/versions/3.11.7/bin/moto_server, PATH)")
	return ""
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (m *motoServer) endpoint() string { return fmt.Sprintf("http://127.0.0.1:%d", m.port) }

func (m *motoServer) start(t *testing.T) {
	t.Helper()
	m.cmd = exec.Command(m.bin, "-H", "127.0.0.1", "-p", strconv.Itoa(m.port))
	m.cmd.Stdout, m.cmd.Stderr = io.Discard, io.Discard
	if err := m.cmd.Start(); err != nil {
		t.Fatalf("start moto: %v", err)
	}
	m.done = make(chan struct{})
	cmd, done := m.cmd, m.done
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() { m.kill() })
	waitFor(t, 20*time.Second, "private moto answers", func() (bool, string) {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", m.port), time.Second)
		if err != nil {
			return false, err.Error()
		}
		c.Close()
		return true, ""
	})
}

func (m *motoServer) kill() {
	if m.cmd == nil || m.cmd.Process == nil {
		return
	}
	select {
	case <-m.done:
	default:
		_ = m.cmd.Process.Kill()
		<-m.done
	}
}

// TestFleetShutdownWithS3DownFinishesWithinDrainTimeout reads records into the S3 sink's buffer,
// kills the S3 server, and stops the worker with SIGTERM: it must exit 3 within drain_timeout
// (plus a small margin) naming the undelivered records, with its leases released and the
// checkpoints before them; a new worker, once S3 is back, delivers every record.
func TestFleetShutdownWithS3DownFinishesWithinDrainTimeout(t *testing.T) {
	s := newE2EStack(t, 2)
	m := &motoServer{bin: findMoto(t), port: freePort(t)}
	m.start(t)
	private := testenv.S3Client(t, testenv.Env{Moto: m.endpoint()})
	createBucket := func() {
		if _, err := private.CreateBucket(t.Context(), &awss3.CreateBucketInput{Bucket: aws.String(s.bucket)}); err != nil {
			t.Fatalf("create bucket on the private moto: %v", err)
		}
	}
	createBucket()

	recs := makeRecords(0, 300)
	testenv.PutRecords(t, s.kin, s.stream, recs)
	drain := 4 * time.Second
	cfg := s.fleetConfig(t, fleetOptions{bufferIntervalSec: 300, drainTimeout: drain, s3Endpoint: m.endpoint()})
	a := startWorker(t, cfg, "down-a")
	waitFor(t, 30*time.Second, "every record read into the sink's buffer", func() (bool, string) {
		n := a.handedToSinks()
		return n >= len(recs), itoa(n) + " handed on"
	})
	m.kill()

	a.signal(t, syscall.SIGTERM)
	signalled := time.Now()
	margin := 2 * time.Second
	code := a.waitExit(drain + 10*time.Second)
	took := time.Since(signalled)
	t.Logf("with S3 down, SIGTERM -> exit %d after %s (drain_timeout %s)", code, secs(took), drain)
	if code != exitDrainTimeout {
		t.Fatalf("exit code %d, want %d (drain deadline passed); logs:\n%s", code, exitDrainTimeout, tail(a.logs.String(), 20))
	}
	if took > drain+margin {
		t.Errorf("shutdown took %s, want at most drain_timeout + %s = %s", secs(took), margin, drain+margin)
	}
	wantMsg := fmt.Sprintf("drain deadline passed with %d records undelivered", len(recs))
	if !strings.Contains(a.logs.String(), wantMsg) {
		t.Errorf("the exit message does not say %q:\n%s", wantMsg, tail(a.logs.String(), 5))
	}
	for id, l := range s.leases(t) {
		if l.Owner != "" || !l.Checkpoint.IsZero() {
			t.Errorf("lease %s after the failed drain: owner %q checkpoint %s, want released with no checkpoint", id, l.Owner, l.Checkpoint)
		}
	}

	m.start(t) // moto keeps nothing: the bucket must be made again
	createBucket()
	b := startWorker(t, s.fleetConfig(t, fleetOptions{s3Endpoint: m.endpoint()}), "down-b")
	waitFor(t, 40*time.Second, "every record delivered once S3 is back", func() (bool, string) {
		n := 0
		counts := privateDelivered(t, private, s.bucket)
		for _, r := range recs {
			if counts[string(r.Data)] == 0 {
				n++
			}
		}
		return n == 0, itoa(n) + " missing"
	})
	b.stop(t, "down-b")
}

// privateDelivered counts the lines of every object in a bucket of the private moto.
func privateDelivered(t *testing.T, c *awss3.Client, bucket string) map[string]int {
	t.Helper()
	s := &e2eStack{s3: c, bucket: bucket}
	return lineCounts(s.objects(t))
}

// ---- 8. `shardhose leases` ----

// TestFleetLeasesCommandListsTheTable runs `shardhose leases` against a table with a split
// shard (a parent at SHARD_END and two children naming it) and compares every row with the
// table: shard, owner, counter, checkpoint, parents.
func TestFleetLeasesCommandListsTheTable(t *testing.T) {
	s := newE2EStack(t, 2)
	cfg := s.fleetConfig(t, fleetOptions{})
	testenv.PutRecords(t, s.kin, s.stream, makeRecords(0, 100))
	d := startWorker(t, cfg, "ls-a")
	waitFor(t, 20*time.Second, "both shards checkpointed", func() (bool, string) {
		leases, err := s.listLeases(t.Context())
		if err != nil {
			return false, err.Error()
		}
		for _, l := range leases {
			if l.Checkpoint.IsZero() {
				return false, l.ShardID + " not yet"
			}
		}
		return len(leases) == 2, itoa(len(leases)) + " rows"
	})
	open := openShardsByHashKey(t, s)
	parent := aws.ToString(open[0].ShardId)
	mid := new(big.Int).Add(hashKey(t, open[0].HashKeyRange.StartingHashKey), hashKey(t, open[0].HashKeyRange.EndingHashKey))
	mid.Rsh(mid, 1)
	if _, err := s.kin.SplitShard(t.Context(), &kinesis.SplitShardInput{
		StreamName: aws.String(s.stream), ShardToSplit: aws.String(parent), NewStartingHashKey: aws.String(mid.String()),
	}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitStreamActive(t, s.kin, s.stream)
	testenv.PutRecords(t, s.kin, s.stream, makeRecords(100, 100))
	waitFor(t, 20*time.Second, "parent at SHARD_END and the children checkpointed", func() (bool, string) {
		leases := s.leases(t)
		if len(leases) != 4 || !leases[parent].ShardEnd {
			return false, fmt.Sprintf("%d rows, parent at end: %v", len(leases), leases[parent].ShardEnd)
		}
		for _, l := range leases {
			if !l.ShardEnd && l.Checkpoint.IsZero() {
				return false, l.ShardID + " not yet"
			}
		}
		return true, ""
	})

	check := func(stage string, exact bool) {
		before := s.leases(t)
		out, code := runCLI(t, "leases", "-c", cfg)
		after := s.leases(t)
		if code != 0 {
			t.Fatalf("%s: leases exited %d:\n%s", stage, code, out)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		head := strings.Fields(lines[0])
		for i, col := range []string{"SHARD", "OWNER", "COUNTER", "CHECKPOINT", "PARENTS"} {
			if i >= len(head) || head[i] != col {
				t.Fatalf("%s: header %q, want columns SHARD OWNER COUNTER CHECKPOINT PARENTS first", stage, lines[0])
			}
		}
		rows := 0
		for _, line := range lines[1:] {
			f := strings.Fields(line)
			l, ok := after[f[0]]
			if !ok {
				continue // the summary line
			}
			rows++
			wantOwner, wantCP, wantParents := dash(l.Owner), dash(l.Checkpoint.String()), dash(strings.Join(l.ParentShardIDs, ","))
			if l.ShardEnd {
				wantCP = checkpoint.ShardEnd
			}
			counter, _ := strconv.ParseInt(f[2], 10, 64)
			counterOK, cpOK := counter == l.Counter, f[3] == wantCP
			if !exact {
				// A running worker renews and checkpoints between the command's read and ours.
				counterOK = counter >= before[f[0]].Counter && counter <= l.Counter
				if !l.ShardEnd {
					p := parsePosition(f[3])
					cpOK = p.Compare(before[f[0]].Checkpoint) >= 0 && p.Compare(l.Checkpoint) <= 0
				}
			}
			if f[1] != wantOwner || !counterOK || !cpOK || f[4] != wantParents {
				t.Errorf("%s: row %q, want owner %s counter %d checkpoint %s parents %s", stage, line, wantOwner, l.Counter, wantCP, wantParents)
			}
		}
		if rows != len(after) {
			t.Errorf("%s: %d rows listed, the table has %d:\n%s", stage, rows, len(after), out)
		}
		if !strings.Contains(out, fmt.Sprintf("%d leases in %s", len(after), s.table)) {
			t.Errorf("%s: no summary line naming %d leases in %s:\n%s", stage, len(after), s.table, out)
		}
		t.Logf("%s:\n%s", stage, out)
	}
	check("while the worker runs", false)
	d.stop(t, "ls-a")
	check("after the worker stopped", true)
}
