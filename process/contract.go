package process

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"

	"github.com/shardhose/shardhose/record"
)

// Contract is the shape of what a function handler (lambda or http) sends and expects back.
type Contract int

const (
	// LambdaContract sends Lambda's Kinesis event ({"Records": [{"kinesis": {...}, "eventSource":
	// "aws:kinesis", ...}]}). The function's answer is read only when ReportBatchItemFailures is on:
	// {"batchItemFailures": [{"itemIdentifier": "<sequence number>"}]}. Records pass through
	// unchanged.
	LambdaContract Contract = iota
	// FirehoseContract sends Firehose's transform request ({"invocationId", "deliveryStreamArn",
	// "sourceKinesisStreamArn", "region", "records": [{"recordId", "approximateArrivalTimestamp",
	// "data", "kinesisRecordMetadata"}]}) and expects one result per record: Ok (deliver the
	// returned data, with metadata.partitionKeys), Dropped or ProcessingFailed.
	FirehoseContract
)

// String returns the contract's name in the configuration.
func (c Contract) String() string {
	if c == FirehoseContract {
		return "firehose"
	}
	return "lambda"
}

// Source describes where records come from, for the fields of the events sent to functions.
type Source struct {
	// StreamARN is the Kinesis stream's ARN (eventSourceARN; Firehose's sourceKinesisStreamArn).
	StreamARN string
	// Region is the stream's region (awsRegion; Firehose's region).
	Region string
	// InvokeIdentityARN is the identity the function is invoked as (invokeIdentityArn), e.g. the
	// role shardhose runs under. Optional.
	InvokeIdentityARN string
	// DeliveryStreamARN is Firehose's deliveryStreamArn in FirehoseContract requests. Empty means
	// one derived from StreamARN: arn:PARTITION:firehose:REGION:ACCOUNT:deliverystream/STREAM.
	DeliveryStreamARN string
}

// MaxInvokePayload is the largest synchronous Lambda request and response: 6 MB.
const MaxInvokePayload = 6 * 1024 * 1024

// ErrPayloadTooLarge is wrapped by the error of a lambda handler whose batch does not fit in one
// invocation (MaxInvokePayload). Retrying the same batch cannot succeed; a smaller batch can.
var ErrPayloadTooLarge = errors.New("request payload too large for one Lambda invocation")

// FunctionError is a failure the function reported itself: Lambda's X-Amz-Function-Error
// (FunctionError "Unhandled" or "Handled") with the payload's errorType and errorMessage. It fails
// the whole batch. Lambda's on-failure record carries Kind as responseContext.functionError.
type FunctionError struct {
	Function string
	// Kind is Lambda's FunctionError: "Unhandled" (the runtime caught an exception) or "Handled".
	Kind string
	// ErrorType and ErrorMessage come from the function's error payload when it has that shape;
	// otherwise ErrorMessage holds the start of the payload.
	ErrorType, ErrorMessage string
	// StatusCode and ExecutedVersion are the invocation's (Lambda's responseContext).
	StatusCode      int
	ExecutedVersion string
}

// Error names the function and says what it reported.
func (e *FunctionError) Error() string {
	msg := e.ErrorMessage
	if e.ErrorType != "" {
		msg = e.ErrorType + ": " + msg
	}
	return fmt.Sprintf("function %s failed (%s): %s", e.Function, e.Kind, msg)
}

// newFunctionError reads Lambda's error payload ({"errorMessage", "errorType", "stackTrace"}).
func newFunctionError(function, kind string, payload []byte, status int, version string) *FunctionError {
	fe := &FunctionError{Function: function, Kind: kind, StatusCode: status, ExecutedVersion: version}
	var body struct {
		ErrorMessage string `json:"errorMessage"`
		ErrorType    string `json:"errorType"`
	}
	if json.Unmarshal(payload, &body) == nil && (body.ErrorMessage != "" || body.ErrorType != "") {
		fe.ErrorType, fe.ErrorMessage = body.ErrorType, body.ErrorMessage
	} else {
		fe.ErrorMessage = excerpt(payload)
	}
	return fe
}

// InvocationError is a failure to get an answer from the function at all: the request could not
// be sent, the service refused it (throttling, a missing function, a service error), or the
// answer never arrived. The function may not have run. Lambda's event source mapping retries such
// errors without counting them against MaximumRetryAttempts; Err is the cause (an SDK or net/http
// error), for errors.As.
type InvocationError struct {
	Function string
	Err      error
}

// Error names the function and the cause.
func (e *InvocationError) Error() string {
	return fmt.Sprintf("invoke %s: %v", e.Function, e.Err)
}

// Unwrap returns the cause.
func (e *InvocationError) Unwrap() error { return e.Err }

// ---- Lambda's Kinesis event ----

type kinesisEvent struct {
	Records []kinesisEventRecord `json:"Records"`
}

type kinesisEventRecord struct {
	Kinesis           kinesisData `json:"kinesis"`
	EventSource       string      `json:"eventSource"`
	EventVersion      string      `json:"eventVersion"`
	EventID           string      `json:"eventID"`
	EventName         string      `json:"eventName"`
	InvokeIdentityArn string      `json:"invokeIdentityArn"`
	AwsRegion         string      `json:"awsRegion"`
	EventSourceARN    string      `json:"eventSourceARN"`
}

type kinesisData struct {
	KinesisSchemaVersion        string      `json:"kinesisSchemaVersion"`
	PartitionKey                string      `json:"partitionKey"`
	SequenceNumber              string      `json:"sequenceNumber"`
	Data                        []byte      `json:"data"`
	ApproximateArrivalTimestamp json.Number `json:"approximateArrivalTimestamp"`
}

// lambdaEvent builds Lambda's Kinesis event for batch. KPL user records each get an entry; they
// share their aggregate's sequence number (and eventID), as Lambda's de-aggregating libraries
// present them.
func lambdaEvent(src Source, batch []record.Record) ([]byte, error) {
	ev := kinesisEvent{Records: make([]kinesisEventRecord, len(batch))}
	for i, r := range batch {
		ev.Records[i] = kinesisEventRecord{
			Kinesis: kinesisData{
				KinesisSchemaVersion:        "1.0",
				PartitionKey:                r.PartitionKey,
				SequenceNumber:              r.SequenceNumber,
				Data:                        r.Data,
				ApproximateArrivalTimestamp: json.Number(unixSeconds(r)),
			},
			EventSource:       "aws:kinesis",
			EventVersion:      "1.0",
			EventID:           r.ShardID + ":" + r.SequenceNumber,
			EventName:         "aws:kinesis:record",
			InvokeIdentityArn: src.InvokeIdentityARN,
			AwsRegion:         src.Region,
			EventSourceARN:    src.StreamARN,
		}
	}
	return json.Marshal(ev)
}

// readBatchItemFailures applies Lambda's partial batch response rules to a function's answer:
// an empty answer, null, an object without batchItemFailures, or an empty or null list is
// complete success (nil); otherwise the lowest listed sequence number is where the batch failed,
// and a *PartialFailure at the first record with that sequence number is returned. An answer that
// is not JSON, not an object, or lists an empty, null or unknown itemIdentifier fails the whole
// batch (a plain error).
func readBatchItemFailures(function string, payload []byte, batch []record.Record) error {
	payload = bytes.TrimSpace(payload)
	if len(payload) == 0 || string(payload) == "null" {
		return nil
	}
	var resp map[string]json.RawMessage
	if err := json.Unmarshal(payload, &resp); err != nil {
		return fmt.Errorf("function %s: the response is not a partial batch response object ({\"batchItemFailures\": [...]}), so the whole batch counts as failed: %s", function, excerpt(payload))
	}
	raw, ok := resp["batchItemFailures"]
	if !ok || string(raw) == "null" {
		return nil
	}
	var items []map[string]json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return fmt.Errorf("function %s: batchItemFailures is not a list of objects, so the whole batch counts as failed: %s", function, excerpt(raw))
	}
	lowest := ""
	for i, it := range items {
		var id *string
		if rawID, ok := it["itemIdentifier"]; ok {
			if err := json.Unmarshal(rawID, &id); err != nil {
				return fmt.Errorf("function %s: batchItemFailures[%d].itemIdentifier is not a string, so the whole batch counts as failed: %s", function, i, excerpt(rawID))
			}
		}
		if id == nil || *id == "" {
			return fmt.Errorf("function %s: batchItemFailures[%d] has no itemIdentifier (or an empty one), so the whole batch counts as failed", function, i)
		}
		if !slicesContainsSeq(batch, *id) {
			return fmt.Errorf("function %s: batchItemFailures[%d].itemIdentifier %q is not the sequence number of a record in the batch, so the whole batch counts as failed", function, i, *id)
		}
		if lowest == "" || record.CompareSequenceNumbers(*id, lowest) < 0 {
			lowest = *id
		}
	}
	if lowest == "" {
		return nil
	}
	at := 0
	for at < len(batch) && batch[at].SequenceNumber != lowest {
		at++
	}
	return &PartialFailure{
		FirstFailed: at,
		Outputs:     deliverAll(batch[:at]),
		Err:         fmt.Errorf("function %s reported record %s as failed (batchItemFailures, %d listed)", function, lowest, len(items)),
	}
}

func slicesContainsSeq(batch []record.Record, seq string) bool {
	for _, r := range batch {
		if r.SequenceNumber == seq {
			return true
		}
	}
	return false
}

// ---- Firehose's transform contract ----

type firehoseRequest struct {
	InvocationID           string                  `json:"invocationId"`
	DeliveryStreamArn      string                  `json:"deliveryStreamArn"`
	SourceKinesisStreamArn string                  `json:"sourceKinesisStreamArn,omitempty"`
	Region                 string                  `json:"region"`
	Records                []firehoseRequestRecord `json:"records"`
}

type firehoseRequestRecord struct {
	RecordID                    string                 `json:"recordId"`
	ApproximateArrivalTimestamp int64                  `json:"approximateArrivalTimestamp"`
	Data                        []byte                 `json:"data"`
	KinesisRecordMetadata       *kinesisRecordMetadata `json:"kinesisRecordMetadata,omitempty"`
}

type kinesisRecordMetadata struct {
	ShardID                     string `json:"shardId"`
	PartitionKey                string `json:"partitionKey"`
	SequenceNumber              string `json:"sequenceNumber"`
	SubsequenceNumber           int64  `json:"subsequenceNumber"`
	ApproximateArrivalTimestamp int64  `json:"approximateArrivalTimestamp"`
}

type firehoseResponse struct {
	Records []firehoseResponseRecord `json:"records"`
}

type firehoseResponseRecord struct {
	RecordID *string `json:"recordId"`
	Result   string  `json:"result"`
	Data     *string `json:"data"`
	Metadata *struct {
		PartitionKeys map[string]string `json:"partitionKeys"`
	} `json:"metadata"`
}

// Firehose transform results.
const (
	resultOk               = "Ok"
	resultDropped          = "Dropped"
	resultProcessingFailed = "ProcessingFailed"
)

// processingFailedMessage is Firehose's errorMessage for a record its transform marked
// ProcessingFailed.
const processingFailedMessage = "ProcessingFailed status set for record"

// recordIDs returns a unique recordId per record: its position ("seq" or "seq.sub"), made unique
// with "#index" should a batch hold a position twice.
func recordIDs(batch []record.Record) []string {
	ids := make([]string, len(batch))
	seen := make(map[string]bool, len(batch))
	for i, r := range batch {
		id := r.Position().String()
		if seen[id] {
			id += "#" + strconv.Itoa(i)
		}
		seen[id] = true
		ids[i] = id
	}
	return ids
}

func firehoseEvent(src Source, batch []record.Record, ids []string) ([]byte, error) {
	req := firehoseRequest{
		InvocationID:           newUUID(),
		DeliveryStreamArn:      src.deliveryStreamARN(),
		SourceKinesisStreamArn: src.StreamARN,
		Region:                 src.Region,
		Records:                make([]firehoseRequestRecord, len(batch)),
	}
	for i, r := range batch {
		ms := r.ApproximateArrivalTimestamp.UnixMilli()
		req.Records[i] = firehoseRequestRecord{
			RecordID:                    ids[i],
			ApproximateArrivalTimestamp: ms,
			Data:                        r.Data,
			KinesisRecordMetadata: &kinesisRecordMetadata{
				ShardID:                     r.ShardID,
				PartitionKey:                r.PartitionKey,
				SequenceNumber:              r.SequenceNumber,
				SubsequenceNumber:           r.SubSequenceNumber,
				ApproximateArrivalTimestamp: ms,
			},
		}
	}
	return json.Marshal(req)
}

// readFirehoseResponse checks a transform's answer against the request and turns each result into
// an Output. Anything that breaks the contract (not JSON, a missing, extra, repeated or unknown
// recordId, an unknown result, Ok without valid base64 data) fails the whole batch, naming what.
func readFirehoseResponse(function string, payload []byte, batch []record.Record, ids []string) ([]Output, error) {
	var resp firehoseResponse
	if err := json.Unmarshal(payload, &resp); err != nil {
		return nil, fmt.Errorf("function %s: the response is not a Firehose transform response ({\"records\": [...]}): %w: %s", function, err, excerpt(payload))
	}
	index := make(map[string]int, len(ids))
	for i, id := range ids {
		index[id] = i
	}
	outs := make([]Output, len(batch))
	done := make([]bool, len(batch))
	for n, rr := range resp.Records {
		if rr.RecordID == nil {
			return nil, fmt.Errorf("function %s: records[%d] has no recordId", function, n)
		}
		i, ok := index[*rr.RecordID]
		switch {
		case !ok:
			return nil, fmt.Errorf("function %s: records[%d].recordId %q is not one of the request's records", function, n, *rr.RecordID)
		case done[i]:
			return nil, fmt.Errorf("function %s: records[%d].recordId %q appears more than once", function, n, *rr.RecordID)
		}
		done[i] = true
		r := batch[i]
		switch rr.Result {
		case resultOk:
			if rr.Data == nil {
				return nil, fmt.Errorf("function %s: record %q has result Ok but no data", function, *rr.RecordID)
			}
			data, err := base64.StdEncoding.DecodeString(*rr.Data)
			if err != nil {
				return nil, fmt.Errorf("function %s: record %q: data is not base64: %w", function, *rr.RecordID, err)
			}
			out := r
			out.Data = data
			if rr.Metadata != nil && rr.Metadata.PartitionKeys != nil {
				out.PartitionKeys = rr.Metadata.PartitionKeys
			}
			outs[i] = Output{Outcome: Deliver, Record: out}
		case resultDropped:
			outs[i] = Output{Outcome: Dropped, Record: r}
		case resultProcessingFailed:
			outs[i] = Output{Outcome: ProcessingFailed, Record: r, Err: processingFailedMessage}
		default:
			return nil, fmt.Errorf("function %s: record %q has result %q: want Ok, Dropped or ProcessingFailed", function, *rr.RecordID, rr.Result)
		}
	}
	var missing []string
	for i, d := range done {
		if !d {
			missing = append(missing, strconv.Quote(ids[i]))
		}
	}
	if len(missing) > 0 {
		if len(missing) > 5 {
			missing = append(missing[:5], fmt.Sprintf("and %d more", len(missing)-5))
		}
		return nil, fmt.Errorf("function %s: the response has %d records for %d sent; missing recordIds %v", function, len(resp.Records), len(batch), missing)
	}
	return outs, nil
}

func (s Source) deliveryStreamARN() string {
	if s.DeliveryStreamARN != "" || s.StreamARN == "" {
		return s.DeliveryStreamARN
	}
	// arn:PARTITION:kinesis:REGION:ACCOUNT:stream/NAME
	parts := bytes.SplitN([]byte(s.StreamARN), []byte(":"), 6)
	if len(parts) != 6 || !bytes.HasPrefix(parts[5], []byte("stream/")) {
		return ""
	}
	return fmt.Sprintf("arn:%s:firehose:%s:%s:deliverystream/%s", parts[1], parts[3], parts[4], bytes.TrimPrefix(parts[5], []byte("stream/")))
}

// ---- shared ----

// contractCall runs one batch through a function under contract c: it builds the request, calls
// send, and reads the answer.
type contractCall struct {
	function string
	contract Contract
	source   Source
	// reportBatchItemFailures makes the Lambda contract read batchItemFailures.
	reportBatchItemFailures bool
	log                     *slog.Logger
	warnIgnored             *sync.Once
}

func (c contractCall) request(batch []record.Record) (body []byte, ids []string, err error) {
	if c.contract == FirehoseContract {
		ids = recordIDs(batch)
		body, err = firehoseEvent(c.source, batch, ids)
	} else {
		body, err = lambdaEvent(c.source, batch)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("function %s: encode the request: %w", c.function, err)
	}
	return body, ids, nil
}

func (c contractCall) response(payload []byte, batch []record.Record, ids []string) ([]Output, error) {
	if c.contract == FirehoseContract {
		return readFirehoseResponse(c.function, payload, batch, ids)
	}
	if c.reportBatchItemFailures {
		if err := readBatchItemFailures(c.function, payload, batch); err != nil {
			return nil, err
		}
	} else if bytes.Contains(payload, []byte(`"batchItemFailures"`)) && c.warnIgnored != nil {
		c.warnIgnored.Do(func() {
			c.log.Warn("the function returns batchItemFailures, but report_batch_item_failures is off, so they are ignored and every batch it returns counts as handled", "function", c.function)
		})
	}
	return deliverAll(batch), nil
}

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// excerpt quotes the start of a payload for an error message.
func excerpt(payload []byte) string {
	const max = 512
	if len(payload) > max {
		return strconv.Quote(string(payload[:max])) + fmt.Sprintf(" (%d bytes in all)", len(payload))
	}
	return strconv.Quote(string(payload))
}
