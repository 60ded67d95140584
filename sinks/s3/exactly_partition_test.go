package s3

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shardhose/shardhose/config"
	"github.com/shardhose/shardhose/record"
	"github.com/shardhose/shardhose/sinks"
)

// eoPartitionedConfig is eoConfig with dynamic partitioning on the field t of {"n":N,"t":...}.
func eoPartitionedConfig() config.S3Sink {
	cfg := eoConfig()
	cfg.BufferingHints.IntervalInSeconds = 900 // objects are sealed by Flush in these tests
	cfg.Prefix = "t=!{partitionKeyFromQuery:t}/"
	cfg.ErrorOutputPrefix = "errors/!{firehose:error-output-type}/"
	cfg.DynamicPartitioning = &config.DynamicPartitioning{Enabled: true, Queries: map[string]string{"t": ".t"}}
	return cfg
}

// partitionedRecords are shardRecords whose data also has a partition t: b, c, a, b, c, a, ...
func partitionedRecords(shard string, from, to int) []record.Record {
	recs := shardRecords(shard, from, to)
	for i := range recs {
		n := from + i
		recs[i].Data = fmt.Appendf(nil, `{"n":%d,"t":%q}`, n, []string{"a", "b", "c"}[n%3])
	}
	return recs
}

// writeFlushed writes recs, flushes the sink and waits for their done.
func writeFlushed(t *testing.T, s *Sink, recs []record.Record) {
	t.Helper()
	done := make(chan struct{})
	if err := s.Write(waitCtx(t), recs, func() { close(done) }); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if err := s.Flush(waitCtx(t)); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	select {
	case <-done:
	case <-waitCtx(t).Done():
		t.Fatal("records never acknowledged")
	}
}

// partitionCounts counts each record n in the data objects (not the cut manifests) and checks
// that every record is under the prefix of its own partition.
func partitionCounts(t *testing.T, f *fakeS3) map[int]int {
	t.Helper()
	counts := map[int]int{}
	for key, o := range f.stored() {
		if o.versions != 1 {
			t.Errorf("object %s was written %d times", key, o.versions)
		}
		if strings.HasPrefix(key, CutPrefix) {
			continue
		}
		for _, line := range lines(t, o.body, true) {
			var v struct {
				N int
				T string
			}
			if err := json.Unmarshal([]byte(line), &v); err != nil {
				t.Fatalf("object %s: %q: %v", key, line, err)
			}
			if !strings.HasPrefix(key, "t="+v.T+"/") {
				t.Errorf("record %d of partition %s is in %s", v.N, v.T, key)
			}
			counts[v.N]++
		}
	}
	return counts
}

// A worker writes two cuts of a partitioned shard and dies without a checkpoint; the next owner
// reads the shard again with other boundaries: every record is in one object of its partition.
func TestExactlyOncePartitionedRerunAfterCrash(t *testing.T) {
	f := newFakeS3()
	var held leaseSwitch
	dead := openRun(t, eoPartitionedConfig(), f, &held)
	writeFlushed(t, dead, partitionedRecords("shard-1", 1, 4))
	writeFlushed(t, dead, partitionedRecords("shard-1", 5, 9))
	wantDelivered(t, dead, 9)

	next := openRun(t, eoPartitionedConfig(), f, &held)
	writeFlushed(t, next, partitionedRecords("shard-1", 1, 6))
	writeFlushed(t, next, partitionedRecords("shard-1", 7, 14))
	assertEachOnce(t, partitionCounts(t, f), 1, 14)
	wantDelivered(t, next, 14)
	manifests := 0
	for key := range f.stored() {
		if strings.HasPrefix(key, CutPrefix+"test-sink/shard-1/") {
			manifests++
		}
	}
	if manifests != 3 {
		t.Errorf("%d cut manifests, want 3 (cuts ending at 4, 9 and 14)", manifests)
	}
}

// A worker dies in the middle of a cut: its manifest and some partitions' objects are written,
// one partition's is not. The next owner, with other boundaries, adopts the cut's end, fills the
// missing partition across two of its buffers, and goes on: every record once.
func TestExactlyOncePartitionedCrashInsideACut(t *testing.T) {
	f := newFakeS3()
	f.failKey = func(key string) bool { return strings.HasPrefix(key, "t=a/") }
	var deadLease, nextLease leaseSwitch
	dead := openRun(t, eoPartitionedConfig(), f, &deadLease)
	if err := dead.Write(waitCtx(t), partitionedRecords("shard-1", 1, 9), nil); err != nil {
		t.Fatal(err)
	}
	go func() { _ = dead.Flush(waitCtx(t)) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		f.mu.Lock()
		failed := f.keyFails
		f.mu.Unlock()
		if failed > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("partition a was never tried")
		}
		time.Sleep(time.Millisecond)
	}
	deadLease.set(sinks.LeaseLost) // it dies: partition a of the cut (start, 9] is not written
	if err := dead.Flush(waitCtx(t)); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	f.failKey = nil
	f.mu.Unlock()
	if _, ok := f.stored()[CutPrefix+"test-sink/shard-1/start"]; !ok {
		t.Fatal("the first cut's manifest was not written")
	}

	next := openRun(t, eoPartitionedConfig(), f, &nextLease)
	writeFlushed(t, next, partitionedRecords("shard-1", 1, 5))
	writeFlushed(t, next, partitionedRecords("shard-1", 6, 12))
	assertEachOnce(t, partitionCounts(t, f), 1, 12)
	wantDelivered(t, next, 12)
}
