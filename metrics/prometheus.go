// Package metrics is shardhose's one metrics adapter: it implements the hooks interfaces (see
// package hooks) with Prometheus collectors named after Lambda's and Firehose's CloudWatch
// metrics, serves them for scraping, and can publish the same figures to CloudWatch. No other
// package imports Prometheus; docs/operations.md maps every metric to its AWS counterpart.
package metrics

import (
	"errors"
	"maps"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/shardhose/shardhose/hooks"
	"github.com/shardhose/shardhose/internal/clock"
	"github.com/shardhose/shardhose/process"
)

// Options describe what the adapter reports on.
type Options struct {
	// Stream is the consumed stream's name (the stream label).
	Stream string
	// DeadLetterDestination is dead_letter.type (sqs, sns, s3, kinesis, file), the destination label.
	DeadLetterDestination string
	// Sinks maps each sink's name to its type (s3, http, opensearch, firehose, file).
	Sinks map[string]string
	// Clock times freshness and retries; nil means clock.Real().
	Clock clock.Clock
}

// Adapter implements the hooks with Prometheus collectors. Every hook method is cheap (a map
// lookup and an atomic add, or a short critical section) and safe for concurrent use.
type Adapter struct {
	opts  Options
	clock clock.Clock
	reg   *prometheus.Registry

	behindLatest  *prometheus.GaugeVec
	recordsRead   *prometheus.CounterVec
	bytesRead     *prometheus.CounterVec
	throttled     *prometheus.CounterVec
	checkpointLag *prometheus.GaugeVec
	checkpoints   *prometheus.CounterVec
	leaseHeld     *prometheus.GaugeVec

	polled, filtered, invoked, failedInvoke, dropped, destDelivered prometheus.Counter
	processed                                                       *prometheus.CounterVec
	handlerDuration                                                 *prometheus.HistogramVec
	splits, retries                                                 prometheus.Counter
	deadLetters, deadLetterRecords, deadLetterFailures              *prometheus.CounterVec

	deliveryRecords, deliveryBytes, deliverySuccess, deliveryFailures, backupRecords *prometheus.CounterVec

	leasesTaken, leasesStolen, leasesExpired prometheus.Counter
	pressureFlushes                          prometheus.Counter
	leasesLost, leaseTableFailures           *prometheus.CounterVec

	mu     sync.Mutex
	held   map[string]bool
	shards map[string]*shardState
	sinks  map[string]*sinkState
}

type shardState struct {
	age     time.Duration // iterator age of the last batch handed on
	ageAt   time.Time     // when it was measured
	waiting bool          // the reader waits for room: the records it holds keep ageing
}

type sinkState struct {
	pending      map[uint64]time.Time // write id → arrival of its oldest record
	paused       int                  // deliveries paused now
	failingSince time.Time            // first failure with no success since; zero when healthy
}

// Interface guards: the hooks the adapter implements.
var (
	_ hooks.RecordsRead      = (*Adapter)(nil)
	_ hooks.ThrottledRead    = (*Adapter)(nil)
	_ hooks.Checkpointed     = (*Adapter)(nil)
	_ hooks.IteratorAge      = (*Adapter)(nil)
	_ hooks.CheckpointLag    = (*Adapter)(nil)
	_ hooks.ShardWaiting     = (*Adapter)(nil)
	_ hooks.Delivered        = (*Adapter)(nil)
	_ hooks.DeliveryFailed   = (*Adapter)(nil)
	_ hooks.BackedUp         = (*Adapter)(nil)
	_ hooks.SinkPaused       = (*Adapter)(nil)
	_ hooks.SinkPending      = (*Adapter)(nil)
	_ hooks.LeaseChanged     = (*Adapter)(nil)
	_ hooks.LeaseClaimed     = (*Adapter)(nil)
	_ hooks.ShardEnded       = (*Adapter)(nil)
	_ hooks.LeaseTakenOver   = (*Adapter)(nil)
	_ hooks.LeaseTableFailed = (*Adapter)(nil)
	_ hooks.HandlerCalled    = (*Adapter)(nil)
	_ hooks.Processed        = (*Adapter)(nil)
	_ hooks.BatchSplit       = (*Adapter)(nil)
	_ hooks.BatchRetried     = (*Adapter)(nil)
	_ hooks.GaveUp           = (*Adapter)(nil)
	_ hooks.DeadLettered     = (*Adapter)(nil)
	_ hooks.DeadLetterFailed = (*Adapter)(nil)
	_ hooks.MemoryPressure   = (*Adapter)(nil)
)

// HandlerBuckets are the handler duration histogram's buckets, in seconds: 1 ms to 15 minutes
// (Lambda's longest timeout).
var HandlerBuckets = []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900}

// New returns an adapter with its own registry, holding its collectors and Go's runtime and
// process collectors.
func New(o Options) *Adapter {
	a := &Adapter{opts: o, clock: o.Clock, reg: prometheus.NewRegistry(),
		held: map[string]bool{}, shards: map[string]*shardState{}, sinks: map[string]*sinkState{}}
	if a.clock == nil {
		a.clock = clock.Real()
	}
	for name := range o.Sinks {
		a.sinks[name] = &sinkState{pending: map[uint64]time.Time{}}
	}
	stream := prometheus.Labels{"stream": o.Stream}
	shard := []string{"stream", "shard_id"}
	f := factory{a.reg}
	a.behindLatest = f.gaugeVec("shardhose_behind_latest_seconds", "How far the last GetRecords result was behind the tip of the shard (MillisBehindLatest).", shard)
	a.recordsRead = f.counterVec("shardhose_records_read_total", "Records read from the shard, after KPL de-aggregation (Firehose DataReadFromKinesisStream.Records).", shard)
	a.bytesRead = f.counterVec("shardhose_bytes_read_total", "Bytes of record data read from the shard (Firehose DataReadFromKinesisStream.Bytes).", shard)
	a.throttled = f.counterVec("shardhose_get_records_throttled_total", "GetRecords calls throttled (Firehose ThrottledGetRecords).", shard)
	a.checkpointLag = f.gaugeVec("shardhose_checkpoint_lag_records", "Records read from the shard but not yet behind its written checkpoint: read again after a crash.", shard)
	a.checkpoints = f.counterVec("shardhose_checkpoints_total", "Checkpoints written to the lease table.", shard)
	a.leaseHeld = f.gaugeVec("shardhose_lease_held", "1 while this worker holds the shard's lease.", shard)

	a.polled = f.counter("shardhose_esm_polled_events_total", "Records read (Lambda PolledEventCount).", stream)
	a.filtered = f.counter("shardhose_esm_filtered_out_events_total", "Records that matched no filter pattern (Lambda FilteredOutEventCount).", stream)
	a.invoked = f.counter("shardhose_esm_invoked_events_total", "Records in handler calls, retries included (Lambda InvokedEventCount).", stream)
	a.failedInvoke = f.counter("shardhose_esm_failed_invoke_events_total", "Records in handler calls that failed: function errors and invocations that did not happen (Lambda FailedInvokeEventCount).", stream)
	a.dropped = f.counter("shardhose_esm_dropped_events_total", "Records given up on after retries or by age, then written as dead letters (Lambda DroppedEventCount).", stream)
	a.destDelivered = f.counter("shardhose_esm_on_failure_destination_delivered_events_total", "Records stored in the dead-letter destination (Lambda OnFailureDestinationDeliveredEventCount).", stream)
	a.processed = f.counterVec("shardhose_processed_records_total", "Records by handler outcome: delivered, filtered, dropped (Firehose transform Dropped), processing_failed (to the error output).", []string{"stream", "outcome"})
	a.handlerDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "shardhose_handler_duration_seconds", Help: "Duration of handler calls by result: ok, function_error, not_invoked (Lambda Duration).", Buckets: HandlerBuckets, ConstLabels: stream}, []string{"result"})
	a.reg.MustRegister(a.handlerDuration)
	a.splits = f.counter("shardhose_batch_splits_total", "Failing batches split in two (BisectBatchOnFunctionError).", stream)
	a.retries = f.counter("shardhose_batch_retries_total", "Failing batches retried after a backoff (MaximumRetryAttempts).", stream)
	dl := []string{"stream", "condition", "destination"}
	a.deadLetters = f.counterVec("shardhose_dead_letters_total", "Dead letters stored, by condition (RetryAttemptsExhausted, RecordAgeExceeded, DeaggregationFailed) and destination.", dl)
	a.deadLetterRecords = f.counterVec("shardhose_dead_letter_records_total", "Records in the dead letters stored.", dl)
	a.deadLetterFailures = f.counterVec("shardhose_dead_letter_failures_total", "Failed attempts to store a dead letter; each is retried until stored (Lambda DestinationDeliveryFailures).", dl)

	sink := []string{"sink"}
	a.deliveryRecords = f.counterVec("shardhose_delivery_records_total", "Records delivered to the sink's destination (Firehose DeliveryToS3.Records).", sink)
	a.deliveryBytes = f.counterVec("shardhose_delivery_bytes_total", "Bytes delivered to the sink's destination (Firehose DeliveryToS3.Bytes).", sink)
	a.deliverySuccess = f.counterVec("shardhose_delivery_success_total", "Successful deliveries (objects, requests) (Firehose DeliveryToS3.Success).", sink)
	a.deliveryFailures = f.counterVec("shardhose_delivery_failures_total", "Failed delivery attempts, each retried or backed up.", sink)
	a.backupRecords = f.counterVec("shardhose_backup_records_total", "Records written to the sink's S3 backup (Firehose BackupToS3.Records).", sink)
	a.reg.MustRegister(sinkCollector{a})

	a.leasesTaken = f.counter("shardhose_leases_taken_total", "Leases this worker took.", stream)
	a.leasesStolen = f.counter("shardhose_leases_stolen_total", "Leases this worker claimed from busier workers, which hand them over (the KCL's stolen leases).", stream)
	a.leasesExpired = f.counter("shardhose_leases_expired_total", "Leases this worker took over after their owner let them expire.", stream)
	a.leasesLost = f.counterVec("shardhose_leases_lost_total", "Leases this worker stopped holding, by reason: lost (another worker holds it), handed_off (claimed by another), stalled, failed.", []string{"stream", "reason"})
	a.leaseTableFailures = f.counterVec("shardhose_lease_table_failures_total", "Lease table calls that failed (not a lost lease), by operation: renew, checkpoint, take, release, claim, create, list.", []string{"stream", "operation"})
	a.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "shardhose_leases_held", Help: "Leases this worker holds.", ConstLabels: stream}, func() float64 {
		a.mu.Lock()
		defer a.mu.Unlock()
		return float64(len(a.held))
	}))

	a.pressureFlushes = f.counter("shardhose_memory_pressure_flushes_total", "Times reads waited for room in the memory budget (memory.max_in_flight_mbs) and the sinks were flushed early.", stream)

	a.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return a
}

type factory struct{ reg *prometheus.Registry }

func (f factory) counter(name, help string, labels prometheus.Labels) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels})
	f.reg.MustRegister(c)
	return c
}

func (f factory) counterVec(name, help string, labels []string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	f.reg.MustRegister(c)
	return c
}

func (f factory) gaugeVec(name, help string, labels []string) *prometheus.GaugeVec {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
	f.reg.MustRegister(g)
	return g
}

// Handler serves the registry in Prometheus's text (or OpenMetrics) format.
func (a *Adapter) Handler() http.Handler {
	return promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{Registry: a.reg})
}

// Gatherer returns the registry, for the CloudWatch publisher and tests.
func (a *Adapter) Gatherer() prometheus.Gatherer { return a.reg }

// --- shards ---

// OnRecordsRead implements hooks.RecordsRead.
func (a *Adapter) OnRecordsRead(stream, shardID string, records, bytes int, millisBehindLatest int64) {
	a.recordsRead.WithLabelValues(stream, shardID).Add(float64(records))
	a.bytesRead.WithLabelValues(stream, shardID).Add(float64(bytes))
	a.behindLatest.WithLabelValues(stream, shardID).Set(float64(millisBehindLatest) / 1000)
	a.polled.Add(float64(records))
	if records == 0 && millisBehindLatest == 0 {
		// Caught up with nothing waiting: no record is ageing in this shard.
		a.mu.Lock()
		if s, ok := a.shards[shardID]; ok && !s.waiting {
			s.age, s.ageAt = 0, a.clock.Now()
		}
		a.mu.Unlock()
	}
}

// OnMemoryPressure implements hooks.MemoryPressure.
func (a *Adapter) OnMemoryPressure() { a.pressureFlushes.Inc() }

// TrackMemoryBudget exports the bytes of record data held against the memory budget and the
// budget's size, read at each scrape.
func (a *Adapter) TrackMemoryBudget(held, limit func() int64) {
	stream := prometheus.Labels{"stream": a.opts.Stream}
	a.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "shardhose_memory_in_flight_bytes", Help: "Record data read and not yet acknowledged by every sink, over all shards.", ConstLabels: stream},
			func() float64 { return float64(held()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "shardhose_memory_in_flight_limit_bytes", Help: "The cap on record data in flight (memory.max_in_flight_mbs).", ConstLabels: stream},
			func() float64 { return float64(limit()) }))
}

// OnThrottledRead implements hooks.ThrottledRead.
func (a *Adapter) OnThrottledRead(stream, shardID string) {
	a.throttled.WithLabelValues(stream, shardID).Inc()
}

// OnCheckpoint implements hooks.Checkpointed.
func (a *Adapter) OnCheckpoint(stream, shardID, _ string, _ int64) {
	a.checkpoints.WithLabelValues(stream, shardID).Inc()
}

// OnIteratorAge implements hooks.IteratorAge.
func (a *Adapter) OnIteratorAge(_, shardID string, age time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.shardLocked(shardID)
	s.age, s.ageAt = age, a.clock.Now()
}

// OnShardWaiting implements hooks.ShardWaiting. At the end of a wait the time waited is added to
// the iterator age: the batch was that much older when it was handed on.
func (a *Adapter) OnShardWaiting(_, shardID string, waiting bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.shardLocked(shardID)
	if s.waiting && !waiting && !s.ageAt.IsZero() {
		now := a.clock.Now()
		s.age += now.Sub(s.ageAt)
		s.ageAt = now
	}
	s.waiting = waiting
}

func (a *Adapter) shardLocked(id string) *shardState {
	s, ok := a.shards[id]
	if !ok {
		s = &shardState{}
		a.shards[id] = s
	}
	return s
}

// OnCheckpointLag implements hooks.CheckpointLag.
func (a *Adapter) OnCheckpointLag(stream, shardID string, records int) {
	a.checkpointLag.WithLabelValues(stream, shardID).Set(float64(records))
}

// --- leases ---

// OnLeaseTaken implements hooks.LeaseChanged.
func (a *Adapter) OnLeaseTaken(shardID string) {
	a.leasesTaken.Inc()
	a.leaseHeld.WithLabelValues(a.opts.Stream, shardID).Set(1)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.held[shardID] = true
}

// OnLeaseLost implements hooks.LeaseChanged. The shard's gauges are removed: they would go stale.
func (a *Adapter) OnLeaseLost(shardID, reason string) {
	a.leasesLost.WithLabelValues(a.opts.Stream, lostReason(reason)).Inc()
	a.forgetShard(shardID)
}

// lostReason turns the consumer's reason into a label value.
func lostReason(reason string) string {
	switch {
	case reason == "lease lost":
		return "lost"
	case reason == "handed off":
		return "handed_off"
	case reason == "stalled":
		return "stalled"
	default:
		return "failed"
	}
}

// OnShardEnd implements hooks.ShardEnded: the lease of a finished shard is released, not lost.
func (a *Adapter) OnShardEnd(stream, shardID string) {
	a.forgetShard(shardID)
}

// forgetShard marks the shard's lease as not held and removes its gauges, which would go stale.
func (a *Adapter) forgetShard(shardID string) {
	a.leaseHeld.WithLabelValues(a.opts.Stream, shardID).Set(0)
	a.checkpointLag.DeleteLabelValues(a.opts.Stream, shardID)
	a.behindLatest.DeleteLabelValues(a.opts.Stream, shardID)
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.held, shardID)
	delete(a.shards, shardID)
}

// OnLeaseClaimed implements hooks.LeaseClaimed.
func (a *Adapter) OnLeaseClaimed(string, string) { a.leasesStolen.Inc() }

// OnLeaseTakenOver implements hooks.LeaseTakenOver.
func (a *Adapter) OnLeaseTakenOver(string, string) { a.leasesExpired.Inc() }

// OnLeaseTableFailed implements hooks.LeaseTableFailed.
func (a *Adapter) OnLeaseTableFailed(operation string, _ error) {
	a.leaseTableFailures.WithLabelValues(a.opts.Stream, operation).Inc()
}

// --- processing ---

// OnHandlerCall implements hooks.HandlerCalled.
func (a *Adapter) OnHandlerCall(_ string, records int, took time.Duration, err error) {
	result := "ok"
	var notInvoked *process.InvocationError
	switch {
	case errors.As(err, &notInvoked):
		result = "not_invoked"
	case err != nil:
		result = "function_error"
	}
	a.handlerDuration.WithLabelValues(result).Observe(took.Seconds())
	a.invoked.Add(float64(records))
	if err != nil {
		a.failedInvoke.Add(float64(records))
	}
}

// OnProcessed implements hooks.Processed.
func (a *Adapter) OnProcessed(_ string, delivered, filtered, dropped, failed int) {
	s := a.opts.Stream
	a.processed.WithLabelValues(s, "delivered").Add(float64(delivered))
	a.processed.WithLabelValues(s, "filtered").Add(float64(filtered))
	a.processed.WithLabelValues(s, "dropped").Add(float64(dropped))
	a.processed.WithLabelValues(s, "processing_failed").Add(float64(failed))
	a.filtered.Add(float64(filtered))
}

// OnBatchSplit implements hooks.BatchSplit.
func (a *Adapter) OnBatchSplit(string, int) { a.splits.Inc() }

// OnBatchRetry implements hooks.BatchRetried.
func (a *Adapter) OnBatchRetry(string, int, int) { a.retries.Inc() }

// OnGiveUp implements hooks.GaveUp.
func (a *Adapter) OnGiveUp(_ string, _ string, records int) { a.dropped.Add(float64(records)) }

// OnDeadLetter implements hooks.DeadLettered.
func (a *Adapter) OnDeadLetter(_ string, condition string, records int) {
	a.deadLetters.WithLabelValues(a.opts.Stream, condition, a.opts.DeadLetterDestination).Inc()
	a.deadLetterRecords.WithLabelValues(a.opts.Stream, condition, a.opts.DeadLetterDestination).Add(float64(records))
	a.destDelivered.Add(float64(records))
}

// OnDeadLetterFailed implements hooks.DeadLetterFailed.
func (a *Adapter) OnDeadLetterFailed(_ string, condition string, _ int, _ error) {
	a.deadLetterFailures.WithLabelValues(a.opts.Stream, condition, a.opts.DeadLetterDestination).Inc()
}

// --- sinks ---

func (a *Adapter) sinkLocked(name string) *sinkState {
	s, ok := a.sinks[name]
	if !ok {
		s = &sinkState{pending: map[uint64]time.Time{}}
		a.sinks[name] = s
	}
	return s
}

// OnDelivered implements hooks.Delivered.
func (a *Adapter) OnDelivered(sink string, records, bytes int, _ time.Duration) {
	a.deliveryRecords.WithLabelValues(sink).Add(float64(records))
	a.deliveryBytes.WithLabelValues(sink).Add(float64(bytes))
	a.deliverySuccess.WithLabelValues(sink).Inc()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.sinkLocked(sink).failingSince = time.Time{}
}

// OnDeliveryFailed implements hooks.DeliveryFailed.
func (a *Adapter) OnDeliveryFailed(sink string, _ int, _ error) {
	a.deliveryFailures.WithLabelValues(sink).Inc()
	a.mu.Lock()
	defer a.mu.Unlock()
	if s := a.sinkLocked(sink); s.failingSince.IsZero() {
		s.failingSince = a.clock.Now()
	}
}

// OnBackedUp implements hooks.BackedUp. A backup ends the retries of the records it holds.
func (a *Adapter) OnBackedUp(sink string, records int) {
	a.backupRecords.WithLabelValues(sink).Add(float64(records))
	a.mu.Lock()
	defer a.mu.Unlock()
	a.sinkLocked(sink).failingSince = time.Time{}
}

// OnSinkPaused implements hooks.SinkPaused.
func (a *Adapter) OnSinkPaused(sink string, paused bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.sinkLocked(sink)
	if paused {
		s.paused++
	} else if s.paused > 0 {
		s.paused--
	}
}

// OnSinkWrite implements hooks.SinkPending.
func (a *Adapter) OnSinkWrite(sink string, id uint64, oldest time.Time, _ int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.sinkLocked(sink).pending[id] = oldest
}

// OnSinkDone implements hooks.SinkPending.
func (a *Adapter) OnSinkDone(sink string, id uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.sinkLocked(sink).pending, id)
}

// sinkCollector reports the figures computed when scraped: per sink data freshness, time in a
// retry and paused, and per shard the iterator age (which grows between batches while the
// shard waits for room).
type sinkCollector struct{ a *Adapter }

var (
	freshnessDesc = prometheus.NewDesc("shardhose_delivery_data_freshness_seconds",
		"Age of the oldest record handed to the sink and not yet delivered or backed up; 0 when none is pending (Firehose DeliveryToS3.DataFreshness).", []string{"sink"}, nil)
	retryDesc = prometheus.NewDesc("shardhose_delivery_retry_seconds",
		"How long the sink's deliveries have been failing with no success or backup since; 0 when healthy.", []string{"sink"}, nil)
	iteratorAgeDesc = prometheus.NewDesc("shardhose_iterator_age_seconds",
		"Age of the newest record of the last batch handed on, growing while the shard waits for room; 0 once caught up (Lambda IteratorAge).", []string{"stream", "shard_id"}, nil)
	pausedDesc = prometheus.NewDesc("shardhose_sink_paused",
		"1 while the sink holds a delivery that neither its destination nor its backup takes (S3: while a PUT fails); the checkpoint waits.", []string{"sink"}, nil)
)

func (c sinkCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- freshnessDesc
	ch <- retryDesc
	ch <- pausedDesc
	ch <- iteratorAgeDesc
}

func (c sinkCollector) Collect(ch chan<- prometheus.Metric) {
	a := c.a
	now := a.clock.Now()
	a.mu.Lock()
	names := slices.Sorted(maps.Keys(a.sinks))
	type row struct {
		name                    string
		fresh, retrying, paused float64
	}
	rows := make([]row, 0, len(names))
	for _, n := range names {
		s := a.sinks[n]
		r := row{name: n}
		for _, t := range s.pending {
			if age := now.Sub(t).Seconds(); age > r.fresh {
				r.fresh = age
			}
		}
		if !s.failingSince.IsZero() {
			r.retrying = now.Sub(s.failingSince).Seconds()
		}
		if s.paused > 0 {
			r.paused = 1
		}
		rows = append(rows, r)
	}
	ages := make(map[string]float64, len(a.shards))
	for id, s := range a.shards {
		age := s.age
		if s.waiting && !s.ageAt.IsZero() {
			age += now.Sub(s.ageAt)
		}
		ages[id] = age.Seconds()
	}
	a.mu.Unlock()
	for id, age := range ages {
		ch <- prometheus.MustNewConstMetric(iteratorAgeDesc, prometheus.GaugeValue, age, a.opts.Stream, id)
	}
	for _, r := range rows {
		ch <- prometheus.MustNewConstMetric(freshnessDesc, prometheus.GaugeValue, r.fresh, r.name)
		ch <- prometheus.MustNewConstMetric(retryDesc, prometheus.GaugeValue, r.retrying, r.name)
		ch <- prometheus.MustNewConstMetric(pausedDesc, prometheus.GaugeValue, r.paused, r.name)
	}
}
