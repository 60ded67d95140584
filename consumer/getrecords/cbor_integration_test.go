package getrecords_test

import (
	"context"
	"crypto/rand"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	smithy "github.com/aws/smithy-go"

	"github.com/shardhose/shardhose/consumer/getrecords"
	"github.com/shardhose/shardhose/internal/testenv"
)

// TestIntegrationCBORSameAsJSONOnTheEmulators reads the same shard with the same iterators in
// JSON (the SDK's decoder) and in CBOR (CBORProtocol) from kinesis-local and kinesalite, and
// requires the same records, field by field, and the same typed error once the stream is
// deleted. kinesalite cuts every CBOR response after about 16 KiB (its CBOR
// encoder returns only its first buffered chunk), so it is read 5 records at a time.
func TestIntegrationCBORSameAsJSONOnTheEmulators(t *testing.T) {
	env := testenv.Require(t)
	for _, server := range []struct {
		name, endpoint string
		limit          int32
	}{{"kinesis-local", env.Kinesis, 120}, {"kinesalite", env.Kinesalite, 5}} {
		t.Run(server.name, func(t *testing.T) {
			cfg := testenv.AWSConfig(t, server.endpoint)
			sdk := kinesis.NewFromConfig(cfg)
			cb := kinesis.NewFromConfig(cfg, getrecords.WithCBORProtocol(2))
			stream := testenv.UniqueName(t, "cbor")
			testenv.CreateStream(t, sdk, stream, 1)

			var recs []testenv.Rec
			for i := range 60 {
				data := make([]byte, i*37%1500)
				_, _ = rand.Read(data)
				key := "key-" + string(rune('a'+i%26))
				if i%9 == 0 {
					key = "clé-" + string(rune(0x4e00+i))
				}
				recs = append(recs, testenv.Rec{PartitionKey: key, Data: data})
			}
			testenv.PutRecords(t, sdk, stream, recs)

			ctx := context.Background()
			it, err := sdk.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
				StreamName: aws.String(stream), ShardId: aws.String("shardId-000000000000"), ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
			})
			if err != nil {
				t.Fatal(err)
			}
			iterator := it.ShardIterator
			read := 0
			for range 40 {
				in := &kinesis.GetRecordsInput{ShardIterator: iterator, Limit: aws.Int32(server.limit)}
				want, wantErr := sdk.GetRecords(ctx, in)
				got, gotErr := cb.GetRecords(ctx, in)
				if wantErr != nil || gotErr != nil {
					t.Fatalf("GetRecords: JSON %v, CBOR %v", wantErr, gotErr)
				}
				if !reflect.DeepEqual(want.Records, got.Records) || !reflect.DeepEqual(want.ChildShards, got.ChildShards) ||
					(want.NextShardIterator == nil) != (got.NextShardIterator == nil) ||
					aws.ToInt64(want.MillisBehindLatest) != aws.ToInt64(got.MillisBehindLatest) {
					t.Fatalf("read %d: outputs differ: JSON %d records, CBOR %d", read, len(want.Records), len(got.Records))
				}
				read += len(got.Records)
				if len(got.Records) == 0 {
					break
				}
				iterator = got.NextShardIterator
			}
			if read != len(recs) {
				t.Fatalf("read %d records, want %d", read, len(recs))
			}

			// A shard of a stream that does not exist: the same typed error both ways.
			missing, err := sdk.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
				StreamName: aws.String(stream), ShardId: aws.String("shardId-000000000000"), ShardIteratorType: types.ShardIteratorTypeLatest,
			})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := sdk.DeleteStream(ctx, &kinesis.DeleteStreamInput{StreamName: aws.String(stream)}); err != nil {
				t.Fatal(err)
			}
			// Deleting takes a while on kinesis-local (the stream is DELETING, and GetRecords
			// answers ResourceInUseException, until it is gone): compare once it is gone, so that
			// both calls see the same state.
			var notFound *types.ResourceNotFoundException
			for deadline := time.Now().Add(30 * time.Second); ; {
				_, err := sdk.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(stream)})
				if errors.As(err, &notFound) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the stream was not gone 30 s after DeleteStream (last answer: %v)", err)
				}
				time.Sleep(50 * time.Millisecond)
			}
			in := &kinesis.GetRecordsInput{ShardIterator: missing.ShardIterator}
			_, wantErr := sdk.GetRecords(ctx, in)
			_, gotErr := cb.GetRecords(ctx, in)
			// ResourceNotFoundException on both emulators once the stream is gone: the same type
			// and message both ways.
			var wantAPI, gotAPI smithy.APIError
			if !errors.As(wantErr, &wantAPI) || !errors.As(gotErr, &gotAPI) || reflect.TypeOf(wantAPI) != reflect.TypeOf(gotAPI) ||
				wantAPI.ErrorCode() != gotAPI.ErrorCode() || wantAPI.ErrorMessage() != gotAPI.ErrorMessage() {
				t.Fatalf("after the stream was deleted: JSON error %v, CBOR error %v; want the same typed error", wantErr, gotErr)
			}
			t.Logf("both: %T", gotAPI)
		})
	}
}
