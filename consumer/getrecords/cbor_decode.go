package getrecords

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go/encoding/cbor"
)

// decodeCBORGeneric decodes a successful GetRecords response in CBOR with smithy-go's CBOR
// decoder, field by field: it is the reference that decodeCBOR must agree with, and what decodes
// every response decodeCBOR does not take. Unknown keys are ignored and nulls (or undefined)
// leave a field unset, as the SDK does with JSON; a field of the wrong type is an error. Bytes
// after the first data item are ignored, as smithy-go's decoder ignores them.
func decodeCBORGeneric(body []byte, out *kinesis.GetRecordsOutput) error {
	v, err := cbor.Decode(body)
	if err != nil {
		return err
	}
	m, ok := v.(cbor.Map)
	if !ok {
		return fmt.Errorf("response is a %T, not a map", v)
	}
	for k, v := range m {
		if isNull(v) {
			continue
		}
		switch k {
		case "Records":
			l, ok := v.(cbor.List)
			if !ok {
				return fmt.Errorf("Records is a %T, not a list", v)
			}
			out.Records = make([]types.Record, len(l))
			for i, e := range l {
				if err := genericRecord(e, &out.Records[i]); err != nil {
					return fmt.Errorf("record %d: %w", i, err)
				}
			}
		case "NextShardIterator":
			s, err := genericString(k, v)
			if err != nil {
				return err
			}
			out.NextShardIterator = &s
		case "MillisBehindLatest":
			n, err := cbor.AsInt64(v)
			if err != nil {
				return fmt.Errorf("MillisBehindLatest: %w", err)
			}
			out.MillisBehindLatest = &n
		case "ChildShards":
			l, ok := v.(cbor.List)
			if !ok {
				return fmt.Errorf("ChildShards is a %T, not a list", v)
			}
			out.ChildShards = make([]types.ChildShard, len(l))
			for i, e := range l {
				if err := genericChildShard(e, &out.ChildShards[i]); err != nil {
					return fmt.Errorf("child shard %d: %w", i, err)
				}
			}
		}
	}
	return nil
}

// eachField calls f with each key and value of the map v that is not null or undefined.
func eachField(v cbor.Value, f func(k string, v cbor.Value) error) error {
	m, ok := v.(cbor.Map)
	if !ok {
		return fmt.Errorf("a %T, not a map", v)
	}
	for k, v := range m {
		if isNull(v) {
			continue
		}
		if err := f(k, v); err != nil {
			return err
		}
	}
	return nil
}

func isNull(v cbor.Value) bool {
	switch v.(type) {
	case *cbor.Nil, *cbor.Undefined:
		return true
	}
	return false
}

func genericString(key string, v cbor.Value) (string, error) {
	s, ok := v.(cbor.String)
	if !ok {
		return "", fmt.Errorf("%s is a %T, not a string", key, v)
	}
	return string(s), nil
}

func genericRecord(v cbor.Value, r *types.Record) error {
	return eachField(v, func(k string, v cbor.Value) error {
		switch k {
		case "Data":
			switch d := v.(type) {
			case cbor.Slice:
				r.Data = append([]byte{}, d...)
			case cbor.String:
				b, err := base64.StdEncoding.DecodeString(string(d))
				if err != nil {
					return fmt.Errorf("Data: %w", err)
				}
				r.Data = b
			default:
				return fmt.Errorf("Data is a %T, not a byte or text string", v)
			}
		case "PartitionKey", "SequenceNumber", "EncryptionType":
			s, err := genericString(k, v)
			if err != nil {
				return err
			}
			switch k {
			case "PartitionKey":
				r.PartitionKey = &s
			case "SequenceNumber":
				r.SequenceNumber = &s
			default:
				r.EncryptionType = types.EncryptionType(s)
			}
		case "ApproximateArrivalTimestamp":
			if t, ok := v.(*cbor.Tag); ok && t.ID == 1 {
				v = t.Value
			}
			var ts time.Time
			switch n := v.(type) {
			case cbor.Uint, cbor.NegInt:
				ms, err := cbor.AsInt64(n)
				if err != nil {
					return fmt.Errorf("ApproximateArrivalTimestamp: %w", err)
				}
				ts = time.UnixMilli(ms).UTC()
			case cbor.Float32, cbor.Float64:
				f, _ := cbor.AsFloat64(n)
				t, ok := arrivalFloat(f)
				if !ok {
					return fmt.Errorf("ApproximateArrivalTimestamp %v out of range", f)
				}
				ts = t
			default:
				return fmt.Errorf("ApproximateArrivalTimestamp is a %T, not a number", v)
			}
			r.ApproximateArrivalTimestamp = &ts
		}
		return nil
	})
}

func genericChildShard(v cbor.Value, c *types.ChildShard) error {
	return eachField(v, func(k string, v cbor.Value) error {
		switch k {
		case "ShardId":
			s, err := genericString(k, v)
			if err != nil {
				return err
			}
			c.ShardId = &s
		case "ParentShards":
			l, ok := v.(cbor.List)
			if !ok {
				return fmt.Errorf("ParentShards is a %T, not a list", v)
			}
			c.ParentShards = make([]string, 0, len(l))
			for _, e := range l {
				if isNull(e) {
					continue
				}
				s, err := genericString("a parent shard", e)
				if err != nil {
					return err
				}
				c.ParentShards = append(c.ParentShards, s)
			}
		case "HashKeyRange":
			hm, ok := v.(cbor.Map)
			if !ok {
				return fmt.Errorf("HashKeyRange is a %T, not a map", v)
			}
			c.HashKeyRange = &types.HashKeyRange{}
			for hk, hv := range hm {
				if isNull(hv) || (hk != "StartingHashKey" && hk != "EndingHashKey") {
					continue
				}
				s, err := genericString(hk, hv)
				if err != nil {
					return err
				}
				if hk == "StartingHashKey" {
					c.HashKeyRange.StartingHashKey = &s
				} else {
					c.HashKeyRange.EndingHashKey = &s
				}
			}
		}
		return nil
	})
}

// decodeCBOR fills out from body, a successful GetRecords response in CBOR, and reports whether
// it could. It takes only the shape Kinesis and its emulators send: a map (of definite or
// indefinite length) with the keys Records, NextShardIterator, MillisBehindLatest and a null
// ChildShards, each at most once; records with the keys Data (a byte string, or base64 text),
// PartitionKey, SequenceNumber, ApproximateArrivalTimestamp and EncryptionType, never null;
// strings of definite length; nothing after the map. Anything else makes it return false and the
// caller decodes the same bytes with decodeCBORGeneric, so the answer is always the generic
// decoder's. Data is copied into one buffer per response, as decode does for JSON; nothing in
// out refers to body.
func decodeCBOR(body []byte, out *kinesis.GetRecordsOutput) bool {
	d := cborDecoder{decoder: decoder{b: body}}
	return d.response(out)
}

type cborDecoder struct {
	decoder
}

// head reads an item's initial byte and argument. For minor 31 (indefinite length, or break)
// it returns indefinite true and arg 0.
func (d *cborDecoder) head() (major byte, arg uint64, indefinite, ok bool) {
	if d.i >= len(d.b) {
		return 0, 0, false, false
	}
	ib := d.b[d.i]
	major, minor := ib>>5, ib&31
	d.i++
	switch {
	case minor < 24:
		return major, uint64(minor), false, true
	case minor == 31:
		return major, 0, true, true
	case minor > 27:
		return 0, 0, false, false
	}
	n := 1 << (minor - 24)
	if len(d.b)-d.i < n {
		return 0, 0, false, false
	}
	p := d.b[d.i : d.i+n]
	d.i += n
	switch n {
	case 1:
		arg = uint64(p[0])
	case 2:
		arg = uint64(binary.BigEndian.Uint16(p))
	case 4:
		arg = uint64(binary.BigEndian.Uint32(p))
	default:
		arg = binary.BigEndian.Uint64(p)
	}
	return major, arg, false, true
}

// container reads the head of a map (major 5) or array (major 4): its length, or -1 when
// indefinite.
func (d *cborDecoder) container(want byte) (int, bool) {
	major, arg, indef, ok := d.head()
	if !ok || major != want {
		return 0, false
	}
	if indef {
		return -1, true
	}
	if arg > uint64(len(d.b)-d.i) { // every entry takes at least a byte
		return 0, false
	}
	return int(arg), true
}

// more reports whether entry k of a container of length n (-1: indefinite) follows, consuming
// the break that ends an indefinite one.
func (d *cborDecoder) more(k, n int) bool {
	if n >= 0 {
		return k < n
	}
	if d.i < len(d.b) && d.b[d.i] == 0xff {
		d.i++
		return false
	}
	return true
}

// bytes reads a definite-length string of the given major type (2 bytes, 3 text) and returns
// its contents, within body.
func (d *cborDecoder) text(want byte) ([]byte, bool) {
	major, arg, indef, ok := d.head()
	if !ok || major != want || indef || arg > uint64(len(d.b)-d.i) {
		return nil, false
	}
	s := d.b[d.i : d.i+int(arg)]
	d.i += int(arg)
	return s, true
}

func (d *cborDecoder) null() bool {
	if d.i < len(d.b) && (d.b[d.i] == 0xf6 || d.b[d.i] == 0xf7) {
		d.i++
		return true
	}
	return false
}

// int64 reads an integer (major 0 or 1) that fits an int64.
func (d *cborDecoder) int64() (int64, bool) {
	major, arg, indef, ok := d.head()
	if !ok || indef || major > 1 || arg > math.MaxInt64 {
		return 0, false
	}
	if major == 1 {
		return -1 - int64(arg), true
	}
	return int64(arg), true
}

func (d *cborDecoder) response(out *kinesis.GetRecordsOutput) bool {
	n, ok := d.container(5)
	if !ok {
		return false
	}
	var seen uint8
	for k := 0; d.more(k, n); k++ {
		key, ok := d.text(3)
		if !ok {
			return false
		}
		var bit uint8
		switch string(key) {
		case "Records":
			bit = 1
			if !d.records(out) {
				return false
			}
		case "NextShardIterator":
			bit = 2
			if !d.null() {
				s, ok := d.text(3)
				if !ok {
					return false
				}
				it := d.string(s)
				out.NextShardIterator = &it
			}
		case "MillisBehindLatest":
			bit = 4
			v, ok := d.int64()
			if !ok {
				return false
			}
			out.MillisBehindLatest = &v
		case "ChildShards":
			bit = 8
			if !d.null() {
				return false
			}
		default:
			return false
		}
		if seen&bit != 0 {
			return false
		}
		seen |= bit
	}
	return d.i == len(d.b)
}

func (d *cborDecoder) records(out *kinesis.GetRecordsOutput) bool {
	n, ok := d.container(4)
	if !ok {
		return false
	}
	rest := len(d.b) - d.i
	c := n
	if c < 0 {
		c = bytes.Count(d.b[d.i:], []byte("\x6eSequenceNumber"))
	}
	recs := make([]types.Record, 0, c)
	times := make([]time.Time, 0, c)
	ptrs := make([]string, 0, 2*c)
	d.data = make([]byte, 0, rest)
	d.strs = make([]byte, 0, c*64)
	for k := 0; d.more(k, n); k++ {
		var r types.Record
		if !d.record(&r, &times, &ptrs) {
			return false
		}
		recs = append(recs, r)
	}
	out.Records = recs
	return true
}

func (d *cborDecoder) record(r *types.Record, times *[]time.Time, ptrs *[]string) bool {
	n, ok := d.container(5)
	if !ok {
		return false
	}
	var seen uint8
	for k := 0; d.more(k, n); k++ {
		key, ok := d.text(3)
		if !ok || d.null() {
			return false
		}
		var bit uint8
		switch string(key) {
		case "Data":
			bit = 1
			if !d.blob(r) {
				return false
			}
		case "PartitionKey":
			bit = 2
			s, ok := d.text(3)
			if !ok {
				return false
			}
			r.PartitionKey = slabPtr(ptrs, d.string(s))
		case "SequenceNumber":
			bit = 4
			s, ok := d.text(3)
			if !ok {
				return false
			}
			r.SequenceNumber = slabPtr(ptrs, d.string(s))
		case "ApproximateArrivalTimestamp":
			bit = 8
			t, ok := d.timestamp()
			if !ok {
				return false
			}
			r.ApproximateArrivalTimestamp = slabPtr(times, t)
		case "EncryptionType":
			bit = 16
			s, ok := d.text(3)
			if !ok {
				return false
			}
			r.EncryptionType = types.EncryptionType(d.string(s))
		default:
			return false
		}
		if seen&bit != 0 {
			return false
		}
		seen |= bit
	}
	return true
}

// timestamp reads an optional tag 1, then an integer count of milliseconds or a float32 or
// float64 count of seconds (half floats are left to the generic decoder).
func (d *cborDecoder) timestamp() (time.Time, bool) {
	if d.i < len(d.b) && d.b[d.i] == 0xc1 {
		d.i++
	}
	if d.i >= len(d.b) {
		return time.Time{}, false
	}
	switch ib := d.b[d.i]; {
	case ib>>5 <= 1:
		ms, ok := d.int64()
		return time.UnixMilli(ms).UTC(), ok
	case ib == 0xfa && len(d.b)-d.i >= 5:
		f := math.Float32frombits(binary.BigEndian.Uint32(d.b[d.i+1:]))
		d.i += 5
		return arrivalFloat(float64(f))
	case ib == 0xfb && len(d.b)-d.i >= 9:
		f := math.Float64frombits(binary.BigEndian.Uint64(d.b[d.i+1:]))
		d.i += 9
		return arrivalFloat(f)
	}
	return time.Time{}, false
}

// blob copies a byte string, or decodes a base64 text string, into the response's data buffer.
func (d *cborDecoder) blob(r *types.Record) bool {
	if d.i >= len(d.b) {
		return false
	}
	if d.b[d.i]>>5 == 2 {
		s, ok := d.text(2)
		off := len(d.data)
		if !ok || cap(d.data)-off < len(s) {
			return false
		}
		d.data = append(d.data, s...)
		r.Data = d.data[off : off+len(s) : off+len(s)]
		return true
	}
	src, ok := d.text(3)
	return ok && d.base64(r, src)
}
