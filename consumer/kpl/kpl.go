// Package kpl reads and writes the Kinesis Producer Library's aggregation format: one Kinesis
// record that packs many user records as magic bytes F3 89 9A C2, a protobuf AggregatedRecord,
// and the MD5 of that protobuf.
//
// User records of one aggregate share the Kinesis record's sequence number and are told apart by
// their index in it, the sub-sequence number. A record that starts with the magic bytes but is
// not a valid aggregate is reported as an error (ErrCorrupt) so the caller can keep it whole and
// send it down the failure path instead of dropping it.
package kpl

import (
	"bytes"
	"crypto/md5"
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// Magic is the prefix of every aggregated record.
var Magic = []byte{0xF3, 0x89, 0x9A, 0xC2}

// ErrCorrupt is wrapped by Deaggregate's error for a record that carries the magic bytes but whose
// checksum or protobuf is wrong.
var ErrCorrupt = errors.New("corrupt KPL aggregate")

// UserRecord is one record inside an aggregate.
type UserRecord struct {
	PartitionKey    string
	ExplicitHashKey string
	Data            []byte
}

// IsAggregate reports whether data starts with the KPL magic bytes and is long enough to hold a checksum.
func IsAggregate(data []byte) bool {
	return len(data) > len(Magic)+md5.Size && bytes.Equal(data[:len(Magic)], Magic)
}

// Deaggregate splits an aggregated record into its user records, in order (the index in the
// returned slice is the sub-sequence number). It returns ok=false, and no error, for data that is
// not an aggregate; and an error wrapping ErrCorrupt for one that claims to be but is not valid,
// or that holds no user record.
func Deaggregate(data []byte) (records []UserRecord, ok bool, err error) {
	if !IsAggregate(data) {
		return nil, false, nil
	}
	body := data[len(Magic) : len(data)-md5.Size]
	sum := md5.Sum(body)
	if !bytes.Equal(sum[:], data[len(data)-md5.Size:]) {
		return nil, true, fmt.Errorf("%w: MD5 checksum does not match", ErrCorrupt)
	}
	var pkeys, ehkeys []string
	type raw struct {
		pk, ehk uint64
		hasEHK  bool
		hasPK   bool
		hasData bool
		data    []byte
	}
	var raws []raw
	for len(body) > 0 {
		num, typ, n := protowire.ConsumeTag(body)
		if n < 0 {
			return nil, true, fmt.Errorf("%w: %v", ErrCorrupt, protowire.ParseError(n))
		}
		body = body[n:]
		switch {
		case num == 1 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(body)
			if n < 0 {
				return nil, true, fmt.Errorf("%w: partition key table: %v", ErrCorrupt, protowire.ParseError(n))
			}
			pkeys = append(pkeys, string(v))
			body = body[n:]
		case num == 2 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(body)
			if n < 0 {
				return nil, true, fmt.Errorf("%w: explicit hash key table: %v", ErrCorrupt, protowire.ParseError(n))
			}
			ehkeys = append(ehkeys, string(v))
			body = body[n:]
		case num == 3 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(body)
			if n < 0 {
				return nil, true, fmt.Errorf("%w: record %d: %v", ErrCorrupt, len(raws), protowire.ParseError(n))
			}
			body = body[n:]
			r, err := parseRecord(v)
			if err != nil {
				return nil, true, fmt.Errorf("%w: record %d: %v", ErrCorrupt, len(raws), err)
			}
			raws = append(raws, raw{pk: r.pk, ehk: r.ehk, hasEHK: r.hasEHK, hasPK: r.hasPK, hasData: r.hasData, data: r.data})
		default:
			n := protowire.ConsumeFieldValue(num, typ, body)
			if n < 0 {
				return nil, true, fmt.Errorf("%w: field %d: %v", ErrCorrupt, num, protowire.ParseError(n))
			}
			body = body[n:]
		}
	}
	if len(raws) == 0 {
		// Nothing to hand on in its place: the record would vanish without a trace.
		return nil, true, fmt.Errorf("%w: it holds no user records", ErrCorrupt)
	}
	out := make([]UserRecord, 0, len(raws))
	for i, r := range raws {
		if !r.hasPK || !r.hasData {
			return nil, true, fmt.Errorf("%w: record %d lacks a required field", ErrCorrupt, i)
		}
		if r.pk >= uint64(len(pkeys)) {
			return nil, true, fmt.Errorf("%w: record %d: partition key index %d, table has %d", ErrCorrupt, i, r.pk, len(pkeys))
		}
		u := UserRecord{PartitionKey: pkeys[r.pk], Data: r.data}
		if r.hasEHK {
			if r.ehk >= uint64(len(ehkeys)) {
				return nil, true, fmt.Errorf("%w: record %d: explicit hash key index %d, table has %d", ErrCorrupt, i, r.ehk, len(ehkeys))
			}
			u.ExplicitHashKey = ehkeys[r.ehk]
		}
		out = append(out, u)
	}
	return out, true, nil
}

type parsedRecord struct {
	pk, ehk                uint64
	hasPK, hasEHK, hasData bool
	data                   []byte
}

func parseRecord(b []byte) (parsedRecord, error) {
	var r parsedRecord
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return r, protowire.ParseError(n)
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return r, protowire.ParseError(n)
			}
			r.pk, r.hasPK = v, true
			b = b[n:]
		case num == 2 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return r, protowire.ParseError(n)
			}
			r.ehk, r.hasEHK = v, true
			b = b[n:]
		case num == 3 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return r, protowire.ParseError(n)
			}
			r.data, r.hasData = v, true
			b = b[n:]
		default: // tags (field 4) and anything newer
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return r, protowire.ParseError(n)
			}
			b = b[n:]
		}
	}
	return r, nil
}

// Aggregate packs user records into one KPL aggregate, as the KPL does. It is what `shardhose
// produce --aggregate` and the tests use to make aggregated records.
func Aggregate(records []UserRecord) []byte {
	var body []byte
	pkIndex := map[string]uint64{}
	var pkOrder []string
	ehkIndex := map[string]uint64{}
	var ehkOrder []string
	for _, r := range records {
		if _, ok := pkIndex[r.PartitionKey]; !ok {
			pkIndex[r.PartitionKey] = uint64(len(pkOrder))
			pkOrder = append(pkOrder, r.PartitionKey)
		}
		if r.ExplicitHashKey != "" {
			if _, ok := ehkIndex[r.ExplicitHashKey]; !ok {
				ehkIndex[r.ExplicitHashKey] = uint64(len(ehkOrder))
				ehkOrder = append(ehkOrder, r.ExplicitHashKey)
			}
		}
	}
	for _, k := range pkOrder {
		body = protowire.AppendTag(body, 1, protowire.BytesType)
		body = protowire.AppendString(body, k)
	}
	for _, k := range ehkOrder {
		body = protowire.AppendTag(body, 2, protowire.BytesType)
		body = protowire.AppendString(body, k)
	}
	for _, r := range records {
		var rec []byte
		rec = protowire.AppendTag(rec, 1, protowire.VarintType)
		rec = protowire.AppendVarint(rec, pkIndex[r.PartitionKey])
		if r.ExplicitHashKey != "" {
			rec = protowire.AppendTag(rec, 2, protowire.VarintType)
			rec = protowire.AppendVarint(rec, ehkIndex[r.ExplicitHashKey])
		}
		rec = protowire.AppendTag(rec, 3, protowire.BytesType)
		rec = protowire.AppendBytes(rec, r.Data)
		body = protowire.AppendTag(body, 3, protowire.BytesType)
		body = protowire.AppendBytes(body, rec)
	}
	sum := md5.Sum(body)
	out := make([]byte, 0, len(Magic)+len(body)+md5.Size)
	out = append(out, Magic...)
	out = append(out, body...)
	return append(out, sum[:]...)
}
