package kcl_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	kclconfig "github.com/vmware/vmware-go-kcl-v2/clientlibrary/config"
	"github.com/vmware/vmware-go-kcl-v2/clientlibrary/interfaces"
	libworker "github.com/vmware/vmware-go-kcl-v2/clientlibrary/worker"

	"github.com/shardhose/shardhose/checkpoint"
	"github.com/shardhose/shardhose/internal/testenv"
	"github.com/shardhose/shardhose/kcl"
)

// worker is what both the library's worker and kcl.Worker offer.
type worker interface {
	Start() error
	Shutdown()
}

type newWorker func(interfaces.IRecordProcessorFactory, *kclconfig.KinesisClientLibConfiguration) worker

func library(f interfaces.IRecordProcessorFactory, c *kclconfig.KinesisClientLibConfiguration) worker {
	return libworker.NewWorker(f, c)
}

func shardhose(f interfaces.IRecordProcessorFactory, c *kclconfig.KinesisClientLibConfiguration) worker {
	return kcl.NewWorker(f, c)
}

// start starts w and returns its Shutdown, which is also called at the end of the test; calling
// it again does nothing.
func start(t *testing.T, w worker) func() {
	t.Helper()
	if err := w.Start(); err != nil {
		t.Fatalf("start worker: %v", err)
	}
	var once sync.Once
	stop := func() { once.Do(w.Shutdown) }
	t.Cleanup(stop)
	return stop
}

// streamAndTable makes a stream and names a lease table that is deleted after the test.
func streamAndTable(t *testing.T, e testenv.Env, shards int) (stream, table string) {
	stream = testenv.UniqueName(t, "kcl")
	testenv.CreateStream(t, testenv.KinesisClient(t, e), stream, shards)
	table = testenv.UniqueName(t, "kcl-leases")
	ddb := testenv.DynamoDBClient(t, e)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = ddb.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(table)})
	})
	return stream, table
}

// TestMigrationFromTheLibrary: an application on vmware-go-kcl-v2's worker checkpoints half of a
// 2,000-record stream and stops; the same application on kcl.Worker continues from those
// checkpoints: every record after them is processed, none at or before them, per shard.
func TestMigrationFromTheLibrary(t *testing.T) {
	testHandover(t, library, shardhose)
}

// TestRollbackToTheLibrary is the reverse: kcl.Worker's rows are read by the library's worker.
func TestRollbackToTheLibrary(t *testing.T) {
	testHandover(t, shardhose, library)
}

func testHandover(t *testing.T, first, second newWorker) {
	e := testenv.Require(t)
	stream, table := streamAndTable(t, e, 2)
	puts := putN(t, e, stream, 2000)
	byShard := shardRecords(puts)
	ctx := t.Context()

	a1 := newApp(1000)
	w1 := first(a1, libConfig(e, stream, table, "first-worker"))
	if err := w1.Start(); err != nil {
		t.Fatalf("start the first worker: %v", err)
	}
	waitFor(t, 90*time.Second, "the first worker to checkpoint 1,000 records", func() bool { return a1.checkpointedCount() == 1000 })
	w1.Shutdown()

	tbl := checkpoint.NewTable(testenv.DynamoDBClient(t, e), table, "", checkpoint.Options{})
	cps := checkpoints(t, ctx, tbl)
	checkpointed := 0
	for shard, seqs := range byShard {
		before, _ := afterCheckpoint(seqs, cps[shard].Checkpoint)
		checkpointed += len(before)
		t.Logf("shard %s: %d records, first worker's checkpoint %s covers %d", shard, len(seqs), cps[shard].Checkpoint, len(before))
	}
	if checkpointed != 1000 {
		t.Fatalf("the first worker's checkpoints cover %d records, want 1000", checkpointed)
	}

	a2 := newApp(-1)
	w2 := second(a2, libConfig(e, stream, table, "second-worker"))
	stop := start(t, w2)
	waitFor(t, 90*time.Second, "the second worker to process every record after the checkpoints", func() bool {
		for shard, seqs := range byShard {
			_, after := afterCheckpoint(seqs, cps[shard].Checkpoint)
			for _, s := range after {
				if a2.handed(shard, s) == 0 {
					return false
				}
			}
		}
		return true
	})
	waitFor(t, 30*time.Second, "the second worker to checkpoint every record", func() bool {
		return a2.checkpointedCount() >= 1000
	})
	stop()
	for shard, seqs := range byShard {
		before, after := afterCheckpoint(seqs, cps[shard].Checkpoint)
		for _, s := range before {
			if n := a2.handed(shard, s); n > 0 {
				t.Errorf("shard %s: record %s, at or before the first worker's checkpoint, was processed again (%d times)", shard, s, n)
			}
		}
		t.Logf("shard %s: second worker processed the %d records after the checkpoint, none of the %d before", shard, len(after), len(before))
	}
	final := checkpoints(t, ctx, tbl)
	for shard, seqs := range byShard {
		if got, want := final[shard].Checkpoint.SequenceNumber, seqs[len(seqs)-1]; got != want {
			t.Errorf("shard %s: final checkpoint %q, want the last record %s", shard, got, want)
		}
	}
	if len(a2.errs) > 0 {
		t.Errorf("second worker's checkpoints failed: %v", a2.errs)
	}
}
