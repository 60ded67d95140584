package main

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/shardhose/shardhose/checkpoint"
	"github.com/shardhose/shardhose/record"
)

func TestCounterSumAddsTheLabelledSamplesOfOneCounter(t *testing.T) {
	const text = `# HELP shardhose_processed_records_total Records by handler outcome.
# TYPE shardhose_processed_records_total counter
shardhose_processed_records_total{outcome="delivered",stream="a"} 1200
shardhose_processed_records_total{outcome="delivered",stream="b"} 34
shardhose_processed_records_total{outcome="filtered",stream="a"} 7
# TYPE shardhose_records_read_total counter
shardhose_records_read_total{outcome="delivered",shard="shardId-0"} 99
`
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if got := counterSum(families, "shardhose_processed_records_total", "outcome", "delivered"); got != 1234 {
		t.Errorf("counterSum = %v, want 1234", got)
	}
	if got := counterSum(families, "shardhose_nothing_total", "outcome", "delivered"); got != 0 {
		t.Errorf("counterSum of a missing counter = %v, want 0", got)
	}
}

func TestCountEventsFindsMissingAndDuplicated(t *testing.T) {
	const size = 300
	// Events 0..4: 1 is missing, 3 is there three times; objects hold them back to back.
	objects := map[string][]byte{
		"a": append(append(event(0, size), event(2, size)...), event(3, size)...),
		"b": append(append(event(3, size), event(4, size)...), event(3, size)...),
	}
	missing, dups := countEvents(5, size, objects)
	if missing != 1 || dups != 2 {
		t.Errorf("countEvents = %d missing, %d duplicates; want 1, 2", missing, dups)
	}
	if missing, dups := countEvents(0, size, objects); missing != 0 || dups != 0 {
		t.Errorf("countEvents of no events = %d, %d; want 0, 0", missing, dups)
	}
}

func TestEventIDsAreFoundAndDistinct(t *testing.T) {
	seen := map[string]bool{}
	for i := range 2000 {
		m := idPattern.FindSubmatch(event(i, 1024))
		if m == nil {
			t.Fatalf("no id found in event %d: %s", i, event(i, 1024))
		}
		if seen[string(m[1])] {
			t.Fatalf("event %d has the id of an earlier one: %s", i, m[1])
		}
		seen[string(m[1])] = true
	}
}

func TestAtLastCountsShardsCheckpointedAtOrPastTheirLastRecord(t *testing.T) {
	pos := func(seq string) record.Position { return record.Position{SequenceNumber: seq} }
	last := map[string]string{"s0": "100", "s1": "200", "s2": "300", "s3": "400"}
	leases := []checkpoint.Lease{
		{ShardID: "s0", Checkpoint: pos("100")}, // at
		{ShardID: "s1", Checkpoint: pos("250")}, // past
		{ShardID: "s2", Checkpoint: pos("299")}, // short
		{ShardID: "s3"},                         // none
		{ShardID: "other", Checkpoint: pos("999")},
	}
	if got := atLast(leases, last); got != 2 {
		t.Errorf("atLast = %d, want 2", got)
	}
}

func TestChosenBy(t *testing.T) {
	for _, c := range []struct {
		only, name string
		want       bool
	}{
		{"", "freshness", true},
		{"", "shardhose GZIP", true},
		{"fresh", "freshness", true},
		{"shardhose,shutdown", "shutdown", true},
		{"shardhose,shutdown", "freshness", false},
		{"floor,", "shardhose GZIP", false},
		{"shardhose Snappy$", "shardhose Snappy", true},
		{"shardhose Snappy$", "shardhose Snappy (memory.limit_mbs 32)", false},
		{"shardhose Snappy", "shardhose Snappy (memory.limit_mbs 32)", true},
	} {
		if got := chosenBy(c.only, c.name); got != c.want {
			t.Errorf("chosenBy(%q, %q) = %v, want %v", c.only, c.name, got, c.want)
		}
	}
}

func TestReportsGiveTheMedianAndEveryRound(t *testing.T) {
	m := measures{size: 1024, shards: 4, freshRate: 500, freshWindow: time.Minute, shutdownRecords: 5000}
	fresh := freshReport([]freshRun{
		{p50: 3.0, p99: 6.1, max: 6.5, sent: 30000, delivered: 30000, rate: 499.9, load: "1 2 3"},
		{p50: 2.0, p99: 5.9, max: 6.0, sent: 29990, delivered: 29990, rate: 499.8, load: "4 5 6"},
		{p50: 4.0, p99: 6.3, max: 7.0, sent: 30000, delivered: 30000, duplicates: 1, rate: 500.0, load: "7 8 9"},
	}, m)
	for _, want := range []string{
		"| p50 s | 3.00 | 3.00; 2.00; 4.00 |",
		"| p99 s | 6.10 | 6.10; 5.90; 6.30 |",
		"| max s | 6.50 | 6.50; 6.00; 7.00 |",
		"| sent / delivered / lost / duplicates | | 30000 / 30000 / 0 / 0; 29990 / 29990 / 0 / 0; 30000 / 30000 / 0 / 1 |",
		"500 records/s for 1m0s",
	} {
		if !strings.Contains(fresh, want) {
			t.Errorf("the freshness report lacks %q:\n%s", want, fresh)
		}
	}
	stops := shutdownReport([]shutdownRun{
		{empty: 17 * time.Millisecond, full: 48 * time.Millisecond, delivered: 5000, objects: 1, atLast: 4, shards: 4},
		{empty: 19 * time.Millisecond, full: 52 * time.Millisecond, delivered: 5000, objects: 1, atLast: 4, shards: 4},
	}, m)
	for _, want := range []string{
		"| empty buffer | 18.0 | 17.0; 19.0 | |",
		"| full buffer (5000 records) | 50.0 | 48.0; 52.0 | 5000 of 5000 records in S3 (1 objects, 0 duplicates), 4 of 4 shards checkpointed at their last record;",
	} {
		if !strings.Contains(stops, want) {
			t.Errorf("the shutdown report lacks %q:\n%s", want, stops)
		}
	}
}
