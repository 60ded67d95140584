package backup

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/shardhose/shardhose/internal/clock"
	"github.com/shardhose/shardhose/record"
	"github.com/shardhose/shardhose/sinks/sinktest"
)

var testStart = time.Date(2024, time.May, 6, 11, 30, 0, 0, time.UTC)

// firehoseExample is the HTTP endpoint error record of Firehose's documentation.
var firehoseExample = ErrorRecord{
	AttemptsMade:           5,
	ArrivalTimestamp:       1594265943615,
	ErrorCode:              "HttpEndpoint.DestinationException",
	ErrorMessage:           `Received the following response from the endpoint destination. {"requestId": "109777ac-8f9b-4082-8e8d-b4f12b5fc17b", "timestamp": 1594266081268, "errorMessage": "Unauthorized"}`,
	AttemptEndingTimestamp: 1594266081318,
	RawData:                []byte("sample raw data"),
	Extra:                  map[string]any{"subsequenceNumber": 0, "dataId": "49607357361271740811418664280693044274821622880012337186.0"},
}

func TestErrorRecordJSON(t *testing.T) {
	got, err := json.Marshal(firehoseExample)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"attemptsMade":5,"arrivalTimestamp":1594265943615,"errorCode":"HttpEndpoint.DestinationException",` +
		`"errorMessage":"Received the following response from the endpoint destination. {\"requestId\": \"109777ac-8f9b-4082-8e8d-b4f12b5fc17b\", \"timestamp\": 1594266081268, \"errorMessage\": \"Unauthorized\"}",` +
		`"attemptEndingTimestamp":1594266081318,"rawData":"c2FtcGxlIHJhdyBkYXRh",` +
		`"dataId":"49607357361271740811418664280693044274821622880012337186.0","subsequenceNumber":0}`
	if string(got) != want {
		t.Errorf("marshal:\n got %s\nwant %s", got, want)
	}
	// A pointer marshals the same.
	if p, _ := json.Marshal(&firehoseExample); string(p) != want {
		t.Errorf("marshal of a pointer differs: %s", p)
	}

	var back ErrorRecord
	if err := json.Unmarshal(got, &back); err != nil {
		t.Fatal(err)
	}
	want2 := firehoseExample
	want2.Extra = map[string]any{"subsequenceNumber": json.Number("0"), "dataId": firehoseExample.Extra["dataId"]}
	if !reflect.DeepEqual(back, want2) {
		t.Errorf("round trip:\n got %+v\nwant %+v", back, want2)
	}
}

func TestErrorRecordWithoutExtraOrData(t *testing.T) {
	// MarshalJSON itself (what the Writer stores) keeps <, > and & as they are; json.Marshal
	// escapes them again, which JSON readers take alike.
	got, err := ErrorRecord{ErrorCode: "c", ErrorMessage: "<m>&"}.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"attemptsMade":0,"arrivalTimestamp":0,"errorCode":"c","errorMessage":"<m>&","attemptEndingTimestamp":0,"rawData":""}`
	if string(got) != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
}

func TestErrorRecordRejectsExtraThatReplacesACommonField(t *testing.T) {
	_, err := json.Marshal(ErrorRecord{Extra: map[string]any{"errorCode": "x"}})
	if err == nil || !strings.Contains(err.Error(), `"errorCode"`) {
		t.Fatalf("err = %v, want a complaint naming errorCode", err)
	}
}

func TestErrorRecordUnmarshalRejectsWrongTypes(t *testing.T) {
	for _, in := range []string{
		`{"attemptsMade":"5"}`,
		`{"errorCode":5}`,
		`{"rawData":"not base64!"}`,
		`[1]`,
	} {
		var e ErrorRecord
		if err := json.Unmarshal([]byte(in), &e); err == nil {
			t.Errorf("unmarshal %s: no error", in)
		}
	}
}

func newTestWriter(t *testing.T, f *fakeS3, c clock.Clock, compression string) *S3Writer {
	t.Helper()
	w, err := NewS3Writer(S3Options{
		Client:      f,
		Bucket:      "backup-bucket",
		Prefix:      "backup/",
		Compression: compression,
		SinkName:    "my-sink",
		Clock:       c,
		Retry:       FirehoseHTTPRetry,
	})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

const uuidRe = `[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}`

func TestWriteErrorsKeyAndFormat(t *testing.T) {
	for _, tc := range []struct {
		compression string
		ext         string
	}{{CompressionGZIP, `\.gz`}, {CompressionUncompressed, ""}, {"", ""}} {
		t.Run(tc.compression, func(t *testing.T) {
			f := newFakeS3()
			w := newTestWriter(t, f, clock.NewFake(testStart), tc.compression)
			recs := []ErrorRecord{firehoseExample, firehoseExample}
			recs[1].ArrivalTimestamp = sinktest.Start.UnixMilli() // the oldest: names the object
			recs[1].RawData = []byte("second\nwith a newline")
			if err := w.WriteErrors(waitCtx(t), FolderHTTPEndpointFailed, recs); err != nil {
				t.Fatal(err)
			}
			keys := f.keys()
			if len(keys) != 1 {
				t.Fatalf("objects %v, want 1", keys)
			}
			// The oldest arrival is firehoseExample's, 2020-07-09 03:39:03 UTC.
			re := regexp.MustCompile(`^backup/http-endpoint-failed/2020/07/09/03/my-sink-1-2020-07-09-03-39-03-` + uuidRe + tc.ext + `$`)
			if !re.MatchString(keys[0]) {
				t.Errorf("key %s does not match %s", keys[0], re)
			}
			o := f.object(keys[0])
			if o.bucket != "backup-bucket" || o.contentType != contentType {
				t.Errorf("stored in %q with content type %q", o.bucket, o.contentType)
			}
			got, err := ReadErrorRecords(keys[0], o.body)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 2 || string(got[1].RawData) != "second\nwith a newline" || got[0].ErrorMessage != firehoseExample.ErrorMessage || got[0].AttemptsMade != 5 {
				t.Errorf("read back %+v", got)
			}
		})
	}
}

func TestWriteErrorsKeyUsesTheClockWithoutArrivalTimes(t *testing.T) {
	f := newFakeS3()
	w := newTestWriter(t, f, clock.NewFake(testStart), CompressionGZIP)
	if err := w.WriteErrors(waitCtx(t), "processing-failed/", []ErrorRecord{{ErrorCode: "x"}}); err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`^backup/processing-failed/2024/05/06/11/my-sink-1-2024-05-06-11-30-00-` + uuidRe + `\.gz$`)
	if k := f.keys(); len(k) != 1 || !re.MatchString(k[0]) {
		t.Errorf("keys %v, want one matching %s", k, re)
	}
}

func TestWriteRaw(t *testing.T) {
	f := newFakeS3()
	w := newTestWriter(t, f, clock.NewFake(testStart), CompressionGZIP)
	recs := sinktest.Records(3, "shardId-000000000001")
	if err := w.WriteRaw(waitCtx(t), recs); err != nil {
		t.Fatal(err)
	}
	keys := f.keys()
	re := regexp.MustCompile(`^backup/2024/05/06/10/my-sink-1-2024-05-06-10-00-00-` + uuidRe + `\.gz$`)
	if len(keys) != 1 || !re.MatchString(keys[0]) {
		t.Fatalf("keys %v, want one matching %s", keys, re)
	}
	lines, err := ReadLines(keys[0], f.object(keys[0]).body)
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3", len(lines))
	}
	for i, l := range lines {
		if string(l) != string(recs[i].Data) {
			t.Errorf("line %d = %s, want %s", i, l, recs[i].Data)
		}
	}
}

func TestEmptyWritesStoreNothing(t *testing.T) {
	f := newFakeS3()
	w := newTestWriter(t, f, clock.NewFake(testStart), CompressionGZIP)
	if err := w.WriteErrors(waitCtx(t), FolderHTTPEndpointFailed, nil); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteRaw(waitCtx(t), []record.Record{}); err != nil {
		t.Fatal(err)
	}
	if n := f.callCount(); n != 0 {
		t.Errorf("%d PutObject calls, want 0", n)
	}
}

func TestWriteRetriesUntilStored(t *testing.T) {
	ctx := waitCtx(t)
	f := newFakeS3()
	f.failNext = 3
	clk := clock.NewFake(testStart)
	w := newTestWriter(t, f, clk, CompressionGZIP)
	done := make(chan error, 1)
	go func() { done <- w.WriteErrors(ctx, FolderHTTPEndpointFailed, []ErrorRecord{firehoseExample}) }()
	// Waits of about 1 s, 2 s and 4 s (15% jitter) between the four attempts.
	for i, wait := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
		f.waitCalls(ctx, t, i+1)
		if err := clk.WaitForTimers(ctx, 1); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			t.Fatalf("write returned %v after %d failed attempts", err, i+1)
		default:
		}
		clk.Advance(wait * 115 / 100)
	}
	if err := <-done; err != nil {
		t.Fatalf("write: %v", err)
	}
	if n, k := f.callCount(), len(f.keys()); n != 4 || k != 1 {
		t.Errorf("%d calls, %d objects; want 4 and 1", n, k)
	}
}

func TestWriteStopsWhenCtxEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(waitCtx(t))
	f := newFakeS3()
	f.setFailing(true)
	clk := clock.NewFake(testStart)
	w := newTestWriter(t, f, clk, CompressionGZIP)
	done := make(chan error, 1)
	go func() { done <- w.WriteRaw(ctx, sinktest.Records(2, "s")) }()
	if err := clk.WaitForTimers(waitCtx(t), 1); err != nil {
		t.Fatal(err)
	}
	cancel()
	err := <-done
	if !errors.Is(err, context.Canceled) || !errors.Is(err, errInjected) {
		t.Errorf("err = %v, want one wrapping the PUT's error and context.Canceled", err)
	}
	if len(f.keys()) != 0 {
		t.Errorf("objects stored: %v", f.keys())
	}
}

func TestNewS3WriterRejectsBadOptions(t *testing.T) {
	_, err := NewS3Writer(S3Options{Compression: "ZIP", SinkName: "bad name", Prefix: "!{timestamp:yyyy}"})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"no S3 client", "bucket", "sink name", "compression", "prefix"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if _, err := NewS3Writer(S3Options{Client: newFakeS3(), Bucket: "b", SinkName: "s", Prefix: strings.Repeat("p", 500)}); err == nil {
		t.Error("a 500-character prefix was accepted")
	}
}

func TestWriteErrorsRejectsEscapingFolder(t *testing.T) {
	w := newTestWriter(t, newFakeS3(), clock.NewFake(testStart), "")
	for _, folder := range []string{"../x/", "/abs/"} {
		if err := w.WriteErrors(waitCtx(t), folder, []ErrorRecord{{}}); err == nil {
			t.Errorf("folder %q accepted", folder)
		}
	}
}
