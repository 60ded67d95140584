// Package backup is the S3 backup every destination sink shares, in the manner of Firehose: the
// error-record format (one JSON object per line) for data a destination did not take, the raw
// copies of AllData mode, and DeliverOrBackup, Firehose's rule for one batch (retry for the retry
// duration, then back up; if the backup fails too, pause until one of them succeeds).
package backup

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// ErrorRecord is one line of a Firehose error-record object: a record a destination did not
// take, with why and how often it was tried. It marshals to Firehose's JSON:
//
//	{"attemptsMade":5,"arrivalTimestamp":1594265943615,"errorCode":"HttpEndpoint.DestinationException",
//	 "errorMessage":"...","attemptEndingTimestamp":1594266081318,"rawData":"c2FtcGxl...",
//	 "subsequenceNumber":0,"dataId":"4960...186.0"}
//
// Extra holds the destination's own fields (esDocumentId, esIndexName, esTypeName for OpenSearch;
// subsequenceNumber and dataId for HTTP endpoints; lambdaArn for transform failures), merged into
// the same object after the common fields, in key order. An Extra key that names a common field
// is an error, not a silent override.
type ErrorRecord struct {
	AttemptsMade int
	// ArrivalTimestamp is when the record arrived in the source stream, in Unix milliseconds.
	ArrivalTimestamp int64
	ErrorCode        string
	ErrorMessage     string
	// AttemptEndingTimestamp is when delivery was given up, in Unix milliseconds.
	AttemptEndingTimestamp int64
	// RawData is the record's data as it was to be delivered; base64 in JSON.
	RawData []byte
	Extra   map[string]any
}

// commonFields are the keys every error record has, in Firehose's order.
var commonFields = []string{"attemptsMade", "arrivalTimestamp", "errorCode", "errorMessage", "attemptEndingTimestamp", "rawData"}

// MarshalJSON writes the record with Firehose's field names: the common fields first, then Extra
// in key order.
func (e ErrorRecord) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.Grow(160 + base64.StdEncoding.EncodedLen(len(e.RawData)) + len(e.ErrorMessage))
	b.WriteString(`{"attemptsMade":`)
	b.WriteString(strconv.Itoa(e.AttemptsMade))
	b.WriteString(`,"arrivalTimestamp":`)
	b.WriteString(strconv.FormatInt(e.ArrivalTimestamp, 10))
	b.WriteString(`,"errorCode":`)
	if err := writeJSON(&b, e.ErrorCode); err != nil {
		return nil, err
	}
	b.WriteString(`,"errorMessage":`)
	if err := writeJSON(&b, e.ErrorMessage); err != nil {
		return nil, err
	}
	b.WriteString(`,"attemptEndingTimestamp":`)
	b.WriteString(strconv.FormatInt(e.AttemptEndingTimestamp, 10))
	b.WriteString(`,"rawData":"`)
	enc := base64.NewEncoder(base64.StdEncoding, &b)
	_, _ = enc.Write(e.RawData) // writes to a bytes.Buffer do not fail
	_ = enc.Close()
	b.WriteByte('"')
	for _, k := range slices.Sorted(maps.Keys(e.Extra)) {
		if slices.Contains(commonFields, k) {
			return nil, fmt.Errorf("error record: extra field %q would replace a common field", k)
		}
		b.WriteByte(',')
		if err := writeJSON(&b, k); err != nil {
			return nil, err
		}
		b.WriteByte(':')
		if err := writeJSON(&b, e.Extra[k]); err != nil {
			return nil, fmt.Errorf("error record: extra field %q: %w", k, err)
		}
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// writeJSON appends v as JSON without HTML escaping (error messages quote endpoint responses,
// which should stay readable).
func writeJSON(b *bytes.Buffer, v any) error {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	b.Truncate(b.Len() - 1) // Encode appends a newline
	return nil
}

// UnmarshalJSON reads a record written by MarshalJSON (or by Firehose). Fields other than the
// common ones go to Extra; numbers in Extra are json.Number, so large ids keep every digit.
func (e *ErrorRecord) UnmarshalJSON(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return fmt.Errorf("decode error record: %w", err)
	}
	var out ErrorRecord
	var err error
	num := func(k string) int64 {
		v, ok := m[k]
		if !ok || err != nil {
			return 0
		}
		delete(m, k)
		n, ok := v.(json.Number)
		if !ok {
			err = fmt.Errorf("decode error record: %s is %T, want a number", k, v)
			return 0
		}
		i, perr := n.Int64()
		if perr != nil {
			err = fmt.Errorf("decode error record: %s: %w", k, perr)
		}
		return i
	}
	str := func(k string) string {
		v, ok := m[k]
		if !ok || err != nil {
			return ""
		}
		delete(m, k)
		s, ok := v.(string)
		if !ok {
			err = fmt.Errorf("decode error record: %s is %T, want a string", k, v)
		}
		return s
	}
	out.AttemptsMade = int(num("attemptsMade"))
	out.ArrivalTimestamp = num("arrivalTimestamp")
	out.ErrorCode = str("errorCode")
	out.ErrorMessage = str("errorMessage")
	out.AttemptEndingTimestamp = num("attemptEndingTimestamp")
	raw := str("rawData")
	if err != nil {
		return err
	}
	if out.RawData, err = base64.StdEncoding.DecodeString(raw); err != nil {
		return fmt.Errorf("decode error record: rawData: %w", err)
	}
	if len(m) > 0 {
		out.Extra = m
	}
	*e = out
	return nil
}

// ReadErrorRecords parses an error-record object as stored: JSON lines, gunzipped first when key
// ends in ".gz". It is the inverse of S3Writer.WriteErrors, for tools that re-drive backed-up
// data and for tests.
func ReadErrorRecords(key string, body []byte) ([]ErrorRecord, error) {
	lines, err := ReadLines(key, body)
	if err != nil {
		return nil, err
	}
	out := make([]ErrorRecord, 0, len(lines))
	for i, l := range lines {
		var e ErrorRecord
		if err := json.Unmarshal(l, &e); err != nil {
			return nil, fmt.Errorf("object %s line %d: %w", key, i+1, err)
		}
		out = append(out, e)
	}
	return out, nil
}

// ReadLines splits a stored backup object (error records or AllData copies) into its
// newline-delimited lines, gunzipping first when key ends in ".gz".
func ReadLines(key string, body []byte) ([][]byte, error) {
	var r io.Reader = bytes.NewReader(body)
	if strings.HasSuffix(key, extGzip) {
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("object %s: open gzip: %w", key, err)
		}
		defer zr.Close()
		r = zr
	}
	var lines [][]byte
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 32<<20)
	for sc.Scan() {
		lines = append(lines, bytes.Clone(sc.Bytes()))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("object %s: read lines: %w", key, err)
	}
	return lines, nil
}
