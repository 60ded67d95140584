package getrecords

import (
	"testing"
)

// FuzzSameAsSDK decodes arbitrary bytes, as a response of any status, with the SDK's decoder and
// with ours, and fails on any difference. The seed corpus (testdata/fuzz/FuzzSameAsSDK) holds
// Kinesis responses, shard ends with ChildShards, errors and near-misses of the fast path.
func FuzzSameAsSDK(f *testing.F) {
	f.Add(200, []byte(`{"Records":[{"Data":"AQID","PartitionKey":"p","SequenceNumber":"1","ApproximateArrivalTimestamp":1700000000.123,"EncryptionType":"KMS"}],"NextShardIterator":"AAAA","MillisBehindLatest":0}`))
	f.Add(400, []byte(`{"__type":"ProvisionedThroughputExceededException","message":"Rate exceeded"}`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		if status < 100 || status > 599 {
			status = 200
		}
		compare(t, status, nil, body)
	})
}
