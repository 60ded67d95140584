// Package s3 is a Firehose-style Amazon S3 sink: it buffers records by size and interval, writes
// each buffer as one object (GZIP, Snappy, ZSTD or uncompressed records, or a Parquet file) under
// Firehose's key layout and prefix expressions, and partitions records by keys taken from their
// JSON or from the transform (dynamic partitioning). Records that cannot be delivered as data
// (they do not fit the Parquet schema, or their partition cannot be worked out) go to the error
// output prefix as Firehose error records. A record is acknowledged only after the object holding
// it, or its error record, was written; a failed write is retried until it succeeds or the sink
// is closed, so nothing is ever dropped.
package s3

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/shardhose/shardhose/config"
	"github.com/shardhose/shardhose/hooks"
	"github.com/shardhose/shardhose/internal/clock"
	"github.com/shardhose/shardhose/internal/outage"
	"github.com/shardhose/shardhose/internal/retry"
	"github.com/shardhose/shardhose/record"
	"github.com/shardhose/shardhose/sinks"
	"github.com/shardhose/shardhose/sinks/backup"
)

// Options configures a Sink. Name, Config and Client are required; the rest have defaults.
type Options struct {
	// Name is the sink's name: in logs, hooks, and every object name. Firehose's rule for stream
	// names applies: 1 to 64 of A-Z a-z 0-9 _ . -
	Name string
	// Config is the sink's section, with config.S3Defaults already applied.
	Config config.S3Sink
	// Client writes the objects. When it also implements MultipartAPI (as *awss3.Client does),
	// objects of MultipartThreshold bytes or more are uploaded in parts. With delivery:
	// exactly_once it must also implement HeadObjectAPI (as *awss3.Client does): a conditional
	// write that finds the object there reads what it holds.
	Client PutObjectAPI
	// Errors, when set, receives the error records (WriteErrors with folders
	// "format-conversion-failed/" and "partitioning-failed/") instead of the sink's own error
	// output. Leave it nil to have the sink write them to its bucket under error_output_prefix with
	// Firehose's expressions evaluated, which a backup.S3Writer (literal prefixes only) cannot do.
	// It must retry until it succeeds or its ctx ends, as backup.Writer requires.
	Errors backup.Writer
	// Clock drives the buffering intervals and the waits between retries; nil means clock.Real().
	Clock clock.Clock
	// Logger receives one line per failed PUT and per error object; nil discards.
	Logger *slog.Logger
	Hooks  hooks.Set
}

// Sink writes records to S3 as Firehose does. It implements sinks.Sink.
//
// Buffering: records go into the open buffer of their partition (there is one partition unless
// dynamic partitioning is on) until its size reaches buffering_hints.size_in_mbs MiB, or
// interval_in_seconds pass after its first record arrived (interval 0: at the end of every Write,
// or as soon as an upload slot frees); then the buffer is sealed and written as one object. Each
// partition counts its own size and interval. A record that would overflow a buffer seals it
// first; a record bigger than the buffer gets an object of its own. Sizes count record data
// (with its delimiter) before compression; a Parquet file or compressed object is smaller.
//
// Dynamic partitioning: a record's partition is the values of the partition keys the prefix
// reads (jq queries over its JSON, keys the transform returned). At most
// dynamic_partitioning.max_active_partitions partitions are active at once (a partition is
// active from its first buffered record until its last object is written); a record of a new
// partition beyond that goes to the error output as partitioning-failed, as does a record whose
// keys cannot be worked out. Memory: the open buffers of all partitions together hold at most
// dynamic_partitioning.max_buffered_mbs MiB; a record that would pass that seals the largest open
// buffer first. So the sink holds at most max_buffered_mbs of open buffers plus max_uploads
// sealed objects (each up to size_in_mbs, and its encoded body while it is being written).
//
// Encoding: a sealed buffer is compressed, or converted to Parquet, in its upload goroutine, off
// the sink's lock: Writes only append references to the records (which the sinks.Sink contract
// lets a sink keep until delivery), and several objects encode at once on several cores.
//
// Ordering: records of one Write keep their order within each object. Writes from different
// goroutines interleave in the order they take the sink's lock.
//
// Failure: a failed PutObject (or multipart upload, which is then aborted and started again) is
// retried (config Retry: exponential backoff, 15% jitter) without end, until it succeeds or
// Close's ctx ends. Every failed attempt is logged (Warn) and reported to hooks.DeliveryFailed; an
// object given up on at Close is logged (Error). hooks.Delivered gets each written data object's
// record count, its size as stored, and the time from its first attempt. Error records are
// written before the object of the same buffer, with the same retries.
//
// Acknowledgement: a Write's done is called once, after every one of its records is in a written
// object or written to the error output.
//
// Backpressure: at most max_uploads objects are being written (or waiting to retry) at once.
// While that many are pending, a Write that needs to seal a buffer blocks (behind Writes blocked
// before it), so memory stays bounded as above. If its ctx ends, or Close begins, it returns
// that error; records it had already buffered may still be delivered, but its done is never
// called (the sinks.Sink contract).
//
// Exactly once (delivery: exactly_once; see exactly.go and docs/design.md): records of a shard
// whose run the consumer opened (OpenShard) go to that run's own buffer, and its objects are
// written one at a time, under keys made of the shard and the position they start after, only
// if absent; records of other shards are buffered and written at least once, as above. A run
// whose lease is lost writes nothing more; its unwritten objects are given up unacknowledged.
//
// All methods are safe for concurrent use.
type Sink struct {
	name          string
	bucket        string
	client        PutObjectAPI
	multipart     MultipartAPI // nil: every object is one PutObject
	clock         clock.Clock
	log           *slog.Logger
	health        *outage.Reporter // the bucket's outages, from every PUT of the sink
	hooks         hooks.Set
	policy        retry.Policy
	format        format
	keys          keyBuilder   // data objects
	errs          errorWriter  // error records
	parts         *partitioner // nil without dynamic partitioning
	newline       bool
	limit         int           // one buffer's size, bytes before encoding
	memLimit      int           // all open buffers together
	maxActive     int           // active partitions (dynamic partitioning)
	interval      time.Duration // 0: seal the open buffers after every Write
	maxUploads    int
	slots         chan struct{} // one token per concurrent upload
	partThreshold int           // bodies this large go up in parts (MultipartThreshold)
	partSize      int           // of multipartPartSize bytes
	exactly       bool          // delivery: exactly_once
	heads         HeadObjectAPI // reads an existing object's metadata (exactly once)

	life     *lifetime
	wg       sync.WaitGroup // upload and interval goroutines
	stopOnce sync.Once

	mu        sync.Mutex
	open      map[bufKey]*object   // open buffers
	openBytes int                  // their sizes, summed
	active    map[string]int       // partition id → open buffer and pending objects holding it
	due       []*object            // open buffers due (interval or Flush) but waiting for a slot
	uploads   int                  // sealed objects not yet written: what max_uploads caps
	pending   map[*object]struct{} // sealed objects whose done callbacks have not all run yet
	admit     []*ticket            // blocked Writes, first come first served
	changed   chan struct{}        // closed and replaced when a blocked Write may go on
	closing   bool                 // Close has begun: Write returns ErrClosed
	stopped   bool                 // goroutines stopped: nothing more will be written
	chains    map[string]*chain    // shard id → its current run (exactly once)
}

var _ sinks.Sink = (*Sink)(nil)

// bufKey names an open buffer: a data partition, or the error records of one error output type.
type bufKey struct {
	errorOutputType string // "" for data
	partition       string // partition id: the key values joined by NUL; "" without partitioning
	chain           *chain // the shard run whose records the buffer holds (exactly once); else nil
}

// object is one buffer, first open (taking records), then sealed (being written).
type object struct {
	bk      bufKey
	keys    []string             // partition key values, for the prefix
	recs    []*record.Record     // data records
	errs    []backup.ErrorRecord // error records
	records int
	size    int // bytes counted against the limits
	oldest  time.Time
	acks    []*ack        // the Writes with records in the object
	flushes []*ack        // the Flushes waiting for the object
	timer   clock.Timer   // the interval timer; nil when interval is 0
	sealed  chan struct{} // closed when the object stops taking records
	due     bool          // in Sink.due
	// Exactly once: prev is closed when the chain's previous object is finished (written or
	// given up), and finished when this one is; nil otherwise. With dynamic partitioning,
	// routes[i] is the partition of recs[i].
	routes   []*routed
	prev     <-chan struct{}
	finished chan struct{}
}

func (o *object) isData() bool { return o.bk.errorOutputType == "" }

// ack counts the objects a Write (or a Flush) still waits for; fn runs when it reaches zero. A
// Write holds one count of its own while it adds records, so that its done cannot run before
// the last record is in; fn is nil for a Write that returned an error.
type ack struct {
	remaining int
	fn        func()
}

type ticket struct{}

// routed is a record's partition, worked out before the sink's lock is taken.
type routed struct {
	keys []string
	id   string
	fail *failure
}

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
	f, err := newFormat(cfg)
	if err != nil {
		problems = append(problems, err)
	}
	dataTmpl, err := dataPrefix(cfg)
	if err != nil {
		problems = append(problems, err)
	}
	errTmpl, err := errorPrefix(cfg)
	if err != nil {
		problems = append(problems, err)
	}
	dp := partitioning(cfg)
	var parts *partitioner
	if dp != nil && dataTmpl != nil {
		if parts, err = newPartitioner(dp, dataTmpl); err != nil {
			problems = append(problems, err)
		}
	}
	h := cfg.BufferingHints
	switch {
	case cfg.DataFormatConversion != nil && (h.SizeInMBs < 64 || h.SizeInMBs > 128):
		problems = append(problems, fmt.Errorf("buffering_hints.size_in_mbs is %d: with Parquet, size_in_mbs must be 64 to 128 (Firehose's rule: a Parquet file needs data enough for its columns to compress)", h.SizeInMBs))
	case h.SizeInMBs < 1 || h.SizeInMBs > 128:
		problems = append(problems, fmt.Errorf("buffering_hints.size_in_mbs is %d: must be 1 to 128", h.SizeInMBs))
	}
	switch {
	case h.IntervalInSeconds < 0 || h.IntervalInSeconds > 900:
		problems = append(problems, fmt.Errorf("buffering_hints.interval_in_seconds is %d: must be 0 to 900", h.IntervalInSeconds))
	case dp != nil && h.IntervalInSeconds == 0:
		problems = append(problems, errors.New("buffering_hints.interval_in_seconds is 0: with dynamic partitioning it must be 1 to 900 (zero buffering is not available with it, as in Firehose)"))
	}
	if dp != nil {
		if n := dp.ActivePartitions(); n < 1 {
			problems = append(problems, fmt.Errorf("dynamic_partitioning.max_active_partitions is %d: must be at least 1 (0 means %d)", n, config.DefaultMaxActivePartitions))
		}
		if n := dp.BufferedMBs(); n < h.SizeInMBs {
			problems = append(problems, fmt.Errorf("dynamic_partitioning.max_buffered_mbs is %d: must be at least buffering_hints.size_in_mbs (%d)", n, h.SizeInMBs))
		}
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
	heads, exactly := checkExactlyOnce(cfg, opts.Client, &problems)
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
		format:        f,
		keys:          keyBuilder{prefix: dataTmpl, name: opts.Name, ext: f.ext, random: randomUUID},
		parts:         parts,
		newline:       cfg.AppendNewline,
		limit:         h.SizeInMBs << 20,
		memLimit:      h.SizeInMBs << 20,
		maxActive:     1,
		interval:      time.Duration(h.IntervalInSeconds) * time.Second,
		maxUploads:    cfg.MaxUploads,
		slots:         make(chan struct{}, cfg.MaxUploads),
		partThreshold: MultipartThreshold,
		partSize:      multipartPartSize,
		life:          newLifetime(),
		open:          make(map[bufKey]*object),
		active:        make(map[string]int),
		pending:       make(map[*object]struct{}),
		changed:       make(chan struct{}),
		exactly:       exactly,
		heads:         heads,
		chains:        make(map[string]*chain),
	}
	if dp != nil {
		s.memLimit = dp.BufferedMBs() << 20
		s.maxActive = dp.ActivePartitions()
	}
	s.multipart, _ = opts.Client.(MultipartAPI)
	if exactly {
		// Every shard has a buffer of its own: let them hold what dynamic partitioning's
		// default allows, so that shards do not cut each other's objects short.
		s.memLimit = max(s.limit, config.DefaultMaxBufferedMBs<<20)
		// A multipart upload has no conditional create here: one PutObject per object
		// (S3 takes up to 5 GiB so; buffers are at most 128 MiB).
		s.multipart = nil
	}
	if s.clock == nil {
		s.clock = clock.Real()
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("sink", s.name)
	s.health = outage.New(outage.Options{Dependency: "s3", Resource: s.bucket, Logger: s.log, Clock: s.clock})
	s.errs = opts.Errors
	if s.errs == nil {
		errExt := ""
		if cfg.Compression == CompressionGZIP {
			errExt = extGzip
		}
		s.errs = &ownErrorWriter{s: s, keys: keyBuilder{prefix: errTmpl, name: opts.Name, ext: errExt, random: randomUUID}, gzip: errExt != ""}
	}
	return s, nil
}

// Name returns the sink's configured name.
func (s *Sink) Name() string { return s.name }

// Write adds records to the open buffers of their partitions, sealing buffers as they fill.
// It blocks while sealing a buffer would pass max_uploads pending objects, and behind Writes
// blocked before it (first come, first served). If ctx ends meanwhile it returns ctx's error, or
// ErrClosed if Close begins; records it had already added may still be delivered, but done is
// never called. Otherwise done is called once, after every record is in a written object (or
// the error output), from the goroutine that wrote the last of them.
func (s *Sink) Write(ctx context.Context, records []record.Record, done func()) error {
	if done == nil {
		done = func() {}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	var routes []routed
	if s.parts != nil && len(records) > 0 {
		// jq runs here, before the lock: routing is the costly part of partitioning.
		routes = make([]routed, len(records))
		for i := range records {
			keys, fail := s.parts.partitionOf(&records[i])
			routes[i] = routed{keys: keys, id: strings.Join(keys, "\x00"), fail: fail}
		}
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
	a := &ack{remaining: 1, fn: done}
	var t *ticket
	for i := range records {
		var rt *routed
		if routes != nil {
			rt = &routes[i]
		}
		if err := s.addLocked(ctx, &t, &records[i], rt, a); err != nil {
			s.leaveQueueLocked(t)
			a.fn = nil
			a.remaining--
			s.mu.Unlock()
			return err
		}
	}
	s.leaveQueueLocked(t)
	if s.interval == 0 {
		for _, o := range s.open {
			s.requestSealLocked(o)
		}
	}
	a.remaining--
	var fn func()
	if a.remaining == 0 {
		fn = a.fn
	}
	s.mu.Unlock()
	if fn != nil {
		fn()
	}
	return nil
}

// addLocked adds one record to its buffer, with s.mu held. When a buffer must be sealed first
// and no upload slot is free, or Writes blocked earlier are still waiting, it waits (releasing
// s.mu) in the first-come-first-served queue, holding t as its place.
func (s *Sink) addLocked(ctx context.Context, t **ticket, r *record.Record, rt *routed, a *ack) error {
	for {
		if s.closing {
			return sinks.ErrClosed
		}
		if len(s.admit) > 0 && s.admit[0] != *t {
			if err := s.waitLocked(ctx, t); err != nil {
				return err
			}
			continue
		}
		bk, fail := s.bufferOfLocked(r, rt)
		n := s.recordSize(r)
		if fail != nil {
			n = errorRecordSize(r.Data)
		}
		victim := s.sealNeededLocked(bk, n)
		if victim == nil {
			s.appendLocked(bk, r, rt, fail, n, a)
			return nil
		}
		if s.uploads >= s.maxUploads {
			if err := s.waitLocked(ctx, t); err != nil {
				return err
			}
			continue
		}
		s.sealLocked(victim)
	}
}

// bufferOfLocked says which buffer a record goes to: its partition's, or the error buffer of
// its failure. A record of a partition that is not active goes to the error output when
// max_active_partitions are.
func (s *Sink) bufferOfLocked(r *record.Record, rt *routed) (bufKey, *failure) {
	if rt == nil {
		if s.exactly {
			// The shard's current run; a shard without one (records not read under a
			// lease, such as a dead-letter replay) shares the at-least-once buffer.
			return bufKey{chain: s.chains[r.ShardID]}, nil
		}
		return bufKey{}, nil
	}
	if rt.fail != nil {
		return bufKey{errorOutputType: rt.fail.outputType}, rt.fail
	}
	if s.exactly {
		if c := s.chains[r.ShardID]; c != nil {
			// One buffer per run; its records are split by partition when it is written.
			return bufKey{chain: c}, nil
		}
	}
	if s.active[rt.id] == 0 && len(s.active) >= s.maxActive {
		f := partitioningFailure(ErrorCodeActivePartitionExceeded,
			"the record's partition would be active partition %d; dynamic_partitioning.max_active_partitions is %d", len(s.active)+1, s.maxActive)
		return bufKey{errorOutputType: f.outputType}, f
	}
	return bufKey{partition: rt.id}, nil
}

// sealNeededLocked returns the buffer to seal before n more bytes go into buffer bk: bk itself
// when they would overflow it (records are never split: a buffer only passes the limit when one
// record does), else the largest open buffer when they would pass the memory bound; nil when
// the bytes fit.
func (s *Sink) sealNeededLocked(bk bufKey, n int) *object {
	if o := s.open[bk]; o != nil && o.size > 0 && o.size+n > s.limit {
		return o
	}
	if s.openBytes > 0 && s.openBytes+n > s.memLimit {
		var largest *object
		for _, o := range s.open {
			if largest == nil || o.size > largest.size {
				largest = o
			}
		}
		return largest
	}
	return nil
}

// waitLocked joins the queue of blocked Writes (once) and waits, with s.mu released, until
// something changes or ctx ends.
func (s *Sink) waitLocked(ctx context.Context, t **ticket) error {
	if *t == nil {
		*t = &ticket{}
		s.admit = append(s.admit, *t)
	}
	changed := s.changed
	s.mu.Unlock()
	select {
	case <-ctx.Done():
		s.mu.Lock()
		return ctx.Err()
	case <-changed:
		s.mu.Lock()
		return nil
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

func (s *Sink) recordSize(r *record.Record) int {
	if s.newline {
		return len(r.Data) + 1
	}
	return len(r.Data)
}

// appendLocked puts r into buffer bk, opening it if needed, and seals the buffer once full.
func (s *Sink) appendLocked(bk bufKey, r *record.Record, rt *routed, fail *failure, n int, a *ack) {
	o := s.open[bk]
	if o == nil {
		o = s.openLocked(bk, rt)
	}
	now := s.clock.Now()
	if fail != nil {
		o.errs = append(o.errs, errorRecord(r, fail, now))
	} else {
		o.recs = append(o.recs, r)
		if bk.chain != nil && rt != nil {
			o.routes = append(o.routes, rt)
		}
	}
	o.records++
	o.size += n
	s.openBytes += n
	at := r.ApproximateArrivalTimestamp
	if at.IsZero() {
		at = now
	}
	if o.oldest.IsZero() || at.Before(o.oldest) {
		o.oldest = at
	}
	if len(o.acks) == 0 || o.acks[len(o.acks)-1] != a {
		o.acks = append(o.acks, a)
		a.remaining++
	}
	if o.size >= s.limit {
		s.requestSealLocked(o)
	}
}

// openLocked opens buffer bk and, with an interval, starts its timer.
func (s *Sink) openLocked(bk bufKey, rt *routed) *object {
	o := &object{bk: bk, sealed: make(chan struct{})}
	if rt != nil && bk.errorOutputType == "" && bk.chain == nil {
		o.keys = rt.keys
		s.active[bk.partition]++
	}
	s.open[bk] = o
	if s.interval <= 0 {
		return o
	}
	o.timer = s.clock.NewTimer(s.interval)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		select {
		case <-o.timer.C():
			s.mu.Lock()
			if s.open[o.bk] == o {
				s.requestSealLocked(o)
			}
			s.mu.Unlock()
		case <-o.sealed:
		case <-s.life.Done():
		}
	}()
	return o
}

// requestSealLocked seals o now if an upload slot is free, or else as soon as one frees (o keeps
// taking records meanwhile).
func (s *Sink) requestSealLocked(o *object) {
	if s.stopped || s.open[o.bk] != o {
		return
	}
	if s.uploads < s.maxUploads {
		s.sealLocked(o)
		return
	}
	if !o.due {
		o.due = true
		s.due = append(s.due, o)
	}
}

// sealDueLocked seals the buffers that are due, oldest request first, while slots are free. A
// stopped sink starts no upload (Close is waiting for the running ones).
func (s *Sink) sealDueLocked() {
	for !s.stopped && s.uploads < s.maxUploads && len(s.due) > 0 {
		o := s.due[0]
		s.due[0] = nil
		s.due = s.due[1:]
		if o.due && s.open[o.bk] == o {
			s.sealLocked(o)
		}
	}
}

// sealLocked closes open buffer o and starts writing it.
func (s *Sink) sealLocked(o *object) {
	delete(s.open, o.bk)
	s.openBytes -= o.size
	o.due = false
	if o.timer != nil {
		o.timer.Stop()
	}
	close(o.sealed)
	if c := o.bk.chain; c != nil {
		o.prev, o.finished = c.tail, make(chan struct{})
		c.tail = o.finished
	}
	s.uploads++
	s.pending[o] = struct{}{}
	s.wg.Add(1)
	go s.upload(o)
}

// upload encodes and writes o (its error records first), retrying until it succeeds or the sink
// stops, then acknowledges its Writes.
func (s *Sink) upload(o *object) {
	defer s.wg.Done()
	ctx := s.life
	if o.finished != nil {
		defer close(o.finished)
		if !s.awaitPrevious(ctx, o) {
			return
		}
	}
	select {
	case s.slots <- struct{}{}:
	case <-ctx.Done():
		s.abandon(o, ctx.Err())
		return
	}
	var err error
	switch {
	case o.bk.chain != nil:
		err = s.deliverChain(ctx, o)
	case o.isData():
		err = s.deliver(ctx, o)
	default:
		err = s.errs.WriteErrors(ctx, o.bk.errorOutputType+"/", o.errs)
	}
	<-s.slots
	if errors.Is(err, errRunEnded) {
		s.giveUp(o)
		return
	}
	if err != nil {
		s.abandon(o, err)
		return
	}
	s.complete(o)
}

// errEncode marks an object that cannot be encoded; it is not retried.
var errEncode = errors.New("object cannot be encoded")

// deliver encodes a data object, writes the records the encoder rejected to the error output,
// and writes the object, retrying until it succeeds or ctx ends.
func (s *Sink) deliver(ctx context.Context, o *object) error {
	buf := getBody()
	defer putBody(buf)
	if s.format.ext == "" {
		buf.Grow(o.size) // uncompressed: the body is the records
	} else {
		buf.Grow(o.size / 3) // encoded JSON is 3 to 5 times smaller
	}
	rejected, err := s.format.enc.encode(buf, o.recs)
	if err != nil {
		// In-memory encoders do not fail in practice; if one ever does, the object cannot be
		// written and its records must not be acknowledged. It stays pending: Flush and Close
		// report it.
		return fmt.Errorf("%w: %w", errEncode, err)
	}
	if len(rejected) > 0 {
		now := s.clock.Now()
		errs := make([]backup.ErrorRecord, len(rejected))
		for i, rj := range rejected {
			errs[i] = errorRecord(o.recs[rj.index], &failure{outputType: ErrorOutputFormatConversionFailed, code: ErrorCodeMalformedData, message: rj.reason}, now)
		}
		if err := s.errs.WriteErrors(ctx, ErrorOutputFormatConversionFailed+"/", errs); err != nil {
			return fmt.Errorf("write %d records that do not fit the schema to the error output: %w", len(errs), err)
		}
	}
	records := o.records - len(rejected)
	if records == 0 {
		return nil
	}
	key := s.keys.key(o.oldest, o.keys, "")
	body := buf.Bytes()
	put := s.health.Track(func(ctx context.Context, _ int) error { return s.put(ctx, key, body) }, "key", key)
	// S3 has no backup: while its PUTs fail the sink does not acknowledge, so it is paused.
	paused := false
	failed := func(attempt int, err error, wait time.Duration) {
		s.log.Debug("s3 put object failed; retrying", "key", key, "attempt", attempt, "sdk_attempts", outage.Attempts(err), "records", records, "bytes", len(body), "retry_in", wait, "error", err)
		hooks.Each(s.hooks, func(h hooks.DeliveryFailed) { h.OnDeliveryFailed(s.name, records, err) })
		if !paused {
			paused = true
			hooks.Each(s.hooks, func(h hooks.SinkPaused) { h.OnSinkPaused(s.name, true) })
		}
	}
	out, err := retry.Do(ctx, s.clock, s.policy, put, failed)
	if paused {
		hooks.Each(s.hooks, func(h hooks.SinkPaused) { h.OnSinkPaused(s.name, false) })
	}
	if err != nil {
		return err // only the end of the sink's life stops the retries
	}
	s.log.Debug("s3 object written", "key", key, "records", records, "bytes", len(body), "attempts", out.Attempts)
	hooks.Each(s.hooks, func(h hooks.Delivered) { h.OnDelivered(s.name, records, len(body), out.Ended.Sub(out.Started)) })
	return nil
}

// abandon logs an object that will not be written: the sink stopped, or it cannot be encoded.
// It stays in pending, and its Writes are never acknowledged; but it gives back its upload slot
// and its active partition, so that the objects after it are still written.
func (s *Sink) abandon(o *object, err error) {
	if errors.Is(err, errEncode) {
		s.log.Error("s3 object could not be encoded; its records will not be acknowledged", "records", o.records, "error", err)
	} else {
		s.log.Error("s3 sink stopped before an object was written; its records stay unacknowledged", "records", o.records, "error_output_type", o.bk.errorOutputType, "error", err)
	}
	s.mu.Lock()
	s.releaseLocked(o)
	s.mu.Unlock()
}

// releaseLocked gives back what sealed object o held: its upload slot, and its count in its
// partition's activity. Buffers waiting for a slot are sealed.
func (s *Sink) releaseLocked(o *object) {
	s.uploads--
	if o.isData() && s.parts != nil && o.bk.chain == nil { // a run's buffer holds no partition
		if s.active[o.bk.partition]--; s.active[o.bk.partition] <= 0 {
			delete(s.active, o.bk.partition)
		}
	}
	s.sealDueLocked()
	s.broadcastLocked() // an upload slot is free
}

// complete acknowledges the Writes whose last unwritten object was o, then the Flushes whose
// last object it was. Flushes come second, so that a Flush returns only after the done callbacks
// of every Write it waited for have returned.
func (s *Sink) complete(o *object) {
	s.mu.Lock()
	dones := settle(o.acks)
	o.acks, o.recs, o.errs = nil, nil, nil
	s.releaseLocked(o)
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
		if a.remaining == 0 && a.fn != nil {
			fns = append(fns, a.fn)
		}
	}
	return fns
}

func (s *Sink) broadcastLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Flush seals every open buffer and waits until they and every object sealed before are written
// (every done of the Writes they hold called), or ctx ends; delivery goes on after that.
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
	for _, o := range s.open {
		o.flushes = append(o.flushes, a)
		a.remaining++
	}
	for _, o := range s.open {
		s.requestSealLocked(o)
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

func (s *Sink) undeliveredLocked() int { return len(s.pending) + len(s.open) }

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
