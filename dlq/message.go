package dlq

import (
	"bytes"
	"crypto/sha1"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/shardhose/shardhose/record"
)

// Message is one dead letter as stored: Lambda's on-failure record for a Kinesis event source
// (requestContext, responseContext, version, timestamp, KinesisBatchInfo, with Lambda's field
// names and formats), followed by what Lambda leaves out: ErrorMessage, AttemptsMade, and either
// the records themselves (Records) or, when they did not fit the destination's size limit, the
// S3 object holding them (RecordsLocation). A message Lambda itself wrote has neither; its
// records can only be fetched from the source stream while the stream still holds them.
//
// Times are RFC 3339 in UTC with milliseconds ("2019-11-14T00:38:06.021Z"), as Lambda writes them.
// A Message is a plain value, safe to share once built.
type Message struct {
	RequestContext   RequestContext   `json:"requestContext"`
	ResponseContext  ResponseContext  `json:"responseContext"`
	Version          string           `json:"version"`
	Timestamp        string           `json:"timestamp"`
	KinesisBatchInfo KinesisBatchInfo `json:"KinesisBatchInfo"`
	// ErrorMessage is the last error the handler returned (or why the batch was given up on).
	ErrorMessage string `json:"errorMessage"`
	// AttemptsMade is how many times the handler was invoked on the batch.
	AttemptsMade int `json:"attemptsMade"`
	// Inline are the batch's records, in shard order, carried in the message (JSON key
	// "records"); absent when RecordsLocation is set, and in Lambda's own records. Records
	// returns them decoded.
	Inline []MessageRecord `json:"records,omitempty"`
	// RecordsLocation is the S3 object holding the full message, records included, when they
	// did not fit in this one.
	RecordsLocation *Location `json:"recordsLocation,omitempty"`
}

// RequestContext is Lambda's requestContext.
type RequestContext struct {
	// RequestID is a UUID naming the dead letter. It is derived from the batch (stream, shard,
	// first and last position, size, condition and Failure.Time), so a retried Send of the same
	// Failure writes the same id: consumers can drop duplicates by it, and FIFO queues and
	// topics use it as their deduplication id.
	RequestID              string    `json:"requestId"`
	FunctionARN            string    `json:"functionArn"`
	Condition              Condition `json:"condition"`
	ApproximateInvokeCount int       `json:"approximateInvokeCount"`
}

// ResponseContext is Lambda's responseContext: status 200 and version $LATEST, as Lambda reports
// for a function that ran and failed, and the kind of function error ("Unhandled").
type ResponseContext struct {
	StatusCode      int    `json:"statusCode"`
	ExecutedVersion string `json:"executedVersion"`
	FunctionError   string `json:"functionError"`
}

// KinesisBatchInfo is Lambda's description of the batch: the shard, the first and last sequence
// numbers and arrival times, the number of records and the stream's ARN.
type KinesisBatchInfo struct {
	ShardID                         string `json:"shardId"`
	StartSequenceNumber             string `json:"startSequenceNumber"`
	EndSequenceNumber               string `json:"endSequenceNumber"`
	ApproximateArrivalOfFirstRecord string `json:"approximateArrivalOfFirstRecord"`
	ApproximateArrivalOfLastRecord  string `json:"approximateArrivalOfLastRecord"`
	BatchSize                       int    `json:"batchSize"`
	StreamARN                       string `json:"streamArn"`
}

// MessageRecord is one record of the batch. Data is base64 in JSON. A user record of a KPL
// aggregate shares its SequenceNumber with the others of the aggregate and differs by
// SubSequenceNumber.
type MessageRecord struct {
	Data                        []byte `json:"data"`
	PartitionKey                string `json:"partitionKey"`
	SequenceNumber              string `json:"sequenceNumber"`
	SubSequenceNumber           int64  `json:"subSequenceNumber"`
	ApproximateArrivalTimestamp string `json:"approximateArrivalTimestamp"`
}

// Location is an S3 object.
type Location struct {
	Bucket string `json:"bucket"`
	Key    string `json:"key"`
}

// String returns s3://bucket/key.
func (l Location) String() string { return "s3://" + l.Bucket + "/" + l.Key }

// Values Lambda writes in every on-failure record.
const (
	messageVersion  = "1.0"
	executedVersion = "$LATEST"
	statusCode      = 200
)

// timeFormat is how Lambda writes times in its on-failure record.
const timeFormat = "2006-01-02T15:04:05.000Z"

// formatTime writes t in UTC with milliseconds; the zero time becomes "".
func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(timeFormat)
}

// parseTime reads a time written by formatTime, or any RFC 3339 time; "" is the zero time.
func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	return time.Parse(time.RFC3339Nano, s)
}

// NewMessage builds the dead letter of f with its records inline.
func NewMessage(f Failure) Message {
	m := Message{
		RequestContext: RequestContext{
			RequestID:              requestID(f),
			FunctionARN:            f.FunctionARN,
			Condition:              f.Condition,
			ApproximateInvokeCount: f.Attempts,
		},
		ResponseContext: ResponseContext{
			StatusCode:      statusCode,
			ExecutedVersion: executedVersion,
			FunctionError:   f.FunctionError,
		},
		Version:      messageVersion,
		Timestamp:    formatTime(f.Time),
		ErrorMessage: f.ErrorMessage,
		AttemptsMade: f.Attempts,
		KinesisBatchInfo: KinesisBatchInfo{
			ShardID:   f.ShardID,
			BatchSize: len(f.Records),
			StreamARN: f.StreamARN,
		},
	}
	if n := len(f.Records); n > 0 {
		first, last := f.Records[0], f.Records[n-1]
		b := &m.KinesisBatchInfo
		b.StartSequenceNumber = first.SequenceNumber
		b.EndSequenceNumber = last.SequenceNumber
		b.ApproximateArrivalOfFirstRecord = formatTime(first.ApproximateArrivalTimestamp)
		b.ApproximateArrivalOfLastRecord = formatTime(last.ApproximateArrivalTimestamp)
		if b.ShardID == "" {
			b.ShardID = first.ShardID
		}
	}
	m.Inline = make([]MessageRecord, len(f.Records))
	for i, r := range f.Records {
		data := r.Data
		if data == nil {
			data = []byte{} // "" rather than null
		}
		m.Inline[i] = MessageRecord{
			Data:                        data,
			PartitionKey:                r.PartitionKey,
			SequenceNumber:              r.SequenceNumber,
			SubSequenceNumber:           r.SubSequenceNumber,
			ApproximateArrivalTimestamp: formatTime(r.ApproximateArrivalTimestamp),
		}
	}
	return m
}

// ErrNoInlineRecords is returned by Message.Records when the message does not carry its records:
// they are in the S3 object RecordsLocation names, or (a metadata-only record, as Lambda writes)
// only in the source stream. Fetcher.Records gets them from either.
var ErrNoInlineRecords = errors.New("dead letter does not carry its records")

// Records returns the records the message carries, as the consumer read them: stream name (from
// streamArn) and shard filled in, Data decoded. It returns ErrNoInlineRecords when the message
// carries none (see Fetcher for the others) and an error naming the record whose arrival time
// does not parse.
func (m Message) Records() ([]record.Record, error) {
	if len(m.Inline) == 0 {
		if m.RecordsLocation != nil {
			return nil, fmt.Errorf("%w: they are in %s", ErrNoInlineRecords, m.RecordsLocation)
		}
		return nil, fmt.Errorf("%w: it holds only metadata; they can be read from the stream while it retains them", ErrNoInlineRecords)
	}
	stream := streamNameOf(m.KinesisBatchInfo.StreamARN)
	out := make([]record.Record, len(m.Inline))
	for i, r := range m.Inline {
		at, err := parseTime(r.ApproximateArrivalTimestamp)
		if err != nil {
			return nil, fmt.Errorf("dead letter %s: record %d (sequence number %s): approximateArrivalTimestamp: %w",
				m.RequestContext.RequestID, i, r.SequenceNumber, err)
		}
		out[i] = record.Record{
			StreamName:                  stream,
			ShardID:                     m.KinesisBatchInfo.ShardID,
			PartitionKey:                r.PartitionKey,
			SequenceNumber:              r.SequenceNumber,
			SubSequenceNumber:           r.SubSequenceNumber,
			Data:                        r.Data,
			ApproximateArrivalTimestamp: at,
		}
	}
	return out, nil
}

// Time returns the message's timestamp, or the zero time when it is missing or does not parse.
func (m Message) Time() time.Time {
	t, _ := parseTime(m.Timestamp)
	return t
}

// streamNameOf returns the name in a Kinesis stream ARN (arn:…:stream/NAME), or "".
func streamNameOf(arn string) string {
	_, name, ok := strings.Cut(arn, ":stream/")
	if !ok {
		return ""
	}
	return name
}

// encode writes m as compact JSON without HTML escaping, so sizes are what the destination sees.
func encode(m Message) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		return nil, fmt.Errorf("encode dead letter %s: %w", m.RequestContext.RequestID, err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// ErrNotDeadLetter is wrapped by ParseMessage's error for JSON that is not a dead letter.
var ErrNotDeadLetter = errors.New("not a dead letter")

// ParseMessage reads a stored dead letter: a message of this package, a metadata-only record
// Lambda wrote, or either wrapped in the envelope SNS adds when it delivers to an SQS queue
// without raw message delivery. It fails, wrapping ErrNotDeadLetter, when b is not JSON or has
// no KinesisBatchInfo with a shard and a start sequence number.
func ParseMessage(b []byte) (Message, error) {
	var envelope struct {
		Type    string `json:"Type"`
		Message *string
	}
	if err := json.Unmarshal(b, &envelope); err != nil {
		return Message{}, fmt.Errorf("%w: %v", ErrNotDeadLetter, err)
	}
	if envelope.Type == "Notification" && envelope.Message != nil {
		b = []byte(*envelope.Message)
	}
	var m Message
	if err := json.Unmarshal(b, &m); err != nil {
		return Message{}, fmt.Errorf("%w: %v", ErrNotDeadLetter, err)
	}
	if m.KinesisBatchInfo.ShardID == "" || m.KinesisBatchInfo.StartSequenceNumber == "" {
		return Message{}, fmt.Errorf("%w: no KinesisBatchInfo with shardId and startSequenceNumber", ErrNotDeadLetter)
	}
	return m, nil
}

// idNamespace is the UUID namespace of dead-letter ids (a random UUID, fixed forever).
var idNamespace = [16]byte{0x5c, 0x0e, 0x3a, 0x61, 0x9b, 0x27, 0x4d, 0x0f, 0xa8, 0x11, 0x6e, 0x4b, 0x2d, 0x93, 0xc7, 0x40}

// requestID returns a name-based UUID (RFC 9562 version 5) of the batch's identity, so that the
// same Failure always gets the same id and different batches different ones.
func requestID(f Failure) string {
	h := sha1.New()
	h.Write(idNamespace[:])
	field := func(s string) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	field(f.StreamARN)
	field(f.StreamName)
	field(f.ShardID)
	field(string(f.Condition))
	if n := len(f.Records); n > 0 {
		field(f.Records[0].Position().String())
		field(f.Records[n-1].Position().String())
	}
	field(fmt.Sprint(len(f.Records)))
	field(fmt.Sprint(f.Time.UnixNano()))
	sum := h.Sum(nil)
	var u [16]byte
	copy(u[:], sum)
	u[6] = u[6]&0x0f | 0x50 // version 5
	u[8] = u[8]&0x3f | 0x80 // RFC 9562 variant
	s := hex.EncodeToString(u[:])
	return s[0:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:32]
}
