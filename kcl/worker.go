// Package kcl runs applications written for vmware-go-kcl-v2 (its clientlibrary/interfaces
// record processors and clientlibrary/config configuration) on shardhose's fenced lease loop.
// Switching is an import change: replace
//
//	"github.com/vmware/vmware-go-kcl-v2/clientlibrary/worker"
//
// with "github.com/shardhose/shardhose/kcl" and call kcl.NewWorker where worker.NewWorker was.
// The lease table keeps the library's layout, so a running application's table is taken over in
// place, checkpoints and all (see docs/migrating-from-vmware-go-kcl.md).
//
// What differs from the library, each for a defect it had: a checkpoint is a fenced write, so a
// processor that lost its lease gets an error from Checkpoint instead of moving the new owner's
// checkpoint back; a panic in a processor shuts that processor down and the shard is read again
// from its checkpoint instead of crashing the process; Shutdown returns within
// ShutdownGraceMillis even when a processor blocks.
package kcl

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	kclconfig "github.com/vmware/vmware-go-kcl-v2/clientlibrary/config"
	"github.com/vmware/vmware-go-kcl-v2/clientlibrary/interfaces"

	"github.com/shardhose/shardhose/checkpoint"
	"github.com/shardhose/shardhose/config"
	"github.com/shardhose/shardhose/consumer"
	"github.com/shardhose/shardhose/hooks"
	"github.com/shardhose/shardhose/internal/awsclient"
	"github.com/shardhose/shardhose/record"
	"github.com/shardhose/shardhose/sinks"
)

// startTimeout bounds Start's checks of the stream and the lease table.
const startTimeout = 30 * time.Second

// Worker runs one record processor per leased shard, like the library's worker.Worker.
//
// Each shard's processor is called from one goroutine at a time: Initialize, then ProcessRecords
// with the shard's records in order (one GetRecords result per call, KPL aggregates split), then
// Shutdown once with TERMINATE (the shard ended), ZOMBIE (the lease was lost or the worker was
// stopped hard) or REQUESTED (Shutdown was called, or the lease is being handed to another
// worker: the processor may checkpoint). Start and Shutdown are called once each.
type Worker struct {
	factory interfaces.IRecordProcessorFactory
	cfg     *kclconfig.KinesisClientLibConfiguration
	set     settings
	cfgErr  error
	log     *slog.Logger
	hooks   hooks.Set

	kinesisClient consumer.KinesisAPI
	dynamoClient  checkpoint.DynamoDBAPI
	rows          leaseReader // reads a shard's checkpoint for Initialize

	mu     sync.Mutex
	shards map[string]*shardProcessor
	behind sync.Map // shard id -> MillisBehindLatest of its last read (int64)

	cons      *consumer.Consumer
	cancelRun context.CancelFunc
	runDone   chan struct{}
	runErr    error
	startOnce sync.Once
	stopOnce  sync.Once
}

// NewWorker checks cfg and returns a worker for factory's processors. It has the library's
// signature, so it has no error result: a configuration shardhose cannot honour (each field
// named, with the value given and what is allowed) is returned by Start, before anything starts,
// and by Err.
func NewWorker(factory interfaces.IRecordProcessorFactory, cfg *kclconfig.KinesisClientLibConfiguration) *Worker {
	w := &Worker{factory: factory, cfg: cfg, log: slog.Default(), shards: map[string]*shardProcessor{}, runDone: make(chan struct{})}
	w.set, w.cfgErr = translate(cfg)
	if factory == nil {
		w.cfgErr = errors.Join(errors.New("kcl: the record processor factory is nil"), w.cfgErr)
	}
	return w
}

// Err returns the configuration error NewWorker found, or nil.
func (w *Worker) Err() error { return w.cfgErr }

// WithKinesis makes the worker use this Kinesis client instead of one built from the
// configuration (the library's WithKinesis). Call it before Start.
func (w *Worker) WithKinesis(c *kinesis.Client) *Worker {
	w.kinesisClient = c
	return w
}

// WithDynamoDB makes the worker use this DynamoDB client for the lease table instead of one
// built from the configuration. Call it before Start.
func (w *Worker) WithDynamoDB(c *dynamodb.Client) *Worker {
	w.dynamoClient = c
	return w
}

// WithLogger sends the worker's logs to l instead of slog.Default(). Call it before Start.
func (w *Worker) WithLogger(l *slog.Logger) *Worker {
	w.log = l
	return w
}

// WithHooks adds shardhose hooks (metrics, tracing) the worker reports to. Call it before Start.
func (w *Worker) WithHooks(h ...any) *Worker {
	w.hooks = append(w.hooks, h...)
	return w
}

// Start checks the configuration, the stream and the lease table (creating the table when it does
// not exist), then starts taking leases and processing shards in the background. It returns an
// error, and starts nothing, when any of that fails.
func (w *Worker) Start() error {
	err := errors.New("kcl: Start called twice")
	w.startOnce.Do(func() { err = w.start() })
	return err
}

func (w *Worker) start() error {
	if w.cfgErr != nil {
		return w.cfgErr
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := w.buildClients(ctx); err != nil {
		return err
	}
	table := checkpoint.NewTable(w.dynamoClient, w.set.leases.Table, w.set.leases.WorkerID,
		checkpoint.Options{LeaseDuration: w.set.leases.LeaseDuration, Logger: w.log})
	w.rows = table
	c, err := consumer.New(consumer.Options{
		WorkerID: w.set.leases.WorkerID,
		Stream:   w.set.stream,
		Leases:   w.set.leases,
		// One batch per GetRecords result, as the library hands them; no cap on records handed
		// but not checkpointed, since only the processor decides when to checkpoint.
		Batching:    config.Batching{MaxInFlightRecords: math.MaxInt32},
		Kinesis:     w.kinesisClient,
		Table:       table,
		Sinks:       []sinks.Sink{noSink{}},
		NewPipeline: w.newPipeline,
		Logger:      w.log,
		Hooks:       append(hooks.Set{w}, w.hooks...),
		NoClaims:    w.set.noClaims,
	})
	if err != nil {
		return fmt.Errorf("kcl: %w", err)
	}
	if err := c.Check(ctx); err != nil {
		return fmt.Errorf("kcl: %w", err)
	}
	w.cons = c
	runCtx, cancelRun := context.WithCancel(context.Background())
	w.cancelRun = cancelRun
	go func() {
		defer close(w.runDone)
		w.runErr = c.Run(runCtx)
	}()
	return nil
}

func (w *Worker) buildClients(ctx context.Context) error {
	if w.kinesisClient != nil && w.dynamoClient != nil {
		return nil
	}
	awsCfg, err := awsclient.Load(ctx, config.AWS{Region: w.set.region, Timeouts: config.TimeoutsDefaults()}, w.log)
	if err != nil {
		return fmt.Errorf("kcl: %w", err)
	}
	if w.kinesisClient == nil {
		w.kinesisClient = kinesis.NewFromConfig(awsCfg, func(o *kinesis.Options) {
			if w.cfg.KinesisEndpoint != "" {
				o.BaseEndpoint = aws.String(w.cfg.KinesisEndpoint)
			}
			if w.cfg.KinesisCredentials != nil {
				o.Credentials = w.cfg.KinesisCredentials
			}
		})
	}
	if w.dynamoClient == nil {
		w.dynamoClient = dynamodb.NewFromConfig(awsCfg, func(o *dynamodb.Options) {
			if w.cfg.DynamoDBEndpoint != "" {
				o.BaseEndpoint = aws.String(w.cfg.DynamoDBEndpoint)
			}
			if w.cfg.DynamoDBCredentials != nil {
				o.Credentials = w.cfg.DynamoDBCredentials
			}
		})
	}
	return nil
}

// Shutdown stops reading every shard, calls each processor's Shutdown with REQUESTED (it may
// checkpoint), writes the checkpoints and releases the leases so other workers take them at once.
// It returns within ShutdownGraceMillis (plus the final lease writes) even if a processor blocks:
// what was not checkpointed by then is read again by the next owner. It logs what was left.
func (w *Worker) Shutdown() {
	w.stopOnce.Do(func() {
		if w.cons == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), w.set.shutdownGrace)
		defer cancel()
		if err := w.cons.Shutdown(ctx); err != nil {
			w.log.Warn("kcl: shutdown left records unprocessed; the next owner reads them again", "error", err)
		}
		w.cancelRun()
		<-w.runDone
		w.log.Info("kcl: worker stopped", "worker", w.set.leases.WorkerID)
	})
}

// OnRecordsRead keeps each shard's MillisBehindLatest for its next ProcessRecords call.
func (w *Worker) OnRecordsRead(stream, shardID string, records, bytes int, millisBehindLatest int64) {
	w.behind.Store(shardID, millisBehindLatest)
}

// OnCheckpoint tells the shard's processor that its checkpoint was written.
func (w *Worker) OnCheckpoint(stream, shardID, sequenceNumber string, subSequenceNumber int64) {
	w.mu.Lock()
	sp := w.shards[shardID]
	w.mu.Unlock()
	if sp != nil {
		sp.markWritten(record.Position{SequenceNumber: sequenceNumber, SubSequenceNumber: subSequenceNumber})
	}
}

func (w *Worker) millisBehind(shardID string) int64 {
	v, _ := w.behind.Load(shardID)
	n, _ := v.(int64)
	return n
}

func (w *Worker) newPipeline(ctx context.Context, shardID string) consumer.Pipeline {
	sp := newShardProcessor(ctx, w, shardID)
	w.mu.Lock()
	w.shards[shardID] = sp
	w.mu.Unlock()
	return sp
}

func (w *Worker) forget(sp *shardProcessor) {
	w.mu.Lock()
	if w.shards[sp.shardID] == sp {
		delete(w.shards, sp.shardID)
	}
	w.mu.Unlock()
}

// leaseReader is the part of *checkpoint.Table a shard's processor reads its checkpoint with.
type leaseReader interface {
	Get(ctx context.Context, shardID string) (checkpoint.Lease, bool, error)
}

// noSink is the consumer's sink: a record processor delivers records itself, so there is
// nothing to write; it acknowledges at once.
type noSink struct{}

func (noSink) Name() string { return "record-processor" }
func (noSink) Write(_ context.Context, _ []record.Record, done func()) error {
	done()
	return nil
}
func (noSink) Flush(context.Context) error { return nil }
func (noSink) Close(context.Context) error { return nil }
