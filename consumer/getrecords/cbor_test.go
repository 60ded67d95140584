package getrecords

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"reflect"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	smithy "github.com/aws/smithy-go"
	"github.com/aws/smithy-go/encoding/cbor"
)

var cborHeader = http.Header{"Content-Type": {CBORContentType}}

// cborResponse builds a GetRecords response in CBOR. kinesalite true writes it as kinesalite
// does (Data as base64 text, arrival times as float64 seconds); false as the Java SDK's
// convention has it (Data as a byte string, arrival times as tag 1 around integer milliseconds).
func cborResponse(recs []types.Record, next *string, millis *int64, kinesalite bool) []byte {
	l := make(cbor.List, len(recs))
	for i, r := range recs {
		m := cbor.Map{
			"SequenceNumber": cbor.String(aws.ToString(r.SequenceNumber)),
			"PartitionKey":   cbor.String(aws.ToString(r.PartitionKey)),
		}
		if kinesalite {
			m["Data"] = cbor.String(base64.StdEncoding.EncodeToString(r.Data))
			m["ApproximateArrivalTimestamp"] = cbor.Float64(float64(r.ApproximateArrivalTimestamp.UnixMilli()) / 1000)
		} else {
			m["Data"] = cbor.Slice(r.Data)
			m["ApproximateArrivalTimestamp"] = &cbor.Tag{ID: 1, Value: cbor.Uint(r.ApproximateArrivalTimestamp.UnixMilli())}
		}
		if r.EncryptionType != "" {
			m["EncryptionType"] = cbor.String(r.EncryptionType)
		}
		l[i] = m
	}
	top := cbor.Map{"Records": l}
	if next != nil {
		top["NextShardIterator"] = cbor.String(*next)
	}
	if millis != nil {
		top["MillisBehindLatest"] = cbor.Uint(*millis)
	}
	return cbor.Encode(top)
}

// cborClient returns a Kinesis client with CBORProtocol answered by h, without retries.
func cborClient(h *cannedHTTP) *kinesis.Client {
	sdk, _ := clients(h)
	return kinesis.New(sdk.Options(), WithCBORProtocol(1))
}

func TestCBORSameRecordsAsJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	recs := records(rng, 500, 300)
	_, fast := clients(&cannedHTTP{status: 200, body: response(recs, aws.String("AAAA"), aws.Int64(5), nil)})
	want, err := fast.GetRecords(context.Background(), getRecordsInput)
	if err != nil {
		t.Fatal(err)
	}
	for _, kinesalite := range []bool{false, true} {
		body := cborResponse(recs, aws.String("AAAA"), aws.Int64(5), kinesalite)
		var o kinesis.GetRecordsOutput
		if !decodeCBOR(body, &o) {
			t.Fatalf("kinesalite %v: fast path refused", kinesalite)
		}
		got, err := cborClient(&cannedHTTP{status: 200, header: cborHeader, body: body}).GetRecords(context.Background(), getRecordsInput)
		if err != nil {
			t.Fatal(err)
		}
		want.ResultMetadata, got.ResultMetadata = middlewareZero, middlewareZero
		if !reflect.DeepEqual(want, got) {
			t.Fatalf("kinesalite %v: outputs differ:\nJSON: %.500s\nCBOR: %.500s", kinesalite, dump(want), dump(got))
		}
	}
}

// compareCBOR decodes body with the fast path and with the generic decoder and fails when the
// fast path takes it and answers differently. It reports whether the fast path took it.
func compareCBOR(t testing.TB, body []byte) bool {
	t.Helper()
	var want, got kinesis.GetRecordsOutput
	wantErr := decodeCBORGeneric(body, &want)
	if !decodeCBOR(body, &got) {
		return false
	}
	if wantErr != nil {
		t.Fatalf("body %x: the fast path decoded what the generic decoder refuses (%v)", body, wantErr)
	}
	if !reflect.DeepEqual(want, got) {
		t.Fatalf("body %x: outputs differ:\ngeneric: %s\nfast:    %s", body, dump(&want), dump(&got))
	}
	return true
}

func TestCBORFastPathSameAsGeneric(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	recs := records(rng, 200, 50)
	taken := map[string][]byte{
		"java shape":   cborResponse(recs, aws.String("it"), aws.Int64(3), false),
		"kinesalite":   cborResponse(recs, aws.String("it"), aws.Int64(3), true),
		"empty":        cbor.Encode(cbor.Map{"Records": cbor.List{}, "NextShardIterator": cbor.String("x"), "MillisBehindLatest": cbor.Uint(0)}),
		"kinesis-mock": cbor.Encode(cbor.Map{"ChildShards": &cbor.Nil{}, "MillisBehindLatest": cbor.Uint(0), "Records": cbor.List{cbor.Map{"ApproximateArrivalTimestamp": cbor.Uint(1796435442759), "Data": cbor.String("AQID+g=="), "EncryptionType": cbor.String("NONE"), "PartitionKey": cbor.String("k"), "SequenceNumber": cbor.String("4968")}}}),
		// indefinite-length map and array (as Jackson writes them), a float32 time, a shard end
		"indefinite": {0xbf, 0x67, 'R', 'e', 'c', 'o', 'r', 'd', 's', 0x9f, 0xbf, 0x64, 'D', 'a', 't', 'a', 0x42, 1, 2,
			0x78, 0x1b, 'A', 'p', 'p', 'r', 'o', 'x', 'i', 'm', 'a', 't', 'e', 'A', 'r', 'r', 'i', 'v', 'a', 'l', 'T', 'i', 'm', 'e', 's', 't', 'a', 'm', 'p', 0xfa, 0x4f, 0x00, 0x00, 0x00, 0xff, 0xff,
			0x71, 'N', 'e', 'x', 't', 'S', 'h', 'a', 'r', 'd', 'I', 't', 'e', 'r', 'a', 't', 'o', 'r', 0xf6, 0xff},
	}
	for name, body := range taken {
		if !compareCBOR(t, body) {
			t.Errorf("%s: the fast path refused a response in Kinesis's shape", name)
		}
	}
	declined := map[string][]byte{
		"child shards":   cbor.Encode(cbor.Map{"ChildShards": cbor.List{cbor.Map{"ShardId": cbor.String("shardId-000000000002"), "ParentShards": cbor.List{cbor.String("shardId-000000000000")}, "HashKeyRange": cbor.Map{"StartingHashKey": cbor.String("0"), "EndingHashKey": cbor.String("9")}}}}),
		"unknown key":    cbor.Encode(cbor.Map{"Records": cbor.List{}, "Other": cbor.Bool(true)}),
		"null data":      cbor.Encode(cbor.Map{"Records": cbor.List{cbor.Map{"Data": &cbor.Nil{}}}}),
		"half float":     {0xa1, 0x67, 'R', 'e', 'c', 'o', 'r', 'd', 's', 0x81, 0xa1, 0x78, 0x1b, 'A', 'p', 'p', 'r', 'o', 'x', 'i', 'm', 'a', 't', 'e', 'A', 'r', 'r', 'i', 'v', 'a', 'l', 'T', 'i', 'm', 'e', 's', 't', 'a', 'm', 'p', 0xf9, 0x3c, 0x00},
		"bad base64":     cbor.Encode(cbor.Map{"Records": cbor.List{cbor.Map{"Data": cbor.String("A===")}}}),
		"wrong type":     cbor.Encode(cbor.Map{"NextShardIterator": cbor.Uint(5)}),
		"truncated":      cborResponse(recs, aws.String("it"), aws.Int64(3), false)[:300],
		"trailing bytes": append(cbor.Encode(cbor.Map{"Records": cbor.List{}}), 0),
	}
	for name, body := range declined {
		if compareCBOR(t, body) {
			t.Errorf("%s: the fast path took a response it should leave to the generic decoder", name)
		}
	}
}

// TestCBORSameErrorsAsJSON: an error answered in CBOR comes back as the same error, of the same
// SDK type, as the same error answered in JSON.
func TestCBORSameErrorsAsJSON(t *testing.T) {
	for _, c := range []struct {
		name, typ string
		status    int
		as        func(error) bool
	}{
		{"throttled", "ProvisionedThroughputExceededException", 400, func(err error) bool { var e *types.ProvisionedThroughputExceededException; return errors.As(err, &e) }},
		{"expired iterator", "ExpiredIteratorException", 400, func(err error) bool { var e *types.ExpiredIteratorException; return errors.As(err, &e) }},
		{"not found", "ResourceNotFoundException", 400, func(err error) bool { var e *types.ResourceNotFoundException; return errors.As(err, &e) }},
		{"invalid argument", "InvalidArgumentException", 400, func(err error) bool { var e *types.InvalidArgumentException; return errors.As(err, &e) }},
		{"internal failure", "InternalFailure", 500, func(err error) bool {
			var e smithy.APIError
			return errors.As(err, &e) && e.ErrorCode() == "InternalFailure"
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			msg := "something about " + c.name
			jsonBody, _ := json.Marshal(map[string]string{"__type": c.typ, "message": msg})
			_, fast := clients(&cannedHTTP{status: c.status, body: jsonBody})
			_, wantErr := fast.GetRecords(context.Background(), getRecordsInput)
			cborBody := cbor.Encode(cbor.Map{"__type": cbor.String(c.typ), "message": cbor.String(msg)})
			_, gotErr := cborClient(&cannedHTTP{status: c.status, header: cborHeader, body: cborBody}).GetRecords(context.Background(), getRecordsInput)
			if !c.as(gotErr) || !c.as(wantErr) {
				t.Fatalf("CBOR error %v (%T), JSON error %v (%T): not the expected kind", gotErr, gotErr, wantErr, wantErr)
			}
			if gotErr.Error() != wantErr.Error() {
				t.Fatalf("errors differ:\nJSON: %v\nCBOR: %v", wantErr, gotErr)
			}
		})
	}
}

// TestCBORRequest checks the request CBORProtocol sends: GetRecords in CBOR with the awsJson
// target, every other operation in JSON.
func TestCBORRequest(t *testing.T) {
	h := &recordingHTTP{cannedHTTP: cannedHTTP{status: 200, header: cborHeader, body: cbor.Encode(cbor.Map{"Records": cbor.List{}})}}
	sdk, _ := clients(&h.cannedHTTP)
	c := kinesis.New(sdk.Options(), func(o *kinesis.Options) { o.HTTPClient = h }, WithCBORProtocol(1))
	in := &kinesis.GetRecordsInput{ShardIterator: aws.String("AAAA"), Limit: aws.Int32(10000), StreamARN: aws.String("arn:aws:kinesis:us-east-1:1:stream/s")}
	if _, err := c.GetRecords(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	if ct, tgt := h.req.Header.Get("Content-Type"), h.req.Header.Get("X-Amz-Target"); ct != CBORContentType || tgt != "Kinesis_20131202.GetRecords" {
		t.Fatalf("Content-Type %q, X-Amz-Target %q", ct, tgt)
	}
	v, err := cbor.Decode(h.body)
	if err != nil {
		t.Fatal(err)
	}
	want := cbor.Map{"ShardIterator": cbor.String("AAAA"), "Limit": cbor.Uint(10000), "StreamARN": cbor.String("arn:aws:kinesis:us-east-1:1:stream/s")}
	if !reflect.DeepEqual(v, want) {
		t.Fatalf("body %#v, want %#v", v, want)
	}
	h.cannedHTTP = cannedHTTP{status: 200, body: []byte(`{"ShardIterator":"x"}`)}
	if _, err := c.GetShardIterator(context.Background(), &kinesis.GetShardIteratorInput{StreamName: aws.String("s"), ShardId: aws.String("shardId-000000000000"), ShardIteratorType: types.ShardIteratorTypeLatest}); err != nil {
		t.Fatal(err)
	}
	if ct := h.req.Header.Get("Content-Type"); ct != "application/x-amz-json-1.1" {
		t.Fatalf("GetShardIterator sent as %q, want JSON", ct)
	}
}

type recordingHTTP struct {
	cannedHTTP
	req  *http.Request
	body []byte
}

func (r *recordingHTTP) Do(req *http.Request) (*http.Response, error) {
	r.req = req
	r.body, _ = io.ReadAll(req.Body)
	req.Body = io.NopCloser(bytes.NewReader(nil))
	return r.cannedHTTP.Do(req)
}
