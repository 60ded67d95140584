package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/klauspost/compress/gzip"

	"github.com/shardhose/shardhose/internal/testenv"
)

// TestLoadtestEndToEnd runs `shardhose loadtest --start` at 200 records/s for 10 s on kinesalite
// and checks the report: nothing lost, every figure present, and the delivered count matching
// what the test itself finds in the bucket.
func TestLoadtestEndToEnd(t *testing.T) {
	env := testenv.Require(t)
	env.Kinesis = env.Kinesalite // the daemon and the load test both talk to kinesalite
	s := &e2eStack{
		env:    env,
		kin:    testenv.KinesaliteClient(t, env),
		s3:     testenv.S3Client(t, env),
		ddb:    testenv.DynamoDBClient(t, env),
		stream: testenv.UniqueName(t, "load"),
		bucket: testenv.UniqueName(t, "load"),
		table:  testenv.UniqueName(t, "load-leases"),
	}
	testenv.CreateStream(t, s.kin, s.stream, 4)
	testenv.CreateBucket(t, s.s3, s.bucket)
	dlqPath := filepath.Join(t.TempDir(), "dead-letters.jsonl")
	cfg := s.config(t, 1, 1, fmt.Sprintf("dead_letter: {type: file, file: {path: %q}}\n", dlqPath))

	// A stand-in for the daemon's metrics endpoint, with two shards' iterator ages.
	metrics := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "# TYPE shardhose_iterator_age_milliseconds gauge\n"+
			"shardhose_iterator_age_milliseconds{shard=\"shardId-000000000000\"} 250\n"+
			"shardhose_iterator_age_milliseconds{shard=\"shardId-000000000001\"} 1500\n")
	}))
	defer metrics.Close()

	var stderr bytes.Buffer
	cmd := exec.CommandContext(t.Context(), binPath, "loadtest", "-c", cfg, "--start",
		"--daemon-log", filepath.Join(t.TempDir(), "daemon.log"),
		"--template", "../../configs/templates/recipe-event.tmpl",
		"--template", "../../configs/templates/recipe-purchase.tmpl", "--template-weight", "88,12",
		"--rate", "200", "--duration", "10s", "--settle", "90s", "--metrics-url", metrics.URL, "--output", "json")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("loadtest: %v\nstdout: %s\nstderr: %s", err, out, tail(stderr.String(), 40))
	}
	var rep struct {
		RunID          string   `json:"run_id"`
		Sent           int      `json:"records_sent"`
		RateAsked      float64  `json:"rate_asked"`
		Delivered      int      `json:"delivered"`
		DeadLettered   int      `json:"dead_lettered"`
		Lost           int      `json:"lost"`
		Duplicates     int      `json:"duplicates"`
		P50            *float64 `json:"latency_p50_seconds"`
		P95            *float64 `json:"latency_p95_seconds"`
		P99            *float64 `json:"latency_p99_seconds"`
		IteratorAgeMax *float64 `json:"iterator_age_max_seconds"`
		CPU            *float64 `json:"daemon_cpu_seconds"`
		RSS            *int64   `json:"daemon_peak_rss_bytes"`
	}
	var raw map[string]any
	if err := json.Unmarshal(out, &raw); err != nil {
		t.Fatalf("report is not JSON: %v\n%s", err, out)
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatal(err)
	}
	t.Logf("report: %s", out)
	if !regexp.MustCompile(`^[0-9a-f]{8}$`).MatchString(rep.RunID) {
		t.Errorf("run_id %q", rep.RunID)
	}
	// At most 200/s for 10 s; fewer on a busy machine, which the load test reports, not hides.
	if rep.Sent < 500 || rep.Sent > 2010 || rep.RateAsked != 200 {
		t.Errorf("sent %d at an asked %v/s, want up to 2000 at 200/s", rep.Sent, rep.RateAsked)
	}
	if rep.Lost != 0 || rep.Delivered != rep.Sent || rep.DeadLettered != 0 || rep.Duplicates != 0 {
		t.Errorf("delivered %d of %d, dead-lettered %d, lost %d, duplicates %d; want all delivered once",
			rep.Delivered, rep.Sent, rep.DeadLettered, rep.Lost, rep.Duplicates)
	}
	if rep.P50 == nil || rep.P95 == nil || rep.P99 == nil || *rep.P50 <= 0 || *rep.P50 > *rep.P95 || *rep.P95 > *rep.P99 {
		t.Errorf("latencies p50 %v p95 %v p99 %v, want 0 < p50 <= p95 <= p99", rep.P50, rep.P95, rep.P99)
	}
	if rep.IteratorAgeMax == nil || *rep.IteratorAgeMax != 1.5 {
		t.Errorf("iterator age max %v, want 1.5 s from the metrics", rep.IteratorAgeMax)
	}
	if rep.CPU == nil || *rep.CPU < 0 || rep.RSS == nil || *rep.RSS < 1<<20 {
		t.Errorf("daemon CPU %v s, peak RSS %v bytes; want both measured", rep.CPU, rep.RSS)
	}
	for _, k := range []string{"records_sent", "delivered", "dead_lettered", "lost", "duplicates", "latency_p50_seconds",
		"latency_p95_seconds", "latency_p99_seconds", "iterator_age_max_seconds", "daemon_cpu_seconds", "daemon_cpu_percent",
		"daemon_peak_rss_bytes", "throttled_entries", "rate_achieved"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("report has no %s", k)
		}
	}

	// Count the run's records in the bucket independently of the load test.
	found := countIDs(t, s.s3, s.bucket, rep.RunID)
	if len(found) != rep.Sent {
		t.Errorf("the bucket holds %d distinct records of run %s, the report says %d were sent", len(found), rep.RunID, rep.Sent)
	}
}

// countIDs reads every object of bucket (gzip) and counts the load-test ids of runID in them.
func countIDs(t *testing.T, c *awss3.Client, bucket, runID string) map[string]int {
	t.Helper()
	ctx := context.Background()
	re := regexp.MustCompile(`"shardhose_loadtest_id":"(` + runID + `-\d+)"`)
	ids := map[string]int{}
	p := awss3.NewListObjectsV2Paginator(c, &awss3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			obj, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String(bucket), Key: o.Key})
			if err != nil {
				t.Fatal(err)
			}
			zr, err := gzip.NewReader(obj.Body)
			if err != nil {
				t.Fatal(err)
			}
			data, err := io.ReadAll(zr)
			obj.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range re.FindAllSubmatch(data, -1) {
				ids[string(m[1])]++
			}
		}
	}
	return ids
}

// TestProduceDryRunAndTemplateErrors runs the binary without a stack: --dry-run prints the
// records, the same seed prints the same ones, and a broken template exits 1 naming the place.
func TestProduceDryRunAndTemplateErrors(t *testing.T) {
	run := func(args ...string) (string, string, int) {
		cmd := exec.Command(binPath, append([]string{"produce"}, args...)...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return stdout.String(), stderr.String(), code
	}
	args := []string{"--dry-run", "--template", "../../configs/templates/clickstream.tmpl", "--seed", "42", "--count", "5"}
	a, errOut, code := run(args...)
	if code != 0 {
		t.Fatalf("dry run exited %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSuffix(a, "\n"), "\n")
	if len(lines) != 5 {
		t.Fatalf("dry run printed %d lines, want 5:\n%s", len(lines), a)
	}
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil || m["session_id"] == nil {
			t.Errorf("line %q is not a clickstream record", l)
		}
	}
	// Everything but the clock-driven timestamp repeats with the seed.
	b, _, _ := run(args...)
	ts := regexp.MustCompile(`"ts":"[^"]*"`)
	if ts.ReplaceAllString(a, "") != ts.ReplaceAllString(b, "") {
		t.Errorf("the same seed printed different records:\n%s\n%s", a, b)
	}

	bad := filepath.Join(t.TempDir(), "bad.tmpl")
	if err := os.WriteFile(bad, []byte("{\n  \"id\": \"{{random.uuid}}\",\n  \"n\": {{random.nmber(5)}}\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, errOut, code = run("--dry-run", "--template", bad)
	if code != 1 || !strings.Contains(errOut, "template "+bad+": line 3, column 10: unknown function \"random.nmber\"") {
		t.Errorf("broken template: exit %d, %q; want 1 naming line 3, column 10", code, errOut)
	}
	_, errOut, code = run("--dry-run", "--template", bad, "--file", bad)
	if code != 1 || !strings.Contains(errOut, "does not go with --file") {
		t.Errorf("--template with --file: exit %d, %q", code, errOut)
	}
	_, errOut, code = run("--dry-run", "--template", "../../configs/templates/app-log.tmpl", "--rate", "5", "--ramp", "1:5:1s")
	if code != 1 || !strings.Contains(errOut, "use one of them") {
		t.Errorf("--rate with --ramp: exit %d, %q", code, errOut)
	}
	_, errOut, code = run("--dry-run", "--template", "../../configs/templates/app-log.tmpl", "--partition-key", "{{random.uuid")
	if code != 1 || !strings.Contains(errOut, "template --partition-key: line 1, column 1: {{ is not closed with }}") {
		t.Errorf("broken key template: exit %d, %q", code, errOut)
	}
}
