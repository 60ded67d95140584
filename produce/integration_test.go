package produce

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/shardhose/shardhose/internal/testenv"
)

// kinesisLocal returns a client of the local stack's kinesis-local, skipping in -short runs.
func kinesisLocal(t *testing.T) *kinesis.Client {
	t.Helper()
	return testenv.KinesisClient(t, testenv.Require(t))
}

type readRecord struct {
	shard string
	key   string
	data  string
}

// readAll reads every shard of the stream from TRIM_HORIZON until want records were seen or ctx
// ends, polling each shard in turn.
func readAll(ctx context.Context, t *testing.T, c *kinesis.Client, stream string, want int) []readRecord {
	t.Helper()
	shards, err := c.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	if err != nil {
		t.Fatalf("list shards of %s: %v", stream, err)
	}
	iters := map[string]*string{}
	for _, s := range shards.Shards {
		it, err := c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
			StreamName: aws.String(stream), ShardId: s.ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
		if err != nil {
			t.Fatalf("shard iterator for %s: %v", aws.ToString(s.ShardId), err)
		}
		iters[aws.ToString(s.ShardId)] = it.ShardIterator
	}
	var got []readRecord
	for len(got) < want {
		n := 0
		for _, shard := range slices.Sorted(func(yield func(string) bool) {
			for k := range iters {
				if !yield(k) {
					return
				}
			}
		}) {
			if iters[shard] == nil {
				continue
			}
			out, err := c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iters[shard], Limit: aws.Int32(10000)})
			if err != nil {
				t.Fatalf("get records from %s after %d of %d records: %v", shard, len(got), want, err)
			}
			for _, r := range out.Records {
				got = append(got, readRecord{shard: shard, key: aws.ToString(r.PartitionKey), data: string(r.Data)})
			}
			n += len(out.Records)
			iters[shard] = out.NextShardIterator
		}
		if n == 0 && len(got) < want {
			select {
			case <-ctx.Done():
				t.Fatalf("read %d of %d records before the deadline: %v", len(got), want, ctx.Err())
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	return got
}

// recordingSource remembers every entry its Source yields.
type recordingSource struct {
	src  Source
	sent []Entry
}

func (r *recordingSource) Next() (Entry, error) {
	e, err := r.src.Next()
	if err == nil {
		r.sent = append(r.sent, e)
	}
	return e, err
}

func TestIntegrationProduceGenerated(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	c := kinesisLocal(t)
	stream := testenv.UniqueName(t, "produce")
	testenv.CreateStream(t, c, stream, 2)

	const n = 1200
	gen := NewGeneratedSource(20250115)
	gen.PartitionKeyField = "user_id"
	src := &recordingSource{src: gen}
	sentCalls := 0
	stats, err := Run(ctx, Options{
		Stream: stream, Client: c, Source: src, Count: n,
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil)),
		OnSent: func(int) { sentCalls++ },
	})
	if err != nil {
		t.Fatalf("Run: %v (stats %+v)", err, stats)
	}
	t.Logf("produced: %+v", stats)
	if stats.Sent != n || len(src.sent) != n {
		t.Fatalf("sent %d (read %d from the source), want %d", stats.Sent, len(src.sent), n)
	}
	if stats.Calls < 3 {
		t.Errorf("%d calls for %d records; want at least 3 (500 per call)", stats.Calls, n)
	}

	readCtx, cancelRead := context.WithTimeout(ctx, 60*time.Second)
	defer cancelRead()
	got := readAll(readCtx, t, c, stream, n)
	if len(got) != n {
		t.Fatalf("read %d records, want %d", len(got), n)
	}

	// Every payload came back once, under the partition key taken from its user_id.
	want := map[string]int{}
	for _, e := range src.sent {
		want[e.PartitionKey+"\x00"+string(e.Data)]++
	}
	perShard := map[string]int{}
	for _, r := range got {
		k := r.key + "\x00" + r.data
		if want[k] == 0 {
			t.Fatalf("read a record that was not sent, or twice: key %q, data %s", r.key, r.data)
		}
		want[k]--
		perShard[r.shard]++
		var ev struct {
			UserID string `json:"user_id"`
		}
		if err := json.Unmarshal([]byte(r.data), &ev); err != nil || ev.UserID != r.key {
			t.Errorf("record %s: partition key %q is not its user_id (err %v)", r.data, r.key, err)
		}
	}
	if len(perShard) != 2 {
		t.Errorf("records per shard %v, want both shards used", perShard)
	}
	t.Logf("records per shard: %v", perShard)

	// Without partial failures, each partition key's records come back in the order sent.
	if stats.Failed == 0 {
		sentByKey, readByKey := map[string][]string{}, map[string][]string{}
		for _, e := range src.sent {
			sentByKey[e.PartitionKey] = append(sentByKey[e.PartitionKey], string(e.Data))
		}
		for _, r := range got {
			readByKey[r.key] = append(readByKey[r.key], r.data)
		}
		for k, s := range sentByKey {
			if !slices.Equal(s, readByKey[k]) {
				t.Errorf("partition key %s: records came back out of order", k)
			}
		}
	}
}

func TestIntegrationProduceRecipeSamplesByARN(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	c := kinesisLocal(t)
	stream := testenv.UniqueName(t, "produce")
	arn := testenv.CreateStream(t, c, stream, 1)

	src, err := LoadFileSource(filepath.Join("..", "configs", "samples", "recipe-events.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	src.PartitionKeyField = "user_id"
	stats, err := Run(ctx, Options{StreamARN: arn, Client: c, Source: src, Count: src.Len(), Rate: 50})
	if err != nil || stats.Sent != 5 {
		t.Fatalf("Run: sent %d, err %v", stats.Sent, err)
	}
	readCtx, cancelRead := context.WithTimeout(ctx, 30*time.Second)
	defer cancelRead()
	got := readAll(readCtx, t, c, stream, 5)
	for i, wantKey := range []string{"user123", "user456", "user789", "user001", "user002"} {
		if got[i].key != wantKey || !json.Valid([]byte(got[i].data)) {
			t.Errorf("record %d: key %q data %s", i, got[i].key, got[i].data)
		}
	}
	t.Logf("first record read back: %s", got[0].data)
}

func TestIntegrationMissingStream(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	c := kinesisLocal(t)
	name := testenv.UniqueName(t, "absent")
	stats, err := Run(ctx, Options{Stream: name, Client: c, Source: NewGeneratedSource(1), Count: 10})
	var nf *types.ResourceNotFoundException
	if !errors.As(err, &nf) || stats.Calls != 1 {
		t.Fatalf("err = %v after %d calls, want ResourceNotFoundException at once", err, stats.Calls)
	}
	t.Logf("error: %v", err)
}

func TestIntegrationRateOnSystemClock(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	c := kinesisLocal(t)
	stream := testenv.UniqueName(t, "produce")
	testenv.CreateStream(t, c, stream, 1)

	stats, err := Run(ctx, Options{Stream: stream, Client: c, Source: NewGeneratedSource(5), Count: 400, Rate: 200})
	if err != nil || stats.Sent != 400 {
		t.Fatalf("Run: sent %d, err %v", stats.Sent, err)
	}
	// The 400th record is due 399/200 s after the first; calls go at most every 100 ms.
	if stats.Elapsed < 1990*time.Millisecond || stats.Elapsed > 10*time.Second {
		t.Errorf("400 records at 200/s took %v, want about 2 s", stats.Elapsed)
	}
	t.Logf("produced: %+v (%.0f records/s)", stats, float64(stats.Sent)/stats.Elapsed.Seconds())
}
