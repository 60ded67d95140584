package httpsink

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/shardhose/shardhose/record"
)

// Firehose's HTTP endpoint delivery protocol, version 1.0.
const (
	HeaderProtocolVersion  = "X-Amz-Firehose-Protocol-Version"
	HeaderRequestID        = "X-Amz-Firehose-Request-Id"
	HeaderSourceARN        = "X-Amz-Firehose-Source-Arn"
	HeaderAccessKey        = "X-Amz-Firehose-Access-Key"
	HeaderCommonAttributes = "X-Amz-Firehose-Common-Attributes"
	ProtocolVersion        = "1.0"

	// MaxRecordsPerRequest is the most records one request carries.
	MaxRecordsPerRequest = 10000
	// MaxBodyBytes is the largest request body, before compression.
	MaxBodyBytes = 64 << 20
	// MaxRecordBytes is the largest record, before base64. A larger one is never sent: it goes
	// to the backup at once with ErrorCodeRecordTooLarge.
	MaxRecordBytes = 1024000
	// MaxAccessKeyBytes is the longest access key.
	MaxAccessKeyBytes = 4096
	// maxResponseBytes is the most of a response body that is read; a 200 response with a longer
	// body fails with ErrorCodeResponseTooLarge.
	maxResponseBytes = 1 << 20
	// maxMessageBody is how much of a response body an error message quotes.
	maxMessageBody = 4096
)

// Error codes of the error records (Firehose's, except ErrorCodeRecordTooLarge).
const (
	// ErrorCodeDestinationException: the endpoint answered with a status other than 200.
	ErrorCodeDestinationException = "HttpEndpoint.DestinationException"
	// ErrorCodeRequestTimeout: no complete answer within the request timeout.
	ErrorCodeRequestTimeout = "HttpEndpoint.RequestTimeout"
	// ErrorCodeResponseTooLarge: a 200 answer with a body over 1 MiB.
	ErrorCodeResponseTooLarge = "HttpEndpoint.ResponseTooLarge"
	// ErrorCodeInvalidResponse: a 200 answer whose body is not JSON echoing the request id.
	ErrorCodeInvalidResponse = "HttpEndpoint.InvalidResponseFromDestination"
	// ErrorCodeConnectionFailed: no answer at all (refused, reset, DNS, TLS).
	ErrorCodeConnectionFailed = "HttpEndpoint.ConnectionFailed"
	// ErrorCodeRecordTooLarge is shardhose's own: a record over MaxRecordBytes, never sent.
	// (Firehose cannot meet one: it refuses such records when they are put.)
	ErrorCodeRecordTooLarge = "HttpEndpoint.RecordTooLarge"
)

// maxRawBatchBytes caps a batch's record data so that its body, base64 and JSON included, stays
// within MaxBodyBytes even with MaxRecordsPerRequest records: each record costs at most
// 4n/3 + 15 bytes ({"data":"..."}, base64 padding, a comma), the envelope under 128.
const maxRawBatchBytes = (MaxBodyBytes - MaxRecordsPerRequest*15 - 128) / 4 * 3

// request is one delivery request: its id and body stay the same on every retry, so the endpoint
// can recognise a retry of a request it already took.
type request struct {
	id      string
	body    []byte // as sent (gzipped when the sink compresses)
	rawSize int    // body size before compression
	records []record.Record
}

// encodeBody writes Firehose's request body:
//
//	{"requestId":"<id>","timestamp":<ms>,"records":[{"data":"<base64>"},...]}
func encodeBody(id string, at time.Time, recs []record.Record) []byte {
	size := 128
	for i := range recs {
		size += base64.StdEncoding.EncodedLen(len(recs[i].Data)) + 12
	}
	b := make([]byte, 0, size)
	b = append(b, `{"requestId":`...)
	b = strconv.AppendQuote(b, id) // a UUID: nothing to escape
	b = append(b, `,"timestamp":`...)
	b = strconv.AppendInt(b, at.UnixMilli(), 10)
	b = append(b, `,"records":[`...)
	for i := range recs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"data":"`...)
		b = base64.StdEncoding.AppendEncode(b, recs[i].Data)
		b = append(b, `"}`...)
	}
	b = append(b, "]}"...)
	return b
}

func gzipBody(body []byte) ([]byte, error) {
	var z bytes.Buffer
	z.Grow(len(body) / 4)
	zw := gzip.NewWriter(&z)
	if _, err := zw.Write(body); err != nil {
		return nil, fmt.Errorf("gzip request body: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("gzip request body: %w", err)
	}
	return z.Bytes(), nil
}

// response is the body a Firehose endpoint answers with.
type response struct {
	RequestID    *string      `json:"requestId"`
	Timestamp    *json.Number `json:"timestamp"`
	ErrorMessage string       `json:"errorMessage"`
}

// checkResponse reports why a 200 answer's body does not follow the protocol, or nil.
func checkResponse(body []byte, id string) error {
	var r response
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&r); err != nil {
		return fmt.Errorf("response body is not a JSON object: %w", err)
	}
	switch {
	case r.RequestID == nil:
		return errors.New("response body has no requestId")
	case *r.RequestID != id:
		return fmt.Errorf("response body's requestId %q is not the request's %q", *r.RequestID, id)
	}
	if r.Timestamp != nil {
		if _, err := r.Timestamp.Int64(); err != nil {
			return fmt.Errorf("response body's timestamp %s is not milliseconds", r.Timestamp.String())
		}
	}
	return nil
}

// requestID is a request's id: a UUID (RFC 9562 version 8) made from the SHA-256 of the sink's
// name and the stream, shard, sequence and sub-sequence number of every record, in order. The
// same records sent by the same sink always get the same id, whichever worker sends them and
// however often (a retry, or the same batch again after a restart), so an endpoint can drop a
// request id it has already taken. A batch cut differently after a restart holds other records
// and gets another id; an endpoint that must drop every repeated record can use the record
// positions instead (they are not in Firehose's request body, but the S3 sink's exactly_once
// delivery has them).
func requestID(sink string, recs []record.Record) string {
	h := sha256.New()
	field := func(s string) {
		var n [binary.MaxVarintLen64]byte
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(s)))])
		h.Write([]byte(s))
	}
	field(sink)
	for i := range recs {
		r := &recs[i]
		field(r.StreamName)
		field(r.ShardID)
		field(r.SequenceNumber)
		field(strconv.FormatInt(r.SubSequenceNumber, 10))
	}
	var u [sha256.Size]byte
	h.Sum(u[:0])
	u[6] = u[6]&0x0f | 0x80 // version 8: custom
	u[8] = u[8]&0x3f | 0x80 // RFC 9562 variant
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// dataID is Firehose's dataId of a record: "<sequence number>.<sub-sequence number>".
func dataID(r *record.Record) string {
	return r.SequenceNumber + "." + strconv.FormatInt(r.SubSequenceNumber, 10)
}
