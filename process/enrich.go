package process

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/shardhose/shardhose/internal/clock"
	"github.com/shardhose/shardhose/record"
)

// TimestampLayout is how the enrich handler writes the time of processing: RFC 3339 in UTC with
// milliseconds, e.g. "2025-01-15T10:30:00.123Z".
const TimestampLayout = "2006-01-02T15:04:05.000Z07:00"

// EnrichOptions configure NewEnrich. At least one of Fields, TimestampField and Categories must be
// set.
type EnrichOptions struct {
	// Fields are set on every record: name to a value encoding/json can write.
	Fields map[string]any
	// TimestampField, if set, receives the time of processing (TimestampLayout) from Clock.
	TimestampField string
	// Categories derive labels from numeric fields, in order.
	Categories []Category
	// Clock tells the time of processing; nil means the system clock.
	Clock clock.Clock
}

// Category sets the field Into to the Value of the first Range that holds the number in Field,
// generalizing the recipe's amount_category ('high' if amount > 100 else 'low' is
// [{UpTo: 100, Value: "low"}, {Value: "high"}]). Field may hold a JSON number or a string that
// holds one, as Python's float() accepts. A record without Field, or with null there, gets no
// category; a record whose Field holds anything else fails.
type Category struct {
	Field, Into string
	Ranges      []Range
}

// Range is one band of a Category: numbers below Below, or up to and including UpTo, get Value.
// A Range with neither bound holds every number. At most one bound may be set.
type Range struct {
	Below, UpTo *float64
	Value       string
}

func (r Range) holds(f float64) bool {
	switch {
	case r.Below != nil:
		return f < *r.Below
	case r.UpTo != nil:
		return f <= *r.UpTo
	}
	return true
}

// NewEnrich returns the enrich handler: it adds fields to records whose data is a JSON object, as
// the recipe's transform adds processed_timestamp, processing_status and amount_category. Existing
// fields of the same name are replaced in place; other fields keep their order and bytes.
//
// A record whose data is not JSON, or not a JSON object, or whose category field is not a number,
// stops the batch: Handle returns a *PartialFailure at it, like the json handler.
//
// It is safe for concurrent use.
func NewEnrich(opts EnrichOptions) (Handler, error) {
	if len(opts.Fields) == 0 && opts.TimestampField == "" && len(opts.Categories) == 0 {
		return nil, errors.New("enrich: nothing to add: set fields, a timestamp field or categories")
	}
	e := &enricher{timestampField: opts.TimestampField, categories: opts.Categories, clock: opts.Clock}
	if e.clock == nil {
		e.clock = clock.Real()
	}
	for _, name := range slices.Sorted(maps.Keys(opts.Fields)) {
		raw, err := json.Marshal(opts.Fields[name])
		if err != nil {
			return nil, fmt.Errorf("enrich: field %q: value cannot be written as JSON: %w", name, err)
		}
		e.constants = append(e.constants, member{key: name, raw: raw})
	}
	for i, c := range opts.Categories {
		if c.Field == "" || c.Into == "" || len(c.Ranges) == 0 {
			return nil, fmt.Errorf("enrich: category %d: field, into and at least one range are required", i)
		}
		for j, r := range c.Ranges {
			if r.Below != nil && r.UpTo != nil {
				return nil, fmt.Errorf("enrich: category %d range %d: set below or up_to, not both", i, j)
			}
		}
	}
	return PerRecord("enrich", e.enrich), nil
}

type enricher struct {
	constants      []member
	timestampField string
	categories     []Category
	clock          clock.Clock
}

// member is one key and its raw JSON value, in the order the object holds them.
type member struct {
	key string
	raw json.RawMessage
}

func (e *enricher) enrich(_ context.Context, r record.Record) (Output, error) {
	obj, err := parseObject(r.Data)
	if err != nil {
		return Output{}, err
	}
	for _, m := range e.constants {
		obj = set(obj, m.key, m.raw)
	}
	if e.timestampField != "" {
		ts, _ := json.Marshal(e.clock.Now().UTC().Format(TimestampLayout))
		obj = set(obj, e.timestampField, ts)
	}
	for _, c := range e.categories {
		raw, ok := get(obj, c.Field)
		if !ok || string(raw) == "null" {
			continue
		}
		f, err := numberOf(raw)
		if err != nil {
			return Output{}, fmt.Errorf("category %s from field %s: %w", c.Into, c.Field, err)
		}
		for _, rg := range c.Ranges {
			if rg.holds(f) {
				v, _ := json.Marshal(rg.Value)
				obj = set(obj, c.Into, v)
				break
			}
		}
	}
	out := r
	out.Data = encodeObject(obj)
	return Output{Outcome: Deliver, Record: out}, nil
}

// parseObject splits a JSON object into its members, in order, keeping each value's bytes.
func parseObject(data []byte) ([]member, error) {
	if err := checkJSON(data); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotJSON, err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("data is JSON but not an object (it starts with %s): fields can only be added to objects", firstBytes(data))
	}
	var obj []member
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrNotJSON, err)
		}
		key, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrNotJSON, err)
		}
		obj = append(obj, member{key: key, raw: raw})
	}
	return obj, nil
}

// set replaces every member named key with raw, or appends one.
func set(obj []member, key string, raw json.RawMessage) []member {
	found := false
	for i := range obj {
		if obj[i].key == key {
			obj[i].raw, found = raw, true
		}
	}
	if !found {
		obj = append(obj, member{key: key, raw: raw})
	}
	return obj
}

// get returns the value of the last member named key, the one JSON decoders keep.
func get(obj []member, key string) (json.RawMessage, bool) {
	for i := len(obj) - 1; i >= 0; i-- {
		if obj[i].key == key {
			return obj[i].raw, true
		}
	}
	return nil, false
}

func encodeObject(obj []member) []byte {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range obj {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(m.key)
		b.Write(k)
		b.WriteByte(':')
		b.Write(m.raw)
	}
	b.WriteByte('}')
	return b.Bytes()
}

// numberOf reads a JSON number, or a JSON string holding a finite decimal number.
func numberOf(raw json.RawMessage) (float64, error) {
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return 0, err
	}
	var s string
	switch x := v.(type) {
	case json.Number:
		s = x.String()
	case string:
		s = strings.TrimSpace(x)
	default:
		return 0, fmt.Errorf("%s is not a number", firstBytes(raw))
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, fmt.Errorf("%s is not a number", firstBytes(raw))
	}
	return f, nil
}

// firstBytes quotes the start of data for an error message.
func firstBytes(data []byte) string {
	const max = 40
	if len(data) > max {
		return strconv.Quote(string(data[:max])) + "..."
	}
	return strconv.Quote(string(data))
}
