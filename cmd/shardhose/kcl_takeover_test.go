package main

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	kclconfig "github.com/vmware/vmware-go-kcl-v2/clientlibrary/config"
	"github.com/vmware/vmware-go-kcl-v2/clientlibrary/interfaces"
	libworker "github.com/vmware/vmware-go-kcl-v2/clientlibrary/worker"
	kcllogger "github.com/vmware/vmware-go-kcl-v2/logger"

	"github.com/shardhose/shardhose/internal/testenv"
)

// budgetApp is a vmware-go-kcl-v2 application that checkpoints the records it is handed until it
// has checkpointed budget records in all.
type budgetApp struct {
	mu           sync.Mutex
	budget, done int
}

func (a *budgetApp) CreateProcessor() interfaces.IRecordProcessor { return budgetProcessor{a} }

type budgetProcessor struct{ a *budgetApp }

func (budgetProcessor) Initialize(*interfaces.InitializationInput) {}
func (budgetProcessor) Shutdown(*interfaces.ShutdownInput)         {}
func (p budgetProcessor) ProcessRecords(in *interfaces.ProcessRecordsInput) {
	p.a.mu.Lock()
	k := min(len(in.Records), p.a.budget-p.a.done)
	p.a.mu.Unlock()
	if k <= 0 || in.Checkpointer.Checkpoint(in.Records[k-1].SequenceNumber) != nil {
		return
	}
	p.a.mu.Lock()
	p.a.done += k
	p.a.mu.Unlock()
}

func (a *budgetApp) checkpointed() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.done
}

// TestDaemonTakesOverALibraryLeaseTable: a vmware-go-kcl-v2 application checkpoints half of the
// stream and stops; `shardhose run` pointed at its lease table delivers every record after the
// library's checkpoints to S3, and none at or before them.
func TestDaemonTakesOverALibraryLeaseTable(t *testing.T) {
	s := newE2EStack(t, 2)
	recs := makeRecords(0, 400)
	puts := testenv.PutRecords(t, s.kin, s.stream, recs)

	app := &budgetApp{budget: 200}
	cfg := kclconfig.NewKinesisClientLibConfigWithCredential(s.table, s.stream, s.env.Region, "library-worker",
		credentials.NewStaticCredentialsProvider("test", "test", "")).
		WithKinesisEndpoint(s.env.Kinesis).
		WithDynamoDBEndpoint(s.env.DynamoDB).
		WithInitialPositionInStream(kclconfig.TRIM_HORIZON).
		WithMaxRecords(50).
		WithIdleTimeBetweenReadsInMillis(200).
		WithFailoverTimeMillis(3000).
		WithLeaseRefreshPeriodMillis(1000).
		WithShardSyncIntervalMillis(1000).
		WithLogger(kcllogger.NewLogrusLoggerWithConfig(kcllogger.Configuration{EnableConsole: true, ConsoleLevel: kcllogger.Error}))
	lib := libworker.NewWorker(app, cfg)
	if err := lib.Start(); err != nil {
		t.Fatalf("start the library's worker: %v", err)
	}
	waitFor(t, 60*time.Second, "the library's worker to checkpoint 200 records", func() (bool, string) {
		n := app.checkpointed()
		return n == 200, "checkpointed " + itoa(n)
	})
	lib.Shutdown()
	cps := s.leases(t)

	var before, after []testenv.Rec
	for i, p := range puts {
		cp := cps[p.ShardID].Checkpoint
		if !cp.IsZero() && compareSeq(p.SequenceNumber, cp.SequenceNumber) <= 0 {
			before = append(before, recs[i])
		} else {
			after = append(after, recs[i])
		}
	}
	if len(before) != 200 {
		t.Fatalf("the library's checkpoints cover %d records, want 200", len(before))
	}

	d := startWorker(t, s.fleetConfig(t, fleetOptions{}), "daemon")
	waitFor(t, 60*time.Second, "every record after the library's checkpoints in S3", func() (bool, string) {
		counts, _ := s.delivered(t)
		n, sample := missing(after, counts)
		return n == 0, fmt.Sprintf("%d missing, e.g. %v", n, sample)
	})
	d.stop(t, "daemon")
	counts, _ := s.delivered(t)
	for _, r := range before {
		if counts[string(r.Data)] > 0 {
			t.Errorf("record %s, checkpointed by the library, was delivered by the daemon", r.Data)
		}
	}
	t.Logf("daemon delivered the %d records after the library's checkpoints, none of the %d before", len(after), len(before))
}
