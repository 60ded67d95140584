package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"

	"github.com/shardhose/shardhose/config"
	"github.com/shardhose/shardhose/internal/awsclient"
	"github.com/shardhose/shardhose/internal/testenv"
)

// scrape reads /metrics and returns every sample by its series ("name{labels}" as printed).
func scrape(t *testing.T, base string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatalf("scrape %s/metrics: %v", base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: status %d", resp.StatusCode)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// sample returns the value of the one series of name whose labels contain every want
// (`key="value"`), or -1 when there is none.
func sample(m map[string]float64, name string, want ...string) float64 {
	for series, v := range m {
		n, labels, _ := strings.Cut(series, "{")
		if n != name {
			continue
		}
		ok := true
		for _, w := range want {
			ok = ok && strings.Contains(labels, w)
		}
		if ok {
			return v
		}
	}
	return -1
}

// get returns the status and body of a GET.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// listenAddress waits for the daemon's "serving metrics and health" line and returns its address.
func (d *daemon) listenAddress(t *testing.T) string {
	t.Helper()
	var addr string
	waitFor(t, 30*time.Second, "the metrics listener", func() (bool, string) {
		for _, line := range strings.Split(d.logs.String(), "\n") {
			var l struct {
				Msg     string `json:"msg"`
				Address string `json:"address"`
			}
			if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "serving metrics and health" {
				addr = l.Address
				return true, ""
			}
		}
		return false, "not logged yet"
	})
	return "http://" + addr
}

// TestMetricsAndHealthFollowAPoisonRecordAndAnS3Outage runs the daemon with metrics on, a poison
// record and an S3 outage, scraping /metrics throughout: the dead letter is counted by condition
// and destination; during the outage the sink is paused, data freshness and iterator age rise and
// the checkpoint lags; after recovery the sink resumes and freshness falls to 0. /readyz and
// `shardhose healthcheck` say ready once started and not ready while draining. The same figures
// reach CloudWatch (moto) under the names the Firehose recipe's alarms use.
func TestMetricsAndHealthFollowAPoisonRecordAndAnS3Outage(t *testing.T) {
	s := newE2EStack(t, 1)
	m := s.withPrivateMoto(t)
	dlPath := filepath.Join(t.TempDir(), "dead-letters.jsonl")
	namespace := testenv.UniqueName(t, "shardhose-e2e")
	cfg := s.config(t, 1, 1, fmt.Sprintf(`batching: {batch_size: 50, max_in_flight_records: 200}
processing:
  handlers: [{type: json}]
  bisect_batch_on_function_error: true
  maximum_retry_attempts: 0
  retry: {initial_backoff: 50ms, max_backoff: 100ms}
dead_letter:
  type: file
  file: {path: %q}
metrics:
  listen: 127.0.0.1:0
  cloudwatch: {enabled: true, namespace: %q, interval: 1s}
`, dlPath, namespace))
	// CloudWatch is the shared moto's: the private one (S3) goes down during the test.
	shared := testenv.Endpoints().Moto
	rewrite(t, cfg, fmt.Sprintf("firehose: %q}", s.env.Moto), fmt.Sprintf("firehose: %q, cloudwatch: %q}", s.env.Moto, shared))
	rewrite(t, cfg, "drain_timeout: 30s", "drain_timeout: 6s")
	rewrite(t, cfg, "retry: {initial_backoff: 200ms, max_backoff: 2s}", "retry: {initial_backoff: 200ms, max_backoff: 500ms}")

	good := makeRecords(0, 200)
	poison := testenv.Rec{PartitionKey: "user-poison", Data: []byte("this is not json")}
	puts := testenv.PutRecords(t, s.kin, s.stream, append(good[:100:100], append([]testenv.Rec{poison}, good[100:]...)...))
	last := puts[len(puts)-1].SequenceNumber
	shard := puts[0].ShardID

	d := startDaemon(t, cfg, "worker-m")
	base := d.listenAddress(t)

	// Start-up: /readyz is 503 "starting" until the checks pass and the lease loop ran, then 200.
	var seen []string
	waitFor(t, 30*time.Second, "/readyz ready", func() (bool, string) {
		code, body := get(t, base+"/readyz")
		if code != http.StatusOK && code != 0 && !strings.HasPrefix(body, "starting") {
			t.Fatalf("/readyz during start-up answered %d %q, want 503 starting or 200", code, body)
		}
		seen = append(seen, strconv.Itoa(code))
		return code == http.StatusOK, body
	})
	if out, code := runCLI(t, "healthcheck", "--url", base+"/readyz"); code != 0 {
		t.Fatalf("healthcheck when ready: exit %d: %s", code, out)
	}
	if code, body := get(t, base+"/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz: %d %s", code, body)
	}

	// Everything read, the poison record a dead letter, the rest delivered and checkpointed.
	waitFor(t, 60*time.Second, "all records checkpointed", func() (bool, string) {
		l := s.leases(t)[shard]
		return l.Checkpoint.SequenceNumber == last, "at " + l.Checkpoint.String()
	})
	mt := scrape(t, base)
	lbl := `shard_id="` + shard + `"`
	for _, c := range []struct {
		what string
		got  float64
		want float64
	}{
		{"records read", sample(mt, "shardhose_records_read_total", lbl), 201},
		{"polled events", sample(mt, "shardhose_esm_polled_events_total"), 201},
		{"dead letters RetryAttemptsExhausted to file", sample(mt, "shardhose_dead_letters_total", `condition="RetryAttemptsExhausted"`, `destination="file"`), 1},
		{"dead-letter records", sample(mt, "shardhose_dead_letter_records_total", `condition="RetryAttemptsExhausted"`), 1},
		{"dropped events", sample(mt, "shardhose_esm_dropped_events_total"), 1},
		{"on-failure destination delivered", sample(mt, "shardhose_esm_on_failure_destination_delivered_events_total"), 1},
		{"delivered records", sample(mt, "shardhose_delivery_records_total", `sink="archive"`), 200},
		{"lease held", sample(mt, "shardhose_lease_held", lbl), 1},
		{"leases held", sample(mt, "shardhose_leases_held"), 1},
		{"sink paused", sample(mt, "shardhose_sink_paused", `sink="archive"`), 0},
		{"freshness with nothing pending", sample(mt, "shardhose_delivery_data_freshness_seconds", `sink="archive"`), 0},
	} {
		if c.got != c.want {
			t.Errorf("%s: %v, want %v", c.what, c.got, c.want)
		}
	}
	if n := sample(mt, "shardhose_batch_splits_total"); n < 1 {
		t.Errorf("bisect splits: %v, want at least 1 (the poison record's batch was split)", n)
	}
	if n := sample(mt, "shardhose_handler_duration_seconds_count", `result="function_error"`); n < 1 {
		t.Errorf("failed handler calls: %v, want at least 1", n)
	}
	if v := sample(mt, "shardhose_iterator_age_seconds", lbl); v < 0 {
		t.Errorf("no iterator age for %s", shard)
	}
	if t.Failed() {
		t.FailNow()
	}

	// S3 outage: the sink pauses, freshness and iterator age rise, the checkpoint lags.
	m.Stop()
	testenv.PutRecords(t, s.kin, s.stream, makeRecords(1000, 500))
	waitFor(t, 60*time.Second, "the sink paused", func() (bool, string) {
		v := sample(scrape(t, base), "shardhose_sink_paused", `sink="archive"`)
		return v == 1, fmt.Sprint("paused ", v)
	})
	first := scrape(t, base)
	fresh1 := sample(first, "shardhose_delivery_data_freshness_seconds", `sink="archive"`)
	age1 := sample(first, "shardhose_iterator_age_seconds", lbl)
	var during map[string]float64
	waitFor(t, 30*time.Second, "freshness and iterator age rising during the outage", func() (bool, string) {
		during = scrape(t, base)
		f := sample(during, "shardhose_delivery_data_freshness_seconds", `sink="archive"`)
		a := sample(during, "shardhose_iterator_age_seconds", lbl)
		return f >= fresh1+2 && a >= age1+2, fmt.Sprintf("freshness %v→%v, iterator age %v→%v", fresh1, f, age1, a)
	})
	if lag := sample(during, "shardhose_checkpoint_lag_records", lbl); lag < 50 {
		t.Errorf("checkpoint lag during the outage: %v, want at least a batch (50)", lag)
	}
	if r := sample(during, "shardhose_delivery_retry_seconds", `sink="archive"`); r <= 0 {
		t.Errorf("time in a retry during the outage: %v, want > 0", r)
	}
	if f := sample(during, "shardhose_delivery_failures_total", `sink="archive"`); f < 1 {
		t.Errorf("delivery failures during the outage: %v", f)
	}
	peak := sample(during, "shardhose_delivery_data_freshness_seconds", `sink="archive"`)
	if code, body := get(t, base+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz during the outage (backpressure, not a wedge): %d %s", code, body)
	}

	// Recovery: the sink resumes, freshness falls to 0, everything is delivered.
	m.Start()
	testenv.CreateBucket(t, s.s3, s.bucket)
	waitFor(t, 90*time.Second, "delivery resumed and freshness back to 0", func() (bool, string) {
		mt := scrape(t, base)
		p := sample(mt, "shardhose_sink_paused", `sink="archive"`)
		f := sample(mt, "shardhose_delivery_data_freshness_seconds", `sink="archive"`)
		r := sample(mt, "shardhose_delivery_records_total", `sink="archive"`)
		return p == 0 && f == 0 && r >= 700, fmt.Sprintf("paused %v, freshness %v (peak %v), delivered %v", p, f, peak, r)
	})
	waitFor(t, 30*time.Second, "iterator age back to 0 once caught up", func() (bool, string) {
		a := sample(scrape(t, base), "shardhose_iterator_age_seconds", lbl)
		return a == 0, fmt.Sprint("iterator age ", a)
	})

	// Drain with S3 down again, so the drain lasts until drain_timeout: /readyz and the
	// healthcheck say draining until the process exits.
	m.Stop()
	testenv.PutRecords(t, s.kin, s.stream, makeRecords(5000, 20))
	waitFor(t, 30*time.Second, "the sink paused again", func() (bool, string) {
		v := sample(scrape(t, base), "shardhose_sink_paused", `sink="archive"`)
		return v == 1, fmt.Sprint("paused ", v)
	})
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "/readyz draining", func() (bool, string) {
		code, body := get(t, base+"/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "draining"), fmt.Sprintf("%d %s", code, body)
	})
	if out, code := runCLI(t, "healthcheck", "--url", base+"/readyz"); code != 1 || !strings.Contains(out, "draining") {
		t.Errorf("healthcheck while draining: exit %d %q, want 1 and draining", code, out)
	}
	if code := d.waitExit(30 * time.Second); code != exitDrainTimeout {
		t.Errorf("exit code %d, want %d (drain deadline passed with S3 down)", code, exitDrainTimeout)
	}
	if _, code := runCLI(t, "healthcheck", "--url", base+"/readyz"); code != 1 {
		t.Errorf("healthcheck after exit: %d, want 1", code)
	}

	// The same figures reached CloudWatch under the AWS names the recipe's alarms use.
	cw := awsclient.CloudWatch(testenv.AWSConfig(t, shared), config.AWS{})
	maxOf := func(metric string, stat cwtypes.Statistic, dims ...string) float64 {
		t.Helper()
		var d []cwtypes.Dimension
		for i := 0; i < len(dims); i += 2 {
			d = append(d, cwtypes.Dimension{Name: aws.String(dims[i]), Value: aws.String(dims[i+1])})
		}
		out, err := cw.GetMetricStatistics(t.Context(), &cloudwatch.GetMetricStatisticsInput{
			Namespace: aws.String(namespace), MetricName: aws.String(metric), Dimensions: d,
			StartTime: aws.Time(time.Now().Add(-time.Hour)), EndTime: aws.Time(time.Now().Add(time.Minute)),
			Period: aws.Int32(3600), Statistics: []cwtypes.Statistic{stat},
		})
		if err != nil {
			t.Fatalf("GetMetricStatistics %s: %v", metric, err)
		}
		v := -1.0
		for _, p := range out.Datapoints {
			if stat == cwtypes.StatisticSum {
				v = max(v, aws.ToFloat64(p.Sum))
			} else {
				v = max(v, aws.ToFloat64(p.Maximum))
			}
		}
		return v
	}
	if v := maxOf("DeliveryToS3.DataFreshness", cwtypes.StatisticMaximum, "SinkName", "archive", "StreamName", s.stream); v < peak-1 {
		t.Errorf("CloudWatch DeliveryToS3.DataFreshness maximum %v s, want about the peak scraped (%v s)", v, peak)
	}
	if v := maxOf("IteratorAge", cwtypes.StatisticMaximum, "StreamName", s.stream); v <= 0 {
		t.Errorf("CloudWatch IteratorAge maximum %v ms, want > 0", v)
	}
	if v := maxOf("DeadLetters", cwtypes.StatisticSum, "Condition", "RetryAttemptsExhausted", "Destination", "file", "StreamName", s.stream); v != 1 {
		t.Errorf("CloudWatch DeadLetters sum %v, want 1", v)
	}
	if v := maxOf("DeliveryToS3.Paused", cwtypes.StatisticMaximum, "SinkName", "archive", "StreamName", s.stream); v != 1 {
		t.Errorf("CloudWatch DeliveryToS3.Paused maximum %v, want 1 (the outage)", v)
	}
	t.Logf("readyz during start-up: %v; freshness peaked at %.0fs during the outage", seen, peak)
}
