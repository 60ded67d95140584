package process

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shardhose/shardhose/internal/clock"
)

// Seed 004's poison pill: three valid JSON records and one that is not.
func TestJSONPoisonPill(t *testing.T) {
	batch := recs(
		`{"event_id":"evt001","amount":150.50}`,
		`{"event_id":"evt002"}`,
		`this is not json`,
		`{"event_id":"evt003","amount":75.25}`,
	)
	_, err := NewJSON().Handle(t.Context(), batch)
	var pf *PartialFailure
	if !errors.As(err, &pf) {
		t.Fatalf("err = %v, want a PartialFailure", err)
	}
	if pf.FirstFailed != 2 || len(pf.Outputs) != 2 {
		t.Fatalf("FirstFailed = %d with %d outputs, want 2 and 2", pf.FirstFailed, len(pf.Outputs))
	}
	if got := outcomes(pf.Outputs); !slices.Equal(got, []string{"deliver:" + string(batch[0].Data), "deliver:" + string(batch[1].Data)}) {
		t.Errorf("outputs = %q", got)
	}
	if !errors.Is(err, ErrNotJSON) {
		t.Errorf("err does not wrap ErrNotJSON: %v", err)
	}
	for _, want := range []string{"json", "record 102", "shardId-000000000001", "invalid character", "at byte"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

func TestJSON(t *testing.T) {
	cases := []struct {
		data      string
		ok        bool
		errSubstr string
	}{
		{`{"a":1}`, true, ""},
		{" [1, 2]\n", true, ""},
		{`"text"`, true, ""},
		{`42`, true, ""},
		{`null`, true, ""},
		{``, false, "the data is empty"},
		{`{"a":1}{"b":2}`, false, "invalid character"},
		{`{"a":`, false, "unexpected end"},
		{"\xff", false, "invalid character"},
		// RFC 8259 section 8.1: JSON text is UTF-8. Invalid sequences inside strings are not JSON.
		{"{\"a\":\"caf\xe9\"}", false, "invalid UTF-8 at byte 9"},
		{"[\"ok\", \"\xed\xa0\x80\"]", false, "invalid UTF-8 at byte 8"}, // a UTF-16 surrogate encoded as UTF-8
		{"\"\xc3\"", false, "invalid UTF-8 at byte 1"},                   // truncated sequence
		{"{\"a\":\"caf\u00e9 \u2603\"}", true, ""},
	}
	for _, c := range cases {
		outs, err := NewJSON().Handle(t.Context(), recs(c.data))
		if c.ok {
			if err != nil || len(outs) != 1 || outs[0].Outcome != Deliver || string(outs[0].Record.Data) != c.data {
				t.Errorf("json(%q) = %v, %v; want delivered unchanged", c.data, outs, err)
			}
			continue
		}
		var pf *PartialFailure
		if !errors.As(err, &pf) || pf.FirstFailed != 0 || !strings.Contains(err.Error(), c.errSubstr) {
			t.Errorf("json(%q) err = %v, want a PartialFailure at 0 containing %q", c.data, err, c.errSubstr)
		}
	}
}

func TestFilter(t *testing.T) {
	batch := recs(
		`{"event_type":"purchase","amount":150.5}`,
		`{"event_type":"view"}`,
		`not json`,
		`{"event_type":"purchase","amount":20}`,
		`{"event_type":"add_to_cart","user":{"tier":"gold"}}`,
	)
	cases := []struct {
		name     string
		patterns []string
		want     []Outcome
	}{
		{"one data pattern", []string{`{"data": {"event_type": ["purchase"]}}`},
			[]Outcome{Deliver, Filtered, Filtered, Deliver, Filtered}},
		{"patterns are OR", []string{`{"data": {"event_type": ["view"]}}`, `{"data": {"user": {"tier": ["gold"]}}}`},
			[]Outcome{Filtered, Deliver, Filtered, Filtered, Deliver}},
		{"numeric and prefix", []string{`{"data": {"amount": [{"numeric": [">", 100]}]}}`, `{"data": {"event_type": [{"prefix": "add_"}]}}`},
			[]Outcome{Deliver, Filtered, Filtered, Filtered, Deliver}},
		{"partition key matches non-JSON records too", []string{`{"partitionKey": ["pk-2", "pk-4"]}`},
			[]Outcome{Filtered, Filtered, Deliver, Filtered, Deliver}},
		{"data and partition key together", []string{`{"partitionKey": [{"prefix": "pk-"}], "data": {"event_type": ["purchase"]}}`},
			[]Outcome{Deliver, Filtered, Filtered, Deliver, Filtered}},
		{"sequence number and arrival time", []string{`{"sequenceNumber": ["101"]}`, `{"approximateArrivalTimestamp": [{"numeric": [">=", 1545084650.991]}]}`},
			[]Outcome{Filtered, Deliver, Filtered, Filtered, Deliver}},
		{"exists false does not pass non-JSON data", []string{`{"data": {"amount": [{"exists": false}]}}`},
			[]Outcome{Filtered, Deliver, Filtered, Filtered, Deliver}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h, err := NewFilter(c.patterns)
			if err != nil {
				t.Fatal(err)
			}
			outs, err := h.Handle(t.Context(), batch)
			if err != nil {
				t.Fatal(err)
			}
			got := make([]Outcome, len(outs))
			for i, o := range outs {
				got[i] = o.Outcome
				if string(o.Record.Data) != string(batch[i].Data) {
					t.Errorf("record %d changed", i)
				}
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("outcomes = %v, want %v", got, c.want)
			}
		})
	}
}

func TestNewFilterRejects(t *testing.T) {
	six := slices.Repeat([]string{`{"data": {"a": ["1"]}}`}, 6)
	for _, ps := range [][]string{nil, six, {`{"data": {"a": "1"}}`}, {`{"Data": {"a": ["1"]}}`}} {
		if _, err := NewFilter(ps); err == nil {
			t.Errorf("NewFilter(%q) succeeded", ps)
		}
	}
}

func TestEnrich(t *testing.T) {
	start := time.Date(2025, 1, 15, 10, 30, 0, 123456789, time.FixedZone("CET", 3600))
	fake := clock.NewFake(start)
	f := func(v float64) *float64 { return &v }
	// The recipe: 'high' if float(amount) > 100 else 'low'; processing_status SUCCESS.
	h, err := NewEnrich(EnrichOptions{
		Fields:         map[string]any{"processing_status": "SUCCESS", "pipeline": map[string]any{"v": 2}},
		TimestampField: "processed_timestamp",
		Categories: []Category{
			{Field: "amount", Into: "amount_category", Ranges: []Range{{UpTo: f(100), Value: "low"}, {Value: "high"}}},
			{Field: "amount", Into: "amount_band", Ranges: []Range{{Below: f(50), Value: "low"}, {Below: f(200), Value: "medium"}, {Value: "high"}}},
		},
		Clock: fake,
	})
	if err != nil {
		t.Fatal(err)
	}
	const ts = `"processed_timestamp":"2025-01-15T09:30:00.123Z"`
	const consts = `"pipeline":{"v":2},"processing_status":"SUCCESS",` + ts
	cases := []struct{ in, want string }{
		{`{"event_id":"evt001","amount":150.50}`,
			`{"event_id":"evt001","amount":150.50,` + consts + `,"amount_category":"high","amount_band":"medium"}`},
		{`{"amount":100}`, `{"amount":100,` + consts + `,"amount_category":"low","amount_band":"medium"}`},
		{`{"amount":"49.99"}`, `{"amount":"49.99",` + consts + `,"amount_category":"low","amount_band":"low"}`},
		{`{"amount":200}`, `{"amount":200,` + consts + `,"amount_category":"high","amount_band":"high"}`},
		{`{"event_id":"evt002"}`, `{"event_id":"evt002",` + consts + `}`},
		{`{"amount":null}`, `{"amount":null,` + consts + `}`},
		// existing fields are replaced in place; nested values keep their bytes
		{`{ "processing_status" : "NEW", "x": [1, 2], "amount": 5 }`,
			`{"processing_status":"SUCCESS","x":[1, 2],"amount":5,"pipeline":{"v":2},` + ts + `,"amount_category":"low","amount_band":"low"}`},
		{`{}`, `{` + consts + `}`},
	}
	for _, c := range cases {
		outs, err := h.Handle(t.Context(), recs(c.in))
		if err != nil {
			t.Errorf("enrich(%s): %v", c.in, err)
			continue
		}
		if got := string(outs[0].Record.Data); got != c.want {
			t.Errorf("enrich(%s)\n got %s\nwant %s", c.in, got, c.want)
		}
	}

	for _, bad := range []struct{ in, errSubstr string }{
		{`not json`, "not valid JSON"},
		{`[1,2]`, "not an object"},
		{`"text"`, "not an object"},
		{`{"amount":"lots"}`, `category amount_category from field amount: "\"lots\"" is not a number`},
		{`{"amount":true}`, "is not a number"},
	} {
		batch := recs(`{"ok":1}`, bad.in)
		_, err := h.Handle(t.Context(), batch)
		var pf *PartialFailure
		if !errors.As(err, &pf) || pf.FirstFailed != 1 || !strings.Contains(err.Error(), bad.errSubstr) {
			t.Errorf("enrich(%s) err = %v, want a PartialFailure at 1 containing %q", bad.in, err, bad.errSubstr)
		}
	}
}

func TestEnrichDoesNotModifyInput(t *testing.T) {
	h, err := NewEnrich(EnrichOptions{Fields: map[string]any{"a": 1}})
	if err != nil {
		t.Fatal(err)
	}
	batch := recs(`{"b":2}`)
	if _, err := h.Handle(t.Context(), batch); err != nil {
		t.Fatal(err)
	}
	if string(batch[0].Data) != `{"b":2}` {
		t.Errorf("input changed to %s", batch[0].Data)
	}
}

func TestNewEnrichRejects(t *testing.T) {
	f := 1.0
	for _, o := range []EnrichOptions{
		{},
		{Fields: map[string]any{"ch": make(chan int)}},
		{Categories: []Category{{Field: "a", Into: "b"}}},
		{Categories: []Category{{Field: "a", Into: "b", Ranges: []Range{{Below: &f, UpTo: &f, Value: "x"}}}}},
	} {
		if _, err := NewEnrich(o); err == nil {
			t.Errorf("NewEnrich(%+v) succeeded", o)
		}
	}
}

// Handlers are used by many shards at once.
func TestHandlersAreSafeForConcurrentUse(t *testing.T) {
	filter, err := NewFilter([]string{`{"data": {"a": [{"numeric": [">", 1]}]}}`})
	if err != nil {
		t.Fatal(err)
	}
	enrich, err := NewEnrich(EnrichOptions{TimestampField: "ts", Clock: clock.NewFake(time.Unix(0, 0))})
	if err != nil {
		t.Fatal(err)
	}
	h := Chain(NewJSON(), filter, enrich)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				outs, err := h.Handle(t.Context(), recs(`{"a":1}`, `{"a":2}`))
				if err != nil || outs[0].Outcome != Filtered || string(outs[1].Record.Data) != `{"a":2,"ts":"1970-01-01T00:00:00.000Z"}` {
					t.Errorf("Handle = %v, %v", outs, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestHandlersHonourContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	filter, _ := NewFilter([]string{`{"partitionKey": ["x"]}`})
	enrich, _ := NewEnrich(EnrichOptions{TimestampField: "ts"})
	for _, h := range []Handler{NewJSON(), filter, enrich, PassThrough()} {
		if _, err := h.Handle(ctx, recs(`{}`)); !errors.Is(err, context.Canceled) {
			t.Errorf("%s: err = %v, want context.Canceled", h.Name(), err)
		}
	}
}
