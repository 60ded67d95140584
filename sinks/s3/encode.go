package s3

import (
	"bytes"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/gzip"
)

// Compression values of config.S3Sink.Compression (Firehose's names).
const (
	CompressionGZIP         = "GZIP"
	CompressionUncompressed = "UNCOMPRESSED"
)

// contentType is set on every object. Records are opaque bytes (not necessarily JSON, and
// gzipped when compression is on), so the objects are labelled as such. Content-Encoding is never
// set: with it, HTTP clients and S3-aware tools decompress on download, so a ".gz" object would
// arrive as plain text under a ".gz" name. Firehose does not set it either.
const contentType = "application/octet-stream"

// encoder builds one object's body as records arrive, so the work of compressing is spread over
// the Writes instead of falling on the flush. Further formats (Snappy, ZSTD, Parquet) are further
// implementations of it.
type encoder interface {
	// add appends one record's data, followed by the delimiter if the format has one. Encoders
	// write to memory, which does not fail; an error from the codec is kept and returned by finish.
	add(data []byte)
	// finish completes the body and returns it. The encoder is not used afterwards.
	finish() ([]byte, error)
}

// format is how objects are encoded: a file extension and a constructor of encoders.
type format struct {
	ext  string // appended to the object name: ".gz", or "" when uncompressed
	open func() encoder
}

func newFormat(compression string, newline bool) (format, error) {
	switch compression {
	case CompressionGZIP:
		return format{ext: ".gz", open: func() encoder { return newGzipEncoder(newline) }}, nil
	case CompressionUncompressed:
		return format{open: func() encoder { return &plainEncoder{newline: newline} }}, nil
	}
	return format{}, fmt.Errorf("compression %q is not supported (use %s or %s)", compression, CompressionGZIP, CompressionUncompressed)
}

var newlineBytes = []byte{'\n'}

// plainEncoder concatenates records.
type plainEncoder struct {
	buf     bytes.Buffer
	newline bool
}

func (e *plainEncoder) add(data []byte) {
	e.buf.Write(data)
	if e.newline {
		e.buf.WriteByte('\n')
	}
}

func (e *plainEncoder) finish() ([]byte, error) { return e.buf.Bytes(), nil }

// gzipWriters recycles gzip writers: each holds about a megabyte of compressor state, and a sink
// makes one object after another.
var gzipWriters = sync.Pool{New: func() any { return gzip.NewWriter(io.Discard) }}

// gzipEncoder streams records through one gzip member (klauspost's gzip, several times faster
// than the standard library's at the same level).
type gzipEncoder struct {
	buf     bytes.Buffer
	zw      *gzip.Writer
	newline bool
	err     error
}

func newGzipEncoder(newline bool) *gzipEncoder {
	e := &gzipEncoder{newline: newline}
	e.zw = gzipWriters.Get().(*gzip.Writer)
	e.zw.Reset(&e.buf)
	return e
}

func (e *gzipEncoder) add(data []byte) {
	if e.err != nil {
		return
	}
	if _, err := e.zw.Write(data); err != nil {
		e.err = err
		return
	}
	if e.newline {
		if _, err := e.zw.Write(newlineBytes); err != nil {
			e.err = err
		}
	}
}

func (e *gzipEncoder) finish() ([]byte, error) {
	zw := e.zw
	e.zw = nil
	err := zw.Close()
	zw.Reset(io.Discard) // drop the reference to buf before pooling
	gzipWriters.Put(zw)
	if e.err != nil {
		return nil, fmt.Errorf("gzip records: %w", e.err)
	}
	if err != nil {
		return nil, fmt.Errorf("finish gzip stream: %w", err)
	}
	return e.buf.Bytes(), nil
}
