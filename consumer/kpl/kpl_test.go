package kpl

import (
	"crypto/md5"
	"errors"
	"fmt"
	"testing"
)

func TestAggregateRoundTripKeepsOrderAndKeys(t *testing.T) {
	var in []UserRecord
	for i := 0; i < 50; i++ {
		in = append(in, UserRecord{PartitionKey: fmt.Sprintf("key-%d", i%7), Data: []byte(fmt.Sprintf(`{"n":%d}`, i))})
	}
	in[3].ExplicitHashKey = "12345"
	out, ok, err := Deaggregate(Aggregate(in))
	if err != nil || !ok {
		t.Fatalf("Deaggregate: ok=%v err=%v", ok, err)
	}
	if len(out) != len(in) {
		t.Fatalf("got %d user records, want %d", len(out), len(in))
	}
	for i := range in {
		if out[i].PartitionKey != in[i].PartitionKey || string(out[i].Data) != string(in[i].Data) || out[i].ExplicitHashKey != in[i].ExplicitHashKey {
			t.Fatalf("record %d = %+v, want %+v", i, out[i], in[i])
		}
	}
}

func TestPlainRecordIsNotAnAggregate(t *testing.T) {
	_, ok, err := Deaggregate([]byte(`{"event_type":"view"}`))
	if ok || err != nil {
		t.Fatalf("plain JSON: ok=%v err=%v, want not an aggregate", ok, err)
	}
}

func TestCorruptAggregateIsReportedNotDropped(t *testing.T) {
	agg := Aggregate([]UserRecord{{PartitionKey: "a", Data: []byte("x")}, {PartitionKey: "b", Data: []byte("y")}})
	badSum := append([]byte(nil), agg...)
	badSum[len(badSum)-1] ^= 0xff
	if _, ok, err := Deaggregate(badSum); !ok || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("bad checksum: ok=%v err=%v, want ErrCorrupt", ok, err)
	}

	// A well-formed checksum over a broken protobuf (truncated record field).
	body := []byte{0x0a, 0x01, 'a', 0x1a, 0x10, 0x08}
	if _, ok, err := Deaggregate(withSum(body)); !ok || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("truncated protobuf: ok=%v err=%v, want ErrCorrupt", ok, err)
	}
	// A record pointing past the partition key table.
	body = []byte{0x0a, 0x01, 'a', 0x1a, 0x05, 0x08, 0x05, 0x1a, 0x01, 'z'}
	if _, ok, err := Deaggregate(withSum(body)); !ok || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("bad key index: ok=%v err=%v, want ErrCorrupt", ok, err)
	}
	// A valid checksum over a protobuf with no user record (found by FuzzDeaggregate): splitting
	// it into nothing would drop the Kinesis record without a trace.
	for _, body := range [][]byte{[]byte("100000000"), {0x0a, 0x01, 'a'}} {
		if recs, ok, err := Deaggregate(withSum(body)); !ok || !errors.Is(err, ErrCorrupt) {
			t.Fatalf("no user records (%x): ok=%v err=%v, %d records; want ErrCorrupt", body, ok, err, len(recs))
		}
	}
}

func withSum(body []byte) []byte {
	out := append([]byte(nil), Magic...)
	out = append(out, body...)
	sum := md5sum(body)
	return append(out, sum...)
}

func md5sum(b []byte) []byte {
	s := md5.Sum(b)
	return s[:]
}
