package consumer

// Unit tests of the lease loop: whole Consumers run against an in-memory lease table with the
// fencing rules of checkpoint.Table and an in-memory stream, inside testing/synctest bubbles, so
// lease durations and renewal intervals pass in virtual time and every figure is exact.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/shardhose/shardhose/checkpoint"
	"github.com/shardhose/shardhose/config"
	"github.com/shardhose/shardhose/record"
	"github.com/shardhose/shardhose/sinks"
)

// ---- an in-memory lease table ----

// memLeases holds the rows of a lease table shared by the workers of one test.
type memLeases struct {
	mu      sync.Mutex
	rows    map[string]checkpoint.Lease
	creates int // CreateIfAbsent calls
}

func newMemLeases(rows ...checkpoint.Lease) *memLeases {
	m := &memLeases{rows: map[string]checkpoint.Lease{}}
	for _, r := range rows {
		m.rows[r.ShardID] = r
	}
	return m
}

// as returns worker's handle on the table.
func (m *memLeases) as(worker string) LeaseTable { return &memLeaseTable{m: m, me: worker} }

func (m *memLeases) get(id string) (checkpoint.Lease, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	l, ok := m.rows[id]
	return l, ok
}

// owners counts the open (not SHARD_END) leases per owner; "" counts free ones.
func (m *memLeases) owners() map[string]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := map[string]int{}
	for _, l := range m.rows {
		if !l.ShardEnd {
			n[l.Owner]++
		}
	}
	return n
}

// steady fails the test if any lease changes owner within d.
func (m *memLeases) steady(t *testing.T, d time.Duration) {
	t.Helper()
	owners := func() map[string]string {
		m.mu.Lock()
		defer m.mu.Unlock()
		o := map[string]string{}
		for id, l := range m.rows {
			o[id] = l.Owner
		}
		return o
	}
	first := owners()
	for end := time.Now().Add(d); time.Now().Before(end); {
		time.Sleep(100 * time.Millisecond)
		if now := owners(); !maps.Equal(now, first) {
			t.Fatalf("a lease moved after the leases were balanced: %v, then %v", first, now)
		}
	}
}

type memLeaseTable struct {
	m  *memLeases
	me string
}

var _ LeaseTable = (*memLeaseTable)(nil)

func (t *memLeaseTable) Ensure(context.Context) error { return nil }

func (t *memLeaseTable) List(context.Context) ([]checkpoint.Lease, error) {
	t.m.mu.Lock()
	defer t.m.mu.Unlock()
	out := make([]checkpoint.Lease, 0, len(t.m.rows))
	for _, l := range t.m.rows {
		out = append(out, l)
	}
	return out, nil
}

func (t *memLeaseTable) CreateIfAbsent(_ context.Context, id string, parents []string) error {
	t.m.mu.Lock()
	defer t.m.mu.Unlock()
	t.m.creates++
	if _, ok := t.m.rows[id]; !ok {
		t.m.rows[id] = checkpoint.Lease{ShardID: id, ParentShardIDs: slices.Clone(parents)}
	}
	return nil
}

// fenced applies write to the row when its owner and counter are still those of seen.
func (t *memLeaseTable) fenced(id, owner string, counter int64, write func(*checkpoint.Lease) error) (checkpoint.Lease, error) {
	t.m.mu.Lock()
	defer t.m.mu.Unlock()
	row, ok := t.m.rows[id]
	if !ok || row.Owner != owner || row.Counter != counter {
		return checkpoint.Lease{}, fmt.Errorf("lease %s: %w", id, checkpoint.ErrLeaseLost)
	}
	if err := write(&row); err != nil {
		return checkpoint.Lease{}, err
	}
	row.Counter++
	t.m.rows[id] = row
	return row, nil
}

func (t *memLeaseTable) Take(_ context.Context, seen checkpoint.Lease) (checkpoint.Lease, error) {
	return t.fenced(seen.ShardID, seen.Owner, seen.Counter, func(l *checkpoint.Lease) error {
		if l.Owner != "" && l.Owner != t.me {
			l.OwnerSwitchesSinceCheckpoint++
		}
		l.Owner, l.ClaimRequest = t.me, ""
		return nil
	})
}

func (t *memLeaseTable) Renew(_ context.Context, held checkpoint.Lease) (checkpoint.Lease, error) {
	return t.fenced(held.ShardID, t.me, held.Counter, func(*checkpoint.Lease) error { return nil })
}

func (t *memLeaseTable) CheckpointDelivered(_ context.Context, held checkpoint.Lease, pos record.Position, shardEnd bool, delivered map[string]record.Position) (checkpoint.Lease, error) {
	return t.fenced(held.ShardID, t.me, held.Counter, func(l *checkpoint.Lease) error {
		switch {
		case l.ShardEnd:
			return checkpoint.ErrCheckpointRefused
		case shardEnd:
			l.ShardEnd, l.Checkpoint = true, record.Position{}
		case pos.Compare(l.Checkpoint) < 0:
			return checkpoint.ErrCheckpointRefused
		default:
			l.Checkpoint = pos
		}
		if len(delivered) > 0 {
			l.Delivered = maps.Clone(l.Delivered)
			if l.Delivered == nil {
				l.Delivered = map[string]record.Position{}
			}
			maps.Copy(l.Delivered, delivered)
		}
		l.OwnerSwitchesSinceCheckpoint = 0
		return nil
	})
}

func (t *memLeaseTable) Release(_ context.Context, held checkpoint.Lease) error {
	_, err := t.fenced(held.ShardID, t.me, held.Counter, func(l *checkpoint.Lease) error {
		l.Owner = ""
		return nil
	})
	return err
}

func (t *memLeaseTable) Claim(_ context.Context, seen checkpoint.Lease) error {
	t.m.mu.Lock()
	defer t.m.mu.Unlock()
	row, ok := t.m.rows[seen.ShardID]
	if !ok || seen.Owner == "" || seen.Owner == t.me || row.Owner != seen.Owner || (row.ClaimRequest != "" && row.ClaimRequest != t.me) {
		return fmt.Errorf("claim %s: %w", seen.ShardID, checkpoint.ErrLeaseLost)
	}
	row.ClaimRequest = t.me
	t.m.rows[seen.ShardID] = row
	return nil
}

func (t *memLeaseTable) Delete(_ context.Context, seen checkpoint.Lease) error {
	t.m.mu.Lock()
	defer t.m.mu.Unlock()
	row, ok := t.m.rows[seen.ShardID]
	if ok && !row.ShardEnd {
		return checkpoint.ErrShardNotEnded
	}
	delete(t.m.rows, seen.ShardID)
	return nil
}

// ---- an in-memory stream ----

type memShard struct {
	id      string
	parents []string
	records []types.Record
	closed  bool // read to its end, GetRecords returns no next iterator
	listed  bool // ListShards lists it
	// expire makes the next GetRecords fail with ExpiredIteratorException, as Kinesis does for
	// an iterator not used for five minutes.
	expire bool
}

// memStream is a Kinesis stream in memory: enough of ListShards, GetShardIterator and
// GetRecords for the consumer.
type memStream struct {
	mu     sync.Mutex
	shards []*memShard
	seq    int
}

var _ KinesisAPI = (*memStream)(nil)

func (s *memStream) addShard(id string, parents ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.shards = append(s.shards, &memShard{id: id, parents: parents, listed: true})
}

// put appends n records to shard id.
func (s *memStream) put(id string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sh := s.find(id)
	for range n {
		s.seq++
		sh.records = append(sh.records, types.Record{
			SequenceNumber:              aws.String(strconv.Itoa(1_000_000 + s.seq)),
			PartitionKey:                aws.String("k"),
			Data:                        []byte("r"),
			ApproximateArrivalTimestamp: aws.Time(time.Now()),
		})
	}
}

func (s *memStream) set(id string, fn func(*memShard)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn(s.find(id))
}

func (s *memStream) lastSeq(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.find(id).records
	return aws.ToString(r[len(r)-1].SequenceNumber)
}

func (s *memStream) find(id string) *memShard {
	for _, sh := range s.shards {
		if sh.id == id {
			return sh
		}
	}
	panic("no shard " + id)
}

func (s *memStream) ListShards(_ context.Context, _ *kinesis.ListShardsInput, _ ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := &kinesis.ListShardsOutput{}
	for _, sh := range s.shards {
		if !sh.listed {
			continue
		}
		ks := types.Shard{ShardId: aws.String(sh.id)}
		if len(sh.parents) > 0 {
			ks.ParentShardId = aws.String(sh.parents[0])
		}
		if len(sh.parents) > 1 {
			ks.AdjacentParentShardId = aws.String(sh.parents[1])
		}
		out.Shards = append(out.Shards, ks)
	}
	return out, nil
}

func (s *memStream) DescribeStreamSummary(context.Context, *kinesis.DescribeStreamSummaryInput, ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error) {
	return &kinesis.DescribeStreamSummaryOutput{}, nil
}

func (s *memStream) GetShardIterator(_ context.Context, in *kinesis.GetShardIteratorInput, _ ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sh := s.find(aws.ToString(in.ShardId))
	i := 0
	switch in.ShardIteratorType {
	case types.ShardIteratorTypeLatest:
		i = len(sh.records)
	case types.ShardIteratorTypeAtTimestamp:
		ts := aws.ToTime(in.Timestamp)
		for i < len(sh.records) && aws.ToTime(sh.records[i].ApproximateArrivalTimestamp).Before(ts) {
			i++
		}
	case types.ShardIteratorTypeAtSequenceNumber, types.ShardIteratorTypeAfterSequenceNumber:
		at := aws.ToString(in.StartingSequenceNumber)
		for i < len(sh.records) && record.CompareSequenceNumbers(aws.ToString(sh.records[i].SequenceNumber), at) < 0 {
			i++
		}
		if in.ShardIteratorType == types.ShardIteratorTypeAfterSequenceNumber && i < len(sh.records) &&
			aws.ToString(sh.records[i].SequenceNumber) == at {
			i++
		}
	}
	return &kinesis.GetShardIteratorOutput{ShardIterator: aws.String(sh.id + "#" + strconv.Itoa(i))}, nil
}

func (s *memStream) GetRecords(_ context.Context, in *kinesis.GetRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, at, _ := strings.Cut(aws.ToString(in.ShardIterator), "#")
	i, _ := strconv.Atoi(at)
	sh := s.find(id)
	if sh.expire {
		sh.expire = false
		return nil, &types.ExpiredIteratorException{Message: aws.String("Iterator expired")}
	}
	end := min(len(sh.records), i+int(aws.ToInt32(in.Limit)))
	out := &kinesis.GetRecordsOutput{Records: slices.Clone(sh.records[i:end]), MillisBehindLatest: aws.Int64(0)}
	if !sh.closed || end < len(sh.records) {
		out.NextShardIterator = aws.String(id + "#" + strconv.Itoa(end))
	}
	return out, nil
}

// ---- sinks, pipelines and hooks ----

// ackSink delivers at once.
type ackSink struct{}

var _ sinks.Sink = ackSink{}

func (ackSink) Name() string                                                  { return "ack" }
func (ackSink) Write(_ context.Context, _ []record.Record, done func()) error { done(); return nil }
func (ackSink) Flush(context.Context) error                                   { return nil }
func (ackSink) Close(context.Context) error                                   { return nil }

// stuckPipeline takes batches and never finishes them, as a hung processor or sink would.
type stuckPipeline struct{}

func (stuckPipeline) Handle(context.Context, []record.Record, func()) error { return nil }
func (stuckPipeline) Close()                                                {}

// leaseEvents records the LeaseChanged hook.
type leaseEvents struct {
	mu     sync.Mutex
	taken  []string
	losses []string // "shard: reason"
}

func (e *leaseEvents) OnLeaseTaken(shard string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.taken = append(e.taken, shard)
}

func (e *leaseEvents) OnLeaseLost(shard, reason string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.losses = append(e.losses, shard+": "+reason)
}

func (e *leaseEvents) snapshot() (taken, losses []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.taken), slices.Clone(e.losses)
}

// ---- running consumers (lease timing in virtual time) ----

const (
	vLeaseDuration = 3 * time.Second
	vRenewInterval = time.Second
	vShardSync     = 2 * time.Second
)

func leaseTestOptions(id string, st *memStream, m *memLeases) Options {
	return Options{
		WorkerID: id,
		Stream:   config.Stream{Name: "stream", StartingPosition: "TRIM_HORIZON", PollInterval: 200 * time.Millisecond, MaxRecordsPerRead: 1000},
		Leases: config.Leases{Table: "leases", WorkerID: id, LeaseDuration: vLeaseDuration, RenewInterval: vRenewInterval,
			ShardSyncInterval: vShardSync, CheckpointInterval: 250 * time.Millisecond},
		Batching: config.Batching{BatchSize: 100, MaxInFlightRecords: 1000},
		Kinesis:  st,
		Table:    m.as(id),
		Sinks:    []sinks.Sink{ackSink{}},
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

// runningConsumer is a Consumer whose Run goroutine the test started.
type runningConsumer struct {
	c    *Consumer
	done chan error
}

func runConsumer(t *testing.T, opts Options) *runningConsumer {
	t.Helper()
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	r := &runningConsumer{c: c, done: make(chan error, 1)}
	go func() { r.done <- c.Run(t.Context()) }()
	return r
}

// stop drains the consumer and waits for Run to return.
func (r *runningConsumer) stop(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := r.c.Shutdown(ctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
	<-r.done
}

// within steps virtual time by 100 ms until cond holds, failing after limit; it returns how
// long that took.
func withinVirtual(t *testing.T, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("%s: not within %s", what, limit)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return time.Since(start)
}

func leaseSpread(m *memLeases, workers ...string) []int {
	o := m.owners()
	var n []int
	for _, w := range workers {
		n = append(n, o[w])
	}
	sort.Ints(n)
	return n
}

// ---- the tests ----

// TestBalanceEightShardsOneToThreeToTwoWorkers is the fleet balance test in virtual time: one
// worker takes all 8 leases in its first pass; with three workers the leases end up 3/3/2, and
// after one drains 4/4, each within two lease durations, and then stay put.
func TestBalanceEightShardsOneToThreeToTwoWorkers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &memStream{}
		m := newMemLeases()
		for i := range 8 {
			id := fmt.Sprintf("shard-%d", i)
			st.addShard(id)
			st.put(id, 5)
		}
		a := runConsumer(t, leaseTestOptions("a", st, m))
		took := withinVirtual(t, vRenewInterval, "one worker holds all 8 leases", func() bool { return m.owners()["a"] == 8 })
		t.Logf("1 worker: 8 leases after %s", took)

		b := runConsumer(t, leaseTestOptions("b", st, m))
		c := runConsumer(t, leaseTestOptions("c", st, m))
		took = withinVirtual(t, 2*vLeaseDuration, "3/3/2", func() bool { return slices.Equal(leaseSpread(m, "a", "b", "c"), []int{2, 3, 3}) })
		t.Logf("1 -> 3 workers: 3/3/2 after %s", took)
		m.steady(t, 3*time.Second)

		c.stop(t)
		took = withinVirtual(t, 2*vLeaseDuration, "4/4", func() bool { return slices.Equal(leaseSpread(m, "a", "b"), []int{4, 4}) })
		t.Logf("3 -> 2 workers: 4/4 after %s", took)
		m.steady(t, 3*time.Second)
		a.stop(t)
		b.stop(t)
	})
}

// TestAbandonedClaimIsTakenByAnotherWorker: a worker claimed a lease, its owner handed it over
// (released it with the claim in place), and the claimant died before taking it. Another worker
// must take it once the claim has been unchanged for a lease duration, not leave the shard
// unread for ever.
func TestAbandonedClaimIsTakenByAnotherWorker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &memStream{}
		st.addShard("shard-0")
		st.put("shard-0", 3)
		m := newMemLeases(checkpoint.Lease{ShardID: "shard-0", Counter: 9, ClaimRequest: "ghost"})
		began := time.Now()
		a := runConsumer(t, leaseTestOptions("a", st, m))

		time.Sleep(vLeaseDuration - vRenewInterval)
		if l, _ := m.get("shard-0"); l.Owner != "" {
			t.Fatalf("the lease was taken by %s while its claimant could still come for it", l.Owner)
		}
		withinVirtual(t, 3*vRenewInterval, "the abandoned lease taken", func() bool {
			l, _ := m.get("shard-0")
			return l.Owner == "a"
		})
		took := time.Since(began)
		if took < vLeaseDuration || took > vLeaseDuration+2*vRenewInterval {
			t.Errorf("taken %s after the worker first saw the claim, want between a lease duration (%s) and one more renewal interval", took, vLeaseDuration)
		}
		t.Logf("abandoned claim taken after %s", took)
		withinVirtual(t, 5*time.Second, "the shard read", func() bool {
			l, _ := m.get("shard-0")
			return l.Checkpoint.SequenceNumber == st.lastSeq("shard-0")
		})
		a.stop(t)
	})
}

// TestChildWaitsForBothParentsOfAMerge: a merged child is taken only once both of its parents
// are at SHARD_END; the parents are read to their end first.
func TestChildWaitsForBothParentsOfAMerge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &memStream{}
		st.addShard("p1")
		st.addShard("p2")
		st.addShard("child", "p1", "p2")
		st.put("p1", 5)
		st.put("p2", 5)
		st.put("child", 5)
		st.set("p1", func(s *memShard) { s.closed = true })
		// p2 is still open: its reader waits for more records.
		ev := &leaseEvents{}
		m := newMemLeases()
		opts := leaseTestOptions("a", st, m)
		opts.Hooks = append(opts.Hooks, ev)
		a := runConsumer(t, opts)

		withinVirtual(t, 5*time.Second, "p1 at SHARD_END", func() bool { l, _ := m.get("p1"); return l.ShardEnd })
		time.Sleep(3 * vShardSync)
		if l, _ := m.get("child"); l.Owner != "" || l.Counter != 0 {
			t.Fatalf("the child was taken (owner %q, counter %d) while p2 is not at its end", l.Owner, l.Counter)
		}
		st.set("p2", func(s *memShard) { s.closed = true })
		withinVirtual(t, 5*time.Second, "child read", func() bool {
			l, _ := m.get("child")
			return l.Checkpoint.SequenceNumber == st.lastSeq("child")
		})
		taken, _ := ev.snapshot()
		if i := slices.Index(taken, "child"); i < 0 || i < slices.Index(taken, "p1") || i < slices.Index(taken, "p2") {
			t.Errorf("leases taken in the order %v, want the child after both parents", taken)
		}
		a.stop(t)
	})
}

// TestFinishedParentRowIsDeletedOnceTheStreamDropsIt: the row of a parent at SHARD_END stays
// while the stream lists the parent and is deleted once it does not; a row not at SHARD_END is
// never deleted.
func TestFinishedParentRowIsDeletedOnceTheStreamDropsIt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &memStream{}
		st.addShard("parent")
		st.addShard("child", "parent")
		st.addShard("other")
		st.put("parent", 3)
		st.put("child", 3)
		st.set("parent", func(s *memShard) { s.closed = true })
		m := newMemLeases(
			checkpoint.Lease{ShardID: "parent", Counter: 4, ShardEnd: true},
			checkpoint.Lease{ShardID: "child", ParentShardIDs: []string{"parent"}},
		)
		a := runConsumer(t, leaseTestOptions("a", st, m))
		withinVirtual(t, 5*time.Second, "child read", func() bool {
			l, _ := m.get("child")
			return l.Checkpoint.SequenceNumber == st.lastSeq("child")
		})
		time.Sleep(2 * vShardSync)
		if _, ok := m.get("parent"); !ok {
			t.Fatal("the finished parent's row was deleted while the stream still lists the parent")
		}

		st.set("parent", func(s *memShard) { s.listed = false })
		took := withinVirtual(t, vShardSync+2*vRenewInterval, "the finished parent's row deleted", func() bool {
			_, ok := m.get("parent")
			return !ok
		})
		t.Logf("row deleted %s after the stream stopped listing the parent", took)
		if _, ok := m.get("child"); !ok {
			t.Fatal("the child's row was deleted")
		}
		if _, ok := m.get("other"); !ok {
			t.Fatal("an open shard's row was deleted")
		}
		a.stop(t)
	})
}

// TestChildStartsWhenAnUnfinishedParentHasExpired: a parent that left the stream before it was
// read to its end (its records expired while no consumer ran) holds nothing more to read; its
// children must not wait for a SHARD_END that can never come.
func TestChildStartsWhenAnUnfinishedParentHasExpired(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &memStream{}
		st.addShard("child", "parent")
		st.put("child", 3)
		m := newMemLeases(
			checkpoint.Lease{ShardID: "parent", Counter: 12, Checkpoint: record.Position{SequenceNumber: "500"}},
			checkpoint.Lease{ShardID: "child", ParentShardIDs: []string{"parent"}},
		)
		a := runConsumer(t, leaseTestOptions("a", st, m))
		withinVirtual(t, 5*time.Second, "child read", func() bool {
			l, _ := m.get("child")
			return l.Checkpoint.SequenceNumber == st.lastSeq("child")
		})
		if l, _ := m.get("parent"); l.Owner != "" {
			t.Errorf("the expired parent was taken by %s: it cannot be read", l.Owner)
		}
		a.stop(t)
	})
}

// TestStalledShardIsReportedReleasedAndReadAgain: a shard whose records are never acknowledged
// (its pipeline hangs) is reported after StallTimeout, its lease released, and it is read again
// from its checkpoint by a fresh pipeline, which delivers.
func TestStalledShardIsReportedReleasedAndReadAgain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &memStream{}
		st.addShard("shard-0")
		st.put("shard-0", 10)
		m := newMemLeases()
		ev := &leaseEvents{}
		var mu sync.Mutex
		lives := 0
		opts := leaseTestOptions("a", st, m)
		opts.StallTimeout = 10 * time.Second
		opts.Hooks = append(opts.Hooks, ev)
		opts.NewPipeline = func(ctx context.Context, shard string) Pipeline {
			mu.Lock()
			defer mu.Unlock()
			lives++
			if lives == 1 {
				return stuckPipeline{}
			}
			return DeliverToSinks(opts.Sinks)(ctx, shard)
		}
		a := runConsumer(t, opts)

		var firstTake int64
		withinVirtual(t, 2*time.Second, "lease taken", func() bool {
			l, _ := m.get("shard-0")
			firstTake = l.Counter
			return l.Owner == "a"
		})
		stuck := time.Now() // the records were read and handed on as the lease was taken
		time.Sleep(opts.StallTimeout - vRenewInterval)
		if _, losses := ev.snapshot(); len(losses) > 0 {
			t.Fatalf("reported %v before the stall timeout", losses)
		}
		withinVirtual(t, 3*vRenewInterval, "the stalled shard reported", func() bool {
			_, losses := ev.snapshot()
			return slices.Contains(losses, "shard-0: stalled")
		})
		t.Logf("stall reported and the lease released %s after the records got stuck (stall timeout %s)", time.Since(stuck), opts.StallTimeout)
		withinVirtual(t, 5*time.Second, "read again and delivered", func() bool {
			l, _ := m.get("shard-0")
			return l.Owner == "a" && l.Counter > firstTake && l.Checkpoint.SequenceNumber == st.lastSeq("shard-0")
		})
		taken, _ := ev.snapshot()
		if len(taken) != 2 {
			t.Errorf("lease taken %d times, want twice (once more after the stall)", len(taken))
		}
		a.stop(t)
	})
}

// TestStallWatchIgnoresIdleShards: a shard with nothing in flight waits for records as long as
// it must; that is not a stall.
func TestStallWatchIgnoresIdleShards(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &memStream{}
		st.addShard("shard-0")
		st.put("shard-0", 2)
		m := newMemLeases()
		ev := &leaseEvents{}
		opts := leaseTestOptions("a", st, m)
		opts.StallTimeout = 5 * time.Second
		opts.Hooks = append(opts.Hooks, ev)
		a := runConsumer(t, opts)
		time.Sleep(6 * opts.StallTimeout)
		if _, losses := ev.snapshot(); len(losses) > 0 {
			t.Fatalf("an idle shard was treated as stalled: %v", losses)
		}
		a.stop(t)
	})
}

// TestUnrenewedLeaseIsNotTrusted: after a lease duration without a successful renewal (the
// process was paused, or DynamoDB unreachable), the worker must not hand on records: another
// worker may hold the lease by then.
func TestUnrenewedLeaseIsNotTrusted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &heldLease{lease: checkpoint.Lease{ShardID: "s", Owner: "a", Counter: 1}, renewedAt: time.Now()}
		if err := h.trusted(vLeaseDuration); err != nil {
			t.Fatalf("a lease just taken is not trusted: %v", err)
		}
		time.Sleep(vLeaseDuration - time.Millisecond)
		if err := h.trusted(vLeaseDuration); err != nil {
			t.Fatalf("not trusted within its duration: %v", err)
		}
		time.Sleep(time.Millisecond)
		err := h.trusted(vLeaseDuration)
		if !errors.Is(err, errLeaseGone) {
			t.Fatalf("trusted a lease duration after its last renewal (err %v)", err)
		}
		// A renewal sent now extends it again.
		m := newMemLeases(h.lease)
		if _, err := h.renew(t.Context(), m.as("a")); err != nil {
			t.Fatal(err)
		}
		if err := h.trusted(vLeaseDuration); err != nil {
			t.Fatalf("not trusted after a renewal: %v", err)
		}
	})
}

// refusingPipeline holds every batch until its context ends, then refuses it, as a sink does
// whose Write is cancelled.
type refusingPipeline struct{}

func (refusingPipeline) Handle(ctx context.Context, _ []record.Record, _ func()) error {
	<-ctx.Done()
	return ctx.Err()
}
func (refusingPipeline) Close() {}

// TestDrainIsNotHeldUpByARefusedBatch: a batch registered with the tracker and then refused by
// the pipeline (the reader was stopped while handing it on) never completes; the drain must not
// wait for it until its deadline, and must end cleanly with the lease released at the
// checkpoint before that batch.
func TestDrainIsNotHeldUpByARefusedBatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &memStream{}
		st.addShard("shard-0")
		st.put("shard-0", 5)
		m := newMemLeases()
		opts := leaseTestOptions("a", st, m)
		opts.NewPipeline = func(context.Context, string) Pipeline { return refusingPipeline{} }
		a := runConsumer(t, opts)
		withinVirtual(t, 2*time.Second, "lease taken", func() bool { l, _ := m.get("shard-0"); return l.Owner == "a" })
		synctest.Wait() // the reader is blocked in Handle

		began := time.Now()
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		if err := a.c.Shutdown(ctx); err != nil {
			t.Fatalf("shutdown: %v", err)
		}
		<-a.done
		if took := time.Since(began); took > time.Second {
			t.Errorf("the drain took %s: it waited for a batch that can never complete", took)
		}
		if l, _ := m.get("shard-0"); l.Owner != "" || !l.Checkpoint.IsZero() {
			t.Errorf("after the drain: owner %q checkpoint %s, want released with no checkpoint", l.Owner, l.Checkpoint)
		}
	})
}
