package opensearch

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/shardhose/shardhose/record"
)

// rotation is Firehose's IndexRotationPeriod.
type rotation int

const (
	noRotation rotation = iota
	oneHour
	oneDay
	oneWeek
	oneMonth
)

func parseRotation(s string) (rotation, error) {
	switch s {
	case "NoRotation":
		return noRotation, nil
	case "OneHour":
		return oneHour, nil
	case "OneDay":
		return oneDay, nil
	case "OneWeek":
		return oneWeek, nil
	case "OneMonth":
		return oneMonth, nil
	}
	return 0, fmt.Errorf("index_rotation %q: use NoRotation, OneHour, OneDay, OneWeek or OneMonth", s)
}

// indexName returns the index a record that arrived at t goes to, as Firehose names it: base,
// then a dash and part of t in UTC.
//
//	NoRotation  base
//	OneHour     base-2016-02-25-13
//	OneDay      base-2016-02-25
//	OneWeek     base-2016-w09
//	OneMonth    base-2016-02
//
// OneWeek follows the rule Firehose documents for its indexes ("according to US conventions"):
// weeks start on Sunday, and week 1 of a year is the first week that holds a Saturday of that
// year, i.e. the week of January 1st. The year is the one the week belongs to, so the last days of
// December can fall in week 1 of the next year (2015-12-28 is base-2016-w01), and December 31st
// can be in week 53. (Firehose's own example table shows 2016-w08 for 2016-02-25, which is the ISO
// week; its stated rule, followed here, gives w09.)
func indexName(base string, r rotation, t time.Time) string {
	t = t.UTC()
	b := make([]byte, 0, len(base)+14)
	b = append(b, base...)
	switch r {
	case oneHour:
		b = t.AppendFormat(append(b, '-'), "2006-01-02-15")
	case oneDay:
		b = t.AppendFormat(append(b, '-'), "2006-01-02")
	case oneWeek:
		year, week := usWeek(t)
		b = strconv.AppendInt(append(b, '-'), int64(year), 10)
		b = append(b, '-', 'w', byte('0'+week/10), byte('0'+week%10))
	case oneMonth:
		b = t.AppendFormat(append(b, '-'), "2006-01")
	}
	return string(b)
}

// usWeek returns the year a Sunday-to-Saturday week belongs to and its number (1 to 53): the
// year of the week's Saturday, counting the week holding January 1st as week 1.
func usWeek(t time.Time) (year, week int) {
	sat := t.AddDate(0, 0, int(time.Saturday-t.Weekday()))
	return sat.Year(), (sat.YearDay()-1)/7 + 1
}

// docIDLen is the length of a record-position document id: 22 base64url characters, 132 bits of
// SHA-256, far beyond any chance of two records colliding.
const docIDLen = 22

// positionID returns the document id of a record in FIREHOSE_DEFAULT mode: a digest of the
// record's stream, shard, sequence number and sub-sequence number. It is the same on every retry,
// after a restart, and when the stream is read again from an older checkpoint, so a record is
// indexed once however often it is delivered. Firehose's own ids are stable only across its
// retries of one delivery. It returns "" for a record without a sequence number (not read from
// Kinesis), which then gets an id from the cluster.
func positionID(r *record.Record) string {
	if r.SequenceNumber == "" {
		return ""
	}
	h := sha256.New()
	h.Write([]byte(r.StreamName))
	h.Write([]byte{0})
	h.Write([]byte(r.ShardID))
	h.Write([]byte{0})
	h.Write([]byte(r.SequenceNumber))
	h.Write([]byte{0})
	h.Write(strconv.AppendInt(nil, r.SubSequenceNumber, 10))
	var sum [sha256.Size]byte
	return base64.RawURLEncoding.EncodeToString(h.Sum(sum[:0]))[:docIDLen]
}

// maxIDBytes is OpenSearch's limit on an _id.
const maxIDBytes = 512

var (
	errNotObject = errors.New("the record is not a JSON object: OpenSearch indexes JSON objects only")
	errNoIDField = errors.New("the document has no such top-level field")
)

// checkDocument reports whether data is one JSON object (OpenSearch indexes nothing else).
func checkDocument(data []byte) error {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' || !json.Valid(data) {
		return errNotObject
	}
	return nil
}

// fieldID returns the value of the top-level field of a JSON object as a document id: a
// non-empty string as is, a number as written. data must be a valid JSON object.
func fieldID(data []byte, field string) (string, error) {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(data, &doc); err != nil {
		return "", fmt.Errorf("read document_id_field %q: %w", field, err)
	}
	raw, ok := doc[field]
	if !ok {
		return "", fmt.Errorf("document_id_field %q: %w", field, errNoIDField)
	}
	var id string
	switch raw[0] {
	case '"':
		if err := json.Unmarshal(raw, &id); err != nil {
			return "", fmt.Errorf("document_id_field %q: %w", field, err)
		}
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		id = string(raw)
	default:
		return "", fmt.Errorf("document_id_field %q is %s: want a string or a number", field, kindOf(raw[0]))
	}
	switch {
	case id == "":
		return "", fmt.Errorf("document_id_field %q is an empty string", field)
	case len(id) > maxIDBytes:
		return "", fmt.Errorf("document_id_field %q is %d bytes long: OpenSearch allows at most %d", field, len(id), maxIDBytes)
	}
	return id, nil
}

func kindOf(first byte) string {
	switch first {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 'n':
		return "null"
	default:
		return "a boolean"
	}
}
