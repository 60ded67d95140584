package opensearch

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/shardhose/shardhose/hooks"
	"github.com/shardhose/shardhose/record"
	"github.com/shardhose/shardhose/sinks/opensearch/bulktest"
	"github.com/shardhose/shardhose/sinks/sinktest"
)

func TestIndexesEveryRecord(t *testing.T) {
	srv := bulktest.Start(t)
	hr := &hookRecorder{}
	e := newEnv(t, srv, func(o *Options) { o.Hooks = hooks.Set{hr} })
	recs := sinktest.Records(10, "shardId-000000000000")
	e.writeAndFlush(t, recs)

	docs := srv.Documents("logs-2024-05-06") // sinktest.Start's day: the arrival time, not the clock's
	if len(docs) != 10 {
		t.Fatalf("index holds %d documents, want 10 (indices %v)", len(docs), srv.Indices())
	}
	for i := range recs {
		id := positionID(&recs[i])
		if string(docs[id]) != string(recs[i].Data) {
			t.Errorf("document %s = %s, want record %d %s", id, docs[id], i, recs[i].Data)
		}
	}
	reqs := srv.BulkRequests()
	if len(reqs) != 1 || len(reqs[0].Items) != 10 {
		t.Fatalf("bulk requests = %d, want one with 10 documents", len(reqs))
	}
	if ct := reqs[0].Header.Values("Content-Type"); !slices.Equal(ct, []string{"application/x-ndjson"}) {
		t.Errorf("Content-Type %q", ct)
	}
	for _, it := range reqs[0].Items {
		if it.Action != "index" || it.Type != "" {
			t.Errorf("item %+v: want action index without _type", it)
		}
	}
	if got := e.backup.errorRecords(t); len(got) != 0 {
		t.Errorf("backup got %d error records", len(got))
	}
	if hr.delivered != 10 || hr.failed != 0 {
		t.Errorf("hooks: delivered %d failed %d, want 10 and 0", hr.delivered, hr.failed)
	}
}

// The same records delivered again (a retry, a restart, a re-read) land on the same documents.
func TestRedeliveryDoesNotDuplicate(t *testing.T) {
	srv := bulktest.Start(t)
	e := newEnv(t, srv, nil)
	recs := sinktest.Records(5, "shardId-000000000000")
	e.writeAndFlush(t, recs)
	e.writeAndFlush(t, recs)
	if n := srv.Count(); n != 5 {
		t.Errorf("%d documents after delivering 5 records twice, want 5", n)
	}
}

func TestRetriesOnlyFailedDocuments(t *testing.T) {
	srv := bulktest.Start(t)
	e := newEnv(t, srv, nil)
	e.drive = true
	recs := sinktest.Records(10, "shardId-000000000000")
	id := func(i int) string { return positionID(&recs[i]) }
	srv.FailID(id(3), bulktest.Failure{Status: 429, Type: "es_rejected_execution_exception", Reason: "rejected execution of coordinating operation", Times: 2})
	srv.FailID(id(7), bulktest.Failure{Status: 429, Type: "es_rejected_execution_exception", Reason: "rejected execution", Times: 2})
	srv.FailID(id(5), bulktest.Failure{Status: 500, Type: "internal_server_error", Reason: "boom", Times: 1})
	e.writeAndFlush(t, recs)

	reqs := srv.BulkRequests()
	want := [][]string{
		{id(0), id(1), id(2), id(3), id(4), id(5), id(6), id(7), id(8), id(9)},
		{id(3), id(5), id(7)},
		{id(3), id(7)},
	}
	if len(reqs) != len(want) {
		t.Fatalf("%d bulk requests, want %d", len(reqs), len(want))
	}
	for i := range want {
		if got := ids(reqs[i]); !slices.Equal(got, want[i]) {
			t.Errorf("request %d carried %v, want %v", i+1, got, want[i])
		}
	}
	if n := srv.Count(); n != 10 {
		t.Errorf("%d documents indexed, want 10", n)
	}
	if got := e.backup.errorRecords(t); len(got) != 0 {
		t.Errorf("backup got %d error records, want none", len(got))
	}
}

func TestRejectedDocumentIsBackedUpAtOnce(t *testing.T) {
	srv := bulktest.Start(t)
	e := newEnv(t, srv, nil)
	e.drive = true
	recs := sinktest.Records(8, "shardId-000000000003")
	id := func(i int) string { return positionID(&recs[i]) }
	reason := "failed to parse field [n] of type [long] in document with id '" + id(4) + "'"
	srv.FailID(id(4), bulktest.Failure{Status: 400, Type: "mapper_parsing_exception", Reason: reason})
	srv.FailID(id(6), bulktest.Failure{Status: 429, Type: "es_rejected_execution_exception", Reason: "rejected", Times: 3})
	e.writeAndFlush(t, recs)

	got := e.backup.errorRecords(t)
	if len(got) != 1 {
		t.Fatalf("%d error records, want 1: %+v", len(got), got)
	}
	r := got[0]
	if r.AttemptsMade != 1 || r.ErrorCode != "400" || string(r.RawData) != string(recs[4].Data) {
		t.Errorf("error record %+v", r)
	}
	if r.ArrivalTimestamp != recs[4].ApproximateArrivalTimestamp.UnixMilli() {
		t.Errorf("arrivalTimestamp %d, want %d", r.ArrivalTimestamp, recs[4].ApproximateArrivalTimestamp.UnixMilli())
	}
	// Backed up with the first answer (the batch was sealed by its interval), before any retry
	// of document 6 waited.
	if first := start.Add(e.interval); r.AttemptEndingTimestamp != first.UnixMilli() {
		t.Errorf("attemptEndingTimestamp %s, want the first attempt's %s", time.UnixMilli(r.AttemptEndingTimestamp).UTC(), first)
	}
	var msg struct{ Type, Reason string }
	if err := json.Unmarshal([]byte(r.ErrorMessage), &msg); err != nil || msg.Type != "mapper_parsing_exception" || msg.Reason != reason {
		t.Errorf("errorMessage %s (%v): want the cluster's error object", r.ErrorMessage, err)
	}
	wantExtra := map[string]any{"esDocumentId": id(4), "esIndexName": "logs-2024-05-06", "esTypeName": "_doc"}
	for k, v := range wantExtra {
		if r.Extra[k] != v {
			t.Errorf("%s = %v, want %v", k, r.Extra[k], v)
		}
	}
	for i, req := range srv.BulkRequests()[1:] {
		if got := ids(req); !slices.Equal(got, []string{id(6)}) {
			t.Errorf("retry %d carried %v, want only document 6", i+1, got)
		}
	}
	if n := srv.Count(); n != 7 {
		t.Errorf("%d documents indexed, want 7", n)
	}
}

func TestThrottledPastRetryDurationIsBackedUp(t *testing.T) {
	srv := bulktest.Start(t)
	e := newEnv(t, srv, nil) // retry duration 300 s
	e.drive = true
	recs := sinktest.Records(6, "shardId-000000000000")
	stuck := positionID(&recs[2])
	srv.FailID(stuck, bulktest.Failure{Status: 429, Type: "es_rejected_execution_exception", Reason: "rejected execution of primary operation"})
	e.writeAndFlush(t, recs)

	got := e.backup.errorRecords(t)
	if len(got) != 1 {
		t.Fatalf("%d error records, want 1", len(got))
	}
	r := got[0]
	reqs := srv.BulkRequests()
	if r.AttemptsMade < 2 || r.AttemptsMade != len(reqs) {
		t.Errorf("attemptsMade %d with %d requests sent, want more than 1 and equal", r.AttemptsMade, len(reqs))
	}
	if r.ErrorCode != "429" || !strings.Contains(r.ErrorMessage, "es_rejected_execution_exception") || r.Extra["esDocumentId"] != stuck {
		t.Errorf("error record %+v", r)
	}
	if took := time.UnixMilli(r.AttemptEndingTimestamp).Sub(start.Add(e.interval)); took < 300*time.Second || took > 330*time.Second {
		t.Errorf("given up after %s, want the 300 s retry duration", took)
	}
	for i, req := range reqs[1:] {
		if got := ids(req); !slices.Equal(got, []string{stuck}) {
			t.Errorf("retry %d carried %v, want only the throttled document", i+1, got)
		}
	}
	if n := srv.Count(); n != 5 {
		t.Errorf("%d documents indexed, want 5", n)
	}
}

func TestRetryDurationZeroTriesOnce(t *testing.T) {
	srv := bulktest.Start(t)
	e := newEnv(t, srv, func(o *Options) { o.Config.RetryDurationInSeconds = 0 })
	e.drive = true
	recs := sinktest.Records(3, "s")
	srv.FailID(positionID(&recs[0]), bulktest.Failure{Status: 503, Type: "unavailable_shards_exception", Reason: "primary shard is not active"})
	e.writeAndFlush(t, recs)
	if n := len(srv.BulkRequests()); n != 1 {
		t.Errorf("%d bulk requests, want 1", n)
	}
	if got := e.backup.errorRecords(t); len(got) != 1 || got[0].AttemptsMade != 1 || got[0].ErrorCode != "503" {
		t.Errorf("error records %+v", got)
	}
}

func TestMalformedRecordsAreNeverSent(t *testing.T) {
	srv := bulktest.Start(t)
	e := newEnv(t, srv, nil)
	recs := sinktest.Records(4, "s")
	recs[1].Data = []byte("plain text, not JSON")
	recs[2].Data = []byte(`[{"a":1}]`)
	e.writeAndFlush(t, recs)

	if reqs := srv.BulkRequests(); len(reqs) != 1 || len(reqs[0].Items) != 2 {
		t.Fatalf("bulk requests %+v, want one with the 2 JSON objects", reqs)
	}
	got := e.backup.errorRecords(t)
	if len(got) != 2 {
		t.Fatalf("%d error records, want 2", len(got))
	}
	for i, r := range got {
		if r.ErrorCode != ErrorCodeMalformedDocument || r.AttemptsMade != 0 || string(r.RawData) != string(recs[i+1].Data) {
			t.Errorf("error record %d: %+v", i, r)
		}
		if r.Extra["esIndexName"] != "logs-2024-05-06" {
			t.Errorf("esIndexName %v", r.Extra["esIndexName"])
		}
	}
}

func TestDocumentIDFromField(t *testing.T) {
	srv := bulktest.Start(t)
	e := newEnv(t, srv, func(o *Options) {
		o.Config.DocumentIDField = "order_id"
		o.Config.IndexRotation = "NoRotation"
	})
	recs := sinktest.Records(4, "s")
	recs[0].Data = []byte(`{"order_id":"A-1","v":1}`)
	recs[1].Data = []byte(`{"order_id":7,"v":2}`)
	recs[2].Data = []byte(`{"v":3}`)
	recs[3].Data = []byte(`{"order_id":"A-1","v":4}`) // replaces the first
	e.writeAndFlush(t, recs)

	docs := srv.Documents("logs")
	if len(docs) != 2 || string(docs["A-1"]) != `{"order_id":"A-1","v":4}` || string(docs["7"]) != `{"order_id":7,"v":2}` {
		t.Errorf("documents %v", docs)
	}
	got := e.backup.errorRecords(t)
	if len(got) != 1 || got[0].ErrorCode != ErrorCodeMissingDocumentID || !strings.Contains(got[0].ErrorMessage, "order_id") {
		t.Errorf("error records %+v", got)
	}
}

func TestNoDocumentIDLetsTheClusterChoose(t *testing.T) {
	srv := bulktest.Start(t)
	e := newEnv(t, srv, func(o *Options) { o.Config.DocumentIDOptions.DefaultDocumentIDFormat = "NO_DOCUMENT_ID" })
	e.writeAndFlush(t, sinktest.Records(3, "s"))
	for _, it := range srv.BulkRequests()[0].Items {
		if it.ID != "" {
			t.Errorf("item sent with _id %q", it.ID)
		}
	}
	if n := srv.Count(); n != 3 {
		t.Errorf("%d documents", n)
	}
}

// A 409 for a record-position id means the record is already there; with ids from a field it is
// a conflict between writers, retried.
func TestConflict(t *testing.T) {
	t.Run("record position id", func(t *testing.T) {
		srv := bulktest.Start(t)
		e := newEnv(t, srv, nil)
		recs := sinktest.Records(3, "s")
		srv.FailID(positionID(&recs[1]), bulktest.Failure{Status: 409, Type: "version_conflict_engine_exception", Reason: "document already exists"})
		e.writeAndFlush(t, recs)
		if n := len(srv.BulkRequests()); n != 1 {
			t.Errorf("%d requests, want 1: the conflict counts as indexed", n)
		}
		if got := e.backup.errorRecords(t); len(got) != 0 {
			t.Errorf("backed up %+v", got)
		}
	})
	t.Run("field id", func(t *testing.T) {
		srv := bulktest.Start(t)
		e := newEnv(t, srv, func(o *Options) { o.Config.DocumentIDField = "n" })
		e.drive = true
		srv.FailID("1", bulktest.Failure{Status: 409, Type: "version_conflict_engine_exception", Reason: "version conflict", Times: 1})
		e.writeAndFlush(t, sinktest.Records(3, "s"))
		reqs := srv.BulkRequests()
		if len(reqs) != 2 || !slices.Equal(ids(reqs[1]), []string{"1"}) {
			t.Errorf("requests %v, want a retry of document 1", reqs)
		}
		if n := srv.Count(); n != 3 {
			t.Errorf("%d documents", n)
		}
	})
}

func TestWholeRequestFailuresRetryTheBatch(t *testing.T) {
	for _, f := range []bulktest.RequestFailure{
		{Status: 503, Type: "cluster_block_exception", Reason: "blocked by: [SERVICE_UNAVAILABLE/1/state not recovered / initialized]", Times: 2},
		{Status: 429, Type: "circuit_breaking_exception", Reason: "[parent] Data too large", Times: 2},
		{Drop: true, Times: 2},
	} {
		t.Run(fmt.Sprintf("%d drop=%v", f.Status, f.Drop), func(t *testing.T) {
			srv := bulktest.Start(t)
			e := newEnv(t, srv, nil)
			e.drive = true
			srv.FailRequests(f)
			e.writeAndFlush(t, sinktest.Records(5, "s"))
			reqs := srv.BulkRequests()
			if len(reqs) != 3 {
				t.Fatalf("%d requests, want 3", len(reqs))
			}
			for i, r := range reqs {
				if len(r.Items) != 5 {
					t.Errorf("request %d carried %d documents, want all 5", i+1, len(r.Items))
				}
			}
			if n := srv.Count(); n != 5 {
				t.Errorf("%d documents", n)
			}
		})
	}
}

func TestConnectionFailurePastRetryDuration(t *testing.T) {
	srv := bulktest.Start(t)
	e := newEnv(t, srv, func(o *Options) { o.Config.RetryDurationInSeconds = 60 })
	e.drive = true
	srv.FailRequests(bulktest.RequestFailure{Drop: true})
	recs := sinktest.Records(2, "s")
	e.writeAndFlush(t, recs)
	got := e.backup.errorRecords(t)
	if len(got) != 2 {
		t.Fatalf("%d error records, want 2", len(got))
	}
	for _, r := range got {
		if r.ErrorCode != ErrorCodeConnectionFailed || r.AttemptsMade < 2 || r.ErrorMessage == "" {
			t.Errorf("error record %+v", r)
		}
	}
}

// OpenSearch 2 refuses _type: every document of the request is rejected for good.
func TestRequestRejectedForGood(t *testing.T) {
	srv := bulktest.Start(t)
	e := newEnv(t, srv, func(o *Options) { o.Config.TypeName = "event" })
	e.writeAndFlush(t, sinktest.Records(3, "s"))
	got := e.backup.errorRecords(t)
	if len(got) != 3 {
		t.Fatalf("%d error records, want 3", len(got))
	}
	for _, r := range got {
		if r.ErrorCode != "400" || r.AttemptsMade != 1 || !strings.Contains(r.ErrorMessage, "_type") || r.Extra["esTypeName"] != "event" {
			t.Errorf("error record %+v", r)
		}
	}
	if n := len(srv.BulkRequests()); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}

	// An Elasticsearch 6 cluster takes the type.
	srv6 := bulktest.Start(t)
	srv6.AcceptTypes()
	e6 := newEnv(t, srv6, func(o *Options) { o.Config.TypeName = "event" })
	e6.writeAndFlush(t, sinktest.Records(3, "s"))
	if n := srv6.Count(); n != 3 || srv6.BulkRequests()[0].Items[0].Type != "event" {
		t.Errorf("ES6: %d documents, items %+v", n, srv6.BulkRequests()[0].Items)
	}
}

func TestTooLargeRequestIsSplit(t *testing.T) {
	srv := bulktest.Start(t)
	e := newEnv(t, srv, nil)
	srv.FailRequests(bulktest.RequestFailure{Status: 413, Type: "", Reason: "Request Entity Too Large", Times: 1, Paths: []string{"/_bulk"}})
	e.writeAndFlush(t, sinktest.Records(10, "s"))
	reqs := srv.BulkRequests()
	if len(reqs) != 3 || len(reqs[0].Items) != 10 || len(reqs[1].Items) != 5 || len(reqs[2].Items) != 5 {
		t.Errorf("requests carried %v documents, want 10 then 5 and 5", func() []int {
			var n []int
			for _, r := range reqs {
				n = append(n, len(r.Items))
			}
			return n
		}())
	}
	if n := srv.Count(); n != 10 {
		t.Errorf("%d documents", n)
	}
}

func TestAllDocumentsCopiesEveryRecord(t *testing.T) {
	srv := bulktest.Start(t)
	e := newEnv(t, srv, func(o *Options) { o.Config.S3BackupMode = "AllDocuments" })
	recs := sinktest.Records(6, "s")
	srv.FailID(positionID(&recs[1]), bulktest.Failure{Status: 400, Type: "mapper_parsing_exception", Reason: "failed to parse"})
	e.writeAndFlush(t, recs)

	raw := e.backup.rawRecords()
	if len(raw) != 6 {
		t.Fatalf("raw copy holds %d records, want 6", len(raw))
	}
	for i := range raw {
		if string(raw[i].Data) != string(recs[i].Data) {
			t.Errorf("raw record %d = %s", i, raw[i].Data)
		}
	}
	if got := e.backup.errorRecords(t); len(got) != 1 || got[0].Extra["esDocumentId"] != positionID(&recs[1]) {
		t.Errorf("error records %+v", got)
	}
	if n := srv.Count(); n != 5 {
		t.Errorf("%d documents", n)
	}
}

// In AllDocuments mode the batch waits for the raw copy even when the cluster took everything.
func TestAllDocumentsWaitsForTheCopy(t *testing.T) {
	srv := bulktest.Start(t)
	e := newEnv(t, srv, func(o *Options) { o.Config.S3BackupMode = "AllDocuments" })
	e.backup.setFailing(true)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	acks := sinktest.NewAckRecorder(t)
	if err := e.sink.Write(ctx, sinktest.Records(3, "s"), acks.Done(1)); err != nil {
		t.Fatal(err)
	}
	e.seal(t)
	flushed := make(chan error, 1)
	go func() { flushed <- e.sink.Flush(ctx) }()
	if err := srv.WaitBulkRequests(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := e.backup.waitCalls(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if acks.Acked(1) {
		t.Fatal("acknowledged before the raw copy was stored")
	}
	e.backup.setFailing(false)
	if err := <-flushed; err != nil {
		t.Fatal(err)
	}
	if !acks.Acked(1) || len(e.backup.rawRecords()) != 3 {
		t.Errorf("acked %v, raw %d", acks.Acked(1), len(e.backup.rawRecords()))
	}
}

// When the cluster and the backup both fail, nothing is acknowledged and both are tried in turn;
// the batch goes through as soon as either recovers.
func TestPausesWhileClusterAndBackupFail(t *testing.T) {
	for _, recovers := range []string{"cluster", "backup"} {
		t.Run(recovers+" recovers", func(t *testing.T) {
			srv := bulktest.Start(t)
			e := newEnv(t, srv, func(o *Options) { o.Config.RetryDurationInSeconds = 60 })
			e.drive = true
			srv.FailRequests(bulktest.RequestFailure{Status: 503, Type: "no_shard_available_action_exception", Reason: "all shards failed"})
			e.backup.setFailing(true)
			e.backup.probe = func() int { return len(srv.BulkRequests()) } // before any call

			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			acks := sinktest.NewAckRecorder(t)
			recs := sinktest.Records(4, "s")
			if err := e.sink.Write(ctx, recs, acks.Done(1)); err != nil {
				t.Fatal(err)
			}
			e.seal(t)
			flushed := make(chan error, 1)
			go func() { flushed <- e.sink.Flush(ctx) }()

			// Past the retry duration: backup rounds and delivery attempts alternate.
			// The requests are counted at the start of backup rounds 3 and 5: the clock is driven,
			// so by the time this goroutine runs more rounds may have passed.
			if err := e.backup.waitCalls(ctx, 5); err != nil {
				t.Fatal(err)
			}
			if before, after := e.backup.probedAt(3), e.backup.probedAt(5); after <= before {
				t.Errorf("no delivery attempt between backup rounds 3 and 5 (%d then %d requests)", before, after)
			}
			if acks.Acked(1) {
				t.Fatal("acknowledged while both the cluster and the backup fail")
			}

			if recovers == "cluster" {
				srv.ClearFailures()
			} else {
				e.backup.setFailing(false)
			}
			if err := <-flushed; err != nil {
				t.Fatalf("Flush: %v", err)
			}
			if !acks.Acked(1) {
				t.Fatal("not acknowledged after recovery")
			}
			if recovers == "cluster" {
				if n := srv.Count(); n != 4 {
					t.Errorf("%d documents indexed, want 4", n)
				}
				if got := e.backup.errorRecords(t); len(got) != 0 {
					t.Errorf("backup got %d error records", len(got))
				}
				return
			}
			got := e.backup.errorRecords(t)
			if len(got) != 4 {
				t.Fatalf("%d error records, want 4", len(got))
			}
			for _, r := range got {
				if r.ErrorCode != "503" || r.AttemptsMade < 2 {
					t.Errorf("error record %+v", r)
				}
			}
		})
	}
}

// Concurrent writes spread over several batches are each acknowledged exactly once.
func TestManyWritesAcknowledgedOnce(t *testing.T) {
	srv := bulktest.Start(t)
	e := newEnv(t, srv, func(o *Options) { o.Config.BufferingHints.SizeInMBs = 1 })
	e.drive = true
	big := strings.Repeat("x", 1000)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	acks := sinktest.NewAckRecorder(t)
	const writers, perWrite = 8, 300 // 2,400 records of ~1 KiB: several 1 MiB batches
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			recs := sinktest.Records(perWrite, "shardId-"+strconv.Itoa(w))
			for i := range recs {
				recs[i].Data = fmt.Appendf(nil, `{"w":%d,"i":%d,"pad":%q}`, w, i, big)
			}
			if err := e.sink.Write(ctx, recs, acks.Done(w)); err != nil {
				t.Errorf("Write %d: %v", w, err)
			}
		})
	}
	wg.Wait()
	e.seal(t)
	if err := e.sink.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := acks.Count(); n != writers {
		t.Errorf("%d writes acknowledged, want %d", n, writers)
	}
	if n := srv.Count(); n != writers*perWrite {
		t.Errorf("%d documents, want %d", n, writers*perWrite)
	}
	if n := len(srv.BulkRequests()); n < 3 {
		t.Errorf("%d bulk requests, want several batches", n)
	}
}

func TestBasicAuth(t *testing.T) {
	srv := bulktest.Start(t)
	srv.RequireBasicAuth("shardhose", "s3cret")
	pwFile := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(pwFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SHARDHOSE_TEST_OS_PASSWORD", "s3cret")
	for name, auth := range map[string]func(*Options){
		"password":      func(o *Options) { o.Config.Auth.Password = "s3cret" },
		"password_file": func(o *Options) { o.Config.Auth.PasswordFile = pwFile },
		"password_env":  func(o *Options) { o.Config.Auth.PasswordEnv = "SHARDHOSE_TEST_OS_PASSWORD" },
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, srv, func(o *Options) {
				o.Config.Auth.Type = "basic"
				o.Config.Auth.Username = "shardhose"
				auth(o)
			})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := e.sink.Check(ctx); err != nil {
				t.Fatalf("Check: %v", err)
			}
			before := srv.Count()
			e.writeAndFlush(t, sinktest.Records(2, name))
			if srv.Count() != before+2 {
				t.Errorf("documents %d, want %d", srv.Count(), before+2)
			}
			reqs := srv.BulkRequests()
			if h := reqs[len(reqs)-1].Header.Get("Authorization"); !strings.HasPrefix(h, "Basic ") {
				t.Errorf("Authorization %q", h)
			}
		})
	}
	t.Run("wrong password", func(t *testing.T) {
		e := newEnv(t, srv, func(o *Options) {
			o.Config.Auth = configAuth("basic", "shardhose", "wrong")
		})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := e.sink.Check(ctx)
		if err == nil || !strings.Contains(err.Error(), "refused the credentials") || !strings.Contains(err.Error(), "401") {
			t.Errorf("Check = %v, want a refusal of the credentials", err)
		}
		if err != nil && strings.Contains(err.Error(), "wrong") {
			t.Errorf("the password appears in %v", err)
		}
	})
	t.Run("password env unset", func(t *testing.T) {
		_, err := New(Options{Name: "search", Backup: newFakeBackup(), Config: func() (c configSection) {
			c = testConfig(srv)
			c.Auth.Type, c.Auth.Username, c.Auth.PasswordEnv = "basic", "u", "SHARDHOSE_TEST_OS_UNSET_VARIABLE"
			return c
		}()})
		if err == nil || !strings.Contains(err.Error(), "SHARDHOSE_TEST_OS_UNSET_VARIABLE is not set") {
			t.Errorf("New = %v", err)
		}
	})
}

var testCreds = aws.Credentials{AccessKeyID: "AKIDSHARDHOSETEST", SecretAccessKey: "c2VjcmV0LWtleS1mb3ItdGVzdHM", Source: "test"}

func TestSigV4(t *testing.T) {
	for _, service := range []string{"es", "aoss"} {
		t.Run(service, func(t *testing.T) {
			srv := bulktest.Start(t)
			srv.RequireSigV4(testCreds, "eu-west-1", service)
			e := newEnv(t, srv, func(o *Options) {
				o.Config.Auth.Type, o.Config.Auth.Service = "sigv4", service
				o.AWSCredentials = aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) { return testCreds, nil })
				o.Region = "eu-west-1"
			})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := e.sink.Check(ctx); err != nil {
				t.Fatalf("Check: %v", err)
			}
			recs := sinktest.Records(3, "s")
			srv.FailID(positionID(&recs[2]), bulktest.Failure{Status: 400, Type: "mapper_parsing_exception", Reason: "failed to parse"})
			e.writeAndFlush(t, recs)
			if n := srv.Count(); n != 2 {
				t.Fatalf("%d documents: the server refused the signature? requests %+v", n, srv.Requests())
			}
			h := srv.BulkRequests()[0].Header.Get("Authorization")
			if !strings.HasPrefix(h, "AWS4-HMAC-SHA256 Credential=AKIDSHARDHOSETEST/") || !strings.Contains(h, "/eu-west-1/"+service+"/aws4_request") {
				t.Errorf("Authorization %q", h)
			}
			got := e.backup.errorRecords(t)
			if len(got) != 1 {
				t.Fatalf("%d error records", len(got))
			}
			want := []string{"esDocumentId", "esIndexName", "esTypeName"}
			if service == "aoss" {
				want = []string{"osDocumentId", "osIndexName"}
			}
			var keys []string
			for k := range got[0].Extra {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			if !slices.Equal(keys, want) {
				t.Errorf("error record fields %v, want %v", keys, want)
			}
		})
	}
	t.Run("wrong secret", func(t *testing.T) {
		srv := bulktest.Start(t)
		srv.RequireSigV4(testCreds, "eu-west-1", "es")
		bad := testCreds
		bad.SecretAccessKey = "not-the-secret"
		e := newEnv(t, srv, func(o *Options) {
			o.Config.Auth.Type = "sigv4"
			o.AWSCredentials = aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) { return bad, nil })
			o.Region = "eu-west-1"
		})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.sink.Check(ctx); err == nil || !strings.Contains(err.Error(), "403") {
			t.Errorf("Check = %v, want 403", err)
		}
	})
}

func TestTLSWithCAFile(t *testing.T) {
	srv := bulktest.StartTLS(t)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, srv.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	trusted := newEnv(t, srv, func(o *Options) { o.Config.TLS.CAFile = ca })
	if err := trusted.sink.Check(ctx); err != nil {
		t.Fatalf("Check with ca_file: %v", err)
	}
	trusted.writeAndFlush(t, sinktest.Records(2, "s"))
	if n := srv.Count(); n != 2 {
		t.Errorf("%d documents", n)
	}

	untrusted := newEnv(t, srv, nil)
	if err := untrusted.sink.Check(ctx); err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Errorf("Check without the CA = %v, want a certificate failure", err)
	}
	insecure := newEnv(t, srv, func(o *Options) { o.Config.TLS.InsecureSkipVerify = true })
	if err := insecure.sink.Check(ctx); err != nil {
		t.Errorf("Check with insecure_skip_verify: %v", err)
	}
}

func TestCheckUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	srv := bulktest.Start(t)
	e := newEnv(t, srv, func(o *Options) { o.Config.Endpoints = []string{"http://" + addr} })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.sink.Check(ctx); err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Errorf("Check = %v", err)
	}
}

func TestNewReportsEveryProblem(t *testing.T) {
	cfg := configSection{}
	cfg.IndexRotation = "Hourly"
	cfg.S3BackupMode = "Everything"
	cfg.Auth.Type = "sigv4"
	_, err := New(Options{Name: "search", Config: cfg})
	if err == nil {
		t.Fatal("New accepted an empty configuration")
	}
	for _, want := range []string{"backup writer", "endpoints", "index:", "index_rotation", "default_document_id_format", "size_in_mbs", "interval_in_seconds", "s3_backup_mode", "max_in_flight", "request_timeout", "no AWS credentials"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s:\n%v", want, err)
		}
	}
}

// The sink's requests reach the cluster's HTTP API as documented: POST /_bulk with NDJSON.
func TestBulkRequestShape(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	inner := bulktest.Start(t)
	tr := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.Path)
		mu.Unlock()
		return http.DefaultTransport.RoundTrip(r)
	})
	e := newEnv(t, inner, func(o *Options) { o.HTTPTransport = tr })
	e.writeAndFlush(t, sinktest.Records(1, "s"))
	mu.Lock()
	defer mu.Unlock()
	if !slices.Contains(seen, "POST /_bulk") {
		t.Errorf("requests %v, want POST /_bulk", seen)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// Records without an arrival time are named by the time the batch was prepared.
func TestIndexFromClockWithoutArrivalTime(t *testing.T) {
	srv := bulktest.Start(t)
	e := newEnv(t, srv, func(o *Options) { o.Config.IndexRotation = "OneHour" })
	recs := []record.Record{{Data: []byte(`{"a":1}`)}}
	e.writeAndFlush(t, recs)
	if got := srv.Indices(); got[indexName("logs", oneHour, start)] != 1 {
		t.Errorf("indices %v", got)
	}
}

// With one of two endpoints down, every batch still gets through, on retries if need be.
func TestSeveralEndpointsOneDown(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close()
	srv := bulktest.Start(t)
	e := newEnv(t, srv, func(o *Options) { o.Config.Endpoints = []string{dead, srv.URL} })
	e.drive = true
	for i := range 4 {
		e.writeAndFlush(t, sinktest.Records(3, "shard-"+strconv.Itoa(i)))
	}
	if n := srv.Count(); n != 12 {
		t.Errorf("%d documents, want 12", n)
	}
	if got := e.backup.errorRecords(t); len(got) != 0 {
		t.Errorf("%d error records", len(got))
	}
}
