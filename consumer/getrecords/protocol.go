// Package getrecords decodes Kinesis GetRecords responses faster than the SDK's generic decoder,
// with exactly the same result.
//
// The SDK (aws-sdk-go-v2 with schema-serde) decodes every response through its protocol, a
// smithyhttp.ClientProtocol that kinesis.Options.Protocol makes replaceable. Protocol wraps the
// SDK's own: for a successful GetRecords response it reads the body into a reusable buffer and
// decodes the records straight from it (base64 into one buffer per response, no intermediate
// strings); every other operation, every error response (throttling, expired iterators, ...)
// and every response outside the shape Kinesis sends goes to the wrapped protocol unchanged.
// Signing, retries, endpoints and error types stay the SDK's.
//
// CBORProtocol does the same for GetRecords in CBOR, the protocol the AWS SDK for Java speaks to
// Kinesis. It is measured in docs/benchmarks.md and not used by the daemon: how Kinesis writes
// its fields in CBOR cannot be checked against the real service here.
package getrecords

import (
	"bytes"
	"context"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	smithy "github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Protocol is a smithyhttp.ClientProtocol that decodes successful GetRecords responses itself and
// delegates everything else to the protocol it wraps. It is safe for concurrent use: at most
// Bodies responses are read at once (a call waits for a free body buffer, or for its ctx), so
// the memory held in response bodies is bounded by Bodies times the largest response, whatever
// the number of shards.
type Protocol struct {
	smithyhttp.ClientProtocol

	bodies chan []byte
}

var _ smithyhttp.ClientProtocol = (*Protocol)(nil)

// New wraps inner. bodies (at least 1) is how many response bodies may be held at once.
func New(inner smithyhttp.ClientProtocol, bodies int) *Protocol {
	bodies = max(bodies, 1)
	p := &Protocol{ClientProtocol: inner, bodies: make(chan []byte, bodies)}
	for range bodies {
		p.bodies <- nil
	}
	return p
}

// DefaultBodies is the number of response bodies a Protocol holds at once unless told otherwise.
const DefaultBodies = 2

// WithProtocol is a kinesis.Options function that installs a Protocol holding bodies response
// bodies at once around the client's own protocol; applied again, it replaces the count.
func WithProtocol(bodies int) func(*kinesis.Options) {
	return func(o *kinesis.Options) {
		if p, ok := o.Protocol.(*Protocol); ok {
			o.Protocol = New(p.ClientProtocol, bodies)
			return
		}
		o.Protocol = New(o.Protocol, bodies)
	}
}

// DeserializeResponse implements smithyhttp.ClientProtocol.
func (p *Protocol) DeserializeResponse(ctx context.Context, schema *smithy.OperationSchema, types *smithy.TypeRegistry,
	resp *smithyhttp.Response, out smithy.Deserializable) error {
	gro, ok := out.(*kinesis.GetRecordsOutput)
	if !ok || resp.StatusCode < 200 || resp.StatusCode >= 300 || schema.IsOutputEventStream() {
		return p.ClientProtocol.DeserializeResponse(ctx, schema, types, resp, out)
	}
	return p.withBody(ctx, resp, func(body []byte) error {
		if decode(body, gro) {
			return nil
		}
		// Outside the fast path's shape: the SDK decodes the same bytes, and its answer stands.
		*gro = kinesis.GetRecordsOutput{}
		orig := resp.Body
		resp.Body = io.NopCloser(bytes.NewReader(body))
		defer func() { resp.Body = orig }()
		return p.ClientProtocol.DeserializeResponse(ctx, schema, types, resp, out)
	})
}

// withBody reads resp's body into one of the response buffers (waiting for a free one, or for
// ctx) and calls decode with it unless it is empty; the buffer is free again once decode returns.
func (p *Protocol) withBody(ctx context.Context, resp *smithyhttp.Response, decode func(body []byte) error) error {
	var buf []byte
	select {
	case buf = <-p.bodies:
	case <-ctx.Done():
		return &smithy.DeserializationError{Err: fmt.Errorf("wait for a response buffer: %w", ctx.Err())}
	}
	body, err := readBody(buf, resp.Body, resp.ContentLength)
	defer func() { p.bodies <- body[:0] }()
	if err != nil {
		return &smithy.DeserializationError{Err: err}
	}
	if len(body) == 0 {
		return nil
	}
	return decode(body)
}

// maxPresize bounds the buffer allocated up front from Content-Length: a GetRecords response
// carries at most 10 MB of data (about 14 MB of JSON), so a larger header is not trusted to size
// the buffer, which then grows as the body is read.
const maxPresize = 64 << 20

// readBody reads r to its end into buf, sized from contentLength when that is known.
func readBody(buf []byte, r io.Reader, contentLength int64) ([]byte, error) {
	buf = buf[:0]
	if contentLength > 0 && contentLength <= maxPresize && int64(cap(buf)) < contentLength+1 {
		buf = make([]byte, 0, contentLength+1) // +1: reading the end costs no regrowth
	}
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, fmt.Errorf("read GetRecords response body: %w", err)
		}
	}
}
