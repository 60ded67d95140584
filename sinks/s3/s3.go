// Package s3 is a Firehose-style Amazon S3 sink: it buffers records by size and interval,
// compresses them as they arrive, and writes each buffer as one object under Firehose's key
// layout. A record is acknowledged only after the object holding it was written; a failed write is
// retried until it succeeds or the sink is closed, so nothing is ever dropped.
package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/shardhose/shardhose/config"
	"github.com/shardhose/shardhose/hooks"
	"github.com/shardhose/shardhose/internal/clock"
	"github.com/shardhose/shardhose/internal/retry"
	"github.com/shardhose/shardhose/record"
	"github.com/shardhose/shardhose/sinks"
)

// PutObjectAPI is the part of the S3 client the sink uses; *awss3.Client implements it.
type PutObjectAPI interface {
	PutObject(ctx context.Context, in *awss3.PutObjectInput, optFns ...func(*awss3.Options)) (*awss3.PutObjectOutput, error)
}

// Options configures a Sink. Name, Config and Client are required; the rest have defaults.
type Options struct {
	// Name is the sink's name: in logs, hooks, and every object name. Firehose's rule for stream
	// names applies: 1 to 64 of A-Z a-z 0-9 _ . -
	Name string
	// Config is the sink's section, with config.S3Defaults already applied.
	Config config.S3Sink
	Client PutObjectAPI
	// Clock drives the buffering interval and the waits between retries; nil means clock.Real().
	Clock clock.Clock
	// Logger receives one line per failed PUT; nil discards.
	Logger *slog.Logger
	Hooks  hooks.Set
}

// Sink writes records to S3 as Firehose does. It implements sinks.Sink.
//
// Buffering: records go into one current object until its uncompressed size reaches
// buffering_hints.size_in_mbs MiB, or interval_in_seconds pass after its first record arrived
// (interval 0: at the end of every Write, or as soon as an upload slot frees). A record that would
// overflow the buffer starts a new object; a record bigger than the buffer gets an object of its own.
//
// Ordering: the records of one Write keep their order within and across the objects that hold
// them. Writes from different goroutines interleave in the order they take the sink's lock; an
// object can hold records of many Writes.
//
// Failure: a failed PutObject is retried (config Retry: exponential backoff, 15% jitter) without
// end, until it succeeds or Close's ctx ends. Every failed attempt is logged (Warn) and reported to
// hooks.DeliveryFailed; an object given up on at Close is logged (Error). Records are
// acknowledged only once the object holding them is written. hooks.Delivered gets each written
// object's record count, its size as stored (compressed), and the time from its first attempt.
//
// Backpressure: at most max_uploads objects are being written (or waiting to retry) at once. While
// that many are pending, a Write that would have to close the current object blocks, so memory
// stays near (max_uploads+1) × the buffer size. A single Write larger than that is admitted only
// when nothing is pending and then holds its own records' worth beyond the bound.
//
// All methods are safe for concurrent use.
type Sink struct {
	name       string
	bucket     string
	client     PutObjectAPI
	clock      clock.Clock
	log        *slog.Logger
	hooks      hooks.Set
	policy     retry.Policy
	format     format
	keys       keyBuilder
	newline    bool
	limit      int           // buffer size, uncompressed bytes
	interval   time.Duration // 0: close the current object after every Write
	maxUploads int
	slots      chan struct{} // one token per concurrent PutObject

	life     *lifetime
	wg       sync.WaitGroup // upload and interval goroutines
	stopOnce sync.Once

	mu      sync.Mutex
	cur     *object              // the object being filled; nil when empty
	sealDue bool                 // cur is due (interval or Flush) but waits for an upload slot
	uploads int                  // sealed objects not yet written: what max_uploads caps
	pending map[*object]struct{} // sealed objects whose done callbacks have not all run yet
	admit   []*ticket            // blocked Writes, first come first served
	changed chan struct{}        // closed and replaced when an admission condition may have changed
	closing bool                 // Close has begun: Write returns ErrClosed
	stopped bool                 // goroutines stopped: nothing more will be written
}

var _ sinks.Sink = (*Sink)(nil)

// object is one S3 object, first being filled, then being written.
type object struct {
	enc     encoder
	records int
	size    int // uncompressed bytes, delimiters included
	oldest  time.Time
	acks    []*ack        // the Writes with records in the object
	flushes []*ack        // the Flushes waiting for the object
	timer   clock.Timer   // the interval timer; nil when interval is 0
	sealed  chan struct{} // closed when the object stops taking records
	// Set when sealed.
	key  string
	body []byte
	err  error // encoding failed: the object cannot be written
}

// ack counts the objects a Write (or a Flush) still waits for; fn runs when it reaches zero.
type ack struct {
	remaining int
	fn        func()
}

type ticket struct{}

// New validates opts and starts the sink. Every problem with the configuration is reported at once.
func New(opts Options) (*Sink, error) {
	cfg := opts.Config
	var problems []error
	if !sinkNamePattern.MatchString(opts.Name) {
		problems = append(problems, fmt.Errorf("name %q: must be 1 to 64 of A-Z a-z 0-9 _ . - (it becomes part of every object name)", opts.Name))
	}
	if opts.Client == nil {
		problems = append(problems, errors.New("no S3 client given"))
	}
	if cfg.Bucket == "" {
		problems = append(problems, errors.New("bucket: must be set"))
	}
	f, err := newFormat(cfg.Compression, cfg.AppendNewline)
	if err != nil {
		problems = append(problems, fmt.Errorf("compression: %w", err))
	}
	keys, err := newKeyBuilder(cfg.Prefix, opts.Name, f.ext)
	if err != nil {
		problems = append(problems, fmt.Errorf("prefix: %w", err))
	}
	if h := cfg.BufferingHints.SizeInMBs; h < 1 || h > 128 {
		problems = append(problems, fmt.Errorf("buffering_hints.size_in_mbs is %d: must be 1 to 128", h))
	}
	if h := cfg.BufferingHints.IntervalInSeconds; h < 0 || h > 900 {
		problems = append(problems, fmt.Errorf("buffering_hints.interval_in_seconds is %d: must be 0 to 900", h))
	}
	if cfg.MaxUploads < 1 {
		problems = append(problems, fmt.Errorf("max_uploads is %d: must be at least 1", cfg.MaxUploads))
	}
	if cfg.Retry.InitialBackoff <= 0 {
		problems = append(problems, fmt.Errorf("retry.initial_backoff is %s: must be positive", cfg.Retry.InitialBackoff))
	}
	if cfg.Retry.MaxBackoff < cfg.Retry.InitialBackoff {
		problems = append(problems, fmt.Errorf("retry.max_backoff (%s) must be at least retry.initial_backoff (%s)", cfg.Retry.MaxBackoff, cfg.Retry.InitialBackoff))
	}
	if cfg.Retry.MaxElapsed != 0 {
		problems = append(problems, fmt.Errorf("retry.max_elapsed is %s: must be 0 for an s3 sink, which retries until the write succeeds (there is no backup destination to give failed objects to)", cfg.Retry.MaxElapsed))
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("s3 sink %q: %w", opts.Name, errors.Join(problems...))
	}

	s := &Sink{
		name:   opts.Name,
		bucket: cfg.Bucket,
		client: opts.Client,
		clock:  opts.Clock,
		log:    opts.Logger,
		hooks:  opts.Hooks,
		policy: retry.Policy{
			Initial:    cfg.Retry.InitialBackoff,
			Max:        cfg.Retry.MaxBackoff,
			Multiplier: 2,
			Jitter:     0.15,
		},
		format:     f,
		keys:       keys,
		newline:    cfg.AppendNewline,
		limit:      cfg.BufferingHints.SizeInMBs << 20,
		interval:   time.Duration(cfg.BufferingHints.IntervalInSeconds) * time.Second,
		maxUploads: cfg.MaxUploads,
		slots:      make(chan struct{}, cfg.MaxUploads),
		life:       newLifetime(),
		pending:    make(map[*object]struct{}),
		changed:    make(chan struct{}),
	}
	if s.clock == nil {
		s.clock = clock.Real()
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("sink", s.name)
	return s, nil
}

// Name returns the sink's configured name.
func (s *Sink) Name() string { return s.name }

// Write adds records to the current object, closing objects as they fill. It blocks while
// adding the records would close more objects than there are free upload slots, and behind
// Writes blocked before it (first come, first served). If ctx ends meanwhile it returns ctx's
// error, or ErrClosed if Close begins, having kept none of the records. done is called once,
// after every record is in an object that was written, from the goroutine that wrote the last
// of those objects.
func (s *Sink) Write(ctx context.Context, records []record.Record, done func()) error {
	if done == nil {
		done = func() {}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return sinks.ErrClosed
	}
	if len(records) == 0 {
		s.mu.Unlock()
		done()
		return nil
	}
	if err := s.admitLocked(ctx, records); err != nil {
		s.mu.Unlock()
		return err
	}
	a := &ack{fn: done}
	for i := range records {
		s.addLocked(&records[i], a)
	}
	if s.interval == 0 {
		s.requestSealLocked()
	}
	s.mu.Unlock()
	return nil
}

// admitLocked waits, with s.mu held (released while waiting), until records may be added: it is
// the first blocked Write and either nothing is pending or the objects it would close fit in the
// free upload slots.
func (s *Sink) admitLocked(ctx context.Context, records []record.Record) error {
	var t *ticket
	for {
		if s.closing {
			s.leaveQueueLocked(t)
			return sinks.ErrClosed
		}
		if (len(s.admit) == 0 || s.admit[0] == t) && s.fitsLocked(records) {
			s.leaveQueueLocked(t)
			return nil
		}
		if t == nil {
			t = &ticket{}
			s.admit = append(s.admit, t)
		}
		changed := s.changed
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			s.mu.Lock()
			s.leaveQueueLocked(t)
			return ctx.Err()
		case <-changed:
		}
		s.mu.Lock()
	}
}

func (s *Sink) leaveQueueLocked(t *ticket) {
	if t == nil {
		return
	}
	for i, q := range s.admit {
		if q == t {
			s.admit = append(s.admit[:i], s.admit[i+1:]...)
			break
		}
	}
	s.broadcastLocked() // the next in line may go now
}

// fitsLocked reports whether adding records now stays within max_uploads pending objects. It
// replays addLocked's decisions on sizes alone.
func (s *Sink) fitsLocked(records []record.Record) bool {
	pending := s.uploads
	if pending == 0 {
		return true
	}
	size := 0
	if s.cur != nil {
		size = s.cur.size
	}
	seals := 0
	for i := range records {
		n := s.recordSize(&records[i])
		if s.sealBefore(size, n) {
			seals++
			size = 0
		}
		size += n
		if size >= s.limit {
			seals++
			size = 0
		}
		if pending+seals > s.maxUploads {
			return false
		}
	}
	return true
}

func (s *Sink) recordSize(r *record.Record) int {
	if s.newline {
		return len(r.Data) + 1
	}
	return len(r.Data)
}

// sealBefore reports whether an object holding size bytes must be closed before n more bytes go
// in: records are never split, and an object only exceeds the limit when one record does.
func (s *Sink) sealBefore(size, n int) bool { return size > 0 && size+n > s.limit }

// addLocked appends r to the current object, closing objects by size. Admission has made sure the
// upload slots exist.
func (s *Sink) addLocked(r *record.Record, a *ack) {
	n := s.recordSize(r)
	if s.cur != nil && s.sealBefore(s.cur.size, n) {
		s.sealLocked()
	}
	if s.cur == nil {
		s.openLocked()
	}
	o := s.cur
	o.enc.add(r.Data)
	o.records++
	o.size += n
	at := r.ApproximateArrivalTimestamp
	if at.IsZero() {
		at = s.clock.Now()
	}
	if o.oldest.IsZero() || at.Before(o.oldest) {
		o.oldest = at
	}
	if len(o.acks) == 0 || o.acks[len(o.acks)-1] != a {
		o.acks = append(o.acks, a)
		a.remaining++
	}
	if o.size >= s.limit {
		s.sealLocked()
	}
}

// openLocked starts a new current object and, with an interval, its timer.
func (s *Sink) openLocked() {
	o := &object{enc: s.format.open(), sealed: make(chan struct{})}
	s.cur = o
	if s.interval <= 0 {
		return
	}
	o.timer = s.clock.NewTimer(s.interval)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		select {
		case <-o.timer.C():
			s.mu.Lock()
			if s.cur == o {
				s.requestSealLocked()
			}
			s.mu.Unlock()
		case <-o.sealed:
		case <-s.life.Done():
		}
	}()
}

// requestSealLocked closes the current object now if an upload slot is free, or else as soon as
// one frees (the object keeps taking records meanwhile).
func (s *Sink) requestSealLocked() {
	if s.cur == nil || s.stopped {
		return
	}
	if s.uploads < s.maxUploads {
		s.sealLocked()
		return
	}
	s.sealDue = true
}

// sealLocked closes the current object and starts writing it.
func (s *Sink) sealLocked() {
	o := s.cur
	s.cur = nil
	s.sealDue = false
	if o.timer != nil {
		o.timer.Stop()
	}
	close(o.sealed)
	o.body, o.err = o.enc.finish()
	o.enc = nil
	o.key = s.keys.key(o.oldest)
	s.uploads++
	s.pending[o] = struct{}{}
	s.wg.Add(1)
	go s.upload(o)
}

// upload writes o, retrying until it succeeds or the sink stops, then acknowledges its Writes.
func (s *Sink) upload(o *object) {
	defer s.wg.Done()
	ctx := s.life
	select {
	case s.slots <- struct{}{}:
	case <-ctx.Done():
		s.abandon(o, ctx.Err())
		return
	}
	if o.err != nil {
		// Encoding into memory does not fail in practice; if it ever does, the object cannot be
		// written, and its records must not be acknowledged. It stays pending: Flush and Close
		// report it.
		<-s.slots
		s.log.Error("s3 object could not be encoded; its records will not be acknowledged", "key", o.key, "records", o.records, "error", o.err)
		return
	}
	put := func(ctx context.Context, attempt int) error {
		_, err := s.client.PutObject(ctx, &awss3.PutObjectInput{
			Bucket:        aws.String(s.bucket),
			Key:           aws.String(o.key),
			Body:          bytes.NewReader(o.body),
			ContentLength: aws.Int64(int64(len(o.body))),
			ContentType:   aws.String(contentType),
		})
		if err != nil {
			return fmt.Errorf("put object %s: %w", o.key, err)
		}
		return nil
	}
	failed := func(attempt int, err error, wait time.Duration) {
		s.log.Warn("s3 put object failed; retrying", "key", o.key, "attempt", attempt, "records", o.records, "bytes", len(o.body), "retry_in", wait, "error", err)
		hooks.Each(s.hooks, func(h hooks.DeliveryFailed) { h.OnDeliveryFailed(s.name, o.records, err) })
	}
	out, err := retry.Do(ctx, s.clock, s.policy, put, failed)
	<-s.slots
	if err != nil {
		// Only the end of the sink's life stops the retries.
		s.abandon(o, err)
		return
	}
	s.log.Debug("s3 object written", "key", o.key, "records", o.records, "bytes", len(o.body), "attempts", out.Attempts)
	hooks.Each(s.hooks, func(h hooks.Delivered) { h.OnDelivered(s.name, o.records, len(o.body), out.Ended.Sub(out.Started)) })
	s.complete(o)
}

// abandon logs an object that will not be written because the sink stopped. It stays in
// pending, and its Writes are never acknowledged.
func (s *Sink) abandon(o *object, err error) {
	s.log.Error("s3 sink stopped before an object was written; its records stay unacknowledged", "key", o.key, "records", o.records, "error", err)
}

// complete acknowledges the Writes whose last unwritten object was o, then the Flushes whose
// last object it was. Flushes come second, so that a Flush returns only after the done callbacks
// of every Write it waited for have returned.
func (s *Sink) complete(o *object) {
	s.mu.Lock()
	s.uploads--
	dones := settle(o.acks)
	o.acks, o.body = nil, nil
	if s.sealDue {
		s.requestSealLocked()
	}
	s.broadcastLocked() // an upload slot is free
	s.mu.Unlock()
	for _, fn := range dones {
		fn()
	}

	s.mu.Lock()
	delete(s.pending, o)
	flushed := settle(o.flushes)
	o.flushes = nil
	s.mu.Unlock()
	for _, fn := range flushed {
		fn()
	}
}

// settle counts an object off each ack and returns the callbacks of those it completes.
func settle(acks []*ack) []func() {
	var fns []func()
	for _, a := range acks {
		a.remaining--
		if a.remaining == 0 {
			fns = append(fns, a.fn)
		}
	}
	return fns
}

func (s *Sink) broadcastLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Flush closes the current object and waits until it and every object closed before it are
// written (every done of the Writes they hold called), or ctx ends; delivery goes on after that.
func (s *Sink) Flush(ctx context.Context) error {
	s.mu.Lock()
	if s.stopped {
		n := s.undeliveredLocked()
		s.mu.Unlock()
		if n > 0 {
			return fmt.Errorf("flush s3 sink %s: %d objects can no longer be written: %w", s.name, n, sinks.ErrClosed)
		}
		return nil
	}
	flushed := make(chan struct{})
	a := &ack{fn: func() { close(flushed) }}
	for o := range s.pending {
		o.flushes = append(o.flushes, a)
		a.remaining++
	}
	if s.cur != nil {
		s.cur.flushes = append(s.cur.flushes, a)
		a.remaining++
		s.requestSealLocked()
	}
	waiting := a.remaining
	s.mu.Unlock()
	if waiting == 0 {
		return nil
	}
	select {
	case <-flushed:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("flush s3 sink %s: %w", s.name, ctx.Err())
	}
}

// Close stops taking Writes, flushes like Flush, and stops the sink's goroutines. If ctx ends
// first, the objects not yet written are given up (their Writes are never acknowledged) and
// Close returns ctx's error.
func (s *Sink) Close(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	s.broadcastLocked() // blocked Writes return ErrClosed
	s.mu.Unlock()

	err := s.Flush(ctx)
	s.stopOnce.Do(func() {
		s.mu.Lock()
		s.stopped = true
		s.mu.Unlock()
		s.life.end()
		s.wg.Wait()
	})
	if err != nil {
		s.mu.Lock()
		n := s.undeliveredLocked()
		s.mu.Unlock()
		return fmt.Errorf("close s3 sink %s with %d objects not written: %w", s.name, n, err)
	}
	return nil
}

func (s *Sink) undeliveredLocked() int {
	n := len(s.pending)
	if s.cur != nil {
		n++
	}
	return n
}

// lifetime is the context of the sink's own goroutines (uploads and their retries, interval
// timers). New takes no context because the sink outlives any one call; lifetime ends when Close
// stops the sink, which cancels PUTs in progress and ends the waits between retries.
type lifetime struct {
	done chan struct{}
	once sync.Once
}

func newLifetime() *lifetime { return &lifetime{done: make(chan struct{})} }

func (l *lifetime) end() { l.once.Do(func() { close(l.done) }) }

func (l *lifetime) Deadline() (time.Time, bool) { return time.Time{}, false }
func (l *lifetime) Done() <-chan struct{}       { return l.done }
func (l *lifetime) Value(any) any               { return nil }

func (l *lifetime) Err() error {
	select {
	case <-l.done:
		return context.Canceled
	default:
		return nil
	}
}

var _ context.Context = (*lifetime)(nil)
