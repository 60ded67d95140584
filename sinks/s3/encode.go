package s3

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"

	"github.com/shardhose/shardhose/config"
	"github.com/shardhose/shardhose/record"
)

// Compression values of config.S3Sink.Compression (Firehose's names, plus ZSTD).
const (
	CompressionGZIP         = "GZIP"
	CompressionSnappy       = "SNAPPY"
	CompressionZSTD         = "ZSTD"
	CompressionUncompressed = "UNCOMPRESSED"
)

// OutputFormatParquet is the value of data_format_conversion.output_format that writes Parquet.
const OutputFormatParquet = "PARQUET"

// File extensions, as Firehose names them (ZSTD, which Firehose lacks, gets zstd's own).
const (
	extGzip    = ".gz"
	extSnappy  = ".snappy"
	extZstd    = ".zst"
	extParquet = ".parquet"
)

// contentType is set on every object. Records are opaque bytes (not necessarily JSON, and
// compressed when compression is on), so the objects are labelled as such. Content-Encoding is
// never set: with it, HTTP clients and S3-aware tools decompress on download, so a ".gz" object
// would arrive as plain text under a ".gz" name. Firehose does not set it either.
const contentType = "application/octet-stream"

// rejection is a record an encoder could not put in the object (Parquet only): the index of the
// record in the slice given to encode, and why.
type rejection struct {
	index  int
	reason string
}

// encoder turns a sealed object's records into its body. Encoding runs in the upload goroutine,
// off the sink's lock, so several objects compress at once on several cores while Writes go on.
// Implementations are safe for concurrent use.
type encoder interface {
	// encode writes the body for recs to buf and returns the records left out of it. An error
	// means the body is unusable; in-memory codecs do not fail in practice.
	encode(buf *bytes.Buffer, recs []*record.Record) ([]rejection, error)
}

// format is how a sink's data objects are encoded: the encoder and the file extension.
type format struct {
	ext string
	enc encoder
}

// newFormat returns the format for a configuration: Parquet when data_format_conversion asks for
// it, else the compression of newline-delimited (or plain concatenated) records.
func newFormat(cfg config.S3Sink) (format, error) {
	if dfc := cfg.DataFormatConversion; dfc != nil {
		var problems []error
		if dfc.OutputFormat != OutputFormatParquet {
			problems = append(problems, fmt.Errorf("data_format_conversion.output_format %q is not supported (use %s)", dfc.OutputFormat, OutputFormatParquet))
		}
		if cfg.Compression != CompressionUncompressed {
			problems = append(problems, fmt.Errorf("compression %q: with Parquet output, compression must be %s (Parquet compresses its columns with Snappy)", cfg.Compression, CompressionUncompressed))
		}
		enc, err := newParquetEncoder(dfc.Schema)
		if err != nil {
			problems = append(problems, fmt.Errorf("data_format_conversion.schema: %w", err))
		}
		if len(problems) > 0 {
			return format{}, errors.Join(problems...)
		}
		return format{ext: extParquet, enc: enc}, nil
	}
	nl := cfg.AppendNewline
	switch cfg.Compression {
	case CompressionGZIP:
		return format{ext: extGzip, enc: &streamEncoder{newline: nl, pool: &gzipWriters}}, nil
	case CompressionSnappy:
		return format{ext: extSnappy, enc: &streamEncoder{newline: nl, pool: &snappyWriters}}, nil
	case CompressionZSTD:
		return format{ext: extZstd, enc: &streamEncoder{newline: nl, pool: &zstdWriters}}, nil
	case CompressionUncompressed:
		return format{enc: plainEncoder{newline: nl}}, nil
	}
	return format{}, fmt.Errorf("compression %q is not supported (use %s, %s, %s or %s)", cfg.Compression,
		CompressionGZIP, CompressionSnappy, CompressionZSTD, CompressionUncompressed)
}

var newlineBytes = []byte{'\n'}

// plainEncoder concatenates records.
type plainEncoder struct{ newline bool }

func (e plainEncoder) encode(buf *bytes.Buffer, recs []*record.Record) ([]rejection, error) {
	for _, r := range recs {
		buf.Write(r.Data)
		if e.newline {
			buf.WriteByte('\n')
		}
	}
	return nil, nil
}

// compressor is a streaming compressor that can be reused for another stream.
type compressor interface {
	io.WriteCloser
	Reset(w io.Writer)
}

// streamEncoder streams records through a pooled compressor: each holds up to a few megabytes
// of state, and a sink makes one object after another.
type streamEncoder struct {
	newline bool
	pool    *sync.Pool // of compressor
}

func (e *streamEncoder) encode(buf *bytes.Buffer, recs []*record.Record) ([]rejection, error) {
	zw := e.pool.Get().(compressor)
	zw.Reset(buf)
	defer func() {
		zw.Reset(io.Discard) // drop the reference to buf before pooling
		e.pool.Put(zw)
	}()
	for _, r := range recs {
		if _, err := zw.Write(r.Data); err != nil {
			return nil, fmt.Errorf("compress records: %w", err)
		}
		if e.newline {
			if _, err := zw.Write(newlineBytes); err != nil {
				return nil, fmt.Errorf("compress records: %w", err)
			}
		}
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("finish compressed stream: %w", err)
	}
	return nil, nil
}

// gzipWriters hold klauspost's gzip at the default level: several times faster than the standard
// library's at the same ratio.
var gzipWriters = sync.Pool{New: func() any { return gzip.NewWriter(io.Discard) }}

// snappyWriters write the Snappy framing format (stream identifier "sNaPpY", CRC-checked chunks of
// at most 64 KiB), which is what Firehose's SNAPPY means; HADOOP_SNAPPY, Hadoop's block format, is
// a different stream. S2 in Snappy-compatible mode is the fastest encoder of it. Concurrency 1:
// the sink already encodes several objects at once.
var snappyWriters = sync.Pool{New: func() any {
	return s2.NewWriter(io.Discard, s2.WriterSnappyCompat(), s2.WriterConcurrency(1))
}}

// zstdWriters use zstd's default level. On 1 KiB JSON records (docs/benchmarks.md) it stores
// them in about 10% less space than gzip at its default level, and than zstd's fastest level,
// at about gzip's speed and 7% under the fastest level's; well above 100,000 records/s per core
// either way, so the level that stores less wins. A 1 MiB window instead of 8 MiB:
// newline-delimited records repeat themselves locally, so the ratio is the same, and each
// pooled encoder holds a fraction of the memory. Concurrency 1 for the same reason as Snappy's.
var zstdWriters = sync.Pool{New: func() any {
	zw, err := zstd.NewWriter(io.Discard, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(1<<20))
	if err != nil {
		panic(fmt.Sprintf("s3: zstd encoder options: %v", err)) // constant options: cannot fail
	}
	return zw
}}

// bodies recycles object bodies: a sink fills one buffer of about the same size after another.
var bodies = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledBody keeps unusually large bodies (a single huge record) out of the pool.
const maxPooledBody = 160 << 20

func getBody() *bytes.Buffer { return bodies.Get().(*bytes.Buffer) }

func putBody(b *bytes.Buffer) {
	if b == nil || b.Cap() > maxPooledBody {
		return
	}
	b.Reset()
	bodies.Put(b)
}
