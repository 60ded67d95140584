package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/shardhose/shardhose/internal/awsclient"
	"github.com/shardhose/shardhose/internal/clock"
	"github.com/shardhose/shardhose/internal/logging"
	"github.com/shardhose/shardhose/internal/retry"
	"github.com/shardhose/shardhose/produce"
)

// runProduce sends records to the configured stream: the records of a file (JSON lines or a JSON
// array), or generated e-commerce events like the Firehose recipe's. It is the seed of the load
// generator: a Kinesis Data Generator template source will plug in as another produce.Source.
func runProduce(args []string) (int, error) {
	var (
		file     string
		count    int
		rate     float64
		seed     int64
		keyField string
	)
	cfg, fs, err := loadConfig("produce", args, func(fs *pflag.FlagSet) {
		fs.StringVar(&file, "file", "", "send the records of this file (JSON lines or a JSON array) instead of generated events")
		fs.IntVar(&count, "count", 0, "records to send (default: one pass over --file, or 1000 generated; 0 with --rate runs until interrupted)")
		fs.Float64Var(&rate, "rate", 0, "records per second (0 = as fast as the stream accepts)")
		fs.Int64Var(&seed, "seed", 1, "seed of the generated events (the same seed gives the same events)")
		fs.StringVar(&keyField, "partition-key-field", "", "take each record's partition key from this JSON field (default: a random 10-digit key, as the Kinesis Data Generator does)")
	})
	if errors.Is(err, pflag.ErrHelp) {
		return exitOK, nil
	}
	if err != nil {
		return exitConfig, err
	}
	countSet := fs.Changed("count")
	if count < 0 {
		return exitConfig, usageError{fmt.Sprintf("--count %d: must be 0 or more", count)}
	}
	if rate < 0 {
		return exitConfig, usageError{fmt.Sprintf("--rate %g: must be 0 or more", rate)}
	}

	var src produce.Source
	if file != "" {
		fsrc, err := produce.LoadFileSource(file)
		if err != nil {
			return exitConfig, err
		}
		fsrc.PartitionKeyField = keyField
		if !countSet {
			count = fsrc.Len()
		}
		src = fsrc
	} else {
		g := produce.NewGeneratedSource(seed)
		g.PartitionKeyField = keyField
		if !countSet {
			count = 1000
		}
		src = g
	}
	if count == 0 && rate == 0 {
		return exitConfig, usageError{"--count 0 needs a --rate: sending without end as fast as possible is not offered"}
	}

	log, err := logging.New(cfg.Log.Format, cfg.Log.Level, os.Stderr)
	if err != nil {
		return exitConfig, err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	awsCfg, err := awsclient.Load(ctx, cfg.AWS)
	if err != nil {
		return exitConfig, fmt.Errorf("aws configuration: %w", err)
	}
	stats, err := produce.Run(ctx, produce.Options{
		Stream:    cfg.Stream.StreamName(),
		StreamARN: cfg.Stream.ARN,
		Client:    awsclient.Kinesis(awsCfg, cfg.AWS),
		Source:    src,
		Count:     count,
		Rate:      rate,
		Clock:     clock.Real(),
		Logger:    log,
	})
	fmt.Printf("sent %d records (%d bytes) to %s in %d PutRecords calls, %s; %d entries retried\n",
		stats.Sent, stats.Bytes, cfg.Stream.StreamName(), stats.Calls, stats.Elapsed.Round(1e6), stats.Failed)
	switch {
	case err == nil, errors.Is(err, context.Canceled):
		return exitOK, nil
	case retry.IsPermanent(err):
		return exitConfig, err
	default:
		var re *produce.RecordError
		if errors.As(err, &re) {
			return exitConfig, err
		}
		return exitRuntime, err
	}
}
