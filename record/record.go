// Package record defines the unit of data shardhose moves: one Kinesis user record, and the
// position of a record within its shard, which is what checkpoints store.
package record

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Record is one user record read from a Kinesis shard. A KPL aggregate is split into several
// Records that share SequenceNumber and differ by SubSequenceNumber; a plain record has
// SubSequenceNumber 0 and Aggregated false.
//
// Records are values: stages that change Data (transforms) make a new Record rather than editing
// one another stage may still hold.
type Record struct {
	StreamName        string
	ShardID           string
	PartitionKey      string
	ExplicitHashKey   string
	SequenceNumber    string
	SubSequenceNumber int64
	// Aggregated is true when the record came out of a KPL aggregate.
	Aggregated bool
	Data       []byte
	// ApproximateArrivalTimestamp is when Kinesis accepted the record (millisecond precision).
	ApproximateArrivalTimestamp time.Time
	// DeaggregationError is set on a record that carries the KPL magic bytes but could not be
	// split into user records. Data is then the whole raw aggregate: it is kept, never dropped, and
	// goes to the dead letters (or, with none configured, to the sinks as it is).
	DeaggregationError string
	// PartitionKeys are the dynamic-partitioning keys a Firehose-contract transform returned in
	// metadata.partitionKeys (read by the S3 prefix expression !{partitionKeyFromLambda:key}).
	PartitionKeys map[string]string
}

// Position returns where the record stands in its shard.
func (r Record) Position() Position {
	return Position{SequenceNumber: r.SequenceNumber, SubSequenceNumber: r.SubSequenceNumber}
}

// Position is a point in a shard: a sequence number and, for KPL aggregates, the index of the
// user record inside it. The zero Position is "before the first record".
type Position struct {
	SequenceNumber    string
	SubSequenceNumber int64
}

// IsZero reports whether p is the zero Position.
func (p Position) IsZero() bool { return p.SequenceNumber == "" && p.SubSequenceNumber == 0 }

// Compare orders two positions: -1 if p is before q, 0 if equal, +1 if after. Sequence numbers
// are decimal strings of up to 128 bits; they compare as numbers.
func (p Position) Compare(q Position) int {
	if c := CompareSequenceNumbers(p.SequenceNumber, q.SequenceNumber); c != 0 {
		return c
	}
	switch {
	case p.SubSequenceNumber < q.SubSequenceNumber:
		return -1
	case p.SubSequenceNumber > q.SubSequenceNumber:
		return 1
	}
	return 0
}

// String formats p as "seq" or "seq.sub" when a sub-sequence number is set, as Firehose's dataId does.
func (p Position) String() string {
	if p.SubSequenceNumber == 0 {
		return p.SequenceNumber
	}
	return p.SequenceNumber + "." + itoa(p.SubSequenceNumber)
}

// ParsePosition reads a position as String writes it: "seq" or "seq.sub", the sequence number
// in decimal digits.
func ParsePosition(s string) (Position, error) {
	seq, sub, dotted := strings.Cut(s, ".")
	if seq == "" || len(seq) > 128 || strings.Trim(seq, "0123456789") != "" {
		return Position{}, fmt.Errorf("%q is not a position (a sequence number, optionally followed by . and a sub-sequence number)", s)
	}
	p := Position{SequenceNumber: seq}
	if dotted {
		n, err := strconv.ParseInt(sub, 10, 64)
		if err != nil || n < 0 {
			return Position{}, fmt.Errorf("%q is not a position: the sub-sequence number after the dot must be a non-negative integer", s)
		}
		p.SubSequenceNumber = n
	}
	return p, nil
}

// CompareSequenceNumbers compares two Kinesis sequence numbers (decimal strings without sign or
// leading zeros) numerically. The empty string sorts before every sequence number.
func CompareSequenceNumbers(a, b string) int {
	a = strings.TrimLeft(a, "0")
	b = strings.TrimLeft(b, "0")
	if len(a) != len(b) {
		if len(a) < len(b) {
			return -1
		}
		return 1
	}
	return strings.Compare(a, b)
}

func itoa(n int64) string {
	if n == 0 {
		return "0"
	}
	var buf [20]byte
	i := len(buf)
	neg := n < 0
	if neg {
		n = -n
	}
	for n > 0 {
		i--
		buf[i] = byte('0' + n%10)
		n /= 10
	}
	if neg {
		i--
		buf[i] = '-'
	}
	return string(buf[i:])
}
