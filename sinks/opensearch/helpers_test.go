package opensearch

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/shardhose/shardhose/config"
	"github.com/shardhose/shardhose/internal/clock"
	"github.com/shardhose/shardhose/record"
	"github.com/shardhose/shardhose/sinks/backup"
	"github.com/shardhose/shardhose/sinks/opensearch/bulktest"
	"github.com/shardhose/shardhose/sinks/sinktest"
)

// fakeBackup is a backup.Writer in memory. While failing, a call waits, as an S3Writer retrying
// an unreachable bucket does, until the backup is healed (then it stores) or ctx ends.
type fakeBackup struct {
	mu      sync.Mutex
	failing bool
	errs    []storedErrors
	raw     [][]record.Record
	calls   int
	changed chan struct{}
	// probe, when set, is called at the start of every call; probed[i] is its result at call i+1.
	// Tests read other state through it at the moment of a call, which a test goroutine woken
	// later cannot do: with the clock driven, more rounds may have passed by then.
	probe  func() int
	probed []int
}

type storedErrors struct {
	folder string
	at     int // index of the call
	recs   []backup.ErrorRecord
}

var _ backup.Writer = (*fakeBackup)(nil)

func newFakeBackup() *fakeBackup { return &fakeBackup{changed: make(chan struct{})} }

func (f *fakeBackup) setFailing(v bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failing = v
	f.wakeLocked()
}

func (f *fakeBackup) wakeLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

// wait blocks while the backup is failing; it returns ctx's error if ctx ends first. f.mu is
// held on return when err is nil.
func (f *fakeBackup) wait(ctx context.Context) error {
	f.mu.Lock()
	f.calls++
	if f.probe != nil {
		f.probed = append(f.probed, f.probe())
	}
	f.wakeLocked()
	for f.failing {
		ch := f.changed
		f.mu.Unlock()
		select {
		case <-ctx.Done():
			return fmt.Errorf("fake backup unreachable: %w", context.Cause(ctx))
		case <-ch:
		}
		f.mu.Lock()
	}
	return nil
}

func (f *fakeBackup) WriteErrors(ctx context.Context, folder string, recs []backup.ErrorRecord) error {
	if err := f.wait(ctx); err != nil {
		return err
	}
	defer f.mu.Unlock()
	f.errs = append(f.errs, storedErrors{folder: folder, at: f.calls, recs: append([]backup.ErrorRecord(nil), recs...)})
	f.wakeLocked()
	return nil
}

func (f *fakeBackup) WriteRaw(ctx context.Context, recs []record.Record) error {
	if err := f.wait(ctx); err != nil {
		return err
	}
	defer f.mu.Unlock()
	f.raw = append(f.raw, append([]record.Record(nil), recs...))
	f.wakeLocked()
	return nil
}

// errorRecords returns every stored error record, checking they went to OpenSearch's folder.
func (f *fakeBackup) errorRecords(t *testing.T) []backup.ErrorRecord {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []backup.ErrorRecord
	for _, s := range f.errs {
		if s.folder != backup.FolderOpenSearchFailed {
			t.Errorf("error records went to folder %q, want %q", s.folder, backup.FolderOpenSearchFailed)
		}
		out = append(out, s.recs...)
	}
	return out
}

func (f *fakeBackup) rawRecords() []record.Record {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []record.Record
	for _, r := range f.raw {
		out = append(out, r...)
	}
	return out
}

func (f *fakeBackup) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// probedAt returns the probe's result at call n (from 1).
func (f *fakeBackup) probedAt(n int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.probed[n-1]
}

// waitCalls blocks until the backup has been called n times.
func (f *fakeBackup) waitCalls(ctx context.Context, n int) error {
	for {
		f.mu.Lock()
		got, ch := f.calls, f.changed
		f.mu.Unlock()
		if got >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %d backup calls (%d so far): %w", n, got, ctx.Err())
		case <-ch:
		}
	}
}

// start is the fake clock's start: the day after sinktest.Start, so records carry arrival times
// older than "now" as they would in a stream being read.
var start = sinktest.Start.Add(24 * time.Hour)

// testConfig is a valid section for srv: index logs, daily rotation, the backup bucket set.
func testConfig(srv *bulktest.Server) config.OpenSearchSink {
	cfg := config.OpenSearchDefaults()
	cfg.Endpoints = []string{srv.URL}
	cfg.Index = "logs"
	cfg.S3Backup.Bucket = "backup"
	return cfg
}

type env struct {
	sink     *Sink
	clock    *clock.Fake
	backup   *fakeBackup
	srv      *bulktest.Server
	interval time.Duration
	drive    bool // move the clock for retries once the batch is sealed
	driving  bool
}

// newEnv starts a sink on srv with a fake clock and a fake backup; mod changes the options.
func newEnv(t *testing.T, srv *bulktest.Server, mod func(*Options)) *env {
	t.Helper()
	fb := newFakeBackup()
	e := newEnvWith(t, srv, clock.NewFake(start), fb, mod)
	e.backup = fb
	return e
}

// newEnvWith starts a sink on srv with the given clock and backup writer.
func newEnvWith(t *testing.T, srv *bulktest.Server, clk *clock.Fake, w backup.Writer, mod func(*Options)) *env {
	t.Helper()
	e := &env{clock: clk, srv: srv}
	opts := Options{Name: "search", Config: testConfig(srv), Backup: w, Clock: clk, Logger: testLogger(t)}
	if mod != nil {
		mod(&opts)
	}
	s, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	e.sink = s
	e.interval = time.Duration(opts.Config.BufferingHints.IntervalInSeconds) * time.Second
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		go drive(ctx, e.clock) // let retries still waiting end
		_ = s.Close(ctx)
	})
	return e
}

func configBackup(bucket string) config.OpenSearchBackup {
	return config.OpenSearchBackup{Bucket: bucket, Prefix: "os-it/", Compression: "GZIP"}
}

// drive moves the fake clock whenever something waits on it, until ctx ends, so retries and
// backup rounds happen at once in real time.
func drive(ctx context.Context, c *clock.Fake) {
	for {
		if err := c.WaitForTimers(ctx, 1); err != nil {
			return
		}
		c.Advance(5 * time.Second)
	}
}

// seal moves the clock by the buffering interval, so the open batch is sealed by its timer as
// in production, and from then on (with drive set) keeps moving it whenever something waits on
// it. Starting to drive only once the batcher's timer has fired keeps fake time still while a
// request is in flight: every timer left is one the delivery waits on.
func (e *env) seal(t *testing.T) {
	e.clock.Advance(e.interval)
	if !e.drive || e.driving {
		return
	}
	e.driving = true
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); drive(ctx, e.clock) }()
	t.Cleanup(func() { cancel(); <-done })
}

// writeAndFlush writes recs as one Write, lets the interval seal the batch, and waits for the
// acknowledgement.
func (e *env) writeAndFlush(t *testing.T, recs []record.Record) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	acks := sinktest.NewAckRecorder(t)
	if err := e.sink.Write(ctx, recs, acks.Done(1)); err != nil {
		t.Fatalf("Write: %v", err)
	}
	e.seal(t)
	if err := e.sink.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if !acks.Acked(1) {
		t.Fatal("Flush returned but the write is not acknowledged")
	}
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() && os.Getenv("SHARDHOSE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// ids returns the _ids of a request's items.
func ids(r bulktest.Request) []string {
	out := make([]string, len(r.Items))
	for i, it := range r.Items {
		out[i] = it.ID
	}
	return out
}

// hookRecorder records the delivery hooks.
type hookRecorder struct {
	mu        sync.Mutex
	delivered int
	failed    int
}

func (h *hookRecorder) OnDelivered(sink string, records, bytes int, took time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.delivered += records
}

func (h *hookRecorder) OnDeliveryFailed(sink string, records int, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.failed += records
}

type configSection = config.OpenSearchSink

func configAuth(typ, user, password string) config.OpenSearchAuth {
	return config.OpenSearchAuth{Type: typ, Username: user, Password: password, Service: "es"}
}
