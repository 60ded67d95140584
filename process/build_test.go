package process

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shardhose/shardhose/config"
	"github.com/shardhose/shardhose/internal/clock"
)

func fp(f float64) *float64 { return &f }

// The recipe's pipeline, built from configuration: validate JSON, keep purchases, enrich, then a
// Firehose-contract function that partitions by event type.
func TestBuildRecipePipeline(t *testing.T) {
	f, client := newLambdaServer(t, firehoseAnswer(t, func(id string, data []byte) map[string]any {
		var ev map[string]any
		if err := json.Unmarshal(data, &ev); err != nil {
			return map[string]any{"recordId": id, "result": "ProcessingFailed", "data": ""}
		}
		return map[string]any{
			"recordId": id, "result": "Ok", "data": base64.StdEncoding.EncodeToString(append(data, '\n')),
			"metadata": map[string]any{"partitionKeys": map[string]string{"event_type": ev["event_type"].(string)}},
		}
	}))
	cfg := config.Processing{Handlers: []config.ProcessingHandler{
		{Type: "json"},
		{Type: "filter", Patterns: []string{`{"data": {"event_type": ["purchase"]}}`}},
		{Type: "enrich", Fields: map[string]any{"processing_status": "SUCCESS"}, TimestampField: "processed_timestamp",
			Categories: []config.EnrichCategory{{Field: "amount", Into: "amount_category", Ranges: []config.EnrichRange{{UpTo: fp(100), Value: "low"}, {Value: "high"}}}}},
		{Type: "lambda", Function: "partitioner", Contract: "firehose"},
	}}
	h, err := Build(cfg, Deps{Lambda: client, Clock: clock.NewFake(time.Date(2025, 1, 15, 10, 30, 0, 0, time.UTC)), Source: testSource})
	if err != nil {
		t.Fatal(err)
	}
	if h.Name() != "json>filter>enrich>lambda:partitioner" {
		t.Errorf("Name = %q", h.Name())
	}
	events, err := os.ReadFile("../configs/samples/recipe-events.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(events)), "\n")
	outs, err := h.Handle(t.Context(), recs(lines...))
	if err != nil {
		t.Fatal(err)
	}
	var delivered []string
	for i, o := range outs {
		switch {
		case o.Outcome == Deliver:
			delivered = append(delivered, string(o.Record.Data))
			if o.Record.PartitionKeys["event_type"] != "purchase" {
				t.Errorf("record %d: partition keys %v", i, o.Record.PartitionKeys)
			}
		case o.Outcome != Filtered:
			t.Errorf("record %d: %s", i, o.Outcome)
		}
	}
	want := []string{
		`{"event_id":"evt001","user_id":"user123","event_type":"purchase","amount":150.50,"product_id":"prod456","timestamp":"2025-01-15T10:30:00Z","processing_status":"SUCCESS","processed_timestamp":"2025-01-15T10:30:00.000Z","amount_category":"high"}` + "\n",
		`{"event_id":"evt003","user_id":"user789","event_type":"purchase","amount":75.25,"product_id":"prod123","timestamp":"2025-01-15T10:32:00Z","processing_status":"SUCCESS","processed_timestamp":"2025-01-15T10:30:00.000Z","amount_category":"low"}` + "\n",
	}
	if !slices.Equal(delivered, want) {
		t.Errorf("delivered:\n%s\nwant:\n%s", strings.Join(delivered, ""), strings.Join(want, ""))
	}
	if n := len(f.invocations()); n != 1 {
		t.Errorf("%d invocations, want 1 (only the purchases)", n)
	}
}

func TestBuildHTTP(t *testing.T) {
	srv := httptest.NewServer(&fakeFunction{respond: answer(200, `{"batchItemFailures":[{"itemIdentifier":"101"}]}`)})
	defer srv.Close()
	cfg := config.Processing{Handlers: []config.ProcessingHandler{{Type: "http", URL: srv.URL}}}
	for _, report := range []bool{false, true} {
		h, err := Build(cfg, Deps{ReportBatchItemFailures: report})
		if err != nil {
			t.Fatal(err)
		}
		_, err = h.Handle(t.Context(), recs("a", "b"))
		var pf *PartialFailure
		if got := errors.As(err, &pf); got != report {
			t.Errorf("ReportBatchItemFailures %v: err = %v", report, err)
		}
	}
}

func TestBuildNothing(t *testing.T) {
	h, err := Build(config.Processing{}, Deps{})
	if err != nil || h.Name() != "pass-through" {
		t.Fatalf("Build(no handlers) = %v, %v; want the pass-through handler", h, err)
	}
}

func TestBuildErrors(t *testing.T) {
	cfg := config.Processing{Handlers: []config.ProcessingHandler{
		{Type: "json"},
		{Type: "lambda", Function: "f"},
		{Type: "filter", Patterns: []string{`{"data": "x"}`}},
		{Type: "enrich"},
		{Type: "http", URL: "nope"},
		{Type: "lambda", Function: "f", Contract: "kinesis"},
		{Type: "transform"},
	}}
	_, err := Build(cfg, Deps{})
	if err == nil {
		t.Fatal("Build succeeded")
	}
	for _, want := range []string{
		"processing.handlers[1] (lambda): a lambda handler needs a Lambda client",
		"processing.handlers[2] (filter): filter: pattern 0: data: must be an object or an array",
		"processing.handlers[3] (enrich): enrich: nothing to add",
		`processing.handlers[4] (http): http handler: "nope" is not`,
		`processing.handlers[5] (lambda): unknown contract "kinesis"`,
		`processing.handlers[6] (transform): unknown handler type "transform"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error\n%v\ndoes not contain %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "handlers[0]") {
		t.Errorf("a valid handler was reported: %v", err)
	}
}
