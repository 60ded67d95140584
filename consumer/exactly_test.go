package consumer

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/shardhose/shardhose/checkpoint"
	"github.com/shardhose/shardhose/record"
	"github.com/shardhose/shardhose/sinks"
)

// eoSink is an exactly-once sink in memory: it acknowledges every Write at once and reports the
// last position written per open shard.
type eoSink struct {
	mu     sync.Mutex
	opened map[string]record.Position
	leases map[string]sinks.ShardLease
	at     map[string]record.Position
}

func newEOSink() *eoSink {
	return &eoSink{opened: map[string]record.Position{}, leases: map[string]sinks.ShardLease{}, at: map[string]record.Position{}}
}

func (s *eoSink) Name() string                { return "eo" }
func (s *eoSink) Flush(context.Context) error { return nil }
func (s *eoSink) Close(context.Context) error { return nil }
func (s *eoSink) ExactlyOnce() bool           { return true }

func (s *eoSink) Write(_ context.Context, recs []record.Record, done func()) error {
	s.mu.Lock()
	for _, r := range recs {
		if _, ok := s.at[r.ShardID]; ok && r.Position().Compare(s.at[r.ShardID]) > 0 {
			s.at[r.ShardID] = r.Position()
		}
	}
	s.mu.Unlock()
	done()
	return nil
}

func (s *eoSink) OpenShard(shardID string, from record.Position, lease sinks.ShardLease) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opened[shardID], s.leases[shardID], s.at[shardID] = from, lease, from
}

func (s *eoSink) Delivered(shardID string) (record.Position, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.at[shardID]
	return p, ok
}

func (s *eoSink) state(shardID string) (record.Position, sinks.ShardLease) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opened[shardID], s.leases[shardID]
}

// The consumer opens each shard it takes in an exactly-once sink from the position the lease row
// holds for that sink (else from the checkpoint), records the sink's delivered position with
// every checkpoint, and reports the lease lost to the sink once it let the lease go.
func TestExactlyOnceSinkOpenedFromTheRowAndCheckpointed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &memStream{}
		st.addShard("shard-0")
		st.addShard("shard-1")
		st.put("shard-0", 5)
		st.put("shard-1", 5)
		delivered := record.Position{SequenceNumber: "1000003"}
		checkpointed := record.Position{SequenceNumber: "1000002"}
		m := newMemLeases(
			checkpoint.Lease{ShardID: "shard-0", Checkpoint: checkpointed, Delivered: map[string]record.Position{"eo": delivered}},
			checkpoint.Lease{ShardID: "shard-1", Checkpoint: record.Position{SequenceNumber: "1000007"}},
		)
		sink := newEOSink()
		opts := leaseTestOptions("a", st, m)
		opts.Sinks = []sinks.Sink{sink}
		a := runConsumer(t, opts)
		withinVirtual(t, 10*vRenewInterval, "both shards read and checkpointed with the sink's position", func() bool {
			for _, id := range []string{"shard-0", "shard-1"} {
				l, _ := m.get(id)
				last := record.Position{SequenceNumber: st.lastSeq(id)}
				if l.Checkpoint != last || l.Delivered["eo"] != last {
					return false
				}
			}
			return true
		})
		from0, lease0 := sink.state("shard-0")
		from1, _ := sink.state("shard-1")
		if from0 != delivered {
			t.Errorf("shard-0 opened from %s, want the row's delivered position %s", from0, delivered)
		}
		if from1 != (record.Position{SequenceNumber: "1000007"}) {
			t.Errorf("shard-1 opened from %s, want its checkpoint 1000007 (no delivered position in the row)", from1)
		}
		if got := lease0(); got != sinks.LeaseHeld {
			t.Errorf("lease state while reading = %d, want held", got)
		}
		a.stop(t)
		if got := lease0(); got != sinks.LeaseLost {
			t.Errorf("lease state after the shard was released = %d, want lost", got)
		}
	})
}

// filterAll is a pipeline that filters out every record: batches finish without reaching a sink.
type filterAll struct{}

func (filterAll) Handle(_ context.Context, _ []record.Record, done func()) error { done(); return nil }
func (filterAll) Close()                                                         {}

// When the checkpoint moves past records that never reach an exactly-once sink, the row still
// records where the sink's run started (before the first record), and the next owner starts
// its run there rather than at the checkpoint.
func TestExactlyOnceRunStartIsRecordedWhenNothingReachedTheSink(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &memStream{}
		st.addShard("shard-0")
		st.put("shard-0", 5)
		m := newMemLeases(checkpoint.Lease{ShardID: "shard-0"})
		sink := newEOSink()
		opts := leaseTestOptions("a", st, m)
		opts.Sinks = []sinks.Sink{sink}
		opts.NewPipeline = func(context.Context, string) Pipeline { return filterAll{} }
		a := runConsumer(t, opts)
		withinVirtual(t, 10*vRenewInterval, "the shard checkpointed", func() bool {
			l, _ := m.get("shard-0")
			return l.Checkpoint.SequenceNumber == st.lastSeq("shard-0")
		})
		a.stop(t)
		l, _ := m.get("shard-0")
		if got, ok := l.Delivered["eo"]; !ok || got != beforeFirst {
			t.Fatalf("row's delivered position %v (recorded %v), want %v", got, ok, beforeFirst)
		}

		next := newEOSink()
		opts = leaseTestOptions("b", st, m)
		opts.Sinks = []sinks.Sink{next}
		b := runConsumer(t, opts)
		withinVirtual(t, 10*vRenewInterval, "the shard taken again", func() bool {
			_, lease := next.state("shard-0")
			return lease != nil
		})
		if from, _ := next.state("shard-0"); !from.IsZero() {
			t.Errorf("the next run starts at %s, want before the first record", from)
		}
		b.stop(t)
	})
}
