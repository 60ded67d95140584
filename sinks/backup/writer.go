package backup

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/klauspost/compress/gzip"

	"github.com/shardhose/shardhose/hooks"
	"github.com/shardhose/shardhose/internal/clock"
	"github.com/shardhose/shardhose/internal/lazyregexp"
	"github.com/shardhose/shardhose/internal/outage"
	"github.com/shardhose/shardhose/internal/retry"
	"github.com/shardhose/shardhose/record"
)

// Writer stores data a destination did not take (and, in AllData mode, a copy of all data) in
// the backup bucket.
//
// Each call stores its records as one object and returns nil only once that object is stored. A
// failed write is retried with backoff until it succeeds or ctx ends; then the error (wrapping
// ctx's) says nothing was stored, and the caller must not acknowledge the records. A retry after
// an ambiguous failure may store the same records twice: a duplicate at worst, never a loss.
// Writers are safe for concurrent use.
type Writer interface {
	// WriteErrors stores recs as one error-record object (JSON lines) under folder, which is
	// Firehose's error output type with its slash, e.g. "http-endpoint-failed/".
	WriteErrors(ctx context.Context, folder string, recs []ErrorRecord) error
	// WriteRaw stores the records' data as one object, newline-delimited (AllData mode's copy).
	WriteRaw(ctx context.Context, recs []record.Record) error
}

// PutObjectAPI is the part of the S3 client a Writer uses; *s3.Client implements it.
type PutObjectAPI interface {
	PutObject(ctx context.Context, in *awss3.PutObjectInput, optFns ...func(*awss3.Options)) (*awss3.PutObjectOutput, error)
}

// Compression values of S3Options.Compression (Firehose's names).
const (
	CompressionGZIP         = "GZIP"
	CompressionUncompressed = "UNCOMPRESSED"
)

// Folders (Firehose's error output types) the sinks write error records under.
const (
	FolderHTTPEndpointFailed = "http-endpoint-failed/"
	FolderOpenSearchFailed   = "AmazonOpenSearchService_failed/"
	FolderProcessingFailed   = "processing-failed/"
)

const (
	extGzip = ".gz"
	// contentType of every object: records are opaque bytes, gzipped or not. Content-Encoding is
	// never set, so that a ".gz" object downloads as the gzip file it is (Firehose does the same).
	contentType = "application/octet-stream"
	// timeFolders is Firehose's !{timestamp:yyyy/MM/dd/HH/} as a Go layout.
	timeFolders = "2006/01/02/15/"
	// maxPrefixLen is Firehose's limit on an evaluated prefix.
	maxPrefixLen = 512
)

// FirehoseHTTPRetry is Firehose's backoff for HTTP endpoints, which shardhose uses for every
// destination and its backup: 1 s, doubling, 15% jitter, each wait at most 2 minutes, no limit on
// the total (the caller's context ends it).
var FirehoseHTTPRetry = retry.Policy{Initial: time.Second, Max: 2 * time.Minute, Multiplier: 2, Jitter: 0.15}

var sinkNameRe = lazyregexp.NewBounded(`^[A-Za-z0-9_.-]+$`, 1, 64)

// S3Options configure an S3Writer. Client, Bucket and SinkName are required.
type S3Options struct {
	Client PutObjectAPI
	Bucket string
	// Prefix goes before every key, as given (write its trailing slash yourself).
	Prefix string
	// Compression is GZIP or UNCOMPRESSED; empty means UNCOMPRESSED (Firehose's default for
	// backups).
	Compression string
	// SinkName is the sink being backed up; it names every object, as the delivery stream's name
	// does in Firehose. 1 to 64 of A-Z a-z 0-9 _ . -
	SinkName string
	// Clock stamps keys and times the waits between retries; nil means clock.Real().
	Clock clock.Clock
	// Logger gets a line per failed PUT; nil discards.
	Logger *slog.Logger
	// Retry is the backoff between failed PUTs; the zero value means FirehoseHTTPRetry. Its
	// MaxElapsed and MaxAttempts are honoured when set, but a Writer whose policy can give up no
	// longer pauses its sink on a long S3 outage: leave them 0.
	Retry retry.Policy
	// Hooks are told of the records each stored object holds (hooks.BackedUp, under SinkName).
	Hooks hooks.Set
}

// S3Writer is the Writer that stores objects in an S3 bucket under Firehose's key layout:
//
//	<prefix><folder>YYYY/MM/dd/HH/<sink>-1-YYYY-MM-dd-HH-MM-SS-<uuid>[.gz]
//
// where the times (UTC) are the arrival of the object's oldest record (the write's time when no
// record carries one) and folder is empty for AllData copies. It is safe for concurrent use.
type S3Writer struct {
	client   PutObjectAPI
	bucket   string
	prefix   string
	gzip     bool
	sinkName string
	clock    clock.Clock
	log      *slog.Logger
	health   *outage.Reporter // the backup bucket's outages
	policy   retry.Policy
	hooks    hooks.Set
}

var _ Writer = (*S3Writer)(nil)

// NewS3Writer checks o and returns a Writer; every problem is reported at once.
func NewS3Writer(o S3Options) (*S3Writer, error) {
	var problems []error
	if o.Client == nil {
		problems = append(problems, errors.New("no S3 client given"))
	}
	if o.Bucket == "" {
		problems = append(problems, errors.New("bucket: must be set"))
	}
	if !sinkNameRe.MatchString(o.SinkName) {
		problems = append(problems, fmt.Errorf("sink name %q: must be 1 to 64 of A-Z a-z 0-9 _ . - (it becomes part of every object name)", o.SinkName))
	}
	if strings.Contains(o.Prefix, "!{") {
		problems = append(problems, fmt.Errorf("prefix %q: prefix expressions (!{...}) are not supported in backup prefixes; use a literal prefix", o.Prefix))
	}
	if n := len(o.Prefix) + len(FolderOpenSearchFailed) + len(timeFolders); n > maxPrefixLen {
		problems = append(problems, fmt.Errorf("prefix is %d characters with the folder and time folders appended; the limit is %d", n, maxPrefixLen))
	}
	gz := false
	switch o.Compression {
	case CompressionGZIP:
		gz = true
	case "", CompressionUncompressed:
	default:
		problems = append(problems, fmt.Errorf("compression %q: use %s or %s", o.Compression, CompressionGZIP, CompressionUncompressed))
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("s3 backup of sink %q: %w", o.SinkName, errors.Join(problems...))
	}
	w := &S3Writer{
		client:   o.Client,
		bucket:   o.Bucket,
		prefix:   o.Prefix,
		gzip:     gz,
		sinkName: o.SinkName,
		clock:    o.Clock,
		log:      o.Logger,
		policy:   o.Retry,
		hooks:    o.Hooks,
	}
	if w.clock == nil {
		w.clock = clock.Real()
	}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	w.log = w.log.With("sink", o.SinkName, "backup_bucket", o.Bucket)
	w.health = outage.New(outage.Options{Dependency: "s3", Resource: o.Bucket, Logger: w.log, Clock: w.clock})
	if w.policy == (retry.Policy{}) {
		w.policy = FirehoseHTTPRetry
	}
	return w, nil
}

// WriteErrors stores recs as one JSON-lines object under folder; see Writer. An empty recs
// stores nothing.
func (w *S3Writer) WriteErrors(ctx context.Context, folder string, recs []ErrorRecord) error {
	if len(recs) == 0 {
		return nil
	}
	if strings.Contains(folder, "..") || strings.HasPrefix(folder, "/") {
		return fmt.Errorf("write error records: folder %q is not a relative folder name", folder)
	}
	var oldest int64
	var buf bytes.Buffer
	for i := range recs {
		line, err := recs[i].MarshalJSON()
		if err != nil {
			return fmt.Errorf("write error records to %s: record %d: %w", folder, i, err)
		}
		buf.Write(line)
		buf.WriteByte('\n')
		if t := recs[i].ArrivalTimestamp; t > 0 && (oldest == 0 || t < oldest) {
			oldest = t
		}
	}
	at := w.clock.Now()
	if oldest > 0 {
		at = time.UnixMilli(oldest)
	}
	return w.put(ctx, folder, at, len(recs), buf.Bytes())
}

// WriteRaw stores the records' data, each followed by a newline, as one object; see Writer. An
// empty recs stores nothing.
func (w *S3Writer) WriteRaw(ctx context.Context, recs []record.Record) error {
	if len(recs) == 0 {
		return nil
	}
	var oldest time.Time
	size := 0
	for i := range recs {
		size += len(recs[i].Data) + 1
		if t := recs[i].ApproximateArrivalTimestamp; !t.IsZero() && (oldest.IsZero() || t.Before(oldest)) {
			oldest = t
		}
	}
	if oldest.IsZero() {
		oldest = w.clock.Now()
	}
	buf := make([]byte, 0, size)
	for i := range recs {
		buf = append(buf, recs[i].Data...)
		buf = append(buf, '\n')
	}
	return w.put(ctx, "", oldest, len(recs), buf)
}

// put compresses body as configured and writes it under a new key, retrying until it is stored
// or ctx ends.
func (w *S3Writer) put(ctx context.Context, folder string, at time.Time, records int, body []byte) error {
	key := w.key(folder, at)
	if w.gzip {
		var z bytes.Buffer
		zw, err := gzip.NewWriterLevel(&z, gzip.DefaultCompression)
		if err == nil {
			_, err = zw.Write(body)
		}
		if err == nil {
			err = zw.Close()
		}
		if err != nil {
			return fmt.Errorf("gzip backup object %s: %w", key, err)
		}
		body = z.Bytes()
	}
	attemptPut := w.health.Track(func(ctx context.Context, _ int) error {
		_, err := w.client.PutObject(ctx, &awss3.PutObjectInput{
			Bucket:        aws.String(w.bucket),
			Key:           aws.String(key),
			Body:          bytes.NewReader(body),
			ContentLength: aws.Int64(int64(len(body))),
			ContentType:   aws.String(contentType),
		})
		if err != nil {
			return fmt.Errorf("put backup object s3://%s/%s: %w", w.bucket, key, err)
		}
		return nil
	}, "key", key)
	failed := func(attempt int, err error, wait time.Duration) {
		w.log.Debug("backup write failed; retrying", "key", key, "records", records, "bytes", len(body), "attempt", attempt, "sdk_attempts", outage.Attempts(err), "retry_in", wait, "error", err)
	}
	out, err := retry.Do(ctx, w.clock, w.policy, attemptPut, failed)
	if err != nil {
		return fmt.Errorf("backup of %d records not stored after %d attempts: %w", records, out.Attempts, err)
	}
	w.log.Debug("backup object written", "key", key, "records", records, "bytes", len(body), "attempts", out.Attempts)
	hooks.Each(w.hooks, func(h hooks.BackedUp) { h.OnBackedUp(w.sinkName, records) })
	return nil
}

// key returns a new object key for folder, stamped with at.
func (w *S3Writer) key(folder string, at time.Time) string {
	t := at.UTC()
	var b strings.Builder
	b.Grow(len(w.prefix) + len(folder) + len(w.sinkName) + 80)
	b.WriteString(w.prefix)
	b.WriteString(folder)
	b.WriteString(t.Format(timeFolders))
	b.WriteString(w.sinkName)
	b.WriteString("-1-")
	b.WriteString(t.Format("2006-01-02-15-04-05"))
	b.WriteByte('-')
	b.WriteString(newUUID())
	if w.gzip {
		b.WriteString(extGzip)
	}
	return b.String()
}

// newUUID returns a random (version 4) UUID, the random part of object names.
func newUUID() string {
	var u [16]byte
	_, _ = rand.Read(u[:]) // crypto/rand.Read never returns an error
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}
