package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/shardhose/shardhose/internal/testenv"
)

// firehoseTransform is a local function server speaking Firehose's transform contract: views are
// Dropped, events of type "broken" are ProcessingFailed, the rest are Ok with a field added.
func firehoseTransform(t *testing.T) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Records []struct {
				RecordID string `json:"recordId"`
				Data     []byte `json:"data"`
			} `json:"records"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		type result struct {
			RecordID string `json:"recordId"`
			Result   string `json:"result"`
			Data     []byte `json:"data"`
		}
		var resp struct {
			Records []result `json:"records"`
		}
		for _, rec := range req.Records {
			var ev map[string]any
			_ = json.Unmarshal(rec.Data, &ev)
			switch ev["event_type"] {
			case "view":
				resp.Records = append(resp.Records, result{rec.RecordID, "Dropped", rec.Data})
			case "broken":
				resp.Records = append(resp.Records, result{rec.RecordID, "ProcessingFailed", rec.Data})
			default:
				ev["transformed"] = true
				out, _ := json.Marshal(ev)
				resp.Records = append(resp.Records, result{rec.RecordID, "Ok", out})
			}
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(resp)
	}))
}

// TestFirehoseContractTransformOverHTTP: Ok records reach S3 transformed, Dropped records are
// skipped, ProcessingFailed records land under the error output's processing-failed/ folder as
// Firehose error records; the checkpoint passes them all.
func TestFirehoseContractTransformOverHTTP(t *testing.T) {
	s := newE2EStack(t, 1)
	fn := firehoseTransform(t)
	defer fn.Close()
	recs := []testenv.Rec{
		{PartitionKey: "u1", Data: []byte(`{"event_id":"e1","event_type":"purchase"}`)},
		{PartitionKey: "u2", Data: []byte(`{"event_id":"e2","event_type":"view"}`)},
		{PartitionKey: "u3", Data: []byte(`{"event_id":"e3","event_type":"broken"}`)},
		{PartitionKey: "u4", Data: []byte(`{"event_id":"e4","event_type":"add_to_cart"}`)},
	}
	puts := testenv.PutRecords(t, s.kin, s.stream, recs)
	cfg := s.config(t, 1, 1, `processing:
  handlers: [{type: http, url: "`+fn.URL+`", contract: firehose}]
  error_output: {bucket: `+s.bucket+`, prefix: errors/}
`)
	d := startDaemon(t, cfg, "worker-a")
	waitFor(t, 60*time.Second, "the shard checkpointed past every record", func() (bool, string) {
		l := s.leases(t)[puts[3].ShardID]
		return l.Checkpoint.SequenceNumber == puts[3].SequenceNumber, "at " + l.Checkpoint.String()
	})
	d.cmd.Process.Signal(syscall.SIGTERM)
	if code := d.waitExit(40 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}

	lines := s.objectLines(t)
	if len(lines) != 2 || !strings.Contains(lines[0]+lines[1], `"event_id":"e1"`) || !strings.Contains(lines[0]+lines[1], `"event_id":"e4"`) {
		t.Fatalf("S3 data = %q, want e1 and e4 only", lines)
	}
	for _, l := range lines {
		if !strings.Contains(l, `"transformed":true`) {
			t.Errorf("record %s was not transformed", l)
		}
	}

	errs := s.errorRecords(t, "errors/processing-failed/")
	if len(errs) != 1 {
		t.Fatalf("%d processing-failed error records, want 1: %v", len(errs), errs)
	}
	e := errs[0]
	raw, _ := base64.StdEncoding.DecodeString(e["rawData"].(string))
	if string(raw) != string(recs[2].Data) || e["errorCode"] == "" || e["attemptsMade"] == nil || e["arrivalTimestamp"] == nil || e["attemptEndingTimestamp"] == nil {
		t.Fatalf("error record = %v, want Firehose's fields with e3's raw data", e)
	}
}

// errorRecords reads the JSON-lines error records under prefix.
func (s *e2eStack) errorRecords(t *testing.T, prefix string) []map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	out, err := s.s3.ListObjectsV2(ctx, &awss3.ListObjectsV2Input{Bucket: aws.String(s.bucket), Prefix: aws.String(prefix)})
	if err != nil {
		t.Fatal(err)
	}
	var recs []map[string]any
	for _, o := range out.Contents {
		obj, err := s.s3.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String(s.bucket), Key: o.Key})
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(obj.Body)
		obj.Body.Close()
		for _, line := range strings.Split(strings.TrimSpace(string(body)), "\n") {
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("error record %q in %s: %v", line, aws.ToString(o.Key), err)
			}
			recs = append(recs, m)
		}
	}
	return recs
}
