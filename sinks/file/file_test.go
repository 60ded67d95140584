package file

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shardhose/shardhose/config"
	"github.com/shardhose/shardhose/internal/clock"
	"github.com/shardhose/shardhose/internal/outage"
	"github.com/shardhose/shardhose/record"
	"github.com/shardhose/shardhose/sinks"
	"github.com/shardhose/shardhose/sinks/sinktest"
)

func waitCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newSink(t *testing.T, cfg config.FileSink, edit func(*Options)) *Sink {
	t.Helper()
	o := Options{Name: "dev", Config: cfg}
	if edit != nil {
		edit(&o)
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

func fileConfig(t *testing.T, format string) config.FileSink {
	c := config.FileDefaults()
	c.Path = filepath.Join(t.TempDir(), "out.ndjson")
	c.Format = format
	return c
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		t.Fatalf("output does not end with a newline: %q", b[max(0, len(b)-40):])
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

func TestRawRecordsLandInOrderAndAreAckedOnce(t *testing.T) {
	cfg := fileConfig(t, FormatRaw)
	// Something already in the file stays: the sink appends.
	if err := os.WriteFile(cfg.Path, []byte("earlier\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := newSink(t, cfg, nil)
	acks := sinktest.NewAckRecorder(t)
	recs := sinktest.Records(300, "shardId-000000000000")
	for w := range 3 {
		if err := s.Write(waitCtx(t), recs[w*100:(w+1)*100], acks.Done(w)); err != nil {
			t.Fatal(err)
		}
		// Acknowledged before Write returns: the lines are in the file and synced.
		if !acks.Acked(w) {
			t.Fatalf("write %d not acknowledged when Write returned", w)
		}
	}
	if err := s.Close(waitCtx(t)); err != nil {
		t.Fatal(err)
	}
	lines := readLines(t, cfg.Path)
	if len(lines) != 301 || lines[0] != "earlier" {
		t.Fatalf("%d lines, first %q; want the earlier line and 300 records", len(lines), lines[0])
	}
	for i, r := range recs {
		if lines[i+1] != string(r.Data) {
			t.Fatalf("line %d = %q, want %q", i+1, lines[i+1], r.Data)
		}
	}
	for w := range 3 {
		if acks.Calls(w) != 1 {
			t.Errorf("write %d acknowledged %d times", w, acks.Calls(w))
		}
	}
	if err := s.Write(waitCtx(t), recs[:1], acks.Done(9)); !errors.Is(err, sinks.ErrClosed) {
		t.Fatalf("Write after Close = %v, want ErrClosed", err)
	}
	if acks.Acked(9) {
		t.Fatal("a write after Close was acknowledged")
	}
}

func TestJSONEnvelope(t *testing.T) {
	var out bytes.Buffer
	cfg := config.FileDefaults()
	cfg.Format = FormatJSON
	s := newSink(t, cfg, func(o *Options) { o.Stdout = &out })
	at := time.Date(2024, 5, 6, 10, 0, 0, 123_000_000, time.UTC)
	recs := []record.Record{
		{ShardID: "shardId-000000000001", PartitionKey: "pk-1", SequenceNumber: "49650000000000000000000000000000000000000000000000000001",
			SubSequenceNumber: 2, ApproximateArrivalTimestamp: at, Data: []byte("{\n  \"event\": \"<click>\",\n  \"n\": 1\n}\n")},
		{ShardID: "shardId-000000000001", PartitionKey: "pk-2", SequenceNumber: "2", Data: []byte{0xff, 0x00, '\n', 'x'}},
		{ShardID: "shardId-000000000001", PartitionKey: "pk-3", SequenceNumber: "3", Data: []byte("not json")},
		{ShardID: "shardId-000000000001", PartitionKey: "pk-4", SequenceNumber: "4", Data: []byte("42")},
		{ShardID: "shardId-000000000001", PartitionKey: "pk-5", SequenceNumber: "5", Data: nil},
	}
	if err := s.Write(waitCtx(t), recs, nil); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != len(recs) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(recs), out.String())
	}
	want0 := `{"shardId":"shardId-000000000001","partitionKey":"pk-1","sequenceNumber":"49650000000000000000000000000000000000000000000000000001",` +
		`"subSequenceNumber":2,"approximateArrivalTimestamp":1714989600.123,"data":{"event":"<click>","n":1}}`
	if lines[0] != want0 {
		t.Errorf("line 0:\n got %s\nwant %s", lines[0], want0)
	}
	for i, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %d is not JSON: %v\n%s", i, err, l)
		}
		_, hasData := m["data"]
		b64, hasB64 := m["dataBase64"].(string)
		if hasData == hasB64 {
			t.Errorf("line %d has data: %v, dataBase64: %v; want exactly one", i, hasData, hasB64)
		}
		if hasB64 {
			got, err := base64.StdEncoding.DecodeString(b64)
			if err != nil || !bytes.Equal(got, recs[i].Data) {
				t.Errorf("line %d: dataBase64 decodes to %q, want %q", i, got, recs[i].Data)
			}
		}
		if m["partitionKey"] != recs[i].PartitionKey {
			t.Errorf("line %d: partitionKey %v", i, m["partitionKey"])
		}
	}
	if !strings.HasSuffix(lines[3], `"data":42}`) {
		t.Errorf("a JSON number is not kept as one: %s", lines[3])
	}
	if !strings.HasSuffix(lines[4], `"approximateArrivalTimestamp":0,"dataBase64":""}`) {
		t.Errorf("empty data without arrival time: %s", lines[4])
	}
}

// chunkWriter stores what it is given a few bytes at a time, yielding between pieces, so that
// unserialized writers would interleave.
type chunkWriter struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (c *chunkWriter) Write(p []byte) (int, error) {
	for i := 0; i < len(p); i += 5 {
		c.mu.Lock()
		c.buf.Write(p[i:min(i+5, len(p))])
		c.mu.Unlock()
		runtime.Gosched()
	}
	return len(p), nil
}

func TestConcurrentWritesDoNotInterleave(t *testing.T) {
	out := &chunkWriter{}
	s := newSink(t, config.FileDefaults(), func(o *Options) { o.Stdout = out })
	acks := sinktest.NewAckRecorder(t)
	const writers, writes, perWrite = 8, 25, 20
	var wg sync.WaitGroup
	for w := range writers {
		recs := sinktest.Records(writes*perWrite, fmt.Sprintf("shardId-%012d", w))
		wg.Go(func() {
			for b := range writes {
				if err := s.Write(waitCtx(t), recs[b*perWrite:(b+1)*perWrite], acks.Done(w*writes+b)); err != nil {
					t.Errorf("write: %v", err)
				}
			}
		})
	}
	wg.Wait()
	if n := acks.Count(); n != writers*writes {
		t.Fatalf("%d writes acknowledged, want %d", n, writers*writes)
	}
	lines := strings.Split(strings.TrimSuffix(out.buf.String(), "\n"), "\n")
	if len(lines) != writers*writes*perWrite {
		t.Fatalf("%d lines, want %d", len(lines), writers*writes*perWrite)
	}
	next := map[string]int{} // shard -> the record number its next line must carry
	for i := 0; i < len(lines); i += perWrite {
		var first struct {
			Shard string `json:"shard"`
			N     int    `json:"n"`
		}
		if err := json.Unmarshal([]byte(lines[i]), &first); err != nil {
			t.Fatalf("line %d is torn: %q", i, lines[i])
		}
		for k := range perWrite {
			var r struct {
				Shard string `json:"shard"`
				N     int    `json:"n"`
			}
			if err := json.Unmarshal([]byte(lines[i+k]), &r); err != nil {
				t.Fatalf("line %d is torn: %q", i+k, lines[i+k])
			}
			if r.Shard != first.Shard || r.N != next[first.Shard] {
				t.Fatalf("line %d is %s #%d; want %s #%d: a write was interleaved", i+k, r.Shard, r.N, first.Shard, next[first.Shard])
			}
			next[first.Shard]++
		}
	}
}

// flakyWriter fails its first failures calls after writing part of what it was given.
type flakyWriter struct {
	mu       sync.Mutex
	buf      bytes.Buffer
	failures int
	calls    int
}

var errDiskFull = errors.New("no space left on device")

func (f *flakyWriter) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.failures > 0 {
		f.failures--
		n := len(p) / 2
		f.buf.Write(p[:n])
		return n, errDiskFull
	}
	return f.buf.Write(p)
}

func (f *flakyWriter) String() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.buf.String()
}

func TestFailedWritesAreRetriedWithoutTearingLines(t *testing.T) {
	fc := clock.NewFake(sinktest.Start)
	out := &flakyWriter{failures: 3}
	s := newSink(t, config.FileDefaults(), func(o *Options) { o.Stdout = out; o.Clock = fc })
	acks := sinktest.NewAckRecorder(t)
	recs := sinktest.Records(10, "s")
	errc := make(chan error, 1)
	go func() { errc <- s.Write(waitCtx(t), recs, acks.Done(0)) }()
	for range 3 {
		if err := fc.WaitForTimers(waitCtx(t), 1); err != nil {
			t.Fatal(err)
		}
		if acks.Acked(0) {
			t.Fatal("acknowledged before the write succeeded")
		}
		fc.Advance(time.Minute)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	for _, r := range recs {
		want.Write(r.Data)
		want.WriteByte('\n')
	}
	if out.String() != want.String() {
		t.Fatalf("output:\n%s\nwant:\n%s", out.String(), want.String())
	}
	if acks.Calls(0) != 1 {
		t.Fatalf("acknowledged %d times", acks.Calls(0))
	}
}

// A Write whose ctx ends partway leaves its rest to be written first by the next Write: no torn
// line, and the cut Write is not acknowledged.
func TestWriteCutShortIsCompletedByTheNext(t *testing.T) {
	fc := clock.NewFake(sinktest.Start)
	out := &flakyWriter{failures: 1}
	s := newSink(t, config.FileDefaults(), func(o *Options) { o.Stdout = out; o.Clock = fc })
	acks := sinktest.NewAckRecorder(t)
	recs := sinktest.Records(4, "s")
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { errc <- s.Write(ctx, recs[:2], acks.Done(0)) }()
	if err := fc.WaitForTimers(waitCtx(t), 1); err != nil { // the first try failed halfway
		t.Fatal(err)
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Write = %v, want context.Canceled", err)
	}
	if err := s.Write(waitCtx(t), recs[2:], acks.Done(1)); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("%s\n%s\n%s\n%s\n", recs[0].Data, recs[1].Data, recs[2].Data, recs[3].Data)
	if out.String() != want {
		t.Fatalf("output:\n%s\nwant:\n%s", out.String(), want)
	}
	if acks.Acked(0) || !acks.Acked(1) {
		t.Fatalf("acked: cut write %v, next write %v; want false, true", acks.Acked(0), acks.Acked(1))
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	cfg := config.FileDefaults()
	cfg.Format = "csv"
	if _, err := New(Options{Name: "dev", Config: cfg}); err == nil || !strings.Contains(err.Error(), `format "csv"`) {
		t.Fatalf("New = %v, want an error about the format", err)
	}
	cfg = config.FileDefaults()
	cfg.Path = filepath.Join(t.TempDir(), "missing-dir", "out")
	if _, err := New(Options{Name: "dev", Config: cfg}); err == nil || !strings.Contains(err.Error(), "open ") {
		t.Fatalf("New = %v, want an error opening the file", err)
	}
}

// N failed attempts of one Write are one outage of the file: one line when it begins, one when it
// ends, each attempt at debug level only.
func TestFailedWritesAreOneOutageInTheLog(t *testing.T) {
	const failures = 5
	fc := clock.NewFake(sinktest.Start)
	out := &flakyWriter{failures: failures}
	logs := &sinktest.LogBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := newSink(t, config.FileDefaults(), func(o *Options) { o.Stdout = out; o.Clock = fc; o.Logger = log })
	acks := sinktest.NewAckRecorder(t)
	errc := make(chan error, 1)
	go func() { errc <- s.Write(waitCtx(t), sinktest.Records(10, "s"), acks.Done(0)) }()
	for range failures {
		if err := fc.WaitForTimers(waitCtx(t), 1); err != nil {
			t.Fatal(err)
		}
		fc.Advance(time.Minute)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	count := func(level, msg string) int {
		n := 0
		for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatalf("not JSON: %q", l)
			}
			if m["level"] == level && m["msg"] == msg {
				n++
			}
		}
		return n
	}
	if n := count("WARN", outage.MsgFailing); n != 1 {
		t.Errorf("%d failed attempts logged %d %q lines, want 1; logged:\n%s", failures, n, outage.MsgFailing, logs)
	}
	if n := count("INFO", outage.MsgRecovered); n != 1 {
		t.Errorf("the write that succeeded logged %d %q lines, want 1; logged:\n%s", n, outage.MsgRecovered, logs)
	}
	if n := count("DEBUG", "file sink write failed; retrying"); n != failures {
		t.Errorf("%d failed attempts logged %d debug lines, want one each", failures, n)
	}
	if strings.Contains(logs.String(), `"level":"WARN","msg":"file sink`) {
		t.Errorf("a failed attempt was logged as a warning of its own:\n%s", logs)
	}
}
