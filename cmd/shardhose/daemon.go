package main

import (
	"context"
	"errors"
	"fmt"
	iofs "io/fs"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/spf13/pflag"

	"github.com/shardhose/shardhose/checkpoint"
	"github.com/shardhose/shardhose/config"
	"github.com/shardhose/shardhose/consumer"
	"github.com/shardhose/shardhose/consumer/getrecords"
	"github.com/shardhose/shardhose/hooks"
	"github.com/shardhose/shardhose/internal/awsclient"
	"github.com/shardhose/shardhose/internal/clock"
	"github.com/shardhose/shardhose/internal/logging"
	"github.com/shardhose/shardhose/internal/sdnotify"
)

// startupTimeout bounds the start-up checks (stream, lease table, buckets), so an unreachable
// endpoint is a prompt one-line error rather than minutes of retries.
const startupTimeout = 20 * time.Second

// loadConfig parses a command's flags and loads and validates the configuration; problems are
// printed one per line.
func loadConfig(name string, args []string, extra func(fs *pflag.FlagSet)) (config.Config, *pflag.FlagSet, error) {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	path := fs.StringP("config", "c", os.Getenv("SHARDHOSE_CONFIG"), "config file (YAML); also SHARDHOSE_CONFIG")
	if name == "produce" {
		config.RegisterProducerFlags(fs) // it sends to the stream: no worker id
	} else {
		config.RegisterFlags(fs)
	}
	if extra != nil {
		extra(fs)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return config.Config{}, fs, err
		}
		return config.Config{}, fs, usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return config.Config{}, fs, usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	opts := config.LoadOptions{Path: *path, Flags: fs}
	if name == "run" {
		opts.WorkerID = ecsTaskWorkerID // on ECS, the task id unless leases.worker_id is set
	}
	cfg, err := config.Load(opts)
	switch {
	case err == nil:
	case errors.Is(err, iofs.ErrNotExist):
		return cfg, fs, fmt.Errorf("%s: no such file", *path)
	case *path == "":
		return cfg, fs, fmt.Errorf("configuration is not valid (no file given: use -c FILE, or SHARDHOSE_CONFIG):\n%w", err)
	default:
		return cfg, fs, fmt.Errorf("%s is not valid:\n%w", *path, err)
	}
	return cfg, fs, nil
}

func runValidate(args []string) (int, error) {
	cfg, fs, err := loadConfig("validate", args, nil)
	if errors.Is(err, pflag.ErrHelp) {
		return exitOK, nil
	}
	if err != nil {
		return exitConfig, err
	}
	path, _ := fs.GetString("config")
	if path == "" {
		path = "configuration (defaults and environment)"
	}
	fmt.Printf("%s: valid (stream %s, %d sink(s), lease table %s)\n", path, cfg.Stream.StreamName(), len(cfg.Sinks), cfg.Leases.Table)
	return exitOK, nil
}

// reportedError is an error already written to the log; run exits with its code without
// printing it again.
type reportedError struct{ err error }

func (e reportedError) Error() string { return e.err.Error() }
func (e reportedError) Unwrap() error { return e.err }

// runDaemon runs the daemon and writes any error that ends it through the configured log format,
// so that with log.format json every line of the process, the last included, is JSON. A
// configuration that does not load or validate is reported in the format it asks for as far as
// it could be read (log.format from the file, SHARDHOSE_LOG__FORMAT or --log-format; auto when
// unreadable, which is JSON when stderr is not a terminal); in text format it is printed for a
// person to read, one problem per line.
func runDaemon(args []string) (int, error) {
	cfg, fs, err := loadConfig("run", args, nil)
	if errors.Is(err, pflag.ErrHelp) {
		return exitOK, nil
	}
	var ue usageError
	if err != nil && !errors.As(err, &ue) {
		if log := jsonLogger(cfg.Log.Format); log != nil {
			path, _ := fs.GetString("config")
			var problems config.Errors
			if errors.As(err, &problems) {
				lines := make([]string, len(problems))
				for i, p := range problems {
					lines[i] = p.Error()
				}
				attrs := []any{"config", path, "problems", lines, "exit_code", exitConfig}
				if path == "" {
					attrs = append(attrs, "hint", "no file given: use -c FILE, or SHARDHOSE_CONFIG")
				}
				log.Error("configuration is not valid", attrs...)
			} else {
				cause := err
				if inner := errors.Unwrap(err); inner != nil {
					cause = inner // without loadConfig's "FILE is not valid:" line
				}
				log.Error("configuration cannot be loaded", "config", path, "error", cause.Error(), "exit_code", exitConfig)
			}
			return exitConfig, reportedError{err}
		}
	}
	if err != nil {
		return exitConfig, err
	}
	log, err := logging.New(cfg.Log.Format, cfg.Log.Level, os.Stderr)
	if err != nil {
		return exitConfig, err
	}
	slog.SetDefault(log)
	code, err := runConsumer(cfg, log)
	if err != nil {
		msg := "start-up failed"
		switch code {
		case exitRuntime:
			msg = "stopped by a failure"
		case exitDrainTimeout:
			msg = "drain deadline passed"
		}
		log.Error(msg, "error", err.Error(), "exit_code", code)
		return code, reportedError{err}
	}
	return code, nil
}

// jsonLogger returns a JSON logger on stderr when format means JSON there, else nil. A format
// that is not valid counts as auto.
func jsonLogger(format string) *slog.Logger {
	if format != "json" && format != "text" {
		format = "auto"
	}
	if format == "json" || (format == "auto" && !logging.IsTerminal(os.Stderr)) {
		return slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	return nil
}

// runConsumer runs the consumer until a signal stops it; its error is the reason for the code.
func runConsumer(cfg config.Config, log *slog.Logger) (int, error) {

	// hardCtx ends only on a second signal: everything runs under it.
	hardCtx, hardStop := context.WithCancel(context.Background())
	defer hardStop()

	startCtx, cancelStart := context.WithTimeout(hardCtx, startupTimeout)
	defer cancelStart()
	awsCfg, err := awsclient.Load(startCtx, cfg.AWS, log)
	if err != nil {
		return exitConfig, fmt.Errorf("aws configuration: %w", err)
	}
	kin := awsclient.Kinesis(awsCfg, cfg.AWS, getrecords.WithProtocol(cfg.Stream.ResponseBuffers))
	ddb := awsclient.DynamoDB(awsCfg, cfg.AWS)

	notifier, err := sdnotify.New(log, cfg.Leases.RenewInterval)
	if err != nil {
		return exitConfig, err
	}

	clk := clock.Real()
	// The listener comes first, so /readyz answers "starting" during the start-up checks.
	mem := memoryBudget(cfg.Memory, log)
	obs, err := startObservability(cfg, awsCfg, log, clk, mem)
	if err != nil {
		return exitConfig, err
	}
	defer obs.close()
	rt, err := build(startCtx, cfg, awsCfg, log, clk, obs.hooks)
	if err != nil {
		return exitConfig, err
	}
	closeBuilt := func() { rt.closeSinks(hardCtx) }

	table := checkpoint.NewTable(ddb, cfg.Leases.Table, cfg.Leases.WorkerID, checkpoint.Options{
		LeaseDuration: cfg.Leases.LeaseDuration, Clock: clk, Logger: log, NoCreate: !cfg.Leases.CreateTable,
	})
	c, err := consumer.New(consumer.Options{
		WorkerID:     cfg.Leases.WorkerID,
		Stream:       cfg.Stream,
		Leases:       cfg.Leases,
		Batching:     cfg.Batching,
		Kinesis:      kin,
		Table:        table,
		Sinks:        rt.sinks,
		NewPipeline:  rt.pipeline,
		StallTimeout: cfg.Leases.StallTimeout,
		Clock:        clk,
		Logger:       log,
		Hooks:        append(hooks.Set{notifier}, obs.hooks...),
		Memory:       mem,
	})
	if err != nil {
		closeBuilt()
		return exitConfig, err
	}
	notifier.Track(c.Held)
	if err := c.Check(startCtx); err != nil {
		closeBuilt()
		return exitConfig, fmt.Errorf("%w (kinesis %s, dynamodb %s)", err, awsclient.Endpoint(cfg.AWS, "kinesis"), awsclient.Endpoint(cfg.AWS, "dynamodb"))
	}
	cancelStart()
	obs.started()

	signals := make(chan os.Signal, 2)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(signals)

	// Start-up checks passed: systemd may now consider the unit started (Type=notify).
	notifier.Ready()
	runErr := make(chan error, 1)
	go func() { runErr <- c.Run(hardCtx) }()

	select {
	case err := <-runErr:
		closeBuilt()
		var se *consumer.StartupError
		if errors.As(err, &se) {
			return exitConfig, err
		}
		return exitRuntime, fmt.Errorf("consumer stopped: %w", err)
	case sig := <-signals:
		log.Info("stopping: draining before exit (a second signal exits at once)", "signal", sig.String(), "drain_timeout", cfg.Shutdown.DrainTimeout)
		notifier.Stopping(cfg.Shutdown.DrainTimeout)
	}
	obs.draining()

	go func() {
		sig := <-signals
		log.Error("second signal: exiting now; records not checkpointed are read again on the next start", "signal", sig.String())
		os.Exit(exitForced)
	}()
	drainCtx, cancelDrain := context.WithTimeout(hardCtx, cfg.Shutdown.DrainTimeout)
	defer cancelDrain()
	err = c.Shutdown(drainCtx)
	hardStop()
	<-runErr
	var de *consumer.DrainError
	switch {
	case errors.As(err, &de):
		return exitDrainTimeout, err
	case err != nil:
		return exitRuntime, err
	}
	log.Info("stopped cleanly")
	return exitOK, nil
}

// checkBucket fails fast, with one line, when a sink's bucket does not exist or cannot be reached.
func checkBucket(ctx context.Context, c *awss3.Client, bucket, endpoint string) error {
	_, err := c.HeadBucket(ctx, &awss3.HeadBucketInput{Bucket: &bucket})
	if err == nil {
		return nil
	}
	where := endpoint
	if where == "" {
		where = "the default S3 endpoint"
	}
	var notFound *s3types.NotFound
	var resp *awshttp.ResponseError
	switch {
	case errors.As(err, &notFound), errors.As(err, &resp) && resp.HTTPStatusCode() == 404:
		return fmt.Errorf("bucket %q does not exist at %s", bucket, where)
	case errors.As(err, &resp) && resp.HTTPStatusCode() == 403:
		return fmt.Errorf("bucket %q at %s: access denied (needs s3:ListBucket, s3:PutObject and s3:AbortMultipartUpload)", bucket, where)
	}
	return fmt.Errorf("bucket %q at %s cannot be used: %w", bucket, where, err)
}
