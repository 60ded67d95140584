package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/shardhose/shardhose/internal/awsclient"
	"github.com/shardhose/shardhose/internal/clock"
	"github.com/shardhose/shardhose/internal/logging"
	"github.com/shardhose/shardhose/internal/retry"
	"github.com/shardhose/shardhose/produce"
	"github.com/shardhose/shardhose/produce/kdg"
)

// loadFlags are the flags produce and loadtest share: what to send (Kinesis Data Generator
// templates) and how fast.
type loadFlags struct {
	templates   []string
	weights     []int
	keyTemplate string
	expectJSON  bool
	seed        int64
	rate        float64
	ramp        string
	periodic    string
	duration    time.Duration
	output      string
}

func (f *loadFlags) register(fs *pflag.FlagSet) {
	fs.StringArrayVar(&f.templates, "template", nil, "render each record from this Kinesis Data Generator template (repeatable: records are drawn from the templates by weight)")
	fs.IntSliceVar(&f.weights, "template-weight", nil, "weight of each --template, in the same order (repeatable or a list: 3,1; default equal)")
	fs.StringVar(&f.keyTemplate, "partition-key", "", "template of each record's partition key, e.g. '{{random.uuid}}' (default: a random 10-digit key, as the Kinesis Data Generator uses)")
	fs.BoolVar(&f.expectJSON, "expect-json", false, "warn when a template renders a record that is not JSON (it is sent all the same)")
	fs.Int64Var(&f.seed, "seed", 1, "seed of the random data: the same seed gives the same records (templates: default random, printed in the summary)")
	fs.Float64Var(&f.rate, "rate", 0, "records per second (0 = as fast as the stream accepts)")
	fs.StringVar(&f.ramp, "ramp", "", "rate climbing from FROM to TO records/s over DURATION, then held, e.g. 100:5000:60s")
	fs.StringVar(&f.periodic, "periodic", "", "rate swinging between MIN and MAX records/s every PERIOD, e.g. 100:1000:60s")
	fs.DurationVar(&f.duration, "duration", 0, "stop sending after this long, e.g. 60s (with --count, whichever comes first)")
	fs.StringVar(&f.output, "output", "text", "summary format: text, or json (one line) for scripts")
}

// check validates the flags that need no file or network; fs tells which were set.
func (f *loadFlags) check(fs *pflag.FlagSet) error {
	if f.output != "text" && f.output != "json" {
		return usageError{fmt.Sprintf("--output %q: use text or json", f.output)}
	}
	if f.rate < 0 {
		return usageError{fmt.Sprintf("--rate %g: must be 0 or more", f.rate)}
	}
	if f.duration < 0 {
		return usageError{fmt.Sprintf("--duration %v: must be positive", f.duration)}
	}
	shapes := 0
	for _, name := range []string{"rate", "ramp", "periodic"} {
		if fs.Changed(name) {
			shapes++
		}
	}
	if shapes > 1 {
		return usageError{"--rate, --ramp and --periodic: use one of them"}
	}
	if len(f.templates) == 0 {
		for _, name := range []string{"template-weight", "partition-key", "expect-json"} {
			if fs.Changed(name) {
				return usageError{fmt.Sprintf("--%s goes with --template", name)}
			}
		}
	}
	return nil
}

// schedule is the rate asked: nil for as fast as possible.
func (f *loadFlags) schedule() (produce.Schedule, error) {
	switch {
	case f.ramp != "":
		r, err := produce.ParseRamp(f.ramp)
		if err != nil {
			return nil, usageError{err.Error()}
		}
		return r, nil
	case f.periodic != "":
		p, err := produce.ParsePeriodic(f.periodic)
		if err != nil {
			return nil, usageError{err.Error()}
		}
		return p, nil
	case f.rate > 0:
		return produce.Constant(f.rate), nil
	}
	return nil, nil
}

// templateSource parses the templates (every problem before anything is sent) and returns their
// source and the seed it uses: --seed when given, else a random one.
func (f *loadFlags) templateSource(fs *pflag.FlagSet, clk clock.Clock) (*produce.TemplateSource, uint64, error) {
	var tmpls []*kdg.Template
	var errs []error
	for _, path := range f.templates {
		t, err := kdg.ParseFile(path)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		tmpls = append(tmpls, t)
	}
	var key *kdg.Template
	if f.keyTemplate != "" {
		t, err := kdg.Parse("--partition-key", f.keyTemplate)
		if err != nil {
			errs = append(errs, err)
		}
		key = t
	}
	if err := errors.Join(errs...); err != nil {
		return nil, 0, err
	}
	seed := uint64(f.seed)
	if !fs.Changed("seed") {
		seed = rand.Uint64()
	}
	src, err := produce.NewTemplateSource(tmpls, f.weights, key, kdg.NewFaker(seed, clk, time.Local))
	if err != nil {
		return nil, 0, usageError{err.Error()}
	}
	src.ExpectJSON = f.expectJSON
	return src, seed, nil
}

// isTerminal reports whether f is a terminal, where progress is one line rewritten in place.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// runProduce sends records to the configured stream: rendered from Kinesis Data Generator
// templates, the records of a file (JSON lines or a JSON array), or generated e-commerce events
// like the Firehose recipe's.
func runProduce(args []string) (int, error) {
	var (
		lf       loadFlags
		file     string
		count    int
		keyField string
		dryRun   bool
	)
	cfg, fs, err := loadConfig("produce", args, func(fs *pflag.FlagSet) {
		fs.StringVar(&file, "file", "", "send the records of this file (JSON lines or a JSON array) instead of generated events")
		fs.IntVar(&count, "count", 0, "records to send (default: one pass over --file, 10 with --dry-run, unlimited with --duration, else 1000; 0 with --rate runs until interrupted)")
		fs.StringVar(&keyField, "partition-key-field", "", "take each record's partition key from this JSON field (default: a random 10-digit key, as the Kinesis Data Generator does)")
		fs.BoolVar(&dryRun, "dry-run", false, "print the records to standard output, one per line, exactly as they would be sent, instead of sending them (no config needed)")
		lf.register(fs)
	})
	if errors.Is(err, pflag.ErrHelp) {
		return exitOK, nil
	}
	var ue usageError
	if err != nil && (!dryRun || errors.As(err, &ue)) {
		return exitConfig, err
	}
	if err := lf.check(fs); err != nil {
		return exitConfig, err
	}
	countSet := fs.Changed("count")
	if count < 0 {
		return exitConfig, usageError{fmt.Sprintf("--count %d: must be 0 or more", count)}
	}
	if len(lf.templates) > 0 && (file != "" || keyField != "") {
		return exitConfig, usageError{"--template renders the records: it does not go with --file or --partition-key-field (use --partition-key for a key template)"}
	}
	sched, err := lf.schedule()
	if err != nil {
		return exitConfig, err
	}

	log, err := logging.New(cfg.Log.Format, cfg.Log.Level, os.Stderr)
	if err != nil {
		return exitConfig, err
	}
	clk := clock.Real()
	var (
		src     produce.Source
		tsrc    *produce.TemplateSource
		seedPtr *uint64
	)
	switch {
	case len(lf.templates) > 0:
		s, seed, err := lf.templateSource(fs, clk)
		if err != nil {
			return exitConfig, err
		}
		s.Logger = log
		src, tsrc, seedPtr = s, s, &seed
	case file != "":
		fsrc, err := produce.LoadFileSource(file)
		if err != nil {
			return exitConfig, err
		}
		fsrc.PartitionKeyField = keyField
		if !countSet && !dryRun {
			count = fsrc.Len()
		}
		src = fsrc
	default:
		g := produce.NewGeneratedSource(lf.seed)
		g.PartitionKeyField = keyField
		src = g
	}
	if !countSet {
		switch {
		case dryRun:
			count = 10
		case lf.duration > 0:
			count = 0
		case file == "":
			count = 1000
		}
	}
	if dryRun {
		if count == 0 {
			return exitConfig, usageError{"--dry-run needs a --count above 0"}
		}
		if err := dryRunRecords(os.Stdout, src, count); err != nil {
			return exitRuntime, err
		}
		return exitOK, nil
	}
	if count == 0 && sched == nil && lf.duration == 0 {
		return exitConfig, usageError{"--count 0 needs a --rate, --ramp, --periodic or --duration: sending without end as fast as possible is not offered"}
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	awsCfg, err := awsclient.Load(ctx, cfg.AWS, nil)
	if err != nil {
		return exitConfig, fmt.Errorf("aws configuration: %w", err)
	}
	progress := produce.NewProgress(os.Stderr, isTerminal(os.Stderr), clk, sched, 0)
	progressCtx, stopProgress := context.WithCancel(ctx)
	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		progress.Run(progressCtx)
	}()
	stats, err := produce.Run(ctx, produce.Options{
		Stream:     cfg.Stream.StreamName(),
		StreamARN:  cfg.Stream.ARN,
		Client:     awsclient.Kinesis(awsCfg, cfg.AWS),
		Source:     src,
		Count:      count,
		Schedule:   sched,
		Duration:   lf.duration,
		Clock:      clk,
		Logger:     log,
		OnProgress: progress.Update,
	})
	stopProgress()
	<-progressDone
	if errors.Is(err, context.Canceled) {
		err = nil // interrupted: the summary says how far it got
	}
	sum := produce.NewSummary(cfg.Stream.StreamName(), stats, sched, err)
	sum.Seed = seedPtr
	if tsrc != nil {
		sum.NonJSON = tsrc.NonJSON()
	}
	if lf.output == "json" {
		fmt.Printf("%s\n", sum.JSON())
	} else {
		fmt.Println(sum)
	}
	switch {
	case err == nil:
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

// dryRunRecords writes count records of src to w, each followed by a newline.
func dryRunRecords(w io.Writer, src produce.Source, count int) error {
	bw := bufio.NewWriter(w)
	for i := range count {
		e, err := src.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("render record %d: %w", i, err)
		}
		bw.Write(e.Data)
		bw.WriteByte('\n')
	}
	return bw.Flush()
}
