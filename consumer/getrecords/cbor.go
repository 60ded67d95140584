package getrecords

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	smithy "github.com/aws/smithy-go"
	"github.com/aws/smithy-go/encoding/cbor"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// CBORContentType is the media type of the CBOR protocol the AWS SDK for Java speaks to Kinesis.
const CBORContentType = "application/x-amz-cbor-1.1"

// CBORProtocol is a smithyhttp.ClientProtocol that sends GetRecords requests in CBOR
// (application/x-amz-cbor-1.1, as the AWS SDK for Java does) and decodes their CBOR responses;
// every other operation, and any GetRecords response that does not come back in CBOR, goes to
// the JSON Protocol it wraps. Signing, retries, endpoints and error types stay the SDK's: error
// responses are converted to the JSON the SDK's own error decoder reads.
//
// What Kinesis writes in CBOR is not documented. CBORProtocol takes Data as a byte string, or
// as a base64 text string (what kinesalite and kinesis-mock send, and what the Java SDK's CBOR
// parser also accepts); ApproximateArrivalTimestamp, with or without tag 1, as an integer count
// of milliseconds (the Java SDK's convention, and kinesis-mock's) or a floating-point count of
// seconds (kinesalite's: it writes the number of its JSON answer). It is safe for concurrent use
// and shares the wrapped Protocol's response buffers.
type CBORProtocol struct {
	*Protocol
}

var _ smithyhttp.ClientProtocol = (*CBORProtocol)(nil)

// WithCBORProtocol is a kinesis.Options function that installs a CBORProtocol around a Protocol
// holding bodies response bodies at once, around the client's own protocol.
func WithCBORProtocol(bodies int) func(*kinesis.Options) {
	return func(o *kinesis.Options) {
		inner := o.Protocol
		switch p := inner.(type) {
		case *CBORProtocol:
			inner = p.Protocol.ClientProtocol
		case *Protocol:
			inner = p.ClientProtocol
		}
		o.Protocol = &CBORProtocol{Protocol: New(inner, bodies)}
	}
}

// SerializeRequest implements smithyhttp.ClientProtocol: the wrapped protocol builds the request
// (method, path, X-Amz-Target), then a GetRecords body is replaced by its CBOR form.
func (p *CBORProtocol) SerializeRequest(ctx context.Context, schema *smithy.OperationSchema, in smithy.Serializable, req *smithyhttp.Request) error {
	if err := p.Protocol.SerializeRequest(ctx, schema, in, req); err != nil {
		return err
	}
	gri, ok := in.(*kinesis.GetRecordsInput)
	if !ok {
		return nil
	}
	m := cbor.Map{}
	if gri.ShardIterator != nil {
		m["ShardIterator"] = cbor.String(*gri.ShardIterator)
	}
	if gri.Limit != nil {
		if *gri.Limit < 0 {
			m["Limit"] = cbor.NegInt(-int64(*gri.Limit))
		} else {
			m["Limit"] = cbor.Uint(*gri.Limit)
		}
	}
	if gri.StreamARN != nil {
		m["StreamARN"] = cbor.String(*gri.StreamARN)
	}
	req.Header.Set("Content-Type", CBORContentType)
	req.Header.Set("Accept", CBORContentType)
	sreq, err := req.SetStream(bytes.NewReader(cbor.Encode(m)))
	if err != nil {
		return fmt.Errorf("set CBOR GetRecords body: %w", err)
	}
	*req = *sreq
	return nil
}

func isCBOR(h http.Header) bool {
	mt, _, err := mime.ParseMediaType(h.Get("Content-Type"))
	return err == nil && mt == CBORContentType
}

// DeserializeResponse implements smithyhttp.ClientProtocol.
func (p *CBORProtocol) DeserializeResponse(ctx context.Context, schema *smithy.OperationSchema, types *smithy.TypeRegistry,
	resp *smithyhttp.Response, out smithy.Deserializable) error {
	gro, ok := out.(*kinesis.GetRecordsOutput)
	if !ok || !isCBOR(resp.Header) || schema.IsOutputEventStream() {
		return p.Protocol.DeserializeResponse(ctx, schema, types, resp, out)
	}
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		return p.deserializeError(ctx, schema, types, resp, out)
	}
	return p.withBody(ctx, resp, func(body []byte) error {
		if decodeCBOR(body, gro) {
			return nil
		}
		*gro = kinesis.GetRecordsOutput{}
		if err := decodeCBORGeneric(body, gro); err != nil {
			*gro = kinesis.GetRecordsOutput{}
			return &smithy.DeserializationError{Err: fmt.Errorf("decode CBOR GetRecords response: %w", err)}
		}
		return nil
	})
}

// deserializeError converts a CBOR error body ({"__type": ..., "message": ...}) to JSON and
// hands it to the SDK's error decoder, so that throttling, expired iterators and the rest come
// back as the same typed errors as over JSON. A body that is not a CBOR map goes as it is.
func (p *CBORProtocol) deserializeError(ctx context.Context, schema *smithy.OperationSchema, types *smithy.TypeRegistry,
	resp *smithyhttp.Response, out smithy.Deserializable) error {
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return &smithy.DeserializationError{Err: fmt.Errorf("read error response body: %w", err)}
	}
	if v, err := cbor.Decode(body); err == nil {
		if m, ok := v.(cbor.Map); ok {
			if j, err := json.Marshal(cborToJSON(m, 0)); err == nil {
				body = j
			}
		}
	}
	orig := resp.Body
	resp.Body = io.NopCloser(bytes.NewReader(body))
	defer func() { resp.Body = orig }()
	return p.Protocol.ClientProtocol.DeserializeResponse(ctx, schema, types, resp, out)
}

// cborToJSON maps a decoded CBOR value to what encoding/json writes as the same document in
// awsJson: byte strings as base64, tags as their content, undefined as null.
func cborToJSON(v cbor.Value, depth int) any {
	if depth > 32 {
		return nil
	}
	switch v := v.(type) {
	case cbor.Map:
		m := make(map[string]any, len(v))
		for k, e := range v {
			m[k] = cborToJSON(e, depth+1)
		}
		return m
	case cbor.List:
		l := make([]any, len(v))
		for i, e := range v {
			l[i] = cborToJSON(e, depth+1)
		}
		return l
	case cbor.String:
		return string(v)
	case cbor.Slice:
		return base64.StdEncoding.EncodeToString(v)
	case cbor.Uint:
		return uint64(v)
	case cbor.NegInt:
		if v == 0 || v > 1<<63 {
			return nil
		}
		return -int64(v-1) - 1
	case cbor.Bool:
		return bool(v)
	case cbor.Float32:
		if f := float64(v); !math.IsNaN(f) && !math.IsInf(f, 0) {
			return f
		}
	case cbor.Float64:
		if f := float64(v); !math.IsNaN(f) && !math.IsInf(f, 0) {
			return f
		}
	case *cbor.Tag:
		return cborToJSON(v.Value, depth+1)
	}
	return nil
}

// arrivalFloat converts an ApproximateArrivalTimestamp sent as a floating-point number of
// seconds exactly as the SDK converts JSON's epoch seconds; ok is false when it does not fit.
// Integers count milliseconds: time.UnixMilli(n).UTC().
func arrivalFloat(sec float64) (time.Time, bool) {
	ms := sec * 1000
	if ms != ms || ms >= 1<<63 || ms < -(1<<63) {
		return time.Time{}, false
	}
	return time.Unix(0, int64(ms)*1e6).UTC(), true
}
