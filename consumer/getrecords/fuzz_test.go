package getrecords

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/smithy-go/encoding/cbor"
)

// FuzzSameAsSDK decodes arbitrary bytes, as a response of any status, with the SDK's decoder and
// with ours, and fails on any difference. The seed corpus (testdata/fuzz/FuzzSameAsSDK) holds
// Kinesis responses, shard ends with ChildShards, errors and near-misses of the fast path.
func FuzzSameAsSDK(f *testing.F) {
	f.Add(200, []byte(`{"Records":[{"Data":"AQID","PartitionKey":"p","SequenceNumber":"1","ApproximateArrivalTimestamp":1700000000.123,"EncryptionType":"KMS"}],"NextShardIterator":"AAAA","MillisBehindLatest":0}`))
	f.Add(400, []byte(`{"__type":"ProvisionedThroughputExceededException","message":"Rate exceeded"}`))
	f.Add(200, []byte(`{"Records":[{"Data":"AQID","PartitionKey":"p","SequenceNumber":"1"}],"NextShardIterator":"AAAA","MillisBehindLatest":0,"ChildShards":null}`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		if status < 100 || status > 599 {
			status = 200
		}
		compare(t, status, nil, body)
	})
}

// FuzzCBOR decodes arbitrary bytes as a CBOR GetRecords response, through the whole client and
// with the fast path alone: nothing panics, the client either decodes or returns an error, and
// whatever the fast path takes it decodes as the generic decoder does.
func FuzzCBOR(f *testing.F) {
	f.Add(200, cborResponse(records(rand.New(rand.NewPCG(1, 1)), 3, 20), aws.String("it"), aws.Int64(0), false))
	f.Add(200, cborResponse(records(rand.New(rand.NewPCG(1, 1)), 3, 20), aws.String("it"), aws.Int64(0), true))
	f.Add(400, cbor.Encode(cbor.Map{"__type": cbor.String("ExpiredIteratorException"), "message": cbor.String("expired")}))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		if status < 100 || status > 599 {
			status = 200
		}
		compareCBOR(t, body)
		out, err := cborClient(&cannedHTTP{status: status, header: cborHeader, body: body}).GetRecords(context.Background(), getRecordsInput)
		if (err == nil) == (out == nil) {
			t.Fatalf("output %v and error %v", out, err)
		}
	})
}
