package s3

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	pformat "github.com/parquet-go/parquet-go/format"

	"github.com/shardhose/shardhose/config"
	"github.com/shardhose/shardhose/internal/clock"
	"github.com/shardhose/shardhose/record"
	"github.com/shardhose/shardhose/sinks/backup"
	"github.com/shardhose/shardhose/sinks/sinktest"
)

const recipeEvents = "../../configs/samples/recipe-events.jsonl"

// recipeRecords returns the seed recipe's sample events as records of shardId-000000000000,
// each arriving at the time in its "timestamp" field.
func recipeRecords(t testing.TB) []record.Record {
	t.Helper()
	f, err := os.Open(recipeEvents)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var recs []record.Record
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var ev struct {
			Timestamp time.Time `json:"timestamp"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("%s: %v", recipeEvents, err)
		}
		recs = append(recs, record.Record{
			ShardID:                     "shardId-000000000000",
			SequenceNumber:              sinktest.SequenceNumber(len(recs)),
			Data:                        bytes.Clone(sc.Bytes()),
			ApproximateArrivalTimestamp: ev.Timestamp,
		})
	}
	if err := sc.Err(); err != nil || len(recs) != 5 {
		t.Fatalf("read %s: %d records, %v", recipeEvents, len(recs), err)
	}
	return recs
}

// recipeSchema is the recipe's events as columns.
func recipeSchema() []config.SchemaColumn {
	return []config.SchemaColumn{
		{Name: "event_id", Type: ColumnString, Required: true},
		{Name: "user_id", Type: ColumnString},
		{Name: "event_type", Type: ColumnString, Required: true},
		{Name: "amount", Type: ColumnDouble},
		{Name: "product_id", Type: ColumnString},
		{Name: "timestamp", Type: ColumnTimestampMillis, Required: true},
		{Name: "quantity", Type: ColumnInt64},
		{Name: "gift", Type: ColumnBoolean},
	}
}

// recipeRow reads a row of recipeSchema with parquet-go's own struct mapping, independently of
// how the sink builds rows.
type recipeRow struct {
	EventID   string    `parquet:"event_id"`
	UserID    *string   `parquet:"user_id,optional"`
	EventType string    `parquet:"event_type"`
	Amount    *float64  `parquet:"amount,optional"`
	ProductID *string   `parquet:"product_id,optional"`
	Timestamp time.Time `parquet:"timestamp,timestamp(millisecond)"`
	Quantity  *int64    `parquet:"quantity,optional"`
	Gift      *bool     `parquet:"gift,optional"`
}

func parquetConfig() config.S3Sink {
	cfg := testConfig(900)
	cfg.Compression = CompressionUncompressed
	cfg.BufferingHints.SizeInMBs = 64
	cfg.DataFormatConversion = &config.DataFormatConversion{OutputFormat: OutputFormatParquet, Schema: recipeSchema()}
	return cfg
}

func ptr[T any](v T) *T { return &v }

// readParquet reads a Parquet object back with parquet-go.
func readParquet(t testing.TB, body []byte) ([]recipeRow, *parquet.File) {
	t.Helper()
	f, err := parquet.OpenFile(bytes.NewReader(body), int64(len(body)))
	if err != nil {
		t.Fatalf("open parquet object: %v", err)
	}
	rows, err := parquet.Read[recipeRow](bytes.NewReader(body), int64(len(body)))
	if err != nil {
		t.Fatalf("read parquet rows: %v", err)
	}
	return rows, f
}

// The recipe's events become one Parquet file whose rows, read back with parquet-go, are the
// events; records that do not fit go to format-conversion-failed as Firehose error records.
func TestParquet(t *testing.T) {
	ctx := waitCtx(t)
	f := newFakeS3()
	clk := clock.NewFake(testStart)
	acks := sinktest.NewAckRecorder(t)
	cfg := parquetConfig()
	cfg.Prefix = "transformed-data/year=!{timestamp:yyyy}/month=!{timestamp:MM}/day=!{timestamp:dd}/hour=!{timestamp:HH}/"
	cfg.ErrorOutputPrefix = "error-data/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd}/"
	s := newTestSink(t, cfg, f, clk)

	recs := recipeRecords(t)
	at := time.Date(2025, time.January, 15, 10, 35, 0, 0, time.UTC)
	extra := []string{
		`{"event_id":"evt006","event_type":"purchase","amount":"150.50","timestamp":"2025-01-15T10:35:00Z"}`, // amount is text
		`not json`,
		`{"event_type":"view","timestamp":"2025-01-15T10:36:00Z"}`,          // event_id is required
		`{"event_id":"evt009","event_type":"view","timestamp":"yesterday"}`, // not a time
		`{"event_id":"evt010","user_id":null,"event_type":"login","timestamp":1736937600000,"quantity":3,"gift":true,"other":{"a":[1]}}`,
		`{"event_id":"evt011","event_type":"login","timestamp":"2025-01-15T10:37:00.250+01:00","quantity":2.5}`, // 2.5 is not an int64
		`[{"event_id":"evt012"}]`,
	}
	for i, e := range extra {
		recs = append(recs, record.Record{
			ShardID: "shardId-000000000000", SequenceNumber: sinktest.SequenceNumber(5 + i), SubSequenceNumber: int64(i),
			Data: []byte(e), ApproximateArrivalTimestamp: at.Add(time.Duration(i) * time.Second),
		})
	}
	if err := s.Write(ctx, recs[:6], acks.Done(1)); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, recs[6:], acks.Done(2)); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute) // the attempt-ending time of the error records
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if acks.Calls(1) != 1 || acks.Calls(2) != 1 {
		t.Fatalf("done called %d and %d times after Flush, want once each", acks.Calls(1), acks.Calls(2))
	}
	objs := f.stored()
	if len(objs) != 2 {
		t.Fatalf("%d objects, want a Parquet file and an error object: %v", len(objs), keysOf(objs))
	}
	dataKey := regexp.MustCompile(`^transformed-data/year=2025/month=01/day=15/hour=10/test-sink-1-2025-01-15-10-30-00-` + uuidPattern + `\.parquet$`)
	errKey := regexp.MustCompile(`^error-data/format-conversion-failed/2025/01/15/test-sink-1-2025-01-15-10-35-00-` + uuidPattern + `$`)
	for key, o := range objs {
		switch {
		case dataKey.MatchString(key):
			rows, file := readParquet(t, o.body)
			want := []recipeRow{
				{EventID: "evt001", UserID: ptr("user123"), EventType: "purchase", Amount: ptr(150.5), ProductID: ptr("prod456"), Timestamp: time.Date(2025, 1, 15, 10, 30, 0, 0, time.UTC)},
				{EventID: "evt002", UserID: ptr("user456"), EventType: "view", ProductID: ptr("prod789"), Timestamp: time.Date(2025, 1, 15, 10, 31, 0, 0, time.UTC)},
				{EventID: "evt003", UserID: ptr("user789"), EventType: "purchase", Amount: ptr(75.25), ProductID: ptr("prod123"), Timestamp: time.Date(2025, 1, 15, 10, 32, 0, 0, time.UTC)},
				{EventID: "evt004", UserID: ptr("user001"), EventType: "add_to_cart", ProductID: ptr("prod999"), Timestamp: time.Date(2025, 1, 15, 10, 33, 0, 0, time.UTC)},
				{EventID: "evt005", UserID: ptr("user002"), EventType: "remove_from_cart", ProductID: ptr("prod888"), Timestamp: time.Date(2025, 1, 15, 10, 34, 0, 0, time.UTC)},
				{EventID: "evt010", EventType: "login", Timestamp: time.UnixMilli(1736937600000).UTC(), Quantity: ptr[int64](3), Gift: ptr(true)},
			}
			if len(rows) != len(want) {
				t.Fatalf("Parquet file has %d rows, want %d: %+v", len(rows), len(want), rows)
			}
			for i := range want {
				if !sameRow(rows[i], want[i]) {
					t.Errorf("row %d = %s, want %s", i, showRow(rows[i]), showRow(want[i]))
				}
			}
			for _, rg := range file.Metadata().RowGroups {
				for _, col := range rg.Columns {
					if col.MetaData.Codec != pformat.Snappy {
						t.Errorf("column %v is compressed with %v, want Snappy", col.MetaData.PathInSchema, col.MetaData.Codec)
					}
				}
			}
			if !strings.Contains(file.Schema().String(), "TIMESTAMP(isAdjustedToUTC=true,unit=MILLIS)") {
				t.Errorf("schema does not hold a millisecond UTC timestamp:\n%s", file.Schema())
			}
		case errKey.MatchString(key):
			errs, err := backup.ReadErrorRecords(key, o.body)
			if err != nil {
				t.Fatal(err)
			}
			wantIdx := []int{0, 1, 2, 3, 5, 6} // of extra
			wantMsg := []string{`column "amount": want double, got string "150.50"`, "record is not a JSON object", `column "event_id" is required`,
				`column "timestamp": want timestamp_millis, got "yesterday", which is not an RFC 3339 time`, `column "quantity": want int64, got number 2.5`, "record is not a JSON object"}
			if len(errs) != len(wantIdx) {
				t.Fatalf("%d error records, want %d: %+v", len(errs), len(wantIdx), errs)
			}
			for i, e := range errs {
				r := recs[5+wantIdx[i]]
				if e.AttemptsMade != 1 || e.ErrorCode != ErrorCodeMalformedData || !strings.Contains(e.ErrorMessage, wantMsg[i]) ||
					e.ArrivalTimestamp != r.ApproximateArrivalTimestamp.UnixMilli() || e.AttemptEndingTimestamp != testStart.Add(time.Minute).UnixMilli() ||
					!bytes.Equal(e.RawData, r.Data) {
					t.Errorf("error record %d = %+v\nwant record %q, code %s, message with %q", i, e, r.Data, ErrorCodeMalformedData, wantMsg[i])
				}
				if e.Extra["sequenceNumber"] != r.SequenceNumber || fmt.Sprint(e.Extra["subSequenceNumber"]) != fmt.Sprint(r.SubSequenceNumber) {
					t.Errorf("error record %d has position %v/%v, want %s/%d", i, e.Extra["sequenceNumber"], e.Extra["subSequenceNumber"], r.SequenceNumber, r.SubSequenceNumber)
				}
			}
		default:
			t.Errorf("unexpected object %s", key)
		}
	}
}

// A file of many rows (written to parquet-go in several batches) reads back row for row.
func TestParquetManyRows(t *testing.T) {
	ctx := waitCtx(t)
	f := newFakeS3()
	s := newTestSink(t, parquetConfig(), f, clock.NewFake(testStart))
	const n = 5000
	var recs []record.Record
	var want []recipeRow
	for i := range n {
		at := sinktest.Start.Add(time.Duration(i) * time.Millisecond)
		row := recipeRow{EventID: fmt.Sprintf("evt%05d", i), EventType: []string{"view", "purchase"}[i%2], Timestamp: at}
		data := fmt.Sprintf(`{"event_id":%q,"event_type":%q,"timestamp":%q`, row.EventID, row.EventType, at.Format(time.RFC3339Nano))
		if i%3 == 0 {
			row.Amount = ptr(float64(i) / 4)
			data += fmt.Sprintf(`,"amount":%v`, *row.Amount)
		}
		if i%5 == 0 {
			row.UserID = ptr(fmt.Sprintf("user \"%d\"", i))
			data += fmt.Sprintf(`,"user_id":%q`, *row.UserID)
		}
		recs = append(recs, record.Record{Data: []byte(data + "}"), ApproximateArrivalTimestamp: at})
		want = append(want, row)
	}
	if err := s.Write(ctx, recs, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for _, o := range f.stored() {
		rows, _ := readParquet(t, o.body)
		if len(rows) != n {
			t.Fatalf("%d rows, want %d", len(rows), n)
		}
		for i := range rows {
			if !sameRow(rows[i], want[i]) {
				t.Fatalf("row %d = %s, want %s", i, showRow(rows[i]), showRow(want[i]))
			}
		}
	}
	if len(f.stored()) != 1 {
		t.Fatalf("%d objects, want 1", len(f.stored()))
	}
}

// A buffer of records that all fail makes no Parquet file; its Write is still acknowledged,
// once the error records are written.
func TestParquetAllRecordsFail(t *testing.T) {
	ctx := waitCtx(t)
	f := newFakeS3()
	acks := sinktest.NewAckRecorder(t)
	s := newTestSink(t, parquetConfig(), f, clock.NewFake(testStart))
	recs := sinktest.Records(3, "shardId-000000000000") // JSON, but without the required columns
	if err := s.Write(ctx, recs, acks.Done(1)); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	objs := f.stored()
	if len(objs) != 1 || !acks.Acked(1) {
		t.Fatalf("objects %v, acknowledged %v; want only an error object, and the Write acknowledged", keysOf(objs), acks.Acked(1))
	}
	for key, o := range objs {
		// No error_output_prefix and a literal prefix: "<prefix><type>/YYYY/MM/dd/HH/".
		if !regexp.MustCompile(`^format-conversion-failed/2024/05/06/10/test-sink-1-2024-05-06-10-00-00-` + uuidPattern + `$`).MatchString(key) {
			t.Errorf("error object key %s", key)
		}
		errs, err := backup.ReadErrorRecords(key, o.body)
		if err != nil || len(errs) != 3 {
			t.Fatalf("error records %+v, %v", errs, err)
		}
	}
}

// Error records go to Options.Errors when it is set, with the folder of their type.
func TestErrorsWriterOption(t *testing.T) {
	ctx := waitCtx(t)
	f := newFakeS3()
	w := &recordingWriter{}
	acks := sinktest.NewAckRecorder(t)
	s, err := New(Options{Name: "test-sink", Config: parquetConfig(), Client: f, Clock: clock.NewFake(testStart), Errors: w})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(ctx) })
	recs := recipeRecords(t)
	recs[1].Data = []byte(`{"event_id":1}`)
	if err := s.Write(ctx, recs, acks.Done(1)); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	folders, got := w.get()
	if !slices.Equal(folders, []string{"format-conversion-failed/"}) || len(got) != 1 || !bytes.Equal(got[0].RawData, recs[1].Data) {
		t.Fatalf("Errors got folders %v and records %+v", folders, got)
	}
	if n := len(f.stored()); n != 1 {
		t.Fatalf("%d objects in the bucket, want the Parquet file alone", n)
	}
}

func TestNewRejectsBadParquetConfig(t *testing.T) {
	cfg := parquetConfig()
	cfg.Compression = CompressionGZIP
	cfg.BufferingHints.SizeInMBs = 5
	cfg.DataFormatConversion.Schema = append(cfg.DataFormatConversion.Schema,
		config.SchemaColumn{Name: "event_id", Type: ColumnString}, config.SchemaColumn{Name: "x", Type: "float"}, config.SchemaColumn{Name: "bad name", Type: ColumnString})
	_, err := New(Options{Name: "n", Config: cfg, Client: newFakeS3()})
	if err == nil {
		t.Fatal("New accepted a bad Parquet configuration")
	}
	for _, want := range []string{"compression must be UNCOMPRESSED", "size_in_mbs must be 64 to 128", `"event_id" is used twice`, `type "float"`, `name "bad name"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q: %v", want, err)
		}
	}
}

func sameRow(a, b recipeRow) bool { return showRow(a) == showRow(b) }

func showRow(r recipeRow) string {
	s := func(p *string) string {
		if p == nil {
			return "null"
		}
		return *p
	}
	v := func(p any) string {
		switch x := p.(type) {
		case *float64:
			if x != nil {
				return fmt.Sprint(*x)
			}
		case *int64:
			if x != nil {
				return fmt.Sprint(*x)
			}
		case *bool:
			if x != nil {
				return fmt.Sprint(*x)
			}
		}
		return "null"
	}
	return fmt.Sprintf("{%s %s %s %s %s %s %s %s}", r.EventID, s(r.UserID), r.EventType, v(r.Amount), s(r.ProductID), r.Timestamp.UTC().Format(time.RFC3339Nano), v(r.Quantity), v(r.Gift))
}

func keysOf(objs map[string]storedObject) []string {
	var keys []string
	for k := range objs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
