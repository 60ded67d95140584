package dlq

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shardhose/shardhose/record"
)

// lambdaOnFailure is Lambda's on-failure record for a Kinesis event source, as AWS documents it
// (the shape shardhose must reproduce field for field).
const lambdaOnFailure = `{
  "requestContext": {"requestId": "c9b8fa9f-5a7f-4c7a-a4f0-7c1b8d1e2a3b",
                     "functionArn": "arn:aws:lambda:us-east-2:123456789012:function:myfunction",
                     "condition": "RetryAttemptsExhausted", "approximateInvokeCount": 1},
  "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
  "version": "1.0",
  "timestamp": "2019-11-14T00:38:06.021Z",
  "KinesisBatchInfo": {
    "shardId": "shardId-000000000001",
    "startSequenceNumber": "49601189658422359378836298521827638475320189012309704722",
    "endSequenceNumber": "49601189658422359378836298522902373528957594348623495186",
    "approximateArrivalOfFirstRecord": "2019-11-14T00:38:04.835Z",
    "approximateArrivalOfLastRecord": "2019-11-14T00:38:05.580Z",
    "batchSize": 500,
    "streamArn": "arn:aws:kinesis:us-east-2:123456789012:stream/mystream"
  }
}`

const (
	testStreamARN = "arn:aws:kinesis:us-east-2:123456789012:stream/mystream"
	testShard     = "shardId-000000000001"
	firstSeq      = "49601189658422359378836298521827638475320189012309704722"
	lastSeq       = "49601189658422359378836298522902373528957594348623495186"
)

func mustTime(t testing.TB, s string) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

// referenceFailure is the failure behind lambdaOnFailure: 500 records from firstSeq to lastSeq.
func referenceFailure(t testing.TB) Failure {
	t.Helper()
	recs := make([]record.Record, 500)
	base, _ := new(big.Int).SetString(firstSeq, 10)
	first := mustTime(t, "2019-11-14T00:38:04.835Z")
	for i := range recs {
		seq := new(big.Int).Add(base, big.NewInt(int64(i)*1000)).String()
		recs[i] = record.Record{
			StreamName: "mystream", ShardID: testShard, PartitionKey: fmt.Sprint("key-", i),
			SequenceNumber: seq, Data: []byte(fmt.Sprintf(`{"n":%d}`, i)),
			ApproximateArrivalTimestamp: first.Add(time.Duration(i) * time.Millisecond),
		}
	}
	recs[499].SequenceNumber = lastSeq
	// Sub-millisecond precision is dropped, as Lambda's format has milliseconds only.
	recs[499].ApproximateArrivalTimestamp = mustTime(t, "2019-11-14T00:38:05.580999Z")
	return Failure{
		Condition:     RetryAttemptsExhausted,
		StreamName:    "mystream",
		StreamARN:     testStreamARN,
		ShardID:       testShard,
		Region:        "us-east-2",
		Records:       recs,
		Attempts:      1,
		ErrorMessage:  "invalid JSON",
		FunctionError: "Unhandled",
		FunctionARN:   "arn:aws:lambda:us-east-2:123456789012:function:myfunction",
		Time:          mustTime(t, "2019-11-14T00:38:06.021Z").In(time.FixedZone("EST", -5*3600)),
	}
}

var uuidV5 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// Every field of Lambda's record is there, with the same name, nesting, JSON type and value
// (the request id aside, which is ours); the only additions are errorMessage, attemptsMade and
// records, at the top level.
func TestMessageHasLambdasShape(t *testing.T) {
	body, err := encode(NewMessage(referenceFailure(t)))
	if err != nil {
		t.Fatal(err)
	}
	var got, want map[string]any
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(lambdaOnFailure), &want); err != nil {
		t.Fatal(err)
	}
	id, _ := got["requestContext"].(map[string]any)["requestId"].(string)
	if !uuidV5.MatchString(id) {
		t.Errorf("requestId %q is not a version 5 UUID", id)
	}
	want["requestContext"].(map[string]any)["requestId"] = id

	extra := map[string]bool{"errorMessage": true, "attemptsMade": true, "records": true}
	for k := range got {
		if _, ok := want[k]; !ok && !extra[k] {
			t.Errorf("unexpected top-level field %q", k)
		}
	}
	for k := range extra {
		if _, ok := got[k]; !ok {
			t.Errorf("field %q missing", k)
		}
	}
	var compare func(path string, w, g any)
	compare = func(path string, w, g any) {
		wm, isMap := w.(map[string]any)
		if !isMap {
			if !reflect.DeepEqual(w, g) {
				t.Errorf("%s = %#v, want %#v", path, g, w)
			}
			return
		}
		gm, ok := g.(map[string]any)
		if !ok {
			t.Errorf("%s is %T, want an object", path, g)
			return
		}
		for k, wv := range wm {
			gv, ok := gm[k]
			if !ok {
				t.Errorf("%s.%s missing", path, k)
				continue
			}
			compare(path+"."+k, wv, gv)
		}
		if path != "" {
			for k := range gm {
				if _, ok := wm[k]; !ok {
					t.Errorf("%s.%s is not in Lambda's record", path, k)
				}
			}
		}
	}
	compare("", want, got)
	if got["attemptsMade"] != 1.0 || got["errorMessage"] != "invalid JSON" {
		t.Errorf("attemptsMade %v, errorMessage %v", got["attemptsMade"], got["errorMessage"])
	}
	if recs, _ := got["records"].([]any); len(recs) != 500 {
		t.Errorf("records: %d, want 500", len(recs))
	}
}

// The whole message, byte for byte, for a small batch: field order, base64 data, times.
func TestMessageGolden(t *testing.T) {
	at := mustTime(t, "2024-03-01T12:00:00.123456Z")
	f := Failure{
		Condition: RecordAgeExceeded, StreamName: "orders", StreamARN: "arn:aws:kinesis:us-east-1:123456789012:stream/orders",
		ShardID: "shardId-000000000003", Region: "us-east-1", Attempts: 3, ErrorMessage: `bad <input> & "quotes"`,
		FunctionARN: "shardhose:json", Time: mustTime(t, "2024-03-01T12:05:00Z"),
		Records: []record.Record{
			{PartitionKey: "k1", SequenceNumber: "100", Data: []byte("hello"), ApproximateArrivalTimestamp: at},
			{PartitionKey: "k2", SequenceNumber: "200", SubSequenceNumber: 2, Data: []byte{0xf3, 0x89, 0x00}, ApproximateArrivalTimestamp: at.Add(time.Second)},
			{PartitionKey: "k3", SequenceNumber: "300"},
		},
	}
	body, err := encode(NewMessage(f))
	if err != nil {
		t.Fatal(err)
	}
	id := NewMessage(f).RequestContext.RequestID
	want := `{"requestContext":{"requestId":"` + id + `","functionArn":"shardhose:json","condition":"RecordAgeExceeded","approximateInvokeCount":3},` +
		`"responseContext":{"statusCode":200,"executedVersion":"$LATEST","functionError":""},` +
		`"version":"1.0","timestamp":"2024-03-01T12:05:00.000Z",` +
		`"KinesisBatchInfo":{"shardId":"shardId-000000000003","startSequenceNumber":"100","endSequenceNumber":"300",` +
		`"approximateArrivalOfFirstRecord":"2024-03-01T12:00:00.123Z","approximateArrivalOfLastRecord":"","batchSize":3,` +
		`"streamArn":"arn:aws:kinesis:us-east-1:123456789012:stream/orders"},` +
		`"errorMessage":"bad <input> & \"quotes\"","attemptsMade":3,` +
		`"records":[{"data":"aGVsbG8=","partitionKey":"k1","sequenceNumber":"100","subSequenceNumber":0,"approximateArrivalTimestamp":"2024-03-01T12:00:00.123Z"},` +
		`{"data":"84kA","partitionKey":"k2","sequenceNumber":"200","subSequenceNumber":2,"approximateArrivalTimestamp":"2024-03-01T12:00:01.123Z"},` +
		`{"data":"","partitionKey":"k3","sequenceNumber":"300","subSequenceNumber":0,"approximateArrivalTimestamp":""}]}`
	if string(body) != want {
		t.Errorf("message:\n got %s\nwant %s", body, want)
	}
	if !uuidV5.MatchString(id) {
		t.Errorf("requestId %q is not a version 5 UUID", id)
	}
}

func TestRequestIDIsStablePerFailure(t *testing.T) {
	f := referenceFailure(t)
	a := NewMessage(f).RequestContext.RequestID
	if b := NewMessage(f).RequestContext.RequestID; a != b {
		t.Errorf("same failure, ids %s and %s", a, b)
	}
	variants := map[string]func(*Failure){
		"time":      func(f *Failure) { f.Time = f.Time.Add(time.Millisecond) },
		"shard":     func(f *Failure) { f.ShardID = "shardId-000000000002" },
		"stream":    func(f *Failure) { f.StreamARN += "2" },
		"condition": func(f *Failure) { f.Condition = RecordAgeExceeded },
		"fewer":     func(f *Failure) { f.Records = f.Records[:499] },
		"sub":       func(f *Failure) { f.Records = slices.Clone(f.Records); f.Records[0].SubSequenceNumber = 1 },
	}
	for name, change := range variants {
		g := referenceFailure(t)
		change(&g)
		if NewMessage(g).RequestContext.RequestID == a {
			t.Errorf("changing the %s kept the id", name)
		}
	}
}

func TestRecordsRoundTrip(t *testing.T) {
	f := referenceFailure(t)
	f.Records = slices.Clone(f.Records[:3])
	f.Records[1].Data = []byte{0, 1, 2, 0xff}
	f.Records[1].SubSequenceNumber = 7
	f.Records[2].Data = nil
	body, err := encode(NewMessage(f))
	if err != nil {
		t.Fatal(err)
	}
	m, err := ParseMessage(body)
	if err != nil {
		t.Fatal(err)
	}
	got, err := m.Records()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("%d records, want 3", len(got))
	}
	for i, r := range got {
		w := f.Records[i]
		w.ApproximateArrivalTimestamp = w.ApproximateArrivalTimestamp.Truncate(time.Millisecond).UTC()
		if w.Data == nil {
			w.Data = []byte{}
		}
		if r.StreamName != "mystream" || r.ShardID != testShard || r.PartitionKey != w.PartitionKey ||
			r.SequenceNumber != w.SequenceNumber || r.SubSequenceNumber != w.SubSequenceNumber ||
			string(r.Data) != string(w.Data) || !r.ApproximateArrivalTimestamp.Equal(w.ApproximateArrivalTimestamp) {
			t.Errorf("record %d = %+v, want %+v", i, r, w)
		}
	}
}

func TestParseMessage(t *testing.T) {
	// Lambda's own record: metadata only.
	m, err := ParseMessage([]byte(lambdaOnFailure))
	if err != nil {
		t.Fatal(err)
	}
	if m.KinesisBatchInfo.BatchSize != 500 || m.RequestContext.Condition != RetryAttemptsExhausted {
		t.Errorf("parsed %+v", m)
	}
	if _, err := m.Records(); !errors.Is(err, ErrNoInlineRecords) {
		t.Errorf("Records of a metadata-only message: %v, want ErrNoInlineRecords", err)
	}

	// Wrapped by SNS for an SQS subscriber without raw delivery.
	inner, _ := json.Marshal(lambdaOnFailure)
	env := `{"Type":"Notification","MessageId":"x","TopicArn":"arn:aws:sns:us-east-1:123456789012:t","Message":` + string(inner) + `}`
	if m2, err := ParseMessage([]byte(env)); err != nil || !reflect.DeepEqual(m2, m) {
		t.Errorf("SNS envelope: %+v, %v", m2, err)
	}

	for _, bad := range []string{``, `not json`, `{}`, `{"KinesisBatchInfo":{"shardId":"s"}}`, `[1,2]`, `{"Type":"Notification","Message":"{}"}`} {
		if _, err := ParseMessage([]byte(bad)); !errors.Is(err, ErrNotDeadLetter) {
			t.Errorf("ParseMessage(%q) = %v, want ErrNotDeadLetter", bad, err)
		}
	}

	loc := Location{Bucket: "b", Key: "k"}
	m.RecordsLocation = &loc
	if _, err := m.Records(); !errors.Is(err, ErrNoInlineRecords) || !strings.Contains(err.Error(), "s3://b/k") {
		t.Errorf("Records with a location: %v", err)
	}
}

func TestObjectKey(t *testing.T) {
	m := NewMessage(referenceFailure(t))
	got := ObjectKey("dead-letters/", m)
	want := "dead-letters/2019/11/14/00/" + testShard + "-" + firstSeq + "-" + m.RequestContext.RequestID + ".json"
	if got != want {
		t.Errorf("ObjectKey = %s, want %s", got, want)
	}
}
