package httpsink

import (
	"bytes"
	"compress/gzip" // the standard library's reader: an independent check of what klauspost wrote
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/shardhose/shardhose/config"
	"github.com/shardhose/shardhose/internal/clock"
	"github.com/shardhose/shardhose/record"
	"github.com/shardhose/shardhose/sinks/backup"
	"github.com/shardhose/shardhose/sinks/sinktest"
)

const (
	testAccessKey = "test-access-key-5f1c0a9e"
	testSourceARN = "arn:aws:kinesis:us-east-1:123456789012:stream/http-test"
	testTimeout   = 3 * time.Minute
)

var testStart = time.Date(2024, time.May, 6, 11, 0, 0, 0, time.UTC)

// signal is closed and replaced whenever something a test waits for may have changed: a timer,
// a request received, an object stored, a write acknowledged.
type signal struct {
	mu sync.Mutex
	ch chan struct{}
}

func newSignal() *signal { return &signal{ch: make(chan struct{})} }

func (s *signal) notify() {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.ch)
	s.ch = make(chan struct{})
}

func (s *signal) wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ch
}

// testClock is a fake clock that knows who made each pending timer, so that a test can advance
// time only while the sink is idle: waiting between attempts, or a backup writer waiting between
// PUTs; never while a request is in flight or a backup is being written.
type testClock struct {
	*clock.Fake
	sig    *signal
	mu     sync.Mutex
	timers []*trackedTimer
}

// Kinds of timer, by the function that made it.
const (
	timerWait     = iota // a backoff: retry.Do or clock.Sleep
	timerRequest         // a request's timeout: a request is in flight
	timerRound           // a backup round of backup.DeliverOrBackup: a backup is being written
	timerInterval        // the batcher's buffering interval: ignored
)

type trackedTimer struct {
	inner    clock.Timer
	c        *testClock
	kind     int
	deadline time.Time
	stopped  bool
}

func newTestClock(sig *signal) *testClock {
	return &testClock{Fake: clock.NewFake(testStart), sig: sig}
}

// timerKind classifies a timer by the functions on the stack that made it.
func timerKind() int {
	pc := make([]uintptr, 16)
	frames := runtime.CallersFrames(pc[:runtime.Callers(3, pc)])
	for {
		f, more := frames.Next()
		switch {
		case strings.Contains(f.Function, "internal/clock.WithTimeout"):
			// Who asked for the timeout decides its kind: a request, or a backup round.
			caller, _ := frames.Next()
			switch {
			case strings.Contains(caller.Function, "sinks/http."):
				return timerRequest
			case strings.Contains(caller.Function, "sinks/backup."):
				return timerRound
			}
		case strings.Contains(f.Function, "sinks/batcher.(*Batcher).armTimer"):
			return timerInterval
		}
		if !more {
			return timerWait
		}
	}
}

func (c *testClock) NewTimer(d time.Duration) clock.Timer {
	kind := timerKind()
	c.mu.Lock()
	t := &trackedTimer{c: c, kind: kind, deadline: c.Fake.Now().Add(d)}
	t.inner = c.Fake.NewTimer(d)
	c.timers = append(c.timers, t)
	c.mu.Unlock()
	c.sig.notify()
	return t
}

func (t *trackedTimer) C() <-chan time.Time { return t.inner.C() }

func (t *trackedTimer) Stop() bool {
	t.c.mu.Lock()
	t.stopped = true
	t.c.mu.Unlock()
	r := t.inner.Stop()
	t.c.sig.notify()
	return r
}

func (t *trackedTimer) Reset(d time.Duration) {
	t.c.mu.Lock()
	t.deadline, t.stopped = t.c.Fake.Now().Add(d), false
	t.c.mu.Unlock()
	t.inner.Reset(d)
	t.c.sig.notify()
}

// next reports how far ahead the earliest pending timer fires, when the sink is idle: no request
// in flight, no timer that fired still being reacted to, and some goroutine waiting out a
// backoff. Every timer of the sink and the backup is stopped by its owner once it is done with
// it (clock.Sleep, the request timeout and the backup round all stop theirs), so a timer that
// fired but is not stopped means its goroutine is still at work (a goroutine woken by a timer
// may not have run yet, and its channel already looks empty). A backup round's timer alone
// means a backup is being written, which must not be cut short.
func (c *testClock) next() (time.Duration, bool) {
	now := c.Fake.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.timers = slices.DeleteFunc(c.timers, func(t *trackedTimer) bool {
		return t.stopped || (t.kind == timerInterval && !t.deadline.After(now))
	})
	var earliest time.Time
	waiting := false
	for _, t := range c.timers {
		switch {
		case !t.deadline.After(now):
			return 0, false // fired; its goroutine has not finished with it
		case t.kind == timerRequest:
			return 0, false
		case t.kind == timerInterval:
			continue
		case t.kind == timerWait:
			waiting = true
		}
		if earliest.IsZero() || t.deadline.Before(earliest) {
			earliest = t.deadline
		}
	}
	if !waiting {
		return 0, false
	}
	return earliest.Sub(now), true
}

// drive moves the clock from wait to wait (never while a request is in flight or a backup is
// being written) until cond holds.
func (c *testClock) drive(ctx context.Context, t *testing.T, what string, cond func() bool) {
	t.Helper()
	for {
		ch := c.sig.wait()
		if cond() {
			return
		}
		if d, ok := c.next(); ok {
			c.Advance(d)
			continue
		}
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("waiting for %s at %s: %v", what, c.Now().Sub(testStart), ctx.Err())
		}
	}
}

// requestBody is Firehose's request body; decoding it with DisallowUnknownFields checks that the
// sink sends nothing else.
type requestBody struct {
	RequestID string `json:"requestId"`
	Timestamp int64  `json:"timestamp"`
	Records   []struct {
		Data []byte `json:"data"`
	} `json:"records"`
}

// received is one request as the receiver saw it.
type received struct {
	header http.Header
	raw    []byte // the body as sent
	body   requestBody
}

func (r received) data() []string {
	out := make([]string, len(r.body.Records))
	for i, rec := range r.body.Records {
		out[i] = string(rec.Data)
	}
	return out
}

// reply is what the receiver answers: a status and a body; the zero reply is Firehose's success.
type reply struct {
	status   int
	body     string // "" with status 200: {"requestId":"<id>","timestamp":<ms>}
	location string // for redirects
	hang     bool   // answer nothing until the client gives up
}

// receiver is an HTTP endpoint that checks every request against Firehose's protocol and
// answers as the test scripts it.
type receiver struct {
	t        *testing.T
	sig      *signal
	srv      *httptest.Server
	gzip     bool
	key      string // expected access key ("" = no header)
	arn      string // expected source ARN
	attrs    string // expected common attributes header
	mu       sync.Mutex
	reqs     []received
	script   func(n int, r received) reply // n counts from 0
	diverted int                           // requests that reached /elsewhere
}

func newReceiver(t *testing.T, sig *signal) *receiver {
	r := &receiver{t: t, sig: sig, key: testAccessKey, arn: testSourceARN, attrs: `{"commonAttributes":{"env":"test","team":"data"}}`}
	mux := http.NewServeMux()
	mux.HandleFunc("/ingest", r.handle)
	mux.HandleFunc("/elsewhere", func(w http.ResponseWriter, _ *http.Request) {
		r.mu.Lock()
		r.diverted++
		r.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	})
	r.srv = httptest.NewServer(mux)
	t.Cleanup(r.srv.Close)
	return r
}

var uuidV8 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func (r *receiver) handle(w http.ResponseWriter, req *http.Request) {
	t := r.t
	raw, err := io.ReadAll(req.Body)
	if err != nil {
		t.Errorf("receiver: read body: %v", err)
		return
	}
	h := req.Header
	want := map[string]string{
		"Content-Type":         "application/json",
		HeaderProtocolVersion:  "1.0",
		HeaderSourceARN:        r.arn,
		HeaderCommonAttributes: r.attrs,
	}
	if r.key != "" {
		want[HeaderAccessKey] = r.key
	} else {
		want[HeaderAccessKey] = ""
	}
	if r.gzip {
		want["Content-Encoding"] = "gzip"
	} else {
		want["Content-Encoding"] = ""
	}
	for k, v := range want {
		if got := h.Get(k); got != v {
			t.Errorf("receiver: header %s = %q, want %q", k, got, v)
		}
		if len(h.Values(k)) > 1 {
			t.Errorf("receiver: header %s sent %d times", k, len(h.Values(k)))
		}
	}
	if req.Method != http.MethodPost || req.URL.RawQuery != "token=q" {
		t.Errorf("receiver: %s %s, want POST /ingest?token=q", req.Method, req.URL)
	}
	id := h.Get(HeaderRequestID)
	if !uuidV8.MatchString(id) {
		t.Errorf("receiver: request id %q is not a UUID", id)
	}
	plain := raw
	if r.gzip {
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			t.Errorf("receiver: body is not gzip: %v", err)
			return
		}
		if plain, err = io.ReadAll(zr); err != nil {
			t.Errorf("receiver: gunzip body: %v", err)
			return
		}
	}
	var body requestBody
	dec := json.NewDecoder(bytes.NewReader(plain))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		t.Errorf("receiver: body is not Firehose's request format: %v\n%.200s", err, plain)
	}
	if dec.More() {
		t.Error("receiver: more after the body's JSON object")
	}
	switch {
	case body.RequestID != id:
		t.Errorf("receiver: body's requestId %q, header's %q", body.RequestID, id)
	case len(body.Records) < 1 || len(body.Records) > MaxRecordsPerRequest:
		t.Errorf("receiver: %d records, want 1 to %d", len(body.Records), MaxRecordsPerRequest)
	case len(plain) > MaxBodyBytes:
		t.Errorf("receiver: body of %d bytes, over %d", len(plain), MaxBodyBytes)
	case body.Timestamp < testStart.UnixMilli():
		t.Errorf("receiver: timestamp %d is before the test began", body.Timestamp)
	}
	for i, rec := range body.Records {
		if len(rec.Data) > MaxRecordBytes {
			t.Errorf("receiver: record %d has %d bytes", i, len(rec.Data))
		}
	}

	r.mu.Lock()
	n := len(r.reqs)
	got := received{header: h.Clone(), raw: raw, body: body}
	r.reqs = append(r.reqs, got)
	script := r.script
	r.mu.Unlock()
	r.sig.notify()

	rep := reply{}
	if script != nil {
		rep = script(n, got)
	}
	switch {
	case rep.hang:
		<-req.Context().Done()
		return
	case rep.location != "":
		w.Header().Set("Location", rep.location)
	}
	if rep.status == 0 {
		rep.status = http.StatusOK
	}
	if rep.body == "" && rep.status == http.StatusOK {
		rep.body = fmt.Sprintf(`{"requestId":%q,"timestamp":%d}`, id, time.Now().UnixMilli())
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(rep.status)
	_, _ = io.WriteString(w, rep.body)
}

func (r *receiver) setScript(f func(n int, r received) reply) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.script = f
}

func (r *receiver) requests() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.reqs)
}

func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.reqs)
}

// fakeS3 is an in-memory S3 for the backup writer; it fails while failing is set.
type fakeS3 struct {
	sig     *signal
	mu      sync.Mutex
	objects map[string][]byte
	calls   int
	failing bool
}

var errS3Down = errors.New("injected S3 failure")

func (f *fakeS3) PutObject(ctx context.Context, in *awss3.PutObjectInput, _ ...func(*awss3.Options)) (*awss3.PutObjectOutput, error) {
	body, err := io.ReadAll(in.Body)
	if err != nil {
		return nil, err
	}
	defer f.sig.notify()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.failing {
		return nil, errS3Down
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.objects[aws.ToString(in.Key)] = body
	return &awss3.PutObjectOutput{}, nil
}

func (f *fakeS3) setFailing(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failing = on
}

func (f *fakeS3) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// stored returns the objects whose keys contain part, by key.
func (f *fakeS3) stored(part string) map[string][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string][]byte{}
	for k, v := range f.objects {
		if strings.Contains(k, part) {
			out[k] = v
		}
	}
	return out
}

// errorRecords reads every error record stored under http-endpoint-failed/.
func (f *fakeS3) errorRecords(t *testing.T) []backup.ErrorRecord {
	t.Helper()
	objs := f.stored(backup.FolderHTTPEndpointFailed)
	var out []backup.ErrorRecord
	for _, k := range slices.Sorted(maps.Keys(objs)) {
		recs, err := backup.ReadErrorRecords(k, objs[k])
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, recs...)
	}
	return out
}

// hookRecorder counts the hooks' calls.
type hookRecorder struct {
	mu        sync.Mutex
	delivered []int // records per delivered request
	failed    int
}

func (h *hookRecorder) OnDelivered(sink string, records, bytes int, took time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.delivered = append(h.delivered, records)
}

func (h *hookRecorder) OnDeliveryFailed(sink string, records int, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.failed++
}

// env is one sink under test with its endpoint, backup bucket and clock.
type env struct {
	t     *testing.T
	ctx   context.Context
	sig   *signal
	clk   *testClock
	recv  *receiver
	s3    *fakeS3
	sink  *Sink
	logs  *sinktest.LogBuffer
	acks  *sinktest.AckRecorder
	hooks *hookRecorder
	cfg   config.HTTPSink
	next  int // next write id
}

func testConfig(url string) config.HTTPSink {
	c := config.HTTPDefaults()
	c.URL = url + "/ingest?token=q"
	c.Name = "collector"
	c.AccessKey = testAccessKey
	c.CommonAttributes = map[string]string{"team": "data", "env": "test"}
	c.BufferingHints.IntervalInSeconds = 900 // batches close on Flush or size, not by time
	c.RetryDurationInSeconds = 60
	c.RequestTimeout = testTimeout
	c.S3Backup.Bucket = "http-backup"
	return c
}

// newEnv starts a sink against a fresh receiver and fake S3. Every test fails if the access key
// shows up in the logs.
func newEnv(t *testing.T, mod func(*config.HTTPSink)) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	sig := newSignal()
	e := &env{t: t, ctx: ctx, sig: sig, clk: newTestClock(sig), recv: newReceiver(t, sig), logs: &sinktest.LogBuffer{}, acks: sinktest.NewAckRecorder(t), hooks: &hookRecorder{}}
	e.s3 = &fakeS3{sig: sig, objects: map[string][]byte{}}
	e.cfg = testConfig(e.recv.srv.URL)
	if mod != nil {
		mod(&e.cfg)
	}
	e.recv.gzip = e.cfg.ContentEncoding == "GZIP"
	log := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	w, err := backup.NewS3Writer(backup.S3Options{
		Client: e.s3, Bucket: e.cfg.S3Backup.Bucket, Prefix: e.cfg.S3Backup.Prefix, Compression: e.cfg.S3Backup.Compression,
		SinkName: "http-sink", Clock: e.clk, Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.sink, err = New(Options{Name: "http-sink", Config: e.cfg, SourceARN: testSourceARN, Backup: w, HTTPClient: e.recv.srv.Client(), Clock: e.clk, Logger: log, Hooks: []any{e.hooks}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ended, cancel := context.WithCancel(context.Background())
		cancel() // give up on anything left: the test is over
		_ = e.sink.Close(ended)
		if strings.Contains(e.logs.String(), testAccessKey) {
			t.Errorf("the access key appears in the logs:\n%s", e.logs.String())
		}
	})
	return e
}

// write hands recs to the sink and returns the write's id for e.acks.
func (e *env) write(recs []record.Record) int {
	e.t.Helper()
	id := e.next
	e.next++
	ack := e.acks.Done(id)
	if err := e.sink.Write(e.ctx, recs, func() { ack(); e.sig.notify() }); err != nil {
		e.t.Fatalf("write %d: %v", id, err)
	}
	return id
}

// flush starts a Flush, which seals the open batch; the test drives the clock meanwhile.
func (e *env) flush() <-chan error {
	out := make(chan error, 1)
	go func() { out <- e.sink.Flush(e.ctx) }()
	return out
}

// deliverAll writes recs, flushes, and drives the clock until the write is acknowledged.
func (e *env) deliverAll(recs []record.Record) int {
	e.t.Helper()
	id := e.write(recs)
	flushed := e.flush()
	e.clk.drive(e.ctx, e.t, fmt.Sprintf("acknowledgement of write %d", id), func() bool { return e.acks.Acked(id) })
	if err := <-flushed; err != nil {
		e.t.Fatalf("flush: %v", err)
	}
	return id
}
