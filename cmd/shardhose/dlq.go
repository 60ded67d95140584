package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/spf13/pflag"

	"github.com/shardhose/shardhose/config"
	"github.com/shardhose/shardhose/dlq"
	"github.com/shardhose/shardhose/internal/awsclient"
	"github.com/shardhose/shardhose/internal/clock"
	"github.com/shardhose/shardhose/internal/logging"
	"github.com/shardhose/shardhose/record"
)

const dlqUsage = `Usage:
  shardhose dlq inspect -c FILE [--from sqs|s3|file] [--queue-url URL | --bucket B [--prefix P] | --path FILE]
                        [--max N] [--records N] [--data-chars N]
      print dead letters: why and when each batch was given up on, where it came from, and
      its records with their data decoded. SQS messages are left in the queue (hidden while
      being read, visible again at the end).

  shardhose dlq replay -c FILE (--to-stream NAME | --to-sinks) [--from ...] [--max N] [--dry-run]
      put the records of each dead letter into a stream (the source stream or another), from
      the message, its overflow S3 object, or (for metadata-only messages, as Lambda writes
      them) the source stream while it still holds them. An SQS message is deleted only after
      all its records were accepted; S3 objects and files are left as they are. --dry-run
      reads everything and shows what would be sent, sending and deleting nothing.

--from defaults to the configured dead_letter.type, and the queue, bucket, prefix or path to
the configured ones. Exit codes: 0 all done, 1 bad flags or configuration (or the target
stream does not exist), 2 some dead letters could not be read or replayed.
`

// runDLQ runs `shardhose dlq inspect|replay`; see dlqUsage.
func runDLQ(args []string) (int, error) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return dlqMain(ctx, args, os.Stdout)
}

// dlqMain is runDLQ writing its report to out.
func dlqMain(ctx context.Context, args []string, out io.Writer) (int, error) {
	code, err := dlqCommand(ctx, args, out)
	var ue usageError
	if errors.As(err, &ue) {
		return code, commandUsageError{ue, dlqUsage}
	}
	return code, err
}

func dlqCommand(ctx context.Context, args []string, out io.Writer) (int, error) {
	if len(args) == 0 {
		return exitConfig, usageError{"dlq: name a subcommand: inspect or replay"}
	}
	switch args[0] {
	case "inspect":
		return dlqInspect(ctx, args[1:], out)
	case "replay":
		return dlqReplay(ctx, args[1:], out)
	case "help", "-h", "--help":
		fmt.Fprint(out, dlqUsage)
		return exitOK, nil
	}
	return exitConfig, usageError{fmt.Sprintf("dlq: unknown subcommand %q: use inspect or replay", args[0])}
}

// dlqFlags are the flags both subcommands share: where to read dead letters from.
type dlqFlags struct {
	from, queueURL, bucket, prefix, path string
	max                                  int
	visibility                           time.Duration
}

func (f *dlqFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.from, "from", "", "where the dead letters are: sqs, s3 or file (default: dead_letter.type)")
	fs.StringVar(&f.queueURL, "queue-url", "", "SQS queue URL (default: dead_letter.sqs.queue_url)")
	fs.StringVar(&f.bucket, "bucket", "", "S3 bucket (default: dead_letter.s3.bucket)")
	fs.StringVar(&f.prefix, "prefix", "", "S3 key prefix (default: dead_letter.s3.prefix when the bucket is the configured one)")
	fs.StringVar(&f.path, "path", "", "dead-letter file (default: dead_letter.file.path)")
	fs.IntVar(&f.max, "max", 0, "read at most this many dead letters (0 = all)")
	fs.DurationVar(&f.visibility, "visibility-timeout", 10*time.Minute, "SQS: how long a message read stays hidden from other readers; finish within it")
}

// dlqSource describes the Reader a command reads from, for messages.
type dlqSource struct {
	reader dlq.Reader
	where  string
}

// dlqOpenReader opens the reader the flags (or, for what they leave out, the configuration) name.
// log (nil: none) is told when the SQS reader waits for messages hidden by another receive.
func dlqOpenReader(f dlqFlags, fs *pflag.FlagSet, cfg config.Config, awsCfg aws.Config, sqsBatch int, log *slog.Logger) (dlqSource, error) {
	d := cfg.DeadLetter
	from := f.from
	if from == "" {
		from = d.Type
	}
	switch from {
	case "":
		return dlqSource{}, usageError{"no dead_letter destination is configured: say where the dead letters are with --from sqs|s3|file"}
	case "sns":
		return dlqSource{}, usageError{"dead letters published to SNS cannot be read back from SNS: subscribe an SQS queue to the topic and use --from sqs --queue-url URL"}
	case "kinesis":
		return dlqSource{}, usageError{"reading dead letters back from a Kinesis stream is not supported: use --from sqs, s3 or file"}
	case "sqs":
		url := f.queueURL
		if url == "" {
			url = d.SQS.QueueURL
		}
		if url == "" {
			return dlqSource{}, usageError{"--from sqs needs --queue-url (no dead_letter.sqs.queue_url is configured)"}
		}
		r := dlq.NewSQSReader(awsclient.SQS(awsCfg, cfg.AWS), dlq.SQSReaderOptions{QueueURL: url, Batch: sqsBatch, VisibilityTimeout: f.visibility, Logger: log})
		return dlqSource{reader: r, where: "sqs " + url}, nil
	case "s3":
		bucket, prefix := f.bucket, f.prefix
		if bucket == "" {
			bucket = d.S3.Bucket
			if !fs.Changed("prefix") {
				prefix = d.S3.Prefix
			}
		}
		if bucket == "" {
			return dlqSource{}, usageError{"--from s3 needs --bucket (no dead_letter.s3.bucket is configured)"}
		}
		r := dlq.NewS3Reader(awsclient.S3(awsCfg, cfg.AWS), bucket, prefix)
		return dlqSource{reader: r, where: "s3://" + bucket + "/" + prefix}, nil
	case "file":
		path := f.path
		if path == "" {
			path = d.File.Path
		}
		if path == "" {
			return dlqSource{}, usageError{"--from file needs --path (no dead_letter.file.path is configured)"}
		}
		r, err := dlq.NewFileReader(path)
		if err != nil {
			return dlqSource{}, err
		}
		return dlqSource{reader: r, where: path}, nil
	}
	return dlqSource{}, usageError{fmt.Sprintf("--from %q: use sqs, s3 or file", from)}
}

// dlqCloseReader closes r even when ctx has ended (an interrupted inspect must still make its SQS
// messages visible again).
func dlqCloseReader(ctx context.Context, r dlq.Reader) error {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 20*time.Second)
	defer cancel()
	return r.Close(cctx)
}

func dlqInspect(ctx context.Context, args []string, out io.Writer) (int, error) {
	var (
		f         dlqFlags
		records   int
		dataChars int
	)
	cfg, fs, err := loadConfig("dlq inspect", args, func(fs *pflag.FlagSet) {
		f.register(fs)
		fs.IntVar(&records, "records", 10, "show at most this many records per dead letter (0 = all)")
		fs.IntVar(&dataChars, "data-chars", 200, "show at most this many characters of each record's data")
	})
	if errors.Is(err, pflag.ErrHelp) {
		return exitOK, nil
	}
	if err != nil {
		return exitConfig, err
	}
	if f.max < 0 || records < 0 || dataChars < 1 {
		return exitConfig, usageError{"--max and --records must be 0 or more, --data-chars 1 or more"}
	}
	awsCfg, err := awsclient.Load(ctx, cfg.AWS, nil)
	if err != nil {
		return exitConfig, fmt.Errorf("aws configuration: %w", err)
	}
	src, err := dlqOpenReader(f, fs, cfg, awsCfg, 10, nil)
	if err != nil {
		return exitConfig, err
	}
	// Inspecting reads overflow objects but not streams: looking should not cost GetRecords
	// quota on the source stream.
	fetch := &dlq.Fetcher{S3: awsclient.S3(awsCfg, cfg.AWS)}
	n, bad := 0, 0
	var readErr error
	for f.max == 0 || n < f.max {
		l, err := src.reader.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			readErr = err
			break
		}
		n++
		var recs []record.Record
		var recErr error
		if l.Err != nil {
			bad++
		} else if len(l.Message.Inline) > 0 || l.Message.RecordsLocation != nil {
			recs, _, recErr = fetch.Records(ctx, l.Message)
		}
		if err := dlq.WriteText(out, l, recs, recErr, dlq.TextOptions{MaxRecords: records, MaxData: dataChars}); err != nil {
			readErr = err
			break
		}
	}
	closeErr := dlqCloseReader(ctx, src.reader)
	fmt.Fprintf(out, "%d dead letter%s in %s", n-bad, dlqPlural(n-bad), src.where)
	if bad > 0 {
		fmt.Fprintf(out, ", and %d item%s that could not be read as dead letters", bad, dlqPlural(bad))
	}
	fmt.Fprintln(out)
	if err := errors.Join(readErr, closeErr); err != nil {
		return exitRuntime, err
	}
	return exitOK, nil
}

func dlqReplay(ctx context.Context, args []string, out io.Writer) (int, error) {
	var (
		f       dlqFlags
		target  string
		toSinks bool
		dryRun  bool
	)
	cfg, fs, err := loadConfig("dlq replay", args, func(fs *pflag.FlagSet) {
		f.register(fs)
		fs.StringVar(&target, "to-stream", "", "the stream to put the records into (the source stream or another)")
		fs.BoolVar(&toSinks, "to-sinks", false, "deliver the records straight to the configured sinks instead of a stream")
		fs.BoolVar(&dryRun, "dry-run", false, "read the dead letters and their records, send and delete nothing")
	})
	if errors.Is(err, pflag.ErrHelp) {
		return exitOK, nil
	}
	if err != nil {
		return exitConfig, err
	}
	if (target == "") == !toSinks {
		return exitConfig, usageError{"dlq replay needs one target: --to-stream NAME or --to-sinks"}
	}
	if f.max < 0 {
		return exitConfig, usageError{"--max must be 0 or more"}
	}
	log, err := logging.New(cfg.Log.Format, cfg.Log.Level, os.Stderr)
	if err != nil {
		return exitConfig, err
	}
	awsCfg, err := awsclient.Load(ctx, cfg.AWS, nil)
	if err != nil {
		return exitConfig, fmt.Errorf("aws configuration: %w", err)
	}
	// One message at a time from SQS, so none waits hidden while another is replayed.
	src, err := dlqOpenReader(f, fs, cfg, awsCfg, 1, log)
	if err != nil {
		return exitConfig, err
	}
	kin := awsclient.Kinesis(awsCfg, cfg.AWS)
	var deliver func(context.Context, []record.Record) error
	if toSinks {
		target = "the sinks"
		if !dryRun {
			built, err := buildSinks(ctx, cfg, awsCfg, "", log, clock.Real(), nil)
			if err != nil {
				return exitConfig, err
			}
			defer closeSinks(ctx, built)
			deliver = func(ctx context.Context, recs []record.Record) error { return deliverNow(ctx, built, recs) }
		}
	}
	verb := "replayed"
	if dryRun {
		verb = "would replay"
	}
	stats, err := dlq.Replay(ctx, dlq.ReplayOptions{
		Reader:  src.reader,
		Fetcher: &dlq.Fetcher{S3: awsclient.S3(awsCfg, cfg.AWS), Kinesis: kin, Clock: clock.Real()},
		Client:  kin,
		Stream:  target,
		Deliver: deliver,
		DryRun:  dryRun,
		Max:     f.max,
		Clock:   clock.Real(),
		Logger:  log,
		OnLetter: func(r dlq.LetterResult) {
			switch {
			case r.Letter.Err != nil:
				fmt.Fprintf(out, "skipped       %s: %v\n", r.Letter.Origin, r.Err)
			case r.Duplicate && r.Err == nil:
				line := fmt.Sprintf("duplicate     %s: copy of dead letter %s, already replayed; not sent again", r.Letter.Origin, r.Letter.Message.RequestContext.RequestID)
				if r.Removed {
					line += "; message deleted"
				}
				fmt.Fprintln(out, line)
			case r.Err != nil && r.Sent == r.Records && r.Records > 0:
				fmt.Fprintf(out, "NOT REMOVED   %s: %d records put into %s, but %v\n", r.Letter.Origin, r.Records, target, r.Err)
			case r.Err != nil:
				fmt.Fprintf(out, "FAILED        %s: %v; left in place\n", r.Letter.Origin, r.Err)
			default:
				line := fmt.Sprintf("%-13s %s: %d record%s (%d bytes, %s) into %s", verb, r.Letter.Origin, r.Records, dlqPlural(r.Records), r.Bytes, dlqFrom[r.From], target)
				if r.Removed {
					line += "; message deleted"
				}
				fmt.Fprintln(out, line)
			}
		},
	})
	closeErr := dlqCloseReader(ctx, src.reader)
	if dryRun {
		fmt.Fprintf(out, "dry run: %d of %d dead letters from %s would be replayed (%d records) into %s; nothing was sent or deleted\n",
			stats.Replayed, stats.Letters, src.where, stats.Records, target)
	} else {
		fmt.Fprintf(out, "replayed %d of %d dead letters from %s (%d records) into %s; %d removed",
			stats.Replayed, stats.Letters, src.where, stats.Records, target, stats.Removed)
		if stats.Duplicates > 0 {
			fmt.Fprintf(out, "; %d duplicate%s not sent again", stats.Duplicates, dlqPlural(stats.Duplicates))
		}
		fmt.Fprintln(out)
	}
	switch {
	case errors.Is(err, dlq.ErrTargetStream):
		return exitConfig, err
	case err != nil:
		return exitRuntime, errors.Join(err, closeErr)
	case closeErr != nil:
		return exitRuntime, closeErr
	}
	return exitOK, nil
}

// dlqFrom says where a dead letter's records were found.
var dlqFrom = map[dlq.RecordsFrom]string{
	dlq.FromMessage: "from the message",
	dlq.FromS3:      "from the overflow object",
	dlq.FromStream:  "read from the source stream",
}

func dlqPlural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
