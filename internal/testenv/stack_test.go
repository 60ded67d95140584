package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// TestLocalStackAnswers checks every server of the local stack with a write and a read back.
func TestLocalStackAnswers(t *testing.T) {
	e := Require(t)

	t.Run("kinesis-local", func(t *testing.T) {
		t.Parallel()
		kinesisRoundTrip(t, KinesisClient(t, e))
	})
	t.Run("kinesalite", func(t *testing.T) {
		t.Parallel()
		kinesisRoundTrip(t, KinesaliteClient(t, e))
	})
	t.Run("s3", func(t *testing.T) {
		t.Parallel()
		c := S3Client(t, e)
		bucket := UniqueName(t, "b")
		CreateBucket(t, c, bucket)
		body := []byte(`{"hello":"world"}` + "\n")
		if _, err := c.PutObject(t.Context(), &s3.PutObjectInput{
			Bucket: aws.String(bucket), Key: aws.String("dt=2024-01-01/part-0.json"), Body: bytes.NewReader(body),
		}); err != nil {
			t.Fatalf("put object: %v", err)
		}
		out, err := c.GetObject(t.Context(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String("dt=2024-01-01/part-0.json")})
		if err != nil {
			t.Fatalf("get object: %v", err)
		}
		defer out.Body.Close()
		got, err := io.ReadAll(out.Body)
		if err != nil {
			t.Fatalf("read object: %v", err)
		}
		if !bytes.Equal(got, body) {
			t.Errorf("object = %q, want %q", got, body)
		}
	})
	t.Run("sqs", func(t *testing.T) {
		t.Parallel()
		c := SQSClient(t, e)
		url := CreateQueue(t, c, UniqueName(t, "q"))
		if _, err := c.SendMessage(t.Context(), &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String("dead letter")}); err != nil {
			t.Fatalf("send message: %v", err)
		}
		out, err := c.ReceiveMessage(t.Context(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), WaitTimeSeconds: 5})
		if err != nil {
			t.Fatalf("receive message: %v", err)
		}
		if len(out.Messages) != 1 || aws.ToString(out.Messages[0].Body) != "dead letter" {
			t.Errorf("received %+v, want the one message sent", out.Messages)
		}
	})
	t.Run("dynalite", func(t *testing.T) {
		t.Parallel()
		c := DynamoDBClient(t, e)
		table := UniqueName(t, "t")
		if _, err := c.CreateTable(t.Context(), &dynamodb.CreateTableInput{
			TableName:            aws.String(table),
			AttributeDefinitions: []dtypes.AttributeDefinition{{AttributeName: aws.String("k"), AttributeType: dtypes.ScalarAttributeTypeS}},
			KeySchema:            []dtypes.KeySchemaElement{{AttributeName: aws.String("k"), KeyType: dtypes.KeyTypeHash}},
			BillingMode:          dtypes.BillingModePayPerRequest,
		}); err != nil {
			t.Fatalf("create table: %v", err)
		}
		t.Cleanup(func() {
			ctx, cancel := cleanupContext()
			defer cancel()
			if _, err := c.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(table)}); err != nil {
				t.Logf("cleanup: delete table %s: %v", table, err)
			}
		})
		if err := dynamodb.NewTableExistsWaiter(c, func(o *dynamodb.TableExistsWaiterOptions) {
			o.MinDelay, o.MaxDelay = 20*time.Millisecond, 200*time.Millisecond
		}).Wait(t.Context(), &dynamodb.DescribeTableInput{TableName: aws.String(table)}, 30*time.Second); err != nil {
			t.Fatalf("wait for table: %v", err)
		}
		item := map[string]dtypes.AttributeValue{"k": &dtypes.AttributeValueMemberS{Value: "shard-0"}}
		if _, err := c.PutItem(t.Context(), &dynamodb.PutItemInput{
			TableName: aws.String(table), Item: item, ConditionExpression: aws.String("attribute_not_exists(k)"),
		}); err != nil {
			t.Fatalf("put item: %v", err)
		}
		_, err := c.PutItem(t.Context(), &dynamodb.PutItemInput{
			TableName: aws.String(table), Item: item, ConditionExpression: aws.String("attribute_not_exists(k)"),
		})
		var ccf *dtypes.ConditionalCheckFailedException
		if !errors.As(err, &ccf) {
			t.Errorf("second conditional put: err = %v, want ConditionalCheckFailedException", err)
		}
		got, err := c.GetItem(t.Context(), &dynamodb.GetItemInput{TableName: aws.String(table), Key: item, ConsistentRead: aws.Bool(true)})
		if err != nil {
			t.Fatalf("get item: %v", err)
		}
		if v, ok := got.Item["k"].(*dtypes.AttributeValueMemberS); !ok || v.Value != "shard-0" {
			t.Errorf("item = %v, want k=shard-0", got.Item)
		}
	})
}

// kinesisRoundTrip puts records into a new 4-shard stream and reads every one of them back,
// checking that each arrived on the shard and at the sequence number PutRecords reported.
func kinesisRoundTrip(t *testing.T, c *kinesis.Client) {
	stream := UniqueName(t, "s")
	arn := CreateStream(t, c, stream, 4)
	if arn == "" {
		t.Errorf("CreateStream returned no ARN")
	}
	const n = 1200 // more than one PutRecords request
	recs := make([]Rec, n)
	for i := range recs {
		recs[i] = Rec{Data: fmt.Appendf(nil, `{"n":%d}`, i)}
	}
	puts := PutRecords(t, c, stream, recs)

	want := map[string]map[string][]byte{} // shard -> sequence number -> data
	for i, p := range puts {
		if p.ShardID == "" || p.SequenceNumber == "" {
			t.Fatalf("record %d: put result %+v has no shard or sequence number", i, p)
		}
		if want[p.ShardID] == nil {
			want[p.ShardID] = map[string][]byte{}
		}
		want[p.ShardID][p.SequenceNumber] = recs[i].Data
	}
	if len(want) < 2 {
		t.Errorf("%d records landed on %d shard(s), want them spread over the 4", n, len(want))
	}

	shards, err := c.ListShards(t.Context(), &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	if err != nil {
		t.Fatalf("list shards: %v", err)
	}
	if len(shards.Shards) != 4 {
		t.Fatalf("stream has %d shards, want 4", len(shards.Shards))
	}
	got := 0
	for _, sh := range shards.Shards {
		id := aws.ToString(sh.ShardId)
		it, err := c.GetShardIterator(t.Context(), &kinesis.GetShardIteratorInput{
			StreamName: aws.String(stream), ShardId: sh.ShardId, ShardIteratorType: ktypes.ShardIteratorTypeTrimHorizon,
		})
		if err != nil {
			t.Fatalf("get shard iterator of %s: %v", id, err)
		}
		iter := it.ShardIterator
		deadline := time.Now().Add(30 * time.Second)
		for read := 0; read < len(want[id]); {
			if time.Now().After(deadline) {
				t.Fatalf("shard %s: read %d of %d records before the deadline", id, read, len(want[id]))
			}
			out, err := c.GetRecords(t.Context(), &kinesis.GetRecordsInput{ShardIterator: iter})
			if err != nil {
				t.Fatalf("get records from %s: %v", id, err)
			}
			for _, r := range out.Records {
				w, ok := want[id][aws.ToString(r.SequenceNumber)]
				if !ok {
					t.Fatalf("shard %s: record at %s was never put there", id, aws.ToString(r.SequenceNumber))
				}
				if !bytes.Equal(r.Data, w) {
					t.Errorf("shard %s at %s: data %q, want %q", id, aws.ToString(r.SequenceNumber), r.Data, w)
				}
				read++
				got++
			}
			if out.NextShardIterator == nil {
				break
			}
			iter = out.NextShardIterator
		}
	}
	if got != n {
		t.Errorf("read back %d records, want %d", got, n)
	}
}
