package produce

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"
)

// Source yields the records Run sends, one per call to Next, in order; Next returns io.EOF when
// there are none left, and any other error stops Run. Run calls Next from its own goroutine and
// never modifies the returned Data, so a Source may return the same slice more than once. Next
// should not block for long: Run cannot interrupt it.
//
// FileSource and GeneratedSource implement it; a source that renders Kinesis Data Generator
// templates plugs in the same way.
type Source interface {
	Next() (Entry, error)
}

// Entry is one record to put. An empty PartitionKey makes Run choose a random 10-digit key, as
// the Kinesis Data Generator does.
type Entry struct {
	Data         []byte
	PartitionKey string
}

// FileSource replays the records of a file of JSON values: either JSON lines (one value per
// line, blank lines ignored) or a single JSON array whose elements are the records. Each record
// is sent compacted to one line, with its number literals and key order as written.
//
// After the last record it starts again from the first, so it never returns io.EOF: bound it
// with Options.Count (Len is one pass). The whole file is held in memory. A FileSource is not
// safe for concurrent use.
type FileSource struct {
	// PartitionKeyField, if set, names a top-level field of the records whose value becomes the
	// partition key: a string as it is, a number or boolean as written. Next fails on a record
	// that lacks the field, has it null or empty, or is not a JSON object. When empty, each
	// record gets a random 10-digit key.
	PartitionKeyField string

	path    string
	records []fileRecord
	next    int
	rng     *rand.Rand
}

type fileRecord struct {
	data []byte
	line int // where the record starts in the file, from 1
}

// LoadFileSource reads the records of the file at path (see FileSource for the formats). It fails
// when the file holds no records, is not valid JSON (the error names the line), or holds a
// record larger than MaxRecordBytes.
func LoadFileSource(path string) (*FileSource, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load records: %w", err)
	}
	return parseFileSource(path, b)
}

func parseFileSource(name string, b []byte) (*FileSource, error) {
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")) // a UTF-8 byte order mark
	var (
		recs []fileRecord
		err  error
	)
	if t := bytes.TrimLeft(b, " \t\r\n"); len(t) > 0 && t[0] == '[' && isSingleValue(b) {
		recs, err = parseArray(name, b)
	} else {
		recs, err = parseLines(name, b)
	}
	if err != nil {
		return nil, err
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("load records from %s: the file holds no records", name)
	}
	for _, r := range recs {
		if len(r.data) > MaxRecordBytes {
			return nil, fmt.Errorf("load records from %s: line %d: the record is %d bytes, Kinesis allows at most %d (1 MiB): %w",
				name, r.line, len(r.data), MaxRecordBytes, ErrRecordTooLarge)
		}
	}
	return &FileSource{path: name, records: recs, rng: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))}, nil
}

// isSingleValue reports whether b, which starts with '[', is one JSON value: either a
// well-formed array, or a broken one (whose error then names its line). A file whose first line
// is a complete array followed by more values is JSON lines.
func isSingleValue(b []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(b))
	var v json.RawMessage
	if err := dec.Decode(&v); err != nil {
		return true
	}
	return len(bytes.TrimSpace(b[dec.InputOffset():])) == 0
}

func parseArray(name string, b []byte) ([]fileRecord, error) {
	var elems []json.RawMessage
	if err := json.Unmarshal(b, &elems); err != nil {
		return nil, syntaxError(name, b, 0, err)
	}
	// Unmarshal found the array well formed; walk it again to learn where each element starts.
	dec := json.NewDecoder(bytes.NewReader(b))
	if _, err := dec.Token(); err != nil { // '['
		return nil, syntaxError(name, b, 0, err)
	}
	recs := make([]fileRecord, 0, len(elems))
	for dec.More() {
		start := int(dec.InputOffset())
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, syntaxError(name, b, 0, err)
		}
		for start < len(b) && strings.IndexByte(" \t\r\n,", b[start]) >= 0 {
			start++
		}
		var buf bytes.Buffer
		if err := json.Compact(&buf, raw); err != nil {
			return nil, syntaxError(name, b, start, err)
		}
		recs = append(recs, fileRecord{data: buf.Bytes(), line: lineAt(b, start)})
	}
	return recs, nil
}

func parseLines(name string, b []byte) ([]fileRecord, error) {
	var recs []fileRecord
	n := 0
	for line := range bytes.Lines(b) {
		n++
		t := bytes.TrimSpace(line)
		if len(t) == 0 {
			continue
		}
		var buf bytes.Buffer
		if err := json.Compact(&buf, t); err != nil {
			// Compact's syntax errors carry no offset; a decode of the same line does.
			var raw json.RawMessage
			if uerr := json.Unmarshal(t, &raw); uerr != nil {
				err = uerr
			}
			var se *json.SyntaxError
			if errors.As(err, &se) && se.Offset > 0 {
				col := len(line) - len(bytes.TrimLeft(line, " \t")) + int(se.Offset)
				return nil, fmt.Errorf("load records from %s: line %d, column %d: invalid JSON: %w", name, n, col, err)
			}
			return nil, fmt.Errorf("load records from %s: line %d: invalid JSON: %w", name, n, err)
		}
		recs = append(recs, fileRecord{data: buf.Bytes(), line: n})
	}
	return recs, nil
}

// syntaxError names the line of a JSON syntax error at an offset into b (base plus the error's
// own offset when it has one).
func syntaxError(name string, b []byte, base int, err error) error {
	off := base
	var se *json.SyntaxError
	if errors.As(err, &se) && se.Offset > 0 {
		off = base + int(se.Offset) - 1
	}
	return fmt.Errorf("load records from %s: line %d: invalid JSON: %w", name, lineAt(b, off), err)
}

// lineAt returns the line, from 1, of byte offset off in b.
func lineAt(b []byte, off int) int {
	off = min(max(off, 0), len(b))
	return 1 + bytes.Count(b[:off], []byte("\n"))
}

// Len returns how many records one pass over the file holds.
func (s *FileSource) Len() int { return len(s.records) }

// Next returns the next record, starting again from the first after the last. A FileSource not
// made by LoadFileSource holds no records and returns io.EOF.
func (s *FileSource) Next() (Entry, error) {
	if len(s.records) == 0 {
		return Entry{}, io.EOF
	}
	r := s.records[s.next]
	s.next = (s.next + 1) % len(s.records)
	if s.PartitionKeyField == "" {
		if s.rng == nil {
			s.rng = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
		}
		return Entry{Data: r.data, PartitionKey: randomPartitionKey(s.rng)}, nil
	}
	key, err := keyFromJSON(r.data, s.PartitionKeyField)
	if err != nil {
		return Entry{}, fmt.Errorf("%s: line %d: partition key: %w", s.path, r.line, err)
	}
	return Entry{Data: r.data, PartitionKey: key}, nil
}

// keyFromJSON returns the value of the top-level field of a JSON object as a partition key.
func keyFromJSON(data []byte, field string) (string, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil {
		return "", fmt.Errorf("field %q: the record is not a JSON object", field)
	}
	raw, ok := obj[field]
	if !ok || string(raw) == "null" {
		return "", fmt.Errorf("the record has no field %q", field)
	}
	var key string
	switch raw[0] {
	case '"':
		if err := json.Unmarshal(raw, &key); err != nil {
			return "", fmt.Errorf("field %q: %w", field, err)
		}
	case '{', '[':
		return "", fmt.Errorf("field %q is an object or array; a partition key needs a string, number or boolean", field)
	default:
		key = string(raw)
	}
	if key == "" {
		return "", fmt.Errorf("field %q is empty; Kinesis needs a partition key of 1 to %d characters", field, MaxPartitionKeyLen)
	}
	return key, nil
}
