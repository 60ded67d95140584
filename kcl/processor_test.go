package kcl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/vmware/vmware-go-kcl-v2/clientlibrary/interfaces"

	"github.com/shardhose/shardhose/checkpoint"
	"github.com/shardhose/shardhose/record"
)

// oneRow is a lease table of one row, as Get sees it.
type oneRow struct{ l checkpoint.Lease }

func (o oneRow) Get(context.Context, string) (checkpoint.Lease, bool, error) { return o.l, true, nil }

// scripted is a processor whose ProcessRecords and Shutdown run the test's functions.
type scripted struct {
	mu      sync.Mutex
	init    *interfaces.InitializationInput
	process func(*interfaces.ProcessRecordsInput)
	reasons []interfaces.ShutdownReason
	onStop  func(*interfaces.ShutdownInput)
}

func (s *scripted) CreateProcessor() interfaces.IRecordProcessor { return s }
func (s *scripted) Initialize(in *interfaces.InitializationInput) {
	s.mu.Lock()
	s.init = in
	s.mu.Unlock()
}
func (s *scripted) ProcessRecords(in *interfaces.ProcessRecordsInput) { s.process(in) }
func (s *scripted) Shutdown(in *interfaces.ShutdownInput) {
	s.mu.Lock()
	s.reasons = append(s.reasons, in.ShutdownReason)
	s.mu.Unlock()
	if s.onStop != nil {
		s.onStop(in)
	}
}

// ackLog records what the processor acknowledged to the consumer.
type ackLog struct {
	mu       sync.Mutex
	progress []record.Position
	done     int
}

func (a *ackLog) onProgress(p record.Position) {
	a.mu.Lock()
	a.progress = append(a.progress, p)
	a.mu.Unlock()
}
func (a *ackLog) onDone() { a.mu.Lock(); a.done++; a.mu.Unlock() }

func batchOf(seqs ...string) []record.Record {
	out := make([]record.Record, len(seqs))
	for i, s := range seqs {
		out[i] = record.Record{ShardID: "shard-1", SequenceNumber: s, PartitionKey: "pk", Data: []byte(s)}
	}
	return out
}

func newTestProcessor(t *testing.T, proc *scripted, cp string) (*shardProcessor, context.CancelFunc) {
	t.Helper()
	w := &Worker{
		factory: proc,
		log:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		shards:  map[string]*shardProcessor{},
		rows:    oneRow{checkpoint.Lease{ShardID: "shard-1", Checkpoint: record.Position{SequenceNumber: cp}}},
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	sp := newShardProcessor(ctx, w, "shard-1")
	w.shards["shard-1"] = sp
	return sp, cancel
}

// writeWhenAcked plays the consumer's checkpoint loop: whatever position is acknowledged is
// reported written shortly after.
func writeWhenAcked(sp *shardProcessor, pos func() record.Position) {
	go func() {
		time.Sleep(10 * time.Millisecond)
		sp.w.OnCheckpoint("stream", "shard-1", pos().SequenceNumber, pos().SubSequenceNumber)
	}()
}

func TestInitializeGetsTheStoredCheckpoint(t *testing.T) {
	proc := &scripted{process: func(*interfaces.ProcessRecordsInput) {}}
	sp, _ := newTestProcessor(t, proc, "100")
	if err := sp.waitReady(context.Background()); err != nil {
		t.Fatal(err)
	}
	proc.mu.Lock()
	defer proc.mu.Unlock()
	if proc.init == nil || proc.init.ShardId != "shard-1" || aws.ToString(proc.init.ExtendedSequenceNumber.SequenceNumber) != "100" {
		t.Fatalf("Initialize got %+v, want shard-1 at checkpoint 100", proc.init)
	}
}

func TestCheckpointInsideABatchReportsProgressAndWaitsForTheWrite(t *testing.T) {
	var a ackLog
	var sp *shardProcessor
	var cpErr error
	var returnedAfterWrite bool
	proc := &scripted{process: func(in *interfaces.ProcessRecordsInput) {
		writeWhenAcked(sp, func() record.Position { return record.Position{SequenceNumber: "102"} })
		cpErr = in.Checkpointer.Checkpoint(aws.String("102"))
		sp.mu.Lock()
		returnedAfterWrite = sp.written == record.Position{SequenceNumber: "102"}
		sp.mu.Unlock()
	}}
	sp, _ = newTestProcessor(t, proc, "100")
	if err := sp.HandleProgress(context.Background(), batchOf("101", "102", "103"), a.onProgress, a.onDone); err != nil {
		t.Fatal(err)
	}
	if cpErr != nil {
		t.Fatalf("Checkpoint(102) = %v", cpErr)
	}
	if !returnedAfterWrite {
		t.Error("Checkpoint returned before the checkpoint was written")
	}
	if a.done != 0 || len(a.progress) != 1 || a.progress[0] != (record.Position{SequenceNumber: "102"}) {
		t.Errorf("acknowledged done=%d progress=%v, want only progress to 102", a.done, a.progress)
	}
}

func TestCheckpointNilCoversEverythingHandedAndUnknownSequenceNumbersAreRefused(t *testing.T) {
	var a ackLog
	var sp *shardProcessor
	var unknown, nilErr, old error
	proc := &scripted{process: func(in *interfaces.ProcessRecordsInput) {
		unknown = in.Checkpointer.Checkpoint(aws.String("999"))
		writeWhenAcked(sp, func() record.Position { return record.Position{SequenceNumber: "103"} })
		nilErr = in.Checkpointer.Checkpoint(nil)
		old = in.Checkpointer.Checkpoint(aws.String("101"))
	}}
	sp, _ = newTestProcessor(t, proc, "100")
	if err := sp.HandleProgress(context.Background(), batchOf("101", "102", "103"), a.onProgress, a.onDone); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(unknown, ErrUnknownSequenceNumber) {
		t.Errorf("Checkpoint(999), never handed: %v, want ErrUnknownSequenceNumber", unknown)
	}
	if nilErr != nil || a.done != 1 {
		t.Errorf("Checkpoint(nil) = %v with done called %d times, want nil and once", nilErr, a.done)
	}
	if old != nil {
		t.Errorf("Checkpoint(101) after 103 was checkpointed = %v, want nil (nothing to do)", old)
	}
}

func TestCheckpointAfterTheLeaseIsLostIsRefused(t *testing.T) {
	var a ackLog
	var sp *shardProcessor
	var cancel context.CancelFunc
	var err error
	proc := &scripted{process: func(in *interfaces.ProcessRecordsInput) {
		go func() { time.Sleep(10 * time.Millisecond); cancel() }() // the consumer abandons the shard
		err = in.Checkpointer.Checkpoint(aws.String("101"))
	}}
	sp, cancel = newTestProcessor(t, proc, "100")
	if herr := sp.HandleProgress(context.Background(), batchOf("101"), a.onProgress, a.onDone); herr != nil {
		t.Fatal(herr)
	}
	if !errors.Is(err, ErrShutdown) {
		t.Fatalf("Checkpoint while the lease is lost = %v, want ErrShutdown", err)
	}
	sp.Close()
	if got := proc.reasons; len(got) != 1 || got[0] != interfaces.ZOMBIE {
		t.Errorf("shutdown reasons %v, want [ZOMBIE]", got)
	}
	if err := sp.cp.Checkpoint(aws.String("101")); !errors.Is(err, ErrShutdown) {
		t.Errorf("Checkpoint after Shutdown = %v, want ErrShutdown", err)
	}
	select {
	case <-sp.Settled():
	default:
		t.Error("not settled after Shutdown returned")
	}
}

func TestPanicShutsTheProcessorDownAsZombie(t *testing.T) {
	var a ackLog
	proc := &scripted{process: func(*interfaces.ProcessRecordsInput) { panic("bug") }}
	sp, _ := newTestProcessor(t, proc, "100")
	err := sp.HandleProgress(context.Background(), batchOf("101"), a.onProgress, a.onDone)
	if err == nil {
		t.Fatal("HandleProgress returned nil after the processor panicked")
	}
	if got := proc.reasons; len(got) != 1 || got[0] != interfaces.ZOMBIE {
		t.Errorf("shutdown reasons %v, want [ZOMBIE]", got)
	}
	if err := sp.HandleProgress(context.Background(), batchOf("102"), a.onProgress, a.onDone); !errors.Is(err, ErrShutdown) {
		t.Errorf("a batch after the panic: %v, want ErrShutdown", err)
	}
	if a.done != 0 {
		t.Errorf("a batch was acknowledged after a panic")
	}
}

func TestShardEndShutsDownWithTerminate(t *testing.T) {
	var a ackLog
	var sp *shardProcessor
	proc := &scripted{process: func(*interfaces.ProcessRecordsInput) {}}
	proc.onStop = func(in *interfaces.ShutdownInput) {
		writeWhenAcked(sp, func() record.Position { return record.Position{SequenceNumber: "102"} })
		if err := in.Checkpointer.Checkpoint(nil); err != nil {
			t.Errorf("Checkpoint(nil) at TERMINATE = %v", err)
		}
	}
	sp, _ = newTestProcessor(t, proc, "100")
	if err := sp.HandleProgress(context.Background(), batchOf("101", "102"), a.onProgress, a.onDone); err != nil {
		t.Fatal(err)
	}
	sp.ShardEnded()
	sp.Close() // the consumer closes the pipeline afterwards: no second Shutdown
	if got := proc.reasons; len(got) != 1 || got[0] != interfaces.TERMINATE {
		t.Errorf("shutdown reasons %v, want [TERMINATE]", got)
	}
	if a.done != 1 {
		t.Errorf("done called %d times, want once", a.done)
	}
}

// TestHundredsOfShardsCheckpointConcurrently drives 300 shards' processors at once through one
// Worker, each checkpointing every batch while a fake checkpoint loop reports the writes through
// the Worker's hook, as the consumer does.
func TestHundredsOfShardsCheckpointConcurrently(t *testing.T) {
	const shards, batches = 300, 20
	proc := &concurrentApp{}
	w := &Worker{
		factory: proc,
		log:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		shards:  map[string]*shardProcessor{},
		rows:    oneRow{checkpoint.Lease{}},
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(shards)
	for i := range shards {
		id := fmt.Sprintf("shard-%03d", i)
		sp := w.newPipeline(ctx, id).(*shardProcessor)
		acked := make(chan record.Position, batches)
		go func() { // the consumer's checkpoint loop for this shard
			for p := range acked {
				w.OnCheckpoint("stream", id, p.SequenceNumber, p.SubSequenceNumber)
			}
		}()
		go func() {
			defer wg.Done()
			defer close(acked)
			for b := range batches {
				seq := fmt.Sprintf("%d", 1000+b)
				batch := []record.Record{{ShardID: id, SequenceNumber: seq}}
				pos := batch[0].Position()
				if err := sp.HandleProgress(ctx, batch, func(record.Position) {}, func() { acked <- pos }); err != nil {
					t.Errorf("%s: %v", id, err)
					return
				}
			}
			sp.Close()
		}()
	}
	wg.Wait()
	if n := proc.checkpoints.Load(); n != shards*batches {
		t.Errorf("%d checkpoints succeeded, want %d", n, shards*batches)
	}
	w.mu.Lock()
	left := len(w.shards)
	w.mu.Unlock()
	if left != 0 {
		t.Errorf("%d shard processors still registered after all were shut down", left)
	}
}

type concurrentApp struct{ checkpoints atomic.Int64 }

func (a *concurrentApp) CreateProcessor() interfaces.IRecordProcessor { return concurrentProcessor{a} }

type concurrentProcessor struct{ a *concurrentApp }

func (concurrentProcessor) Initialize(*interfaces.InitializationInput) {}
func (concurrentProcessor) Shutdown(*interfaces.ShutdownInput)         {}
func (p concurrentProcessor) ProcessRecords(in *interfaces.ProcessRecordsInput) {
	if in.Checkpointer.Checkpoint(in.Records[len(in.Records)-1].SequenceNumber) == nil {
		p.a.checkpoints.Add(1)
	}
}

func TestInitializeWithoutACheckpointGetsAnEmptySequenceNumber(t *testing.T) {
	proc := &scripted{process: func(*interfaces.ProcessRecordsInput) {}}
	sp, _ := newTestProcessor(t, proc, "")
	if err := sp.waitReady(context.Background()); err != nil {
		t.Fatal(err)
	}
	proc.mu.Lock()
	defer proc.mu.Unlock()
	if proc.init.ExtendedSequenceNumber == nil || proc.init.ExtendedSequenceNumber.SequenceNumber == nil || *proc.init.ExtendedSequenceNumber.SequenceNumber != "" {
		t.Fatalf("Initialize got %+v, want a non-nil ExtendedSequenceNumber holding \"\" as the library passes", proc.init.ExtendedSequenceNumber)
	}
}
