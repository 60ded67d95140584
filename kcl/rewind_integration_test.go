package kcl_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/vmware/vmware-go-kcl-v2/clientlibrary/interfaces"

	"github.com/shardhose/shardhose/checkpoint"
	"github.com/shardhose/shardhose/internal/testenv"
	"github.com/shardhose/shardhose/record"
)

// The test binary doubles as the paused worker: with KCL_TEST_HELPER set it runs one worker
// (the library's or kcl's) in this process, so that the test can stop it with SIGSTOP, exactly
// as an OS pause, a long GC or a VM migration would.
const (
	envHelper = "KCL_TEST_HELPER" // "library" or "shardhose"
	envStream = "KCL_TEST_STREAM"
	envTable  = "KCL_TEST_TABLE"
)

func TestMain(m *testing.M) {
	if kind := os.Getenv(envHelper); kind != "" {
		os.Exit(runHelper(kind))
	}
	os.Exit(m.Run())
}

// helperWorkerID is the helper's worker id in the lease table.
const helperWorkerID = "helper-worker"

// helperDelay is how long the helper's processor works on a batch before checkpointing it: the
// window in which the test stops the process.
const helperDelay = 300 * time.Millisecond

// runHelper runs a worker whose processor prints "BATCH <last sequence number>" when handed a
// batch and "CHECKPOINT <sequence number> ok|error: ..." after checkpointing it, until stdin closes.
func runHelper(kind string) int {
	e := testenv.Endpoints()
	cfg := libConfig(e, os.Getenv(envStream), os.Getenv(envTable), helperWorkerID).WithMaxRecords(10)
	f := helperFactory{}
	var w worker
	switch kind {
	case "library":
		w = library(f, cfg)
	case "shardhose":
		w = shardhose(f, cfg)
	default:
		fmt.Fprintf(os.Stderr, "%s=%q: use library or shardhose\n", envHelper, kind)
		return 2
	}
	if err := w.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "start: %v\n", err)
		return 1
	}
	_, _ = io.Copy(io.Discard, os.Stdin)
	w.Shutdown()
	return 0
}

type helperFactory struct{}

func (helperFactory) CreateProcessor() interfaces.IRecordProcessor { return &helperProcessor{} }

type helperProcessor struct{}

func (*helperProcessor) Initialize(*interfaces.InitializationInput) {}

func (*helperProcessor) ProcessRecords(in *interfaces.ProcessRecordsInput) {
	if len(in.Records) == 0 {
		return
	}
	last := in.Records[len(in.Records)-1].SequenceNumber
	fmt.Printf("BATCH %s\n", aws.ToString(last))
	time.Sleep(helperDelay)
	if err := in.Checkpointer.Checkpoint(last); err != nil {
		fmt.Printf("CHECKPOINT %s error: %s\n", aws.ToString(last), strings.ReplaceAll(err.Error(), "\n", " "))
		return
	}
	fmt.Printf("CHECKPOINT %s ok\n", aws.ToString(last))
}

func (*helperProcessor) Shutdown(*interfaces.ShutdownInput) {}

// helperProcess is a running helper and the lines it printed.
type helperProcess struct {
	cmd    *exec.Cmd
	lines  chan string
	stderr syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startHelper(t *testing.T, kind, stream, table string) *helperProcess {
	h := &helperProcess{lines: make(chan string, 10000)}
	h.cmd = exec.Command(os.Args[0], "-test.run=^$")
	h.cmd.Env = append(os.Environ(), envHelper+"="+kind, envStream+"="+stream, envTable+"="+table)
	h.cmd.Stderr = &h.stderr
	stdin, err := h.cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := h.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := h.cmd.Start(); err != nil {
		t.Fatalf("start the helper worker: %v", err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			h.lines <- sc.Text()
		}
		close(h.lines)
	}()
	t.Cleanup(func() {
		_ = stdin.Close()
		_ = h.cmd.Process.Kill()
		_ = h.cmd.Wait()
		if t.Failed() {
			t.Logf("helper worker's log:\n%s", h.stderr.String())
		}
	})
	return h
}

// next returns the helper's next line starting with prefix, failing the test after d.
func (h *helperProcess) next(t *testing.T, prefix string, d time.Duration) string {
	t.Helper()
	timeout := time.After(d)
	for {
		select {
		case l, ok := <-h.lines:
			if !ok {
				t.Fatalf("helper worker exited while waiting for %q", prefix)
			}
			if strings.HasPrefix(l, prefix) {
				return l
			}
		case <-timeout:
			t.Fatalf("no %q line from the helper worker within %s", prefix, d)
		}
	}
}

// sample is one reading of the lease row.
type sample struct {
	at    time.Time
	pos   record.Position
	owner string
}

// poller reads a shard's row every 50 ms until stopped.
type poller struct {
	mu      sync.Mutex
	samples []sample
	stop    context.CancelFunc
	done    chan struct{}
}

func pollRow(t *testing.T, tbl *checkpoint.Table, shardID string) *poller {
	ctx, cancel := context.WithCancel(context.Background())
	p := &poller{stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			l, ok, err := tbl.Get(ctx, shardID)
			if err == nil && ok {
				p.mu.Lock()
				p.samples = append(p.samples, sample{at: time.Now(), pos: l.Checkpoint, owner: l.Owner})
				p.mu.Unlock()
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-p.done })
	return p
}

func (p *poller) last() (sample, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.samples) == 0 {
		return sample{}, 0
	}
	return p.samples[len(p.samples)-1], len(p.samples)
}

// rewind is the largest backward move of the checkpoint the poller saw.
type rewind struct {
	from, to   record.Position
	owner      string // who owned the row in the rewound reading
	visibleFor time.Duration
	samples    int // readings that showed a checkpoint behind the highest seen before
}

func (p *poller) worstRewind() rewind {
	p.mu.Lock()
	defer p.mu.Unlock()
	var high record.Position
	var worst rewind
	var firstBehind time.Time
	for _, s := range p.samples {
		if s.pos.Compare(high) < 0 {
			worst.samples++
			if firstBehind.IsZero() {
				firstBehind = s.at
			}
			worst.visibleFor = s.at.Sub(firstBehind)
			if worst.from.IsZero() || s.pos.Compare(worst.to) < 0 {
				worst.from, worst.to, worst.owner = high, s.pos, s.owner
			}
			continue
		}
		high = s.pos
	}
	return worst
}

// TestLibraryWorkerPausedPastItsLeaseRewindsTheCheckpoint shows the library's defect: its worker,
// stopped (SIGSTOP) with a batch in hand while another worker takes the shard over and checkpoints
// to its end, writes its old checkpoint unconditionally when it wakes, moving the new owner's
// checkpoint back.
func TestLibraryWorkerPausedPastItsLeaseRewindsTheCheckpoint(t *testing.T) {
	r, res := pausedWorker(t, "library")
	if r.samples == 0 {
		t.Fatalf("the library's worker did not move the checkpoint back (its checkpoint call said %q); this test shows that it does", res)
	}
}

// TestPausedWorkerNeverRewindsTheCheckpoint is the same scenario on kcl.Worker: the woken worker's
// Checkpoint call fails with ErrShutdown and the checkpoint never moves back.
func TestPausedWorkerNeverRewindsTheCheckpoint(t *testing.T) {
	r, res := pausedWorker(t, "shardhose")
	if r.samples > 0 {
		t.Errorf("the checkpoint moved back from %s to %s (%d readings, owner %q)", r.from, r.to, r.samples, r.owner)
	}
	if !strings.Contains(res, "error") || !strings.Contains(res, "shut down") {
		t.Errorf("the woken worker's checkpoint call said %q, want the ErrShutdown error", res)
	}
}

// pausedWorker runs the scenario with both workers of one kind and returns the worst rewind seen
// and the woken worker's checkpoint line.
func pausedWorker(t *testing.T, kind string) (rewind, string) {
	e := testenv.Require(t)
	stream, table := streamAndTable(t, e, 1)
	puts := putN(t, e, stream, 300)
	const shardID = "shardId-000000000000"
	seqs := shardRecords(puts)[shardID]
	index := map[string]int{}
	for i, s := range seqs {
		index[s] = i + 1 // records covered by a checkpoint at s
	}

	a := startHelper(t, kind, stream, table)
	for range 5 {
		a.next(t, "CHECKPOINT", 60*time.Second)
	}
	tbl := checkpoint.NewTable(testenv.DynamoDBClient(t, e), table, "", checkpoint.Options{})
	polls := pollRow(t, tbl, shardID)
	batch := a.next(t, "BATCH", 10*time.Second)
	if err := a.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatalf("SIGSTOP the helper: %v", err)
	}
	stoppedAt := time.Now()
	held := strings.TrimPrefix(batch, "BATCH ")
	t.Logf("%s worker stopped holding a batch up to record %d of %d", kind, index[held], len(seqs))

	b := newApp(-1)
	cfg := libConfig(e, stream, table, "new-owner")
	var w worker
	if kind == "library" {
		w = library(b, cfg)
	} else {
		w = shardhose(b, cfg)
	}
	stopB := start(t, w)
	waitFor(t, 60*time.Second, "the new owner to checkpoint the last record", func() bool {
		s, _ := polls.last()
		return s.owner == "new-owner" && s.pos.SequenceNumber == seqs[len(seqs)-1]
	})
	t.Logf("new owner took over and checkpointed all %d records %s after the pause", len(seqs), time.Since(stoppedAt).Round(time.Millisecond))

	if err := a.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatalf("SIGCONT the helper: %v", err)
	}
	res := a.next(t, "CHECKPOINT", 15*time.Second)
	t.Logf("woken %s worker: %s", kind, res)
	_, n := polls.last()
	waitFor(t, 10*time.Second, "40 more readings of the row (2 s)", func() bool { _, m := polls.last(); return m >= n+40 })
	stopB()
	polls.stop()
	<-polls.done

	r := polls.worstRewind()
	_, total := polls.last()
	if r.samples > 0 {
		t.Logf("REWIND %s: checkpoint moved back from record %d to record %d (%d records to be processed again), row owner %q, seen in %d of %d readings over %s",
			kind, index[r.from.SequenceNumber], index[r.to.SequenceNumber], index[r.from.SequenceNumber]-index[r.to.SequenceNumber], r.owner, r.samples, total, r.visibleFor.Round(time.Millisecond))
	} else {
		t.Logf("NO REWIND %s: %d readings every 50 ms, the checkpoint never moved back", kind, total)
	}
	return r, res
}
