package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/shardhose/shardhose/internal/testenv"
)

// collector is an HTTP endpoint receiving Firehose's delivery protocol. It checks every header
// and the body of every request, records what it accepted, and answers 500 while failing is set.
type collector struct {
	t         *testing.T
	sourceARN string
	mu        sync.Mutex
	got       map[string]int
	requests  int
	problems  []string
	failing   atomic.Bool
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.requests++
	bad := func(format string, args ...any) { c.problems = append(c.problems, fmt.Sprintf(format, args...)) }
	want := map[string]string{
		"Content-Type":                    "application/json",
		"X-Amz-Firehose-Protocol-Version": "1.0",
		"X-Amz-Firehose-Access-Key":       "s3cret-key",
		"X-Amz-Firehose-Source-Arn":       c.sourceARN,
	}
	for h, v := range want {
		if got := r.Header.Get(h); got != v {
			bad("header %s = %q, want %q", h, got, v)
		}
	}
	var attrs struct {
		CommonAttributes map[string]string `json:"commonAttributes"`
	}
	if err := json.Unmarshal([]byte(r.Header.Get("X-Amz-Firehose-Common-Attributes")), &attrs); err != nil || attrs.CommonAttributes["team"] != "checkout" {
		bad("common attributes header %q", r.Header.Get("X-Amz-Firehose-Common-Attributes"))
	}
	reqID := r.Header.Get("X-Amz-Firehose-Request-Id")
	var body struct {
		RequestID string `json:"requestId"`
		Timestamp int64  `json:"timestamp"`
		Records   []struct {
			Data []byte `json:"data"`
		} `json:"records"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		bad("body is not JSON: %v", err)
	}
	if reqID == "" || body.RequestID != reqID || body.Timestamp <= 0 || len(body.Records) == 0 || len(body.Records) > 10000 {
		bad("request id header %q, body id %q, timestamp %d, %d records", reqID, body.RequestID, body.Timestamp, len(body.Records))
	}
	if c.failing.Load() {
		http.Error(w, `{"requestId":"`+reqID+`","timestamp":1,"errorMessage":"collector is down"}`, http.StatusInternalServerError)
		return
	}
	for _, rec := range body.Records {
		c.got[string(rec.Data)]++
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"requestId":%q,"timestamp":%d}`, reqID, time.Now().UnixMilli())
}

func (c *collector) received() (map[string]int, []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.got))
	for k, v := range c.got {
		out[k] = v
	}
	return out, append([]string(nil), c.problems...)
}

// withHTTPSink adds an http sink sending to url, backing up to the stack's bucket, to the config.
func withHTTPSink(t *testing.T, cfgPath, url string, retrySeconds int) {
	rewrite(t, cfgPath, "shutdown:\n", fmt.Sprintf(`  - name: collector
    type: http
    http:
      url: %q
      access_key: s3cret-key
      common_attributes: {team: checkout}
      buffering_hints: {size_in_mbs: 1, interval_in_seconds: 1}
      retry_duration_in_seconds: %d
      s3_backup: {bucket: REPLACE_BUCKET, prefix: backup/}
shutdown:
`, url, retrySeconds))
}

// TestTwoSinksGetEveryRecord: one stream feeds an S3 sink and an HTTP endpoint; both get every
// record, each request follows Firehose's protocol, and the checkpoints end at each shard's last
// sequence number.
func TestTwoSinksGetEveryRecord(t *testing.T) {
	s := newE2EStack(t, 2)
	c := &collector{t: t, got: map[string]int{}}
	srv := httptest.NewServer(c)
	defer srv.Close()
	recs := makeRecords(0, 1500)
	puts := testenv.PutRecords(t, s.kin, s.stream, recs)
	c.sourceARN = testenv.WaitStreamActive(t, s.kin, s.stream)
	cfg := s.config(t, 1, 1, "")
	withHTTPSink(t, cfg, srv.URL, 60)
	rewrite(t, cfg, "REPLACE_BUCKET", s.bucket)

	d := startDaemon(t, cfg, "worker-a")
	want := lastSequencePerShard(puts)
	waitFor(t, 60*time.Second, "checkpoints at each shard's last sequence number", func() (bool, string) {
		got := s.leases(t)
		for shard, seq := range want {
			if got[shard].Checkpoint.SequenceNumber != seq {
				return false, shard + " at " + got[shard].Checkpoint.String()
			}
		}
		return true, ""
	})
	d.cmd.Process.Signal(syscall.SIGTERM)
	if code := d.waitExit(40 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	inS3, _ := s.delivered(t)
	atHTTP, problems := c.received()
	if len(problems) > 0 {
		t.Fatalf("the endpoint saw %d protocol problems, e.g. %v", len(problems), problems[:min(3, len(problems))])
	}
	if n, sample := missing(recs, inS3); n > 0 {
		t.Fatalf("%d records missing in S3, e.g. %v", n, sample)
	}
	if n, sample := missing(recs, atHTTP); n > 0 {
		t.Fatalf("%d records missing at the HTTP endpoint, e.g. %v", n, sample)
	}
	t.Logf("all %d records in S3 and at the endpoint (%d requests)", len(recs), c.requests)
}

// TestHTTPOutageGoesToBackupThenRecovers: the endpoint answers 500 for longer than the retry
// duration: the records land in the S3 backup as Firehose error records with attemptsMade > 1;
// then the endpoint recovers and new records flow to it.
func TestHTTPOutageGoesToBackupThenRecovers(t *testing.T) {
	s := newE2EStack(t, 1)
	c := &collector{t: t, got: map[string]int{}}
	c.failing.Store(true)
	srv := httptest.NewServer(c)
	defer srv.Close()
	c.sourceARN = testenv.WaitStreamActive(t, s.kin, s.stream)
	cfg := s.config(t, 1, 1, "")
	withHTTPSink(t, cfg, srv.URL, 3)
	rewrite(t, cfg, "REPLACE_BUCKET", s.bucket)

	first := makeRecords(0, 50)
	puts := testenv.PutRecords(t, s.kin, s.stream, first)
	d := startDaemon(t, cfg, "worker-a")
	var backed []map[string]any
	waitFor(t, 90*time.Second, "the outage's records in the S3 backup", func() (bool, string) {
		backed = s.errorRecords(t, "backup/http-endpoint-failed/")
		return len(backed) >= len(first), itoa(len(backed)) + " backed up"
	})
	for _, e := range backed {
		if e["errorCode"] == "" || e["errorMessage"] == "" || e["rawData"] == "" || e["arrivalTimestamp"] == nil || e["attemptEndingTimestamp"] == nil {
			t.Fatalf("error record lacks Firehose's fields: %v", e)
		}
		if n, _ := e["attemptsMade"].(float64); n <= 1 {
			t.Fatalf("attemptsMade = %v, want more than 1 after a 3 s retry duration", e["attemptsMade"])
		}
	}
	waitFor(t, 30*time.Second, "the checkpoint past the backed-up records", func() (bool, string) {
		l := s.leases(t)[puts[0].ShardID]
		return l.Checkpoint.SequenceNumber == puts[len(puts)-1].SequenceNumber, l.Checkpoint.String()
	})

	c.failing.Store(false)
	second := makeRecords(1000, 50)
	testenv.PutRecords(t, s.kin, s.stream, second)
	waitFor(t, 60*time.Second, "new records at the recovered endpoint", func() (bool, string) {
		got, _ := c.received()
		n, _ := missing(second, got)
		return n == 0, itoa(n) + " missing"
	})
	d.cmd.Process.Signal(syscall.SIGTERM)
	if code := d.waitExit(40 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	_, problems := c.received()
	if len(problems) > 0 {
		t.Fatalf("protocol problems: %v", problems[:min(3, len(problems))])
	}
	t.Logf("%d records backed up with errorCode %v after %v attempts; then %d delivered", len(backed), backed[0]["errorCode"], backed[0]["attemptsMade"], len(second))
}
