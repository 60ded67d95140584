package httpsink

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shardhose/shardhose/config"
	"github.com/shardhose/shardhose/internal/outage"
	"github.com/shardhose/shardhose/record"
	"github.com/shardhose/shardhose/sinks"
	"github.com/shardhose/shardhose/sinks/backup"
	"github.com/shardhose/shardhose/sinks/sinktest"
)

// recordsOf returns n records of sinktest, the last two parts of one KPL aggregate (sub-sequence
// numbers 1 and 2 under one sequence number), so dataId shows both forms.
func recordsOf(n int) []record.Record {
	recs := sinktest.Records(n, "shardId-000000000007")
	if n >= 3 {
		recs[n-1].SequenceNumber = recs[n-2].SequenceNumber
		recs[n-2].SubSequenceNumber, recs[n-1].SubSequenceNumber = 1, 2
		recs[n-2].Aggregated, recs[n-1].Aggregated = true, true
	}
	return recs
}

func dataOf(recs []record.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = string(r.Data)
	}
	return out
}

func TestProtocol(t *testing.T) {
	e := newEnv(t, nil)
	recs := recordsOf(5)
	e.deliverAll(recs)

	reqs := e.recv.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if got := r.data(); !slices.Equal(got, dataOf(recs)) {
		t.Errorf("records %q, want %q", got, dataOf(recs))
	}
	if r.body.Timestamp != testStart.UnixMilli() {
		t.Errorf("timestamp %d, want the clock's %d", r.body.Timestamp, testStart.UnixMilli())
	}
	// The body is exactly Firehose's shape, key order included.
	prefix := fmt.Sprintf(`{"requestId":%q,"timestamp":%d,"records":[{"data":"`, r.body.RequestID, testStart.UnixMilli())
	if !bytes.HasPrefix(r.raw, []byte(prefix)) || !bytes.HasSuffix(r.raw, []byte(`"}]}`)) {
		t.Errorf("body %.120s... is not {\"requestId\",\"timestamp\",\"records\":[{\"data\"}]}", r.raw)
	}
	if ua := r.header.Get("User-Agent"); ua != "shardhose" {
		t.Errorf("User-Agent %q", ua)
	}
	if got := e.s3.callCount(); got != 0 {
		t.Errorf("%d backup writes in FailedDataOnly mode with nothing failed", got)
	}
	if d := e.hooks.delivered; len(d) != 1 || d[0] != 5 || e.hooks.failed != 0 {
		t.Errorf("hooks: delivered %v, failed %d", d, e.hooks.failed)
	}
}

func TestNoAccessKeyNoHeader(t *testing.T) {
	e := newEnv(t, func(c *config.HTTPSink) { c.AccessKey = ""; c.CommonAttributes = nil })
	e.recv.key = ""
	e.recv.attrs = `{"commonAttributes":{}}`
	e.deliverAll(recordsOf(1))
	if _, set := e.recv.requests()[0].header[HeaderAccessKey]; set {
		t.Error("access key header sent without a key")
	}
}

func TestGzip(t *testing.T) {
	e := newEnv(t, func(c *config.HTTPSink) { c.ContentEncoding = "GZIP" })
	recs := recordsOf(50)
	e.deliverAll(recs)
	r := e.recv.requests()[0]
	if !bytes.HasPrefix(r.raw, []byte{0x1f, 0x8b}) {
		t.Fatal("body is not gzipped")
	}
	if got := r.data(); !slices.Equal(got, dataOf(recs)) {
		t.Errorf("records differ after gunzip")
	}
}

// Three attempts of one request, the first two answered 500: the same request id, header and
// body, all three times.
func TestRequestIDStableAcrossRetries(t *testing.T) {
	e := newEnv(t, nil)
	e.recv.setScript(func(n int, r received) reply {
		if n < 2 {
			return reply{status: http.StatusInternalServerError, body: `{"errorMessage":"try later"}`}
		}
		return reply{}
	})
	e.deliverAll(recordsOf(3))
	reqs := e.recv.requests()
	if len(reqs) != 3 {
		t.Fatalf("%d requests, want 3", len(reqs))
	}
	id := reqs[0].header.Get(HeaderRequestID)
	for i, r := range reqs {
		if got := r.header.Get(HeaderRequestID); got != id || r.body.RequestID != id {
			t.Errorf("attempt %d: request id %q / %q, want %q", i+1, got, r.body.RequestID, id)
		}
		if !bytes.Equal(r.raw, reqs[0].raw) {
			t.Errorf("attempt %d sent a different body", i+1)
		}
	}
	// Waits of 1 s and 2 s (15% jitter) between the attempts.
	if took := e.clk.Now().Sub(testStart); took < 2550*time.Millisecond || took > 3450*time.Millisecond {
		t.Errorf("delivered after %s, want about 3s of backoff", took)
	}
	if len(e.s3.stored("")) != 0 {
		t.Error("something went to the backup")
	}
	if e.hooks.failed != 2 || len(e.hooks.delivered) != 1 {
		t.Errorf("hooks: %d failures, %d deliveries; want 2 and 1", e.hooks.failed, len(e.hooks.delivered))
	}
	// A batch of other records gets another request id.
	other := recordsOf(4)[3:]
	e.deliverAll(other)
	if reqs := e.recv.requests(); reqs[3].header.Get(HeaderRequestID) == id {
		t.Error("a request of other records reused the request id")
	}
}

// The request id is made from the sink and the records' positions: the same records get the
// same id (so an endpoint can drop a batch sent again after a restart), other records, another
// sink's or the records in another order, another id.
func TestRequestIDIsDeterministic(t *testing.T) {
	recs := recordsOf(5)
	id := requestID("to-endpoint", recs)
	if !uuidV8.MatchString(id) {
		t.Fatalf("request id %q is not a version 8 UUID", id)
	}
	again := recordsOf(5)
	for i := range again {
		again[i].Data = []byte("other data: the id names positions, not contents")
	}
	if got := requestID("to-endpoint", again); got != id {
		t.Errorf("the same records got %s, then %s", id, got)
	}
	swapped := recordsOf(5)
	swapped[0], swapped[1] = swapped[1], swapped[0]
	moved := recordsOf(5)
	moved[4].SubSequenceNumber++
	otherShard := recordsOf(5)
	otherShard[2].ShardID = "shardId-000000000008"
	for name, got := range map[string]string{
		"another sink":          requestID("elsewhere", recs),
		"fewer records":         requestID("to-endpoint", recs[:4]),
		"another order":         requestID("to-endpoint", swapped),
		"a sub-sequence number": requestID("to-endpoint", moved),
		"another shard":         requestID("to-endpoint", otherShard),
	} {
		if got == id {
			t.Errorf("%s: same request id %s", name, id)
		}
	}
}

// The endpoint answers 500 for longer than the retry duration: the records land in the backup
// as Firehose error records, attemptsMade > 1; then it recovers and new data flows to it.
func TestOutageGoesToBackupThenRecovers(t *testing.T) {
	e := newEnv(t, nil)
	e.recv.setScript(func(n int, r received) reply {
		return reply{status: http.StatusInternalServerError, body: fmt.Sprintf(`{"requestId":%q,"errorMessage":"backend down"}`, r.body.RequestID)}
	})
	recs := recordsOf(4)
	e.deliverAll(recs)

	reqs := e.recv.requests()
	if len(reqs) < 2 {
		t.Fatalf("%d attempts in a 60 s retry duration", len(reqs))
	}
	ended := e.clk.Now()
	if gave := ended.Sub(testStart); gave < 60*time.Second || gave > 61*time.Second {
		t.Errorf("backed up after %s, want the retry duration, 60s", gave)
	}
	got := e.s3.errorRecords(t)
	if len(got) != len(recs) {
		t.Fatalf("%d error records, want %d", len(got), len(recs))
	}
	for i, er := range got {
		r := recs[i]
		wantMsg := fmt.Sprintf(`Received the following response from the endpoint destination. 500: {"requestId":%q,"errorMessage":"backend down"}`, reqs[0].body.RequestID)
		checks := []struct {
			what      string
			got, want any
		}{
			{"attemptsMade", er.AttemptsMade, len(reqs)},
			{"arrivalTimestamp", er.ArrivalTimestamp, r.ApproximateArrivalTimestamp.UnixMilli()},
			{"errorCode", er.ErrorCode, ErrorCodeDestinationException},
			{"errorMessage", er.ErrorMessage, wantMsg},
			{"attemptEndingTimestamp", er.AttemptEndingTimestamp, ended.UnixMilli()},
			{"rawData", string(er.RawData), string(r.Data)},
			{"subsequenceNumber", er.Extra["subsequenceNumber"], json.Number(fmt.Sprint(r.SubSequenceNumber))},
			{"dataId", er.Extra["dataId"], fmt.Sprintf("%s.%d", r.SequenceNumber, r.SubSequenceNumber)},
		}
		for _, c := range checks {
			if c.got != c.want {
				t.Errorf("record %d: %s = %v, want %v", i, c.what, c.got, c.want)
			}
		}
		if len(er.Extra) != 2 {
			t.Errorf("record %d: extra fields %v", i, er.Extra)
		}
	}
	if id := got[3].Extra["dataId"]; !strings.HasSuffix(id.(string), ".2") {
		t.Errorf("dataId of an aggregated record: %v", id)
	}
	if e.hooks.failed != len(reqs) || len(e.hooks.delivered) != 0 {
		t.Errorf("hooks: %d failures, %d deliveries", e.hooks.failed, len(e.hooks.delivered))
	}

	// The endpoint recovers: new data goes to it, not to the backup.
	e.recv.setScript(nil)
	objects := len(e.s3.stored(""))
	more := recordsOf(2)
	e.deliverAll(more)
	last := e.recv.requests()[e.recv.count()-1]
	if !slices.Equal(last.data(), dataOf(more)) {
		t.Errorf("after recovery the endpoint got %q", last.data())
	}
	if n := len(e.s3.stored("")); n != objects {
		t.Errorf("%d backup objects after recovery, want %d", n, objects)
	}
}

func Test413GoesToBackupAtOnce(t *testing.T) {
	e := newEnv(t, nil)
	e.recv.setScript(func(int, received) reply {
		return reply{status: http.StatusRequestEntityTooLarge, body: `{"errorMessage":"Payload too large"}`}
	})
	e.deliverAll(recordsOf(3))
	if n := e.recv.count(); n != 1 {
		t.Errorf("%d requests, want 1: 413 is not retried", n)
	}
	got := e.s3.errorRecords(t)
	if len(got) != 3 || got[0].AttemptsMade != 1 || got[0].ErrorCode != ErrorCodeDestinationException || !strings.Contains(got[0].ErrorMessage, `413: {"errorMessage":"Payload too large"}`) {
		t.Errorf("error records %+v", got)
	}
	if e.clk.Now() != testStart {
		t.Errorf("%s passed before the backup: no wait expected", e.clk.Now().Sub(testStart))
	}
}

func TestRedirectIsNotFollowed(t *testing.T) {
	e := newEnv(t, func(c *config.HTTPSink) { c.RetryDurationInSeconds = 0 })
	e.recv.setScript(func(int, received) reply {
		return reply{status: http.StatusTemporaryRedirect, location: "/elsewhere"}
	})
	e.deliverAll(recordsOf(2))
	if e.recv.diverted != 0 {
		t.Errorf("the redirect was followed %d times", e.recv.diverted)
	}
	got := e.s3.errorRecords(t)
	if len(got) != 2 || got[0].ErrorCode != ErrorCodeDestinationException || !strings.Contains(got[0].ErrorMessage, "307") || got[0].AttemptsMade != 1 {
		t.Errorf("error records %+v", got)
	}
}

// A 200 that does not echo the request id counts as a failure (a 500 in Firehose's words).
func TestWrongRequestIDIsAFailure(t *testing.T) {
	t.Run("retried until right", func(t *testing.T) {
		e := newEnv(t, nil)
		e.recv.setScript(func(n int, r received) reply {
			if n < 2 {
				return reply{body: `{"requestId":"00000000-0000-4000-8000-000000000000","timestamp":1}`}
			}
			return reply{}
		})
		e.deliverAll(recordsOf(2))
		if n := e.recv.count(); n != 3 || len(e.s3.stored("")) != 0 {
			t.Errorf("%d requests, %d backups; want 3 and 0", n, len(e.s3.stored("")))
		}
	})
	for _, c := range []struct {
		name, body, code string
	}{
		{"wrong id", `{"requestId":"00000000-0000-4000-8000-000000000000","timestamp":1}`, ErrorCodeInvalidResponse},
		{"no id", `{"timestamp":1}`, ErrorCodeInvalidResponse},
		{"not json", `OK`, ErrorCodeInvalidResponse},
		{"empty", ` `, ErrorCodeInvalidResponse},
		{"too large", `{"requestId":"x","pad":"` + strings.Repeat("p", 2<<20) + `"}`, ErrorCodeResponseTooLarge},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, func(c *config.HTTPSink) { c.RetryDurationInSeconds = 0 })
			e.recv.setScript(func(int, received) reply { return reply{body: c.body} })
			e.deliverAll(recordsOf(1))
			got := e.s3.errorRecords(t)
			if len(got) != 1 || got[0].ErrorCode != c.code || got[0].AttemptsMade != 1 {
				t.Errorf("error records %+v, want one with %s", got, c.code)
			}
		})
	}
}

func TestRequestTimeout(t *testing.T) {
	e := newEnv(t, func(c *config.HTTPSink) { c.RetryDurationInSeconds = 0 })
	e.recv.setScript(func(int, received) reply { return reply{hang: true} })
	id := e.write(recordsOf(2))
	flushed := e.flush()
	e.clk.drive(e.ctx, t, "the request", func() bool { return e.recv.count() == 1 })
	e.clk.Advance(testTimeout)
	e.clk.drive(e.ctx, t, "acknowledgement", func() bool { return e.acks.Acked(id) })
	<-flushed
	got := e.s3.errorRecords(t)
	if len(got) != 2 || got[0].ErrorCode != ErrorCodeRequestTimeout || got[0].AttemptsMade != 1 {
		t.Errorf("error records %+v", got)
	}
}

func TestConnectionFailed(t *testing.T) {
	e := newEnv(t, func(c *config.HTTPSink) { c.RetryDurationInSeconds = 0 })
	e.recv.srv.Close()
	e.deliverAll(recordsOf(1))
	got := e.s3.errorRecords(t)
	if len(got) != 1 || got[0].ErrorCode != ErrorCodeConnectionFailed {
		t.Fatalf("error records %+v", got)
	}
	if strings.Contains(got[0].ErrorMessage, "token=q") {
		t.Errorf("the message shows the URL's query: %s", got[0].ErrorMessage)
	}
	if strings.Contains(e.logs.String(), "token=q") {
		t.Error("the logs show the URL's query")
	}
}

// With the endpoint and the backup both down, nothing is acknowledged however long it lasts;
// when the backup recovers, the records are stored and acknowledged.
func TestPauseWhenEndpointAndBackupAreDown(t *testing.T) {
	e := newEnv(t, func(c *config.HTTPSink) { c.RetryDurationInSeconds = 10 })
	e.recv.setScript(func(int, received) reply { return reply{status: http.StatusServiceUnavailable} })
	e.s3.setFailing(true)
	id := e.write(recordsOf(3))
	flushed := e.flush()

	e.clk.drive(e.ctx, t, "ten minutes of outage", func() bool { return e.clk.Now().Sub(testStart) >= 10*time.Minute })
	if e.acks.Acked(id) {
		t.Fatal("acknowledged while the endpoint and the backup were down")
	}
	select {
	case err := <-flushed:
		t.Fatalf("Flush returned %v during the outage", err)
	default:
	}
	attempts := e.recv.count()
	if attempts < 6 {
		t.Errorf("%d requests in ten minutes: the endpoint should be tried again between backup rounds", attempts)
	}
	if e.s3.callCount() < 10 {
		t.Errorf("%d backup attempts in ten minutes", e.s3.callCount())
	}

	e.s3.setFailing(false)
	e.clk.drive(e.ctx, t, "acknowledgement", func() bool { return e.acks.Acked(id) })
	if err := <-flushed; err != nil {
		t.Fatal(err)
	}
	got := e.s3.errorRecords(t)
	if len(got) != 3 || got[0].AttemptsMade != e.recv.count() || got[0].ErrorCode != ErrorCodeDestinationException {
		t.Errorf("error records %+v after %d requests", got, e.recv.count())
	}
}

func TestPauseEndsWhenEndpointRecovers(t *testing.T) {
	e := newEnv(t, func(c *config.HTTPSink) { c.RetryDurationInSeconds = 5 })
	e.recv.setScript(func(int, received) reply { return reply{status: http.StatusBadGateway} })
	e.s3.setFailing(true)
	id := e.write(recordsOf(2))
	flushed := e.flush()
	e.clk.drive(e.ctx, t, "five minutes of outage", func() bool { return e.clk.Now().Sub(testStart) >= 5*time.Minute })
	e.recv.setScript(nil)
	e.clk.drive(e.ctx, t, "acknowledgement", func() bool { return e.acks.Acked(id) })
	<-flushed
	if len(e.s3.stored("")) != 0 {
		t.Error("stored in the backup although the endpoint took the records")
	}
	if last := e.recv.requests()[e.recv.count()-1]; !slices.Equal(last.data(), dataOf(recordsOf(2))) {
		t.Errorf("endpoint got %q", last.data())
	}
}

// In AllData mode a batch is acknowledged only once the raw copy is stored too.
func TestAllData(t *testing.T) {
	e := newEnv(t, func(c *config.HTTPSink) { c.S3BackupMode = "AllData"; c.S3Backup.Compression = "GZIP" })
	e.s3.setFailing(true)
	recs := recordsOf(3)
	id := e.write(recs)
	flushed := e.flush()
	e.clk.drive(e.ctx, t, "three minutes of S3 outage", func() bool { return e.clk.Now().Sub(testStart) >= 3*time.Minute })
	if e.acks.Acked(id) {
		t.Fatal("acknowledged before the AllData copy was stored")
	}
	if e.recv.count() != 1 {
		t.Errorf("%d requests, want 1", e.recv.count())
	}
	e.s3.setFailing(false)
	e.clk.drive(e.ctx, t, "acknowledgement", func() bool { return e.acks.Acked(id) })
	<-flushed
	objs := e.s3.stored("")
	if len(objs) != 1 {
		t.Fatalf("objects %v, want the one raw copy", objs)
	}
	for k, body := range objs {
		if strings.Contains(k, backup.FolderHTTPEndpointFailed) || !strings.HasSuffix(k, ".gz") {
			t.Errorf("raw copy at %s", k)
		}
		lines, err := backup.ReadLines(k, body)
		if err != nil {
			t.Fatal(err)
		}
		if len(lines) != 3 || string(lines[0]) != string(recs[0].Data) {
			t.Errorf("raw copy holds %q", lines)
		}
	}
}

func TestRecordTooLarge(t *testing.T) {
	e := newEnv(t, nil)
	recs := recordsOf(3)
	recs[0].Data = bytes.Repeat([]byte("a"), MaxRecordBytes)   // the most that is sent
	recs[1].Data = bytes.Repeat([]byte("b"), MaxRecordBytes+1) // one byte over
	e.deliverAll(recs)
	reqs := e.recv.requests()
	if len(reqs) != 1 || len(reqs[0].body.Records) != 2 || len(reqs[0].body.Records[0].Data) != MaxRecordBytes || string(reqs[0].body.Records[1].Data) != string(recs[2].Data) {
		t.Fatalf("requests carried %d records", len(reqs[0].body.Records))
	}
	got := e.s3.errorRecords(t)
	if len(got) != 1 || got[0].ErrorCode != ErrorCodeRecordTooLarge || got[0].AttemptsMade != 0 || len(got[0].RawData) != MaxRecordBytes+1 || got[0].Extra["dataId"] != dataID(&recs[1]) {
		t.Errorf("error records: %d, first %+v", len(got), got[0].ErrorCode)
	}
}

func TestRequestsHoldAtMost10000Records(t *testing.T) {
	e := newEnv(t, func(c *config.HTTPSink) { c.MaxInFlight = 2 })
	recs := make([]record.Record, 25000)
	for i := range recs {
		recs[i] = record.Record{SequenceNumber: fmt.Sprint(i + 1), Data: []byte(fmt.Sprint(i))}
	}
	e.deliverAll(recs)
	var sizes []int
	var all []string
	for _, r := range e.recv.requests() {
		sizes = append(sizes, len(r.body.Records))
		all = append(all, r.data()...)
	}
	slices.Sort(sizes)
	if !slices.Equal(sizes, []int{5000, 10000, 10000}) {
		t.Errorf("request sizes %v", sizes)
	}
	slices.Sort(all)
	want := dataOf(recs)
	slices.Sort(want)
	if !slices.Equal(all, want) {
		t.Error("the endpoint did not get every record exactly once")
	}
}

// A batch at the size cap stays within the 64 MiB body limit, base64 and JSON included.
func TestBodyLimit(t *testing.T) {
	per := maxRawBatchBytes / MaxRecordsPerRequest
	recs := make([]record.Record, MaxRecordsPerRequest)
	data := bytes.Repeat([]byte{0xff}, per+1) // +1: base64 padding on every record
	for i := range recs {
		recs[i].Data = data[:per+i%2]
	}
	if n := len(encodeBody(requestID("s", recs), testStart, recs)); n > MaxBodyBytes {
		t.Errorf("body of %d bytes, over %d", n, MaxBodyBytes)
	}
	if maxRawBatchBytes < 47<<20 {
		t.Errorf("size cap %d is needlessly small", maxRawBatchBytes)
	}
}

// The access key reaches the endpoint and nowhere else, even when the endpoint echoes it back.
func TestAccessKeyIsNeverLoggedOrStored(t *testing.T) {
	for _, src := range []string{"config", "env", "file"} {
		t.Run(src, func(t *testing.T) {
			var envName string
			var file string
			switch src {
			case "env":
				envName = "SHARDHOSE_TEST_HTTP_ACCESS_KEY"
				t.Setenv(envName, testAccessKey)
			case "file":
				file = filepath.Join(t.TempDir(), "key")
				if err := os.WriteFile(file, []byte(testAccessKey+"\n"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			e := newEnv(t, func(c *config.HTTPSink) {
				c.RetryDurationInSeconds = 3
				if src != "config" {
					c.AccessKey = ""
					c.AccessKeyEnv = envName
					c.AccessKeyFile = file
				}
			})
			e.recv.setScript(func(_ int, r received) reply {
				return reply{status: http.StatusUnauthorized, body: `{"errorMessage":"bad key ` + r.header.Get(HeaderAccessKey) + `"}`}
			})
			e.deliverAll(recordsOf(1))
			if got := e.recv.requests()[0].header.Get(HeaderAccessKey); got != testAccessKey {
				t.Errorf("endpoint got access key %q", got)
			}
			got := e.s3.errorRecords(t)
			if len(got) != 1 || strings.Contains(got[0].ErrorMessage, testAccessKey) || !strings.Contains(got[0].ErrorMessage, "bad key [redacted]") {
				t.Errorf("error message %q", got[0].ErrorMessage)
			}
			for _, obj := range e.s3.stored("") {
				if bytes.Contains(obj, []byte(testAccessKey)) {
					t.Error("the access key is in a backup object")
				}
			}
			if !strings.Contains(e.logs.String(), "bad key [redacted]") {
				t.Errorf("the failure was not logged:\n%s", e.logs.String())
			}
			// newEnv's cleanup checks the logs.
		})
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	good := func() Options {
		c := testConfig("http://127.0.0.1:1")
		return Options{Name: "s", Config: c, SourceARN: testSourceARN, Backup: &nopWriter{}}
	}
	if s, err := New(good()); err != nil {
		t.Fatalf("good options: %v", err)
	} else {
		_ = s.Close(t.Context())
	}
	t.Setenv("SHARDHOSE_TEST_EMPTY_KEY", "")
	keyFile := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(keyFile, bytes.Repeat([]byte("k"), MaxAccessKeyBytes+1), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		mod  func(*Options)
		want string
	}{
		{"no backup", func(o *Options) { o.Backup = nil }, "backup"},
		{"no source arn", func(o *Options) { o.SourceARN = "" }, "source ARN"},
		{"bad url", func(o *Options) { o.Config.URL = "ftp://x" }, "url"},
		{"two key sources", func(o *Options) { o.Config.AccessKeyEnv = "X" }, "at most one"},
		{"env unset", func(o *Options) { o.Config.AccessKey = ""; o.Config.AccessKeyEnv = "SHARDHOSE_TEST_EMPTY_KEY" }, "SHARDHOSE_TEST_EMPTY_KEY is not set"},
		{"file missing", func(o *Options) { o.Config.AccessKey = ""; o.Config.AccessKeyFile = "/nonexistent/key" }, "access_key_file"},
		{"key too long", func(o *Options) { o.Config.AccessKey = ""; o.Config.AccessKeyFile = keyFile }, "4096"},
		{"key with newline", func(o *Options) { o.Config.AccessKey = "a\nb" }, "control characters"},
		{"size", func(o *Options) { o.Config.BufferingHints.SizeInMBs = 65 }, "size_in_mbs"},
		{"mode", func(o *Options) { o.Config.S3BackupMode = "All" }, "s3_backup_mode"},
		{"encoding", func(o *Options) { o.Config.ContentEncoding = "br" }, "content_encoding"},
		{"timeout", func(o *Options) { o.Config.RequestTimeout = 0 }, "request_timeout"},
		{"in flight", func(o *Options) { o.Config.MaxInFlight = 0 }, "max_in_flight"},
		{"retry", func(o *Options) { o.Config.RetryDurationInSeconds = 7201 }, "retry_duration"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := good()
			c.mod(&o)
			_, err := New(o)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %v, want one mentioning %q", err, c.want)
			}
			if err != nil && strings.Contains(err.Error(), testAccessKey) {
				t.Error("the error shows the access key")
			}
		})
	}
}

// A source ARN in the config wins over the stream's.
func TestConfiguredSourceARN(t *testing.T) {
	const arn = "arn:aws:firehose:us-east-1:123456789012:deliverystream/other"
	e := newEnv(t, func(c *config.HTTPSink) { c.SourceARN = arn })
	e.recv.arn = arn // the receiver checks the header
	e.deliverAll(recordsOf(1))
	if got := e.recv.requests()[0].header.Get(HeaderSourceARN); got != arn {
		t.Errorf("source ARN %q, want %q", got, arn)
	}
}

func TestWriteAfterCloseAndEmptyWrite(t *testing.T) {
	e := newEnv(t, nil)
	done := make(chan struct{})
	if err := e.sink.Write(e.ctx, nil, func() { close(done) }); err != nil {
		t.Fatal(err)
	}
	<-done
	if err := e.sink.Close(e.ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.sink.Write(e.ctx, recordsOf(1), func() {}); !errors.Is(err, sinks.ErrClosed) {
		t.Errorf("write after close: %v", err)
	}
}

// nopWriter is a backup.Writer that stores nothing.
type nopWriter struct{}

func (nopWriter) WriteErrors(context.Context, string, []backup.ErrorRecord) error { return nil }
func (nopWriter) WriteRaw(context.Context, []record.Record) error                 { return nil }

// An endpoint outage is one line when the first request fails and one when a request succeeds
// again, naming the sink and the endpoint; each failed attempt is a debug line only.
func TestEndpointOutageIsLoggedOnceWithItsRecovery(t *testing.T) {
	e := newEnv(t, nil)
	e.recv.setScript(func(n int, _ received) reply {
		if n < 4 {
			return reply{status: http.StatusBadGateway}
		}
		return reply{}
	})
	e.deliverAll(recordsOf(3))
	var outages []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(e.logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not JSON: %q", line)
		}
		if m["level"] == "WARN" && m["msg"] != outage.MsgFailing {
			t.Errorf("a warning other than the outage line: %v", m)
		}
		if m["dependency"] == "http" {
			outages = append(outages, m)
		}
	}
	if len(outages) != 2 || outages[0]["msg"] != outage.MsgFailing || outages[0]["sink"] != "http-sink" ||
		outages[1]["msg"] != outage.MsgRecovered || outages[1]["failures"] != 4.0 {
		t.Fatalf("outage lines %v: want one failing line for the endpoint, then one recovery after 4 failures", outages)
	}
}
