package consumer

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/shardhose/shardhose/internal/clock"
	"github.com/shardhose/shardhose/internal/outage"
	"github.com/shardhose/shardhose/internal/retry"
	"github.com/shardhose/shardhose/record"
	"github.com/shardhose/shardhose/sinks/sinktest"
)

// failingStream answers GetRecords with the errors in fail, one per call, then with the shard's
// end. Only the calls a shardReader makes are implemented.
type failingStream struct {
	KinesisAPI
	mu   sync.Mutex
	fail []error
}

func (f *failingStream) GetShardIterator(context.Context, *kinesis.GetShardIteratorInput, ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error) {
	return &kinesis.GetShardIteratorOutput{ShardIterator: aws.String("it")}, nil
}

func (f *failingStream) GetRecords(context.Context, *kinesis.GetRecordsInput, ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.fail) > 0 {
		err := f.fail[0]
		f.fail = f.fail[1:]
		return nil, err
	}
	return &kinesis.GetRecordsOutput{}, nil // no NextShardIterator: the shard ended
}

func jsonLines(t *testing.T, logs string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not JSON: %q", line)
		}
		out = append(out, m)
	}
	return out
}

// A stream that fails is logged as one outage with its recovery, not a line per failed read;
// throttling is not an outage.
func TestReaderReportsAStreamOutageOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs sinktest.LogBuffer
		log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
		fail := []error{&types.ProvisionedThroughputExceededException{Message: aws.String("slow down")}}
		for range 6 {
			fail = append(fail, errors.New("dial tcp 127.0.0.1:4567: connect: connection refused"))
		}
		r := &shardReader{
			api: &failingStream{fail: fail}, streamName: "orders", shardID: "shardId-000000000001",
			clock: clock.Real(), log: log, pollInterval: time.Second, limit: 100,
			backoff: retry.Policy{Initial: 500 * time.Millisecond, Max: 10 * time.Second, Multiplier: 2},
			health:  outage.New(outage.Options{Dependency: "kinesis", Resource: "orders", Logger: log}),
		}
		ended, err := r.run(t.Context(), startPosition{}, func(context.Context, []record.Record) error { return nil })
		if err != nil || !ended {
			t.Fatalf("run = %v, %v; want the shard's end", ended, err)
		}
		got := jsonLines(t, logs.String())
		if len(got) != 2 || got[0]["msg"] != outage.MsgFailing || got[0]["level"] != "WARN" || got[0]["shard"] != "shardId-000000000001" ||
			got[0]["operation"] != "GetRecords" || got[0]["dependency"] != "kinesis" ||
			got[1]["msg"] != outage.MsgRecovered || got[1]["failures"] != 6.0 {
			t.Fatalf("logged %v; want one line for the first failed read naming the shard, then one recovery after 6 failures", got)
		}
	})
}
