package s3

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shardhose/shardhose/config"
	"github.com/shardhose/shardhose/internal/clock"
	"github.com/shardhose/shardhose/record"
	"github.com/shardhose/shardhose/sinks"
)

// eoConfig is an exactly-once sink's section: zero buffering (an object per Write), short retries.
func eoConfig() config.S3Sink {
	cfg := testConfig(0)
	cfg.Delivery = config.DeliveryExactlyOnce
	cfg.Retry = config.Retry{InitialBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}
	return cfg
}

// shardRecords returns records from..to (inclusive) of shard, with sequence numbers 1000+n and
// arrival times n ms after testStart; each record's data is {"n":n}.
func shardRecords(shard string, from, to int) []record.Record {
	var recs []record.Record
	for n := from; n <= to; n++ {
		recs = append(recs, record.Record{
			ShardID:                     shard,
			SequenceNumber:              fmt.Sprint(1000 + n),
			Data:                        fmt.Appendf(nil, `{"n":%d}`, n),
			ApproximateArrivalTimestamp: testStart.Add(time.Duration(n) * time.Millisecond),
		})
	}
	return recs
}

func seqPos(n int) record.Position { return record.Position{SequenceNumber: fmt.Sprint(1000 + n)} }

// leaseSwitch is a sinks.ShardLease a test flips; it counts how often it was asked.
type leaseSwitch struct {
	state atomic.Int32
	asked atomic.Int64
}

func (l *leaseSwitch) get() sinks.LeaseState {
	l.asked.Add(1)
	return sinks.LeaseState(l.state.Load())
}

func (l *leaseSwitch) set(s sinks.LeaseState) { l.state.Store(int32(s)) }

// waitAsked waits until the lease was asked for n times.
func (l *leaseSwitch) waitAsked(t *testing.T, n int64) {
	t.Helper()
	for l.asked.Load() < n {
		select {
		case <-waitCtx(t).Done():
			t.Fatalf("the lease was asked for %d times, want %d", l.asked.Load(), n)
		case <-time.After(time.Millisecond):
		}
	}
}

// openRun starts a sink on f and opens a run of shard-1 in it from before the first record.
func openRun(t *testing.T, cfg config.S3Sink, f *fakeS3, lease *leaseSwitch) *Sink {
	t.Helper()
	s := newTestSink(t, cfg, f, clock.Real())
	s.OpenShard("shard-1", record.Position{}, lease.get)
	return s
}

// wantDelivered checks that s holds shard-1 through record n.
func wantDelivered(t *testing.T, s *Sink, n int) {
	t.Helper()
	if got, _ := s.Delivered("shard-1"); got != seqPos(n) {
		t.Errorf("Delivered = %s, want %s", got, seqPos(n))
	}
}

// writeAndWait writes recs and waits for their done.
func writeAndWait(t *testing.T, s *Sink, recs []record.Record) {
	t.Helper()
	done := make(chan struct{})
	if err := s.Write(waitCtx(t), recs, func() { close(done) }); err != nil {
		t.Fatalf("Write: %v", err)
	}
	select {
	case <-done:
	case <-waitCtx(t).Done():
		t.Fatalf("records %s..%s never acknowledged", recs[0].SequenceNumber, recs[len(recs)-1].SequenceNumber)
	}
}

// flushedUnacknowledged flushes s and requires acked (closed by a Write's done) to be still open:
// the Write's records were given up, not written.
func flushedUnacknowledged(t *testing.T, s *Sink, acked <-chan struct{}) {
	t.Helper()
	if err := s.Flush(waitCtx(t)); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	select {
	case <-acked:
		t.Error("records that were not written were acknowledged")
	default:
	}
}

// recordCounts decodes every stored object and counts each record n; it fails the test if a
// key was written more than once.
func recordCounts(t *testing.T, f *fakeS3) map[int]int {
	t.Helper()
	counts := map[int]int{}
	for key, o := range f.stored() {
		if o.versions != 1 {
			t.Errorf("object %s was written %d times", key, o.versions)
		}
		for _, line := range lines(t, o.body, true) {
			var v struct{ N int }
			if err := json.Unmarshal([]byte(line), &v); err != nil {
				t.Fatalf("object %s: %q: %v", key, line, err)
			}
			counts[v.N]++
		}
	}
	return counts
}

func assertEachOnce(t *testing.T, counts map[int]int, from, to int) {
	t.Helper()
	for n := from; n <= to; n++ {
		if counts[n] != 1 {
			t.Errorf("record %d is in %d objects, want 1", n, counts[n])
		}
	}
	for n, c := range counts {
		if n < from || n > to {
			t.Errorf("record %d (in %d objects) was never meant to be written", n, c)
		}
	}
}

// A worker writes part of a shard and dies without a checkpoint; the next owner reads the
// shard again from the start with other batch boundaries. Its first objects find the dead
// worker's under the same keys, skip what they hold, and every record ends up in one object.
func TestExactlyOnceRerunAfterCrashWritesEachRecordOnce(t *testing.T) {
	f := newFakeS3()
	var held leaseSwitch
	dead := openRun(t, eoConfig(), f, &held)
	writeAndWait(t, dead, shardRecords("shard-1", 1, 4))
	writeAndWait(t, dead, shardRecords("shard-1", 5, 9))
	wantDelivered(t, dead, 9)

	next := openRun(t, eoConfig(), f, &held)
	writeAndWait(t, next, shardRecords("shard-1", 1, 6))
	writeAndWait(t, next, shardRecords("shard-1", 7, 13))

	assertEachOnce(t, recordCounts(t, f), 1, 13)
	wantDelivered(t, next, 13)
	f.mu.Lock()
	refused := f.refused
	f.mu.Unlock()
	if refused != 2 {
		t.Errorf("%d conditional writes refused, want 2 (the two objects the dead worker wrote)", refused)
	}
	for key, o := range f.stored() {
		if !strings.Contains(key, "-shard-1-") {
			t.Errorf("key %s does not name the shard", key)
		}
		first, last := o.metadata[MetaFirst], o.metadata[MetaLast]
		if first == "" || last == "" || o.metadata[MetaShard] != "shard-1" {
			t.Errorf("object %s metadata %v lacks the shard, first and last", key, o.metadata)
		}
		after := o.metadata[MetaAfter]
		if !strings.HasSuffix(strings.TrimSuffix(key, ".gz"), "-shard-1-"+after) {
			t.Errorf("object %s is not named after the position it starts after (%s)", key, after)
		}
	}
}

// A run opened from a delivered position skips the records up to it (acknowledging them) and
// names its first object after it.
func TestExactlyOnceResumesAfterTheDeliveredPosition(t *testing.T) {
	f := newFakeS3()
	var held leaseSwitch
	first := openRun(t, eoConfig(), f, &held)
	writeAndWait(t, first, shardRecords("shard-1", 1, 5))

	next := newTestSink(t, eoConfig(), f, clock.Real())
	next.OpenShard("shard-1", seqPos(5), held.get)
	writeAndWait(t, next, shardRecords("shard-1", 3, 8)) // a checkpoint at 2: 3..5 are read again

	assertEachOnce(t, recordCounts(t, f), 1, 8)
	for key, o := range f.stored() {
		if o.metadata[MetaAfter] == seqPos(5).String() && o.metadata[MetaFirst] != seqPos(6).String() {
			t.Errorf("object %s starts at %s, want %s", key, o.metadata[MetaFirst], seqPos(6))
		}
	}
}

// A zombie (a worker that lost its lease without knowing yet) tries to write an object the new
// owner already wrote: the conditional write is refused, nothing is overwritten, and once its
// lease reports lost it stops the shard: the rest of its records are not written and not
// acknowledged.
func TestExactlyOnceZombieIsRefusedAndStops(t *testing.T) {
	f := newFakeS3()
	var zombieLease, ownerLease leaseSwitch
	zombie := openRun(t, eoConfig(), f, &zombieLease)
	writeAndWait(t, zombie, shardRecords("shard-1", 1, 3))

	owner := newTestSink(t, eoConfig(), f, clock.Real())
	owner.OpenShard("shard-1", seqPos(3), ownerLease.get)
	writeAndWait(t, owner, shardRecords("shard-1", 4, 9))

	// The zombie wakes holding records 4..12, its lease still held as far as it knows: its
	// write of "after 3" goes out, and meanwhile its lease is found lost.
	acked := make(chan struct{})
	f.mu.Lock()
	f.entered = make(chan string, 1)
	f.hold = make(chan struct{})
	entered, hold := f.entered, f.hold
	f.mu.Unlock()
	if err := zombie.Write(waitCtx(t), shardRecords("shard-1", 4, 12), func() { close(acked) }); err != nil {
		t.Fatal(err)
	}
	select {
	case <-entered: // the conditional write is under way
	case <-waitCtx(t).Done():
		t.Fatal("the zombie never tried to write")
	}
	zombieLease.set(sinks.LeaseLost)
	f.mu.Lock()
	f.entered, f.hold = nil, nil
	f.mu.Unlock()
	close(hold)
	flushedUnacknowledged(t, zombie, acked)
	f.mu.Lock()
	refused := f.refused
	f.mu.Unlock()
	if refused != 1 {
		t.Errorf("%d conditional writes refused, want 1", refused)
	}
	assertEachOnce(t, recordCounts(t, f), 1, 9)
}

// While the lease is unconfirmed nothing is written; once it is confirmed the object goes up.
func TestExactlyOnceWaitsWhileTheLeaseIsUnconfirmed(t *testing.T) {
	f := newFakeS3()
	var lease leaseSwitch
	lease.set(sinks.LeaseUncertain)
	s := openRun(t, eoConfig(), f, &lease)
	acked := make(chan struct{})
	if err := s.Write(waitCtx(t), shardRecords("shard-1", 1, 3), func() { close(acked) }); err != nil {
		t.Fatal(err)
	}
	// The run asks for the lease before every attempt: once it has asked five times, five
	// attempts have passed without a PUT.
	lease.waitAsked(t, 5)
	if n := f.callCount(); n != 0 {
		t.Fatalf("%d PUTs while the lease was unconfirmed", n)
	}
	lease.set(sinks.LeaseHeld)
	select {
	case <-acked:
	case <-waitCtx(t).Done():
		t.Fatal("never written after the lease was confirmed")
	}
	assertEachOnce(t, recordCounts(t, f), 1, 3)
}

// A lease lost while an object waits gives the object up: Flush returns, done is never called.
func TestExactlyOnceLostLeaseGivesUpWithoutAcknowledging(t *testing.T) {
	f := newFakeS3()
	var lease leaseSwitch
	lease.set(sinks.LeaseLost)
	s := openRun(t, eoConfig(), f, &lease)
	acked := make(chan struct{})
	if err := s.Write(waitCtx(t), shardRecords("shard-1", 1, 3), func() { close(acked) }); err != nil {
		t.Fatal(err)
	}
	flushedUnacknowledged(t, s, acked)
	if n := len(f.stored()); n != 0 {
		t.Errorf("%d objects written for a lost lease", n)
	}
	// The slot it held is free again: another shard's records still go up.
	var other leaseSwitch
	s.OpenShard("shard-2", record.Position{}, other.get)
	writeAndWait(t, s, shardRecords("shard-2", 1, 2))
}

// Each shard has its own objects; records of a shard without a run (not read under a lease)
// are delivered at least once, in objects of their own with random names.
func TestExactlyOnceObjectsHoldOneShardEach(t *testing.T) {
	f := newFakeS3()
	var lease leaseSwitch
	s := openRun(t, eoConfig(), f, &lease)
	s.OpenShard("shard-2", record.Position{}, lease.get)
	mixed := append(shardRecords("shard-1", 1, 3), shardRecords("shard-2", 4, 6)...)
	mixed = append(mixed, shardRecords("shard-3", 7, 8)...)
	writeAndWait(t, s, mixed)
	objs := f.stored()
	if len(objs) != 3 {
		t.Fatalf("%d objects, want 3 (one per shard)", len(objs))
	}
	for key, o := range objs {
		shard := o.metadata[MetaShard]
		switch {
		case strings.Contains(key, "-shard-1-"):
			if shard != "shard-1" {
				t.Errorf("%s: shard metadata %q", key, shard)
			}
		case strings.Contains(key, "-shard-2-"):
			if shard != "shard-2" {
				t.Errorf("%s: shard metadata %q", key, shard)
			}
		default:
			if shard != "" {
				t.Errorf("%s: the at-least-once object has exactly-once metadata %v", key, o.metadata)
			}
		}
	}
	assertEachOnce(t, recordCounts(t, f), 1, 8)
	if _, ok := s.Delivered("shard-3"); ok {
		t.Error("Delivered reports a shard that has no run")
	}
}

func TestExactlyOnceConfigChecks(t *testing.T) {
	_, err := New(Options{Name: "s", Config: eoConfig(), Client: putOnly{f: newFakeS3()}})
	if err == nil || !strings.Contains(err.Error(), "HeadObject") {
		t.Errorf("exactly_once without HeadObject: err = %v", err)
	}
	cfg := eoConfig()
	cfg.Delivery = "twice"
	_, err = New(Options{Name: "s", Config: cfg, Client: newFakeS3()})
	if err == nil || !strings.Contains(err.Error(), `delivery "twice"`) {
		t.Errorf("delivery twice: err = %v", err)
	}
}

// Hundreds of shards written at once, each from its own goroutine in several Writes, with few
// upload slots: every record lands once, in an object of its own shard, and every run's
// position reaches its last record.
func TestExactlyOnceManyShardsConcurrently(t *testing.T) {
	const shards, writes, perWrite = 200, 5, 4
	f := newFakeS3()
	var lease leaseSwitch
	cfg := eoConfig()
	cfg.MaxUploads = 3
	s := newTestSink(t, cfg, f, clock.Real())
	for sh := range shards {
		s.OpenShard(fmt.Sprintf("shard-%03d", sh), record.Position{}, lease.get)
	}
	var wg sync.WaitGroup
	for sh := range shards {
		wg.Go(func() {
			id := fmt.Sprintf("shard-%03d", sh)
			base := sh * writes * perWrite
			for w := range writes {
				recs := shardRecords(id, base+w*perWrite+1, base+(w+1)*perWrite)
				done := make(chan struct{})
				if err := s.Write(waitCtx(t), recs, func() { close(done) }); err != nil {
					t.Errorf("%s: %v", id, err)
					return
				}
				<-done
			}
		})
	}
	wg.Wait()
	assertEachOnce(t, recordCounts(t, f), 1, shards*writes*perWrite)
	for key, o := range f.stored() {
		if !strings.Contains(key, "-"+o.metadata[MetaShard]+"-") {
			t.Errorf("object %s holds shard %s", key, o.metadata[MetaShard])
		}
	}
	for sh := range shards {
		want := seqPos((sh + 1) * writes * perWrite)
		if got, _ := s.Delivered(fmt.Sprintf("shard-%03d", sh)); got != want {
			t.Errorf("shard %d delivered up to %s, want %s", sh, got, want)
		}
	}
}

// The lease table is unreachable: a run writes objects the lease row never hears of (its
// checkpoints fail), then its lease is given up and the object it still holds is not written.
// When the table answers again the same worker takes the lease again, and the same sink opens a
// new run of the shard from what the row recorded before the outage. The new run reads from the
// checkpoint, finds the old run's objects under their keys and walks past them: every record
// ends up in one object, and the given-up records in the new run's.
func TestExactlyOnceSameWorkerRetakesAGivenUpLease(t *testing.T) {
	f := newFakeS3()
	var before, after leaseSwitch
	s := openRun(t, eoConfig(), f, &before)
	writeAndWait(t, s, shardRecords("shard-1", 1, 4)) // recorded: checkpoint 4, delivered 4
	writeAndWait(t, s, shardRecords("shard-1", 5, 9)) // the row never hears of it
	wantDelivered(t, s, 9)

	// The trust window ends, then the lease is given up as unreachable.
	before.set(sinks.LeaseUncertain)
	givenUp := make(chan struct{})
	if err := s.Write(waitCtx(t), shardRecords("shard-1", 10, 12), func() { close(givenUp) }); err != nil {
		t.Fatal(err)
	}
	before.waitAsked(t, 3)
	before.set(sinks.LeaseLost)
	flushedUnacknowledged(t, s, givenUp)

	// Taken again by the same worker: a new run from the recorded position, reading from the
	// checkpoint with other batch boundaries.
	s.OpenShard("shard-1", seqPos(4), after.get)
	wantDelivered(t, s, 4)
	writeAndWait(t, s, shardRecords("shard-1", 5, 7))
	writeAndWait(t, s, shardRecords("shard-1", 8, 15))

	assertEachOnce(t, recordCounts(t, f), 1, 15)
	wantDelivered(t, s, 15)
}
