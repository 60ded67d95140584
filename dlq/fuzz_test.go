package dlq

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzParseMessage reads arbitrary queue content as `dlq inspect` and `dlq replay` do: parse it,
// take its records, and write it for people. Content that is not a dead letter is refused with
// ErrNotDeadLetter; a dead letter has a shard and a start sequence number, encodes to JSON that
// parses back to the same encoding, and prints as valid UTF-8 without panicking.
func FuzzParseMessage(f *testing.F) {
	tm := time.Date(2025, 1, 2, 3, 4, 5, 678e6, time.UTC)
	small, _ := encode(NewMessage(smallFailure("shardId-000000000001", 3, 20, tm)))
	f.Add(small)
	meta := NewMessage(smallFailure("shardId-000000000002", 2, 10, tm))
	meta.Inline = nil
	metaOnly, _ := encode(meta)
	f.Add(metaOnly)
	meta.RecordsLocation = &Location{Bucket: "b", Key: "dead-letters/records/x.json"}
	overflowed, _ := encode(meta)
	f.Add(overflowed)
	envelope, _ := json.Marshal(map[string]string{"Type": "Notification", "MessageId": "m-1", "Message": string(small)})
	f.Add(envelope)
	for _, s := range []string{
		`{"KinesisBatchInfo":{"shardId":"s","startSequenceNumber":"1"},"records":[{"data":"!!","approximateArrivalTimestamp":"x"}]}`,
		`{"KinesisBatchInfo":{"shardId":"s","startSequenceNumber":"1"},"records":[{"data":"AAEC","approximateArrivalTimestamp":"2025-01-02T03:04:05Z"}]}`,
		`{"Type":"Notification","Message":"not json"}`, `{}`, `null`, `[]`, `"text"`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := ParseMessage(raw)
		if err != nil {
			if !errors.Is(err, ErrNotDeadLetter) {
				t.Fatalf("ParseMessage: %v, want an ErrNotDeadLetter", err)
			}
			var b bytes.Buffer
			if err := WriteText(&b, Letter{Origin: "q", Raw: raw, Err: err}, nil, nil, TextOptions{}); err != nil {
				t.Fatal(err)
			}
			return
		}
		if m.KinesisBatchInfo.ShardID == "" || m.KinesisBatchInfo.StartSequenceNumber == "" {
			t.Fatalf("ParseMessage accepted %q without a shard or start sequence number", raw)
		}
		recs, recErr := m.Records()
		if recErr == nil && len(recs) != len(m.Inline) {
			t.Fatalf("Records: %d, want the %d inline", len(recs), len(m.Inline))
		}
		if recErr != nil && len(m.Inline) == 0 && !errors.Is(recErr, ErrNoInlineRecords) {
			t.Fatalf("Records of a message without inline records: %v, want ErrNoInlineRecords", recErr)
		}
		first, err := encode(m)
		if err != nil {
			t.Fatalf("encode a parsed dead letter: %v", err)
		}
		again, err := ParseMessage(first)
		if err != nil {
			t.Fatalf("a parsed dead letter, encoded, does not parse: %v\n%s", err, first)
		}
		second, err := encode(again)
		if err != nil || !bytes.Equal(first, second) {
			t.Fatalf("encode(parse(encode(m))) differs from encode(m):\n%s\n%s", first, second)
		}
		var b bytes.Buffer
		if err := WriteText(&b, Letter{Origin: "q", Raw: raw, Message: m}, recs, recErr, TextOptions{MaxRecords: 3, MaxData: 50}); err != nil {
			t.Fatal(err)
		}
		if !utf8.Valid(b.Bytes()) {
			t.Fatalf("inspect output is not valid UTF-8: %q", b.String())
		}
		if !strings.HasPrefix(b.String(), "== q\n") {
			t.Fatalf("inspect output does not start with the letter's origin: %q", b.String())
		}
	})
}
