// Package httpsink is Amazon Data Firehose's HTTP endpoint destination re-created: records are
// buffered by Firehose's hints, POSTed in Firehose's request format (version 1.0), retried for
// the retry duration with Firehose's backoff, and then stored in the S3 backup in Firehose's
// error-record format. A receiver written for Firehose works unchanged.
package httpsink

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/shardhose/shardhose/config"
	"github.com/shardhose/shardhose/hooks"
	"github.com/shardhose/shardhose/internal/clock"
	"github.com/shardhose/shardhose/internal/outage"
	"github.com/shardhose/shardhose/internal/retry"
	"github.com/shardhose/shardhose/record"
	"github.com/shardhose/shardhose/sinks"
	"github.com/shardhose/shardhose/sinks/backup"
	"github.com/shardhose/shardhose/sinks/batcher"
)

// Options configure a Sink. Name, Config (with config.HTTPDefaults applied and validated),
// Backup, and a source ARN (SourceARN or Config.SourceARN) are required.
type Options struct {
	// Name is the sink's name in logs, hooks and backup object names.
	Name   string
	Config config.HTTPSink
	// SourceARN is sent as X-Amz-Firehose-Source-Arn: the stream's ARN. Config.SourceARN, when
	// set, wins.
	SourceARN string
	// Backup stores what the endpoint does not take (and, in AllData mode, every batch). It is
	// usually a *backup.S3Writer for Config.S3Backup.
	Backup backup.Writer
	// HTTPClient sends the requests; nil means a client of its own. The sink uses a copy whose
	// CheckRedirect never follows a redirect (a 3xx is a failed delivery, as in Firehose); the
	// request timeout comes from Config, so the client needs none.
	HTTPClient *http.Client
	// Clock drives buffering, backoff and the request timeout; nil means clock.Real().
	Clock clock.Clock
	// Logger gets a line per failed attempt and per backed-up batch; nil discards. The access key
	// and the endpoint URL's path and query are never logged.
	Logger *slog.Logger
	Hooks  hooks.Set
}

// Sink delivers records to an HTTP endpoint as Firehose does. It implements sinks.Sink.
//
// Buffering (sinks/batcher): a request holds up to 10,000 records and goes out when its records
// reach buffering_hints.size_in_mbs (capped so that the body, base64 included, stays within
// 64 MiB) or interval_in_seconds after its first record. At most max_in_flight requests (each
// with its retries) are under way; Writes block beyond that, which bounds memory.
//
// Delivery of one request: POST with Firehose's headers and body; only a 200 whose body is JSON
// echoing the request id is success. Any other answer, a redirect, a connection error or no
// answer within request_timeout is retried with the same request id (1 s backoff doubling to at
// most 2 minutes, 15% jitter) for retry_duration_in_seconds; 413 is not retried. Then the
// records go to the backup as error records under http-endpoint-failed/. A record over
// 1,024,000 bytes is never sent: it goes to the backup at once. If the backup fails too, the
// batch alternates between backup and endpoint until one takes it (backup.DeliverOrBackup): the
// sink pauses, nothing is dropped.
//
// Acknowledgement: a Write's done runs once every record of it was taken by the endpoint or
// stored in the backup, and in AllData mode also stored as a raw copy.
//
// Ordering: records of one Write keep their order within a request; with max_in_flight above 1,
// requests run concurrently, so the endpoint may receive them out of order.
//
// All methods are safe for concurrent use.
type Sink struct {
	name      string
	url       string
	endpoint  string // scheme://host and the configured name: what logs and messages show
	accessKey string
	attrs     string // the common attributes header
	sourceARN string
	gzip      bool
	allData   bool
	timeout   time.Duration
	policy    retry.Policy
	backup    backup.Writer
	client    *http.Client
	clock     clock.Clock
	log       *slog.Logger
	health    *outage.Reporter // the endpoint's outages, from every request of the sink
	hooks     hooks.Set
	batcher   *batcher.Batcher
}

var _ sinks.Sink = (*Sink)(nil)

// errRequestTimeout ends an attempt that got no complete answer within the request timeout.
var errRequestTimeout = errors.New("no complete response within the request timeout")

// New checks opts, reads the access key, and starts the sink. Every problem is reported at once.
func New(opts Options) (*Sink, error) {
	cfg := opts.Config
	var problems []error
	if opts.Name == "" {
		problems = append(problems, errors.New("name: must be set"))
	}
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		problems = append(problems, errors.New("url: must be http:// or https:// with a host and no credentials"))
	}
	if opts.Backup == nil {
		problems = append(problems, errors.New("no backup writer given: Firehose's HTTP endpoint destination always has an S3 backup"))
	}
	sourceARN := cmp.Or(cfg.SourceARN, opts.SourceARN)
	if sourceARN == "" {
		problems = append(problems, errors.New("no source ARN: set Options.SourceARN to the stream's ARN, or source_arn"))
	}
	accessKey, err := readAccessKey(cfg)
	if err != nil {
		problems = append(problems, err)
	}
	attrs := cfg.CommonAttributes
	if attrs == nil {
		attrs = map[string]string{}
	}
	attrHeader, err := json.Marshal(map[string]map[string]string{"commonAttributes": attrs})
	if err != nil {
		problems = append(problems, fmt.Errorf("common_attributes: %w", err))
	}
	switch cfg.ContentEncoding {
	case "NONE", "GZIP":
	default:
		problems = append(problems, fmt.Errorf("content_encoding %q: use NONE or GZIP", cfg.ContentEncoding))
	}
	switch cfg.S3BackupMode {
	case "FailedDataOnly", "AllData":
	default:
		problems = append(problems, fmt.Errorf("s3_backup_mode %q: use FailedDataOnly or AllData", cfg.S3BackupMode))
	}
	if h := cfg.BufferingHints.SizeInMBs; h < 1 || h > 64 {
		problems = append(problems, fmt.Errorf("buffering_hints.size_in_mbs is %d: must be 1 to 64", h))
	}
	if h := cfg.BufferingHints.IntervalInSeconds; h < 0 || h > 900 {
		problems = append(problems, fmt.Errorf("buffering_hints.interval_in_seconds is %d: must be 0 to 900", h))
	}
	if d := cfg.RetryDurationInSeconds; d < 0 || d > config.HTTPMaxRetryDuration {
		problems = append(problems, fmt.Errorf("retry_duration_in_seconds is %d: must be 0 to %d", d, config.HTTPMaxRetryDuration))
	}
	if cfg.RequestTimeout <= 0 {
		problems = append(problems, fmt.Errorf("request_timeout is %s: must be positive", cfg.RequestTimeout))
	}
	if cfg.MaxInFlight < 1 {
		problems = append(problems, fmt.Errorf("max_in_flight is %d: must be at least 1", cfg.MaxInFlight))
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("http sink %q: %w", opts.Name, errors.Join(problems...))
	}

	s := &Sink{
		name:      opts.Name,
		url:       cfg.URL,
		endpoint:  u.Scheme + "://" + u.Host,
		accessKey: accessKey,
		attrs:     string(attrHeader),
		sourceARN: sourceARN,
		gzip:      cfg.ContentEncoding == "GZIP",
		allData:   cfg.S3BackupMode == "AllData",
		timeout:   cfg.RequestTimeout,
		policy:    backup.FirehoseHTTPRetry,
		backup:    opts.Backup,
		clock:     opts.Clock,
		log:       opts.Logger,
		hooks:     opts.Hooks,
	}
	if cfg.Name != "" {
		s.endpoint = cfg.Name + " (" + s.endpoint + ")"
	}
	if cfg.RetryDurationInSeconds == 0 {
		s.policy.MaxAttempts = 1
	} else {
		s.policy.MaxElapsed = time.Duration(cfg.RetryDurationInSeconds) * time.Second
	}
	client := &http.Client{}
	if opts.HTTPClient != nil {
		c := *opts.HTTPClient
		client = &c
	}
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	s.client = client
	if s.clock == nil {
		s.clock = clock.Real()
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("sink", s.name, "endpoint", s.endpoint)
	s.health = outage.New(outage.Options{Dependency: "http", Resource: s.endpoint, Logger: s.log, Clock: s.clock})

	b, err := batcher.New(batcher.Options{
		MaxRecords:  MaxRecordsPerRequest,
		MaxBytes:    min(cfg.BufferingHints.SizeInMBs<<20, maxRawBatchBytes),
		Interval:    time.Duration(cfg.BufferingHints.IntervalInSeconds) * time.Second,
		MaxInFlight: cfg.MaxInFlight,
		Deliver:     s.deliverBatch,
		Clock:       s.clock,
		Logger:      s.log,
	})
	if err != nil {
		return nil, fmt.Errorf("http sink %q: %w", opts.Name, err)
	}
	s.batcher = b
	return s, nil
}

// readAccessKey returns the access key from the one place cfg names, or "" when none.
func readAccessKey(cfg config.HTTPSink) (string, error) {
	sources := 0
	for _, set := range []bool{cfg.AccessKey != "", cfg.AccessKeyEnv != "", cfg.AccessKeyFile != ""} {
		if set {
			sources++
		}
	}
	var key, from string
	switch {
	case sources > 1:
		return "", errors.New("access key: set at most one of access_key, access_key_env and access_key_file")
	case cfg.AccessKey != "":
		key, from = string(cfg.AccessKey), "access_key"
	case cfg.AccessKeyEnv != "":
		v, ok := os.LookupEnv(cfg.AccessKeyEnv)
		if !ok || v == "" {
			return "", fmt.Errorf("access_key_env: the environment variable %s is not set or empty", cfg.AccessKeyEnv)
		}
		key, from = v, "access_key_env ("+cfg.AccessKeyEnv+")"
	case cfg.AccessKeyFile != "":
		b, err := os.ReadFile(cfg.AccessKeyFile)
		if err != nil {
			return "", fmt.Errorf("access_key_file: read the access key: %w", err)
		}
		v := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
		if v == "" {
			return "", fmt.Errorf("access_key_file: %s is empty", cfg.AccessKeyFile)
		}
		key, from = v, "access_key_file ("+cfg.AccessKeyFile+")"
	}
	switch {
	case len(key) > MaxAccessKeyBytes:
		return "", fmt.Errorf("%s: the access key is %d bytes long; at most %d are allowed", from, len(key), MaxAccessKeyBytes)
	case strings.ContainsFunc(key, func(r rune) bool { return r < ' ' || r == 0x7f }):
		return "", fmt.Errorf("%s: the access key has control characters (a line break?), which cannot go in a header", from)
	}
	return key, nil
}

// Name returns the sink's configured name.
func (s *Sink) Name() string { return s.name }

// Write hands records to the sink; see sinks.Sink. It blocks while max_in_flight requests are
// under way and the open batch is full.
func (s *Sink) Write(ctx context.Context, records []record.Record, done func()) error {
	if done == nil {
		done = func() {}
	}
	return s.batcher.Write(ctx, records, done)
}

// Flush sends what is buffered and waits until every batch handed over so far is delivered or
// backed up, or ctx ends.
func (s *Sink) Flush(ctx context.Context) error {
	if err := s.batcher.Flush(ctx); err != nil {
		return fmt.Errorf("flush http sink %s: %w", s.name, err)
	}
	return nil
}

// Close flushes like Flush, then stops the sink: requests and backups still under way when ctx
// ends are cancelled, and their records are never acknowledged.
func (s *Sink) Close(ctx context.Context) error {
	if err := s.batcher.Close(ctx); err != nil {
		return fmt.Errorf("close http sink %s: %w", s.name, err)
	}
	return nil
}

// deliverBatch is the batcher's DeliverFunc: it returns nil once every record is with the
// endpoint or in the backup (and, in AllData mode, in the raw copy), or ctx's error.
func (s *Sink) deliverBatch(ctx context.Context, recs []record.Record) error {
	var raw chan error
	if s.allData {
		raw = make(chan error, 1)
		go func() { raw <- s.backup.WriteRaw(ctx, recs) }()
	}
	err := s.deliver(ctx, recs)
	if raw != nil {
		if rerr := <-raw; rerr != nil {
			err = errors.Join(err, fmt.Errorf("store the AllData copy of %d records: %w", len(recs), rerr))
		}
	}
	return err
}

// deliver sends recs, retrying and backing up as Firehose does.
func (s *Sink) deliver(ctx context.Context, recs []record.Record) error {
	sendable, tooLarge := splitOversize(recs)
	if len(tooLarge) > 0 {
		if err := s.backupTooLarge(ctx, tooLarge); err != nil {
			return err
		}
	}
	if len(sendable) == 0 {
		return nil
	}
	req, err := s.newRequest(sendable)
	if err != nil {
		return err
	}
	log := s.log.With("request_id", req.id, "records", len(req.records))
	start := s.clock.Now()
	delivered, attempts, err := backup.DeliverOrBackup(backup.WithPauseHooks(ctx, s.name, s.hooks), s.clock, s.policy,
		s.health.Track(func(ctx context.Context, attempt int) error {
			if err := s.post(ctx, req, attempt); err != nil {
				return s.scrub(err)
			}
			return nil
		}),
		func(ctx context.Context, lastErr error, attempts int) error {
			return s.backupFailed(ctx, req.records, lastErr, attempts)
		},
		log)
	if err != nil {
		return fmt.Errorf("deliver %d records to %s: %w", len(req.records), s.endpoint, s.scrub(err))
	}
	if delivered {
		log.Debug("records delivered", "attempts", attempts, "bytes", len(req.body), "bytes_uncompressed", req.rawSize)
		hooks.Each(s.hooks, func(h hooks.Delivered) {
			h.OnDelivered(s.name, len(req.records), len(req.body), s.clock.Now().Sub(start))
		})
		return nil
	}
	log.Warn("records stored in the backup bucket: the endpoint did not take them", "attempts", attempts, "folder", backup.FolderHTTPEndpointFailed)
	return nil
}

// splitOversize separates the records over MaxRecordBytes, keeping the others' order.
func splitOversize(recs []record.Record) (sendable, tooLarge []record.Record) {
	n := 0
	for i := range recs {
		if len(recs[i].Data) > MaxRecordBytes {
			n++
		}
	}
	if n == 0 {
		return recs, nil
	}
	sendable = make([]record.Record, 0, len(recs)-n)
	for _, r := range recs {
		if len(r.Data) > MaxRecordBytes {
			tooLarge = append(tooLarge, r)
		} else {
			sendable = append(sendable, r)
		}
	}
	return sendable, tooLarge
}

// newRequest builds the request for recs: its id (requestID: the same for the same records), and
// the body every attempt sends.
func (s *Sink) newRequest(recs []record.Record) (*request, error) {
	id := requestID(s.name, recs)
	body := encodeBody(id, s.clock.Now(), recs)
	req := &request{id: id, body: body, rawSize: len(body), records: recs}
	if s.gzip {
		z, err := gzipBody(body)
		if err != nil {
			return nil, fmt.Errorf("request %s: %w", id, err)
		}
		req.body = z
	}
	return req, nil
}

// DeliveryError is why one attempt failed: Code is the error records' errorCode
// (ErrorCode* constants), StatusCode the answer's status (0 without one), Message the error
// records' errorMessage (the endpoint's answer, truncated; never the access key). Err is the
// underlying transport or parse error, if any.
type DeliveryError struct {
	Code       string
	StatusCode int
	Message    string
	Err        error
}

// Error returns "<code>: <message>".
func (e *DeliveryError) Error() string { return e.Code + ": " + e.Message }

// Unwrap returns the underlying transport or parse error, if any.
func (e *DeliveryError) Unwrap() error { return e.Err }

// post makes one attempt: it returns nil on a 200 echoing the request id, a *DeliveryError
// otherwise (marked retry.Permanent for 413), or ctx's error.
func (s *Sink) post(ctx context.Context, req *request, attempt int) error {
	err := s.attempt(ctx, req)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return err
	}
	hooks.Each(s.hooks, func(h hooks.DeliveryFailed) { h.OnDeliveryFailed(s.name, len(req.records), err) })
	var de *DeliveryError
	if errors.As(err, &de) && de.StatusCode == http.StatusRequestEntityTooLarge {
		return retry.Permanent(err)
	}
	return err
}

func (s *Sink) attempt(ctx context.Context, req *request) error {
	actx, stop := clock.WithTimeout(ctx, s.clock, s.timeout, errRequestTimeout)
	defer stop()
	hr, err := http.NewRequestWithContext(actx, http.MethodPost, s.url, bytes.NewReader(req.body))
	if err != nil {
		return fmt.Errorf("build request to %s: %w", s.endpoint, err)
	}
	hr.ContentLength = int64(len(req.body))
	h := hr.Header
	h.Set("Content-Type", "application/json")
	if s.gzip {
		h.Set("Content-Encoding", "gzip")
	}
	h.Set("User-Agent", "shardhose")
	h.Set(HeaderProtocolVersion, ProtocolVersion)
	h.Set(HeaderRequestID, req.id)
	h.Set(HeaderSourceARN, s.sourceARN)
	if s.accessKey != "" {
		h.Set(HeaderAccessKey, s.accessKey)
	}
	h.Set(HeaderCommonAttributes, s.attrs)

	resp, err := s.client.Do(hr)
	if err != nil {
		return s.transportError(ctx, actx, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return s.transportError(ctx, actx, err)
	}
	if resp.StatusCode != http.StatusOK {
		return &DeliveryError{
			Code:       ErrorCodeDestinationException,
			StatusCode: resp.StatusCode,
			Message:    s.scrubString(fmt.Sprintf("Received the following response from the endpoint destination. %d: %s", resp.StatusCode, truncate(body))),
		}
	}
	if len(body) > maxResponseBytes {
		return &DeliveryError{
			Code:       ErrorCodeResponseTooLarge,
			StatusCode: resp.StatusCode,
			Message:    fmt.Sprintf("The response received from the endpoint is larger than %d bytes.", maxResponseBytes),
		}
	}
	if err := checkResponse(body, req.id); err != nil {
		return &DeliveryError{
			Code:       ErrorCodeInvalidResponse,
			StatusCode: resp.StatusCode,
			Message:    s.scrubString(fmt.Sprintf("The response received from the endpoint is invalid (%v). 200: %s", err, truncate(body))),
			Err:        err,
		}
	}
	return nil
}

// transportError classifies a failure to get a complete answer. The HTTP client's errors name
// the full URL, whose query may hold a secret, so the message is built from the cause alone.
func (s *Sink) transportError(ctx, actx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("request to %s: %w", s.endpoint, ctx.Err())
	}
	cause := err
	var ue *url.Error
	if errors.As(err, &ue) {
		cause = ue.Err
	}
	if errors.Is(context.Cause(actx), errRequestTimeout) {
		return &DeliveryError{
			Code:    ErrorCodeRequestTimeout,
			Message: fmt.Sprintf("The endpoint did not answer within the request timeout of %s.", s.timeout),
			Err:     errRequestTimeout,
		}
	}
	return &DeliveryError{
		Code:    ErrorCodeConnectionFailed,
		Message: s.scrubString(fmt.Sprintf("The request to the endpoint failed: %v", cause)),
		Err:     cause,
	}
}

// truncate returns the start of a response body for an error message.
func truncate(body []byte) string {
	if len(body) > maxMessageBody {
		return string(body[:maxMessageBody]) + "..."
	}
	return string(body)
}

// scrubString replaces the access key wherever it appears (an endpoint echoing it back, say).
func (s *Sink) scrubString(msg string) string {
	if s.accessKey == "" {
		return msg
	}
	return strings.ReplaceAll(msg, s.accessKey, "[redacted]")
}

// scrub returns err, or an error with the access key replaced if its text holds the key.
func (s *Sink) scrub(err error) error {
	if s.accessKey == "" || !strings.Contains(err.Error(), s.accessKey) {
		return err
	}
	return &scrubbed{msg: s.scrubString(err.Error()), err: err}
}

type scrubbed struct {
	msg string
	err error
}

func (e *scrubbed) Error() string { return e.msg }
func (e *scrubbed) Unwrap() error { return e.err }

// backupFailed stores recs as error records after attempts failed with lastErr.
func (s *Sink) backupFailed(ctx context.Context, recs []record.Record, lastErr error, attempts int) error {
	code, msg := ErrorCodeDestinationException, s.scrubString(lastErr.Error())
	var de *DeliveryError
	if errors.As(lastErr, &de) {
		code, msg = de.Code, de.Message
	}
	return s.writeErrors(ctx, recs, code, msg, attempts)
}

// backupTooLarge stores records over MaxRecordBytes as error records, never having sent them.
func (s *Sink) backupTooLarge(ctx context.Context, recs []record.Record) error {
	for _, r := range recs {
		s.log.Warn("record larger than an endpoint takes; storing it in the backup bucket", "bytes", len(r.Data), "limit", MaxRecordBytes, "data_id", dataID(&r))
	}
	msg := fmt.Sprintf("The record is larger than %d bytes, the most an HTTP endpoint request may carry; it was not sent.", MaxRecordBytes)
	if err := s.writeErrors(ctx, recs, ErrorCodeRecordTooLarge, msg, 0); err != nil {
		return fmt.Errorf("back up %d records too large to send: %w", len(recs), err)
	}
	return nil
}

func (s *Sink) writeErrors(ctx context.Context, recs []record.Record, code, msg string, attempts int) error {
	now := s.clock.Now().UnixMilli()
	errs := make([]backup.ErrorRecord, len(recs))
	for i := range recs {
		r := &recs[i]
		arrival := now
		if !r.ApproximateArrivalTimestamp.IsZero() {
			arrival = r.ApproximateArrivalTimestamp.UnixMilli()
		}
		errs[i] = backup.ErrorRecord{
			AttemptsMade:           attempts,
			ArrivalTimestamp:       arrival,
			ErrorCode:              code,
			ErrorMessage:           msg,
			AttemptEndingTimestamp: now,
			RawData:                r.Data,
			Extra:                  map[string]any{"subsequenceNumber": r.SubSequenceNumber, "dataId": dataID(r)},
		}
	}
	return s.backup.WriteErrors(ctx, backup.FolderHTTPEndpointFailed, errs)
}
