// Package opensearch is a Firehose-style OpenSearch sink: it buffers records by size and interval
// (Firehose's OpenSearch buffering hints), indexes each buffer with one _bulk request, retries
// only the documents the cluster did not take, and backs up what it gives up on to S3 in
// Firehose's error-record format under AmazonOpenSearchService_failed/.
//
// # Documents
//
// Every record must be one JSON object; it is indexed as written (compacted to one line when it
// spans several). A record that is not a JSON object is never sent: it goes to the backup at once
// with errorCode OS.MalformedDocument. The index is config index plus the rotation suffix taken
// from the record's arrival time in UTC (see index_rotation).
//
// Document ids: with document_id_field, the value of that top-level field (a record without it
// is backed up with errorCode OS.MissingDocumentId); otherwise, by default (FIREHOSE_DEFAULT),
// a digest of the record's stream, shard, sequence and sub-sequence number. Firehose's default ids
// are stable across its retries of one delivery; these are stable across retries, restarts and
// re-reads of the stream from an older checkpoint, so at-least-once delivery indexes each record
// exactly once. NO_DOCUMENT_ID lets the cluster assign ids (cheaper to index; a retried or re-read
// record is then indexed twice). The action is always "index": a document with the same id is
// replaced.
//
// # Failures
//
// Whether a failure is retried is decided in one place, retriable:
//   - per document, status 429, 5xx, 408 and every other status but 400 and 413 are retried,
//     alone: the next attempt sends only the documents that failed. 409 for a record-position id
//     means the record is already indexed (an earlier attempt or run got through) and counts as
//     delivered. 400 (mapper_parsing_exception and the like) and 413 are permanent: such documents
//     are backed up at once, while the others go on being retried.
//   - per request, a connection failure, a timeout (request_timeout) and any status but 400 and
//     413 retry the whole request; 413 splits the request in halves; 400 fails its documents
//     permanently.
//
// Retries follow Firehose's backoff (1 s doubling to 2 min, 15% jitter) for
// retry_duration_in_seconds; then the documents still failing are backed up. Error records carry
// attemptsMade (the bulk requests that held the document), errorCode (the HTTP status the cluster
// gave the document, or one of the OS.* codes below), errorMessage (the cluster's error object as
// JSON, or the request's error), esDocumentId, esIndexName and esTypeName (osDocumentId and
// osIndexName for OpenSearch Serverless).
//
// A batch is acknowledged only when every document is indexed or backed up, and in AllDocuments
// mode also copied raw to the backup. When the cluster and the backup both fail, the batch waits,
// trying each in turn, and the sink stops acknowledging (backup.DeliverOrBackup): nothing is
// dropped, and with max_in_flight batches waiting, Write blocks.
package opensearch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	opensearchgo "github.com/opensearch-project/opensearch-go/v4"
	"github.com/opensearch-project/opensearch-go/v4/opensearchapi"

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

// Error codes of failures that are not an HTTP status from the cluster (those are written as the
// status, e.g. "400").
const (
	// ErrorCodeMalformedDocument: the record is not a JSON object.
	ErrorCodeMalformedDocument = "OS.MalformedDocument"
	// ErrorCodeMissingDocumentID: document_id_field is set and the record has no usable value there.
	ErrorCodeMissingDocumentID = "OS.MissingDocumentId"
	// ErrorCodeConnectionFailed: the bulk request got no answer (refused, reset, TLS, timeout).
	ErrorCodeConnectionFailed = "OS.ConnectionFailed"
	// ErrorCodeMalformedResponse: the cluster answered 2xx with a body that is not a bulk response
	// for the request.
	ErrorCodeMalformedResponse = "OS.MalformedResponse"
)

// Options configures a Sink. Name, Config and Backup are required.
type Options struct {
	// Name is the sink's configured name, for logs and hooks.
	Name string
	// Config is the sink's section, with config.OpenSearchDefaults applied.
	Config config.OpenSearchSink
	// Backup stores error records and, in AllDocuments mode, the raw copies.
	Backup backup.Writer
	// AWSCredentials sign requests when auth.type is sigv4 (wrapped in a cache unless it is one).
	AWSCredentials aws.CredentialsProvider
	// Region signs SigV4 requests when auth.region is empty (the daemon's aws.region).
	Region string
	// HTTPTransport carries the requests; nil means a clone of http.DefaultTransport. TLS options
	// need it to be an *http.Transport (it is cloned, not changed).
	HTTPTransport http.RoundTripper
	// Clock drives the buffering interval and the waits between retries; nil means clock.Real().
	Clock clock.Clock
	// Logger gets failed attempts, backups and pauses; nil discards.
	Logger *slog.Logger
	Hooks  hooks.Set
}

// Sink indexes records into OpenSearch as Firehose does; see the package documentation for the
// rules. It implements sinks.Sink: Write blocks while max_in_flight batches are being delivered
// and the open batch is full; a Write's done runs once all its records are indexed or backed up.
// All methods are safe for concurrent use.
type Sink struct {
	name           string
	client         *opensearchgo.Client
	batcher        *batcher.Batcher
	backup         backup.Writer
	clock          clock.Clock
	log            *slog.Logger
	health         *outage.Reporter // the cluster's outages, from every bulk request of the sink
	hooks          hooks.Set
	policy         retry.Policy
	index          string
	rotation       rotation
	typeName       string // sent as _type when set
	idField        string // document_id_field
	positionIDs    bool   // FIREHOSE_DEFAULT ids when idField is empty
	allDocuments   bool
	serverless     bool
	requestTimeout time.Duration
}

var _ sinks.Sink = (*Sink)(nil)

// New checks opts and returns a running Sink; every problem with the configuration is reported
// at once. It does not contact the cluster: call Check for that.
func New(opts Options) (*Sink, error) {
	cfg := opts.Config
	var problems []error
	if opts.Name == "" {
		problems = append(problems, errors.New("name: must be set"))
	}
	if opts.Backup == nil {
		problems = append(problems, errors.New("no backup writer given (s3_backup is required)"))
	}
	if len(cfg.Endpoints) == 0 {
		problems = append(problems, errors.New("endpoints: list at least one URL"))
	}
	if cfg.Index == "" {
		problems = append(problems, errors.New("index: must be set"))
	}
	rot, err := parseRotation(cfg.IndexRotation)
	if err != nil {
		problems = append(problems, err)
	}
	positionIDs := true
	switch cfg.DocumentIDOptions.DefaultDocumentIDFormat {
	case "FIREHOSE_DEFAULT":
	case "NO_DOCUMENT_ID":
		positionIDs = false
	default:
		problems = append(problems, fmt.Errorf("document_id_options.default_document_id_format %q: use FIREHOSE_DEFAULT or NO_DOCUMENT_ID", cfg.DocumentIDOptions.DefaultDocumentIDFormat))
	}
	if h := cfg.BufferingHints.SizeInMBs; h < 1 || h > 100 {
		problems = append(problems, fmt.Errorf("buffering_hints.size_in_mbs is %d: must be 1 to 100", h))
	}
	if h := cfg.BufferingHints.IntervalInSeconds; h < 60 || h > 900 {
		problems = append(problems, fmt.Errorf("buffering_hints.interval_in_seconds is %d: must be 60 to 900", h))
	}
	if d := cfg.RetryDurationInSeconds; d < 0 || d > 7200 {
		problems = append(problems, fmt.Errorf("retry_duration_in_seconds is %d: must be 0 to 7200", d))
	}
	allDocuments := false
	switch cfg.S3BackupMode {
	case "FailedDocumentsOnly":
	case "AllDocuments":
		allDocuments = true
	default:
		problems = append(problems, fmt.Errorf("s3_backup_mode %q: use FailedDocumentsOnly or AllDocuments", cfg.S3BackupMode))
	}
	if cfg.MaxInFlight < 1 {
		problems = append(problems, fmt.Errorf("max_in_flight is %d: must be at least 1", cfg.MaxInFlight))
	}
	if cfg.RequestTimeout <= 0 {
		problems = append(problems, fmt.Errorf("request_timeout is %s: must be positive", cfg.RequestTimeout))
	}
	client, err := newClient(cfg, opts)
	if err != nil {
		problems = append(problems, err)
	}
	if len(problems) > 0 {
		if client != nil {
			_ = client.Close()
		}
		return nil, fmt.Errorf("opensearch sink %q: %w", opts.Name, errors.Join(problems...))
	}

	policy := backup.FirehoseHTTPRetry
	if cfg.RetryDurationInSeconds == 0 {
		policy.MaxAttempts = 1 // retry.Policy's MaxElapsed 0 would mean "no limit"
	} else {
		policy.MaxElapsed = time.Duration(cfg.RetryDurationInSeconds) * time.Second
	}
	s := &Sink{
		name:           opts.Name,
		client:         client,
		backup:         opts.Backup,
		clock:          opts.Clock,
		log:            opts.Logger,
		hooks:          opts.Hooks,
		policy:         policy,
		index:          cfg.Index,
		rotation:       rot,
		typeName:       cfg.TypeName,
		idField:        cfg.DocumentIDField,
		positionIDs:    positionIDs,
		allDocuments:   allDocuments,
		serverless:     cfg.Auth.Type == "sigv4" && cfg.Auth.Service == "aoss",
		requestTimeout: cfg.RequestTimeout,
	}
	if s.clock == nil {
		s.clock = clock.Real()
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("sink", s.name)
	s.health = outage.New(outage.Options{Dependency: "opensearch", Resource: strings.Join(cfg.Endpoints, ","), Logger: s.log, Clock: s.clock})
	if cfg.TLS.InsecureSkipVerify {
		s.log.Warn("tls.insecure_skip_verify is on: the cluster's certificate is not checked, so anyone on the path can read the documents and credentials")
	}
	b, err := batcher.New(batcher.Options{
		MaxBytes:    cfg.BufferingHints.SizeInMBs << 20,
		Interval:    time.Duration(cfg.BufferingHints.IntervalInSeconds) * time.Second,
		MaxInFlight: cfg.MaxInFlight,
		Deliver:     s.deliverBatch,
		Clock:       s.clock,
		Logger:      s.log,
	})
	if err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("opensearch sink %q: %w", opts.Name, err)
	}
	s.batcher = b
	return s, nil
}

// Name returns the sink's configured name.
func (s *Sink) Name() string { return s.name }

// Write buffers records; see sinks.Sink.
func (s *Sink) Write(ctx context.Context, records []record.Record, done func()) error {
	if done == nil {
		done = func() {}
	}
	return s.batcher.Write(ctx, records, done)
}

// Flush starts delivery of everything buffered and waits until it is indexed or backed up, or
// ctx ends.
func (s *Sink) Flush(ctx context.Context) error {
	if err := s.batcher.Flush(ctx); err != nil {
		return fmt.Errorf("opensearch sink %q: %w", s.name, err)
	}
	return nil
}

// Close flushes like Flush, then stops: batches still being delivered when ctx ends are
// abandoned unacknowledged. The HTTP client's background work stops too.
func (s *Sink) Close(ctx context.Context) error {
	err := s.batcher.Close(ctx)
	if cerr := s.client.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("close opensearch client: %w", cerr))
	}
	if err != nil {
		return fmt.Errorf("opensearch sink %q: close: %w", s.name, err)
	}
	return nil
}

// clusterInfo is the part of GET / that Check reports.
type clusterInfo struct {
	Name        string `json:"name"`
	ClusterName string `json:"cluster_name"`
	Version     struct {
		Number       string `json:"number"`
		Distribution string `json:"distribution"`
	} `json:"version"`
}

// Check asks the cluster for GET / with the sink's credentials, within request_timeout, and says
// in one line what is wrong: unreachable, credentials refused, or an unexpected answer.
// OpenSearch Serverless has no GET /; there any answer but 401, 403 and 5xx counts as reachable.
func (s *Sink) Check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.requestTimeout)
	defer cancel()
	var info clusterInfo
	res, err := opensearchgo.Do(ctx, s.client, http.MethodGet, opensearchapi.InfoReq{}, &info)
	if res == nil {
		return fmt.Errorf("opensearch sink %q: cluster unreachable: %w", s.name, err)
	}
	switch {
	case res.StatusCode == http.StatusUnauthorized || res.StatusCode == http.StatusForbidden:
		return fmt.Errorf("opensearch sink %q: cluster refused the credentials (GET / answered %d): %s", s.name, res.StatusCode, responseText(res))
	case res.StatusCode >= 500 || (!s.serverless && res.StatusCode >= 300):
		return fmt.Errorf("opensearch sink %q: GET / answered %d: %s", s.name, res.StatusCode, responseText(res))
	case err != nil && !s.serverless:
		return fmt.Errorf("opensearch sink %q: GET /: %w", s.name, err)
	}
	s.log.Info("opensearch cluster reachable", "cluster", info.ClusterName, "distribution", info.Version.Distribution, "version", info.Version.Number)
	return nil
}
