package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/shardhose/shardhose/config"
	"github.com/shardhose/shardhose/consumer"
	"github.com/shardhose/shardhose/dlq"
	"github.com/shardhose/shardhose/hooks"
	"github.com/shardhose/shardhose/internal/awsclient"
	"github.com/shardhose/shardhose/internal/clock"
	"github.com/shardhose/shardhose/internal/retry"
	"github.com/shardhose/shardhose/pipeline"
	"github.com/shardhose/shardhose/process"
	"github.com/shardhose/shardhose/record"
	"github.com/shardhose/shardhose/sinks"
	"github.com/shardhose/shardhose/sinks/backup"
	filesink "github.com/shardhose/shardhose/sinks/file"
	firehosesink "github.com/shardhose/shardhose/sinks/firehose"
	httpsink "github.com/shardhose/shardhose/sinks/http"
	opensearchsink "github.com/shardhose/shardhose/sinks/opensearch"
	s3sink "github.com/shardhose/shardhose/sinks/s3"
)

// checker is implemented by parts that can verify at start-up that their destination is usable.
type checker interface {
	Check(ctx context.Context) error
}

// runtime is everything the daemon builds from the configuration before it starts reading.
type runtime struct {
	sinks     []sinks.Sink
	pipeline  consumer.PipelineFactory
	streamARN string
}

// closeSinks closes every sink built so far, giving each a few seconds.
func (rt *runtime) closeSinks(ctx context.Context) { closeSinks(ctx, rt.sinks) }

func closeSinks(ctx context.Context, built []sinks.Sink) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for _, s := range built {
		_ = s.Close(ctx)
	}
}

// buildSinks makes every configured sink, checking each destination; on error it closes those
// already made.
// hs are told of each sink's deliveries, failures, backups and pauses, and (sinks.Observe) of
// the records each holds undelivered.
func buildSinks(ctx context.Context, cfg config.Config, awsCfg aws.Config, streamARN string, log *slog.Logger, clk clock.Clock, hs hooks.Set) ([]sinks.Sink, error) {
	var built []sinks.Sink
	for _, sc := range cfg.Sinks {
		// Each sink names itself in its own lines (sink=...).
		s, err := buildSink(ctx, sc, cfg, awsCfg, streamARN, log, clk, hs)
		if err != nil {
			closeSinks(ctx, built)
			return nil, fmt.Errorf("sink %s: %w", sc.Name, err)
		}
		built = append(built, sinks.Observe(s, hs))
	}
	return built, nil
}

// deliverNow writes records to every sink and flushes them, returning once every sink has
// delivered (or backed up) all of them.
func deliverNow(ctx context.Context, to []sinks.Sink, recs []record.Record) error {
	done := make(chan struct{})
	if err := consumer.WriteToSinks(ctx, to, recs, func() { close(done) }); err != nil {
		return err
	}
	for _, s := range to {
		if err := s.Flush(ctx); err != nil {
			return fmt.Errorf("flush sink %s: %w", s.Name(), err)
		}
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// build makes the sinks, the dead-letter destination and the processing pipeline, and checks each
// destination that can be checked; hs (metrics, health) are given to each. Any error is a
// start-up error (exit 1).
func build(ctx context.Context, cfg config.Config, awsCfg aws.Config, log *slog.Logger, clk clock.Clock, hs hooks.Set) (*runtime, error) {
	rt := &runtime{}
	kin := awsclient.Kinesis(awsCfg, cfg.AWS)
	s3c := awsclient.S3(awsCfg, cfg.AWS)

	// The stream's ARN names the source in dead letters and in events sent to functions.
	in := &kinesis.DescribeStreamSummaryInput{}
	if cfg.Stream.ARN != "" {
		in.StreamARN = aws.String(cfg.Stream.ARN)
	} else {
		in.StreamName = aws.String(cfg.Stream.StreamName())
	}
	if out, err := kin.DescribeStreamSummary(ctx, in); err == nil && out.StreamDescriptionSummary != nil {
		rt.streamARN = aws.ToString(out.StreamDescriptionSummary.StreamARN)
	} else {
		rt.streamARN = cfg.Stream.ARN // Check reports the problem with the stream in one line
	}

	var err error
	if rt.sinks, err = buildSinks(ctx, cfg, awsCfg, rt.streamARN, log, clk, hs); err != nil {
		return nil, err
	}

	dead, err := dlq.Build(ctx, cfg.DeadLetter, dlq.Clients{
		SQS: awsclient.SQS(awsCfg, cfg.AWS), SNS: awsclient.SNS(awsCfg, cfg.AWS), S3: s3c, Kinesis: kin,
	})
	if err != nil {
		rt.closeSinks(ctx)
		return nil, fmt.Errorf("dead_letter: %w", err)
	}
	if c, ok := dead.(checker); ok && dead != nil {
		if err := c.Check(ctx); err != nil {
			rt.closeSinks(ctx)
			return nil, fmt.Errorf("dead_letter (%s): %w", cfg.DeadLetter.Type, err)
		}
	}

	p := cfg.Processing
	if len(p.Handlers) == 0 && dead == nil {
		rt.pipeline = consumer.DeliverToSinks(rt.sinks)
		return rt, nil
	}
	region := cfg.AWS.Region
	handler, err := process.Build(p, process.Deps{
		Lambda:                  awsclient.Lambda(awsCfg, cfg.AWS),
		Clock:                   clk,
		Logger:                  log,
		Source:                  process.Source{StreamARN: rt.streamARN, Region: region},
		ReportBatchItemFailures: p.ReportsBatchItemFailures(),
	})
	if err != nil {
		rt.closeSinks(ctx)
		return nil, err
	}
	var errOut backup.Writer
	if p.ErrorOutput.Bucket != "" {
		w, err := backup.NewS3Writer(backup.S3Options{
			Client: s3c, Bucket: p.ErrorOutput.Bucket, Prefix: p.ErrorOutput.Prefix,
			Compression: "UNCOMPRESSED", SinkName: "processing", Clock: clk, Logger: log,
		})
		if err != nil {
			rt.closeSinks(ctx)
			return nil, fmt.Errorf("processing.error_output: %w", err)
		}
		errOut = w
	}
	maxAge := time.Duration(0)
	if p.MaximumRecordAgeInSeconds > 0 {
		maxAge = time.Duration(p.MaximumRecordAgeInSeconds) * time.Second
	}
	rt.pipeline, err = pipeline.New(pipeline.Options{
		Policy: pipeline.Policy{
			MaximumRetryAttempts:       p.MaximumRetryAttempts,
			MaximumRecordAge:           maxAge,
			BisectBatchOnFunctionError: p.BisectBatchOnFunctionError,
			ReportBatchItemFailures:    p.ReportsBatchItemFailures(),
			ParallelizationFactor:      p.ParallelizationFactor,
			HandlerTimeout:             p.HandlerTimeout,
			Backoff:                    retry.Policy{Initial: p.Retry.InitialBackoff, Max: p.Retry.MaxBackoff, Multiplier: 2, Jitter: 0.2},
		},
		Handler:     handler,
		Sinks:       rt.sinks,
		DeadLetters: dead,
		ErrorOutput: errOut,
		StreamName:  cfg.Stream.StreamName(),
		StreamARN:   rt.streamARN,
		Region:      region,
		FunctionARN: functionARN(p),
		Clock:       clk,
		Logger:      log,
		Hooks:       hs,
	})
	if err != nil {
		rt.closeSinks(ctx)
		return nil, fmt.Errorf("processing: %w", err)
	}
	return rt, nil
}

// functionARN names the handler chain in dead letters: the Lambda function when there is one,
// else "shardhose:<handler types>".
func functionARN(p config.Processing) string {
	name := "shardhose:"
	for i, h := range p.Handlers {
		if h.Type == config.HandlerLambda {
			return h.Function
		}
		if i > 0 {
			name += "+"
		}
		name += h.Type
	}
	if len(p.Handlers) == 0 {
		name += "deliver"
	}
	return name
}

// buildSink makes one sink from its section and checks its destination.
func buildSink(ctx context.Context, sc config.Sink, cfg config.Config, awsCfg aws.Config, streamARN string, log *slog.Logger, clk clock.Clock, hs hooks.Set) (sinks.Sink, error) {
	s3c := awsclient.S3(awsCfg, cfg.AWS)
	backupWriter := func(bucket, prefix, compression string) (backup.Writer, error) {
		if bucket == "" {
			return nil, nil
		}
		if err := checkBucket(ctx, s3c, bucket, awsclient.Endpoint(cfg.AWS, "s3")); err != nil {
			return nil, fmt.Errorf("s3_backup: %w", err)
		}
		return backup.NewS3Writer(backup.S3Options{Client: s3c, Bucket: bucket, Prefix: prefix, Compression: compression, SinkName: sc.Name, Clock: clk, Logger: log, Hooks: hs})
	}
	var s sinks.Sink
	switch sc.Type {
	case "s3":
		if err := checkBucket(ctx, s3c, sc.S3.Bucket, awsclient.Endpoint(cfg.AWS, "s3")); err != nil {
			return nil, err
		}
		x, err := s3sink.New(s3sink.Options{Name: sc.Name, Config: *sc.S3, Client: s3c, Clock: clk, Logger: log, Hooks: hs})
		if err != nil {
			return nil, err
		}
		s = x
	case "firehose":
		bw, err := backupWriter(sc.Firehose.S3Backup.Bucket, sc.Firehose.S3Backup.Prefix, "")
		if err != nil {
			return nil, err
		}
		x, err := firehosesink.New(firehosesink.Options{Name: sc.Name, Config: *sc.Firehose, Client: awsclient.Firehose(awsCfg, cfg.AWS), Backup: bw, Clock: clk, Logger: log, Hooks: hs})
		if err != nil {
			return nil, err
		}
		s = x
	case "http":
		c := sc.HTTP
		bw, err := backupWriter(c.S3Backup.Bucket, c.S3Backup.Prefix, c.S3Backup.Compression)
		if err != nil {
			return nil, err
		}
		x, err := httpsink.New(httpsink.Options{Name: sc.Name, Config: *c, SourceARN: streamARN, Backup: bw, Clock: clk, Logger: log, Hooks: hs})
		if err != nil {
			return nil, err
		}
		s = x
	case "opensearch":
		c := sc.OpenSearch
		bw, err := backupWriter(c.S3Backup.Bucket, c.S3Backup.Prefix, c.S3Backup.Compression)
		if err != nil {
			return nil, err
		}
		x, err := opensearchsink.New(opensearchsink.Options{Name: sc.Name, Config: *c, Backup: bw, AWSCredentials: awsCfg.Credentials, Region: cfg.AWS.Region, Clock: clk, Logger: log, Hooks: hs})
		if err != nil {
			return nil, err
		}
		s = x
	case "file":
		fc := config.FileDefaults()
		if sc.File != nil {
			fc = *sc.File
		}
		x, err := filesink.New(filesink.Options{Name: sc.Name, Config: fc, Clock: clk, Logger: log, Hooks: hs})
		if err != nil {
			return nil, err
		}
		s = x
	default:
		return nil, fmt.Errorf("type %q is not supported by this build", sc.Type)
	}
	if c, ok := s.(checker); ok {
		if err := c.Check(ctx); err != nil {
			_ = s.Close(ctx)
			return nil, err
		}
	}
	return s, nil
}
