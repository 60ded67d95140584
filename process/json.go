package process

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/tidwall/gjson"

	"github.com/shardhose/shardhose/record"
)

// NewJSON returns the json handler: every record's data must be JSON (any JSON value, surrounding
// whitespace allowed, UTF-8 throughout as RFC 8259 requires: invalid UTF-8 inside a string makes
// the record invalid), as the recipe's transform requires before it enriches. Valid records are
// delivered unchanged. The first invalid record stops the batch: Handle returns a *PartialFailure
// at it, whose error names the record (sequence number, sub-sequence number, shard) and what is
// wrong with its data. Without ReportBatchItemFailures the engine treats that as a failure of the
// whole batch and bisects or retries it until the bad record is isolated and dead-lettered.
//
// It is safe for concurrent use.
func NewJSON() Handler {
	return PerRecord("json", func(_ context.Context, r record.Record) (Output, error) {
		if err := checkJSON(r.Data); err != nil {
			return Output{}, err
		}
		return Output{Outcome: Deliver, Record: r}, nil
	})
}

// ErrNotJSON is wrapped by the errors of handlers that need JSON data and got something else.
var ErrNotJSON = errors.New("data is not valid JSON")

// checkJSON returns nil when data is one JSON value, else an error wrapping ErrNotJSON that says
// what is wrong.
//
// The check is gjson's validator (2 to 3 times faster than encoding/json.Valid on 1 KiB
// records; both follow RFC 8259's grammar, and a differential fuzz test holds them equal) and
// then utf8.Valid. encoding/json runs only to describe data that failed.
func checkJSON(data []byte) error {
	if gjson.ValidBytes(data) {
		// The validator accepts any bytes inside strings; RFC 8259 (section 8.1) requires UTF-8.
		// Outside strings a non-ASCII byte is already a syntax error, so checking all of data
		// checks the strings.
		if !utf8.Valid(data) {
			return fmt.Errorf("%w: invalid UTF-8 at byte %d of %d (RFC 8259 requires UTF-8 text)", ErrNotJSON, invalidUTF8(data), len(data))
		}
		return nil
	}
	if len(data) == 0 {
		return fmt.Errorf("%w: the data is empty", ErrNotJSON)
	}
	var v any
	err := json.Unmarshal(data, &v)
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("%w: %v (at byte %d of %d)", ErrNotJSON, se, se.Offset, len(data))
	}
	if err == nil { // the two parsers disagree only on exotic input; report it plainly
		return ErrNotJSON
	}
	return fmt.Errorf("%w: %v", ErrNotJSON, err)
}

// invalidUTF8 returns the offset of the first byte of data that does not start a valid UTF-8
// sequence, or -1 when data is valid UTF-8.
func invalidUTF8(data []byte) int {
	for i := 0; i < len(data); {
		if data[i] < utf8.RuneSelf {
			i++
			continue
		}
		r, size := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && size == 1 {
			return i
		}
		i += size
	}
	return -1
}
