package produce

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// nextData returns the payloads of the next n entries of s.
func nextData(t *testing.T, s Source, n int) []string {
	t.Helper()
	var out []string
	for range n {
		e, err := s.Next()
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		out = append(out, string(e.Data))
	}
	return out
}

func TestLoadFileSourceJSONLines(t *testing.T) {
	p := writeFile(t, "events.jsonl", "\xef\xbb\xbf{\"a\": 1, \"b\": [1, 2]}\r\n\n   \n  {\"a\":2.50}  \r\n\"just a string\"\n")
	s, err := LoadFileSource(p)
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() != 3 {
		t.Fatalf("Len = %d, want 3", s.Len())
	}
	got := nextData(t, s, 7)
	want := []string{`{"a":1,"b":[1,2]}`, `{"a":2.50}`, `"just a string"`, `{"a":1,"b":[1,2]}`, `{"a":2.50}`, `"just a string"`, `{"a":1,"b":[1,2]}`}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant (compacted, cycling)\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestLoadFileSourceArray(t *testing.T) {
	// The recipe's sample-events.json, as the recipe writes it.
	p := writeFile(t, "sample-events.json", `[
    {
        "event_id": "evt001",
        "user_id": "user123",
        "event_type": "purchase",
        "amount": 150.50,
        "product_id": "prod456",
        "timestamp": "2025-01-15T10:30:00Z"
    },
    {
        "event_id": "evt002",
        "user_id": "user456",
        "event_type": "view",
        "product_id": "prod789",
        "timestamp": "2025-01-15T10:31:00Z"
    },
    {
        "event_id": "evt003",
        "user_id": "user789",
        "event_type": "purchase",
        "amount": 75.25,
        "product_id": "prod123",
        "timestamp": "2025-01-15T10:32:00Z"
    }
]
`)
	s, err := LoadFileSource(p)
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() != 3 {
		t.Fatalf("Len = %d, want 3", s.Len())
	}
	got := nextData(t, s, 3)
	if want := `{"event_id":"evt001","user_id":"user123","event_type":"purchase","amount":150.50,"product_id":"prod456","timestamp":"2025-01-15T10:30:00Z"}`; got[0] != want {
		t.Errorf("first record %s, want %s", got[0], want)
	}
	// The array file and the JSON-lines sample hold the same first three records.
	lines, err := LoadFileSource(filepath.Join("..", "configs", "samples", "recipe-events.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if fromLines := nextData(t, lines, 3); strings.Join(fromLines, "\n") != strings.Join(got, "\n") {
		t.Errorf("array records\n%s\ndiffer from the sample file's\n%s", strings.Join(got, "\n"), strings.Join(fromLines, "\n"))
	}
	wantLines := []int{2, 10, 17}
	for i, r := range s.records {
		if r.line != wantLines[i] {
			t.Errorf("record %d starts on line %d, want %d", i, r.line, wantLines[i])
		}
	}
}

func TestLoadFileSourceFirstLineArrayIsJSONLines(t *testing.T) {
	s, err := parseFileSource("x.jsonl", []byte("[1,2]\n[3]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := nextData(t, s, 2); got[0] != "[1,2]" || got[1] != "[3]" {
		t.Errorf("got %q, want two array records", got)
	}
}

func TestLoadFileSourceErrorsNameTheLine(t *testing.T) {
	for name, tc := range map[string]struct {
		content string
		want    string
	}{
		"bad line":          {"{\"a\":1}\n\n{\"a\":2,}\n{\"a\":3}\n", "events.jsonl: line 3, column 8: invalid JSON"},
		"truncated line":    {"{\"a\":1}\n{\"a\":\n", "line 2"},
		"two values a line": {"{\"a\":1} {\"a\":2}\n", "line 1"},
		"bad array element": {"[\n  {\"a\": 1},\n  {\"a\": 2},\n\n  {\"a\" 3}\n]\n", "events.jsonl: line 5: invalid JSON"},
		"unclosed array":    {"[\n  {\"a\": 1},\n  {\"a\": 2}\n", "line 3"},
		"empty":             {"\n  \n", "holds no records"},
		"empty array":       {"[ ]", "holds no records"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := LoadFileSource(writeFile(t, "events.jsonl", tc.content))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
	if _, err := LoadFileSource(filepath.Join(t.TempDir(), "missing.jsonl")); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "missing.jsonl") {
		t.Errorf("missing file: err = %v", err)
	}
}

func TestLoadFileSourceTooLargeRecord(t *testing.T) {
	big := `{"a":"` + strings.Repeat("x", MaxRecordBytes) + `"}`
	_, err := parseFileSource("big.jsonl", []byte("{}\n"+big+"\n"))
	if !errors.Is(err, ErrRecordTooLarge) || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("err = %v, want ErrRecordTooLarge naming line 2", err)
	}
}

func TestFileSourcePartitionKeyField(t *testing.T) {
	s, err := parseFileSource("k.jsonl", []byte(`{"user_id":"user123","n":1}
{"user_id":42}
{"user_id":true}
{"other":1}
{"user_id":null}
{"user_id":""}
{"user_id":{"x":1}}
[1]
`))
	if err != nil {
		t.Fatal(err)
	}
	s.PartitionKeyField = "user_id"
	for i, want := range []string{"user123", "42", "true"} {
		e, err := s.Next()
		if err != nil || e.PartitionKey != want {
			t.Errorf("record %d: key %q, err %v; want %q", i, e.PartitionKey, err, want)
		}
	}
	for line := 4; line <= 8; line++ {
		_, err := s.Next()
		if err == nil || !strings.Contains(err.Error(), "k.jsonl: line "+string(rune('0'+line))+": partition key") {
			t.Errorf("line %d: err = %v, want a partition key error naming the line", line, err)
		}
	}
	// Without a field, each record gets a random 10-digit key.
	s.PartitionKeyField = ""
	e, err := s.Next()
	if err != nil || !regexp.MustCompile(`^[0-9]{10}$`).MatchString(e.PartitionKey) {
		t.Errorf("key %q, err %v; want 10 random digits", e.PartitionKey, err)
	}
}

func TestRecipeSampleEvents(t *testing.T) {
	p := filepath.Join("..", "configs", "samples", "recipe-events.jsonl")
	s, err := LoadFileSource(p)
	if err != nil {
		t.Fatal(err)
	}
	s.PartitionKeyField = "user_id"
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSpace(raw), []byte("\n"))
	if s.Len() != 5 || len(lines) != 5 {
		t.Fatalf("%d records, %d lines; want the recipe's 5 sample events", s.Len(), len(lines))
	}
	wantKeys := []string{"user123", "user456", "user789", "user001", "user002"}
	wantTypes := []string{`"purchase"`, `"view"`, `"purchase"`, `"add_to_cart"`, `"remove_from_cart"`}
	for i := range 5 {
		e, err := s.Next()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(e.Data, lines[i]) {
			t.Errorf("record %d is %s, want the file's line as written: %s", i, e.Data, lines[i])
		}
		if e.PartitionKey != wantKeys[i] || !bytes.Contains(e.Data, []byte(`"event_type":`+wantTypes[i])) {
			t.Errorf("record %d: key %q, data %s", i, e.PartitionKey, e.Data)
		}
	}
}
