package kpl

import (
	"bytes"
	"crypto/md5"
	"errors"
	"testing"
)

// FuzzDeaggregate splits arbitrary data, as it comes and wrapped as an aggregate with a correct
// checksum (so that the protobuf parser is reached by more than one input in 2^128). Data without
// the magic bytes is not an aggregate; a valid aggregate's user records aggregate back into
// records that split the same way; an invalid one is reported as ErrCorrupt, never as a panic or
// a silent drop.
func FuzzDeaggregate(f *testing.F) {
	f.Add([]byte("plain record"))
	f.Add(Aggregate([]UserRecord{{PartitionKey: "k", Data: []byte("one")}}))
	f.Add(Aggregate([]UserRecord{
		{PartitionKey: "a", Data: []byte(`{"n":1}`)},
		{PartitionKey: "b", ExplicitHashKey: "340282366920938463463374607431768211455", Data: []byte{}},
		{PartitionKey: "a", Data: bytes.Repeat([]byte{0xff}, 300)},
	}))
	body := []byte{0x0a, 0x01, 'k', 0x1a, 0x04, 0x08, 0x05, 0x18, 0x00} // keys and a record pointing past them
	sum := md5.Sum(body)
	f.Add(append(append(append([]byte{}, Magic...), body...), sum[:]...))
	f.Add(append(append([]byte{}, Magic...), make([]byte, md5.Size+1)...))
	// A protobuf body alone: the target also fuzzes it wrapped with magic bytes and its checksum.
	agg := Aggregate([]UserRecord{{PartitionKey: "k", ExplicitHashKey: "1", Data: []byte("x")}, {PartitionKey: "j", Data: []byte("yy")}})
	f.Add(agg[len(Magic) : len(agg)-md5.Size])
	f.Fuzz(func(t *testing.T, data []byte) {
		checkDeaggregate(t, data)
		sum := md5.Sum(data)
		checkDeaggregate(t, append(append(append([]byte{}, Magic...), data...), sum[:]...))
	})
}

func checkDeaggregate(t *testing.T, data []byte) {
	t.Helper()
	recs, ok, err := Deaggregate(data)
	if !IsAggregate(data) {
		if ok || err != nil || recs != nil {
			t.Fatalf("non-aggregate %x: ok=%v err=%v, %d records", data, ok, err, len(recs))
		}
		return
	}
	if !ok {
		t.Fatalf("aggregate %x: ok=false", data)
	}
	if err != nil {
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Deaggregate(%x): %v, want an ErrCorrupt", data, err)
		}
		return
	}
	again, ok, err := Deaggregate(Aggregate(recs))
	if !ok || err != nil {
		t.Fatalf("re-aggregated %d records do not split: ok=%v %v", len(recs), ok, err)
	}
	if len(again) != len(recs) {
		t.Fatalf("round trip: %d records, want %d", len(again), len(recs))
	}
	for i := range recs {
		if again[i].PartitionKey != recs[i].PartitionKey || again[i].ExplicitHashKey != recs[i].ExplicitHashKey || !bytes.Equal(again[i].Data, recs[i].Data) {
			t.Fatalf("round trip: record %d = %+v, want %+v", i, again[i], recs[i])
		}
	}
}
