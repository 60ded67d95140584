package dlq

import (
	"errors"
	"strings"
	"testing"
)

func TestPrintable(t *testing.T) {
	cases := []struct {
		data []byte
		max  int
		want string
	}{
		{nil, 10, "(empty)"},
		{[]byte(`{"a":1}`), 10, `{"a":1}`},
		{[]byte("line1\nline2\tx\r"), 50, `line1\nline2\tx\r`},
		{[]byte("abcdefghij"), 4, "abcd... (10 bytes in all)"},
		{[]byte("héllo wörld"), 5, "héllo... (13 bytes in all)"},
		{[]byte("red \x1b[31mtext"), 50, `red \x1b[31mtext`},
		{[]byte{0xf3, 0x89, 0x9a, 0xc2, 1, 2}, 50, "(KPL aggregate, 6 bytes: f3 89 9a c2 01 02)"},
		{[]byte{0xff, 0xfe, 0, 1}, 50, "(binary, 4 bytes: ff fe 00 01)"},
		{[]byte("\x00\x01\x02\x03ab"), 50, "(binary, 6 bytes: 00 01 02 03 61 62)"},
	}
	for _, tc := range cases {
		if got := Printable(tc.data, tc.max); got != tc.want {
			t.Errorf("Printable(%q, %d) = %q, want %q", tc.data, tc.max, got, tc.want)
		}
	}
}

func TestWriteText(t *testing.T) {
	f := smallFailure(testShard, 3, 4, testTime)
	f.Records[1].SubSequenceNumber = 2
	f.ErrorMessage = "invalid character 'x'\nlooking for beginning of value"
	m := NewMessage(f)
	recs, err := m.Records()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := WriteText(&b, Letter{Message: m, Origin: "dl.jsonl:1"}, recs, nil, TextOptions{MaxRecords: 2, MaxData: 3}); err != nil {
		t.Fatal(err)
	}
	want := `== dl.jsonl:1
  condition:  RetryAttemptsExhausted (Unhandled) after 3 attempts
  when:       2025-06-07T08:09:10.000Z
  function:   shardhose:test
  stream:     arn:aws:kinesis:us-east-1:000000000000:stream/src
  shard:      shardId-000000000001
  sequences:  496000000000000000001000 .. 496000000000000000001002
  arrived:    2025-06-07T08:08:10.000Z .. 2025-06-07T08:08:10.002Z
  batch size: 3
  error:      invalid character 'x' looking for beginning of value
  id:         ` + m.RequestContext.RequestID + `
  records:    3 in the message
  [1] seq 496000000000000000001000  key "pk-0"  arrived 2025-06-07T08:08:10.000Z  4 bytes
      aaa... (4 bytes in all)
  [2] seq 496000000000000000001001 sub 2  key "pk-1"  arrived 2025-06-07T08:08:10.001Z  4 bytes
      bbb... (4 bytes in all)
  ... 1 more record (--records 0 shows all)

`
	if b.String() != want {
		t.Errorf("WriteText:\n%s\nwant:\n%s", b.String(), want)
	}

	// Metadata only, records not fetched; and something that is not a dead letter.
	meta := m
	meta.Inline = nil
	b.Reset()
	_ = WriteText(&b, Letter{Message: meta, Origin: "o"}, nil, nil, TextOptions{})
	if !strings.Contains(b.String(), "records:    not carried (metadata only") {
		t.Errorf("metadata-only letter:\n%s", b.String())
	}
	b.Reset()
	_ = WriteText(&b, Letter{Origin: "o", Err: ErrNotDeadLetter, Raw: []byte("hello")}, nil, nil, TextOptions{})
	if b.String() != "== o\n  not a dead letter\n  raw: hello\n\n" {
		t.Errorf("not a dead letter:\n%q", b.String())
	}
	b.Reset()
	loc := Location{Bucket: "b", Key: "k.json"}
	meta.RecordsLocation = &loc
	_ = WriteText(&b, Letter{Message: meta, Origin: "o"}, nil, errors.New("get object: AccessDenied"), TextOptions{})
	if !strings.Contains(b.String(), "records:    in s3://b/k.json\n  cannot show the records: get object: AccessDenied\n") {
		t.Errorf("overflowed letter whose object cannot be read:\n%s", b.String())
	}
}
