package getrecords

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	smithy "github.com/aws/smithy-go"
)

// cannedHTTP answers every request with one response, built afresh each time.
type cannedHTTP struct {
	status int
	header http.Header
	body   []byte
}

func (c *cannedHTTP) Do(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		_, _ = io.Copy(io.Discard, req.Body)
		_ = req.Body.Close()
	}
	h := http.Header{"Content-Type": {"application/x-amz-json-1.1"}}
	for k, v := range c.header {
		h[k] = v
	}
	return &http.Response{
		StatusCode:    c.status,
		Status:        strconv.Itoa(c.status) + " " + http.StatusText(c.status),
		Header:        h,
		Body:          io.NopCloser(bytes.NewReader(c.body)),
		ContentLength: int64(len(c.body)),
		Proto:         "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Request: req,
	}, nil
}

// clients returns a Kinesis client with the SDK's decoder and one with Protocol, both answered
// by h and neither retrying, so that each call decodes h's response exactly once.
func clients(h *cannedHTTP) (sdk, fast *kinesis.Client) {
	opts := kinesis.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String("http://127.0.0.1:9"),
		Credentials:  credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""),
		HTTPClient:   h,
		Retryer:      aws.NopRetryer{},
	}
	return kinesis.New(opts), kinesis.New(opts, WithProtocol(1))
}

var getRecordsInput = &kinesis.GetRecordsInput{ShardIterator: aws.String("it"), Limit: aws.Int32(10000)}

// compare decodes one response with both decoders and fails on any difference, in the output
// (every field) or the error (its text, its API error code and its Go type).
func compare(t testing.TB, status int, header http.Header, body []byte) (*kinesis.GetRecordsOutput, error) {
	t.Helper()
	h := &cannedHTTP{status: status, header: header, body: body}
	sdk, fast := clients(h)
	ctx := context.Background()
	want, wantErr := sdk.GetRecords(ctx, getRecordsInput)
	got, gotErr := fast.GetRecords(ctx, getRecordsInput)
	if (wantErr == nil) != (gotErr == nil) {
		t.Fatalf("status %d body %.200q: SDK error %v, ours %v", status, body, wantErr, gotErr)
	}
	if wantErr != nil {
		if wantErr.Error() != gotErr.Error() {
			t.Fatalf("status %d body %.200q: errors differ:\nSDK:  %v\nours: %v", status, body, wantErr, gotErr)
		}
		var wa, ga smithy.APIError
		if errors.As(wantErr, &wa) != errors.As(gotErr, &ga) ||
			(wa != nil && (wa.ErrorCode() != ga.ErrorCode() || reflect.TypeOf(wa) != reflect.TypeOf(ga))) {
			t.Fatalf("status %d: API errors differ: SDK %T %v, ours %T %v", status, wa, wa, ga, ga)
		}
		return nil, wantErr
	}
	want.ResultMetadata, got.ResultMetadata = middlewareZero, middlewareZero
	if !reflect.DeepEqual(want, got) {
		t.Fatalf("body %.300q: outputs differ:\nSDK:  %s\nours: %s", body, dump(want), dump(got))
	}
	return got, nil
}

var middlewareZero = (&kinesis.GetRecordsOutput{}).ResultMetadata

func dump(o *kinesis.GetRecordsOutput) string {
	b, _ := json.Marshal(o)
	return string(b)
}

// response builds a GetRecords response body the way Kinesis writes one.
func response(recs []types.Record, next *string, millis *int64, children []types.ChildShard) []byte {
	var b bytes.Buffer
	b.WriteString(`{"Records":[`)
	for i, r := range recs {
		if i > 0 {
			b.WriteByte(',')
		}
		// Kinesis writes arrival times as Java prints a double (1.700000000123E9); kinesalite as
		// JavaScript does (1700000000.123). Both appear.
		ts := strconv.FormatFloat(float64(r.ApproximateArrivalTimestamp.UnixMilli())/1000, 'f', -1, 64)
		if i%2 == 0 {
			ts = strings.Replace(strconv.FormatFloat(float64(r.ApproximateArrivalTimestamp.UnixMilli())/1000, 'E', -1, 64), "E+0", "E", 1)
		}
		fmt.Fprintf(&b, `{"SequenceNumber":%q,"ApproximateArrivalTimestamp":%s,"Data":"%s","PartitionKey":%q`,
			aws.ToString(r.SequenceNumber), ts,
			base64.StdEncoding.EncodeToString(r.Data), aws.ToString(r.PartitionKey))
		if r.EncryptionType != "" {
			fmt.Fprintf(&b, `,"EncryptionType":%q`, r.EncryptionType)
		}
		b.WriteByte('}')
	}
	b.WriteString(`]`)
	if next != nil {
		fmt.Fprintf(&b, `,"NextShardIterator":%q`, *next)
	}
	if millis != nil {
		fmt.Fprintf(&b, `,"MillisBehindLatest":%d`, *millis)
	}
	if children != nil {
		c, _ := json.Marshal(children)
		fmt.Fprintf(&b, `,"ChildShards":%s`, c)
	}
	b.WriteByte('}')
	return b.Bytes()
}

// records makes n records with data of 0 to size bytes (every base64 padding), ASCII and
// non-ASCII partition keys, and millisecond arrival times.
func records(rng *rand.Rand, n, size int) []types.Record {
	out := make([]types.Record, n)
	seq := "49590338271490256608559692538361571095921575989136588898"
	for i := range out {
		data := make([]byte, size-rng.IntN(4))
		for j := range data {
			data[j] = byte(rng.IntN(256))
		}
		pk := "key-" + strconv.Itoa(rng.IntN(1000))
		if i%7 == 3 {
			pk = "clé-ünïcode-" + strconv.Itoa(i)
		}
		ts := time.UnixMilli(1_700_000_000_000 + int64(rng.IntN(1e9))).UTC()
		out[i] = types.Record{
			Data:                        data,
			PartitionKey:                aws.String(pk),
			SequenceNumber:              aws.String(seq[:len(seq)-len(strconv.Itoa(i))] + strconv.Itoa(i)),
			ApproximateArrivalTimestamp: &ts,
		}
		if i%5 == 0 {
			out[i].EncryptionType = types.EncryptionTypeKms
		}
	}
	return out
}

func TestFastPathTakesKinesisResponses(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	bodies := map[string][]byte{
		"empty":   []byte(`{"Records":[],"NextShardIterator":"AAAA","MillisBehindLatest":0}`),
		"records": response(records(rng, 50, 100), aws.String("AAAAAAAAAAF"), aws.Int64(1234), nil),
		"aws":     []byte(`{"MillisBehindLatest":0,"NextShardIterator":"AAA","Records":[{"ApproximateArrivalTimestamp":1.441215410867E9,"Data":"XzxkYXRhPl8w","PartitionKey":"partitionKey","SequenceNumber":"21269319989652663814458848515492872193"},{"ApproximateArrivalTimestamp":-1.5e-3,"Data":""}]}`),
		"spaces":  []byte(" {\n \"Records\" : [ { \"Data\" : \"AAEC\" , \"PartitionKey\" : \"p\" } ] ,\r\n\t\"MillisBehindLatest\":5 } \n"),
		// kinesis-local writes a null ChildShards on every read that is not at a shard's end.
		"kinesis-local": []byte(`{"Records":[{"Data":"AAEC","PartitionKey":"p","SequenceNumber":"1"}],"NextShardIterator":"AAA","MillisBehindLatest":0,"ChildShards":null}`),
	}
	for name, body := range bodies {
		var out kinesis.GetRecordsOutput
		if !decode(body, &out) {
			t.Errorf("%s: the fast path refused a response in Kinesis's shape; every read would fall back to the SDK", name)
		}
		compare(t, 200, nil, body)
	}
}

func TestSameAsSDK(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	shardEnd := []types.ChildShard{
		{ShardId: aws.String("shardId-000000000004"), ParentShards: []string{"shardId-000000000001"},
			HashKeyRange: &types.HashKeyRange{StartingHashKey: aws.String("0"), EndingHashKey: aws.String("170141183460469231731687303715884105727")}},
		{ShardId: aws.String("shardId-000000000005"), ParentShards: []string{"shardId-000000000001", "shardId-000000000002"},
			HashKeyRange: &types.HashKeyRange{StartingHashKey: aws.String("170141183460469231731687303715884105728"), EndingHashKey: aws.String("340282366920938463463374607431768211455")}},
	}
	cases := map[string][]byte{
		"no body":         nil,
		"empty object":    []byte(`{}`),
		"empty records":   []byte(`{"Records":[],"NextShardIterator":"AAAA","MillisBehindLatest":0}`),
		"10000 records":   response(records(rng, 10000, 1024), aws.String("AAAAAAAAAAF"), aws.Int64(86400000), nil),
		"small records":   response(records(rng, 300, 3), aws.String("x"), aws.Int64(0), nil),
		"shard end":       response(records(rng, 3, 10), nil, aws.Int64(0), shardEnd),
		"shard end empty": response(nil, nil, aws.Int64(0), []types.ChildShard{}),
		"escapes":         []byte(`{"Records":[{"Data":"AA==","PartitionKey":"a\"b\u00e9\n","SequenceNumber":"1\/2"}],"NextShardIterator":"i\u0041"}`),
		"escaped base64":  []byte(`{"Records":[{"Data":"AA\u003d\u003d"}]}`),
		"escaped newline": []byte(`{"Records":[{"Data":"AAAA\nAAAA"}]}`),
		"raw newline":     []byte("{\"Records\":[{\"Data\":\"AAAA\nAAAA\"}]}"),
		"bad base64":      []byte(`{"Records":[{"Data":"A==="}]}`),
		"bad base64 2":    []byte(`{"Records":[{"Data":"!!!!"}]}`),
		// The fast path decodes base64 with SIMD over long runs: invalid bytes deep inside,
		// URL-safe letters, and padding bits that are not zero (which encoding/base64 accepts).
		"bad base64 deep":       []byte(`{"Records":[{"Data":"` + strings.Repeat("QUJD", 40) + `QU!D` + strings.Repeat("QUJD", 40) + `"}]}`),
		"url-safe base64":       []byte(`{"Records":[{"Data":"` + strings.Repeat("QUJD", 40) + `-_-_"}]}`),
		"padding bits":          []byte(`{"Records":[{"Data":"` + strings.Repeat("QUJD", 40) + `QR=="},{"Data":"QUJDRB=="},{"Data":"QUJDREF="}]}`),
		"padding in the middle": []byte(`{"Records":[{"Data":"` + strings.Repeat("QUJD", 20) + `QQ==` + strings.Repeat("QUJD", 20) + `"}]}`),
		"space in base64":       []byte(`{"Records":[{"Data":"` + strings.Repeat("QUJD", 20) + ` QUJ` + strings.Repeat("QUJD", 20) + `"}]}`),
		"nulls":                 []byte(`{"Records":[null,{"Data":null,"PartitionKey":null}],"NextShardIterator":null,"MillisBehindLatest":null}`),
		"null children":         []byte(`{"ChildShards":null,"Records":[{"Data":"AAAA"}]}`),
		"null children x2":      []byte(`{"ChildShards":null,"Records":[],"ChildShards":null}`),
		"children then null":    []byte(`{"ChildShards":[],"ChildShards":null}`),
		"nul":                   []byte(`{"ChildShards":nul}`),
		"unknown keys":          []byte(`{"Records":[{"Data":"AAAA","Extra":{"a":[1,2]}}],"Other":true}`),
		"duplicate keys":        []byte(`{"Records":[{"Data":"AAAA","Data":"AQID"}],"Records":[],"MillisBehindLatest":1,"MillisBehindLatest":2}`),
		"fraction times":        []byte(`{"Records":[{"ApproximateArrivalTimestamp":1700000000.1234},{"ApproximateArrivalTimestamp":0.001},{"ApproximateArrivalTimestamp":1.7e9},{"ApproximateArrivalTimestamp":-5.5},{"ApproximateArrivalTimestamp":99999999999999999999},{"ApproximateArrivalTimestamp":1e400},{"ApproximateArrivalTimestamp":1.441215410867E+9},{"ApproximateArrivalTimestamp":-0.0},{"ApproximateArrivalTimestamp":1e-400},{"ApproximateArrivalTimestamp":9223372036854775.807}]}`),
		"big millis":            []byte(`{"MillisBehindLatest":9223372036854775807}`),
		"overflow millis":       []byte(`{"MillisBehindLatest":9223372036854775808}`),
		"float millis":          []byte(`{"MillisBehindLatest":1.5}`),
		"leading zero":          []byte(`{"MillisBehindLatest":007}`),
		"truncated":             response(records(rng, 3, 10), aws.String("x"), nil, nil)[:50],
		"trailing":              []byte(`{"Records":[]} x`),
		"not an object":         []byte(`[]`),
		"null":                  []byte(`null`),
		"trailing comma":        []byte(`{"Records":[{"Data":"AAAA",}],}`),
		"wrong types":           []byte(`{"Records":{"Data":"AAAA"},"NextShardIterator":5}`),
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) { compare(t, 200, nil, body) })
	}
}

func TestSameErrorsAsSDK(t *testing.T) {
	errorsByType := []struct {
		name   string
		status int
		header http.Header
		body   string
		as     func(error) bool
	}{
		{"throttled", 400, nil, `{"__type":"ProvisionedThroughputExceededException","message":"Rate exceeded for shard shardId-000000000000"}`,
			func(err error) bool { var e *types.ProvisionedThroughputExceededException; return errors.As(err, &e) }},
		{"expired iterator", 400, nil, `{"__type":"ExpiredIteratorException","message":"Iterator expired"}`,
			func(err error) bool { var e *types.ExpiredIteratorException; return errors.As(err, &e) }},
		{"expired, type in header", 400, http.Header{"X-Amzn-Errortype": {"ExpiredIteratorException:http://internal.amazon.com/"}}, `{"message":"Iterator expired"}`,
			func(err error) bool { var e *types.ExpiredIteratorException; return errors.As(err, &e) }},
		{"not found", 400, nil, `{"__type":"com.amazonaws.kinesis#ResourceNotFoundException","message":"Stream s not found"}`,
			func(err error) bool { var e *types.ResourceNotFoundException; return errors.As(err, &e) }},
		{"kms throttled", 400, nil, `{"__type":"KMSThrottlingException","message":"slow down"}`,
			func(err error) bool { var e *types.KMSThrottlingException; return errors.As(err, &e) }},
		{"internal failure", 500, nil, `{"__type":"InternalFailure","message":"oops"}`,
			func(err error) bool {
				var e smithy.APIError
				return errors.As(err, &e) && e.ErrorCode() == "InternalFailure"
			}},
		{"unreadable error", 503, nil, `<html>Service Unavailable</html>`,
			func(err error) bool { return err != nil }},
	}
	for _, c := range errorsByType {
		t.Run(c.name, func(t *testing.T) {
			_, err := compare(t, c.status, c.header, []byte(c.body))
			if !c.as(err) {
				t.Fatalf("error %v (%T) is not the expected kind", err, err)
			}
		})
	}
}

// TestDataDoesNotAlias checks that appending to one record's Data never overwrites the next
// record's, and that the body buffer, reused for the next response, is not referenced.
func TestDataDoesNotAlias(t *testing.T) {
	body := []byte(`{"Records":[{"Data":"AQID"},{"Data":"BAUG"}]}`)
	var out kinesis.GetRecordsOutput
	if !decode(body, &out) {
		t.Fatal("fast path refused a plain response")
	}
	_ = append(out.Records[0].Data, 9, 9, 9)
	if !bytes.Equal(out.Records[1].Data, []byte{4, 5, 6}) {
		t.Fatalf("append to record 0 changed record 1: %v", out.Records[1].Data)
	}
	for i := range body {
		body[i] = 'x'
	}
	if !bytes.Equal(out.Records[0].Data, []byte{1, 2, 3}) {
		t.Fatalf("Data refers to the body buffer: %v", out.Records[0].Data)
	}
}

func TestLargeResponsesKeepDecodingThroughOneBodyBuffer(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{10000, 10, 2000} {
		body := response(records(rng, n, 200), aws.String("AAAA"), aws.Int64(0), nil)
		out, _ := compare(t, 200, nil, body)
		if len(out.Records) != n {
			t.Fatalf("read %d records, want %d", len(out.Records), n)
		}
	}
	if !strings.Contains(string(response(nil, nil, nil, nil)), "Records") {
		t.Fatal("response builder broken")
	}
}

// TestReadBodyIgnoresAWrongContentLength: the body is read to its end whatever Content-Length
// says, too small, too large, unknown or absurd, and the buffer is reused when it is big enough.
func TestReadBodyIgnoresAWrongContentLength(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789"), 1000)
	for _, cl := range []int64{-1, 0, 5, int64(len(body)), int64(len(body)) * 3, 1 << 40} {
		got, err := readBody(nil, bytes.NewReader(body), cl)
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("content length %d: read %d bytes (%v), want %d", cl, len(got), err, len(body))
		}
	}
	buf := make([]byte, 0, 2*len(body))
	got, _ := readBody(buf, bytes.NewReader(body), int64(len(body)))
	if &got[0] != &buf[:1][0] {
		t.Fatal("a buffer large enough was not reused")
	}
}
