package kcl_test

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/vmware/vmware-go-kcl-v2/clientlibrary/interfaces"

	"github.com/shardhose/shardhose/checkpoint"
	"github.com/shardhose/shardhose/consumer/kpl"
	"github.com/shardhose/shardhose/internal/testenv"
	"github.com/shardhose/shardhose/kcl"
	"github.com/shardhose/shardhose/record"
)

// owners returns the owner of every row.
func owners(t *testing.T, tbl *checkpoint.Table) map[string]string {
	out := map[string]string{}
	for id, l := range checkpoints(t, t.Context(), tbl) {
		out[id] = l.Owner
	}
	return out
}

// allOwnedBy reports whether the table exists with rows for shards shards, all owned by owner.
func allOwnedBy(t *testing.T, tbl *checkpoint.Table, shards int, owner string) bool {
	ls, err := tbl.List(t.Context())
	if err != nil || len(ls) < shards {
		return false // the table may not exist yet
	}
	for _, l := range ls {
		if l.Owner != owner {
			return false
		}
	}
	return true
}

// TestMixedFleetWaitsForTheLibrarysLeases: during a rolling deploy a kcl.Worker (lease stealing
// on) joins a library worker that holds every shard. It takes nothing while the library worker
// renews (the library renews by rewriting LeaseTimeout, which counts as a sign of life), and
// takes the shards only after the library worker dies (SIGKILL) and its leases expire, resuming
// from its checkpoints.
func TestMixedFleetWaitsForTheLibrarysLeases(t *testing.T) {
	e := testenv.Require(t)
	stream, table := streamAndTable(t, e, 2)
	puts := putN(t, e, stream, 200)
	byShard := shardRecords(puts)
	tbl := checkpoint.NewTable(testenv.DynamoDBClient(t, e), table, "", checkpoint.Options{})

	lib := startHelper(t, "library", stream, table)
	waitFor(t, 60*time.Second, "the library worker to hold both shards", func() bool {
		return allOwnedBy(t, tbl, 2, helperWorkerID)
	})
	lib.next(t, "CHECKPOINT", 30*time.Second)

	b := newApp(-1)
	cfg := libConfig(e, stream, table, "new-owner").WithLeaseStealing(true)
	start(t, kcl.NewWorker(b, cfg))
	// Two lease durations (2 × 3 s) with the library worker alive: kcl takes nothing.
	watchUntil := time.Now().Add(2 * time.Duration(cfg.FailoverTimeMillis) * time.Millisecond)
	for time.Now().Before(watchUntil) {
		for id, o := range owners(t, tbl) {
			if o != helperWorkerID {
				t.Fatalf("shard %s was taken by %q while the library worker was renewing it", id, o)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}

	if err := lib.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("SIGKILL the library worker: %v", err)
	}
	_ = lib.cmd.Wait()
	killed := time.Now()
	cps := checkpoints(t, t.Context(), tbl)
	waitFor(t, 30*time.Second, "kcl to take both shards after the library worker died", func() bool {
		return allOwnedBy(t, tbl, 2, "new-owner")
	})
	t.Logf("kcl took both shards %s after the library worker was killed (lease duration %d ms)", time.Since(killed).Round(time.Millisecond), cfg.FailoverTimeMillis)
	waitFor(t, 60*time.Second, "kcl to process every record after the library's checkpoints", func() bool {
		for shard, seqs := range byShard {
			_, after := afterCheckpoint(seqs, cps[shard].Checkpoint)
			for _, s := range after {
				if b.handed(shard, s) == 0 {
					return false
				}
			}
		}
		return true
	})
	for shard, seqs := range byShard {
		before, _ := afterCheckpoint(seqs, cps[shard].Checkpoint)
		for _, s := range before {
			if b.handed(shard, s) > 0 {
				t.Errorf("shard %s: record %s, checkpointed by the library worker, was processed again", shard, s)
			}
		}
	}
}

// panicky panics in the first ProcessRecords call of the whole application, then behaves.
type panicky struct {
	*app
	panicked atomic.Bool
	mu       sync.Mutex
	first    map[string]string // shard -> first sequence number of the batch that panicked
}

func (p *panicky) CreateProcessor() interfaces.IRecordProcessor {
	return &panickyProcessor{appProcessor: appProcessor{app: p.app}, p: p}
}

type panickyProcessor struct {
	appProcessor
	p *panicky
}

func (pp *panickyProcessor) ProcessRecords(in *interfaces.ProcessRecordsInput) {
	if len(in.Records) > 0 && pp.p.panicked.CompareAndSwap(false, true) {
		pp.p.mu.Lock()
		pp.p.first[pp.shard] = *in.Records[0].SequenceNumber
		pp.p.mu.Unlock()
		panic("processor bug")
	}
	pp.appProcessor.ProcessRecords(in)
}

// TestPanicInProcessorRereadsTheShard: a panic in ProcessRecords does not stop the worker; that
// shard's processor is shut down (ZOMBIE: it must not checkpoint) and the shard is read again
// from its checkpoint, so the records of the batch that panicked are processed.
func TestPanicInProcessorRereadsTheShard(t *testing.T) {
	e := testenv.Require(t)
	stream, table := streamAndTable(t, e, 1)
	puts := putN(t, e, stream, 100)
	seqs := shardRecords(puts)["shardId-000000000000"]

	p := &panicky{app: newApp(-1), first: map[string]string{}}
	start(t, kcl.NewWorker(p, libConfig(e, stream, table, "worker")))
	waitFor(t, 60*time.Second, "every record to be processed and checkpointed after the panic", func() bool {
		return p.checkpointedCount() >= len(seqs)
	})
	for _, s := range seqs {
		if p.handed("shardId-000000000000", s) == 0 {
			t.Errorf("record %s was never processed after the panic", s)
		}
	}
	p.mu.Lock()
	firstSeq := p.first["shardId-000000000000"]
	p.mu.Unlock()
	if firstSeq != seqs[0] {
		t.Errorf("the panicking batch started at %s, want the first record %s", firstSeq, seqs[0])
	}
	p.app.mu.Lock()
	reasons := strings.Join(p.app.reasons["shardId-000000000000"], ",")
	p.app.mu.Unlock()
	if !strings.HasPrefix(reasons, "ZOMBIE") {
		t.Errorf("shutdown reasons of the shard's processors = %q, want ZOMBIE first (the processor that panicked)", reasons)
	}
}

// TestReshardTerminatesTheParentAndReadsTheChildren: after a split, the parent's processor is
// shut down with TERMINATE once it has read the parent to its end, its Checkpoint(nil) lets the
// worker write SHARD_END, and the children's records are processed.
func TestReshardTerminatesTheParentAndReadsTheChildren(t *testing.T) {
	e := testenv.Require(t)
	stream, table := streamAndTable(t, e, 1)
	const parent = "shardId-000000000000"
	first := putN(t, e, stream, 100)
	a := newApp(-1)
	start(t, kcl.NewWorker(a, libConfig(e, stream, table, "worker")))
	waitFor(t, 60*time.Second, "the parent's records to be checkpointed", func() bool { return a.checkpointedCount() >= len(first) })

	kc := testenv.KinesisClient(t, e)
	if _, err := kc.SplitShard(t.Context(), &kinesis.SplitShardInput{
		StreamName:         aws.String(stream),
		ShardToSplit:       aws.String(parent),
		NewStartingHashKey: aws.String("170141183460469231731687303715884105728"),
	}); err != nil {
		t.Fatalf("split %s: %v", parent, err)
	}
	testenv.WaitStreamActive(t, kc, stream)
	second := putN(t, e, stream, 100)
	children := map[string]bool{}
	for _, p := range second {
		children[p.ShardID] = true
	}
	if len(children) != 2 || children[parent] {
		t.Fatalf("records after the split landed in %v, want the two children", children)
	}

	waitFor(t, 60*time.Second, "every child record to be processed", func() bool {
		for _, p := range second {
			if a.handed(p.ShardID, p.SequenceNumber) == 0 {
				return false
			}
		}
		return true
	})
	tbl := checkpoint.NewTable(testenv.DynamoDBClient(t, e), table, "", checkpoint.Options{})
	waitFor(t, 30*time.Second, "the parent's row to say SHARD_END", func() bool {
		l, ok, err := tbl.Get(t.Context(), parent)
		return err == nil && ok && l.ShardEnd
	})
	a.mu.Lock()
	reasons := strings.Join(a.reasons[parent], ",")
	a.mu.Unlock()
	if reasons != "TERMINATE" {
		t.Errorf("the parent's processor was shut down with %q, want TERMINATE", reasons)
	}
	for _, p := range first {
		if n := a.handed(parent, p.SequenceNumber); n != 1 {
			t.Errorf("parent record %s processed %d times, want once", p.SequenceNumber, n)
		}
	}
}

// TestKPLAggregatesReachTheProcessorSplit: KPL aggregates are handed to ProcessRecords as their
// user records (sharing the aggregate's sequence number), each once, and a Checkpoint of that
// sequence number covers the whole aggregate: the final checkpoint is the last user record of the
// last aggregate.
func TestKPLAggregatesReachTheProcessorSplit(t *testing.T) {
	e := testenv.Require(t)
	stream, table := streamAndTable(t, e, 1)
	var recs []testenv.Rec
	var users []string
	for i := range 20 {
		var urs []kpl.UserRecord
		for j := range 10 {
			d := fmt.Sprintf(`{"agg":%d,"user":%d}`, i, j)
			urs = append(urs, kpl.UserRecord{PartitionKey: fmt.Sprintf("pk-%d", j), Data: []byte(d)})
			users = append(users, d)
		}
		recs = append(recs, testenv.Rec{PartitionKey: "pk", Data: kpl.Aggregate(urs)})
	}
	puts := testenv.PutRecords(t, testenv.KinesisClient(t, e), stream, recs)
	last := puts[len(puts)-1]

	a := newApp(-1)
	start(t, kcl.NewWorker(a, libConfig(e, stream, table, "worker").WithMaxRecords(7)))
	tbl := checkpoint.NewTable(testenv.DynamoDBClient(t, e), table, "", checkpoint.Options{})
	want := record.Position{SequenceNumber: last.SequenceNumber, SubSequenceNumber: 9}
	waitFor(t, 60*time.Second, "the checkpoint to reach the last aggregate's last user record", func() bool {
		l, ok, err := tbl.Get(t.Context(), last.ShardID)
		return err == nil && ok && l.Checkpoint == want
	})
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, u := range users {
		if n := a.data[u]; n != 1 {
			t.Errorf("user record %s handed %d times, want once", u, n)
		}
	}
	if len(a.errs) > 0 {
		t.Errorf("checkpoints failed: %v", a.errs)
	}
}

// blocking blocks in ProcessRecords until release is closed.
type blocking struct {
	*app
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func (b *blocking) CreateProcessor() interfaces.IRecordProcessor {
	return &blockingProcessor{appProcessor: appProcessor{app: b.app}, b: b}
}

type blockingProcessor struct {
	appProcessor
	b *blocking
}

func (bp *blockingProcessor) ProcessRecords(in *interfaces.ProcessRecordsInput) {
	bp.b.once.Do(func() { close(bp.b.entered) })
	<-bp.b.release
}

// TestShutdownReturnsWithABlockedProcessor: Shutdown gives a processor that never returns
// ShutdownGraceMillis, then returns and releases the lease (the library's waits for ever).
func TestShutdownReturnsWithABlockedProcessor(t *testing.T) {
	e := testenv.Require(t)
	stream, table := streamAndTable(t, e, 1)
	putN(t, e, stream, 10)
	b := &blocking{app: newApp(-1), entered: make(chan struct{}), release: make(chan struct{})}
	defer close(b.release)
	cfg := libConfig(e, stream, table, "worker")
	cfg.ShutdownGraceMillis = 2000
	w := kcl.NewWorker(b, cfg)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-b.entered:
	case <-time.After(60 * time.Second):
		t.Fatal("the processor was never handed records")
	}
	done := make(chan struct{})
	began := time.Now()
	go func() { w.Shutdown(); close(done) }()
	select {
	case <-done:
		t.Logf("Shutdown returned %s after it was called, with the processor still blocked", time.Since(began).Round(time.Millisecond))
	case <-time.After(30 * time.Second):
		t.Fatal("Shutdown did not return within 30 s with a blocked processor (ShutdownGraceMillis 2000)")
	}
	tbl := checkpoint.NewTable(testenv.DynamoDBClient(t, e), table, "", checkpoint.Options{})
	l, _, err := tbl.Get(t.Context(), "shardId-000000000000")
	if err != nil {
		t.Fatal(err)
	}
	if l.Owner != "" {
		t.Errorf("the lease is still held by %q after Shutdown, want it released", l.Owner)
	}
}
