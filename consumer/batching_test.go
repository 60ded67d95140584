package consumer

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/shardhose/shardhose/config"
	"github.com/shardhose/shardhose/record"
	"github.com/shardhose/shardhose/sinks"
)

// seqSink acknowledges at once and notes the sequence numbers of every Write, batch by batch.
type seqSink struct {
	mu      sync.Mutex
	batches [][]string
}

func (s *seqSink) Name() string { return "seq" }
func (s *seqSink) Write(_ context.Context, recs []record.Record, done func()) error {
	seqs := make([]string, len(recs))
	for i, r := range recs {
		seqs[i] = r.SequenceNumber
	}
	s.mu.Lock()
	s.batches = append(s.batches, seqs)
	s.mu.Unlock()
	done()
	return nil
}
func (s *seqSink) Flush(context.Context) error { return nil }
func (s *seqSink) Close(context.Context) error { return nil }

func (s *seqSink) got() (all []string, batches [][]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range s.batches {
		all = append(all, b...)
	}
	return all, slices.Clone(s.batches)
}

var _ sinks.Sink = (*seqSink)(nil)

// TestBatchesCarryEveryRecordOnceInOrder: reads whose size does not divide the batch size, with
// a batching window open, hand every record on exactly once, in order, in batches of at most
// batch_size: the records of a read are taken as they are when nothing is gathered and appended
// to what is.
func TestBatchesCarryEveryRecordOnceInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &memStream{}
		st.addShard("shard-0")
		st.put("shard-0", 250)
		m := newMemLeases()
		sink := &seqSink{}
		opts := leaseTestOptions("a", st, m)
		opts.Stream.MaxRecordsPerRead = 70
		opts.Batching = config.Batching{BatchSize: 100, MaxInFlightRecords: 1000, MaximumBatchingWindowInSeconds: 1}
		opts.Sinks = []sinks.Sink{sink}
		c := runConsumer(t, opts)
		withinVirtual(t, 30*time.Second, "all 250 records delivered", func() bool {
			all, _ := sink.got()
			return len(all) >= 250
		})
		c.stop(t)

		all, batches := sink.got()
		var want []string
		for i := range 250 {
			want = append(want, strconv.Itoa(1_000_001+i))
		}
		if !slices.Equal(all, want) {
			t.Fatalf("records delivered %d, in this order: %v; want each of the 250 once, in order", len(all), all)
		}
		for i, b := range batches {
			if len(b) > 100 {
				t.Errorf("batch %d has %d records, more than batch_size 100", i, len(b))
			}
		}
		if len(batches) < 3 {
			t.Errorf("%d batches for 250 records at batch_size 100, want at least 3", len(batches))
		}
	})
}
