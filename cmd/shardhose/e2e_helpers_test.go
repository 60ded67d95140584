package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/shardhose/shardhose/checkpoint"
	"github.com/shardhose/shardhose/internal/clock"
	"github.com/shardhose/shardhose/internal/testenv"
	"github.com/shardhose/shardhose/sinks/sinktest"
)

// binPath is the shardhose binary built once for the end-to-end tests.
var binPath string

// raceBuild is set when the tests run under the race detector: the binary is then built with
// -race, and a worker that reports a data race fails its test.
var raceBuild bool

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "shardhose-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	binPath = filepath.Join(dir, "shardhose")
	args := []string{"build", "-o", binPath}
	if raceBuild {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, ".")...)
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building shardhose:", err)
		os.Exit(2)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// e2eStack is one test's own stream, bucket and lease table on the local stack.
type e2eStack struct {
	env    testenv.Env
	kin    *kinesis.Client
	s3     *awss3.Client
	ddb    *dynamodb.Client
	stream string
	bucket string
	table  string
	// kinesisEndpoint is where the stream is: kinesis-local or kinesalite.
	kinesisEndpoint string
}

func newE2EStack(t *testing.T, shards int) *e2eStack {
	t.Helper()
	return newE2EStackOn(t, shards, false)
}

// newE2EStackOn is newE2EStack with the stream on kinesalite (fast puts, for volume; no
// resharding) when kinesalite is true, else on kinesis-local.
func newE2EStackOn(t *testing.T, shards int, kinesalite bool) *e2eStack {
	t.Helper()
	env := testenv.Require(t)
	s := &e2eStack{
		env:    env,
		kin:    testenv.KinesisClient(t, env),
		s3:     testenv.S3Client(t, env),
		ddb:    testenv.DynamoDBClient(t, env),
		stream: testenv.UniqueName(t, "e2e"),
		bucket: testenv.UniqueName(t, "e2e"),
		table:  testenv.UniqueName(t, "e2e-leases"),
	}
	s.kinesisEndpoint = env.Kinesis
	if kinesalite {
		s.kin, s.kinesisEndpoint = testenv.KinesaliteClient(t, env), env.Kinesalite
	}
	testenv.CreateStream(t, s.kin, s.stream, shards)
	testenv.CreateBucket(t, s.s3, s.bucket)
	return s
}

// The lease timing of config: short, so that a test sees leases move within seconds. A test
// waits for what the daemon does in multiples of these, never for a fixed time: on a loaded
// machine a pass of the lease loop comes late, and a worker starved for a lease duration loses
// its lease, which is the daemon's correct behaviour, not a failure of the test.
const (
	e2eLeaseDuration = 3 * time.Second
	e2eRenewInterval = time.Second
)

// config writes a config file for this stack; extra is YAML appended to the sink's s3 section
// (indented by the caller's template below) and top-level overrides.
func (s *e2eStack) config(t *testing.T, sizeMB, intervalSec int, extra string) string {
	t.Helper()
	y := fmt.Sprintf(`aws:
  region: us-east-1
  credentials: {source: static, access_key_id: test, secret_access_key: test}
  endpoints: {kinesis: %q, dynamodb: %q, s3: %q, sqs: %[3]q, sns: %[3]q, firehose: %[3]q}
  s3_use_path_style: true
stream:
  name: %s
  starting_position: TRIM_HORIZON
  poll_interval: 250ms
  # No idle back-off: these tests time how soon a read after an event (a freeze, new records)
  # happens; the back-off itself is tested in consumer/idle_test.go and measured by bench-idle.
  max_idle_poll_interval: 250ms
leases:
  table: %s
  lease_duration: %s
  renew_interval: %s
  shard_sync_interval: 2s
  checkpoint_interval: 250ms
sinks:
  - name: archive
    type: s3
    s3:
      bucket: %s
      compression: GZIP
      buffering_hints: {size_in_mbs: %d, interval_in_seconds: %d}
      retry: {initial_backoff: 200ms, max_backoff: 2s}
shutdown:
  drain_timeout: 30s
log:
  format: json
  level: debug
%s`, s.env.Kinesis, s.env.DynamoDB, s.env.Moto, s.stream, s.table, e2eLeaseDuration, e2eRenewInterval, s.bucket, sizeMB, intervalSec, extra)
	path := filepath.Join(t.TempDir(), "shardhose.yaml")
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// daemon is a running `shardhose run` process.
type daemon struct {
	t      *testing.T
	cmd    *exec.Cmd
	logs   *lockedBuffer
	exited chan struct{}
	code   int
}

// lockedBuffer collects a daemon's output while the test reads it.
type lockedBuffer = sinktest.LogBuffer

func startDaemon(t *testing.T, cfgPath, workerID string) *daemon {
	t.Helper()
	return startDaemonEnv(t, cfgPath, workerID, nil)
}

// startDaemonEnv is startDaemon with extra environment variables (NAME=value) for the process.
func startDaemonEnv(t *testing.T, cfgPath, workerID string, env []string) *daemon {
	t.Helper()
	d := &daemon{t: t, logs: &lockedBuffer{}, exited: make(chan struct{})}
	d.cmd = exec.Command(binPath, "run", "-c", cfgPath, "--worker-id", workerID)
	if env != nil {
		d.cmd.Env = append(os.Environ(), env...)
	}
	d.cmd.Stdout = d.logs
	d.cmd.Stderr = d.logs
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start shardhose: %v", err)
	}
	go func() {
		err := d.cmd.Wait()
		d.code = d.cmd.ProcessState.ExitCode()
		_ = err
		close(d.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-d.exited:
		default:
			_ = d.cmd.Process.Kill()
			<-d.exited
		}
		if logs := d.logs.String(); strings.Contains(logs, "WARNING: DATA RACE") {
			t.Errorf("worker %s reported a data race:\n%s", workerID, logs[strings.Index(logs, "WARNING: DATA RACE"):])
		}
		if t.Failed() {
			t.Logf("logs of worker %s:\n%s", workerID, tail(d.logs.String(), 60))
		}
	})
	return d
}

func tail(s string, lines int) string { return lastLines(s, lines) }

// waitExit waits for the process to exit and returns its exit code.
func (d *daemon) waitExit(within time.Duration) int {
	d.t.Helper()
	select {
	case <-d.exited:
		return d.code
	case <-time.After(within):
		d.t.Fatalf("shardhose did not exit within %v; logs:\n%s", within, tail(d.logs.String(), 40))
		return -1
	}
}

// handedToSinks sums the records the daemon logged as handed to its sinks.
func (d *daemon) handedToSinks() int {
	n := 0
	sc := bufio.NewScanner(strings.NewReader(d.logs.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line struct {
			Msg     string `json:"msg"`
			Records int    `json:"records"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "records handed on" {
			n += line.Records
		}
	}
	return n
}

// waitCheckpointedAt waits until each shard's checkpoint is at the sequence number want gives it,
// failing at once if the daemon exits meanwhile.
func (s *e2eStack) waitCheckpointedAt(t *testing.T, d *daemon, want map[string]string, within time.Duration) {
	t.Helper()
	waitFor(t, within, "every shard checkpointed at its last record", func() (bool, string) {
		select {
		case <-d.exited:
			t.Fatalf("shardhose exited with %d:\n%s", d.code, tail(d.logs.String(), 20))
		default:
		}
		got := s.leases(t)
		for shard, seq := range want {
			if got[shard].Checkpoint.SequenceNumber != seq {
				return false, shard + " at " + got[shard].Checkpoint.String()
			}
		}
		return true, ""
	})
}

// waitFor polls cond every 100 ms until it holds or the deadline passes; status describes the
// state for the failure message.
func waitFor(t *testing.T, within time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, status := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within %v (%s)", what, within, status)
		}
		if err := clock.Sleep(t.Context(), clock.Real(), 100*time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
}

// delivered reads every object in the bucket and counts each record (a line) it holds.
func (s *e2eStack) delivered(t *testing.T) (counts map[string]int, objects int) {
	t.Helper()
	keys, bodies := s.objectBodies(t)
	counts = map[string]int{}
	for _, k := range keys {
		for _, line := range strings.Split(strings.TrimSuffix(bodies[k], "\n"), "\n") {
			if line != "" {
				counts[line]++
			}
		}
	}
	return counts, len(keys)
}

// objectBodies reads every data object in the bucket (those under dead-letters/ and errors/ excepted) and returns
// their keys and uncompressed bodies.
func (s *e2eStack) objectBodies(t *testing.T) (keys []string, bodies map[string]string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	bodies = map[string]string{}
	p := awss3.NewListObjectsV2Paginator(s.s3, &awss3.ListObjectsV2Input{Bucket: aws.String(s.bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("list objects in %s: %v", s.bucket, err)
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			if strings.HasPrefix(key, "dead-letters/") || strings.HasPrefix(key, "errors/") {
				continue
			}
			out, err := s.s3.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String(s.bucket), Key: o.Key})
			if err != nil {
				t.Fatalf("get %s: %v", key, err)
			}
			raw, err := io.ReadAll(out.Body)
			out.Body.Close()
			if err != nil {
				t.Fatalf("read %s: %v", key, err)
			}
			if strings.HasSuffix(key, ".gz") {
				zr, err := gzip.NewReader(bytes.NewReader(raw))
				if err != nil {
					t.Fatalf("object %s is not gzip: %v", key, err)
				}
				if raw, err = io.ReadAll(zr); err != nil {
					t.Fatalf("gunzip %s: %v", key, err)
				}
			}
			keys = append(keys, key)
			bodies[key] = string(raw)
		}
	}
	return keys, bodies
}

// leases reads the lease table as the daemon left it.
func (s *e2eStack) leases(t *testing.T) map[string]checkpoint.Lease {
	t.Helper()
	tbl := checkpoint.NewTable(s.ddb, s.table, "e2e-reader", checkpoint.Options{LeaseDuration: e2eLeaseDuration, Clock: clock.Real()})
	list, err := tbl.List(t.Context())
	if errors.Is(err, checkpoint.ErrTableNotFound) {
		return map[string]checkpoint.Lease{} // the daemon has not created it yet
	}
	if err != nil {
		t.Fatalf("list leases in %s: %v", s.table, err)
	}
	out := map[string]checkpoint.Lease{}
	for _, l := range list {
		out[l.ShardID] = l
	}
	return out
}

// makeRecords returns n JSON records with unique ids spread over many partition keys.
func makeRecords(from, n int) []testenv.Rec {
	recs := make([]testenv.Rec, n)
	for i := range recs {
		id := from + i
		recs[i] = testenv.Rec{
			PartitionKey: fmt.Sprintf("user-%d", id%97),
			Data:         []byte(fmt.Sprintf(`{"id":"r-%06d","user":"user-%d","amount":%d.%02d}`, id, id%97, id%500, id%100)),
		}
	}
	return recs
}

// missing lists the records of recs not present in counts (at most a few, for the message).
func missing(recs []testenv.Rec, counts map[string]int) (n int, sample []string) {
	for _, r := range recs {
		if counts[string(r.Data)] == 0 {
			n++
			if len(sample) < 5 {
				sample = append(sample, string(r.Data))
			}
		}
	}
	return n, sample
}

// lastSequencePerShard returns the highest sequence number put to each shard.
func lastSequencePerShard(puts []testenv.Put) map[string]string {
	last := map[string]string{}
	for _, p := range puts {
		if cur, ok := last[p.ShardID]; !ok || compareSeq(p.SequenceNumber, cur) > 0 {
			last[p.ShardID] = p.SequenceNumber
		}
	}
	return last
}
