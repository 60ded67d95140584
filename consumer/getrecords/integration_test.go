package getrecords_test

import (
	"context"
	"crypto/rand"
	"reflect"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/shardhose/shardhose/consumer/getrecords"
	"github.com/shardhose/shardhose/internal/testenv"
)

// TestIntegrationSameAsSDKOnTheEmulators reads the same shard with the same iterators from
// kinesis-local and from kinesalite, through a client with the SDK's decoder and one with
// Protocol, and requires the same records, field by field, and the same outcome at the end.
func TestIntegrationSameAsSDKOnTheEmulators(t *testing.T) {
	env := testenv.Require(t)
	for _, server := range []struct{ name, endpoint string }{{"kinesis-local", env.Kinesis}, {"kinesalite", env.Kinesalite}} {
		t.Run(server.name, func(t *testing.T) {
			cfg := testenv.AWSConfig(t, server.endpoint)
			sdk := kinesis.NewFromConfig(cfg)
			fast := kinesis.NewFromConfig(cfg, getrecords.WithProtocol(2))
			if _, ok := fast.Options().Protocol.(*getrecords.Protocol); !ok {
				t.Fatalf("protocol %T installed, want *getrecords.Protocol", fast.Options().Protocol)
			}
			stream := testenv.UniqueName(t, "decode")
			testenv.CreateStream(t, sdk, stream, 1)

			var recs []testenv.Rec
			for i := range 300 {
				data := make([]byte, i*7%1500)
				_, _ = rand.Read(data)
				key := "key-" + string(rune('a'+i%26))
				if i%9 == 0 {
					key = "clé-" + string(rune(0x4e00+i)) // non-ASCII partition keys
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
			for range 20 {
				in := &kinesis.GetRecordsInput{ShardIterator: iterator, Limit: aws.Int32(120)}
				want, wantErr := sdk.GetRecords(ctx, in)
				got, gotErr := fast.GetRecords(ctx, in)
				if (wantErr == nil) != (gotErr == nil) {
					t.Fatalf("SDK error %v, ours %v", wantErr, gotErr)
				}
				if wantErr != nil {
					t.Fatalf("GetRecords: %v", wantErr)
				}
				if !reflect.DeepEqual(want.Records, got.Records) || !reflect.DeepEqual(want.ChildShards, got.ChildShards) ||
					(want.NextShardIterator == nil) != (got.NextShardIterator == nil) {
					t.Fatalf("read %d: outputs differ: SDK %d records, ours %d", read, len(want.Records), len(got.Records))
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
		})
	}
}
