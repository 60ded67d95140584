package getrecords

import (
	"bytes"
	"encoding/base64"
	"strconv"
	"time"
	"unsafe"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	simdbase64 "github.com/segmentio/asm/base64"
)

// decode fills out from body, a successful GetRecords response in awsJson 1.1, and reports
// whether it could. It takes only the shape Kinesis sends: one object with the keys Records,
// NextShardIterator and MillisBehindLatest, each at most once and never null; records with the
// keys Data, PartitionKey, SequenceNumber, ApproximateArrivalTimestamp and EncryptionType;
// strings without escapes; numbers in JSON's grammar; "ChildShards":null at most once. Anything else
// (ChildShards with a value, unknown or repeated keys, other nulls, escapes, exponents, invalid base64 or JSON) makes it return false, and the caller
// decodes the same bytes with the SDK's decoder instead, so what comes out is always what the
// SDK would have produced.
//
// Every record's Data is decoded from base64 straight out of body into one buffer allocated for
// the response (each Data slice capped at its own end, so an append never reaches a neighbour);
// the strings share one more allocation, the timestamps and string pointers one slab each.
// Nothing in out refers to body, which the caller may reuse.
func decode(body []byte, out *kinesis.GetRecordsOutput) bool {
	d := decoder{b: body}
	return d.response(out)
}

type decoder struct {
	b []byte
	i int

	data []byte // Data of every record, decoded; one allocation per response
	strs []byte // bytes of the strings; never written where a string already points
}

func (d *decoder) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// byte consumes c after optional whitespace.
func (d *decoder) byte(c byte) bool {
	d.ws()
	if d.i < len(d.b) && d.b[d.i] == c {
		d.i++
		return true
	}
	return false
}

// peek returns the next byte after whitespace, or 0 at the end.
// null consumes the literal null.
func (d *decoder) null() bool {
	if !bytes.HasPrefix(d.b[d.i:], []byte("null")) {
		return false
	}
	d.i += 4
	return true
}

func (d *decoder) peek() byte {
	d.ws()
	if d.i < len(d.b) {
		return d.b[d.i]
	}
	return 0
}

// str reads a string without escapes or control characters and returns its raw contents.
func (d *decoder) str() ([]byte, bool) {
	if !d.byte('"') {
		return nil, false
	}
	start := d.i
	for j := start; j < len(d.b); j++ {
		c := d.b[j]
		if c == '"' {
			d.i = j + 1
			return d.b[start:j], true
		}
		if c < 0x20 || c == '\\' {
			return nil, false
		}
	}
	return nil, false
}

// number reads a JSON number: -?(0|[1-9][0-9]*), then, when real, an optional fraction and
// exponent. It reports whether the number is an integer.
func (d *decoder) number(real bool) (num []byte, integer, ok bool) {
	d.ws()
	start := d.i
	j := start
	if j < len(d.b) && d.b[j] == '-' {
		j++
	}
	digits := j
	for j < len(d.b) && d.b[j] >= '0' && d.b[j] <= '9' {
		j++
	}
	if j == digits || (d.b[digits] == '0' && j-digits > 1) {
		return nil, false, false
	}
	integer = true
	if real && j < len(d.b) && d.b[j] == '.' {
		integer = false
		k := j + 1
		for k < len(d.b) && d.b[k] >= '0' && d.b[k] <= '9' {
			k++
		}
		if k == j+1 {
			return nil, false, false
		}
		j = k
	}
	if real && j < len(d.b) && (d.b[j] == 'e' || d.b[j] == 'E') {
		integer = false
		k := j + 1
		if k < len(d.b) && (d.b[k] == '+' || d.b[k] == '-') {
			k++
		}
		e := k
		for k < len(d.b) && d.b[k] >= '0' && d.b[k] <= '9' {
			k++
		}
		if k == e {
			return nil, false, false
		}
		j = k
	}
	d.i = j
	return d.b[start:j], integer, true
}

// string copies raw into the string arena and returns a string over the copy.
func (d *decoder) string(raw []byte) string {
	if len(raw) == 0 {
		return ""
	}
	if cap(d.strs)-len(d.strs) < len(raw) {
		d.strs = make([]byte, 0, max(len(raw), 64<<10))
	}
	off := len(d.strs)
	d.strs = append(d.strs, raw...)
	return unsafe.String(&d.strs[off], len(raw))
}

func (d *decoder) response(out *kinesis.GetRecordsOutput) bool {
	if !d.byte('{') {
		return false
	}
	var seenRecords, seenIterator, seenMillis, seenChildShards bool
	if d.peek() == '}' {
		d.i++
	} else {
		for {
			key, ok := d.str()
			if !ok || !d.byte(':') {
				return false
			}
			null := d.peek() == 'n'
			if null && (string(key) != "ChildShards" || seenChildShards) {
				return false // other nulls: the SDK skips them; leave that to the SDK
			}
			switch string(key) {
			case "ChildShards":
				// kinesis-local sends "ChildShards":null on every read; the SDK leaves the field
				// nil, as the zero output already has it. ChildShards with a value (a shard's
				// end) is the SDK's to decode.
				if !null || !d.null() {
					return false
				}
				seenChildShards = true
			case "Records":
				if seenRecords || !d.records(out) {
					return false
				}
				seenRecords = true
			case "NextShardIterator":
				s, ok := d.str()
				if seenIterator || !ok {
					return false
				}
				seenIterator = true
				it := d.string(s)
				out.NextShardIterator = &it
			case "MillisBehindLatest":
				n, _, ok := d.number(false)
				if seenMillis || !ok || len(n) > 18 { // 18 characters always fit an int64
					return false
				}
				seenMillis = true
				v, err := strconv.ParseInt(unsafe.String(&n[0], len(n)), 10, 64)
				if err != nil {
					return false
				}
				out.MillisBehindLatest = &v
			default:
				return false
			}
			if d.byte(',') {
				continue
			}
			if d.byte('}') {
				break
			}
			return false
		}
	}
	d.ws()
	return d.i == len(d.b)
}

var recordKey = []byte(`"SequenceNumber"`)

func (d *decoder) records(out *kinesis.GetRecordsOutput) bool {
	if !d.byte('[') {
		return false
	}
	// Upper bounds, from the rest of the body: each record has one SequenceNumber key, and its
	// Data decodes to at most 3/4 of the base64 text.
	rest := d.b[d.i:]
	n := bytes.Count(rest, recordKey)
	recs := make([]types.Record, 0, n)
	times := make([]time.Time, 0, n)
	ptrs := make([]string, 0, 2*n)
	d.data = make([]byte, 0, base64.StdEncoding.DecodedLen(len(rest)))
	d.strs = make([]byte, 0, n*64)

	if d.peek() == ']' {
		d.i++
		out.Records = recs
		return true
	}
	for {
		var r types.Record
		if !d.record(&r, &times, &ptrs) {
			return false
		}
		recs = append(recs, r)
		if d.byte(',') {
			continue
		}
		if d.byte(']') {
			out.Records = recs
			return true
		}
		return false
	}
}

// slabPtr stores v in the slab and returns a pointer to it, so that a record's pointer fields
// cost no allocation of their own. A full slab is replaced, never grown in place, so pointers
// already handed out stay valid.
func slabPtr[T any](slab *[]T, v T) *T {
	if len(*slab) == cap(*slab) {
		*slab = make([]T, 0, max(16, cap(*slab)))
	}
	*slab = append(*slab, v)
	return &(*slab)[len(*slab)-1]
}

func (d *decoder) record(r *types.Record, times *[]time.Time, ptrs *[]string) bool {
	if d.peek() != '{' {
		return false // null records, and anything else, are the SDK's to decode
	}
	d.i++
	if d.peek() == '}' {
		d.i++
		return true
	}
	var seen uint8
	for {
		key, ok := d.str()
		if !ok || !d.byte(':') {
			return false
		}
		if d.peek() == 'n' {
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
			s, ok := d.str()
			if !ok {
				return false
			}
			r.PartitionKey = slabPtr(ptrs, d.string(s))
		case "SequenceNumber":
			bit = 4
			s, ok := d.str()
			if !ok {
				return false
			}
			r.SequenceNumber = slabPtr(ptrs, d.string(s))
		case "ApproximateArrivalTimestamp":
			bit = 8
			num, integer, ok := d.number(true)
			if !ok || len(num) > 32 {
				return false
			}
			t, ok := epochSeconds(num, integer)
			if !ok {
				return false
			}
			r.ApproximateArrivalTimestamp = slabPtr(times, t)
		case "EncryptionType":
			bit = 16
			s, ok := d.str()
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
		if d.byte(',') {
			continue
		}
		return d.byte('}')
	}
}

// blob decodes a base64 string into the response's data buffer.
func (d *decoder) blob(r *types.Record) bool {
	if !d.byte('"') {
		return false
	}
	end := bytes.IndexByte(d.b[d.i:], '"')
	if end < 0 {
		return false
	}
	// Escapes and other bytes that are not base64 fail the decode.
	if !d.base64(r, d.b[d.i:d.i+end]) {
		return false
	}
	d.i += end + 1
	return true
}

// base64 decodes src into the response's data buffer as r's Data. Only a multiple of 4 with no
// line breaks (which base64 would skip) is taken.
func (d *decoder) base64(r *types.Record, src []byte) bool {
	if len(src)%4 != 0 {
		return false
	}
	want := len(src) / 4 * 3
	if len(src) > 0 && src[len(src)-1] == '=' {
		want--
		if src[len(src)-2] == '=' {
			want--
		}
	}
	off := len(d.data)
	if cap(d.data)-off < len(src)/4*3 {
		return false
	}
	// segmentio/asm decodes with AVX2 where the CPU has it (about 7 times encoding/base64's
	// speed on 1 KiB of data) and with encoding/base64 otherwise; whatever it takes or refuses,
	// FuzzSameAsSDK holds the result equal to the SDK's, which decodes with encoding/base64.
	n, err := simdbase64.StdEncoding.Decode(d.data[off:cap(d.data)], src)
	if err != nil || n != want {
		return false
	}
	d.data = d.data[:off+n]
	r.Data = d.data[off : off+n : off+n]
	return true
}

// epochSeconds does what the SDK does with an epoch-seconds timestamp: parse it as an integer
// converted to float64 when it is one, else as a float64; scale to milliseconds (correctly
// rounded, as the SDK's big.Float at 53 bits is); truncate toward zero; make a UTC time.
func epochSeconds(num []byte, integer bool) (time.Time, bool) {
	s := unsafe.String(&num[0], len(num))
	var f float64
	if integer && len(num) <= 18 {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return time.Time{}, false
		}
		f = float64(n)
	} else {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return time.Time{}, false
		}
		f = v
	}
	ms := f * 1000
	if ms != ms || ms >= 1<<63 || ms < -(1<<63) {
		return time.Time{}, false
	}
	return time.Unix(0, int64(ms)*1e6).UTC(), true
}
