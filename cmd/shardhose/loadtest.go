package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/spf13/pflag"

	"github.com/shardhose/shardhose/checkpoint"
	"github.com/shardhose/shardhose/config"
	"github.com/shardhose/shardhose/dlq"
	"github.com/shardhose/shardhose/internal/awsclient"
	"github.com/shardhose/shardhose/internal/clock"
	"github.com/shardhose/shardhose/internal/logging"
	"github.com/shardhose/shardhose/loadtest"
	"github.com/shardhose/shardhose/produce"
)

// daemonReadyTimeout bounds the wait for a daemon loadtest started to hold every shard's lease.
const daemonReadyTimeout = 90 * time.Second

// runLoadtest drives the configured stream with records rendered from templates and checks,
// through an id stamped into each, that every one reached the S3 sinks or the dead letters.
// Exit 0 when none was lost, 2 when some were, 1 for bad flags or configuration.
func runLoadtest(args []string) (int, error) {
	var (
		lf          loadFlags
		count       int
		start       bool
		daemonPID   int
		daemonLog   string
		settle      time.Duration
		poll        time.Duration
		metricsURL  string
		readyWithin time.Duration
	)
	cfg, fs, err := loadConfig("loadtest", args, func(fs *pflag.FlagSet) {
		lf.register(fs)
		fs.IntVar(&count, "count", 0, "send at most this many records (with --duration, whichever comes first)")
		fs.BoolVar(&start, "start", false, "start a daemon with the same config (shardhose run -c FILE), wait until it holds every shard, and stop it after the test")
		fs.IntVar(&daemonPID, "daemon-pid", 0, "PID of the running daemon, for its CPU time and peak memory (with --start: the started one)")
		fs.StringVar(&daemonLog, "daemon-log", "", "with --start: write the daemon's log to this file (default: a temporary file)")
		fs.DurationVar(&settle, "settle", 2*time.Minute, "after the last send, wait at most this long for every record to arrive")
		fs.DurationVar(&poll, "poll", 250*time.Millisecond, "how often the sinks are listed: the resolution of the latencies")
		fs.StringVar(&metricsURL, "metrics-url", os.Getenv("SHARDHOSE_METRICS_URL"), "the daemon's Prometheus metrics, e.g. http://127.0.0.1:9090/metrics, for the iterator age (also SHARDHOSE_METRICS_URL; without it: n/a)")
		fs.DurationVar(&readyWithin, "ready-timeout", daemonReadyTimeout, "with --start: how long the daemon may take to hold every shard")
	})
	if errors.Is(err, pflag.ErrHelp) {
		return exitOK, nil
	}
	if err != nil {
		return exitConfig, err
	}
	if err := lf.check(fs); err != nil {
		return exitConfig, err
	}
	if len(lf.templates) == 0 {
		return exitConfig, usageError{"loadtest needs at least one --template (a Kinesis Data Generator template rendering JSON objects)"}
	}
	if lf.duration <= 0 && count <= 0 {
		return exitConfig, usageError{"loadtest needs --duration or --count"}
	}
	if settle <= 0 || poll <= 0 {
		return exitConfig, usageError{"--settle and --poll must be positive"}
	}
	if start && daemonPID != 0 {
		return exitConfig, usageError{"--start and --daemon-pid: use one of them"}
	}
	sched, err := lf.schedule()
	if err != nil {
		return exitConfig, err
	}
	configPath, _ := fs.GetString("config")
	log, err := logging.New(cfg.Log.Format, cfg.Log.Level, os.Stderr)
	if err != nil {
		return exitConfig, err
	}
	clk := clock.Real()
	src, _, err := lf.templateSource(fs, clk)
	if err != nil {
		return exitConfig, err
	}
	if err := loadtest.CheckTemplates(src.Templates()); err != nil {
		return exitConfig, err
	}
	src.Logger = log

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	awsCfg, err := awsclient.Load(ctx, cfg.AWS, log)
	if err != nil {
		return exitConfig, fmt.Errorf("aws configuration: %w", err)
	}
	sinks, err := loadtestSinks(cfg, awsCfg)
	if err != nil {
		return exitConfig, err
	}
	kin := awsclient.Kinesis(awsCfg, cfg.AWS)

	var daemon *startedDaemon
	if start {
		daemon, err = launchDaemon(configPath, daemonLog)
		if err != nil {
			return exitRuntime, err
		}
		defer daemon.stop(log)
		fmt.Fprintf(os.Stderr, "started shardhose (pid %d, log %s); waiting until it holds every shard\n", daemon.cmd.Process.Pid, daemon.logPath)
		if err := waitDaemonReady(ctx, cfg, awsCfg, kin, daemon, readyWithin); err != nil {
			return exitRuntime, err
		}
		daemonPID = daemon.cmd.Process.Pid
	}

	opts := loadtest.Options{
		Stream: cfg.Stream.StreamName(), StreamARN: cfg.Stream.ARN, Kinesis: kin, Source: src,
		Schedule: sched, Duration: lf.duration, Count: count, Sinks: sinks, Settle: settle, PollInterval: poll,
		Progress: produce.NewProgress(os.Stderr, isTerminal(os.Stderr), clk, sched, 0),
		Clock:    clk, Logger: log,
	}
	if cfg.DeadLetter.Type != "" {
		if dl := loadtestDeadLetters(fs, cfg, awsCfg, kin); dl != nil {
			opts.DeadLetters = dl
		} else {
			log.Warn("the dead-letter destination cannot be read back; dead-lettered records will count as lost", "type", cfg.DeadLetter.Type)
		}
	}
	if metricsURL != "" {
		hc := &http.Client{Timeout: 5 * time.Second}
		opts.Metrics = func(ctx context.Context) (time.Duration, error) {
			return loadtest.ScrapeIteratorAge(ctx, hc, metricsURL)
		}
	}
	if daemonPID != 0 {
		pid := daemonPID
		opts.Process = func() (loadtest.ProcessUsage, error) { return loadtest.ReadProcess(pid) }
	}
	rep, runErr := loadtest.Run(ctx, opts)
	if lf.output == "json" {
		fmt.Printf("%s\n", rep.JSON())
	} else {
		fmt.Print(rep)
	}
	if runErr != nil {
		return exitRuntime, runErr
	}
	return exitOK, nil
}

// loadtestSinks are the configured S3 sinks, the destinations the load test reads back.
func loadtestSinks(cfg config.Config, awsCfg aws.Config) ([]loadtest.Sink, error) {
	var out []loadtest.Sink
	client := awsclient.S3(awsCfg, cfg.AWS)
	for _, sc := range cfg.Sinks {
		if sc.Type != "s3" || sc.S3 == nil {
			continue
		}
		if sc.S3.DataFormatConversion != nil {
			return nil, fmt.Errorf("sink %s writes Parquet: the load test finds its ids in JSON records, so use a sink without data_format_conversion", sc.Name)
		}
		out = append(out, loadtest.Sink{Name: sc.Name, Client: client, Bucket: sc.S3.Bucket,
			Prefix: loadtest.StaticPrefix(sc.S3.Prefix), Compression: sc.S3.Compression})
	}
	if len(out) == 0 {
		return nil, errors.New("the configuration has no S3 sink: the load test checks delivery by reading the S3 sinks' objects")
	}
	return out, nil
}

// loadtestDeadLetters reads every stored dead letter's records; nil when the destination cannot
// be read back (SNS, Kinesis).
func loadtestDeadLetters(fs *pflag.FlagSet, cfg config.Config, awsCfg aws.Config, kin *kinesis.Client) func(context.Context) ([][]byte, error) {
	switch cfg.DeadLetter.Type {
	case "sqs", "s3", "file":
	default:
		return nil
	}
	fetch := &dlq.Fetcher{S3: awsclient.S3(awsCfg, cfg.AWS), Kinesis: kin, Clock: clock.Real()}
	return func(ctx context.Context) ([][]byte, error) {
		src, err := dlqOpenReader(dlqFlags{visibility: 30 * time.Second}, fs, cfg, awsCfg, 10, nil)
		if err != nil {
			return nil, err
		}
		var out [][]byte
		var readErr error
		for {
			l, err := src.reader.Next(ctx)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				readErr = err
				break
			}
			if l.Err != nil {
				continue
			}
			recs, _, err := fetch.Records(ctx, l.Message)
			if err != nil {
				readErr = err
				break
			}
			for _, r := range recs {
				out = append(out, r.Data)
			}
		}
		return out, errors.Join(readErr, dlqCloseReader(ctx, src.reader))
	}
}

// startedDaemon is a shardhose the load test started.
type startedDaemon struct {
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
	waitErr error
}

func launchDaemon(configPath, logPath string) (*startedDaemon, error) {
	if configPath == "" {
		return nil, usageError{"--start needs -c FILE: the daemon is started with the same config"}
	}
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("start the daemon: find this program: %w", err)
	}
	var logFile *os.File
	if logPath == "" {
		logFile, err = os.CreateTemp("", "shardhose-loadtest-daemon-*.log")
	} else {
		logFile, err = os.Create(logPath)
	}
	if err != nil {
		return nil, fmt.Errorf("start the daemon: log file: %w", err)
	}
	cmd := exec.Command(self, "run", "-c", configPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start the daemon: %w", err)
	}
	d := &startedDaemon{cmd: cmd, logPath: logFile.Name(), exited: make(chan struct{})}
	go func() {
		d.waitErr = cmd.Wait()
		logFile.Close()
		close(d.exited)
	}()
	return d, nil
}

// stop sends SIGTERM (the daemon drains and checkpoints) and waits for it to exit.
func (d *startedDaemon) stop(log interface{ Warn(string, ...any) }) {
	select {
	case <-d.exited:
		return
	default:
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
		if d.waitErr != nil {
			log.Warn("the daemon exited with an error", "err", d.waitErr, "log", d.logPath)
		}
	case <-time.After(2 * time.Minute):
		log.Warn("the daemon did not stop within 2 minutes of SIGTERM; killing it", "pid", d.cmd.Process.Pid, "log", d.logPath)
		_ = d.cmd.Process.Kill()
		<-d.exited
	}
}

// waitDaemonReady waits until every open shard of the stream has a lease held by a worker, so
// that latencies measure delivery rather than start-up.
func waitDaemonReady(ctx context.Context, cfg config.Config, awsCfg aws.Config, kin *kinesis.Client, d *startedDaemon, within time.Duration) error {
	table := checkpoint.NewTable(awsclient.DynamoDB(awsCfg, cfg.AWS), cfg.Leases.Table, cfg.Leases.WorkerID,
		checkpoint.Options{LeaseDuration: cfg.Leases.LeaseDuration, Clock: clock.Real()})
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	var last string
	for {
		open, err := openShards(ctx, kin, cfg.Stream)
		if err == nil {
			leases, lerr := table.List(ctx)
			held := 0
			for _, l := range leases {
				if open[l.ShardID] && !l.Free() {
					held++
				}
			}
			if lerr == nil && len(open) > 0 && held == len(open) {
				return nil
			}
			last = fmt.Sprintf("%d of %d open shards leased", held, len(open))
			if lerr != nil {
				last = lerr.Error()
			}
		} else {
			last = err.Error()
		}
		select {
		case <-d.exited:
			return fmt.Errorf("the daemon exited before it held every shard (%v); its log: %s\n%s", d.waitErr, d.logPath, logTail(d.logPath, 20))
		case <-ctx.Done():
			return fmt.Errorf("the daemon did not hold every shard within %v (%s); its log: %s", within, last, d.logPath)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// openShards returns the shards of the stream that have no ending sequence number.
func openShards(ctx context.Context, kin *kinesis.Client, s config.Stream) (map[string]bool, error) {
	open := map[string]bool{}
	in := &kinesis.ListShardsInput{}
	if s.ARN != "" {
		in.StreamARN = aws.String(s.ARN)
	} else {
		in.StreamName = aws.String(s.StreamName())
	}
	for {
		out, err := kin.ListShards(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("list shards of %s: %w", s.StreamName(), err)
		}
		for _, sh := range out.Shards {
			if sh.SequenceNumberRange == nil || sh.SequenceNumberRange.EndingSequenceNumber == nil {
				open[aws.ToString(sh.ShardId)] = true
			}
		}
		if out.NextToken == nil {
			return open, nil
		}
		in = &kinesis.ListShardsInput{NextToken: out.NextToken}
	}
}

// logTail returns the last n lines of the file at path.
func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return lastLines(string(b), n)
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
