package consumer

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/shardhose/shardhose/consumer/kpl"
	"github.com/shardhose/shardhose/internal/clock"
	"github.com/shardhose/shardhose/internal/retry"
	"github.com/shardhose/shardhose/record"
)

func testReader(api KinesisAPI, shard string) *shardReader {
	return &shardReader{
		api:          api,
		streamName:   "stream",
		shardID:      shard,
		clock:        clock.Real(),
		log:          slog.New(slog.NewTextHandler(io.Discard, nil)),
		pollInterval: time.Second,
		limit:        100,
		backoff:      retry.Policy{Initial: 100 * time.Millisecond, Max: time.Second, Multiplier: 2},
	}
}

// collector gathers what a reader emits.
type collector struct {
	mu   sync.Mutex
	recs []record.Record
}

func (c *collector) emit(_ context.Context, recs []record.Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.recs = append(c.recs, recs...)
	return nil
}

func (c *collector) seqs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, len(c.recs))
	for _, r := range c.recs {
		out = append(out, r.SequenceNumber)
	}
	return out
}

// TestLatestIteratorRenewedBeforeTheFirstRecordSkipsNothing: a reader that starts at LATEST and
// whose iterator expires before it has read a record must renew it at the time its first
// iterator was taken, not at LATEST again: that would skip every record written in between.
func TestLatestIteratorRenewedBeforeTheFirstRecordSkipsNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &memStream{}
		st.addShard("s")
		st.put("s", 3) // before the reader starts: LATEST leaves these out
		time.Sleep(time.Second)

		var got collector
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, _ = testReader(st, "s").run(ctx, startPosition{iteratorType: types.ShardIteratorTypeLatest}, got.emit)
		}()
		synctest.Wait() // the first read came back empty; the reader waits to poll again

		time.Sleep(500 * time.Millisecond)
		st.put("s", 4)
		st.set("s", func(s *memShard) { s.expire = true })
		withinVirtual(t, 5*time.Second, "the 4 records written after the start read", func() bool { return len(got.seqs()) >= 4 })
		time.Sleep(2 * time.Second)
		cancel()
		<-done
		if n := len(got.seqs()); n != 4 {
			t.Errorf("read %d records %v, want the 4 written after the start", n, got.seqs())
		}
	})
}

// TestConvertDeaggregatesKPLAndSkipsToTheCheckpoint: an aggregate becomes its user records in
// order, each with its own key and the sub-sequence number of its index; records at or before
// the position to skip (the checkpoint, inside an aggregate) are left out; a corrupt aggregate
// is passed on whole and marked; a plain record stays as it is.
func TestConvertDeaggregatesKPLAndSkipsToTheCheckpoint(t *testing.T) {
	r := testReader(nil, "s")
	arrival := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	agg := kpl.Aggregate([]kpl.UserRecord{
		{PartitionKey: "k0", Data: []byte("zero")},
		{PartitionKey: "k1", ExplicitHashKey: "42", Data: []byte("one")},
		{PartitionKey: "k2", Data: []byte("two")},
	})
	corrupt := append(append([]byte{}, kpl.Magic...), []byte("not a protobuf, and no checksum either")...)
	in := []types.Record{
		{SequenceNumber: aws.String("100"), PartitionKey: aws.String("outer"), Data: agg, ApproximateArrivalTimestamp: aws.Time(arrival)},
		{SequenceNumber: aws.String("200"), PartitionKey: aws.String("plain"), Data: []byte("plain"), ApproximateArrivalTimestamp: aws.Time(arrival)},
		{SequenceNumber: aws.String("300"), PartitionKey: aws.String("bad"), Data: corrupt, ApproximateArrivalTimestamp: aws.Time(arrival)},
	}

	out, bytes := r.convert(in, record.Position{})
	type want struct {
		seq, key, hash, data string
		sub                  int64
		aggregated, broken   bool
	}
	wants := []want{
		{"100", "k0", "", "zero", 0, true, false},
		{"100", "k1", "42", "one", 1, true, false},
		{"100", "k2", "", "two", 2, true, false},
		{"200", "plain", "", "plain", 0, false, false},
		{"300", "bad", "", string(corrupt), 0, false, true},
	}
	if len(out) != len(wants) {
		t.Fatalf("converted into %d records, want %d: %+v", len(out), len(wants), out)
	}
	for i, w := range wants {
		g := out[i]
		if g.SequenceNumber != w.seq || g.SubSequenceNumber != w.sub || g.PartitionKey != w.key || g.ExplicitHashKey != w.hash ||
			string(g.Data) != w.data || g.Aggregated != w.aggregated || (g.DeaggregationError != "") != w.broken {
			t.Errorf("record %d: %+v, want %+v", i, g, w)
		}
		if g.ShardID != "s" || g.StreamName != "stream" || !g.ApproximateArrivalTimestamp.Equal(arrival) {
			t.Errorf("record %d: shard %q stream %q arrival %s, want s, stream, %s", i, g.ShardID, g.StreamName, g.ApproximateArrivalTimestamp, arrival)
		}
	}
	if wantBytes := len("zero") + len("one") + len("two") + len("plain") + len(corrupt); bytes != wantBytes {
		t.Errorf("data size %d, want %d", bytes, wantBytes)
	}

	// Resuming inside the aggregate: its user records up to the checkpoint's sub-sequence
	// number were delivered already.
	out, _ = r.convert(in, record.Position{SequenceNumber: "100", SubSequenceNumber: 1})
	if len(out) != 3 || out[0].SequenceNumber != "100" || out[0].SubSequenceNumber != 2 || out[1].SequenceNumber != "200" {
		t.Errorf("after checkpoint 100/1: %+v, want 100/2, 200, 300", out)
	}
	// A checkpoint on the plain record skips everything up to it.
	out, _ = r.convert(in, record.Position{SequenceNumber: "200"})
	if len(out) != 1 || out[0].SequenceNumber != "300" {
		t.Errorf("after checkpoint 200: %+v, want only 300", out)
	}
}
