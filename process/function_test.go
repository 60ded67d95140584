package process

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/shardhose/shardhose/record"
)

var testSource = Source{
	StreamARN:         "arn:aws:kinesis:us-east-2:123456789012:stream/orders",
	Region:            "us-east-2",
	InvokeIdentityARN: "arn:aws:iam::123456789012:role/shardhose",
}

// invocation is one request a fake function server received.
type invocation struct {
	Path, Query string
	Header      http.Header
	Body        []byte
}

// fakeFunction serves the Lambda Invoke API (POST /2015-03-31/functions/{name}/invocations) or, for
// the http handler, any POST; respond writes each answer.
type fakeFunction struct {
	mu      sync.Mutex
	calls   []invocation
	respond func(w http.ResponseWriter, r *http.Request, body []byte)
}

func (f *fakeFunction) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.calls = append(f.calls, invocation{Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone(), Body: body})
	respond := f.respond
	f.mu.Unlock()
	respond(w, r, body)
}

func (f *fakeFunction) invocations() []invocation {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// answer returns a respond func that writes status, headers and body.
func answer(status int, body string, headers ...string) func(http.ResponseWriter, *http.Request, []byte) {
	return func(w http.ResponseWriter, _ *http.Request, _ []byte) {
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

// newLambdaServer starts a fake Lambda endpoint and a real SDK client pointed at it.
func newLambdaServer(t *testing.T, respond func(http.ResponseWriter, *http.Request, []byte)) (*fakeFunction, *lambda.Client) {
	t.Helper()
	f := &fakeFunction{respond: respond}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	client := lambda.New(lambda.Options{
		Region:           "us-east-2",
		BaseEndpoint:     aws.String(srv.URL),
		Credentials:      credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", ""),
		RetryMaxAttempts: 1,
	})
	return f, client
}

func newTestLambda(t *testing.T, client LambdaInvoker, c Contract, report bool, log *slog.Logger) Handler {
	t.Helper()
	h, err := NewLambda(LambdaOptions{Client: client, Function: "my-fn", Contract: c, Source: testSource, ReportBatchItemFailures: report, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestLambdaSendsTheKinesisEvent(t *testing.T) {
	f, client := newLambdaServer(t, answer(200, `null`))
	h, err := NewLambda(LambdaOptions{Client: client, Function: "my-fn", Qualifier: "live", Source: testSource})
	if err != nil {
		t.Fatal(err)
	}
	if h.Name() != "lambda:my-fn:live" {
		t.Errorf("Name = %q", h.Name())
	}
	batch := recs(`{"a":1}`, "not json")
	outs, err := h.Handle(t.Context(), batch)
	if err != nil {
		t.Fatal(err)
	}
	if got := outcomes(outs); !slices.Equal(got, []string{`deliver:{"a":1}`, "deliver:not json"}) {
		t.Errorf("outcomes = %q", got)
	}
	calls := f.invocations()
	if len(calls) != 1 {
		t.Fatalf("%d invocations, want 1", len(calls))
	}
	c := calls[0]
	if c.Path != "/2015-03-31/functions/my-fn/invocations" || c.Query != "Qualifier=live" {
		t.Errorf("invoked %s?%s", c.Path, c.Query)
	}
	if got := c.Header.Get("X-Amz-Invocation-Type"); got != "RequestResponse" {
		t.Errorf("X-Amz-Invocation-Type = %q", got)
	}
	var got any
	if err := json.Unmarshal(c.Body, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"Records": []any{
		map[string]any{
			"kinesis": map[string]any{
				"kinesisSchemaVersion":        "1.0",
				"partitionKey":                "pk-0",
				"sequenceNumber":              "100",
				"data":                        base64.StdEncoding.EncodeToString([]byte(`{"a":1}`)),
				"approximateArrivalTimestamp": 1545084650.987,
			},
			"eventSource":       "aws:kinesis",
			"eventVersion":      "1.0",
			"eventID":           "shardId-000000000001:100",
			"eventName":         "aws:kinesis:record",
			"invokeIdentityArn": "arn:aws:iam::123456789012:role/shardhose",
			"awsRegion":         "us-east-2",
			"eventSourceARN":    "arn:aws:kinesis:us-east-2:123456789012:stream/orders",
		},
		map[string]any{
			"kinesis": map[string]any{
				"kinesisSchemaVersion":        "1.0",
				"partitionKey":                "pk-1",
				"sequenceNumber":              "101",
				"data":                        base64.StdEncoding.EncodeToString([]byte("not json")),
				"approximateArrivalTimestamp": 1545084650.988,
			},
			"eventSource":       "aws:kinesis",
			"eventVersion":      "1.0",
			"eventID":           "shardId-000000000001:101",
			"eventName":         "aws:kinesis:record",
			"invokeIdentityArn": "arn:aws:iam::123456789012:role/shardhose",
			"awsRegion":         "us-east-2",
			"eventSourceARN":    "arn:aws:kinesis:us-east-2:123456789012:stream/orders",
		},
	}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("event:\n got %s\nwant %s", c.Body, mustJSON(want))
	}
	if !bytes.Contains(c.Body, []byte(`"approximateArrivalTimestamp":1545084650.987`)) {
		t.Errorf("arrival time is not written as Unix seconds with milliseconds: %s", c.Body)
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// kplBatch holds records 100, 101 (two KPL user records), 102.
func kplBatch() []record.Record {
	b := recs("a", "b", "c", "d")
	b[2].SequenceNumber, b[2].SubSequenceNumber, b[2].Aggregated = "101", 1, true
	b[1].Aggregated = true
	b[3].SequenceNumber = "102"
	return b
}

func TestLambdaBatchItemFailures(t *testing.T) {
	cases := []struct {
		name      string
		response  string
		batch     []record.Record
		wantFirst int    // PartialFailure at, -1 for success, -2 for a whole-batch failure
		wantErr   string // part of the error
	}{
		{"null answer", `null`, nil, -1, ""},
		{"empty answer", ``, nil, -1, ""},
		{"empty object", `{}`, nil, -1, ""},
		{"other fields only", `{"statusCode": 200}`, nil, -1, ""},
		{"null list", `{"batchItemFailures": null}`, nil, -1, ""},
		{"empty list", `{"batchItemFailures": []}`, nil, -1, ""},
		{"one failure", `{"batchItemFailures": [{"itemIdentifier": "102"}]}`, nil, 2, "reported record 102 as failed"},
		{"lowest of several", `{"batchItemFailures": [{"itemIdentifier": "103"}, {"itemIdentifier": "101"}]}`, nil, 1, "reported record 101"},
		{"first record", `{"batchItemFailures": [{"itemIdentifier": "100"}]}`, nil, 0, ""},
		{"KPL sub-records: the first with that sequence number", `{"batchItemFailures": [{"itemIdentifier": "101"}]}`, kplBatch(), 1, ""},
		{"empty itemIdentifier", `{"batchItemFailures": [{"itemIdentifier": ""}]}`, nil, -2, "no itemIdentifier"},
		{"null itemIdentifier", `{"batchItemFailures": [{"itemIdentifier": null}]}`, nil, -2, "no itemIdentifier"},
		{"bad key name", `{"batchItemFailures": [{"itemId": "101"}]}`, nil, -2, "no itemIdentifier"},
		{"unknown sequence number", `{"batchItemFailures": [{"itemIdentifier": "999"}]}`, nil, -2, `"999" is not the sequence number of a record`},
		{"number instead of string", `{"batchItemFailures": [{"itemIdentifier": 101}]}`, nil, -2, "not a string"},
		{"not a list", `{"batchItemFailures": "101"}`, nil, -2, "not a list"},
		{"not JSON", `oops`, nil, -2, "not a partial batch response"},
		{"not an object", `"ok"`, nil, -2, "not a partial batch response"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, client := newLambdaServer(t, answer(200, c.response))
			h := newTestLambda(t, client, LambdaContract, true, nil)
			batch := c.batch
			if batch == nil {
				batch = recs("a", "b", "c", "d")
			}
			outs, err := h.Handle(t.Context(), batch)
			var pf *PartialFailure
			switch {
			case c.wantFirst == -1:
				if err != nil || len(outs) != len(batch) {
					t.Fatalf("Handle = %d outputs, %v; want success", len(outs), err)
				}
			case c.wantFirst == -2:
				if err == nil || errors.As(err, &pf) {
					t.Fatalf("err = %v, want a whole-batch failure", err)
				}
			default:
				if !errors.As(err, &pf) {
					t.Fatalf("err = %v, want a PartialFailure", err)
				}
				if pf.FirstFailed != c.wantFirst || len(pf.Outputs) != c.wantFirst {
					t.Errorf("FirstFailed = %d with %d outputs, want %d", pf.FirstFailed, len(pf.Outputs), c.wantFirst)
				}
				for i, o := range pf.Outputs {
					if o.Outcome != Deliver || string(o.Record.Data) != string(batch[i].Data) {
						t.Errorf("output %d = %+v, want the record delivered unchanged", i, o)
					}
				}
			}
			if c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)) {
				t.Errorf("err = %v, want it to contain %q", err, c.wantErr)
			}
		})
	}
}

func TestLambdaIgnoresTheAnswerWithoutReportBatchItemFailures(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	_, client := newLambdaServer(t, answer(200, `{"batchItemFailures": [{"itemIdentifier": "101"}]}`))
	h := newTestLambda(t, client, LambdaContract, false, log)
	for range 3 {
		outs, err := h.Handle(t.Context(), recs("a", "b"))
		if err != nil || len(outs) != 2 || outs[1].Outcome != Deliver {
			t.Fatalf("Handle = %v, %v; want both delivered", outs, err)
		}
	}
	if n := strings.Count(logs.String(), "report_batch_item_failures is off"); n != 1 {
		t.Errorf("warned %d times, want once:\n%s", n, logs.String())
	}
}

func TestLambdaFunctionError(t *testing.T) {
	payload := `{"errorMessage":"invalid literal for int()","errorType":"ValueError","stackTrace":["x"]}`
	_, client := newLambdaServer(t, answer(200, payload, "X-Amz-Function-Error", "Unhandled", "X-Amz-Executed-Version", "7"))
	for _, c := range []Contract{LambdaContract, FirehoseContract} {
		h := newTestLambda(t, client, c, true, nil)
		_, err := h.Handle(t.Context(), recs("a"))
		var fe *FunctionError
		if !errors.As(err, &fe) {
			t.Fatalf("%s contract: err = %v, want a FunctionError", c, err)
		}
		want := FunctionError{Function: "lambda:my-fn", Kind: "Unhandled", ErrorType: "ValueError", ErrorMessage: "invalid literal for int()", StatusCode: 200, ExecutedVersion: "7"}
		if *fe != want {
			t.Errorf("FunctionError = %+v, want %+v", *fe, want)
		}
		if !strings.Contains(err.Error(), "ValueError: invalid literal for int()") {
			t.Errorf("error %q does not carry the function's message", err)
		}
	}

	_, client = newLambdaServer(t, answer(200, `Task timed out after 3.00 seconds`, "X-Amz-Function-Error", "Unhandled"))
	_, err := newTestLambda(t, client, LambdaContract, false, nil).Handle(t.Context(), recs("a"))
	var fe *FunctionError
	if !errors.As(err, &fe) || fe.ErrorMessage != `"Task timed out after 3.00 seconds"` {
		t.Errorf("err = %v, want a FunctionError quoting the payload", err)
	}
}

func TestLambdaInvocationErrors(t *testing.T) {
	t.Run("throttled", func(t *testing.T) {
		f, client := newLambdaServer(t, answer(429, `{"Type":"User","message":"Rate Exceeded."}`, "X-Amzn-ErrorType", "TooManyRequestsException"))
		_, err := newTestLambda(t, client, LambdaContract, true, nil).Handle(t.Context(), recs("a"))
		var ie *InvocationError
		var throttled *types.TooManyRequestsException
		if !errors.As(err, &ie) || !errors.As(err, &throttled) {
			t.Errorf("err = %v, want an InvocationError wrapping TooManyRequestsException", err)
		}
		if len(f.invocations()) != 1 {
			t.Errorf("%d calls: the handler must not retry", len(f.invocations()))
		}
	})
	t.Run("missing function", func(t *testing.T) {
		_, client := newLambdaServer(t, answer(404, `{"Type":"User","Message":"Function not found: my-fn"}`, "X-Amzn-ErrorType", "ResourceNotFoundException"))
		_, err := newTestLambda(t, client, LambdaContract, true, nil).Handle(t.Context(), recs("a"))
		var ie *InvocationError
		if !errors.As(err, &ie) || !strings.Contains(err.Error(), "Function not found") {
			t.Errorf("err = %v, want an InvocationError saying the function is missing", err)
		}
	})
	t.Run("request too large, from the service", func(t *testing.T) {
		_, client := newLambdaServer(t, answer(413, `{"Type":"User","message":"Request must be smaller than 6291456 bytes"}`, "X-Amzn-ErrorType", "RequestTooLargeException"))
		_, err := newTestLambda(t, client, LambdaContract, true, nil).Handle(t.Context(), recs("a"))
		var ie *InvocationError
		if !errors.Is(err, ErrPayloadTooLarge) || errors.As(err, &ie) {
			t.Errorf("err = %v, want ErrPayloadTooLarge and no InvocationError", err)
		}
	})
	t.Run("request too large, caught before sending", func(t *testing.T) {
		f, client := newLambdaServer(t, answer(200, `null`))
		batch := recs(strings.Repeat("x", MaxInvokePayload*3/4))
		_, err := newTestLambda(t, client, LambdaContract, true, nil).Handle(t.Context(), batch)
		if !errors.Is(err, ErrPayloadTooLarge) {
			t.Errorf("err = %v, want ErrPayloadTooLarge", err)
		}
		if n := len(f.invocations()); n != 0 {
			t.Errorf("%d invocations, want none", n)
		}
	})
}

func TestLambdaHonoursContext(t *testing.T) {
	_, client := newLambdaServer(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		<-r.Context().Done() // hang until the client gives up
	})
	h := newTestLambda(t, client, LambdaContract, true, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err := h.Handle(ctx, recs("a"))
	var ie *InvocationError
	if !errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ie) {
		t.Errorf("err = %v, want context.DeadlineExceeded (not an InvocationError)", err)
	}
}

// firehoseAnswer decodes a Firehose transform request and answers with result(recordId, data) for
// each record, in reverse order (Firehose matches by recordId, not by position).
func firehoseAnswer(t *testing.T, result func(id string, data []byte) map[string]any) func(http.ResponseWriter, *http.Request, []byte) {
	return func(w http.ResponseWriter, _ *http.Request, body []byte) {
		var req struct {
			Records []struct {
				RecordID string `json:"recordId"`
				Data     []byte `json:"data"`
			} `json:"records"`
		}
		if err := json.Unmarshal(body, &req); err != nil {
			t.Errorf("request is not JSON: %v", err)
		}
		var out []map[string]any
		for i := len(req.Records) - 1; i >= 0; i-- {
			if rr := result(req.Records[i].RecordID, req.Records[i].Data); rr != nil {
				out = append(out, rr)
			}
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"records": out})
	}
}

func TestLambdaFirehoseContract(t *testing.T) {
	f, client := newLambdaServer(t, firehoseAnswer(t, func(id string, data []byte) map[string]any {
		switch string(data) {
		case "drop":
			return map[string]any{"recordId": id, "result": "Dropped", "data": ""}
		case "fail":
			return map[string]any{"recordId": id, "result": "ProcessingFailed", "data": base64.StdEncoding.EncodeToString(data)}
		}
		return map[string]any{
			"recordId": id, "result": "Ok",
			"data":     base64.StdEncoding.EncodeToString([]byte(strings.ToUpper(string(data)) + "\n")),
			"metadata": map[string]any{"partitionKeys": map[string]string{"customer": "c-" + string(data)}},
		}
	}))
	h := newTestLambda(t, client, FirehoseContract, false, nil)
	batch := kplBatch()
	batch[1].Data, batch[2].Data = []byte("drop"), []byte("fail")
	outs, err := h.Handle(t.Context(), batch)
	if err != nil {
		t.Fatal(err)
	}
	if got := outcomes(outs); !slices.Equal(got, []string{"deliver:A\n", "dropped", "processing_failed", "deliver:D\n"}) {
		t.Errorf("outcomes = %q", got)
	}
	if !reflect.DeepEqual(outs[0].Record.PartitionKeys, map[string]string{"customer": "c-a"}) {
		t.Errorf("PartitionKeys = %v", outs[0].Record.PartitionKeys)
	}
	if outs[2].Err != "ProcessingFailed status set for record" || string(outs[2].Record.Data) != "fail" {
		t.Errorf("ProcessingFailed output = %+v", outs[2])
	}
	if outs[0].Record.SequenceNumber != "100" || outs[0].Record.ShardID != batch[0].ShardID {
		t.Errorf("the transformed record lost its position: %+v", outs[0].Record)
	}
	if batch[0].PartitionKeys != nil || string(batch[0].Data) != "a" {
		t.Error("the input record was modified")
	}

	// The request: Firehose's transform event, with the Kinesis source's metadata.
	var req map[string]any
	if err := json.Unmarshal(f.invocations()[0].Body, &req); err != nil {
		t.Fatal(err)
	}
	if id, _ := req["invocationId"].(string); !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(id) {
		t.Errorf("invocationId %q is not a UUID", id)
	}
	delete(req, "invocationId")
	rec := func(id, seq string, sub int, data string, ms int64) map[string]any {
		return map[string]any{
			"recordId": id, "approximateArrivalTimestamp": float64(ms), "data": base64.StdEncoding.EncodeToString([]byte(data)),
			"kinesisRecordMetadata": map[string]any{
				"shardId": "shardId-000000000001", "partitionKey": fmt.Sprintf("pk-%d", ms-1545084650987),
				"sequenceNumber": seq, "subsequenceNumber": float64(sub), "approximateArrivalTimestamp": float64(ms),
			},
		}
	}
	want := map[string]any{
		"deliveryStreamArn":      "arn:aws:firehose:us-east-2:123456789012:deliverystream/orders",
		"sourceKinesisStreamArn": "arn:aws:kinesis:us-east-2:123456789012:stream/orders",
		"region":                 "us-east-2",
		"records": []any{
			rec("100", "100", 0, "a", 1545084650987),
			rec("101", "101", 0, "drop", 1545084650988),
			rec("101.1", "101", 1, "fail", 1545084650989),
			rec("102", "102", 0, "d", 1545084650990),
		},
	}
	if !reflect.DeepEqual(req, want) {
		t.Errorf("request:\n got %s\nwant %s", mustJSON(req), mustJSON(want))
	}
}

func TestFirehoseContractViolations(t *testing.T) {
	ok := func(id string) map[string]any {
		return map[string]any{"recordId": id, "result": "Ok", "data": base64.StdEncoding.EncodeToString([]byte("x"))}
	}
	cases := []struct {
		name    string
		answer  string
		wantErr string
	}{
		{"missing record", `{"records": [` + mustJSON(ok("100")) + `]}`, `missing recordIds ["101"]`},
		{"no records", `{"records": []}`, `missing recordIds ["100" "101"]`},
		{"unknown recordId", `{"records": [` + mustJSON(ok("100")) + `,` + mustJSON(ok("101")) + `,` + mustJSON(ok("999")) + `]}`, `"999" is not one of the request's records`},
		{"repeated recordId", `{"records": [` + mustJSON(ok("100")) + `,` + mustJSON(ok("100")) + `]}`, `"100" appears more than once`},
		{"no recordId", `{"records": [{"result": "Ok", "data": ""}]}`, "records[0] has no recordId"},
		{"unknown result", `{"records": [{"recordId": "100", "result": "Maybe", "data": ""}]}`, `result "Maybe": want Ok, Dropped or ProcessingFailed`},
		{"Ok without data", `{"records": [{"recordId": "100", "result": "Ok"}]}`, "has result Ok but no data"},
		{"data not base64", `{"records": [{"recordId": "100", "result": "Ok", "data": "%%%"}]}`, "data is not base64"},
		{"not JSON", `nope`, "not a Firehose transform response"},
		{"Lambda-shaped answer", `null`, `missing recordIds`},
		{"partition key not a string", `{"records": [{"recordId": "100", "result": "Ok", "data": "", "metadata": {"partitionKeys": {"a": 1}}}]}`, "not a Firehose transform response"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, client := newLambdaServer(t, answer(200, c.answer))
			_, err := newTestLambda(t, client, FirehoseContract, true, nil).Handle(t.Context(), recs("a", "b"))
			var pf *PartialFailure
			if err == nil || errors.As(err, &pf) || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("err = %v, want a whole-batch failure containing %q", err, c.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), "lambda:my-fn") {
				t.Errorf("error %q does not name the function", err)
			}
		})
	}
}

func TestHTTPHandler(t *testing.T) {
	f := &fakeFunction{respond: answer(200, `{"batchItemFailures": [{"itemIdentifier": "101"}]}`)}
	srv := httptest.NewServer(f)
	defer srv.Close()
	h, err := NewHTTP(HTTPOptions{URL: srv.URL + "/invoke", Timeout: 5 * time.Second, Source: testSource, ReportBatchItemFailures: true})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h.Name(), "http:127.0.0.1:") || !strings.HasSuffix(h.Name(), "/invoke") {
		t.Errorf("Name = %q", h.Name())
	}
	_, err = h.Handle(t.Context(), recs("a", "b", "c"))
	var pf *PartialFailure
	if !errors.As(err, &pf) || pf.FirstFailed != 1 {
		t.Fatalf("err = %v, want a PartialFailure at 1", err)
	}
	c := f.invocations()[0]
	if c.Path != "/invoke" || c.Header.Get("Content-Type") != "application/json" {
		t.Errorf("request %s with Content-Type %q", c.Path, c.Header.Get("Content-Type"))
	}
	lambdaBody, _ := lambdaEvent(testSource, recs("a", "b", "c"))
	if !bytes.Equal(c.Body, lambdaBody) {
		t.Errorf("the http handler's body differs from the lambda handler's:\n%s\n%s", c.Body, lambdaBody)
	}
}

func TestHTTPHandlerFailures(t *testing.T) {
	cases := []struct {
		name    string
		respond func(http.ResponseWriter, *http.Request, []byte)
		check   func(t *testing.T, err error)
	}{
		{"non-2xx", answer(500, `{"errorMessage":"boom"}`), func(t *testing.T, err error) {
			var ie *InvocationError
			if err == nil || errors.As(err, &ie) || !strings.Contains(err.Error(), "HTTP 500 Internal Server Error") || !strings.Contains(err.Error(), "boom") {
				t.Errorf("err = %v, want a whole-batch failure naming the status and body", err)
			}
		}},
		{"3xx is not success", answer(304, ``), func(t *testing.T, err error) {
			if err == nil || !strings.Contains(err.Error(), "HTTP 304") {
				t.Errorf("err = %v, want a failure naming HTTP 304", err)
			}
		}},
		{"function error header", answer(200, `{"errorMessage":"bad input","errorType":"KeyError"}`, "X-Amz-Function-Error", "Unhandled"), func(t *testing.T, err error) {
			var fe *FunctionError
			if !errors.As(err, &fe) || fe.ErrorType != "KeyError" || fe.ErrorMessage != "bad input" {
				t.Errorf("err = %v, want a FunctionError", err)
			}
		}},
		{"timeout", func(w http.ResponseWriter, r *http.Request, _ []byte) { <-r.Context().Done() }, func(t *testing.T, err error) {
			var ie *InvocationError
			if !errors.As(err, &ie) || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no answer within the timeout of 50ms") {
				t.Errorf("err = %v, want an InvocationError saying it timed out", err)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := httptest.NewServer(&fakeFunction{respond: c.respond})
			defer srv.Close()
			h, err := NewHTTP(HTTPOptions{URL: srv.URL, Timeout: 50 * time.Millisecond, ReportBatchItemFailures: true})
			if err != nil {
				t.Fatal(err)
			}
			_, err = h.Handle(t.Context(), recs("a"))
			c.check(t, err)
		})
	}

	t.Run("connection refused", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		url := srv.URL
		srv.Close()
		h, _ := NewHTTP(HTTPOptions{URL: url})
		_, err := h.Handle(t.Context(), recs("a"))
		var ie *InvocationError
		if !errors.As(err, &ie) {
			t.Errorf("err = %v, want an InvocationError", err)
		}
	})
}

func TestHTTPFirehoseContract(t *testing.T) {
	srv := httptest.NewServer(&fakeFunction{respond: firehoseAnswer(t, func(id string, data []byte) map[string]any {
		if string(data) == "drop" {
			return map[string]any{"recordId": id, "result": "Dropped"}
		}
		return map[string]any{"recordId": id, "result": "Ok", "data": base64.StdEncoding.EncodeToString(append(data, '!'))}
	})})
	defer srv.Close()
	h, err := NewHTTP(HTTPOptions{URL: srv.URL, Contract: FirehoseContract})
	if err != nil {
		t.Fatal(err)
	}
	outs, err := h.Handle(t.Context(), recs("a", "drop"))
	if err != nil || !slices.Equal(outcomes(outs), []string{"deliver:a!", "dropped"}) {
		t.Errorf("Handle = %q, %v", outcomes(outs), err)
	}
}

func TestNewFunctionHandlersReject(t *testing.T) {
	if _, err := NewLambda(LambdaOptions{Function: "f"}); err == nil {
		t.Error("NewLambda without a client succeeded")
	}
	if _, err := NewLambda(LambdaOptions{Client: &lambda.Client{}}); err == nil {
		t.Error("NewLambda without a function succeeded")
	}
	for _, u := range []string{"", "ftp://x/", "http://", "::"} {
		if _, err := NewHTTP(HTTPOptions{URL: u}); err == nil {
			t.Errorf("NewHTTP(%q) succeeded", u)
		}
	}
}

func TestRecordIDsAreUnique(t *testing.T) {
	b := recs("a", "b", "c")
	b[1].SequenceNumber = "100" // a repeated position
	if got := recordIDs(b); !slices.Equal(got, []string{"100", "100#1", "102"}) {
		t.Errorf("recordIDs = %q", got)
	}
}

func TestDeliveryStreamARN(t *testing.T) {
	for _, c := range []struct {
		src  Source
		want string
	}{
		{testSource, "arn:aws:firehose:us-east-2:123456789012:deliverystream/orders"},
		{Source{StreamARN: testSource.StreamARN, DeliveryStreamARN: "arn:x"}, "arn:x"},
		{Source{}, ""},
		{Source{StreamARN: "nonsense"}, ""},
	} {
		if got := c.src.deliveryStreamARN(); got != c.want {
			t.Errorf("%+v: %q, want %q", c.src, got, c.want)
		}
	}
}

func TestUnixSeconds(t *testing.T) {
	for ms, want := range map[int64]string{1545084650987: "1545084650.987", 1000: "1.000", 5: "0.005", -1500: "-1.500"} {
		if got := unixSeconds(record.Record{ApproximateArrivalTimestamp: time.UnixMilli(ms)}); got != want {
			t.Errorf("unixSeconds(%d ms) = %s, want %s", ms, got, want)
		}
	}
}
