package kcl_test

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	kclconfig "github.com/vmware/vmware-go-kcl-v2/clientlibrary/config"
	"github.com/vmware/vmware-go-kcl-v2/clientlibrary/interfaces"
	kcllogger "github.com/vmware/vmware-go-kcl-v2/logger"

	"github.com/shardhose/shardhose/checkpoint"
	"github.com/shardhose/shardhose/internal/testenv"
	"github.com/shardhose/shardhose/record"
)

// libConfig is one configuration both workers are run with: the library's own type, with the
// local stack's endpoints and short lease times.
func libConfig(e testenv.Env, stream, table, workerID string) *kclconfig.KinesisClientLibConfiguration {
	return kclconfig.NewKinesisClientLibConfigWithCredential(table, stream, e.Region, workerID,
		credentials.NewStaticCredentialsProvider("test", "test", "")).
		WithKinesisEndpoint(e.Kinesis).
		WithDynamoDBEndpoint(e.DynamoDB).
		WithTableName(table).
		WithInitialPositionInStream(kclconfig.TRIM_HORIZON).
		WithMaxRecords(100).
		WithIdleTimeBetweenReadsInMillis(200).
		WithFailoverTimeMillis(3000).
		WithLeaseRefreshPeriodMillis(1000).
		WithShardSyncIntervalMillis(1000).
		WithLogger(kcllogger.NewLogrusLoggerWithConfig(kcllogger.Configuration{EnableConsole: true, ConsoleLevel: kcllogger.Error}))
}

// app is the application under test: its processors record every record they are handed and
// checkpoint the last record of each batch, up to a budget of records in all (-1: no budget).
type app struct {
	mu           sync.Mutex
	seen         map[string]int // shard/sequence -> times handed
	data         map[string]int // record data -> times handed
	budget       int
	checkpointed int
	reserved     int // records of checkpoints under way, within the budget
	errs         []string
	reasons      map[string][]string // shard -> shutdown reasons
	behind       []int64
}

func newApp(budget int) *app {
	return &app{seen: map[string]int{}, data: map[string]int{}, budget: budget, reasons: map[string][]string{}}
}

func (a *app) CreateProcessor() interfaces.IRecordProcessor { return &appProcessor{app: a} }

type appProcessor struct {
	app   *app
	shard string
}

func (p *appProcessor) Initialize(in *interfaces.InitializationInput) { p.shard = in.ShardId }

func (p *appProcessor) ProcessRecords(in *interfaces.ProcessRecordsInput) {
	a := p.app
	a.mu.Lock()
	for _, r := range in.Records {
		a.seen[p.shard+"/"+aws.ToString(r.SequenceNumber)]++
		a.data[string(r.Data)]++
	}
	a.behind = append(a.behind, in.MillisBehindLatest)
	k := len(in.Records)
	if a.budget >= 0 {
		// Reserved under the lock: two shards' processors run at once, and both taking the
		// last of the budget would checkpoint more than it.
		k = min(k, a.budget-a.checkpointed-a.reserved)
	}
	if k <= 0 {
		a.mu.Unlock()
		return
	}
	a.reserved += k
	a.mu.Unlock()
	err := in.Checkpointer.Checkpoint(in.Records[k-1].SequenceNumber)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.reserved -= k
	if err != nil {
		a.errs = append(a.errs, err.Error())
		return
	}
	a.checkpointed += k
}

func (p *appProcessor) Shutdown(in *interfaces.ShutdownInput) {
	a := p.app
	a.mu.Lock()
	a.reasons[p.shard] = append(a.reasons[p.shard], aws.ToString(interfaces.ShutdownReasonMessage(in.ShutdownReason)))
	a.mu.Unlock()
	if in.ShutdownReason == interfaces.TERMINATE {
		_ = in.Checkpointer.Checkpoint(nil)
	}
}

func (a *app) checkpointedCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.checkpointed
}

func (a *app) handed(shard, seq string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.seen[shard+"/"+seq]
}

// shardRecords groups what was put by shard, in sequence order.
func shardRecords(puts []testenv.Put) map[string][]string {
	out := map[string][]string{}
	for _, p := range puts {
		out[p.ShardID] = append(out[p.ShardID], p.SequenceNumber)
	}
	for _, seqs := range out {
		sort.Slice(seqs, func(i, j int) bool { return record.CompareSequenceNumbers(seqs[i], seqs[j]) < 0 })
	}
	return out
}

func putN(t *testing.T, e testenv.Env, stream string, n int) []testenv.Put {
	recs := make([]testenv.Rec, n)
	for i := range recs {
		recs[i] = testenv.Rec{PartitionKey: fmt.Sprintf("key-%d", i), Data: fmt.Appendf(nil, `{"n":%d}`, i)}
	}
	return testenv.PutRecords(t, testenv.KinesisClient(t, e), stream, recs)
}

// checkpoints reads the table's checkpoint of every shard.
func checkpoints(t *testing.T, ctx context.Context, tbl *checkpoint.Table) map[string]checkpoint.Lease {
	t.Helper()
	ls, err := tbl.List(ctx)
	if err != nil {
		t.Fatalf("list lease table %s: %v", tbl.Name(), err)
	}
	out := map[string]checkpoint.Lease{}
	for _, l := range ls {
		out[l.ShardID] = l
	}
	return out
}

// waitFor polls cond every 100 ms until it holds, failing the test with what after the deadline.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// afterCheckpoint returns the records of seqs after cp (all of them when cp is zero).
func afterCheckpoint(seqs []string, cp record.Position) (before, after []string) {
	for _, s := range seqs {
		if !cp.IsZero() && record.CompareSequenceNumbers(s, cp.SequenceNumber) <= 0 {
			before = append(before, s)
		} else {
			after = append(after, s)
		}
	}
	return before, after
}
