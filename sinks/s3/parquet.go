package s3

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/shardhose/shardhose/config"
	"github.com/shardhose/shardhose/internal/lazyregexp"
	"github.com/shardhose/shardhose/record"
)

// Column types of data_format_conversion.schema.
const (
	ColumnString          = "string"
	ColumnInt64           = "int64"
	ColumnDouble          = "double"
	ColumnBoolean         = "boolean"
	ColumnTimestampMillis = "timestamp_millis"
)

// ColumnTypes lists the column types a Parquet schema may use.
var ColumnTypes = []string{ColumnString, ColumnInt64, ColumnDouble, ColumnBoolean, ColumnTimestampMillis}

// columnNameRe is what Athena, Glue and Hive accept as a column name without quoting.
var columnNameRe = lazyregexp.NewBounded(`^[A-Za-z_][A-Za-z0-9_]*$`, 1, 255)

// parquetRowsPerWrite is how many rows go to the Parquet writer at once.
const parquetRowsPerWrite = 1024

// column is one schema column, with its index among the file's leaf columns (parquet-go orders
// a group's fields by name).
type column struct {
	name     string
	typ      string
	required bool
	index    int
}

// parquetEncoder writes one Parquet file per object, mapping each JSON record's top-level fields
// to the schema's columns, with Snappy inside the columns (Firehose's default). A record that is
// not a JSON object, has a value of the wrong type for a column, or lacks a required column is
// left out and reported; fields not in the schema are ignored, as Firehose's deserializers do.
type parquetEncoder struct {
	schema  *parquet.Schema
	columns []column // in schema order as configured
	writers sync.Pool
}

func newParquetEncoder(cols []config.SchemaColumn) (*parquetEncoder, error) {
	if len(cols) == 0 {
		return nil, errors.New("no columns: list at least one column (name, type, required)")
	}
	group := parquet.Group{}
	var problems []error
	for i, c := range cols {
		var node parquet.Node
		switch c.Type {
		case ColumnString:
			node = parquet.String()
		case ColumnInt64:
			node = parquet.Int(64)
		case ColumnDouble:
			node = parquet.Leaf(parquet.DoubleType)
		case ColumnBoolean:
			node = parquet.Leaf(parquet.BooleanType)
		case ColumnTimestampMillis:
			node = parquet.Timestamp(parquet.Millisecond)
		default:
			problems = append(problems, fmt.Errorf("column %d (%q): type %q is not supported (use %v)", i, c.Name, c.Type, ColumnTypes))
			continue
		}
		if !columnNameRe.MatchString(c.Name) {
			problems = append(problems, fmt.Errorf("column %d: name %q must be a letter or _ followed by letters, digits or _", i, c.Name))
			continue
		}
		if _, dup := group[c.Name]; dup {
			problems = append(problems, fmt.Errorf("column %d: name %q is used twice", i, c.Name))
			continue
		}
		if !c.Required {
			node = parquet.Optional(node)
		}
		group[c.Name] = node
	}
	if len(problems) > 0 {
		return nil, errors.Join(problems...)
	}
	schema := parquet.NewSchema("record", group)
	e := &parquetEncoder{schema: schema}
	index := map[string]int{}
	for i, f := range schema.Fields() {
		index[f.Name()] = i
	}
	for _, c := range cols {
		e.columns = append(e.columns, column{name: c.Name, typ: c.Type, required: c.Required, index: index[c.Name]})
	}
	e.writers.New = func() any {
		return parquet.NewWriter(nil, schema, parquet.Compression(&parquet.Snappy))
	}
	return e, nil
}

func (e *parquetEncoder) encode(buf *bytes.Buffer, recs []*record.Record) ([]rejection, error) {
	var rejected []rejection
	rows := make([]parquet.Row, 0, min(len(recs), parquetRowsPerWrite))
	w := e.writers.Get().(*parquet.Writer)
	w.Reset(buf)
	defer func() {
		w.Reset(nil)
		e.writers.Put(w)
	}()
	written := 0
	flush := func() error {
		if len(rows) == 0 {
			return nil
		}
		if _, err := w.WriteRows(rows); err != nil {
			return fmt.Errorf("write parquet rows: %w", err)
		}
		written += len(rows)
		rows = rows[:0]
		return nil
	}
	for i, r := range recs {
		row, err := e.row(r.Data)
		if err != nil {
			rejected = append(rejected, rejection{index: i, reason: err.Error()})
			continue
		}
		rows = append(rows, row)
		if len(rows) == cap(rows) {
			if err := flush(); err != nil {
				return nil, err
			}
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	if written == 0 {
		// No file at all: an object of only a footer would be noise in the table.
		buf.Reset()
		return rejected, nil
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("finish parquet file: %w", err)
	}
	return rejected, nil
}

// row maps one JSON record to a row, or says why it does not fit.
func (e *parquetEncoder) row(data []byte) (parquet.Row, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil || fields == nil {
		if err == nil {
			err = errors.New("it is null")
		}
		return nil, fmt.Errorf("record is not a JSON object: %v", err)
	}
	row := make(parquet.Row, len(e.columns))
	for _, c := range e.columns {
		raw, ok := fields[c.name]
		if !ok || string(raw) == "null" {
			if c.required {
				return nil, fmt.Errorf("column %q is required but the record has no value for it", c.name)
			}
			row[c.index] = parquet.Value{}.Level(0, 0, c.index)
			continue
		}
		v, err := convert(raw, c.typ)
		if err != nil {
			return nil, fmt.Errorf("column %q: %w", c.name, err)
		}
		def := 1
		if c.required {
			def = 0
		}
		row[c.index] = v.Level(0, def, c.index)
	}
	return row, nil
}

// convert maps one JSON value to a Parquet value of type typ, strictly: a number is not a string,
// "12" is not a number, 1.5 is not an int64.
func convert(raw json.RawMessage, typ string) (parquet.Value, error) {
	kind := jsonKind(raw)
	bad := func() (parquet.Value, error) {
		return parquet.Value{}, fmt.Errorf("want %s, got %s %.40s", typ, kind, raw)
	}
	switch typ {
	case ColumnString:
		if kind != "string" {
			return bad()
		}
		s, err := unquote(raw)
		if err != nil {
			return bad()
		}
		return parquet.ByteArrayValue(s), nil
	case ColumnInt64:
		if kind != "number" {
			return bad()
		}
		n, ok := integer(raw)
		if !ok {
			return bad()
		}
		return parquet.Int64Value(n), nil
	case ColumnDouble:
		if kind != "number" {
			return bad()
		}
		f, err := strconv.ParseFloat(string(raw), 64)
		if err != nil {
			return bad()
		}
		return parquet.DoubleValue(f), nil
	case ColumnBoolean:
		if kind != "boolean" {
			return bad()
		}
		return parquet.BooleanValue(raw[0] == 't'), nil
	case ColumnTimestampMillis:
		switch kind {
		case "number": // Unix milliseconds
			n, ok := integer(raw)
			if !ok {
				return bad()
			}
			return parquet.Int64Value(n), nil
		case "string": // RFC 3339
			s, err := unquote(raw)
			if err != nil {
				return bad()
			}
			t, err := time.Parse(time.RFC3339Nano, string(s))
			if err != nil {
				return parquet.Value{}, fmt.Errorf("want %s, got %q, which is not an RFC 3339 time", typ, s)
			}
			return parquet.Int64Value(t.UnixMilli()), nil
		}
		return bad()
	}
	return parquet.Value{}, fmt.Errorf("unknown column type %q", typ)
}

// jsonKind names the kind of a valid JSON value by its first byte.
func jsonKind(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	}
	return "number"
}

// unquote decodes a JSON string. Without escapes it is the text between the quotes, shared with
// raw (json.Unmarshal gives each RawMessage its own copy of the record's bytes).
func unquote(raw json.RawMessage) ([]byte, error) {
	if bytes.IndexByte(raw, '\\') < 0 {
		return raw[1 : len(raw)-1], nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, err
	}
	return []byte(s), nil
}

// integer parses a JSON number that is a whole number within int64 (3, -7, 3.0, 1e3).
func integer(raw json.RawMessage) (int64, bool) {
	if n, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
		return n, true
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || f != math.Trunc(f) || f < math.MinInt64 || f >= math.MaxInt64 {
		return 0, false
	}
	return int64(f), true
}
