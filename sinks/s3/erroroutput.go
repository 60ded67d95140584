package s3

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/shardhose/shardhose/internal/outage"
	"github.com/shardhose/shardhose/internal/retry"
	"github.com/shardhose/shardhose/record"
	"github.com/shardhose/shardhose/sinks/backup"
)

// Error output types (Firehose's !{firehose:error-output-type}) of the records this sink cannot
// deliver as data. Each names the folder its error records go to.
const (
	// ErrorOutputFormatConversionFailed holds records that do not fit the Parquet schema.
	ErrorOutputFormatConversionFailed = "format-conversion-failed"
	// ErrorOutputPartitioningFailed holds records whose partition could not be worked out (not
	// JSON, a query failed or gave null, a transform gave no key, the evaluated prefix would pass
	// 512 characters) or would have been one active partition too many.
	ErrorOutputPartitioningFailed = "partitioning-failed"
)

// Error codes in the errorCode field of the error records this sink writes. They follow
// Firehose's naming (Destination.Reason); errorMessage says what exactly was wrong.
const (
	// ErrorCodeMalformedData: the record is not a JSON object, a value has the wrong type for its
	// column, or a required column is missing.
	ErrorCodeMalformedData = "DataFormatConversion.MalformedData"
	// ErrorCodeMetadataExtractionFailed: a partition key could not be extracted.
	ErrorCodeMetadataExtractionFailed = "DynamicPartitioning.MetadataExtractionFailed"
	// ErrorCodeActivePartitionExceeded: the record's partition would have passed
	// dynamic_partitioning.max_active_partitions.
	ErrorCodeActivePartitionExceeded = "DynamicPartitioning.ActivePartitionExceeded"
	// ErrorCodePrefixTooLong: the evaluated prefix would pass 512 characters.
	ErrorCodePrefixTooLong = "DynamicPartitioning.PrefixTooLong"
)

// failure says why a record goes to the error output instead of a data object.
type failure struct {
	outputType string
	code       string
	message    string
}

func partitioningFailure(code, format string, args ...any) *failure {
	return &failure{outputType: ErrorOutputPartitioningFailed, code: code, message: fmt.Sprintf(format, args...)}
}

// errorRecord is r as an error record: Firehose's common fields, plus the Kinesis position
// (sequenceNumber, subSequenceNumber) that Firehose's format-conversion error records carry.
func errorRecord(r *record.Record, f *failure, now time.Time) backup.ErrorRecord {
	arrival := r.ApproximateArrivalTimestamp
	if arrival.IsZero() {
		arrival = now
	}
	e := backup.ErrorRecord{
		AttemptsMade:           1,
		ArrivalTimestamp:       arrival.UnixMilli(),
		ErrorCode:              f.code,
		ErrorMessage:           f.message,
		AttemptEndingTimestamp: now.UnixMilli(),
		RawData:                r.Data,
	}
	if r.SequenceNumber != "" {
		e.Extra = map[string]any{"sequenceNumber": r.SequenceNumber, "subSequenceNumber": r.SubSequenceNumber}
	}
	return e
}

// errorRecordSize estimates the bytes an error record of data takes in the error object; it is
// what error buffers count against the buffer size and the memory bound.
func errorRecordSize(data []byte) int { return len(data)*4/3 + 256 }

// errorWriter is where a sink's error records go: backup.Writer's WriteErrors.
type errorWriter interface {
	WriteErrors(ctx context.Context, folder string, recs []backup.ErrorRecord) error
}

// ownErrorWriter writes error records to the sink's own bucket under the error prefix, with
// Firehose's expressions evaluated (!{firehose:error-output-type} is the folder's name without
// its slash), as JSON lines, gzipped when the sink's compression is GZIP. A failed PUT is retried
// with the sink's policy until it succeeds or ctx ends.
type ownErrorWriter struct {
	s    *Sink
	keys keyBuilder
	gzip bool
}

// WriteErrors stores recs as one object; see backup.Writer.
func (w *ownErrorWriter) WriteErrors(ctx context.Context, folder string, recs []backup.ErrorRecord) error {
	if len(recs) == 0 {
		return nil
	}
	outputType := strings.TrimSuffix(folder, "/")
	var oldest int64
	var buf bytes.Buffer
	for i := range recs {
		line, err := recs[i].MarshalJSON()
		if err != nil {
			return fmt.Errorf("write %s records: record %d: %w", outputType, i, err)
		}
		buf.Write(line)
		buf.WriteByte('\n')
		if t := recs[i].ArrivalTimestamp; t > 0 && (oldest == 0 || t < oldest) {
			oldest = t
		}
	}
	at := w.s.clock.Now()
	if oldest > 0 {
		at = time.UnixMilli(oldest)
	}
	body := buf.Bytes()
	if w.gzip {
		var z bytes.Buffer
		zw := gzip.NewWriter(&z)
		_, err := zw.Write(body)
		if err == nil {
			err = zw.Close()
		}
		if err != nil {
			return fmt.Errorf("gzip %s records: %w", outputType, err)
		}
		body = z.Bytes()
	}
	key := w.keys.key(at, nil, outputType)
	put := w.s.health.Track(func(ctx context.Context, _ int) error { return w.s.put(ctx, key, body) }, "key", key)
	failed := func(attempt int, err error, wait time.Duration) {
		w.s.log.Debug("s3 error output write failed; retrying", "key", key, "attempt", attempt, "sdk_attempts", outage.Attempts(err), "records", len(recs), "retry_in", wait, "error", err)
	}
	out, err := retry.Do(ctx, w.s.clock, w.s.policy, put, failed)
	if err != nil {
		return fmt.Errorf("%d %s records not written after %d attempts: %w", len(recs), outputType, out.Attempts, err)
	}
	w.s.log.Warn("records written to the error output", "key", key, "error_output_type", outputType, "records", len(recs))
	return nil
}
