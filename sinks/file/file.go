// Package file is a sink for development and debugging: it writes records one per line to a file
// or to standard output, either as they are (raw) or as JSON envelopes carrying each record's
// metadata. A Write is acknowledged once its lines are written (and, for a file with fsync on,
// on disk).
package file

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"time"

	"github.com/shardhose/shardhose/config"
	"github.com/shardhose/shardhose/hooks"
	"github.com/shardhose/shardhose/internal/clock"
	"github.com/shardhose/shardhose/internal/fsutil"
	"github.com/shardhose/shardhose/internal/outage"
	"github.com/shardhose/shardhose/internal/retry"
	"github.com/shardhose/shardhose/record"
	"github.com/shardhose/shardhose/sinks"
)

// Formats of config.FileSink.Format.
const (
	FormatRaw  = "raw"
	FormatJSON = "json"
)

// writeRetry is the backoff between attempts to write (or fsync) after an error such as a full
// disk. Writes are retried until they succeed or the Write's context ends.
var writeRetry = retry.Policy{Initial: 100 * time.Millisecond, Max: 10 * time.Second, Multiplier: 2, Jitter: 0.15}

// Options configures a Sink. Name and Config are required; the rest have defaults.
type Options struct {
	// Name is the sink's configured name, in logs and hooks.
	Name string
	// Config is the sink's section, with config.FileDefaults already applied.
	Config config.FileSink
	// Stdout is where path "-" writes; nil means os.Stdout.
	Stdout io.Writer
	// Clock times the waits between retries of a failed write; nil means clock.Real().
	Clock clock.Clock
	// Logger receives a line per failed write; nil discards.
	Logger *slog.Logger
	Hooks  hooks.Set

	// sync flushes the file (and its directory) to disk; nil means fsutil.Sync. Tests inject
	// fsync failures through it.
	sync fsutil.SyncFunc
}

// Sink writes records to a file or standard output, one line per record. It implements
// sinks.Sink.
//
// Format raw writes each record's data followed by "\n", as it is (data holding a newline makes
// the output ambiguous). Format json writes one object per line:
//
//	{"shardId":"shardId-000000000000","partitionKey":"pk","sequenceNumber":"4960...","subSequenceNumber":0,
//	 "approximateArrivalTimestamp":1715000000.123,"data":{"the":"record"}}
//
// with approximateArrivalTimestamp in Unix seconds (millisecond fractions; 0 when unknown) and
// data the record itself when it is valid JSON (compacted onto the line), or else
// "dataBase64":"<base64 of the data>" in place of data.
//
// Writes are serialized by one lock, so the lines of one Write are contiguous and in order; lines
// of different Writes follow the order in which the Writes took the lock. A file is opened for
// appending (created with mode 0644 if missing), so a restart adds to it.
//
// Acknowledgement: done is called after the Write's lines are written, and, for a file with fsync
// on, after the file is synced (see Failure); before Write returns, from its goroutine. There is
// no buffering across Writes, so Flush has nothing to wait for beyond a Write cut short.
//
// Failure: a failed write is retried (waits from 100 ms, doubling, at most 10 s) until it
// succeeds or the Write's ctx ends. If ctx ends partway through the Write's lines, the rest of
// them is kept and written before anything else, so the output never holds a torn line; the
// Write is not acknowledged (its records are delivered again later: a duplicate at worst).
//
// A failed fsync is not retried on the same file: Linux may have dropped the dirty pages and
// cleared the error, so a later fsync that succeeds would prove nothing. The file is set aside
// as <path>.fsync-failed-<UTC time> (what it held before the failure stays there), a new file is
// created at path (its directory synced), and everything written since the last good fsync is
// written to it and synced; only then is the Write acknowledged. That is retried like a write.
// Creating the file (in New, or to replace one) syncs its directory, so its name is on disk too.
//
// All methods are safe for concurrent use.
type Sink struct {
	name   string
	path   string // "-" for standard output
	json   bool
	fsync  bool
	out    io.Writer
	file   *os.File // nil when writing to standard output
	clock  clock.Clock
	log    *slog.Logger
	health *outage.Reporter // the file's outages: failed writes and rewrites, one outage at a time
	hooks  hooks.Set
	policy retry.Policy
	sync   fsutil.SyncFunc

	// lock is a one-token semaphore rather than a mutex, so that waiting for it can end with ctx.
	// It guards the fields below and every write to out.
	lock   chan struct{}
	tail   []byte // the unwritten rest of a Write cut short; written before anything else
	closed bool
	// With fsync: the bytes written to the file since its last good fsync, which a failed fsync
	// makes us write again to a new file; whether the file's last fsync failed (nothing more is
	// written to it); and whether it holds lines that were synced (or were there before we
	// opened it), which must be kept when it is replaced.
	unsynced []byte
	broken   bool
	keep     bool
}

var _ sinks.Sink = (*Sink)(nil)

// New checks opts and opens the file (for appending, creating it if missing).
func New(opts Options) (*Sink, error) {
	cfg := opts.Config
	var problems []error
	if opts.Name == "" {
		problems = append(problems, errors.New("name: must be set"))
	}
	if cfg.Path == "" {
		problems = append(problems, fmt.Errorf("path: must be set (%q for standard output)", config.FileSinkStdout))
	}
	if cfg.Format != FormatRaw && cfg.Format != FormatJSON {
		problems = append(problems, fmt.Errorf("format %q: use %s or %s", cfg.Format, FormatRaw, FormatJSON))
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("file sink %q: %w", opts.Name, errors.Join(problems...))
	}
	s := &Sink{
		name:   opts.Name,
		path:   cfg.Path,
		json:   cfg.Format == FormatJSON,
		clock:  opts.Clock,
		log:    opts.Logger,
		hooks:  opts.Hooks,
		policy: writeRetry,
		sync:   opts.sync,
		lock:   make(chan struct{}, 1),
	}
	if s.sync == nil {
		s.sync = fsutil.Sync
	}
	if cfg.Path == config.FileSinkStdout {
		s.out = opts.Stdout
		if s.out == nil {
			s.out = os.Stdout
		}
	} else {
		f, created, err := fsutil.OpenAppend(cfg.Path, 0o644)
		if err != nil {
			return nil, fmt.Errorf("file sink %q: open %s: %w", opts.Name, cfg.Path, err)
		}
		s.file, s.out, s.fsync, s.keep = f, f, cfg.Fsync, !created
		if created && s.fsync {
			if err := fsutil.SyncDir(cfg.Path, s.sync); err != nil {
				f.Close()
				return nil, fmt.Errorf("file sink %q: %w", opts.Name, err)
			}
		}
	}
	if s.clock == nil {
		s.clock = clock.Real()
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("sink", s.name, "path", s.path)
	s.health = outage.New(outage.Options{Dependency: "file", Resource: s.path, Logger: s.log, Clock: s.clock})
	return s, nil
}

// Name returns the sink's configured name.
func (s *Sink) Name() string { return s.name }

// Write writes the records' lines, contiguous and in order, and calls done once they are written
// (and synced, with fsync). It waits for Writes ahead of it, and returns early only with ctx's
// error or sinks.ErrClosed; done is then not called.
func (s *Sink) Write(ctx context.Context, records []record.Record, done func()) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	started := s.clock.Now()
	var buf bytes.Buffer
	for i := range records {
		if err := s.encode(&buf, &records[i]); err != nil {
			// Encoding into memory does not fail for these types; if it ever does, the records
			// cannot be written and must not be acknowledged.
			return fmt.Errorf("file sink %s: encode record %d of shard %s at %s: %w", s.name, i, records[i].ShardID, records[i].Position(), err)
		}
	}
	if err := s.acquire(ctx); err != nil {
		return err
	}
	if s.closed {
		s.release()
		return sinks.ErrClosed
	}
	err := s.writeLocked(ctx, buf.Bytes(), len(records))
	s.release()
	if err != nil {
		return err
	}
	hooks.Each(s.hooks, func(h hooks.Delivered) { h.OnDelivered(s.name, len(records), buf.Len(), s.clock.Now().Sub(started)) })
	if done != nil {
		done()
	}
	return nil
}

// Flush writes what a Write cut short left unwritten, if anything, and syncs the file (with
// fsync). It returns ctx's error if ctx ends first.
func (s *Sink) Flush(ctx context.Context) error {
	if err := s.acquire(ctx); err != nil {
		return fmt.Errorf("flush file sink %s: %w", s.name, err)
	}
	defer s.release()
	if s.closed {
		return nil
	}
	return s.writeLocked(ctx, nil, 0)
}

// Close flushes like Flush, then closes the file (standard output stays open). After Close,
// Write returns sinks.ErrClosed. If ctx ends first, the rest of a Write cut short is lost (that
// Write was never acknowledged) and Close returns ctx's error.
func (s *Sink) Close(ctx context.Context) error {
	if err := s.acquire(ctx); err != nil {
		return fmt.Errorf("close file sink %s: %w", s.name, err)
	}
	defer s.release()
	if s.closed {
		return nil
	}
	s.closed = true
	err := s.writeLocked(ctx, nil, 0)
	if s.file != nil {
		// A file left broken holds nothing acknowledged: its close error says nothing more.
		if cerr := s.file.Close(); cerr != nil && err == nil && !s.broken {
			err = fmt.Errorf("close file sink %s: close %s: %w", s.name, s.path, cerr)
		}
	}
	return err
}

func (s *Sink) acquire(ctx context.Context) error {
	select {
	case s.lock <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Sink) release() { <-s.lock }

// writeLocked writes the tail left by an earlier Write, then p (the lines of records records),
// then syncs the file when fsync is on, retrying each step until it succeeds or ctx ends. If ctx
// ends after part of p was written, the rest of p becomes the tail.
//
// A failed fsync is not retried: Linux may have dropped the dirty pages and cleared the error,
// so a later fsync that succeeds proves nothing. The file is replaced instead (replaceFile) and
// everything written since its last good fsync is written to the new file and synced there.
func (s *Sink) writeLocked(ctx context.Context, p []byte, records int) error {
	if s.broken {
		if err := s.replaceFileRetrying(ctx, records); err != nil {
			return err
		}
	}
	if len(s.tail) > 0 {
		n, err := s.writeAll(ctx, s.tail, 0)
		s.wrote(s.tail[:n])
		s.tail = s.tail[n:]
		if err != nil {
			return err
		}
		s.tail = nil
	}
	if len(p) > 0 {
		n, err := s.writeAll(ctx, p, records)
		s.wrote(p[:n])
		if err != nil {
			if n > 0 {
				s.tail = bytes.Clone(p[n:])
			}
			return err
		}
	}
	if !s.fsync {
		return nil
	}
	if err := s.sync(s.file); err != nil {
		s.broken = true
		s.log.Warn("file sink fsync failed; writing what was not yet on disk again, to a new file", "records", records, "bytes", len(s.unsynced), "error", err)
		hooks.Each(s.hooks, func(h hooks.DeliveryFailed) { h.OnDeliveryFailed(s.name, records, err) })
		return s.replaceFileRetrying(ctx, records)
	}
	s.synced()
	return nil
}

// wrote notes bytes written to the file, which are not on disk until the next good fsync.
func (s *Sink) wrote(b []byte) {
	if s.fsync {
		s.unsynced = append(s.unsynced, b...)
	}
}

// synced notes a good fsync: what was written is on disk, and the file must be kept.
func (s *Sink) synced() {
	if len(s.unsynced) > 0 {
		s.keep = true
	}
	s.unsynced = s.unsynced[:0]
}

// replaceFileRetrying replaces the file whose fsync failed (replaceFile), retrying until that
// succeeds or ctx ends.
func (s *Sink) replaceFileRetrying(ctx context.Context, records int) error {
	replace := func(context.Context, int) error { return s.replaceFile() }
	if _, err := retry.Do(ctx, s.clock, s.policy, s.health.Track(replace, "records", records), s.retrying("rewrite after a failed fsync", records)); err != nil {
		return fmt.Errorf("file sink %s: %w", s.name, err)
	}
	return nil
}

// replaceFile closes the file whose fsync failed and starts a new one at the same path: the old
// file is set aside as <path>.fsync-failed-<time> when it holds lines that were on disk (they stay
// there), or removed when it holds none. The new file is created, its directory synced, and
// everything written since the last good fsync written to it and synced.
func (s *Sink) replaceFile() error {
	if s.file != nil {
		_ = s.file.Close() // its unsynced data is written again below; a close error adds nothing
		s.file = nil
	}
	if s.keep {
		aside := s.asideName()
		if err := os.Rename(s.path, aside); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("set %s aside after a failed fsync: %w", s.path, err)
		}
		s.log.Warn("file sink set its file aside after a failed fsync; it goes on in a new file", "aside", aside)
		s.keep = false
	} else if err := os.Remove(s.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s after a failed fsync: %w", s.path, err)
	}
	f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("create %s after a failed fsync: %w", s.path, err)
	}
	s.file, s.out = f, f
	if err := fsutil.SyncDir(s.path, s.sync); err != nil {
		return err
	}
	if n, err := f.Write(s.unsynced); err != nil || n < len(s.unsynced) {
		return fmt.Errorf("write %d bytes again to %s: %w", len(s.unsynced), s.path, cmp.Or(err, io.ErrShortWrite))
	}
	if err := s.sync(f); err != nil {
		return fmt.Errorf("fsync %s: %w", s.path, err)
	}
	s.broken = false
	s.synced()
	return nil
}

// asideName is a name for the file set aside that no file has yet.
func (s *Sink) asideName() string {
	base := s.path + ".fsync-failed-" + s.clock.Now().UTC().Format("20060102T150405.000Z")
	name := base
	for i := 2; ; i++ {
		if _, err := os.Lstat(name); errors.Is(err, fs.ErrNotExist) {
			return name
		}
		name = fmt.Sprintf("%s-%d", base, i)
	}
}

// writeAll writes p, going on after short or failed writes until all of it is written or ctx
// ends; it returns how much was written. records is how many records p holds lines of, for hooks.
func (s *Sink) writeAll(ctx context.Context, p []byte, records int) (int, error) {
	written := 0
	write := func(context.Context, int) error {
		n, err := s.out.Write(p[written:])
		written += n
		if err == nil && written < len(p) {
			err = io.ErrShortWrite
		}
		if err != nil {
			return fmt.Errorf("write %s: %w", s.path, err)
		}
		return nil
	}
	if _, err := retry.Do(ctx, s.clock, s.policy, s.health.Track(write, "records", records), s.retrying("write", records)); err != nil {
		return written, fmt.Errorf("file sink %s: %d of %d bytes written: %w", s.name, written, len(p), err)
	}
	return written, nil
}

// retrying logs each failed attempt at debug level; the outage it belongs to is reported by
// s.health, once when it begins, at a bounded rate while it lasts and once when it ends.
func (s *Sink) retrying(what string, records int) func(attempt int, err error, wait time.Duration) {
	return func(attempt int, err error, wait time.Duration) {
		s.log.Debug("file sink "+what+" failed; retrying", "attempt", attempt, "records", records, "retry_in", wait, "error", err)
		hooks.Each(s.hooks, func(h hooks.DeliveryFailed) { h.OnDeliveryFailed(s.name, records, err) })
	}
}

// envelope is the json format's line for one record. Exactly one of Data and DataBase64 is set.
type envelope struct {
	ShardID                     string          `json:"shardId"`
	PartitionKey                string          `json:"partitionKey"`
	SequenceNumber              string          `json:"sequenceNumber"`
	SubSequenceNumber           int64           `json:"subSequenceNumber"`
	ApproximateArrivalTimestamp float64         `json:"approximateArrivalTimestamp"`
	Data                        json.RawMessage `json:"data,omitempty"`
	DataBase64                  *string         `json:"dataBase64,omitempty"`
}

// encode appends r's line to buf.
func (s *Sink) encode(buf *bytes.Buffer, r *record.Record) error {
	if !s.json {
		buf.Write(r.Data)
		buf.WriteByte('\n')
		return nil
	}
	e := envelope{
		ShardID:           r.ShardID,
		PartitionKey:      r.PartitionKey,
		SequenceNumber:    r.SequenceNumber,
		SubSequenceNumber: r.SubSequenceNumber,
	}
	if t := r.ApproximateArrivalTimestamp; !t.IsZero() {
		e.ApproximateArrivalTimestamp = float64(t.UnixMilli()) / 1000
	}
	if json.Valid(r.Data) {
		e.Data = r.Data // the encoder compacts it onto one line
	} else {
		b64 := base64.StdEncoding.EncodeToString(r.Data)
		e.DataBase64 = &b64
	}
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	return enc.Encode(e) // Encode ends the line with "\n"
}
