package s3

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/shardhose/shardhose/config"
	"github.com/shardhose/shardhose/internal/clock"
	"github.com/shardhose/shardhose/record"
	"github.com/shardhose/shardhose/sinks/backup"
	"github.com/shardhose/shardhose/sinks/sinktest"
)

const errorPrefixForTests = "errors/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd}/"

// partitionedConfig is testConfig with dynamic partitioning on .event_type and the prefix given.
func partitionedConfig(intervalSeconds int, prefix string) config.S3Sink {
	cfg := testConfig(intervalSeconds)
	cfg.Prefix = prefix
	cfg.ErrorOutputPrefix = errorPrefixForTests
	cfg.DynamicPartitioning = &config.DynamicPartitioning{Enabled: true, Queries: map[string]string{"event_type": ".event_type"}}
	return cfg
}

// eventRecord is a record of JSON data arriving at sinktest.Start plus i milliseconds.
func eventRecord(i int, data string) record.Record {
	return record.Record{
		ShardID:                     "shardId-000000000000",
		SequenceNumber:              sinktest.SequenceNumber(i),
		Data:                        []byte(data),
		ApproximateArrivalTimestamp: sinktest.Start.Add(time.Duration(i) * time.Millisecond),
	}
}

// objectLines returns each object's records (decompressed, newline-delimited) by key.
func objectLines(t *testing.T, f *fakeS3) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for key, o := range f.stored() {
		data := strings.TrimSuffix(string(decodeObject(t, key, o.body)), "\n")
		out[key] = strings.Split(data, "\n")
	}
	return out
}

// errorRecordsOf returns the error records of every object under errors/<type>/.
func errorRecordsOf(t *testing.T, f *fakeS3, outputType string) []backup.ErrorRecord {
	t.Helper()
	var all []backup.ErrorRecord
	for _, key := range keysOf(f.stored()) {
		if !strings.HasPrefix(key, "errors/"+outputType+"/") {
			continue
		}
		errs, err := backup.ReadErrorRecords(key, f.stored()[key].body)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, errs...)
	}
	return all
}

// The recipe's events, partitioned with !{partitionKeyFromQuery:event_type} and
// !{timestamp:yyyy/MM/dd}: one object per event type, named by the arrival of its oldest record,
// with no time folders appended (dynamic partitioning uses the prefix as written).
func TestPartitionKeysFromQueryRecipe(t *testing.T) {
	ctx := waitCtx(t)
	f := newFakeS3()
	acks := sinktest.NewAckRecorder(t)
	s := newTestSink(t, partitionedConfig(900, "events/event_type=!{partitionKeyFromQuery:event_type}/!{timestamp:yyyy/MM/dd}/"), f, clock.NewFake(testStart))
	recs := recipeRecords(t)
	if err := s.Write(ctx, recs, acks.Done(1)); err != nil {
		t.Fatal(err)
	}
	if f.callCount() != 0 || acks.Acked(1) {
		t.Fatal("objects written before their buffers were due")
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if acks.Calls(1) != 1 {
		t.Fatalf("done called %d times, want 1", acks.Calls(1))
	}
	want := map[string][]string{
		"purchase":         {string(recs[0].Data), string(recs[2].Data)},
		"view":             {string(recs[1].Data)},
		"add_to_cart":      {string(recs[3].Data)},
		"remove_from_cart": {string(recs[4].Data)},
	}
	oldest := map[string]string{"purchase": "10-30-00", "view": "10-31-00", "add_to_cart": "10-33-00", "remove_from_cart": "10-34-00"}
	got := objectLines(t, f)
	if len(got) != len(want) {
		t.Fatalf("objects %v, want one per event type", keysOf(f.stored()))
	}
	for typ, lines := range want {
		pattern := regexp.MustCompile(`^events/event_type=` + typ + `/2025/01/15/test-sink-1-2025-01-15-` + oldest[typ] + `-` + uuidPattern + `\.gz$`)
		found := false
		for key, have := range got {
			if pattern.MatchString(key) {
				found = true
				if !slices.Equal(have, lines) {
					t.Errorf("%s holds %q, want %q", key, have, lines)
				}
			}
		}
		if !found {
			t.Errorf("no object matches %s; have %v", pattern, keysOf(f.stored()))
		}
	}
}

// Partitioned Parquet: one Parquet file per partition.
func TestPartitionedParquet(t *testing.T) {
	ctx := waitCtx(t)
	f := newFakeS3()
	cfg := parquetConfig()
	cfg.Prefix = "lake/event_type=!{partitionKeyFromQuery:event_type}/"
	cfg.ErrorOutputPrefix = errorPrefixForTests
	cfg.DynamicPartitioning = &config.DynamicPartitioning{Enabled: true, Queries: map[string]string{"event_type": ".event_type"}}
	s := newTestSink(t, cfg, f, clock.NewFake(testStart))
	if err := s.Write(ctx, recipeRecords(t), nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	rows := 0
	for key, o := range f.stored() {
		if !regexp.MustCompile(`^lake/event_type=[a-z_]+/test-sink-1-2025-01-15-10-3[0-9]-00-` + uuidPattern + `\.parquet$`).MatchString(key) {
			t.Errorf("key %s", key)
		}
		got, _ := readParquet(t, o.body)
		for _, r := range got {
			if !strings.Contains(key, "event_type="+r.EventType+"/") {
				t.Errorf("%s holds an event of type %s", key, r.EventType)
			}
		}
		rows += len(got)
	}
	if len(f.stored()) != 4 || rows != 5 {
		t.Fatalf("%d objects with %d rows, want 4 with 5", len(f.stored()), rows)
	}
}

// With max_active_partitions partitions buffered, a record of a new partition goes to the error
// output (partitioning-failed), a record of an active one is still taken, and once the
// partitions are written new ones are taken again.
func TestActivePartitionLimit(t *testing.T) {
	ctx := waitCtx(t)
	f := newFakeS3()
	clk := clock.NewFake(testStart)
	acks := sinktest.NewAckRecorder(t)
	cfg := partitionedConfig(900, "p/!{partitionKeyFromQuery:event_type}/")
	if cfg.DynamicPartitioning.ActivePartitions() != 500 {
		t.Fatalf("default limit %d, want Firehose's 500", cfg.DynamicPartitioning.ActivePartitions())
	}
	s := newTestSink(t, cfg, f, clk)

	var recs []record.Record
	for i := range 501 {
		recs = append(recs, eventRecord(i, fmt.Sprintf(`{"event_type":"t%03d"}`, i)))
	}
	recs = append(recs, eventRecord(501, `{"event_type":"t000","again":true}`))
	if err := s.Write(ctx, recs, acks.Done(1)); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if acks.Calls(1) != 1 {
		t.Fatalf("done called %d times, want 1", acks.Calls(1))
	}
	got := objectLines(t, f)
	data := 0
	for key, lines := range got {
		if strings.HasPrefix(key, "p/") {
			data++
			if strings.HasPrefix(key, "p/t000/") && len(lines) != 2 {
				t.Errorf("%s holds %q, want the first record and the one that came again", key, lines)
			}
			if strings.HasPrefix(key, "p/t500/") {
				t.Errorf("the 501st partition was written as data: %s", key)
			}
		}
	}
	if data != 500 {
		t.Fatalf("%d data objects, want 500", data)
	}
	errs := errorRecordsOf(t, f, ErrorOutputPartitioningFailed)
	if len(errs) != 1 {
		t.Fatalf("%d partitioning-failed records, want 1: %+v", len(errs), errs)
	}
	e := errs[0]
	if e.ErrorCode != ErrorCodeActivePartitionExceeded || string(e.RawData) != `{"event_type":"t500"}` ||
		!strings.Contains(e.ErrorMessage, "max_active_partitions is 500") || e.Extra["sequenceNumber"] != recs[500].SequenceNumber {
		t.Errorf("error record %+v", e)
	}

	// Every partition is written: a new one is taken again.
	if err := s.Write(ctx, []record.Record{eventRecord(600, `{"event_type":"late"}`)}, acks.Done(2)); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if !acks.Acked(2) || len(errorRecordsOf(t, f, ErrorOutputPartitioningFailed)) != 1 {
		t.Fatal("a new partition was refused after every partition was written")
	}
}

// A partition stays active while its object is being written, as in Firehose.
func TestPartitionActiveUntilWritten(t *testing.T) {
	ctx := waitCtx(t)
	f := newFakeS3()
	f.hold = make(chan struct{})
	acks := sinktest.NewAckRecorder(t)
	cfg := partitionedConfig(900, "p/!{partitionKeyFromQuery:event_type}/")
	cfg.DynamicPartitioning.MaxActivePartitions = 2
	cfg.AppendNewline = false
	s := newTestSink(t, cfg, f, clock.NewFake(testStart))

	full := `{"event_type":"a","pad":"` + strings.Repeat("x", 1<<20) + `"}` // fills a 1 MiB buffer: sealed at once
	if err := s.Write(ctx, []record.Record{eventRecord(0, full), eventRecord(1, `{"event_type":"b"}`)}, acks.Done(1)); err != nil {
		t.Fatal(err)
	}
	// a is being written (held), b is buffered: c would be a third active partition.
	if err := s.Write(ctx, []record.Record{eventRecord(2, `{"event_type":"c"}`)}, acks.Done(2)); err != nil {
		t.Fatal(err)
	}
	close(f.hold)
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if errs := errorRecordsOf(t, f, ErrorOutputPartitioningFailed); len(errs) != 1 || string(errs[0].RawData) != `{"event_type":"c"}` {
		t.Fatalf("partitioning-failed records %+v, want c's", errs)
	}
	if err := s.Write(ctx, []record.Record{eventRecord(3, `{"event_type":"d"}`)}, acks.Done(3)); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, k := range keysOf(f.stored()) {
		keys = append(keys, k[:strings.Index(k, "/test-sink")])
	}
	if want := []string{"errors/partitioning-failed/2024/05/06", "p/a", "p/b", "p/d"}; !slices.Equal(keys, want) {
		t.Fatalf("objects under %v, want %v", keys, want)
	}
	if acks.Count() != 3 {
		t.Fatalf("%d writes acknowledged, want 3", acks.Count())
	}
}

// An evaluated prefix may be 512 characters; a record whose key would make it longer goes to the
// error output.
func TestPartitionPrefixLengthLimit(t *testing.T) {
	ctx := waitCtx(t)
	f := newFakeS3()
	s := newTestSink(t, partitionedConfig(900, "p/!{partitionKeyFromQuery:event_type}/"), f, clock.NewFake(testStart))
	fits := strings.Repeat("k", 512-len("p/")-len("/"))
	long := fits + "k"
	if err := s.Write(ctx, []record.Record{
		eventRecord(0, `{"event_type":"`+fits+`"}`),
		eventRecord(1, `{"event_type":"`+long+`"}`),
	}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	var data []string
	for key := range f.stored() {
		if strings.HasPrefix(key, "p/") {
			data = append(data, key)
		}
	}
	if len(data) != 1 || !strings.HasPrefix(data[0], "p/"+fits+"/test-sink-1-") || len("p/"+fits+"/") != 512 {
		t.Fatalf("data objects %v, want one under the 512-character prefix", data)
	}
	errs := errorRecordsOf(t, f, ErrorOutputPartitioningFailed)
	if len(errs) != 1 || errs[0].ErrorCode != ErrorCodePrefixTooLong || !strings.Contains(errs[0].ErrorMessage, "would be 513 characters") {
		t.Fatalf("partitioning-failed records %+v, want the 513-character one", errs)
	}
}

// !{partitionKeyFromLambda:key} reads the keys a transform returned; the record need not be JSON.
// A record without the key goes to the error output.
func TestPartitionKeysFromLambda(t *testing.T) {
	ctx := waitCtx(t)
	f := newFakeS3()
	cfg := partitionedConfig(900, "customer=!{partitionKeyFromLambda:customer}/type=!{partitionKeyFromQuery:event_type}/!{timestamp:HH}/")
	cfg.Compression = CompressionZSTD
	s := newTestSink(t, cfg, f, clock.NewFake(testStart))
	withKeys := func(i int, data string, keys map[string]string) record.Record {
		r := eventRecord(i, data)
		r.PartitionKeys = keys
		return r
	}
	if err := s.Write(ctx, []record.Record{
		withKeys(0, `{"event_type":"view","n":0}`, map[string]string{"customer": "c1"}),
		withKeys(1, `{"event_type":"view","n":1}`, map[string]string{"customer": "c2"}),
		withKeys(2, `{"event_type":"view","n":2}`, map[string]string{"customer": "c1", "unused": "x"}),
		withKeys(3, `{"event_type":"buy","n":3}`, map[string]string{"customer": "c1"}),
		withKeys(4, `{"event_type":"view","n":4}`, nil),
	}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"customer=c1/type=view/10/": {`{"event_type":"view","n":0}`, `{"event_type":"view","n":2}`},
		"customer=c2/type=view/10/": {`{"event_type":"view","n":1}`},
		"customer=c1/type=buy/10/":  {`{"event_type":"buy","n":3}`},
	}
	for key, lines := range objectLines(t, f) {
		if strings.HasPrefix(key, "errors/") {
			continue
		}
		p := key[:strings.Index(key, "test-sink")]
		if !slices.Equal(lines, want[p]) {
			t.Errorf("%s holds %q, want %q", key, lines, want[p])
		}
		delete(want, p)
	}
	if len(want) != 0 {
		t.Errorf("no objects for %v", want)
	}
	errs := errorRecordsOf(t, f, ErrorOutputPartitioningFailed)
	if len(errs) != 1 || errs[0].ErrorCode != ErrorCodeMetadataExtractionFailed || !strings.Contains(errs[0].ErrorMessage, `no partition key "customer"`) {
		t.Fatalf("partitioning-failed records %+v", errs)
	}
}

// A record whose query fails or gives null, or that is not JSON, goes to the error output;
// numbers and booleans become keys as jq prints them.
func TestPartitionQueryResults(t *testing.T) {
	ctx := waitCtx(t)
	f := newFakeS3()
	cfg := partitionedConfig(900, "k=!{partitionKeyFromQuery:k}/")
	cfg.DynamicPartitioning.Queries = map[string]string{"k": `.k | if type == "string" and startswith("n:") then ltrimstr("n:") | tonumber else . end`}
	s := newTestSink(t, cfg, f, clock.NewFake(testStart))
	inputs := []string{
		`{"k":"a"}`, `{"k":7}`, `{"k":7.0}`, `{"k":2.5}`, `{"k":true}`, `{"k":12345678901234567890}`,
		`{"other":1}`, `{"k":null}`, `{"k":""}`, `{"k":[1]}`, `{"k":{"a":1}}`, `not json`, `{"k":"n:x"}`, `{"k":1} {"k":2}`,
	}
	var recs []record.Record
	for i, in := range inputs {
		recs = append(recs, eventRecord(i, in))
	}
	if err := s.Write(ctx, recs, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	var folders []string
	for key := range objectLines(t, f) {
		if !strings.HasPrefix(key, "errors/") {
			folders = append(folders, key[:strings.Index(key, "test-sink")])
		}
	}
	slices.Sort(folders)
	if want := []string{"k=12345678901234567000/", "k=2.5/", "k=7/", "k=a/", "k=true/"}; !slices.Equal(folders, want) {
		t.Errorf("partitions %v, want %v", folders, want)
	}
	errs := errorRecordsOf(t, f, ErrorOutputPartitioningFailed)
	wantMsg := map[string]string{
		`{"other":1}`: "the query gave null", `{"k":null}`: "the query gave null", `{"k":""}`: "empty string",
		`{"k":[1]}`: "an array", `{"k":{"a":1}}`: "an object", `not json`: "record is not one JSON value",
		`{"k":"n:x"}`: "the query failed", `{"k":1} {"k":2}`: "record is not one JSON value",
	}
	if len(errs) != len(wantMsg) {
		t.Fatalf("%d partitioning-failed records, want %d: %+v", len(errs), len(wantMsg), errs)
	}
	for _, e := range errs {
		if w, ok := wantMsg[string(e.RawData)]; !ok || e.ErrorCode != ErrorCodeMetadataExtractionFailed || !strings.Contains(e.ErrorMessage, w) {
			t.Errorf("error record for %s: %s %q, want %s with %q", e.RawData, e.ErrorCode, e.ErrorMessage, ErrorCodeMetadataExtractionFailed, w)
		}
	}
}

// Each partition counts its own interval from its own first record.
func TestPartitionIntervals(t *testing.T) {
	ctx := waitCtx(t)
	f := newFakeS3()
	clk := clock.NewFake(testStart)
	acks := sinktest.NewAckRecorder(t)
	s := newTestSink(t, partitionedConfig(60, "!{partitionKeyFromQuery:event_type}/"), f, clk)
	if err := s.Write(ctx, []record.Record{eventRecord(0, `{"event_type":"a"}`)}, acks.Done(1)); err != nil {
		t.Fatal(err)
	}
	clk.Advance(30 * time.Second)
	if err := s.Write(ctx, []record.Record{eventRecord(1, `{"event_type":"b"}`), eventRecord(2, `{"event_type":"a"}`)}, acks.Done(2)); err != nil {
		t.Fatal(err)
	}
	clk.Advance(30 * time.Second) // a's interval is over, b's is half over
	if err := acks.Wait(ctx, 1); err != nil {
		t.Fatal(err)
	}
	f.waitObjects(ctx, t, 1)
	if acks.Acked(2) || len(f.stored()) != 1 {
		t.Fatalf("after 60 s: %v written, second write acknowledged %v; want only a", keysOf(f.stored()), acks.Acked(2))
	}
	for key, o := range f.stored() {
		if !strings.HasPrefix(key, "a/") || strings.Count(string(decodeObject(t, key, o.body)), "\n") != 2 {
			t.Fatalf("%s is not a's object with both its records", key)
		}
	}
	clk.Advance(30 * time.Second)
	if err := acks.Wait(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if len(f.stored()) != 2 {
		t.Fatalf("objects %v, want a's and b's", keysOf(f.stored()))
	}
}

// The open buffers of all partitions hold at most max_buffered_mbs: a record that would pass it
// seals the largest buffer first.
func TestPartitionMemoryBound(t *testing.T) {
	ctx := waitCtx(t)
	f := newFakeS3()
	cfg := partitionedConfig(900, "!{partitionKeyFromQuery:event_type}/")
	cfg.DynamicPartitioning.MaxBufferedMBs = 1 // = size_in_mbs
	s := newTestSink(t, cfg, f, clock.NewFake(testStart))
	rec := func(i int, typ string, size int) record.Record {
		return eventRecord(i, `{"event_type":"`+typ+`","pad":"`+strings.Repeat("x", size)+`"}`)
	}
	if err := s.Write(ctx, []record.Record{rec(0, "a", 300*kib), rec(1, "b", 300*kib), rec(2, "a", 300*kib)}, nil); err != nil {
		t.Fatal(err)
	}
	if n := f.callCount(); n != 0 {
		t.Fatalf("%d PUTs with 900 KiB buffered, want 0", n)
	}
	if err := s.Write(ctx, []record.Record{rec(3, "c", 200*kib)}, nil); err != nil {
		t.Fatal(err)
	}
	f.waitObjects(ctx, t, 1)
	for key := range f.stored() {
		if !strings.HasPrefix(key, "a/") {
			t.Fatalf("%s written when the bound was reached, want a's (the largest) buffer", key)
		}
	}
	s.mu.Lock()
	open, bytes := len(s.open), s.openBytes
	s.mu.Unlock()
	if open != 2 || bytes > 1<<20 {
		t.Fatalf("%d open buffers holding %d bytes, want b and c within 1 MiB", open, bytes)
	}
}

// A Write blocked mid-way returns ctx's error: the records it had added are still delivered, but
// its done is never called.
func TestBlockedWriteKeepsWhatItAdded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		f := newFakeS3()
		f.hold = make(chan struct{})
		acks := sinktest.NewAckRecorder(t)
		cfg := partitionedConfig(900, "!{partitionKeyFromQuery:event_type}/")
		cfg.MaxUploads = 1
		s := newTestSink(t, cfg, f, clock.NewFake(testStart))
		big := func(i int, typ string) record.Record {
			return eventRecord(i, `{"event_type":"`+typ+`","pad":"`+strings.Repeat("x", 600*kib)+`"}`)
		}
		if err := s.Write(ctx, []record.Record{big(0, "a"), big(1, "a")}, acks.Done(1)); err != nil { // a sealed, held
			t.Fatal(err)
		}
		wctx, cancel := context.WithCancel(ctx)
		result := make(chan error, 1)
		go func() { result <- s.Write(wctx, []record.Record{big(2, "b"), big(3, "b")}, acks.Done(2)) }()
		synctest.Wait() // b's first record is in; its second needs b sealed, with no slot free
		select {
		case err := <-result:
			t.Fatalf("Write returned %v while blocked", err)
		default:
		}
		cancel()
		if err := <-result; !errors.Is(err, context.Canceled) {
			t.Fatalf("blocked Write returned %v, want context.Canceled", err)
		}
		close(f.hold)
		if err := s.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		var bRecords int
		for key, lines := range objectLines(t, f) {
			if strings.HasPrefix(key, "b/") {
				bRecords += len(lines)
			}
		}
		if bRecords != 1 || acks.Acked(2) || acks.Calls(1) != 1 {
			t.Fatalf("b records written %d, done of the cancelled Write called %v, of the first %d times; want 1, false, 1", bRecords, acks.Acked(2), acks.Calls(1))
		}
	})
}

func TestNewRejectsBadPartitioningConfig(t *testing.T) {
	cfg := partitionedConfig(0, "x/")
	cfg.ErrorOutputPrefix = ""
	cfg.DynamicPartitioning.Queries["bad key"] = ".x"
	cfg.DynamicPartitioning.MaxBufferedMBs = -1
	_, err := New(Options{Name: "n", Config: cfg, Client: newFakeS3()})
	if err == nil {
		t.Fatal("New accepted a bad configuration")
	}
	for _, want := range []string{"error_output_prefix: must be set", "interval_in_seconds is 0", "max_buffered_mbs is -1", "must use at least one !{partitionKeyFromQuery:key}"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q: %v", want, err)
		}
	}

	cfg = partitionedConfig(60, "x/!{partitionKeyFromQuery:event_type}/")
	cfg.DynamicPartitioning.Queries["event_type"] = ".event_type | ("
	if _, err := New(Options{Name: "n", Config: cfg, Client: newFakeS3()}); err == nil || !strings.Contains(err.Error(), "dynamic_partitioning.queries.event_type: parse jq query") {
		t.Fatalf("New with a bad query returned %v", err)
	}
}
